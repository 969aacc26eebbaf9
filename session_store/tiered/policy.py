"""The chain's decisions as pure functions: no I/O, no clock, no locks.

What the sync :class:`~session_store.tiered.TieredBackend` decides here, an async twin decides the
same way: which tier arbitrates, whether a tier may be called, which copy of a key is the newest,
which tiers need that copy, and whether a near-cache copy may be served.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from session_store.backend import Scope
from session_store.stamps import (
    HEADER_SIZE,
    MAGIC,
    UNVERSIONED,
    is_tombstone,
    own_ttl,
    session_bytes,
    unframe,
    version_of,
)
from session_store.ttl import NO_EXPIRY

__all__ = [
    "Copy",
    "Health",
    "Layout",
    "acknowledges",
    "arbiter_behind",
    "copy_ttl",
    "is_fresh",
    "layout",
    "may_call",
    "newer_below",
    "newest",
    "on_failure",
    "on_success",
    "overtaken",
    "repair_targets",
    "stale_tiers",
    "touch_head",
    "touch_plan",
    "ttl_from_left",
    "unheard_durable",
    "waits_for_force",
    "write_order",
]


@dataclass(frozen=True)
class Layout:
    """Which tier does what.

    Attributes:
        near: the process-local tiers above the first shared tier (the near cache).
        arbiter: the one tier that decides versioned operations, the same in every process: the
            first shared tier (the last tier if none is shared).
        shared: the arbiter and every tier below it; reads compare their copies.
        durable: the tiers that outlive the process; a write is acknowledged once one holds it
            (empty for a chain of process-local tiers only, which acknowledges on any tier).
    """

    near: tuple[int, ...]
    arbiter: int
    shared: tuple[int, ...]
    durable: tuple[int, ...]
    #: :func:`write_order`, made once: every new write walks it
    order: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", tuple(write_order(self)))


def layout(scopes: Sequence[Scope]) -> Layout:
    """The :class:`Layout` of a chain whose tiers have ``scopes``, fastest first."""
    shared_at = [i for i, scope in enumerate(scopes) if scope is not Scope.PROCESS]
    arbiter = shared_at[0] if shared_at else len(scopes) - 1
    return Layout(
        near=tuple(range(arbiter)),
        arbiter=arbiter,
        shared=tuple(range(arbiter, len(scopes))),
        durable=tuple(shared_at),
    )


@dataclass
class Health:
    """What a process knows about one tier: down since when, next try when (a breaker)."""

    down_since: float | None = None
    retry_at: float = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None


def may_call(health: Health, now: float) -> bool:
    """Whether a plain read or write may call the tier (up, or due for a probe)."""
    return health.down_since is None or now >= health.retry_at


def on_failure(health: Health, now: float, retry_after: float) -> bool:
    """Record a failed call; ``True`` if the tier just went down (log it once)."""
    first = health.down_since is None
    if first:
        health.down_since = now
    health.retry_at = now + retry_after
    return first


def on_success(health: Health, now: float) -> float | None:
    """Record a successful call; seconds it was down if it just came back, else ``None``."""
    if health.down_since is None:
        return None
    down_for = now - health.down_since
    health.down_since = None
    return down_for


@dataclass(frozen=True)
class Copy:
    """One tier's copy of a key: the stored (framed) bytes and the TTL it has left."""

    tier: int
    data: bytes
    left: float

    @property
    def version(self) -> bytes:
        return version_of(self.data)


def newest(copies: Sequence[Copy]) -> Copy | None:
    """The copy with the greatest version; on a tie the upper tier's (``copies`` top first)."""
    best: Copy | None = None
    best_version = b""
    for copy in copies:
        version = copy.version
        if best is None or version > best_version:
            best, best_version = copy, version
    return best


def stale_tiers(best: Copy, copies: Sequence[Copy], answered: Sequence[int]) -> list[int]:
    """The tiers among ``answered`` whose copy is older than ``best``, or that hold none, lowest
    first: the tiers a read repairs (each with a conditional write that loses to anything newer).
    """
    held = {copy.tier: copy.version for copy in copies}
    version = best.version
    return sorted(
        (
            tier
            for tier in answered
            if tier != best.tier and (tier not in held or held[tier] < version)
        ),
        reverse=True,
    )


def is_fresh(checked: float | None, now: float, trusted_until: float, max_staleness: float) -> bool:
    """Whether a near-cache copy last checked at ``checked`` (``None``: unchecked, or dropped by
    an invalidation) may be served at ``now``: before ``trusted_until``, the invalidation stream
    vouches for it (it was heard from within ``max_staleness``, and would have dropped the copy;
    see :class:`~session_store.tiered.near.NearState`), else if checked within
    ``max_staleness`` seconds."""
    return checked is not None and (now < trusted_until or now - checked < max_staleness)


def ttl_from_left(left: float) -> float | None:
    """The TTL to write a copy with, from the TTL another copy has left."""
    return None if left == NO_EXPIRY else max(left, 0.001)


def copy_ttl(copy: Copy, tombstone_ttl: float | None) -> float | None:
    """The TTL to copy ``copy`` to another tier with: a tombstone's own, else what it has left."""
    return tombstone_ttl if is_tombstone(copy.data) else ttl_from_left(copy.left)


