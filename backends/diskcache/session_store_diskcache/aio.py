"""The async diskcache backend: :class:`~session_store_diskcache.DiskcacheBackend` with every
call in a worker thread, so SQLite's disk I/O and lock waits never stall the event loop.

Opened from the sync URL (``diskcache:///var/lib/app/sessions?prefix=app:``) through
:func:`session_store.aio.open_async_backend`; the data, expiry, compare-and-set and cross-process
safety are the sync backend's. A call cancelled while its thread runs is finished by the thread
(each sync operation is one SQLite transaction), so it is applied wholly or not at all.
"""

from __future__ import annotations

from typing import Any, Self

from session_store.aio.threaded import ThreadedBackend
from session_store.errors import NotWritableError
from session_store.urls import BackendURL
from session_store_diskcache.backend import DiskcacheBackend

__all__ = ["AsyncDiskcacheBackend"]


class AsyncDiskcacheBackend(ThreadedBackend):
    """The async protocol over a :class:`DiskcacheBackend` (``aclose`` closes it)."""

    sync: DiskcacheBackend

    def __init__(self, backend: DiskcacheBackend) -> None:
        super().__init__(backend)

    @classmethod
    def from_url(cls, url: BackendURL, **overrides: Any) -> Self:
        """Build from ``diskcache:///path?...`` with the sync backend's parameters.

        Raises:
            NotWritableError: as the sync backend, its ``down_tier`` this twin of it.
        """
        try:
            return cls(DiskcacheBackend.from_url(url, **overrides))
        except NotWritableError as exc:
            if isinstance(exc.down_tier, DiskcacheBackend):
                exc.down_tier = cls(exc.down_tier)
            raise
