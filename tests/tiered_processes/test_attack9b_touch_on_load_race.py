"""attack9b: a logout racing ``load`` with ``touch_on_load`` in other processes, through the
default chain (``memory:// | redis:// | diskcache://``, real redis-server, real directory).

``test_touch_race.py`` races the chain's own ``touch``; this races what an app calls: a
:class:`~session_store.SessionStore` (sync) and an :class:`~session_store.aio.AsyncSessionStore`
opened with ``touch_on_load=True``, each loading every session over and over (a near-cache
hit, then the store's sliding touch) until the load finds it gone, while a third process
deletes the sessions one after the other on a schedule. Every call is recorded with its start
and end and checked with ``test_touch_race``'s checker: after an acknowledged delete, no load
that began later than the near cache's bound finds the session, every tier holds a tombstone
living its own ``tombstone_ttl`` (never re-expired to the session's 30 s by a touch), and a
fresh chain reads nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store.testing.processes import race_each
from tests.tiered_processes.test_touch_race import (
    KEYS,
    PERIOD,
    SESSION_TTL,
    _chain,
    _held,
    violations,
)

pytestmark = pytest.mark.slow

WORKER = """
import asyncio, json, sys, time

from session_store import SessionStore
from session_store.aio import AsyncSessionStore

chain, role, count, period = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
keys = [f"k{i}" for i in range(count)]
history = []
CAP = 60.0  # a session that never reads as gone: recorded, and the checker reports it


def record(op, key, began, result):
    history.append([op, key, began, time.monotonic(), result])


def deleter():
    store = SessionStore(chain, dict, ttl=30)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.monotonic() + 0.2
    for i, key in enumerate(keys):
        while time.monotonic() < start + i * period:
            time.sleep(0.001)
        began = time.monotonic()
        record("delete", key, began, store.delete(key))
    store.close()


def loader():
    store = SessionStore(chain, dict, ttl=30, touch_on_load=True)
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + CAP
    for key in keys:
        while time.monotonic() < deadline:
            began = time.monotonic()
            found = store.load(key) is not None
            record("get", key, began, found)
            if not found:
                break
    store.close()


async def aloader():
    store = AsyncSessionStore(chain, dict, ttl=30, touch_on_load=True)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    deadline = time.monotonic() + CAP
    for key in keys:
        while time.monotonic() < deadline:
            began = time.monotonic()
            found = (await store.load(key)) is not None
            record("get", key, began, found)
            if not found:
                break
    await store.aclose()


if role == "delete":
    deleter()
elif role == "load":
    loader()
else:
    asyncio.run(aloader())
print(json.dumps(history), flush=True)
"""


def test_no_load_with_touch_on_load_revives_or_reexpires_a_logged_out_session(
    redis_url: str, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    chain_url = _chain(redis_url, disk)
    with SessionStore(chain_url, dict, ttl=SESSION_TTL) as store:
        for i in range(KEYS):
            store.save(f"k{i}", {"user": i})
    history: list[list[Any]] = []
    argvs = [[chain_url, role, str(KEYS), str(PERIOD)] for role in ("delete", "load", "aload")]
    for output in race_each(WORKER, argvs, timeout=180.0):
        history.extend(json.loads(output.strip().splitlines()[-1]))
    held = _held(redis_url, disk, chain_url)
    deletes = [call for call in history if call[0] == "delete"]
    loads = [call for call in history if call[0] == "get"]
    assert len(deletes) == KEYS and all(call[4] for call in deletes)
    assert sum(1 for call in loads if call[4]) > KEYS
    spans = {call[1]: (call[2], call[3]) for call in deletes}
    in_flight = [c for c in loads if c[2] < spans[c[1]][1] and c[3] > spans[c[1]][0]]
    assert in_flight  # loads ran while their key's delete was in flight (262 of 3,598 here)
    assert violations(history, held) == []
