"""``touch`` racing ``delete`` across real processes: a real redis-server, a real diskcache
directory, the sync and the async chain, every call recorded and checked.

One process deletes the keys one after the other on a schedule (one every ``PERIOD`` seconds);
two other processes (one sync chain, one async chain) touch each key over and over until a
touch answers ``False``, alternating ``touch(key)`` (the session's own TTL, 30 s) with
``touch(key, 7200)``, and read it after each touch. So every delete lands while a touch of its
key is in flight, in the window a concurrent logout really has: after the touch read the
copies, before it touched the tiers. Nothing is patched or slowed down.

The checker (:func:`violations`), after an acknowledged delete:

* no touch that began after the acknowledgement finds the key alive, and no read that began
  later than the near cache's bound after it (:data:`NEAR_BOUND`);
* no touch re-expired or extended a tombstone: each tier's tombstone lives what the delete
  gave it (``TOMBSTONE_TTL`` from about the acknowledgement), neither the session's 30 s nor
  the 7200 s of an explicit touch;
* a fresh chain (and each tier read raw) holds a tombstone, never a value.

Before the conditional touch, the sync and async chains re-expired the tombstones of most keys
(``touch`` read the live copy, then ``PEXPIRE``-d / touched whatever the tiers held by then).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from session_store import open_backend, stamps
from session_store.testing.processes import race_each
from session_store_diskcache import DiskcacheBackend
from session_store_redis import RedisBackend

TOMBSTONE_TTL = 3600.0
SESSION_TTL = 30.0
EXTENDED_TTL = 7200.0
KEYS = 60
PERIOD = 0.03
#: How much a tombstone's TTL may be below ``TOMBSTONE_TTL`` less the time since its delete was
#: acknowledged (the clocks read on either side of the write, the check's own reads).
SLACK = 5.0
#: How long after a delete's acknowledgement another process's ``get`` may still serve its near
#: copy: the near cache's bound with the invalidation stream up (docs/guarantees.md: one message
#: on loopback, 50 ms at most in the acceptance tests). A ``touch`` reads the shared tiers, so
#: it gets no such allowance.
NEAR_BOUND = 0.05

WORKER = """
import asyncio, json, sys, time

from session_store import open_backend
from session_store.aio import open_async_backend

chain, role, count, period = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
keys = [f"k{i}" for i in range(count)]
history = []


def record(op, key, began, result):
    history.append([op, key, began, time.monotonic(), result])


def deleter():
    backend = open_backend(chain)
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.monotonic() + 0.2
    for i, key in enumerate(keys):
        while time.monotonic() < start + i * period:
            time.sleep(0.001)
        began = time.monotonic()
        record("delete", key, began, backend.delete(key))
    backend.close()


def toucher():
    backend = open_backend(chain)
    print("ready", flush=True)
    sys.stdin.readline()
    for n, key in enumerate(keys):
        ttl = None
        while True:
            ttl = 7200.0 if ttl is None else None
            began = time.monotonic()
            alive = backend.touch(key, ttl)
            record("touch", key, began, alive)
            began = time.monotonic()
            record("get", key, began, backend.get(key) is not None)
            if not alive:
                break
    backend.close()


async def atoucher():
    backend = open_async_backend(chain)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for key in keys:
        ttl = None
        while True:
            ttl = 7200.0 if ttl is None else None
            began = time.monotonic()
            alive = await backend.touch(key, ttl)
            record("touch", key, began, alive)
            began = time.monotonic()
            record("get", key, began, (await backend.get(key)) is not None)
            if not alive:
                break
    await backend.aclose()


if role == "delete":
    deleter()
elif role == "touch":
    toucher()
else:
    asyncio.run(atoucher())
