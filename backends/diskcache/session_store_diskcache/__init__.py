"""session-store-diskcache: the ``diskcache://`` backend, sessions in SQLite on local disk.

Registered in the ``session_store.backends`` entry-point group, so
``session_store.open_backend("diskcache:///var/lib/app/sessions")`` finds it once installed.
"""

from session_store_diskcache.backend import SCAN_PAGE_SIZE, DiskcacheBackend, version_token
from session_store_diskcache.disk import SafeDisk
from session_store_diskcache.settings import (
    DEFAULT_EVICTION_POLICY,
    DEFAULT_PREFIX,
    DEFAULT_SIZE_LIMIT,
    DEFAULT_TIMEOUT,
    EVICTION_POLICIES,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_EVICTION_POLICY",
    "DEFAULT_PREFIX",
    "DEFAULT_SIZE_LIMIT",
    "DEFAULT_TIMEOUT",
    "EVICTION_POLICIES",
    "SCAN_PAGE_SIZE",
    "DiskcacheBackend",
    "SafeDisk",
    "__version__",
    "version_token",
]
