"""Attack (attack9, round 9) on the staged Redis writes under an ACL that refuses ``MULTI``.

A staged write sends ``MULTI``, ``SET <staging key> <value>``, the script that ``RENAME``-s the
staging key over the session's key, ``EXEC``, in one round trip. ``MULTI`` makes the four one
atomic step, which is why one staging key per database served every client
(``staged.staging_key``). When the server's ACL refuses ``MULTI``, the ``SET`` and the script
still run, one by one, and the backend then stops staging (``staged.Unqueued``,
``OrderedWrites._settled``). Every backend object's first large write is such an unqueued pair,
so processes that start together (a deploy, a restart of every worker) send them together; the
last session note called the shared-staging-key race "argued, not reproduced".

Here it is forced with real processes on a real redis-server: each round, every process opens
a fresh store (its first write is staged), waits at a barrier and updates *its own* session of
4 MiB (large enough that Redis reads the ``SET`` in several passes of its event loop and serves
the other clients in between). Afterwards every key must hold its own process's session.

Failed on every run (3 of 3; ``SET(p2) SET(p0) SET(p1) EVALSHA(p2) RENAME`` in ``MONITOR``):
every client shared one staging key. Fixed: a staging key per connection (the base name and a
random tag made once per connection, ``staged.connection_staging_key``), so an unqueued ``SET``
is only consumed by the script sent after it on the same connection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import unread_bytes

PROCESSES = 4
ROUNDS = 4
PAD_BYTES = 200_000  # above 32 KiB: Redis reads the SET's value as a "big argument"


def _worker(url: str, number: int, directory: str) -> None:
    """``ROUNDS`` rounds: a fresh store (its first large write is staged), one large update of
    this process's own key whose function waits until the parent paused the server; what each
    update did is written to ``result-<number>.json``."""
    base = Path(directory)
    pad = (f"{number}" * PAD_BYTES)[:PAD_BYTES]
    outcomes: list[str] = []
    for round_ in range(ROUNDS):
        with SessionStore(url, dict, ttl=600) as store:  # a fresh backend: it stages again
            key = f"s{number}"

            def change(current: dict[str, Any] | None, round_: int = round_) -> dict[str, Any]:
                (base / f"ready-{round_}-{number}").touch()
                while not (base / f"paused-{round_}").exists():
                    time.sleep(0.0005)
                return {"who": number, "n": (current or {"n": 0})["n"] + 1, "pad": pad}

            store.save(key, {"who": number, "n": 0})
            try:
                store.update(key, change)
                outcomes.append("ok")
            except Exception as exc:  # recorded: a failed write may be told as one
                outcomes.append(f"{type(exc).__name__}: {exc}"[:200])
            (base / f"done-{round_}-{number}").touch()
    (base / f"result-{number}.json").write_text(json.dumps(outcomes))


def _acl_url(server: RedisServer) -> str:
    """A user the ACL refuses ``MULTI``; the staged scripts cached by a process without it."""
    with server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "nomulti", "on", ">secret", "~*", "&*", "+@all", "-multi"
        )
    base = f"redis://127.0.0.1:{server.port}/0"
    with SessionStore(f"{base}?prefix=warm:", dict, ttl=600) as warm:
        warm.save("w", {"n": 0, "pad": "p" * 4000})
        warm.update("w", lambda s: {"n": 1, "pad": "p" * 4000})
    return f"redis://nomulti:secret@127.0.0.1:{server.port}/0?prefix=acl:&socket_timeout=60"


def _wait_for(paths: list[Path], children: list[subprocess.Popen[bytes]]) -> None:
    while not all(path.exists() for path in paths):
        assert all(child.poll() is None for child in children), "a worker died"
        time.sleep(0.002)


@pytest.mark.slow
def test_first_staged_writes_of_processes_starting_together_never_swap_sessions(
    tmp_path: Path,
) -> None:
    with RedisServer(directory=tmp_path / "redis") as server:
        url = _acl_url(server)
        code = (
            f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from test_attack9_staged_unqueued_race import _worker; "
            "_worker(sys.argv[1], int(sys.argv[2]), sys.argv[3])"
        )
        children = [
            subprocess.Popen([sys.executable, "-c", code, url, str(n), str(tmp_path)])
            for n in range(PROCESSES)
        ]
        swapped: list[str] = []
        try:
            for round_ in range(ROUNDS):
                _wait_for([tmp_path / f"ready-{round_}-{n}" for n in range(PROCESSES)], children)
                assert server.pid is not None
                os.kill(server.pid, signal.SIGSTOP)  # a stall (fork, slow command) ...
                try:
                    (tmp_path / f"paused-{round_}").touch()
                    # ... during which every process sends its whole staged write
                    while unread_bytes(server.port) < PROCESSES * PAD_BYTES:
                        assert all(child.poll() is None for child in children)
                        time.sleep(0.002)
                finally:
                    os.kill(server.pid, signal.SIGCONT)
                _wait_for([tmp_path / f"done-{round_}-{n}" for n in range(PROCESSES)], children)
                with SessionStore(url, dict, ttl=600) as reader:
                    for n in range(PROCESSES):
                        held: dict[str, Any] | None = reader.load(f"s{n}")
                        who = None if held is None else held.get("who")
                        pad = None if held is None else str(held.get("pad", ""))[:1]
                        if who != n or pad not in ("", str(n)):
                            swapped.append(f"round {round_}: s{n} holds who={who} pad={pad}")
        finally:
            for child in children:
                child.wait(timeout=120)
        results = [
            json.loads((tmp_path / f"result-{n}.json").read_text()) for n in range(PROCESSES)
        ]
        with server.client() as admin:
            leftovers = [key for key in admin.keys("acl:*") if b"\xff" in key]
    assert not swapped, (swapped[:10], results)
    assert leftovers == []
