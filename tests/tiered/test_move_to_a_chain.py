"""A move from one store to a chain (docs/guarantees.md, Part 1, "Limits"): a plain ``save`` by a
process still configured with the tier alone writes unversioned bytes, which a chain takes as
older than any copy it wrote itself. Real redis-server (the suite's) and diskcache directory.

* Over ``memory:// | redis://`` (no lower tier to hold an older copy) the single-tier save is
  what every chain process loads next: the rollout order the docs recommend.
* Over ``memory:// | redis:// | diskcache://`` a fresh chain process finds the disk's older
  framed copy newer and serves it: the documented limit (if this ever changes, update the docs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from session_store import SessionStore


def _load_until(store: SessionStore[dict[str, Any]], key: str, want: Any) -> Any:
    deadline = time.monotonic() + 5  # the near cache's invalidation arrives within ~1 ms
    while (got := store.load(key)) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def test_a_single_tier_save_is_what_a_chain_over_redis_alone_loads(redis_url: str) -> None:
    with (
        SessionStore(f"memory:// | {redis_url}", dict, ttl=600) as chain,
        SessionStore(redis_url, dict, ttl=600) as alone,
    ):
        chain.save("s", {"v": 1})
        assert chain.load("s") == {"v": 1}
        alone.save("s", {"v": 2})  # a process not moved yet
        assert _load_until(chain, "s", {"v": 2}) == {"v": 2}
        with SessionStore(f"memory:// | {redis_url}", dict, ttl=600) as fresh:
            assert fresh.load("s") == {"v": 2}


def test_with_a_disk_tier_the_chains_older_copy_wins_the_documented_limit(
    redis_url: str, tmp_path: Path
) -> None:
    url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    with SessionStore(url, dict, ttl=600) as chain:
        chain.save("s", {"v": 1})
    with SessionStore(redis_url, dict, ttl=600) as alone:
        alone.save("s", {"v": 2})
    with SessionStore(url, dict, ttl=600) as fresh:
        assert fresh.load("s") == {"v": 1}  # the single-tier save is lost (docs: Limits)
