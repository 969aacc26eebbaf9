"""Suite-wide set-up: Hypothesis profiles (fast locally, thorough with CI=true)."""

from session_store.testing import register_hypothesis_profiles

register_hypothesis_profiles()