def repair_targets(best: Copy, copies: Sequence[Copy], answered: Sequence[int]) -> list[int]:
    """The tiers a read gives ``best`` to, lowest first: for a value every answering tier with
    an older copy or none (:func:`stale_tiers`); for a tombstone only the tiers holding an older
    copy (a tier holding nothing needs no tombstone)."""
    if is_tombstone(best.data):
        return [copy.tier for copy in copies if copy.version < best.version]
    return stale_tiers(best, copies, answered)


def write_order(layout: Layout) -> list[int]:
    """The shared tiers in the order a new write reaches them: the arbiter first (it orders
    the write), then the others lowest first."""
    arbiter = layout.arbiter
    return [arbiter, *(i for i in reversed(layout.shared) if i != arbiter)]


def acknowledges(layout: Layout, index: int) -> bool:
    """Whether a write that tier ``index`` took may be acknowledged: it outlives the process
    (any tier, for a chain of process-local tiers only)."""
    return not layout.durable or index in layout.durable


def waits_for_force(layout: Layout, index: int, breaker_skipped: bool) -> bool:
    """Whether a write skipped by tier ``index``'s breaker (``breaker_skipped``) should be
    tried again, breaker or not, if no other tier acknowledges it: only a tier that could."""
    return breaker_skipped and acknowledges(layout, index)


def arbiter_behind(held: bytes | None, best: Copy | None) -> bool:
    """Whether the arbiter, holding the framed ``held`` (``None``: nothing), must first be
    brought up to ``best``, the newest copy of the lower shared tiers: it lost a live key, or
    holds an older version than they do."""
    if best is None:
        return False
    if held is None:
        return not is_tombstone(best.data)
    return best.version > version_of(held)


def newer_below(version: bytes, below: Sequence[bytes]) -> bytes | None:
    """The newest of the framed copies ``below`` if it is newer than ``version``, else ``None``:
    a lower tier kept a version a new write must move past."""
    newest_version = max((version_of(data) for data in below), default=b"")
    return newest_version if newest_version > version else None


def touch_plan(
    data: bytes, ttl: float | None, fallback: float | None, session: bool
) -> tuple[bool, float | None]:
    """Whether a ``touch`` that read the newest copy ``data`` restarts its expiry, and with which
    TTL: ``ttl``; ``None``: the TTL the copy records, else ``fallback`` (a copy the chain did
    not write records none: a store passes its own TTL, so a touch never makes such a session
    immortal).

    Never for the chain's tombstone. With ``session`` (``touch_session``: a store's touch),
    the caller's bytes are judged as a single backend judges its stored value
    (:func:`~session_store.touchrules.touch_decision`): no touch of a value holding no session
    (the marker a login's id rotation leaves on the old id), and the TTL a frame *in* the
    caller's bytes records comes before the chain's record."""
    value = unframe(data)
    if value is None or (session and session_bytes(value) is None):
        return False, None
    if ttl is not None:
        return True, ttl
    for own in (own_ttl(value) if session else None, own_ttl(data)):
        if own is not None:
            return True, own
    return True, fallback


def touch_head(data: bytes) -> bytes | None:
    """What a tier's copy must begin with for a ``touch`` that read the copy ``data`` to restart
    its expiry (a tier's ``touch_if``): the frame of a framed copy (magic, version, kind, own
    TTL), which no other write has, so that a tombstone or a newer write that landed after the
    read is never re-expired or extended; an unframed copy (written before chains framed, or by
    another program) whole. ``None`` for an unframed copy that could be the beginning of a
    framed one (shorter than a frame and a prefix of one's first bytes): no head tells it apart
    from a tombstone, so no tier is touched."""
    if version_of(data) != UNVERSIONED:
        return data[:HEADER_SIZE]
    if len(data) < HEADER_SIZE and (data[:4] == MAGIC or MAGIC.startswith(data)):
        return None
    return data


def unheard_durable(layout: Layout, answered: Sequence[int], skip: int) -> bool:
    """Whether a durable tier other than ``skip`` (the arbiter) did not answer a read: what it
    holds is unknown (a write made around the arbiter, or the only copy of a session the
    arbiter lost), so an ``update`` cannot be based on the arbiter's copy alone."""
    return any(index not in answered for index in layout.durable if index != skip)


def overtaken(held: bytes, data: bytes, base: bytes, absent: bool) -> bool:
    """Whether a lower tier's copy ``held`` shows a write that went around the arbiter after
    the read an ``update`` is based on, so that its compare-and-set, although it won on the
    arbiter, must not stand (its ``data`` would silently replace an acknowledged write).

    ``base`` is the version of what the update read (``absent``: it read nothing, and ``base``
    is the version of the tombstone it replaced, or empty). A copy of ``data`` itself, or one
    not newer than ``base``, is no conflict; after an "absent" read, neither is a newer
    tombstone (the key is still absent: the value just has to be newer than it)."""
    version = version_of(held)
    if version == version_of(data) or version <= base:
        return False
    return not (absent and is_tombstone(held))
