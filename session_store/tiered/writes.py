"""Ordered writes: a tier write never replaces a newer version with an older one.

A backend may offer ``set_if_newer(key, value, ttl, head=, start=, end=)`` (Redis does, as one Lua
script): store ``value`` unless the current value begins with the same ``head`` bytes and its bytes
``[start:end]`` are at least ``value``'s. Any other backend gets the same effect from its
compare-and-set: read the version, compare, ``set_if`` against what was read, again on a conflict.
"""

from __future__ import annotations

from session_store.backend import SessionBackend
from session_store.stamps import MAGIC, VERSION_END, VERSION_START, version_of

__all__ = ["write_if_newer"]

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
