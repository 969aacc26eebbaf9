"""The chain's reads, written once for the sync and the async chain (as :mod:`.steps` writes
its writes): the near-cache hit path, and the I/O sequences of a read the near cache cannot
serve, which the sync chain performs with calls and the async chain with awaits.

* :func:`near_get`: the hit path, a closure over what a near-cache hit touches. A hit costs no
  generator, no bound method and no attribute lookup (a warm hit is a fraction of a
  microsecond: they showed); anything it does not serve goes to the chain's ``past`` function.
* :func:`get`, :func:`get_with_ttl`, :func:`ttl`: single-key reads. :func:`read` reads every
  shared tier that is up, keeps the newest copy (:func:`~.policy.newest`), repairs the tiers
  holding an older one by ordered writes (:func:`repair`) and fills the near cache.
* :func:`get_many`: what the near cache holds fresh, the rest from every shared tier that is up,
  the newest copy of each key; :func:`listing`: the keys of every shared tier (``scan``), and
  whether the listing was proven whole.

Every key reaching these was checked once by the chain's public method (or its caller's).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from session_store import stamps
from session_store.backend import SessionBackend
from session_store.backend_base import trusted
from session_store.counters import Counters
from session_store.errors import BackendError, BackendUnavailableError
from session_store.stamps import is_tombstone, unframe
from session_store.tiered import policy
from session_store.tiered.policy import Copy
from session_store.tiered.steps import DOWN, Chain, OnTier, Steps, collect

__all__ = [
    "LISTING_BATCH",
    "ReadChain",
    "batches",
    "get",
    "get_many",
    "get_with_ttl",
    "listed",
    "listing",
    "near_get",
    "read",
    "repair",
    "ttl",
]

T = TypeVar("T")

log = logging.getLogger("session_store.tiered")

#: Keys a listing checks for a live value at a time (one ``get_many`` each).
LISTING_BATCH = 500


class _Counted(Protocol):
    """A tier, sync or async: what a repair counts on it."""

    @property
    def counters(self) -> Counters: ...


class FastHits(Protocol):
    """The chain's counters: near-cache hits are counted without a lock."""

    fast_hits: int


class ReadChain(Chain, Protocol):
    """What a read reads of its chain, beyond what every sequence does."""

    @property
    def tiers(self) -> Sequence[_Counted]: ...
    @property
    def _near0(self) -> SessionBackend | None: ...
    def _stream_after_fork(self) -> None: ...


# -- the hit path --------------------------------------------------------------------------------
def near_get(
    chain: ReadChain, near: SessionBackend, past: Callable[[str, bytes | None], T]
) -> Callable[[str], bytes | T]:
    """The chain's ``get`` of a checked key as a closure over the near-cache hit path: a copy in
    ``near`` checked recently enough (:func:`~.policy.is_fresh`, inlined: the stream heard from
    within the bound, else the copy's own age; one clock read, no lock) is the answer; else
    ``past(key, copy)``, with the copy the near cache holds but cannot vouch for, if any (the
    sync chain reads the shared tiers there; the async chain hands back the sequence to await).

    When ``near`` offers a lock-free ``hit_reader_at`` or ``hit_reader`` (the built-in memory
    backend does), a hit is one dictionary lookup in it, not a whole ``get``, and one reading of
    the clock serves both the tier's expiry and the stream's word; anything it does not serve
    goes through the tier's public ``get`` (which checks a key it does not hold, and counts)."""
    near_read = near.get
    state = chain.near
    checked_get = state.checked.get
    counters: FastHits = chain.counters  # type: ignore[assignment]
    clock = chain._clock
    staleness = state.max_staleness  # (fixed for the chain's life)

    def hit(key: str) -> bytes | T:
        try:
            data = near_read(key)
        except BackendUnavailableError:
            return past(key, None)  # the shared tiers answer
        if data is not None:
            checked = checked_get(key)
            if checked is not None:
                now = clock()
                if now < state.trusted_until or now - checked < staleness:
                    counters.fast_hits += 1  # no lock on the hot path (see the chain's counters)
                    return data  # the near cache holds the caller's bytes (see NearCache)
        return past(key, data)

    peek_at = _peek_at(near, clock)
    if peek_at is None:
        return hit

    def peeking(key: str) -> bytes | T:
        now = clock()  # one reading: the near tier's expiry and the stream's word
        data = peek_at(key, now)
        if data is None:
            return hit(key)  # the tier's own get: a miss, an expired copy, a bad key
        checked = checked_get(key)
        if checked is not None and (now < state.trusted_until or now - checked < staleness):
            counters.fast_hits += 1
            return data
        return past(key, data)

    return peeking


