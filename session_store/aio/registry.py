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

from typing import Any

from session_store.aio.backend import AsyncSessionBackend
from session_store.errors import ConfigurationError
from session_store.registry import (
    CHAIN_OPTIONS_SCHEME,
    _chain_options,
    load_backend_factory,
    split_chain,
)
from session_store.urls import BackendURL, parse_url

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
    parsed = [parse_url(tier) for tier in split_chain(url)]  # all checked before any is opened
    options: dict[str, Any] = {}
    if parsed[0].scheme == CHAIN_OPTIONS_SCHEME:
        options = _chain_options(parsed.pop(0))
        if not parsed:
            raise ConfigurationError("a chain's options need at least one tier after them")
    elif len(parsed) == 1:
        return _open_one(parsed[0], overrides)
    from session_store.aio.tiered import AsyncTieredBackend

    opened: list[AsyncSessionBackend] = []
    try:
        for tier in parsed:
            opened.append(_open_one(tier, {}))
        return AsyncTieredBackend(opened, **{**options, **overrides})
    except BaseException:
        for backend in opened:  # no loop may be running here: close what can be closed now
            sync = getattr(backend, "sync", None)
            close = getattr(sync, "close", None)
            if close is not None:
                close()
        raise


def _open_one(parsed: BackendURL, overrides: Any) -> AsyncSessionBackend:
    factory = load_backend_factory(parsed.scheme, ASYNC_BACKENDS_GROUP)
    backend = factory(parsed, **overrides)
    if not isinstance(backend, AsyncSessionBackend):
        raise ConfigurationError(
            f"the async factory for scheme {parsed.scheme!r} returned "
            f"{type(backend).__name__}, not an AsyncSessionBackend"
        )
    return backend
