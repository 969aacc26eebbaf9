"""``SessionStore.touch(key)`` over one backend restarts a session's expiry with the TTL it
records (:mod:`session_store.ownttl`). Raced by real threads on a real redis-server: a save
landing while the touch runs must never get the TTL of the session it replaced."""

from __future__ import annotations

import threading
from typing import Any

from session_store import SessionStore
from session_store.stamps import own_ttl

OWN = 3000.0  # a session saved with its own TTL (framed)
STORE_TTL = 86400.0  # the store's (unframed)
ROUNDS = 400


def test_a_save_racing_a_touch_never_gets_the_ttl_of_the_session_the_touch_read(
    redis_url: str,
) -> None:
    """Found by review: the touch read a session saved with its own 3000 s, a save with the
    store's TTL (a day) landed, and the touch restarted the new session with 3000 s (or the
    other way round: a session saved for 3000 s was given a day). Then the touch became
    conditional on the value it read (``touch_if``); now the backend reads the recorded TTL and
    touches in one atomic step (``touch_session``): a write is touched with its own TTL or not
    at all.

    In each round one thread saves (the two kinds in turn) while another touches; once both
    are done the pair (value, TTL left) is read atomically (``get_with_ttl``: one MULTI, GET
    and PTTL). A framed value left with more than its own TTL, or a bare one with no more than
    that, is a touch that applied the other session's TTL (no write gives either)."""
    wrong: list[tuple[float | None, float]] = []
    start = threading.Barrier(2)
    stores: list[SessionStore[Any]] = [
        SessionStore(redis_url, dict, ttl=STORE_TTL) for _ in range(2)
    ]
    toucher, saver = stores

    def save() -> None:
        for i in range(ROUNDS):
            start.wait()  # the round begins: this save and the touch race
            saver.save("k", {"i": i}, ttl=OWN if i % 2 else None)
            start.wait()  # the round is over: the toucher checks what it left

    def touch() -> None:
        for _ in range(ROUNDS):
            start.wait()
            toucher.touch("k")  # reads the other kind of session, unless the save came first
            start.wait()
            found = saver.backend.get_with_ttl("k")  # one MULTI: GET, PTTL
            assert found is not None
            own = own_ttl(found[0])
            if (found[1] > OWN) != (own is None):
                wrong.append((own, found[1]))

    try:
        saver.save("k", {"i": -1}, ttl=OWN)
        threads = [threading.Thread(target=save), threading.Thread(target=touch)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for store in stores:
            store.close()
    assert not wrong, f"{len(wrong)} touches gave a session another's TTL: {wrong[:5]}"
