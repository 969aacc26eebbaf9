"""Session fixation through a chain: an attacker (or a stolen, logged-out
browser) replays the cookie of a session that was logged out, so that the store holds a
*tombstone* under that id (``memory:// | diskcache://``, a real directory), and then makes the
request write. The promise (docs/starlette.md, docs/flask.md): "a cookie id the store does not
hold is never adopted". A tombstone must count as "not held" on the sync chain (Flask) and on
the async one (Starlette), and the write must neither land under the old id nor replace its
tombstone with a live value.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from flask import Flask, session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from session_store import SessionStore, open_backend, stamps
from session_store.aio import AsyncSessionStore
from session_store.flask import SessionStoreInterface
from session_store.starlette import SessionMiddleware, regenerate_session


def _tombstoned(directory: Path, sid: str) -> bool:
    raw = open_backend(f"diskcache://{directory}")
    try:
        held = raw.get(sid)
        return held is not None and stamps.is_tombstone(held)
    finally:
        raw.close()


def test_flask_never_adopts_the_cookie_of_a_logged_out_session(tmp_path: Path) -> None:
    """What held: after a logout through ``memory | diskcache``, the old id's cookie replayed
    in a fresh client (another worker) reads no user, and its write gets a new id; the old id
    keeps its tombstone."""
    directory = tmp_path / "disk"
    store: SessionStore[dict[str, Any]] = SessionStore(f"memory:// | diskcache://{directory}", dict)
    app = Flask(__name__)
    SessionStoreInterface.init_app(app, store)

    @app.post("/login/<user>")
    def login(user: str) -> str:
        session["user"] = user
        return "ok"

    @app.get("/whoami")
    def whoami() -> dict[str, Any]:
        return {"user": session.get("user")}

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "ok"

    try:
        victim = app.test_client()
        victim.post("/login/ann")
        cookie = victim.get_cookie("session")
        assert cookie is not None
        old = cookie.value
        victim.post("/logout")
        assert _tombstoned(directory, old)
        replay = app.test_client()
        replay.set_cookie("session", old)
        assert replay.get("/whoami").get_json() == {"user": None}
        replay.post("/login/mallory")
        new = replay.get_cookie("session")
        assert new is not None and new.value != old
        assert _tombstoned(directory, old)
        assert store.load(old) is None
    finally:
        store.close()


def test_starlette_never_adopts_the_cookie_of_a_logged_out_or_rotated_session(
    tmp_path: Path,
) -> None:
    """What held, on the async chain: the cookie of a session logged out, and the cookie a
    login rotated away (``regenerate_session``), each replayed in a fresh client, read an empty
    session; a write gets a new id, and neither old id holds a session afterwards."""
    directory = tmp_path / "disk"
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        f"memory:// | diskcache://{directory}", dict
    )

    async def login(request: Request) -> JSONResponse:
        regenerate_session(request)
        request.session["user"] = request.path_params["user"]
        return JSONResponse({"ok": True})

    async def touch_cart(request: Request) -> JSONResponse:
        request.session["cart"] = ["book"]
        return JSONResponse({"ok": True})

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.session.get("user")})

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/login/{user}", login, methods=["POST"]),
            Route("/cart", touch_cart, methods=["POST"]),
            Route("/whoami", whoami),
            Route("/logout", logout, methods=["POST"]),
        ]
    )
    app.add_middleware(SessionMiddleware, store=store)
    with TestClient(app) as victim:
        victim.post("/cart")
        before_login = victim.cookies["session"]
        victim.post("/login/ann")
        logged_in = victim.cookies["session"]
        assert logged_in != before_login
        victim.post("/logout")
    for old in (before_login, logged_in):
        with TestClient(app) as replay:  # the old cookie sent by hand on every request
            sent = {"cookie": f"session={old}"}
            assert replay.get("/whoami", headers=sent).json() == {"user": None}
            issued = replay.post("/login/mallory", headers=sent).cookies.get("session")
            assert issued is not None and issued not in (before_login, logged_in)

    async def gone() -> list[object]:
        return [await store.load(old) for old in (before_login, logged_in)]

    assert asyncio.run(gone()) == [None, None]
    asyncio.run(store.aclose())
