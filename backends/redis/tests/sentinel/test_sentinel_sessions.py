"""Sessions through Sentinel: four separate processes each apply 50 ``SessionStore.update``
increments to one counter; compare-and-set on the primary loses none (it ends at 200)."""

from __future__ import annotations

import pytest

from session_store import SessionStore
from session_store_redis.testing.processes import update_race


@pytest.mark.slow
def test_four_processes_updating_one_counter_lose_nothing(redis_sentinel_url: str) -> None:
    conflicts = update_race(redis_sentinel_url, processes=4, rounds=50)
    with SessionStore(redis_sentinel_url, dict) as store:
        assert store.load("counter") == {"n": 200}
    assert conflicts > 0  # the processes really raced, and the losers retried
