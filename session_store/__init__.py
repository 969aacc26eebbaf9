"""session-store: server-side session storage with pluggable backends.

Open a backend from a URL or a chain string::

    from session_store import open_backend
    backend = open_backend("memory://?max_entries=1000 | diskcache:///var/lib/app/sessions")

The top level is lazy (PEP 562): ``import session_store`` loads nothing but this module, and each
name imports its module on first use, so code that needs only the protocol, the registry or the
memory backend never loads the codec's optional dependencies (cryptography, zstandard) or the
attrs schema. The data-room host classes live in :mod:`session_store.dataroom`; their old
top-level names still work and warn.
"""

from __future__ import annotations

from session_store.lazy import lazy_attributes

# Not typing.TYPE_CHECKING: importing typing (and re, collections with it) would cost more than
# everything else here; type checkers treat any constant of this name as theirs.
TYPE_CHECKING = False
if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on demand
    from session_store.aio import AsyncSessionBackend, AsyncSessionStore, open_async_backend
    from session_store.backend import Scope, SessionBackend, Versioned, VersionToken
    from session_store.codec import AesGcmStage, Codec, ZstdStage
    from session_store.codec.legacy import PlanJsonCodec
    from session_store.counters import Counters
    from session_store.dataroom import (
        DocumentExtractionResult,
        EnhancedSessionData,
        EnhancedSessionManager,
        ExtractionMethod,
        SessionManager,
        SessionMetrics,
        VisionExtraction,
        naive_utc,
        session_quality,
    )
    from session_store.decoded import DecodedCache
    from session_store.errors import (
        BackendError,
        BackendUnavailableError,
        ConfigurationError,
        ConflictError,
        CorruptPayloadError,
        InvalidKeyError,
        InvalidTTLError,
        NotWritableError,
        SerializationError,
        SessionStoreError,
        UnknownSchemaVersionError,
    )
    from session_store.keys import MAX_KEY_BYTES, Namespace, validate_key
    from session_store.mapping import SessionMapping
    from session_store.memory import Evicted, MemoryBackend
    from session_store.registry import available_backends, open_backend
    from session_store.schema import SchemaInfo, register_schema
    from session_store.store import SessionStore
    from session_store.tiered import TieredBackend
    from session_store.ttl import NO_EXPIRY
    from session_store.urls import BackendURL, Params, parse_url, redact_url

__version__ = "0.1.0"

__all__ = [
    "MAX_KEY_BYTES",
    "NO_EXPIRY",
    "AesGcmStage",
    "AsyncSessionBackend",
    "AsyncSessionStore",
    "BackendError",
    "BackendURL",
    "BackendUnavailableError",
    "Codec",
    "ConfigurationError",
    "ConflictError",
    "CorruptPayloadError",
    "Counters",
    "DecodedCache",
    "DocumentExtractionResult",
    "EnhancedSessionData",
    "EnhancedSessionManager",
    "Evicted",
    "ExtractionMethod",
    "InvalidKeyError",
    "InvalidTTLError",
    "MemoryBackend",
    "Namespace",
    "NotWritableError",
    "Params",
    "PlanJsonCodec",
    "SchemaInfo",
    "Scope",
    "SerializationError",
    "SessionBackend",
    "SessionManager",
    "SessionMapping",
    "SessionMetrics",
    "SessionStore",
    "SessionStoreError",
    "TieredBackend",
    "UnknownSchemaVersionError",
    "VersionToken",
    "Versioned",
    "VisionExtraction",
    "ZstdStage",
    "__version__",
    "available_backends",
    "naive_utc",
    "open_async_backend",
    "open_backend",
    "parse_url",
    "redact_url",
    "register_schema",
    "session_quality",
    "validate_key",
]

# Each public name and the module that defines it, imported on first access.
_MODULES: dict[str, str] = {
    **dict.fromkeys(["AsyncSessionBackend", "AsyncSessionStore", "open_async_backend"], "aio"),
    **dict.fromkeys(["Scope", "SessionBackend", "VersionToken", "Versioned"], "backend"),
    **dict.fromkeys(["AesGcmStage", "Codec", "ZstdStage"], "codec"),
    "PlanJsonCodec": "codec.legacy",
    "Counters": "counters",
    "DecodedCache": "decoded",
    **dict.fromkeys(
        [
            "BackendError",
            "BackendUnavailableError",
            "ConfigurationError",
            "ConflictError",
            "CorruptPayloadError",
            "InvalidKeyError",
            "InvalidTTLError",
            "NotWritableError",
            "SerializationError",
            "SessionStoreError",
            "UnknownSchemaVersionError",
        ],
        "errors",
    ),
    **dict.fromkeys(["MAX_KEY_BYTES", "Namespace", "validate_key"], "keys"),
    "SessionMapping": "mapping",
    **dict.fromkeys(["Evicted", "MemoryBackend"], "memory"),
    **dict.fromkeys(["available_backends", "open_backend"], "registry"),
    **dict.fromkeys(["SchemaInfo", "register_schema"], "schema"),
    "SessionStore": "store",
    "TieredBackend": "tiered",
    "NO_EXPIRY": "ttl",
    **dict.fromkeys(["BackendURL", "Params", "parse_url", "redact_url"], "urls"),
}

# The data-room host API moved to session_store.dataroom (whose __all__ lists it): the public
# names no module here defines any more. They warn, then work.
_MOVED_TO_DATAROOM = frozenset(__all__) - _MODULES.keys() - {"__version__"}


_lazy_getattr, __dir__ = lazy_attributes(
    __name__, {name: f"{__name__}.{module}" for name, module in _MODULES.items()}, __all__
)


def __getattr__(name: str) -> object:
    if name in _MOVED_TO_DATAROOM:
        import importlib  # here, not at the top: with warnings, it costs more than this module
        import warnings

        warnings.warn(
            f"session_store.{name} moved to session_store.dataroom; "
            f"import it with `from session_store.dataroom import {name}`",
            DeprecationWarning,
            stacklevel=2,
        )
        # not cached in globals(): every old-style access keeps warning
        return getattr(importlib.import_module("session_store.dataroom"), name)
    return _lazy_getattr(name)
