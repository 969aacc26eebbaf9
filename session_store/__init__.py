"""session-store: server-side session storage with pluggable backends.

Open a backend from a URL or a chain string::

    from session_store import open_backend
    backend = open_backend("memory://?max_entries=1000 | diskcache:///var/lib/app/sessions")
"""

from session_store.aio import AsyncSessionBackend, AsyncSessionStore, open_async_backend
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken
from session_store.codec import AesGcmStage, Codec, ZstdStage
from session_store.counters import Counters
from session_store.dataroom import (
    EnhancedSessionManager,
    SessionManager,
    SessionMetrics,
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
    SerializationError,
    SessionStoreError,
    UnknownSchemaVersionError,
)
from session_store.keys import MAX_KEY_BYTES, Namespace, validate_key
from session_store.mapping import SessionMapping
from session_store.memory import Evicted, MemoryBackend
from session_store.registry import available_backends, open_backend
from session_store.schema import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
    SchemaInfo,
    VisionExtraction,
    register_schema,
)
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
    "Params",
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
