"""Ordered writes: a tier write never replaces a newer version with an older one.

A backend may offer ``set_if_newer(key, value, ttl, head=, start=, end=)`` (Redis does, as one Lua
script): store ``value`` unless the current value begins with the same ``head`` bytes and its bytes
``[start:end]`` are at least ``value``'s. Any other backend gets the same effect from its
compare-and-set: read the version, compare, ``set_if`` against what was read, again on a conflict.

The arbiter takes blind writes (``set``, ``delete``) with :func:`write_ordered` instead: a write
that finds a version there at least as new as its own (another writer's clock runs ahead, or wrote
in the same millisecond with a larger node number) takes the next version above it, so the
arbiter's arrival order is the order of blind writes, and a write that starts after another one
returned always wins. The lower tiers then get the copy the arbiter kept, through the ordered write.
"""

from __future__ import annotations

from session_store import stamps
from session_store.backend import SessionBackend
from session_store.stamps import MAGIC, UNVERSIONED, VERSION_END, VERSION_START, version_of

__all__ = ["write_if_newer", "write_ordered"]

_ATTEMPTS = 16


def write_if_newer(tier: SessionBackend, key: str, data: bytes, ttl: float | None) -> bool:
    """Store the framed ``data`` in ``tier`` unless it holds a version at least as new.

    Returns whether it wrote (``False``: a newer or equal version is there, which is fine).
    """
    ordered = getattr(tier, "set_if_newer", None)
    if ordered is not None:
        return bool(ordered(key, data, ttl, head=len(MAGIC), start=VERSION_START, end=VERSION_END))
    version = version_of(data)
    for _ in range(_ATTEMPTS):
        read = tier.get_versioned(key)
        if read is not None and version_of(read.value) >= version:
            return False
        if tier.set_if(key, data, None if read is None else read.token, ttl):
            return True
    return False  # pragma: no cover - 16 writers in a row beat us: each of them is newer


def write_ordered(tier: SessionBackend, key: str, data: bytes, ttl: float | None) -> bytes:
    """Store the framed ``data`` in ``tier`` (the arbiter) after whatever it holds; returns the
    copy stored: ``data`` itself, or ``data`` under the next version above the tier's copy.

    One round trip when the tier's copy is older (the common case); a compare-and-set when it is
    not. A copy of this very version already there (a retry of this write) is left as it is. After
    16 lost races the write gives way: each winner wrote after it began, so it is ordered first.
    """
    if write_if_newer(tier, key, data, ttl):
        return data
    for _ in range(_ATTEMPTS):
        read = tier.get_versioned(key)
        current = UNVERSIONED if read is None else version_of(read.value)
        if current == version_of(data):
            return data  # this write is there already
        if current > version_of(data):
            stamps.clock.observe(current)
            data = stamps.reversion(data, stamps.clock.now())
        if tier.set_if(key, data, None if read is None else read.token, ttl):
            return data
    return data  # pragma: no cover - 16 writers in a row beat us: each of them is newer
