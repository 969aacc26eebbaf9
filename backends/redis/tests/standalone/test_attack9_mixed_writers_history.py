"""Attack (attack9, round 9) on the mix of writers a rollout of this session's code puts on one
Redis database: stores over Redis alone (which now write uncompressed by default, and frame
their ``update`` in encryption format 2), stores that opt into compression, chains over the
same Redis (``memory:// | redis://``: zstd, every write framed and ordered) and async stores of
both kinds, all updating, saving and deleting the same keys at once in real processes.

Each process records every call; the checker of ``test_framed_update_history.py`` reads the
histories: an acknowledged update computed from a state another acknowledged update also
started from is a lost update; one computed from a state nobody wrote is a torn read; more
updates from "absent" than deletes (plus one) is a lost write. Half the sessions are padded
above 1 KiB so the staged compare-and-set (``staged.STAGE_CAS_FROM``) and the one-script one
are both crossed; a second run sets ``SESSION_STORE_KEYS`` so that the format-2 (framed) and
format-3 (bare, prefix-bound) ciphertexts of the single-tier stores and the chain's meet.

The chain here is ``memory:// | redis`` only: with a disk tier, a single-tier writer's plain
``save`` is lost by design (docs/guarantees.md, "Limits": the move from one store to a chain).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from session_store_redis.testing import RedisServer

KEYS = ("k0", "k1")
OPERATIONS = 150  # per process
KINDS = ("redis", "redis+zstd", "chain", "async", "async-chain")
PAD = "x" * 3000  # above STAGE_CAS_FROM once encoded, compressible


def _worker(url: str, kind: str, name: str, out: str, go: str, seed: int) -> None:
    """One process's run: ``OPERATIONS`` calls on ``KEYS`` through a store of ``kind``."""
    import asyncio
    import random
    import time

    rng = random.Random(seed)
    target = "memory://|" + url if kind.endswith("chain") else url
    extra: dict[str, Any] = {"compression": True} if kind == "redis+zstd" else {}

    def session(ops: list[str], n: int) -> dict[str, Any]:
        return {"ops": ops, "pad": PAD if n % 2 else ""}

    def plan() -> list[tuple[str, str, str, int]]:
        steps = []
        for n in range(OPERATIONS):
            roll = rng.random()
            op = "update" if roll < 0.6 else "save" if roll < 0.85 else "delete"
            steps.append((f"{name}-{n}", rng.choice(KEYS), op, n))
        return steps

    def bump(op_id: str, n: int) -> Any:
        def fn(s: dict[str, Any] | None) -> dict[str, Any]:
            time.sleep(0.001)  # the read and the write further apart: more races
            return session([*(s or {}).get("ops", []), op_id], n)

        return fn

    def start() -> None:
        while not os.path.exists(go):
            time.sleep(0.001)

    records: list[dict[str, Any]] = []
    if kind.startswith("async"):
        from session_store.aio import AsyncSessionStore

        async def run() -> None:
            store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
                target, dict, ttl=3600, **extra
            )
            start()
            for op_id, key, op, n in plan():
                entry: dict[str, Any] = {"id": op_id, "key": key, "op": op, "kind": kind}
                try:
                    if op == "update":
                        result = await store.update(key, bump(op_id, n))
                        entry["result"] = None if result is None else result["ops"]
                    elif op == "save":
                        await store.save(key, session([op_id], n))
                    else:
                        await store.delete(key)
                    entry["ok"] = True
                except Exception as exc:
                    entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
                records.append(entry)
            await store.aclose()

        asyncio.run(run())
    else:
        from session_store import SessionStore

        store: SessionStore[dict[str, Any]] = SessionStore(target, dict, ttl=3600, **extra)
        start()
        for op_id, key, op, n in plan():
            record: dict[str, Any] = {"id": op_id, "key": key, "op": op, "kind": kind}
            try:
                if op == "update":
                    result = store.update(key, bump(op_id, n))
                    record["result"] = None if result is None else result["ops"]
                elif op == "save":
                    store.save(key, session([op_id], n))
                else:
                    store.delete(key)
                record["ok"] = True
            except Exception as exc:
                record.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            records.append(record)
        store.close()
    Path(out).write_text("".join(json.dumps(r) + "\n" for r in records))


def _checker() -> Any:
    """``_check`` of the framed-update history test (one checker for both attacks)."""
    path = Path(__file__).with_name("test_framed_update_history.py")
    spec = importlib.util.spec_from_file_location("_attack9_history_checker", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._check


@pytest.mark.slow
@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_single_tier_stores_chains_and_async_stores_updating_together_lose_nothing(
    redis_server: RedisServer,
    redis_namespace: str,
    tmp_path: Path,
    encrypted: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = redis_server.url_for(prefix=redis_namespace)
    go = tmp_path / "go"
    monkeypatch.delenv("SESSION_STORE_KEYS", raising=False)
    if encrypted:
        from session_store.codec import AesGcmStage

        monkeypatch.setenv("SESSION_STORE_KEYS", AesGcmStage.generate_key())
    env = dict(os.environ)
    children = []
    for number, kind in enumerate(KINDS):
        out = tmp_path / f"history-{number}.jsonl"
        args = [url, kind, f"p{number}", str(out), str(go), str(2000 + number)]
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from test_attack9_mixed_writers_history import _worker; "
            "_worker(*sys.argv[1:6], int(sys.argv[6]))"
        )
        children.append(subprocess.Popen([sys.executable, "-c", code, *args], env=env))
    go.touch()
    for child in children:
        assert child.wait(timeout=600) == 0
    histories = [
        [json.loads(line) for line in (tmp_path / f"history-{n}.jsonl").read_text().splitlines()]
        for n in range(len(KINDS))
    ]
    records = [r for h in histories for r in h]
    assert len(records) == len(KINDS) * OPERATIONS
    errors = [r for r in records if not r["ok"]]
    assert not errors, errors[:5]
    from session_store import SessionStore

    final: dict[str, list[str] | None] = {}
    for kind_url in (url, "memory://|" + url):  # the Redis copy read alone, and by a chain
        with SessionStore(kind_url, dict) as reader:
            seen = {key: (reader.load(key) or {}).get("ops") for key in KEYS}
        final = final or seen
        assert seen == final, (kind_url, seen, final)
    problems = _checker()(histories, final)
    assert not problems, problems[:10]