def _peek_at(
    near: SessionBackend, clock: Callable[[], float]
) -> Callable[[str, float], bytes | None] | None:
    """The near tier's lock-free read of a live copy given the time (``hit_reader_at``, which
    the built-in memory backend offers when it runs on the chain's clock: the hit path reads
    the clock once for both), else its ``hit_reader`` (which reads its own clock), else
    ``None``."""
    at = getattr(near, "hit_reader_at", None)
    read_at: Callable[[str, float], bytes | None] | None = None if at is None else at(clock)
    if read_at is not None:
        return read_at
    reader = getattr(near, "hit_reader", None)
    if reader is None:
        return None
    peek: Callable[[str], bytes | None] = reader()
    return lambda key, _now: peek(key)


# -- single-key reads --------------------------------------------------------------------------
def get(chain: ReadChain, key: str, near_copy: bytes | None) -> Steps[bytes | None]:
    """``get`` once the near cache could not serve ``key`` (``near_copy``: a copy it holds that
    is not known fresh, counted as a revalidation): the newest copy of the shared tiers."""
    if near_copy is not None:
        chain.counters.add("revalidations")
    best = yield from read(chain, key)
    return None if best is None else unframe(best.data)


def get_with_ttl(chain: ReadChain, key: str) -> Steps[tuple[bytes, float] | None]:
    """``get_with_ttl`` of a checked key: the newest copy and the TTL it has left."""
    best = yield from read(chain, key)
    if best is None:
        return None
    value = unframe(best.data)
    return None if value is None else (value, best.left)


def ttl(chain: ReadChain, key: str) -> Steps[float | None]:
    """``ttl`` of a checked key: what the newest copy has left (``None``: absent or deleted)."""
    copies, answered = yield from collect(chain, key)
    if not answered:
        raise chain._all_down("read a TTL", key)
    best = policy.newest(copies)
    if best is None or is_tombstone(best.data):
        return None
    return best.left


def read(chain: ReadChain, key: str) -> Steps[Copy | None]:
    """The newest copy of ``key`` (``None``: absent or deleted); repairs older copies and
    fills the near cache on the way. No shared tier answering, the near copy is all there is."""
    chain._stream_after_fork()
    start = chain._clock()
    began = chain.near.begin()
    copies, answered = yield from collect(chain, key)
    if not answered:
        for index in chain.layout.near:
            found = yield OnTier(index, "get_with_ttl", (key,), "get_with_ttl")
            if found is not DOWN and found is not None:
                chain.counters.add("hits")
                return chain.nearcache.copy_of(key, index, found)
        raise chain._all_down("read", key)
    best = policy.newest(copies)
    if best is None:
        chain.nearcache.drop(key)
        chain.counters.add("misses")
        return None
    stamps.clock.observe(best.version)
    yield from repair(chain, key, best, copies, answered)
    if is_tombstone(best.data):
        chain.nearcache.drop(key)
        chain.counters.add("misses")
        return None
    chain.nearcache.install(key, best, began, start)
    chain.counters.add("hits")
    return best


