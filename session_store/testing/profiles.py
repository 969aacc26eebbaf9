"""Hypothesis profiles: ``dev`` fast for local runs, ``ci`` thorough and deterministic
(derandomized, no example database); ``CI=true`` picks ``ci``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

__all__ = ["register_hypothesis_profiles"]


def register_hypothesis_profiles() -> str:
    """Register ``dev`` and ``ci`` and load one (``HYPOTHESIS_PROFILE``, else by ``CI``)."""
    settings.register_profile(
        "dev",
        max_examples=25,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    # CI is deterministic: the same examples on every run (derandomize, no example database),
    # so a red build is reproducible and a green one is not luck.
    settings.register_profile(
        "ci",
        parent=settings.get_profile("dev"),
        max_examples=150,
        stateful_step_count=40,
        print_blob=True,
        derandomize=True,
        database=None,
    )
    default = "ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "dev"
    name = os.environ.get("HYPOTHESIS_PROFILE", default)
    settings.load_profile(name)
    return name
