"""The sync chain's straight-line save (session_store.tiered.straight) decides as the shared
sequence (steps.save) does: each case runs both ways on fresh chains and compares what every
tier holds, the breakers, the counters and the error, and how often each tier was called."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from session_store import MemoryBackend, TieredBackend, stamps
from session_store.errors import BackendError, BackendUnavailableError
from session_store.tiered import steps, straight
from tests.tiered.support import Clock, SharedMemory


class Flaky(SharedMemory):
    """A shared tier whose next ``fail`` compare-and-sets raise ``error``; counts them."""

    def __init__(self, error: type[BackendError] | None = None, fail: int = 0) -> None:
        super().__init__()
        self.error, self.fail, self.calls = error, fail, 0

    def set_if(self, key: str, value: bytes, token: Any, ttl: float | None = None) -> bool:
        self.calls += 1
        if self.fail and self.error is not None:
            self.fail -= 1
            raise self.error("refused" if self.error is BackendError else "down", key=key)
        return super().set_if(key, value, token, ttl)


def _sequence(chain: TieredBackend, key: str, value: bytes, ttl: float | None) -> None:
    chain._run(steps.save(chain, key, value, ttl, ttl))


def _straight(chain: TieredBackend, key: str, value: bytes, ttl: float | None) -> None:
    straight.save(chain, key, value, ttl, ttl)


Save = Callable[[TieredBackend, str, bytes, float | None], None]


def _outcome(save: Save, tiers: list[Any], before: Callable[[list[Any]], None]) -> Any:
    chain = TieredBackend([MemoryBackend(), *tiers], clock=Clock(), invalidation=False)
    before(tiers)
    try:
        save(chain, "k", b"new", 60)
        error = None
    except BackendError as exc:
        error = (type(exc), exc.message)
    held = [stamps.session_bytes(t.get("k") or b"") if t.get("k") else None for t in chain.tiers]
    return (
        error,
        held,
        [state["down"] for state in chain.tier_states()],
        [state["missed"] for state in chain.tier_states()],
        chain.counters.as_dict(),
        [getattr(t, "calls", None) for t in tiers],
        {k: v["count"] for k, v in chain.tiers[1].counters.latency().items()},
    )


def _newer_below(tiers: list[Any]) -> None:
    """The lower tier holds a version ahead of this process's clock (a host whose clock runs
    ahead wrote it after the arbiter lost the key)."""
    ahead = (int.from_bytes(stamps.clock.now()[:8], "big") + (5_000 << 16)).to_bytes(8, "big")
    tiers[1].set("k", stamps.frame(b"ahead", ahead + bytes(4), 60))


CASES: dict[str, tuple[Callable[[], list[Any]], Callable[[list[Any]], None]]] = {
    "all up": (lambda: [Flaky(), Flaky()], lambda tiers: None),
    "a lower tier holds a newer version": (lambda: [Flaky(), Flaky()], _newer_below),
    "the arbiter is unavailable, a lower tier takes it": (
        lambda: [Flaky(BackendUnavailableError, 1), Flaky()],
        lambda tiers: None,
    ),
    "the only shared tier is unavailable: one call, no retry": (
        lambda: [Flaky(BackendUnavailableError, 5)],
        lambda tiers: None,
    ),
    "the arbiter refuses": (lambda: [Flaky(BackendError, 1), Flaky()], lambda tiers: None),
    "a lower tier refuses": (lambda: [Flaky(), Flaky(BackendError, 1)], lambda tiers: None),
    "a lower tier is unavailable": (
        lambda: [Flaky(), Flaky(BackendUnavailableError, 1)],
        lambda tiers: None,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_straight_save_decides_as_the_sequence(case: str) -> None:
    make, before = CASES[case]
    assert _outcome(_straight, make(), before) == _outcome(_sequence, make(), before)


def test_the_only_shared_tier_unavailable_is_called_once() -> None:
    """The tier the straight save called is not skipped by its (now open) breaker and then
    forced again when the sequence takes over: one call, as the sequence alone makes."""
    tier = Flaky(BackendUnavailableError, 5)
    chain = TieredBackend([MemoryBackend(), tier], clock=Clock(), invalidation=False)
    with pytest.raises(BackendUnavailableError):
        chain.set("k", b"new", 60)
    assert tier.calls == 1