print(json.dumps(history), flush=True)
"""


def _chain(redis_url: str, disk: Path) -> str:
    return (
        f"tiered://?tombstone_ttl={TOMBSTONE_TTL:g} | memory:// | {redis_url} | diskcache://{disk}"
    )


def run_race(redis_url: str, disk: Path) -> tuple[list[list[Any]], dict[str, Any]]:
    """Save every key, then run the deleter and the two touchers together; the recorded
    history (every process's calls, with their start and end on the host's monotonic clock,
    which all processes share) and what the tiers hold afterwards, read raw."""
    chain_url = _chain(redis_url, disk)
    chain = open_backend(chain_url)
    try:
        for i in range(KEYS):
            chain.set(f"k{i}", b"session", ttl=SESSION_TTL)
    finally:
        chain.close()
    history: list[list[Any]] = []
    argvs = [[chain_url, role, str(KEYS), str(PERIOD)] for role in ROLES]
    for output in race_each(WORKER, argvs, timeout=120.0):
        history.extend(json.loads(output.strip().splitlines()[-1]))
    return history, _held(redis_url, disk, chain_url)


ROLES = ("delete", "touch", "atouch")


def _held(redis_url: str, disk: Path, chain_url: str) -> dict[str, Any]:
    raw_redis, raw_disk = RedisBackend.from_url(redis_url), DiskcacheBackend(disk)
    chain = open_backend(chain_url)
    try:
        held: dict[str, Any] = {}
        checked_at = time.monotonic()
        for i in range(KEYS):
            key = f"k{i}"
            held[key] = {
                "redis": (raw_redis.get(key), raw_redis.ttl(key)),
                "disk": (raw_disk.get(key), raw_disk.ttl(key)),
                "chain": chain.get(key),
            }
        held["checked_at"] = checked_at
        return held
    finally:
        for closing in (raw_redis, raw_disk, chain):
            closing.close()


def violations(history: list[list[Any]], held: dict[str, Any]) -> list[str]:
    """What the history and the tiers' final state break of the promises in the module doc."""
    found: list[str] = []
    acked: dict[str, float] = {}
    for op, key, _began, ended, _result in history:
        if op == "delete":
            acked[key] = ended
    for op, key, began, _ended, result in history:
        after = began - acked[key] if key in acked else -1.0
        if result and (after > NEAR_BOUND if op == "get" else op == "touch" and after > 0):
            found.append(f"{key}: {op} began after the delete was acknowledged and found it alive")
    checked_at = held["checked_at"]
    for key, deleted_at in acked.items():
        floor = TOMBSTONE_TTL - (checked_at - deleted_at) - SLACK
        if held[key]["chain"] is not None:
            found.append(f"{key}: reads back after its delete")
        for tier in ("redis", "disk"):
            value, left = held[key][tier]
            if value is None or not stamps.is_tombstone(value):
                found.append(f"{key}: {tier} holds no tombstone after the delete")
            elif left is None or not floor <= left <= TOMBSTONE_TTL:
                found.append(f"{key}: {tier}'s tombstone lives {left} s, not ~{TOMBSTONE_TTL:g}")
    return found


def test_no_touch_revives_or_reexpires_a_deleted_session(redis_url: str, tmp_path: Path) -> None:
    history, held = run_race(redis_url, tmp_path / "disk")
    deletes = [call for call in history if call[0] == "delete"]
    touches = [call for call in history if call[0] == "touch"]
    assert len(deletes) == KEYS and all(call[4] for call in deletes)  # each deleted a session
    # the touches really raced the deletes: some answered True after their key's delete began
    began = {call[1]: call[2] for call in deletes}
    overlapping = [
        call for call in touches if call[3] > began[call[1]] and call[2] < began[call[1]]
    ]
    assert overlapping, "no touch was in flight while its key was deleted"
    found = violations(history, held)
    assert not found, f"{len(found)} violations, e.g. {found[:5]}"


def test_the_checker_finds_a_reexpired_tombstone_and_a_late_read() -> None:
    """The checker itself, on handmade bad outcomes."""
    tomb = stamps.tombstone(stamps.clock.now())
    good = {"redis": (tomb, TOMBSTONE_TTL - 1), "disk": (tomb, TOMBSTONE_TTL - 1), "chain": None}
    history = [["delete", "k", 1.0, 2.0, True], ["touch", "k", 1.5, 2.5, True]]
    assert violations(history, {"k": good, "checked_at": 3.0}) == []
    short = {**good, "redis": (tomb, SESSION_TTL)}
    long = {**good, "disk": (tomb, EXTENDED_TTL)}
    for bad in (short, long):
        assert len(violations(history, {"k": bad, "checked_at": 3.0})) == 1
    late = [*history, ["touch", "k", 2.01, 2.2, True], ["get", "k", 2.3, 2.4, True]]
    assert len(violations(late, {"k": good, "checked_at": 3.0})) == 2
    within_bound = [*history, ["get", "k", 2.01, 2.02, True], ["touch", "k", 2.5, 2.6, False]]
    assert violations(within_bound, {"k": good, "checked_at": 3.0}) == []
    alive = {**good, "chain": b"session", "disk": (b"\xa7SF\x01" + bytes(30), 10.0)}
    assert len(violations(history, {"k": alive, "checked_at": 3.0})) == 2
