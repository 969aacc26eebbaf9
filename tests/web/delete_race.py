"""The harness the three delete-race tests share (``test_{flask,django,starlette}_delete_race``):
two processes run a framework's requests, each adding a key of its own to shared sessions,
while a third process deletes half of the sessions; every request and every delete is recorded
with its start and end (``time.time_ns``), and :func:`check_history` reads the records after.

The race is forced, not hoped for: a request that has read its session says so in a file
(:func:`inside`) and waits 10 ms, and the deleter deletes exactly such a doomed session
(:func:`doomed_inside`), so the delete lands between the request's read and its write.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store import SessionStore
from session_store.stamps import session_bytes

__all__ = [
    "REQUESTS",
    "SESSIONS",
    "check_history",
    "delete_loop",
    "delete_worker",
    "inside",
    "race",
    "started",
]

SESSIONS = 8
REQUESTS = 60  # per app process
_ROOT = Path(__file__).resolve().parents[2]  # the repository: ``tests.web`` imports from it


def inside(out: str, sid: str) -> None:
    """Say which session this process's request has read and not yet written (a file the
    deleter reads), and give the deleter the time to delete it: forces the race."""
    Path(out + ".inside.tmp").write_text(sid)
    os.replace(out + ".inside.tmp", out + ".inside")
    time.sleep(0.01)


def _doomed_inside(out: str, doomed: set[str]) -> str | None:
    """A session to delete now: one a request holds (read, not yet written) that is doomed."""
    for path in Path(out).parent.glob("*.inside"):
        try:
            sid = path.read_text()
        except OSError:
            continue
        if sid in doomed:
            return sid
    return None


def started(out: str, go: str) -> None:
    """Say this process is ready (imports done, connected), then wait for the common start."""
    Path(out + ".ready").touch()
    while not os.path.exists(go):
        time.sleep(0.001)


def delete_loop(doomed: list[str], out: str, go: str, delete: Callable[[str], object]) -> None:
    """Delete each doomed session while a request holds it (for 30 s at most), logging each."""
    started(out, go)
    with open(out, "w") as log:
        left = set(doomed)
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            sid = _doomed_inside(out, left)
            if sid is None:
                time.sleep(0.001)
                continue
            left.discard(sid)
            began = time.time_ns()
            delete(sid)
            log.write(json.dumps({"sid": sid, "began": began, "ended": time.time_ns()}) + "\n")


def delete_worker(url: str, sids_file: str, out: str, go: str) -> None:
    """The deleter of the Flask and Starlette races: ``SessionStore.delete`` (a forced logout)."""
    sids = json.loads(Path(sids_file).read_text())
    store: SessionStore[Any] = SessionStore(url)
    store.delete("x" * 43)  # connected before the start
    with store:
        delete_loop(sids[: len(sids) // 2], out, go, store.delete)


def _spawn(module: str, function: str, *args: str) -> subprocess.Popen[bytes]:
    code = (
        f"import sys; sys.path.insert(0, {str(_ROOT)!r}); "
        f"from tests.web.{module} import {function}; {function}(*sys.argv[1:])"
    )
    return subprocess.Popen([sys.executable, "-c", code, *args])


def race(
    tmp_path: Path,
    url: str,
    app: tuple[str, str],
    deleter: tuple[str, str] = ("delete_race", "delete_worker"),
) -> tuple[list[Path], Path]:
    """Run two app processes (``app``: module and function, given ``url``, a name, the sids
    file, its log and the start file) and the deleter, started together; their logs."""
    sids_file, go = tmp_path / "sids.json", tmp_path / "go"
    logs = [tmp_path / f"app-{n}.jsonl" for n in range(2)]
    deletes_log = tmp_path / "deletes.jsonl"
    children = [_spawn(*app, url, f"p{n}", str(sids_file), str(logs[n]), str(go)) for n in range(2)]
    children.append(_spawn(*deleter, url, str(sids_file), str(deletes_log), str(go)))
    deadline = time.monotonic() + 120
    while not all(Path(f"{log}.ready").exists() for log in [*logs, deletes_log]):
        assert time.monotonic() < deadline, "a worker did not start"
        time.sleep(0.01)
    go.touch()
    for child in children:
        assert child.wait(timeout=300) == 0
    return logs, deletes_log


def check_history(url: str, sids: list[str], logs: list[Path], deletes_log: Path) -> None:
    """No acknowledged change lost, no deleted session written back, no request that began
    after a delete wrote; and the race did run (a delete landed inside a request)."""
    requests = [json.loads(line) for log in logs for line in log.read_text().splitlines()]
    deletes = {d["sid"]: d for d in map(json.loads, deletes_log.read_text().splitlines())}
    assert len(requests) == 2 * REQUESTS and len(deletes) == SESSIONS // 2
    failed = [r for r in requests if r["status"] != 200]
    assert not failed, failed[:5]
    problems: list[str] = []
    reader: SessionStore[Any] = SessionStore(url)
    with reader:
        for sid in sids:
            raw = reader.backend.get(sid)
            stored = None if raw is None else session_bytes(raw)
            if sid in deletes:
                if stored is not None:
                    problems.append(f"{sid[:8]}: deleted, then written back")
                late = [
                    r
                    for r in requests
                    if r["sid"] == sid
                    and r["began"] > deletes[sid]["ended"]
                    and r["body"] == "wrote"
                ]
                problems += [f"{sid[:8]}: {r['key']} wrote after the delete" for r in late]
                continue
            data = reader.load(sid)
            assert isinstance(data, dict), (sid, data)
            wrote = [r["key"] for r in requests if r["sid"] == sid and r["body"] == "wrote"]
            problems += [
                f"{sid[:8]}: {key} acknowledged, then lost" for key in wrote if key not in data
            ]
    wrote_total = sum(1 for r in requests if r["body"] == "wrote")
    assert wrote_total > REQUESTS // 2
    in_flight = [  # requests that had read a session when its delete ran: the race ran
        r
        for r in requests
        if r["sid"] in deletes
        and r["began"] < deletes[r["sid"]]["began"]
        and r["ended"] > deletes[r["sid"]]["ended"]
    ]
    assert in_flight, "no delete landed inside a request"
    assert not problems, problems[:10]
