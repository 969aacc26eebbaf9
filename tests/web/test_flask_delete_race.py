"""A Flask app's requests racing a server-side ``delete`` (an admin's forced
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
import time
from pathlib import Path
from typing import Any

import pytest

from session_store_redis.testing import RedisServer
from tests.web.delete_race import REQUESTS, SESSIONS, check_history, inside, race, started


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
        inside(os.environ["RACE_OUT"], request.cookies["session"])  # a delete may land now
        session[name] = True
        return "wrote"

    return app


def _flask_worker(url: str, name: str, sids_file: str, out: str, go: str) -> None:
    os.environ["RACE_OUT"] = out
    app = _app(url)
    sids = json.loads(Path(sids_file).read_text())
    rng = random.Random(name)
    started(out, go)
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
    (tmp_path / "sids.json").write_text(json.dumps(sids))
    logs, deletes_log = race(tmp_path, url, ("test_flask_delete_race", "_flask_worker"))
    check_history(url, sids, logs, deletes_log)
