"""Ordered writes: a tier write never replaces a newer version with an older one.

Two kinds of writes reach a tier:

* a **copy** of a version that exists (a promotion, a repair, the lower tiers' share of a new
  write): :func:`write_if_newer`, which loses to anything at least as new;
* a **new write** at the arbiter (``set``, ``delete``): :func:`write_after`, which always lands
  and is ordered by *arrival*: if the arbiter holds a version at least as new (a writer whose
  clock is ahead, or the same millisecond), the new write takes that version's clock plus one.
  So a save or delete acknowledged after another is never silently dropped as "older".

A backend may offer ``set_if_newer(key, value, ttl, head=, start=, end=)`` (Redis does, as one Lua
script): store ``value`` unless the current value begins with the same ``head`` bytes and its bytes
``[start:end]`` are at least ``value``'s. Any other backend gets the same effect from its
compare-and-set: read the version, compare, ``set_if`` against what was read, again on a conflict.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from session_store.backend import SessionBackend
from session_store.backend_base import trusted
from session_store.errors import BackendUnavailableError, CorruptPayloadError
from session_store.stamps import MAGIC, VERSION_END, VERSION_START, version_of, with_version
from session_store.tiered.cas_steps import TierSteps, place

__all__ = [
    "ORDERED_WRITES",
    "bound",
    "bump",
    "holds_newer",
    "placed_after",
    "run_on",
    "touch_if",
    "write_after",
    "write_after_cas",
    "write_if_newer",
]

#: Where the version's clock ends (the 4-byte node follows it).
CLOCK_END = VERSION_START + 8

_ATTEMPTS = 16


def write_if_newer(tier: SessionBackend, key: str, data: bytes, ttl: float | None) -> bool:
    """Store the framed ``data`` in ``tier`` unless it holds a version at least as new.

    Returns whether it wrote (``False``: a newer or equal version is there, which is fine).
    """
    ordered = _ordered(tier, "set_if_newer")
    if ordered is not None:
        return _if_newer_by(ordered, key, data, ttl)
    calls = trusted(tier)  # the chain checked the key
    for _ in range(_ATTEMPTS):
        read = calls.get_versioned(key)
        if read is not None and holds_newer(read.value, data):
            return False
        if calls.set_if(key, data, None if read is None else read.token, ttl):
            return True
    return False  # pragma: no cover - 16 writers in a row beat us: each of them is newer


def holds_newer(held: bytes, data: bytes) -> bool:
    """Whether a tier holding the framed ``held`` keeps it over ``data`` (at least as new)."""
    return version_of(held) >= version_of(data)


def placed_after(held: bytes, data: bytes) -> bytes:
    """``data`` as a new write lands over the framed ``held``: unchanged if newer, else with
    ``held``'s clock plus one (and ``data``'s node)."""
    version = version_of(held)
    if version >= version_of(data):
        return with_version(data, bump(version, data[CLOCK_END:VERSION_END]))
    return data


def bump(version: bytes, node: bytes) -> bytes:
    """The version right after ``version`` (its clock plus one), with ``node``; a
    :class:`CorruptPayloadError` if ``version`` holds the last clock value (a forged or
    corrupted frame: nothing can follow it)."""
    clock = int.from_bytes(version[: CLOCK_END - VERSION_START], "big") + 1
    if clock >> (8 * (CLOCK_END - VERSION_START)):
        raise CorruptPayloadError(
            "a stored copy carries the last version a clock can give (a forged or corrupted "
            "frame): no write can be ordered after it; delete the key (session-store delete)"
        )
    return clock.to_bytes(CLOCK_END - VERSION_START, "big") + node


def write_after(tier: SessionBackend, key: str, data: bytes, ttl: float | None) -> bytes:
    """Store the framed ``data`` in ``tier`` after whatever it holds; the framed bytes stored.

    Their version is ``data``'s, or, if ``tier`` holds one at least as new, that one's clock
    plus one (the node kept).
    """
    after = _ordered(tier, "set_after")
    if after is not None:
        return _after_by(after, key, data, ttl)
    return write_after_cas(tier, key, data, ttl)


def _after_by(after: Callable[..., Any], key: str, data: bytes, ttl: float | None) -> bytes:
    """:func:`write_after` through the tier's own ordered write ``after`` (``set_after``)."""
    stored = after(
        key, data, ttl, head=_HEAD, start=VERSION_START, end=VERSION_END, clock_end=CLOCK_END
    )
    return data if stored == data[VERSION_START:VERSION_END] else with_version(data, stored)


