"""Find async backends through entry points and build them from URLs.

Async backends register in the entry-point group ``session_store.async_backends``, name = URL
scheme, value = ``factory(url: BackendURL, **overrides) -> AsyncSessionBackend``, exactly as sync
backends do in ``session_store.backends`` (the discovery, error messages and plugin-failure
handling are :mod:`session_store.registry`'s own). The URLs are the sync ones: the same
``redis://...?prefix=app:`` opens the sync backend with :func:`session_store.open_backend` and the
async one with :func:`open_async_backend`.

Chains (``a | b``) need the async tiered backend, which is not built yet: a chain string is a
:class:`~session_store.errors.ConfigurationError` that says so.
"""

from __future__ import annotations

from typing import Any

from session_store.aio.backend import AsyncSessionBackend
from session_store.errors import ConfigurationError
from session_store.registry import load_backend_factory, split_chain
from session_store.urls import parse_url

__all__ = ["ASYNC_BACKENDS_GROUP", "open_async_backend"]

#: The entry-point group async backends register in.
ASYNC_BACKENDS_GROUP = "session_store.async_backends"


def open_async_backend(url: str, **overrides: Any) -> AsyncSessionBackend:
    """Build an async backend from a URL; keyword arguments override its parameters.

    Raises:
        ConfigurationError: a malformed URL, an unknown scheme, a bad parameter, or a chain.
    """
    tiers = split_chain(url)
    if len(tiers) > 1:
        raise ConfigurationError(
            "async chains (a | b) are not available yet: open one backend per async store"
        )
    parsed = parse_url(tiers[0])
    factory = load_backend_factory(parsed.scheme, ASYNC_BACKENDS_GROUP)
    backend = factory(parsed, **overrides)
    if not isinstance(backend, AsyncSessionBackend):
        raise ConfigurationError(
            f"the async factory for scheme {parsed.scheme!r} returned "
            f"{type(backend).__name__}, not an AsyncSessionBackend"
        )
    return backend
