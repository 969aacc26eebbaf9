"""Attack (round 6): Django session engine requests racing a ``delete`` (a logout elsewhere:
Django's ``SessionStore(sid).delete()``) over Redis, in real processes: two processes run what a
Django request does with ``session_store.django.SessionStore`` (load, add a key of their own,
``save``) on shared sessions while a third process deletes half of them. Every call is
recorded; the checker reads the histories after (the Flask twin: ``test_flask_delete_race.py``).

What must hold (docs/django.md): ``save()`` writes only the keys the request changed, merged
with compare-and-set, so every acknowledged ``save`` of a session nobody deleted keeps its key;
a session logged out elsewhere is never resurrected (``save()`` raises ``UpdateError``), so a
deleted session stays deleted and no ``save`` begun after the delete returned is acknowledged.
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


def _setup(url: str) -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(SESSION_ENGINE="session_store.django", SESSION_STORE_URL=url)
        django.setup()


def _django_worker(url: str, name: str, sids_file: str, out: str, go: str) -> None:
    _setup(url)
    from django.contrib.sessions.backends.base import UpdateError

    from session_store.django import SessionStore as DjangoSession

    while not os.path.exists(sids_file):  # the deleter creates them
        time.sleep(0.005)
    sids = json.loads(Path(sids_file).read_text())
    rng = random.Random(name)
    Path(out + ".ready").touch()  # imports done: the test starts every process at once
    while not os.path.exists(go):
        time.sleep(0.001)
    with open(out, "w") as log:
        for n in range(REQUESTS):
            sid = rng.choice(sids)
            began = time.time_ns()
            session = DjangoSession(sid)
            body = "gone"
            if session.get("started"):
                _inside(out, sid)  # the deleter may delete this session now, before the save
                session[f"{name}-{n}"] = True
                try:
                    session.save()
                    body = "wrote"
                except UpdateError:
                    body = "refused"
            record = {"sid": sid, "key": f"{name}-{n}", "status": 200, "body": body}
            log.write(json.dumps({**record, "began": began, "ended": time.time_ns()}) + "\n")


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
    _setup(url)
    from session_store.django import SessionStore as DjangoSession

    sids = []
    for _ in range(SESSIONS):
        session = DjangoSession()
        session["started"] = True
        session.save()
        assert session.session_key is not None
        sids.append(session.session_key)
    Path(sids_file + ".tmp").write_text(json.dumps(sids))
    os.replace(sids_file + ".tmp", sids_file)
    doomed = sids[: len(sids) // 2]

    DjangoSession("x" * 43).delete()  # connected before the start
    Path(out + ".ready").touch()  # imports done: the test starts every process at once
    while not os.path.exists(go):
        time.sleep(0.001)
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
            DjangoSession(sid).delete()
            log.write(json.dumps({"sid": sid, "began": began, "ended": time.time_ns()}) + "\n")


def _spawn(function: str, *args: str) -> subprocess.Popen[bytes]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"from test_django_delete_race import {function}; {function}(*sys.argv[1:])"
    )
    return subprocess.Popen([sys.executable, "-c", code, *args])


@pytest.mark.parametrize("shape", ["redis"])  # a chain: the Flask twin (shared websession)
def test_saves_racing_a_logout_elsewhere_lose_no_change_and_revive_no_session(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path, shape: str
) -> None:
    """On Redis alone, and on ``memory:// | redis://`` (each process with its own near cache,
    kept coherent by Redis's invalidations; the delete leaves tombstones)."""
    url = redis_server.url_for(prefix=redis_namespace)
    if shape == "chain":
        url = f"memory:// | {url}"
    sids_file = tmp_path / "sids.json"  # the deleter creates the sessions (Django's settings
    # are global: not in this process), the others wait for them
    go = tmp_path / "go"
    logs = [tmp_path / f"django-{n}.jsonl" for n in range(2)]
    deletes_log = tmp_path / "deletes.jsonl"
    children = [
        _spawn("_django_worker", url, f"p{n}", str(sids_file), str(logs[n]), str(go))
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
    sids = json.loads(sids_file.read_text())
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
