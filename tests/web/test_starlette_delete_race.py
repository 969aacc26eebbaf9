"""Starlette requests (``session_store.starlette.SessionMiddleware``, the async
store) racing a server-side ``delete`` (an admin's forced logout) over Redis, in real processes:
the twin of ``test_flask_delete_race.py`` (which says what must hold and how the race is
forced) for the async integration: two app processes each add a key of their own to shared
sessions while a third process deletes half of them, every call recorded and checked.
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
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from session_store.starlette import SessionMiddleware

    async def start(request: Request) -> PlainTextResponse:
        request.session["started"] = True
        return PlainTextResponse("ok")

    async def add(request: Request) -> PlainTextResponse:
        if not request.session.get("started"):
            return PlainTextResponse("gone")  # a new, empty session: writes nothing
        inside(os.environ["RACE_OUT"], request.cookies["session"])  # a delete may land now
        request.session[request.path_params["name"]] = True
        return PlainTextResponse("wrote")

    routes = [Route("/start", start, methods=["POST"]), Route("/add/{name}", add, methods=["POST"])]
    return Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, url=url)])


def _app_worker(url: str, name: str, sids_file: str, out: str, go: str) -> None:
    from starlette.testclient import TestClient

    os.environ["RACE_OUT"] = out
    app = _app(url)
    sids = json.loads(Path(sids_file).read_text())
    rng = random.Random(name)
    started(out, go)
    with open(out, "w") as log, TestClient(app) as client:
        for n in range(REQUESTS):
            sid = rng.choice(sids)
            client.cookies.clear()
            client.cookies.set("session", sid)
            began = time.time_ns()
            response = client.post(f"/add/{name}-{n}")
            record = {"sid": sid, "key": f"{name}-{n}", "status": response.status_code}
            record |= {"body": response.text, "began": began, "ended": time.time_ns()}
            log.write(json.dumps(record) + "\n")


@pytest.mark.parametrize("shape", ["redis"])  # a chain: the Flask twin (shared websession)
def test_requests_racing_a_server_side_delete_lose_no_change_and_revive_no_session(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path, shape: str
) -> None:
    """On Redis alone, and on ``memory:// | redis://`` (each process with its own near cache,
    kept coherent by Redis's invalidations; the delete leaves tombstones)."""
    url = redis_server.url_for(prefix=redis_namespace)
    if shape == "chain":
        url = f"memory:// | {url}"
    from starlette.testclient import TestClient

    sids = []
    with TestClient(_app(url)) as client:
        for _ in range(SESSIONS):
            client.cookies.clear()
            assert client.post("/start").text == "ok"
            sid = client.cookies.get("session")
            assert sid is not None
            sids.append(sid)
    (tmp_path / "sids.json").write_text(json.dumps(sids))
    logs, deletes_log = race(tmp_path, url, ("test_starlette_delete_race", "_app_worker"))
    check_history(url, sids, logs, deletes_log)
