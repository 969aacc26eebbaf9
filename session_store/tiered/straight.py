"""The sync chain's ``save`` in a straight line, for the usual case: every tier it writes is up
and missed nothing, and each takes the write as it should.

:func:`~session_store.tiered.steps.save` is the sequence every chain runs (the async chain
awaits it); performing it costs a generator per call, a step tuple per tier call and the runner's
dispatch (:meth:`~session_store.tiered.base.TieredBase._run`), about a third of a save's client
instructions over ``memory | redis``. :func:`save` makes the same calls in the same order with
the same bookkeeping around each (the tier's latency histogram, the breaker's ``_unavailable``
and ``_mark_up``), and does what the sequence does with results it expects: the arbiter's ordered
write by arrival returns the bytes stored, every other tier's ordered copy ``True``, no tier
missed a key meanwhile. At the first other outcome (an error, a tier down, a lower tier holding a
newer version, a missed key to drain) it stops calling and hands every outcome so far to the
sequence (:func:`~session_store.tiered.steps.save_framed` through ``_run``'s ``primed``), which
decides from there exactly as if it had made those calls itself: one set of decisions, written
once, shared with the async chain.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from session_store import stamps
from session_store.errors import BackendUnavailableError
from session_store.stamps import version_of
from session_store.tiered import steps

if TYPE_CHECKING:
    from session_store.tiered.base import TieredBase

__all__ = ["save"]


def save(
    chain: TieredBase, key: str, value: bytes, ttl: float | None, own_ttl: float | None
) -> None:
    """:func:`~session_store.tiered.steps.save` of checked arguments, performed inline while
    everything goes as expected (see the module's docstring). A tier found down before its
    call is left to the sequence (its breaker decides whether to skip it)."""
    breakers = chain.breakers
    health = breakers.health
    order = chain.layout.order
    start = chain._clock()
    began = chain.near.seq  # (NearState.begin)
    data = written = stamps.clock.frame(value, own_ttl)
    done = 0  # the tiers of ``order`` that took it as expected (the arbiter first)
    last: tuple[int, bool, Any] | None = None  # the outcome that stopped the calls
    fn = "write_after"  # the arbiter (first in the order) orders it; the others get copies
    for index in order:
        if health[index].down_since is not None:  # its breaker decides: the sequence's call
            break
        bound = chain._bound.get((index, fn))
        if bound is None:
            bound = chain._bind(index, fn)
        begun = perf_counter()
        try:
            result = bound(key, written, ttl)
        except BackendUnavailableError as exc:  # (as _step: the tier is down, DOWN)
            last = index, False, chain._unavailable(index, exc, begun, "write", None)
            break
        except BaseException as exc:  # thrown into the sequence, as _run does
            last = index, True, exc
            break
        chain.tiers[index].counters.observe("write", perf_counter() - begun)
        if health[index].down_since is not None:  # marked down meanwhile: it is up now
            chain._mark_up(index)
        if done:
            if result is not True or breakers.missed[index]:
                last = index, False, result
                break
        elif type(result) is not bytes or breakers.missed[index]:
            last = index, False, result
            break
        else:
            written, fn = result, "write_if_newer"
        done += 1
    else:  # every tier took it as expected: what write_once and save do with that
        if written is not data:  # its version moved past what the arbiter held
            stamps.clock.observe(version_of(written))
        reads, seen = breakers.eviction_reads, breakers.evictions_seen
        for index in order:  # (check_evictions, called only where the count moved)
            if reads[index]() != seen[index]:
                breakers.check_evictions(index)
        chain.nearcache.after_write(key, written, value, ttl, start, began)
        chain.counters.add("writes")
        return
    # the outcomes so far, as the sequence would have had them: the arbiter's the bytes it
    # stored, every other tier's True, then the one that stopped the calls
    made: list[tuple[int, bool, Any]] = [(index, False, True) for index in order[:done]]
    if done:
        made[0] = order[0], False, written
    if last is not None:
        made.append(last)
    called = tuple(index for index, _, _ in made)
    chain._run(steps.save_framed(chain, key, value, data, ttl, start, began, called), made)
