"""The other sliding expiries keep a session's own TTL under a racing save too: ``touch_on_load``
(sync and asyncio) and ``AsyncSessionStore.touch(key)``. Each used to read the session, then
restart the key's expiry unconditionally with the TTL that read recorded, so a save landing in
between (another process's, with another TTL of its own) was given the TTL of the session the
touch had read. Raced by two real threads on a real redis-server, as
``test_touch_race_own_ttl.py`` races the sync ``touch(key)``; the checker looks at what each
round left, never at timing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from session_store import SessionStore
from session_store.aio import AsyncSessionStore
from session_store.stamps import own_ttl

OWN = 3000.0  # a session saved with its own TTL (framed)
STORE_TTL = 86400.0  # the store's (unframed)
ROUNDS = 300


def _sync_touch_on_load(redis_url: str, rounds: Callable[[Callable[[], None]], None]) -> None:
    store: SessionStore[Any] = SessionStore(redis_url, dict, ttl=STORE_TTL, touch_on_load=True)
    try:

        def touch() -> None:
            store.load("k")

        rounds(touch)
    finally:
        store.close()


def _async(redis_url: str, touch_on_load: bool) -> Callable[..., None]:
    def run(rounds: Callable[[Callable[[], None]], None]) -> None:
        loop = asyncio.new_event_loop()  # driven one call at a time: the barrier blocks here

        async def opened() -> AsyncSessionStore[Any]:
            return AsyncSessionStore(redis_url, dict, ttl=STORE_TTL, touch_on_load=touch_on_load)

        store = loop.run_until_complete(opened())
        try:
            one = store.load if touch_on_load else store.touch

            def touch() -> None:
                loop.run_until_complete(one("k"))

            rounds(touch)
        finally:
            loop.run_until_complete(store.aclose())
            loop.close()

    return run


class _Rounds:
    """Runs ``touch`` in this thread against a saver thread, round by round, and records every
    round whose result shows a touch that applied the other session's TTL."""

    def __init__(self, redis_url: str) -> None:
        self.saver: SessionStore[Any] = SessionStore(redis_url, dict, ttl=STORE_TTL)
        self.start = threading.Barrier(2)
        self.wrong: list[tuple[float | None, float]] = []

    def save(self) -> None:
        for i in range(ROUNDS):
            self.start.wait()  # the round begins: this save and the touch race
            self.saver.save("k", {"i": i}, ttl=OWN if i % 2 else None)
            self.start.wait()  # the round is over: the toucher checks what it left

    def check(self) -> None:
        found = self.saver.backend.get_with_ttl("k")  # one MULTI: GET, PTTL
        assert found is not None
        own = own_ttl(found[0])
        if (found[1] > OWN) != (own is None):  # no write gives either
            self.wrong.append((own, found[1]))


@pytest.mark.parametrize("how", ["sync touch_on_load", "async touch_on_load", "async touch"])
def test_a_save_racing_a_touch_never_gets_the_ttl_of_the_session_the_touch_read(
    redis_url: str, how: str
) -> None:
    """In each round one thread saves (a session with its own 3000 s, then one with the store's
    day, in turn) while this one touches through ``how``; once both are done the pair (value,
    TTL left) is read atomically (``get_with_ttl``). A framed value left with more than its own
    TTL, or a bare one with no more than that, is a touch that applied the other's TTL."""
    rounds = _Rounds(redis_url)

    def run_rounds(touch: Callable[[], None]) -> None:
        for _ in range(ROUNDS):
            rounds.start.wait()
            touch()  # reads the other kind of session, unless the save came first
            rounds.start.wait()
            rounds.check()

    saver = threading.Thread(target=rounds.save)
    try:
        rounds.saver.save("k", {"i": -1}, ttl=OWN)
        saver.start()
        if how == "sync touch_on_load":
            _sync_touch_on_load(redis_url, run_rounds)
        else:
            _async(redis_url, touch_on_load=how == "async touch_on_load")(run_rounds)
    finally:
        rounds.start.abort()  # a failed toucher never leaves the saver waiting
        saver.join()
        rounds.saver.close()
    assert not rounds.wrong, (
        f"{len(rounds.wrong)} touches gave a session another's TTL: {rounds.wrong[:5]}"
    )
