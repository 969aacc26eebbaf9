"""Has pytest rewrite the asserts of the kit's test methods, so that a failure shows its values.

The kit is installed code, not test files, so pytest would not rewrite it on its own: a plugin's
failing kit test would read a bare ``AssertionError``. Registered before those modules are
imported (``session_store.testing`` imports this first), it reads ``assert inf <= 0.3``.
Outside a pytest run this does nothing.
"""

from __future__ import annotations

import pytest

__all__: list[str] = []

_KIT = (
    "async_conformance",
    "conformance",
    "conformance_cas",
    "conformance_session_delete",
    "conformance_session_touch",
    "conformance_touch",
    "statemachine",
)

pytest.register_assert_rewrite(*(f"session_store.testing.{module}" for module in _KIT))
