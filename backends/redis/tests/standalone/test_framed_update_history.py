"""Attack (round 6) on a store's framed ``update`` over Redis (issue 17): two real processes run
``update``, ``save`` and ``delete`` on the same few keys of one real redis-server (the suite's
fixture), every call recorded, and a checker reads the histories.

What the framing changed: an ``update`` now writes its payload inside a version frame with a
fresh version, and the next ``update`` compares only the frame's length, head and tail (the
lean client's staged compare-and-set), while a ``save`` with the store's TTL still writes the
bare payload (as every earlier release did), whose compare stays the whole value. The two
writers interleave both kinds on purpose, and one process also writes the bare payloads an
earlier release would (``backend.set`` of the codec's bytes), so every transition (bare ->
framed, framed -> bare, framed -> absent -> framed) is crossed many times. A second run puts the
previous release (before framing; from this repository's history) in one of the two processes,
as in a rolling deploy.

The checker: every session records the operation ids that built it (``ops``), unique across the
run, so the value an ``update`` returns names the exact state it was computed from (its ``ops``
without its own id). An acknowledged update lost by another one shows as two acknowledged
updates computed from the same non-empty state; an update computed from a state nobody wrote
(torn bytes, a stale cache) shows as an unknown base; an update from "absent" needs a delete
(or the start) before it, so more of them than deletes + keys is a lost write as well.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from session_store_redis.testing import RedisServer

KEYS = ("k0", "k1")
OPERATIONS = 400  # per process


def _worker(url: str, name: str, out: str, go: str, seed: int) -> None:
    """One process's run: ``OPERATIONS`` calls, each recorded as a JSON line."""
    import random

    from session_store import SessionStore

    rng = random.Random(seed)
    store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=3600)
    expected = os.environ.get("ATTACK_EXPECT_MODULE")
    if expected is None:  # this release: the lean client's staged writes
        assert getattr(store.backend, "_lean", None) is not None
    else:  # the previous release's code, not the checkout's
        import session_store

        assert str(session_store.__file__).startswith(expected), session_store.__file__
    while not os.path.exists(go):  # start together with the other process
        time.sleep(0.001)
    with open(out, "w") as log:
        for n in range(OPERATIONS):
            op_id = f"{name}-{n}"
            key = rng.choice(KEYS)
            roll = rng.random()
            record: dict[str, Any] = {"id": op_id, "key": key}
            try:
                if roll < 0.6:
                    record["op"] = "update"

                    def bump(s: dict[str, Any] | None, op_id: str = op_id) -> dict[str, Any]:
                        time.sleep(0.001)  # the read and the write further apart: more races
                        return {"ops": [*(s or {}).get("ops", []), op_id]}

                    result = store.update(key, bump)
                    record["result"] = None if result is None else result["ops"]
                elif roll < 0.8:
                    record["op"] = "save"
                    store.save(key, {"ops": [op_id]})
                elif roll < 0.9:
                    record["op"] = "raw"  # the bare bytes an earlier release's save wrote
                    store.backend.set(key, store.codec.encode(key, {"ops": [op_id]}), ttl=3600)
                else:
                    record["op"] = "delete"
                    store.delete(key)
                record["ok"] = True
            except Exception as exc:  # recorded: the outcome of this call is unknown
                record["ok"] = False
                record["error"] = f"{type(exc).__name__}: {exc}"
            log.write(json.dumps(record) + "\n")
    store.close()


def _check(histories: list[list[dict[str, Any]]], final: dict[str, list[str] | None]) -> list[str]:
    """The violations found in the recorded histories (empty: the run is consistent)."""
    problems: list[str] = []
    records = [r for h in histories for r in h]
    written: set[tuple[str, tuple[str, ...]]] = set()  # (key, ops) of every state written
    for r in records:
        if r["op"] in ("save", "raw"):
            written.add((r["key"], (r["id"],)))
        elif r["op"] == "update" and r["ok"] and r.get("result") is not None:
            written.add((r["key"], tuple(r["result"])))
    bases: Counter[tuple[str, tuple[str, ...]]] = Counter()
    from_absent: Counter[str] = Counter()
    for r in records:
        if r["op"] != "update" or not r["ok"]:
            continue
        result = tuple(r["result"])
        if not result or result[-1] != r["id"]:
            problems.append(f"{r['id']}: update returned {result}, not ending in its own id")
            continue
        base = result[:-1]
        if not base:
            from_absent[r["key"]] += 1
            continue
        if (r["key"], base) not in written:
            problems.append(f"{r['id']}: computed from {base} on {r['key']}, never written")
        bases[(r["key"], base)] += 1
    for (key, base), count in bases.items():
        if count > 1:
            problems.append(f"{count} acknowledged updates of {key} computed from {base}: lost")
    for key in final:
        deletes = sum(1 for r in records if r["key"] == key and r["op"] == "delete")
        if from_absent[key] > deletes + 1:
            problems.append(f"{key}: {from_absent[key]} updates from absent, {deletes} deletes")
        state = final[key]
        if state is not None and (key, tuple(state)) not in written:
            problems.append(f"{key}: final state {state} was never written")
    return problems


