"""Which store a web integration opens when the app names none, and with which codec."""

from __future__ import annotations

import logging
import os

from session_store.codec import Codec
from session_store.codec.stages import ZstdStage

__all__ = ["WEB_COMPRESSION_THRESHOLD", "store_url", "web_codec"]

log = logging.getLogger("session_store.web")


def store_url(configured: str | None) -> str:
    """The store URL a web integration opens: the configured one, else ``SESSION_STORE_URL``,
    else ``memory://``, with a warning (once per process): sessions in one process's memory are
    lost on restart and not seen by the other workers of a pre-forking server."""
    url = configured or os.environ.get("SESSION_STORE_URL")
    if url:
        return url
    global _warned_memory
    if not _warned_memory:
        _warned_memory = True
        log.warning(
            "no SESSION_STORE_URL configured: sessions are kept in this process's memory "
            "(lost on restart, not shared between workers); set it to a shared store"
        )
    return "memory://"


_warned_memory = False


#: Web sessions are compressed only above this many bytes: a request-sized session (a few KB)
#: costs more CPU to compress on every request (~60 us for 2 KB here) than it saves on the wire.
WEB_COMPRESSION_THRESHOLD = 16 * 1024


def web_codec() -> Codec:
    """The codec of the stores the integrations open from a URL: the default one (strict JSON
    envelope, encryption when ``SESSION_STORE_KEYS`` is set) with compression above 16 KiB."""
    return Codec(legacy_schema="dict", compression=ZstdStage(threshold=WEB_COMPRESSION_THRESHOLD))
