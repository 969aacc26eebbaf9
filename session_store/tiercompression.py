"""The compression a store writes with by default, per tier (issue 17; docs/performance.md,
"Per tier"): decided from the backend a store is given, never from the payload, and only for
what is written (every default reads zstd payloads, so stores of any setting read each other).
"""

from __future__ import annotations

import sys

from session_store.codec import ZstdStage
from session_store.memory import MemoryBackend

__all__ = ["default_compression"]


def default_compression(backend: object, *, near_cache: bool = True) -> ZstdStage | bool:
    """The compression of the codec a store builds for itself, per tier (docs/performance.md,
    "Per tier"). Every default reads zstd payloads; it decides only what is written.

    * A **Redis** backend alone (standalone, Sentinel, Cluster; sync, async, or a sync one run
      in threads): written uncompressed (:meth:`ZstdStage.read_only`), as cachelib,
      dogpile.cache and Flask-Session write. On loopback or a LAN the bytes zstd keeps off the
      wire cost less than its CPU (measured: +36-49 % of a store + load end to end,
      benchmarks/bench_e2e.py); what it buys is Redis memory (about 4.6x less: 14 KiB instead
      of 64 KiB per medium session), which a deployment opts into: ``compression=True``.
    * ``memory://`` alone, with the decoded near cache on: uncompressed too. There is no wire,
      and the near cache keeps each session's JSON body anyway; uncompressed, that body is a
      view of the stored payload, so a session costs its JSON size once (measured with
      tracemalloc, medium session: 59.7 KiB, against 78.1 KiB for a 14 KiB zstd payload plus
      the body), and a save skips zstd.
    * ``memory://`` with the near cache off, diskcache, and a chain (whose tiers share one
      payload, a memory or disk tier among them): zstd level 1 above 1 KiB, which stores a
      quarter of the bytes (14.4 KiB per medium session in ``memory://`` without the near
      cache).

    A backend says which it is by a class attribute, ``compress_by_default`` (``True`` when
    absent): the Redis plugin's backends set it to ``False``; a third-party network backend
    may too (CONTRIBUTING.md). A codec passed to the store is used as it is.
    """
    tier = _unwrapped(backend)
    if near_cache and type(tier) is MemoryBackend:
        return ZstdStage.read_only()
    return True if getattr(tier, "compress_by_default", True) else ZstdStage.read_only()


def _unwrapped(backend: object) -> object:
    """The sync backend an async wrapper runs (``ThreadedBackend``), else ``backend``."""
    threaded = getattr(sys.modules.get("session_store.aio.threaded"), "ThreadedBackend", None)
    if isinstance(threaded, type) and isinstance(backend, threaded):
        return getattr(backend, "sync", backend)
    return backend
