"""Django session engine requests racing a ``delete`` (a logout elsewhere:
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
import time
from pathlib import Path

import pytest

from session_store_redis.testing import RedisServer
from tests.web.delete_race import (
    REQUESTS,
    SESSIONS,
    check_history,
    delete_loop,
    inside,
    race,
    started,
)


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
    started(out, go)
    with open(out, "w") as log:
        for n in range(REQUESTS):
            sid = rng.choice(sids)
            began = time.time_ns()
            session = DjangoSession(sid)
            body = "gone"
            if session.get("started"):
                inside(out, sid)  # the deleter may delete this session now, before the save
                session[f"{name}-{n}"] = True
                try:
                    session.save()
                    body = "wrote"
                except UpdateError:
                    body = "refused"
            record = {"sid": sid, "key": f"{name}-{n}", "status": 200, "body": body}
            log.write(json.dumps({**record, "began": began, "ended": time.time_ns()}) + "\n")


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
    DjangoSession("x" * 43).delete()  # connected before the start
    delete_loop(sids[: len(sids) // 2], out, go, lambda sid: DjangoSession(sid).delete())


@pytest.mark.parametrize("shape", ["redis"])  # a chain: the Flask twin (shared websession)
def test_saves_racing_a_logout_elsewhere_lose_no_change_and_revive_no_session(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path, shape: str
) -> None:
    """On Redis alone, and on ``memory:// | redis://`` (each process with its own near cache,
    kept coherent by Redis's invalidations; the delete leaves tombstones)."""
    url = redis_server.url_for(prefix=redis_namespace)
    if shape == "chain":
        url = f"memory:// | {url}"
    # the deleter creates the sessions (Django's settings are global: not in this process)
    logs, deletes_log = race(
        tmp_path,
        url,
        ("test_django_delete_race", "_django_worker"),
        ("test_django_delete_race", "_delete_worker"),
    )
    check_history(url, json.loads((tmp_path / "sids.json").read_text()), logs, deletes_log)