def repair(
    chain: ReadChain, key: str, best: Copy, copies: list[Copy], answered: list[int]
) -> Steps[None]:
    """Give the tiers holding an older copy (or none) the newest one, by ordered writes; a tier
    that refuses (read-only, full) is skipped: the read goes on without the repair."""
    ttl = policy.copy_ttl(best, chain.tombstone_ttl)
    for index in policy.repair_targets(best, copies, answered):
        try:
            wrote = yield OnTier(index, "write_if_newer", (key, best.data, ttl), "write_if_newer")
        except BackendError as exc:
            chain.counters.add("errors")
            log.debug("repair of %r in tier %d failed: %s", key, index, exc.message)
            continue
        if wrote is True:
            chain.counters.add("repairs")
            chain.tiers[index].counters.add("promotions")
            chain.counters.add("promotions")


# -- bulk reads and the listing ----------------------------------------------------------------
def _fresh_near(chain: ReadChain, keys: list[str]) -> dict[str, bytes]:
    """The caller's bytes of the ``keys`` the near cache holds fresh."""
    near = chain._near0
    if near is None or not keys:
        return {}
    try:
        got = trusted(near).get_many(keys)
    except BackendUnavailableError:
        return {}
    now, state = chain._clock(), chain.near
    checked = state.checked.get
    return {
        key: data
        for key, data in got.items()
        if policy.is_fresh(checked(key), now, state.trusted_until, state.max_staleness)
    }


def get_many(chain: ReadChain, keys: list[str]) -> Steps[dict[str, bytes]]:
    """``get_many`` of checked keys: the near cache's fresh copies, the rest from every shared
    tier that is up (the newest copy of each)."""
    wanted = list(dict.fromkeys(keys))
    near_hits = _fresh_near(chain, wanted)
    remaining = [key for key in wanted if key not in near_hits]
    found: dict[str, bytes] = {}  # framed copies from the shared tiers
    if remaining:
        copies: dict[str, list[Copy]] = {}
        reached = False
        for index in chain.layout.shared:
            got = yield OnTier(index, "get_many", (remaining,), "get_many")
            if got is DOWN:
                continue
            reached = True
            for key, data in got.items():
                copies.setdefault(key, []).append(Copy(index, data, math.inf))
        if not reached:
            raise chain._all_down("read")
        for key, held in copies.items():
            best = policy.newest(held)
            if best is not None:
                found[key] = best.data
    out: dict[str, bytes] = {}
    for key in wanted:
        stored = found.get(key)
        value = near_hits.get(key) if stored is None else unframe(stored)
        if value is not None:
            out[key] = value
    chain.counters.add("hits", len(out))
    chain.counters.add("misses", len(wanted) - len(out))
    return out


def listing(chain: Chain, prefix: str) -> Steps[tuple[list[str], bool]]:
    """The keys under ``prefix`` of every shared tier, and whether the listing is proven whole:
    ``False`` when a shared tier was down (it may hold keys written while another was down) or
    a tier said its own listing was not complete (a Redis Cluster mid-resharding). Each tier's
    call is ``listed(tier, prefix)``: its keys and its own ``complete``, a helper each chain
    brings in its own form."""
    seen: dict[str, None] = {}
    reached = False
    complete = True
    for index in chain.layout.shared:
        found = yield OnTier(index, "listed", (prefix,), "scan")
        if found is DOWN:
            complete = False
            continue
        keys, proven = found
        reached = True
        complete = complete and proven
        seen.update(dict.fromkeys(keys))
    if not reached:
        raise chain._all_down("scan")
    return list(seen), complete


def batches(keys: list[str]) -> Iterator[list[str]]:
    """``keys`` a listing batch at a time (each checked for a live value by one ``get_many``)."""
    for start in range(0, len(keys), LISTING_BATCH):
        yield keys[start : start + LISTING_BATCH]


def listed(tier: SessionBackend, prefix: str) -> tuple[list[str], bool]:
    """A sync tier's keys under ``prefix``, and whether its listing says it is complete."""
    found = trusted(tier).scan(prefix)
    return list(found), getattr(found, "complete", None) is not False
