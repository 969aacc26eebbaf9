"""Attack (round 6): a Flask app's requests racing a server-side ``delete`` (an admin's forced
logout, ``SessionStore.delete``) over Redis, in real processes: two Flask processes (the
integration, its lean Redis client and staged compare-and-set) each add a key of their own to
shared sessions while a third process deletes half of the sessions. Every request and every
delete is recorded; the checker reads the histories after.

What must hold (README, "Async and web frameworks"; docs/flask.md): two concurrent requests of
one user changing different keys both keep their change, so every request that wrote its key
into a session nobody deleted finds it there at the end; a deleted session stays deleted (a
request that read it before the delete and commits after must not write it back); and a
request never adopts a deleted id (its session is new, with no data).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store.stamps import session_bytes
from session_store_redis.testing import RedisServer

SESSIONS = 8
REQUESTS = 60  # per app process


def _app(url: str) -> Any:
    from flask import Flask, request, session

    from session_store.flask import SessionStoreInterface

    app = Flask(__name__)
    app.config["SESSION_STORE_URL"] = url
    SessionStoreInterface.init_app(app)

    @app.post("/start")
    def start() -> str:
        session["started"] = True
        return "ok"

    @app.post("/add/<name>")
    def add(name: str) -> str:
        if not session.get("started"):
            return "gone"  # a new, empty session: writes nothing
        _inside(os.environ["RACE_OUT"], request.cookies["session"])  # a delete may land now
        session[name] = True
        return "wrote"

    return app


def _flask_worker(url: str, name: str, sids_file: str, out: str, go: str) -> None:
    os.environ["RACE_OUT"] = out
    app = _app(url)
    sids = json.loads(Path(sids_file).read_text())
    rng = random.Random(name)
    Path(out + ".ready").touch()  # imports done: the test starts every process at once
    while not os.path.exists(go):
        time.sleep(0.001)
    with open(out, "w") as log, app.test_client() as client:
        for n in range(REQUESTS):
            sid = rng.choice(sids)
            client.set_cookie("session", sid)
            began = time.time_ns()
            response = client.post(f"/add/{name}-{n}")
            log.write(
                json.dumps(
                    {
                        "sid": sid,
                        "key": f"{name}-{n}",
                        "status": response.status_code,
                        "body": response.text,
                        "began": began,
                        "ended": time.time_ns(),
                    }
                )
                + "\n"
            )


def _inside(out: str, sid: str) -> None:
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


def _delete_worker(url: str, sids_file: str, out: str, go: str) -> None:
    sids = json.loads(Path(sids_file).read_text())
    doomed = sids[: len(sids) // 2]
    store: SessionStore[Any] = SessionStore(url)
    store.delete("x" * 43)  # connected before the start
    Path(out + ".ready").touch()  # imports done: the test starts every process at once
    while not os.path.exists(go):
        time.sleep(0.001)
    with store, open(out, "w") as log:
        left = set(doomed)
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            sid = _doomed_inside(out, left)
            if sid is None:
                time.sleep(0.001)
                continue
            left.discard(sid)
            began = time.time_ns()
            store.delete(sid)
            log.write(json.dumps({"sid": sid, "began": began, "ended": time.time_ns()}) + "\n")


def _spawn(function: str, *args: str) -> subprocess.Popen[bytes]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"from test_flask_delete_race import {function}; {function}(*sys.argv[1:])"
    )
    return subprocess.Popen([sys.executable, "-c", code, *args])


@pytest.mark.parametrize("shape", ["redis", "chain"])
def test_requests_racing_a_server_side_delete_lose_no_change_and_revive_no_session(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path, shape: str
) -> None:
    """On Redis alone, and on ``memory:// | redis://`` (each process with its own near cache,
    kept coherent by Redis's invalidations; the delete leaves tombstones)."""
    url = redis_server.url_for(prefix=redis_namespace)
    if shape == "chain":
        url = f"memory:// | {url}"
    app = _app(url)
    sids = []
    with app.test_client() as client:
        for _ in range(SESSIONS):
            client.delete_cookie("session")
            assert client.post("/start").text == "ok"
            cookie = client.get_cookie("session")
            assert cookie is not None
            sids.append(cookie.value)
    sids_file = tmp_path / "sids.json"
    sids_file.write_text(json.dumps(sids))
    go = tmp_path / "go"
    logs = [tmp_path / f"flask-{n}.jsonl" for n in range(2)]
    deletes_log = tmp_path / "deletes.jsonl"
    children = [
        _spawn("_flask_worker", url, f"p{n}", str(sids_file), str(logs[n]), str(go))
        for n in range(2)
    ]
    children.append(_spawn("_delete_worker", url, str(sids_file), str(deletes_log), str(go)))
    deadline = time.monotonic() + 120
    while not all(Path(f"{log}.ready").exists() for log in [*logs, deletes_log]):
        assert time.monotonic() < deadline, "a worker did not start"
        time.sleep(0.01)
    go.touch()
    for child in children:
        assert child.wait(timeout=300) == 0
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
