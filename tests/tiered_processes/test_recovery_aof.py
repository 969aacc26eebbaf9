"""Redis comes back holding older copies: a read never returns them.

A real redis-server with ``appendonly yes`` sits in the middle of ``memory | redis | diskcache``.
It is killed (SIGKILL); while it is down, *another process* (which this one knows nothing about)
and this process write and delete; then Redis restarts from its append-only file, holding the
copies from before the outage. Every reader (a fresh process, an idle chain that never saw the
outage, the writer that did) must read the newest acknowledged write: zero stale reads.

Redis alone, read directly, does serve the stale copies: the control that shows the scenario is
real. (Plain writes stay available during the outage; ``update`` refuses while the arbiter is
down, so the other process saves.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store import SessionStore, TieredBackend, open_backend, stamps
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer

N = 100
MAX_STALENESS = 0.5
RETRY_AFTER = 0.3

# The other process: opens its own chain (stamps on) and writes or reads, then reports.
OTHER_PROCESS = r"""
import json, sys
from session_store import SessionStore, open_backend
url, mode = sys.argv[1], sys.argv[2]
chain = open_backend(url, stamps=True, retry_after=0.3)
store = SessionStore(chain, dict)
if mode == "write":
    for i in range(0, 50):
        chain.set(f"k{i}", f"v2-{i}".encode(), ttl=600)
    chain.delete_many([f"k{i}" for i in range(50, 60)])
    store.save("session-1", {"n": 2})  # plain writes stay available; update would refuse
    store.save("counter", {"n": 2})
    print(json.dumps({"redis_down": chain.tier_states()[1]["down"]}))
else:
    keys = [f"k{i}" for i in range(int(sys.argv[3]))]
    values = {k: (v.decode() if v is not None else None) for k in keys for v in [chain.get(k)]}
    print(json.dumps({"values": values, "session": store.load("session-1")}))
chain.close()
"""


def run_other(url: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", OTHER_PROCESS, url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def expected_values() -> dict[str, str | None]:
    """What every key must read after the outage: the newest acknowledged write."""
    expected: dict[str, str | None] = {}
    for i in range(N):
        if i < 50:
            expected[f"k{i}"] = f"v2-{i}"  # written by the other process while Redis was down
        elif i < 60:
            expected[f"k{i}"] = None  # deleted by the other process while Redis was down
        elif i < 80:
            expected[f"k{i}"] = f"v3-{i}"  # written by this process while Redis was down
        elif i < 85:
            expected[f"k{i}"] = None  # deleted by this process while Redis was down
        else:
            expected[f"k{i}"] = f"v1-{i}"  # untouched since before the outage
    return expected


def stale_reads(values: dict[str, str | None]) -> list[str]:
    expected = expected_values()
    return [key for key, want in expected.items() if values.get(key) != want]


def read_all(chain: TieredBackend) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for i in range(N):
        raw = chain.get(f"k{i}")
        values[f"k{i}"] = None if raw is None else raw.decode()
    return values


def test_redis_restarted_from_an_older_aof_never_serves_a_stale_copy(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory(appendonly=True, extra_config=("appendfsync always",))
    redis_url = server.url_for(prefix="aof:", socket_timeout="0.5", socket_connect_timeout="0.5")
    url = f"memory://?max_entries=10000 | {redis_url} | diskcache://{tmp_path / 'disk'}"

    def open_chain(**options: Any) -> TieredBackend:
        options.setdefault("stamps", True)
        options.setdefault("retry_after", RETRY_AFTER)
        chain = open_backend(url, **options)
        assert isinstance(chain, TieredBackend)
        return chain

    writer = open_chain(max_staleness=MAX_STALENESS)
    idle = open_chain(max_staleness=MAX_STALENESS)
    try:
        for i in range(N):
            writer.set(f"k{i}", f"v1-{i}".encode(), ttl=600)
        SessionStore(writer, dict).save("session-1", {"n": 1})
        SessionStore(writer, dict).save("counter", {"n": 1})
        assert read_all(idle) == {f"k{i}": f"v1-{i}" for i in range(N)}  # cached, then idle

        server.kill()
        other = run_other(url, "write")
        assert other["redis_down"] is True  # it wrote to the disk tier only
        for i in range(60, 80):
            writer.set(f"k{i}", f"v3-{i}".encode(), ttl=600)
        writer.delete_many([f"k{i}" for i in range(80, 85)])
        assert writer.tier_states()[1]["down"] is True

        server.restart()  # from the append-only file: the copies from before the outage
        with RedisBackend.from_url(redis_url) as raw_redis:
            old = raw_redis.get("k0")
            assert old is not None and stamps.parse(old).value == b"v1-0"
            old = raw_redis.get("k55")
            assert old is not None and stamps.parse(old).value == b"v1-55"

        # An update before anything read the key since: it builds on the other process's write.
        with open_chain() as updater:
            counter: SessionStore[dict[str, Any]] = SessionStore(updater, dict)
            assert counter.update("counter", lambda s: {"n": (s or {"n": 0})["n"] + 1}) == {"n": 3}

        # The control: Redis alone serves the stale copies it came back with.
        with RedisBackend.from_url(redis_url) as plain:
            control = {
                key: None if raw is None else stamps.parse(raw).value.decode()
                for key in expected_values()
                for raw in [plain.get(key)]
            }
        control_stale = stale_reads(control)
        # every write the other process made while Redis was down (k0-k59: it exited with Redis
        # still down) is stale in Redis alone; this process's own (k60-k84) may already have
        # been given to Redis by the writer's probe timer, which runs retry_after after an outage
        assert {f"k{i}" for i in range(60)} <= set(control_stale), control_stale

        # A fresh process that never saw the outage.
        fresh_process = run_other(url, "read", str(N))
        assert stale_reads(fresh_process["values"]) == []
        assert fresh_process["session"] == {"n": 2}

        # A chain in this process that was idle during the outage, once its copies lapse.
        time.sleep(MAX_STALENESS)
        assert stale_reads(read_all(idle)) == []
        # A new chain, and the writer (which also knows what Redis missed).
        with open_chain() as fresh:
            assert stale_reads(read_all(fresh)) == []
            got = fresh.get_many(list(expected_values()))
            assert got == {k: v.encode() for k, v in expected_values().items() if v is not None}
            store: SessionStore[dict[str, Any]] = SessionStore(fresh, dict)
            assert store.update("session-1", lambda s: {"n": (s or {"n": 0})["n"] + 1}) == {"n": 3}
        time.sleep(RETRY_AFTER)
        assert stale_reads(read_all(writer)) == []
        assert writer.tier_states()[1]["down"] is False
        assert SessionStore(idle, dict).load("session-1") == {"n": 3}
    finally:
        writer.close()
        idle.close()
    print(
        f"\nMEASURED AOF recovery: stale reads after recovery 0 of {4 * N} (control, Redis "
        f"alone: {len(control_stale)} of {N} stale)"
    )
