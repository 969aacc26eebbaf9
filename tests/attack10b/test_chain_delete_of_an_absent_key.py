"""Attack (attack10b) on retired10's chain ``delete_session``: a ``SessionStore.delete`` of a
key no tier holds, racing a ``save`` of it, in two real threads, through real chains
(``memory:// | redis | diskcache`` and ``redis | diskcache``, a real redis-server and a real
diskcache directory).

The key is absent when both start, so each round has exactly two correct outcomes: the delete
found nothing (``False``) and the saved session is there after, or it found the saved session
(``True``) and the key is empty after. ``(False, empty)`` is a session removed by a delete that
answered it removed none: the chain's ``delete_session`` wrote its tombstone even when every
shared tier answered that it held nothing, stamped after the save's version, so a save that
reached the arbiter between the chain's reads and its tombstone was buried. (``docs/guarantees.md``:
"``True`` only for a session it removed"; ``SessionStore.delete``: "a session saved after it
judged is never deleted".)

Fixed (tiered/session_delete.py): a key every shared tier answered absent is not
tombstoned. Seen on main (130f0e5): ``(False, empty)`` in 32-56 of 300 rounds, both chains,
every run; the single backends (memory, Redis, diskcache) never (300 rounds each).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from session_store import SessionStore

ROUNDS = 150


@pytest.fixture(params=["memory-redis-disk", "redis-disk"])
def chain_url(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> str:
    disk = f"diskcache://{tmp_path / 'disk'}"
    if request.param == "redis-disk":
        return f"{redis_url} | {disk}"
    return f"memory:// | {redis_url} | {disk}"


def test_a_delete_of_an_absent_key_never_buries_a_racing_save(chain_url: str) -> None:
    outcomes: dict[tuple[bool, bool], int] = {}
    with SessionStore(chain_url, dict) as store:
        for n in range(ROUNDS):
            key = f"absent{n}"
            assert store.backend.get(key) is None
            start = threading.Barrier(2)
            answer: list[bool] = []

            def delete(
                key: str = key, start: threading.Barrier = start, answer: list[bool] = answer
            ) -> None:
                start.wait()
                answer.append(store.delete(key))

            def save(key: str = key, start: threading.Barrier = start, n: int = n) -> None:
                start.wait()
                store.save(key, {"n": n})

            threads = [threading.Thread(target=delete), threading.Thread(target=save)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            after = store.load(key)
            assert after in (None, {"n": n})
            seen = (answer[0], after is not None)
            outcomes[seen] = outcomes.get(seen, 0) + 1
    wrong = {seen: count for seen, count in outcomes.items() if seen[0] is seen[1]}
    assert not wrong, f"(deleted, session there after): {outcomes}"
    assert sum(outcomes.values()) == ROUNDS
