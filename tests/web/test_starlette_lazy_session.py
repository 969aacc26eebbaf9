"""Starlette's lazy session (``session_store/starlette.py``,
``websession/lazy.py``, ``websession/blocking.py``): the first use of ``request.session`` reads
the store from synchronous code (a helper event loop for a non-memory store) while the app's
own loop commits through the same ``AsyncSessionStore``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from session_store.aio import AsyncSessionStore, open_async_backend
from session_store.starlette import SessionMiddleware, regenerate_session
from session_store_redis.testing import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis_store(
    redis_server: RedisServer, redis_namespace: str
) -> AsyncIterator[AsyncSessionStore[dict[str, Any]]]:
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        open_async_backend(redis_server.url, prefix=redis_namespace), dict
    )
    yield store
    await store.backend.aclose()


async def set_key(request: Request) -> PlainTextResponse:
    request.session[request.path_params["key"]] = len(request.session)  # lazy first use
    await asyncio.sleep(0)  # let the other requests interleave
    return PlainTextResponse("ok")


def sync_set_key(request: Request) -> PlainTextResponse:
    request.session[request.path_params["key"]] = 1  # first use from a worker thread
    return PlainTextResponse("ok")


async def everything(request: Request) -> PlainTextResponse:
    return PlainTextResponse(",".join(sorted(request.session)))


async def test_held_concurrent_lazy_first_uses_on_redis_merge_every_key(
    redis_store: AsyncSessionStore[dict[str, Any]],
) -> None:
    """Held: 40 concurrent requests under one cookie, each reading the session lazily
    (blocking reads on the helper loop, async and thread-pool endpoints mixed) and setting a
    key of its own, on a real redis-server: no error, and every key is stored."""
    app = Starlette(
        routes=[
            Route("/set/{key}", set_key, methods=["POST"]),
            Route("/sync/{key}", sync_set_key, methods=["POST"]),
            Route("/all", everything),
        ],
        middleware=[Middleware(SessionMiddleware, store=redis_store)],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/set/seed")).status_code == 200
        paths = [f"/set/a{i}" if i % 2 else f"/sync/s{i}" for i in range(40)]
        answers = await asyncio.gather(*(client.post(path) for path in paths))
        assert [a.status_code for a in answers] == [200] * 40
        stored = (await client.get("/all")).text.split(",")
    assert sorted(stored) == sorted(["seed", *(p.rsplit("/", 1)[1] for p in paths)])


async def test_a_request_racing_a_login_does_not_expire_the_new_cookie(
    redis_store: AsyncSessionStore[dict[str, Any]],
) -> None:
    """Guarantee: regenerate (login) moves the session to a new id; only a logout ends it.

    Input: request B (``GET /slow-read``, read-only) has read the session when request A
    (``POST /login``, ``regenerate_session``) moves it to a new id and deletes the old one;
    then B ends. What happens: B's ``touch`` of the old id finds nothing, ``commit_steps``
    returns ``Outcome(None, DELETE)`` and the middleware (``had_cookie``) appends
    ``Set-Cookie: session=null; expires=Thu, 01 Jan 1970``: a browser applying B's response
    after A's loses the login. The same fault as the Flask test in test_web_guarantees.py.
    """
    has_read, release = asyncio.Event(), asyncio.Event()

    async def slow_read(request: Request) -> PlainTextResponse:
        user = request.session.get("user", "")
        has_read.set()
        await release.wait()
        return PlainTextResponse(str(user))

    async def login(request: Request) -> PlainTextResponse:
        regenerate_session(request)
        request.session["user"] = "alice"
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/set/{key}", set_key, methods=["POST"]),
            Route("/slow-read", slow_read),
            Route("/login", login, methods=["POST"]),
        ],
        middleware=[Middleware(SessionMiddleware, store=redis_store)],
    )
    transport = httpx.ASGITransport(app=app)
    base = "http://testserver"
    async with (
        httpx.AsyncClient(transport=transport, base_url=base) as browser,
        httpx.AsyncClient(transport=transport, base_url=base) as parallel,
    ):
        await browser.post("/set/cart")
        old = browser.cookies["session"]
        parallel.cookies.set("session", old)
        reader = asyncio.create_task(parallel.get("/slow-read"))
        await asyncio.wait_for(has_read.wait(), 10)
        logged_in = await browser.post("/login")
        release.set()
        late = await asyncio.wait_for(reader, 10)
    new = logged_in.headers.get("set-cookie", "")
    assert new.startswith("session=") and old not in new  # the login's new id was sent
    assert "1970" not in late.headers.get("set-cookie", ""), late.headers.get_list("set-cookie")