#: A release from before a store's ``update`` framed its writes (and before the lean client),
#: run beside this one as in a rolling deploy.
PREVIOUS_RELEASE = "ddef040"


def _previous_release(into: Path) -> Path:
    """The previous release's ``session_store`` and ``session_store_redis`` sources, from this
    repository's history (the test is skipped where that history is not at hand)."""
    root = Path(__file__).resolve().parents[4]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", PREVIOUS_RELEASE, "session_store",
         "backends/redis/session_store_redis"],
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    if archive.returncode != 0:
        pytest.skip(f"release {PREVIOUS_RELEASE} not in this checkout's history")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.mark.parametrize("other", ["this release", "previous release"])
def test_updates_saves_and_deletes_of_two_processes_lose_nothing(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path, other: str
) -> None:
    """Both processes on this release, or the second on the previous one (a rolling deploy:
    its updates compare every value whole and write bare payloads, its scripts have other
    SHAs, it has no lean client)."""
    url = redis_server.url_for(prefix=redis_namespace)
    go = tmp_path / "go"
    old = _previous_release(tmp_path / "old") if other == "previous release" else None
    children = []
    for number in range(2):
        out = tmp_path / f"history-{number}.jsonl"
        args = [url, f"p{number}", str(out), str(go), str(1000 + number)]
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " + (
            "from test_framed_update_history import _worker; _worker(*sys.argv[1:4], "
            "sys.argv[4], int(sys.argv[5]))"
        )
        env, cwd = dict(os.environ), None
        if old is not None and number == 1:  # its sources first on the path, not the checkout
            env["PYTHONPATH"] = os.pathsep.join((str(old), str(old / "backends" / "redis")))
            env["ATTACK_EXPECT_MODULE"] = str(old)
            cwd = str(tmp_path)
        children.append(subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=cwd))
    go.touch()
    for child in children:
        assert child.wait(timeout=300) == 0
    histories = [
        [json.loads(line) for line in (tmp_path / f"history-{n}.jsonl").read_text().splitlines()]
        for n in range(2)
    ]
    from session_store import SessionStore

    with SessionStore(url, dict) as reader:
        final = {key: (reader.load(key) or {}).get("ops") for key in KEYS}
    records = [r for h in histories for r in h]
    assert len(records) == 2 * OPERATIONS
    errors = [r for r in records if not r["ok"]]
    assert not errors, errors[:5]
    framed = sum(1 for r in records if r["op"] == "update")
    assert framed > OPERATIONS // 2  # both kinds of writes really interleaved
    problems = _check(histories, final)
    assert not problems, problems[:10]


def test_the_checker_finds_a_lost_update_a_torn_base_and_a_resurrection() -> None:
    """The checker can fail: histories with each violation it looks for."""
    save = {"id": "a-0", "key": "k0", "op": "save", "ok": True}
    first = {"id": "a-1", "key": "k0", "op": "update", "ok": True, "result": ["a-0", "a-1"]}
    lost = {"id": "b-0", "key": "k0", "op": "update", "ok": True, "result": ["a-0", "b-0"]}
    torn = {"id": "b-1", "key": "k1", "op": "update", "ok": True, "result": ["zz", "b-1"]}
    absent = [
        {"id": f"c-{n}", "key": "k2", "op": "update", "ok": True, "result": [f"c-{n}"]}
        for n in range(2)
    ]
    final: dict[str, list[str] | None] = {"k0": ["a-0", "a-1"], "k1": None, "k2": ["c-0"]}
    assert _check([[save, first]], {**final, "k2": None}) == []
    problems = _check([[save, first], [lost, torn, *absent]], final)
    assert len(problems) == 3, problems
    assert _check([[save]], {**final, "k0": ["q-9"]}) != []
