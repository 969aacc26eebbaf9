"""Everything a backend plugin needs, from one module.

A plugin's runtime code imports from here::

    from session_store.plugin import BackendBase, BackendURL, Params, Scope

and its tests import the conformance kit from here too (loaded on first use, so that a
plugin's runtime import never pulls in pytest or Hypothesis)::

    from session_store.plugin import BackendConformance, make_state_machine

(``AsyncBackendConformance`` is the async twin's kit.) CONTRIBUTING.md walks through a whole
plugin: ``examples/session_store_example``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.backend_base import BackendBase, TrustedCalls, trusted, value_token
from session_store.counters import Counters
from session_store.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    InvalidKeyError,
    InvalidTTLError,
    SerializationError,
    SessionStoreError,
)
from session_store.keys import MAX_KEY_BYTES, Namespace, validate_key, validate_scan_prefix
from session_store.lazy import lazy_attributes
from session_store.registry import BACKENDS_GROUP
from session_store.ttl import MAX_TTL, NO_EXPIRY, effective_ttl, normalize_ttl, ttl_to_ms
from session_store.unchecked import unchecked_calls
from session_store.urls import BackendURL, Params, is_secret_param, parse_url, redact_url

if TYPE_CHECKING:
    from session_store.testing.async_conformance import AsyncBackendConformance
    from session_store.testing.conformance import HOSTILE_KEYS, INVALID_KEYS, BackendConformance
    from session_store.testing.statemachine import make_state_machine

__all__ = [
    "BACKENDS_GROUP",
    "HOSTILE_KEYS",
    "INVALID_KEYS",
    "MAX_KEY_BYTES",
    "MAX_TTL",
    "NO_EXPIRY",
    "AsyncBackendConformance",
    "BackendBase",
    "BackendConformance",
    "BackendError",
    "BackendURL",
    "BackendUnavailableError",
    "ConfigurationError",
    "Counters",
    "InvalidKeyError",
    "InvalidTTLError",
    "Namespace",
    "Params",
    "Scope",
    "SerializationError",
    "SessionBackend",
    "SessionStoreError",
    "TrustedCalls",
    "VersionToken",
    "Versioned",
    "effective_ttl",
    "ensure_bytes",
    "is_secret_param",
    "make_state_machine",
    "normalize_ttl",
    "parse_url",
    "redact_url",
    "trusted",
    "ttl_to_ms",
    "unchecked_calls",
    "validate_key",
    "validate_scan_prefix",
    "value_token",
]

# The test kit needs pytest and Hypothesis (the ``test`` extra): imported on first access only.
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        "AsyncBackendConformance": "session_store.testing.async_conformance",
        "BackendConformance": "session_store.testing.conformance",
        "HOSTILE_KEYS": "session_store.testing.conformance",
        "INVALID_KEYS": "session_store.testing.conformance",
        "make_state_machine": "session_store.testing.statemachine",
    },
    __all__,
)