def _if_newer_by(ordered: Callable[..., Any], key: str, data: bytes, ttl: float | None) -> bool:
    """:func:`write_if_newer` through the tier's own ordered write ``ordered``."""
    return bool(ordered(key, data, ttl, head=_HEAD, start=VERSION_START, end=VERSION_END))


#: Each tier's ordered-write method (``None``: it has none), by the tier's id: looked up once
#: per tier, not on every write (the tier is kept beside it, so an id is never reused wrongly).
_METHODS: dict[tuple[int, str], tuple[SessionBackend, Callable[..., Any] | None]] = {}
_HEAD = len(MAGIC)


def _ordered(tier: SessionBackend, name: str) -> Callable[..., Any] | None:
    """``tier``'s unchecked ``name`` if it offers one (the chain checked the key), else its own
    public one, else ``None``."""
    known = _METHODS.get((id(tier), name))
    if known is None or known[0] is not tier:
        if len(_METHODS) > 4096:  # chains come and go (tests): forget the old ones
            _METHODS.clear()
        method = getattr(trusted(tier), name, None) or getattr(tier, name, None)
        known = _METHODS[id(tier), name] = (tier, method)
    return known[1]


def write_after_cas(tier: SessionBackend, key: str, data: bytes, ttl: float | None) -> bytes:
    """:func:`write_after` with the tier's compare-and-set (any backend)."""
    calls = trusted(tier)  # the chain checked the key
    for _ in range(_ATTEMPTS * 4):
        read = calls.get_versioned(key)
        if read is not None:
            data = placed_after(read.value, data)
        if calls.set_if(key, data, None if read is None else read.token, ttl):
            return data
    raise BackendUnavailableError(  # pragma: no cover - 64 writers in a row beat us
        "too many concurrent writers to order this write", key=key, backend=tier.describe()
    )


def touch_if(tier: SessionBackend, key: str, head: bytes, ttl: float | None) -> bool:
    """Restart the expiry of ``key`` in ``tier`` only if its copy begins with ``head`` (the
    frame of the copy a ``touch`` read: :func:`~.policy.touch_head`): the tier's own
    ``touch_if`` (one atomic step in memory, diskcache and Redis), else the protocol's default,
    which makes it with the tier's compare-and-set."""
    calls = _ordered(tier, "touch_if")
    assert calls is not None  # (every SessionBackend has one: the protocol's default)
    return bool(calls(key, head, ttl))


def run_on(tier: SessionBackend, sequence: TierSteps) -> bool | bytes:
    """Perform a sequence of calls on one tier (:func:`~.cas_steps.place`)."""
    calls = trusted(tier)  # the chain checked the key
    value: Any = None
    while True:
        try:
            name, args = sequence.send(value)
        except StopIteration as done:
            result: bool | bytes = done.value
            return result
        value = getattr(calls, name)(*args)


def _place(tier: SessionBackend, *args: Any) -> bool | bytes:
    return run_on(tier, place(*args))


def bound(name: str, tier: SessionBackend) -> Callable[..., Any]:
    """The ordered write ``name`` of :data:`ORDERED_WRITES` on ``tier``, as a callable taking
    the rest of its arguments, with the tier's own method looked up once: what a chain calls
    for every save (:func:`write_after` and :func:`write_if_newer` without their lookup).

    A tier whose trusted calls (:func:`~session_store.backend_base.trusted`) include
    ``write_after(key, data, ttl)`` gets that for :func:`write_after`: the same write of the
    framed ``data``, returning the framed bytes stored as :func:`write_after` does, in one call
    (the Redis backend's, unless a subclass overrides its ``set_after``)."""
    if name == "write_after":  # the tier's own, whole: one call per save (Redis has it)
        whole = getattr(trusted(tier), "write_after", None)
        if whole is not None:
            return whole  # type: ignore[no-any-return]
    if name in _OWN_METHOD:
        method = _ordered(tier, _OWN_METHOD[name])
        if method is not None:
            return partial(_WRITE_BY[name], method)
    return partial(ORDERED_WRITES[name], tier)


#: The ordered writes a tier may offer itself, and how each is called through that method.
_OWN_METHOD = {"write_after": "set_after", "write_if_newer": "set_if_newer"}
_WRITE_BY: dict[str, Callable[..., Any]] = {
    "write_after": _after_by,
    "write_if_newer": _if_newer_by,
}


#: The ordered writes a sequence of :mod:`session_store.tiered.steps` names, in their sync form
#: (with the conditional touch, an ordered write of the expiry alone).
ORDERED_WRITES: dict[str, Callable[..., Any]] = {
    "write_after": write_after,
    "write_if_newer": write_if_newer,
    "place": _place,
    "touch_if": touch_if,
}
