"""Find async backends through entry points and build them from URLs.

Async backends register in the entry-point group ``session_store.async_backends``, name = URL
scheme, value = ``factory(url: BackendURL, **overrides) -> AsyncSessionBackend``, exactly as sync
backends do in ``session_store.backends`` (the discovery, error messages and plugin-failure
handling are :mod:`session_store.registry`'s own). The URLs are the sync ones: the same
``redis://...?prefix=app:`` opens the sync backend with :func:`session_store.open_backend` and the
async one with :func:`open_async_backend`.

Chains (``a | b``, optionally led by ``tiered://?option=...``) open an
:class:`~session_store.aio.tiered.AsyncTieredBackend` exactly as :func:`session_store.open_backend`
opens the sync chain: the same strings, the same chain options, each tier from its async factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from session_store.aio.backend import AsyncSessionBackend
from session_store.registry import open_url

__all__ = ["ASYNC_BACKENDS_GROUP", "open_async_backend"]

#: The entry-point group async backends register in.
ASYNC_BACKENDS_GROUP = "session_store.async_backends"


def open_async_backend(url: str, **overrides: Any) -> AsyncSessionBackend:
    """Build an async backend from a URL, or an async tiered chain from a chain string.

    Args:
        url: ``scheme://...`` or ``url | url | ...`` (fastest tier first), as for
            :func:`session_store.open_backend`.
        **overrides: for one URL, parameters that override its query parameters; for a chain,
            keyword arguments of :class:`~session_store.aio.tiered.AsyncTieredBackend`.

    Raises:
        ConfigurationError: a malformed URL, an unknown scheme, a bad parameter.
    """
    return open_url(url, overrides, _ASYNC, _tiered, _discard)


def _tiered() -> Callable[..., AsyncSessionBackend]:
    from session_store.aio.tiered import AsyncTieredBackend  # only a chain needs it

    return AsyncTieredBackend


_ASYNC: tuple[type[AsyncSessionBackend], str, str, str] = (
    AsyncSessionBackend,
    ASYNC_BACKENDS_GROUP,
    "async factory",
    "an AsyncSessionBackend",
)


def _discard(backend: AsyncSessionBackend) -> None:
    """Close a tier opened before a failure: no loop may be running here, so only what can be
    closed now (the sync view of a memory tier)."""
    close = getattr(getattr(backend, "sync", None), "close", None)
    if close is not None:
        close()
