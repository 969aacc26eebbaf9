"""``memory://`` URL parameters -> the memory backend's options (kept apart from
:mod:`session_store.memory`, which builds the backend from them)."""

from __future__ import annotations

from typing import Any

from session_store.errors import ConfigurationError
from session_store.memory_entries import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, MemoryOptions
from session_store.urls import BackendURL, Params

__all__ = ["options_from_url"]


def options_from_url(url: BackendURL, overrides: dict[str, Any]) -> MemoryOptions:
    """The options of ``memory://?max_entries=N&max_bytes=N&default_ttl=S`` (and an
    ``on_evict`` override), every parameter checked before anything is built."""
    if url.netloc or url.path not in ("", "/"):
        raise ConfigurationError(
            "memory:// takes no host or path, only parameters", backend=url.redacted()
        )
    extra = dict(overrides)
    on_evict = extra.pop("on_evict", None)
    params = Params(url, extra)
    options = MemoryOptions(
        max_entries=params.take_int("max_entries", DEFAULT_MAX_ENTRIES),
        max_bytes=params.take_optional_int("max_bytes", DEFAULT_MAX_BYTES),
        default_ttl=params.take_optional_float("default_ttl"),
        on_evict=on_evict,
    )
    params.finish()
    return options
