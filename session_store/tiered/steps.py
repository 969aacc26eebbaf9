"""The chain's I/O sequences, written once for the sync and the async chain.

Each sequence is a generator that *yields* the tier calls it needs and *receives* their
results (as :func:`session_store.websession.commit_steps` does for the web commit): the sync
chain performs them with calls (:meth:`~session_store.tiered.base.TieredBase._run`), the async
chain with awaits (:meth:`~session_store.aio.tiered_base.AsyncTieredBase._run`). A call that
raises is thrown back into the generator, so a sequence handles a tier's error where it made
the call, as plain code would. The decisions stay in :mod:`.policy`, :mod:`.breakers` and
:mod:`.nearcache`; what is here is their order and the I/O between them.

A call names its operation: a tier method (``get_with_ttl``, ``get_versioned``, ``set_if``,
``touch``) or an ordered write each chain brings in its own form (``write_after``,
``write_if_newer`` of :mod:`.writes` / :mod:`session_store.aio.tiered_writes`, and ``place``,
:func:`session_store.tiered.cas_steps.place`).

* :class:`OnTier`: through the chain's breaker (``_call``): the result, or :data:`DOWN`;
* :class:`OnArbiter`: on the arbiter whatever its breaker says (``_arbitrate``): unavailable
  is raised, typed;
* :class:`Direct`: on the tier itself, no breaker bookkeeping (reconciliation, which runs while
  the breaker decides).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from typing import Any, NamedTuple, Protocol, TypeVar

from session_store import stamps
from session_store.counters import Counters
from session_store.errors import BackendError, BackendUnavailableError
from session_store.stamps import is_tombstone, version_of
from session_store.tiered import policy
from session_store.tiered.breakers import Breakers
from session_store.tiered.near import NearState
from session_store.tiered.nearcache import NearCache
from session_store.tiered.policy import Copy, Layout
from session_store.ttl import NO_EXPIRY

__all__ = [
    "DOWN",
    "Chain",
    "Direct",
    "OnArbiter",
    "OnTier",
    "Step",
    "Steps",
    "collect",
    "delete",
    "drain_missed",
    "flush_missed",
    "reconcile",
    "save",
    "save_framed",
    "touch",
    "write",
]

R = TypeVar("R")

#: What an :class:`OnTier` call gives for a tier that is (or just went) down.
DOWN: Any = object()


class OnTier(NamedTuple):
    """``fn(*args)`` on tier ``tier`` through its breaker; ``force`` ignores the breaker."""

    tier: int
    fn: str
    args: tuple[Any, ...]
    what: str
    force: bool = False


class OnArbiter(NamedTuple):
    """``fn(*args)`` on the arbiter, whatever its breaker says (``key``: for the error)."""

    fn: str
    args: tuple[Any, ...]
    what: str
    key: str


class Direct(NamedTuple):
    """``fn(*args)`` on tier ``tier`` itself (errors propagate, no breaker bookkeeping)."""

    tier: int
    fn: str
    args: tuple[Any, ...]


Step = OnTier | OnArbiter | Direct
Steps = Generator[Step, Any, R]


class Chain(Protocol):
    """What a sequence reads of its chain (the sync and the async chain both are one)."""

    @property
    def layout(self) -> Layout: ...
    @property
    def breakers(self) -> Breakers: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def nearcache(self) -> NearCache: ...
    @property
    def near(self) -> NearState: ...
    @property
    def tombstone_ttl(self) -> float | None: ...
    @property
    def _clock(self) -> Callable[[], float]: ...
    def describe(self) -> str: ...
    def _all_down(self, what: str, key: str | None = None) -> BackendUnavailableError: ...


def collect(
    chain: Chain, key: str, skip: int | None = None, *, force: bool = False
) -> Steps[tuple[list[Copy], list[int]]]:
    """Every shared tier's copy of ``key`` (tiers that are down skipped, unless ``force``),
    and who answered."""
    copies: list[Copy] = []
    answered: list[int] = []
    health = chain.breakers.health
    for index in chain.layout.shared:
        if index == skip:
            continue
        was_down = health[index].down_since is not None
        found = yield OnTier(index, "get_with_ttl", (key,), "get_with_ttl", force)
        if was_down and found is not DOWN and health[index].down_since is None:
            # it just came back, and got the writes it missed: what it holds now counts
            found = yield OnTier(index, "get_with_ttl", (key,), "get_with_ttl")
        if found is DOWN:
            continue
        answered.append(index)
        if found is not None:
            copies.append(Copy(index, found[0], found[1]))
    return copies, answered


# -- reconciliation ----------------------------------------------------------------------------
def reconcile(chain: Chain, index: int, keys: Iterable[str]) -> Steps[int]:
    """Bring tier ``index`` up to the newest copy of each of ``keys`` (ordered writes), the
    deletes it missed included even if no other tier holds them; how many it took."""
    repaired = 0
    for key in keys:
        copies, _ = yield from collect(chain, key, skip=index)
        missed = chain.breakers.missed_tombstone(index, key, chain.tombstone_ttl or NO_EXPIRY)
        if missed is not None:  # the delete it missed, even if no other tier holds it
            copies.append(missed)
        best = policy.newest(copies)
        if best is None:
            continue
        ttl = policy.copy_ttl(best, chain.tombstone_ttl)
        try:
            if (yield Direct(index, "write_if_newer", (key, best.data, ttl))):
                repaired += 1
        except BackendError:
            break
    chain.counters.add("repairs", repaired)
    return repaired


def drain_missed(chain: Chain, index: int) -> Steps[None]:
    """Tier ``index`` took a write: bring up to date what it missed (refused) before."""
    missed = chain.breakers.take_missed(index)
    if missed:
        yield from reconcile(chain, index, missed)


def flush_missed(chain: Chain, log: Callable[..., None]) -> Steps[None]:
    """Bring every tier up to date with the writes it missed, before the chain (and the memory
    of what was missed) goes away: best effort, a tier still down keeps missing them."""
    for index in chain.layout.shared:
        missed = chain.breakers.take_all_missed(index)
        if not missed:
            continue
        try:
            yield from reconcile(chain, index, missed)
        except BackendError as exc:
            log(
                "closing: %d keys tier %d missed could not be brought up to date: %s",
                len(missed),
                index,
                exc.message,
            )


# -- writes ------------------------------------------------------------------------------------
def write(chain: Chain, key: str, data: bytes, ttl: float | None, what: str) -> Steps[bytes]:
    """A new write (see :func:`write_once`). If a lower tier holds a version newer than the one
    the arbiter stored while the arbiter still holds ours (a copy written by a host whose clock
    runs ahead, kept after the arbiter lost the key), the write is made again with a version
    past it, so that it is not hidden behind that older write."""
    for _ in range(3):
        data, ahead = yield from write_once(chain, key, data, ttl, what)
        if ahead is None:
            return data
        stamps.clock.observe(ahead)
        data = stamps.with_version(data, stamps.clock.now())
    return data


def write_once(
    chain: Chain, key: str, data: bytes, ttl: float | None, what: str, called: Any = ()
) -> Steps[tuple[bytes, bytes | None]]:
    """A new write of the framed ``data``: the arbiter first (ordered by arrival, see
    :func:`~session_store.tiered.writes.write_after`), then ordered copies of what it stored
    to the other shared tiers, lowest first. With the arbiter down (or skipped by its breaker),
    the first other tier that answers orders the write by arrival instead, and the rest take
    copies of it; the arbiter gets it when it answers again (the probe timer, within
    ``retry_after``), and an ``update`` deciding there meanwhile sees it in the lower tiers
    (:func:`~session_store.tiered.cas_steps.place_below`).

    ``called``: tiers already called with their breaker closed (the sync chain's straight-line
    save hands its calls' outcomes over to this sequence: :mod:`.straight`), not skipped.

    Returns the framed bytes written (the arbiter may have moved their version on), and the
    newer version a lower tier holds (see :func:`write`), if any. Raises unless a durable tier
    took it (any tier when none is durable): the first typed error a tier gave, else
    :class:`BackendUnavailableError`.

    (Every save runs this: the usual case, every tier up and nothing missed, touches no clock,
    lock or list beyond the calls themselves.)
    """
    layout, breakers = chain.layout, chain.breakers
    health, missed, durable = breakers.health, breakers.missed, layout.durable
    arbiter = layout.arbiter
    acked = False
    error: BackendError | None = None
    skipped: list[int] = []
    behind: list[int] = []  # lower tiers that kept a version at least as new as ours
    arbiter_took = False
    fn = "write_after"  # until a tier took it ordered by arrival: the others get copies of that
    for force in (False, True):
        # second round: no durable tier took it and some were skipped by their breaker; the
        # breaker saves time only when another tier can take the write, so try them now
        for index in skipped if force else layout.order:
            # (a tier that is up, or already called, is never skipped: no clock read for it)
            down = health[index].down_since is not None and index not in called
            breaker_skips = down and breakers.skipping(index)
            try:
                result = yield OnTier(index, fn, (key, data, ttl), what, force)
            except BackendError as exc:
                if index == arbiter:
                    # The arbiter answered and refused (wrong credentials, a read-only replica,
                    # out of memory): a write the other tiers took would be invisible to every
                    # process reading the arbiter, and a delete would come back. Fail loudly,
                    # nothing written (the arbiter is the first tier written).
                    chain.nearcache.drop(key)
                    breakers.refused(index, key, exc, remember=False)
                    raise
                breakers.refused(index, key, exc, data)
                error = error or exc
                continue
            if result is DOWN:
                if not force and policy.waits_for_force(layout, index, breaker_skips):
                    skipped.append(index)
                breakers.note_missed(index, key, data)
                continue
            if result is False:
                behind.append(index)
            elif isinstance(result, bytes):  # ordered by arrival here
                fn = "write_if_newer"
                arbiter_took = arbiter_took or index == arbiter
                if result is not data:
                    data = result  # its version moved past what the tier held
                    stamps.clock.observe(version_of(data))
            breakers.check_evictions(index)
            if missed[index]:  # (no generator for the usual case: nothing missed)
                yield from drain_missed(chain, index)
            if not durable or index in durable:  # policy.acknowledges
                acked = True
        if acked or not skipped:
            break
    if not acked:
        chain.nearcache.drop(key)
        if error is not None:
            raise error
        raise chain._all_down(what, key)
    ahead = (yield from newer_below(chain, key, data, behind)) if behind and arbiter_took else None
    return data, ahead


def newer_below(chain: Chain, key: str, data: bytes, behind: list[int]) -> Steps[bytes | None]:
    """The newest version among the ``behind`` tiers if it is newer than ``data``'s and the
    arbiter still holds ``data``'s version (no later write exists); else ``None``."""
    version = version_of(data)
    below: list[bytes] = []
    for index in behind:
        found = yield OnTier(index, "get_with_ttl", (key,), "get_with_ttl")
        if found is not DOWN and found is not None:
            below.append(found[0])
    newest = policy.newer_below(version, below)
    if newest is None:
        return None
    arbiter = chain.layout.arbiter
    held = yield OnTier(arbiter, "get_with_ttl", (key,), "get_with_ttl")
    if held is DOWN or held is None or version_of(held[0]) != version:
        return None
    return newest


def save(
    chain: Chain, key: str, value: bytes, ttl: float | None, own_ttl: float | None
) -> Steps[None]:
    """``set`` of checked arguments: a new write of ``value``, then the near cache. Every copy
    expires after ``ttl``; its frame records ``own_ttl`` (``ttl`` for a plain ``set``), the
    TTL a ``touch`` without one restarts it with."""
    start = chain._clock()
    began = chain.near.begin()
    data = stamps.frame(value, stamps.clock.now(), own_ttl)
    yield from save_framed(chain, key, value, data, ttl, start, began)


def save_framed(
    chain: Chain,
    key: str,
    value: bytes,
    data: bytes,
    ttl: float | None,
    start: float,
    began: int,
    called: Any = (),
) -> Steps[None]:
    """:func:`save` once ``value`` is framed as ``data`` (at ``start``, near sequence ``began``):
    the write (:func:`write`, inlined), the near copy. ``called``: :func:`write_once`'s."""
    for _ in range(3):
        data, ahead = yield from write_once(chain, key, data, ttl, "write", called)
        if ahead is None:
            break
        called = ()
        stamps.clock.observe(ahead)
        data = stamps.with_version(data, stamps.clock.now())
    chain.nearcache.after_write(key, data, value, ttl, start, began)
    chain.counters.add("writes")


def delete(chain: Chain, key: str) -> Steps[bool]:
    """``delete`` of a checked key: a tombstone newer than every copy read; whether a live
    value was there."""
    copies, _ = yield from collect(chain, key)
    best = policy.newest(copies)
    existed = best is not None and not is_tombstone(best.data)
    if best is not None:
        stamps.clock.observe(best.version)  # the tombstone is newer than every copy read
    tomb = stamps.tombstone(stamps.clock.now())
    yield from write(chain, key, tomb, chain.tombstone_ttl, "delete")
    chain.nearcache.drop(key)  # after the tombstones: fills that began before them are fenced
    chain.counters.add("deletes")
    chain.counters.add("tombstones")
    return existed


def touch(
    chain: Chain,
    key: str,
    ttl: float | None,
    fallback: float | None = None,
    session: bool = False,
) -> Steps[bool]:
    """``touch`` of checked arguments: restart the expiry of the newest copy of ``key`` in every
    tier that still holds that very copy; ``ttl=None``: the TTL the session was written with
    (its frame's record), else ``fallback`` (``None``: each tier's default TTL). A copy the
    chain did not write (unframed: a single-tier store's session, another program's ``SETEX``)
    records none, so a store passes its own TTL as ``fallback`` (``touch_session``): a touch
    never makes such a session immortal.

    ``session``: only a live session is touched (the store's touch, ``touch_session``): a copy
    holding no session, :func:`~session_store.stamps.session_bytes` ``None`` (the marker a
    login's id rotation leaves on the old id, a value frame around a tombstone), answers
    ``False`` and keeps its expiry, as on a single backend. Without it (the backend's raw
    ``touch``) only the chain's own tombstone is absent.

    Each shared tier gets a *conditional* touch (``touch_if``, :func:`~.writes.touch_if`) of the
    version read: a delete (its tombstone) or a newer write that landed after the read is never
    re-expired or extended, and a tier holding an older copy keeps its expiry. Whether any
    shared tier still held the copy read is the answer (``False``: it was deleted or replaced
    meanwhile); the near cache's copy of that version gets the same expiry, or is dropped if no
    shared tier holds it any more (:meth:`~.nearcache.NearCache.after_touch`)."""
    copies, answered = yield from collect(chain, key)
    if not answered:
        raise chain._all_down("touch", key)
    best = policy.newest(copies)
    live, ttl = (
        (False, None) if best is None else policy.touch_plan(best.data, ttl, fallback, session)
    )
    if best is None or not live:
        chain.nearcache.drop(key)
        return False
    head = policy.touch_head(best.data)
    touched = False
    for index in () if head is None else reversed(chain.layout.shared):
        try:
            result = yield OnTier(index, "touch_if", (key, head, ttl), "touch")
        except BackendError:
            chain.counters.add("errors")
            continue
        touched = touched or result is True
    chain.nearcache.after_touch(key, best.version, ttl, touched)
    return touched
