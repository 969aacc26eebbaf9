"""Starlette / FastAPI: session_store.starlette.SessionMiddleware on real async stores."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from session_store import MemoryBackend, open_backend, stamps
from session_store.aio import AsyncSessionStore, ThreadedBackend, open_async_backend
from session_store.starlette import (
    DEFAULT_TTL,
    SessionMiddleware,
    load_session,
    regenerate_session,
)
from session_store.websession.lazy import LazyDictSession, LoadingScope
from session_store.websession.state import DictSession, Read
from session_store_redis.testing import RedisServer
from tests.web.support import SESSION_ID, RecordingBackend, cookie_attributes, redis_commands

pytestmark = pytest.mark.anyio


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no session here")


async def read(request: Request) -> JSONResponse:
    return JSONResponse({"user": request.session.get("user"), "cart": request.session.get("cart")})


async def login(request: Request) -> PlainTextResponse:
    regenerate_session(request)
    request.session["user"] = request.path_params["user"]
    return PlainTextResponse("ok")


async def add(request: Request) -> PlainTextResponse:
    request.session["cart"] = [*request.session.get("cart", []), request.path_params["item"]]
    return PlainTextResponse("ok")


async def logout(request: Request) -> PlainTextResponse:
    request.session.clear()
    return PlainTextResponse("ok")


ROUTES = [
    Route("/plain", plain),
    Route("/read", read),
    Route("/login/{user}", login, methods=["POST"]),
    Route("/cart/{item}", add, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]


def make_app(**options: Any) -> tuple[Starlette, RecordingBackend]:
    recorder = RecordingBackend(MemoryBackend())
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(ThreadedBackend(recorder), dict)
    app = Starlette(
        routes=ROUTES, middleware=[Middleware(SessionMiddleware, store=store, **options)]
    )
    return app, recorder


def client_for(app: ASGIApp, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def set_cookie(response: httpx.Response) -> dict[str, str]:
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    return cookie_attributes(headers[0])


async def test_cookie_is_a_random_256_bit_id_httponly_lax() -> None:
    app, recorder = make_app()
    async with client_for(app) as client:
        cookie = set_cookie(await client.post("/cart/book"))
    assert SESSION_ID.fullmatch(cookie["value"])
    assert "httponly" in cookie and cookie["samesite"] == "lax" and "secure" not in cookie
    assert cookie["max-age"] == str(14 * 24 * 3600)
    assert recorder.inner.get(cookie["value"]) is not None


async def test_https_only_sets_secure() -> None:
    app, _ = make_app(https_only=True)
    async with client_for(app, "https://testserver") as client:
        assert "secure" in set_cookie(await client.post("/cart/book"))


async def test_session_cookie_setting_does_not_raise_and_still_expires() -> None:
    """``max_age=None`` is Starlette's browser-session cookie: no Max-Age, and the server keeps
    a TTL of its own (a session always expires)."""
    app, recorder = make_app(max_age=None)
    async with client_for(app) as client:
        cookie = set_cookie(await client.post("/cart/book"))
    assert "max-age" not in cookie and "expires" not in cookie
    left = recorder.inner.ttl(cookie["value"])
    assert left is not None and DEFAULT_TTL - 60 < left <= DEFAULT_TTL


async def test_untouched_requests_cost_nothing_and_read_only_writes_nothing() -> None:
    app, recorder = make_app()
    async with client_for(app) as client:
        assert (await client.get("/plain")).headers.get("set-cookie") is None
        assert recorder.calls == []  # no cookie, no session: nothing at all
        await client.post("/login/ann")
        recorder.calls.clear()
        response = await client.get("/plain")
        assert recorder.calls == []  # a valid cookie, an unused session: not even a read
        assert response.headers.get("set-cookie") is None
        recorder.calls.clear()
        assert (await client.get("/read")).json() == {"user": "ann", "cart": None}
        assert recorder.writes() == []
        assert "touch" in recorder.names()  # sliding expiry without a payload write


async def test_sliding_expiry_restarts_the_ttl() -> None:
    app, recorder = make_app(max_age=600)
    async with client_for(app) as client:
        sid = set_cookie(await client.post("/cart/book"))["value"]
        recorder.inner.touch(sid, 5)
        await client.get("/read")
    left = recorder.inner.ttl(sid)
    assert left is not None and 590 < left <= 600


async def test_unknown_client_id_is_never_adopted() -> None:
    app, recorder = make_app()
    planted = "B" * 43
    async with client_for(app) as client:
        client.cookies.set("session", planted)
        cookie = set_cookie(await client.post("/cart/book"))
    assert cookie["value"] != planted and recorder.inner.get(planted) is None


async def test_login_regenerates_and_logout_deletes() -> None:
    app, recorder = make_app()
    async with client_for(app) as client:
        first = set_cookie(await client.post("/cart/book"))["value"]
        second = set_cookie(await client.post("/login/ann"))["value"]
        assert first != second and recorder.inner.get(first) is None
        assert (await client.get("/read")).json() == {"user": "ann", "cart": ["book"]}
        expired = set_cookie(await client.post("/logout"))
        assert expired["expires"].startswith("Thu, 01 Jan 1970")
        assert recorder.inner.get(second) is None
        assert (await client.get("/read")).json() == {"user": None, "cart": None}


def interleaved_routes(load: Callable[[Request], Any] | None = None) -> list[Route]:
    """``/a`` and ``/b`` both read the session, wait for each other, then change different keys."""
    barrier = asyncio.Barrier(2)

    async def change(request: Request) -> PlainTextResponse:
        if load is not None:
            await load(request)
        request.session.get("seed")
        await barrier.wait()
        request.session[request.path_params["key"]] = 1
        return PlainTextResponse("ok")

    async def seed(request: Request) -> PlainTextResponse:
        if load is not None:
            await load(request)
        request.session["seed"] = True
        return PlainTextResponse("ok")

    async def everything(request: Request) -> JSONResponse:
        if load is not None:
            await load(request)
        return JSONResponse(dict(request.session))

    return [
        Route("/seed", seed, methods=["POST"]),
        Route("/set/{key}", change, methods=["POST"]),
        Route("/all", everything),
    ]


async def run_concurrently(app: ASGIApp) -> dict[str, Any]:
    async with client_for(app) as client:
        await client.post("/seed")
        a, b = await asyncio.gather(client.post("/set/a"), client.post("/set/b"))
        assert a.status_code == b.status_code == 200
        data: dict[str, Any] = (await client.get("/all")).json()
        return data


@pytest.fixture
async def redis_store(
    redis_server: RedisServer, redis_namespace: str
) -> AsyncIterator[AsyncSessionStore[dict[str, Any]]]:
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        open_async_backend(redis_server.url, prefix=redis_namespace), dict
    )
    yield store
    await store.backend.aclose()


async def test_concurrent_requests_changing_different_keys_both_survive(
    redis_store: AsyncSessionStore[dict[str, Any]],
) -> None:
    app = Starlette(
        routes=interleaved_routes(), middleware=[Middleware(SessionMiddleware, store=redis_store)]
    )
    assert await run_concurrently(app) == {"seed": True, "a": 1, "b": 1}


async def test_starsessions_loses_one_of_the_two_changes(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The baseline: starsessions writes the whole session back, the later request wins."""
    import redis.asyncio
    from starsessions import SessionMiddleware as StarSessions
    from starsessions import load_session
    from starsessions.stores.redis import RedisStore

    connection = redis.asyncio.Redis(port=redis_server.port)
    store = RedisStore(connection=connection, prefix=f"{redis_namespace}star:")
    app = Starlette(
        routes=interleaved_routes(load_session),
        middleware=[Middleware(StarSessions, store=store, cookie_https_only=False, lifetime=600)],
    )
    data = await run_concurrently(app)
    await connection.aclose()
    assert data["seed"] is True
    assert ("a" in data) != ("b" in data), data  # exactly one change was lost


# -- the session is read on first use, not before the app runs ------------------------------------
async def test_an_unused_session_costs_a_real_redis_nothing(counted_redis: RedisServer) -> None:
    """Counted by the redis-server itself: requests carrying a valid session cookie that never
    use the session run no command; one that reads it runs its read (and a touch)."""
    redis_store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(
        open_async_backend(counted_redis.url), dict
    )
    app = Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, store=redis_store)])
    async with client_for(app) as client:
        await client.post("/login/ann")
        commands = redis_commands(counted_redis.port)
        for _ in range(3):
            response = await client.get("/plain")
            assert response.status_code == 200 and "set-cookie" not in response.headers
        assert commands() == 0
        assert (await client.get("/read")).json() == {"user": "ann", "cart": None}
        assert commands() >= 1
    await redis_store.backend.aclose()


async def test_request_session_is_a_dict_holding_the_stored_data() -> None:
    """Starlette's own tests hand ``request.session`` to ``json.dumps`` (whose C encoder reads
    a ``dict`` directly): the first use must have read it by then."""
    import json

    import orjson

    async def show(request: Request) -> JSONResponse:
        session = request.session
        assert type(session) is DictSession  # read, and from now on a plain dict subclass
        return JSONResponse({"session": session, "orjson": orjson.loads(orjson.dumps(session))})

    app, recorder = make_app()
    app.router.routes.append(Route("/show", show))
    async with client_for(app) as client:
        await client.post("/cart/book")
        recorder.calls.clear()
        body = (await client.get("/show")).json()
    assert body == {"session": {"cart": ["book"]}, "orjson": {"cart": ["book"]}}
    assert recorder.names() == ["get_versioned", "touch"]
    assert json.dumps(dict(body["session"])) == '{"cart": ["book"]}'


async def test_load_session_reads_without_blocking_the_loop(
    redis_store: AsyncSessionStore[dict[str, Any]],
) -> None:
    """``await load_session(request)`` reads through the request's own loop: the helper loop
    that a first use from synchronous code would need is never started."""

    async def awaited(request: Request) -> JSONResponse:
        session = await load_session(request)
        assert session is request.session
        return JSONResponse(dict(session))

    middleware = Middleware(SessionMiddleware, store=redis_store)
    app = Starlette(routes=[*ROUTES, Route("/awaited", awaited)], middleware=[middleware])
    async with client_for(app) as client:
        await client.post("/cart/book")
        ours: Any = app.middleware_stack
        while not isinstance(ours, SessionMiddleware):
            ours = ours.app
        assert (await client.get("/awaited")).json() == {"cart": ["book"]}
        assert ours._blocking_reads._thread is None  # no read from synchronous code yet
        assert (await client.get("/read")).json() == {"user": None, "cart": ["book"]}
        assert ours._blocking_reads._thread is not None  # /read's first use did one
    ours._blocking_reads.close()


async def test_autoload_reads_every_request_with_a_cookie() -> None:
    """``autoload=True`` reads, awaited, before the app runs: the documented trade-off."""
    app, recorder = make_app(autoload=True)
    async with client_for(app) as client:
        await client.post("/cart/book")
        recorder.calls.clear()
        await client.get("/plain")
        assert recorder.names() == ["get_versioned"] and recorder.writes() == []
        assert (await client.get("/read")).json() == {"user": None, "cart": ["book"]}


def test_a_lazy_session_reads_once_on_any_first_use() -> None:
    reads: list[str] = []

    def loader(sid: str) -> Read | None:
        reads.append(sid)
        return Read({"a": 1}, b"token")

    async def aloader(sid: str) -> Read | None:
        return loader(sid)

    sid = "A" * 43
    uses: list[Callable[[dict[str, Any]], Any]] = [
        lambda s: s["a"],
        lambda s: "a" in s,
        len,
        list,
        dict,
        lambda s: s.get("a"),
        lambda s: s == {"a": 1},
        lambda s: {**s},
        lambda s: s | {"b": 2},
        lambda s: s.items(),
        lambda s: s.setdefault("b", 2),
        lambda s: s.update(b=2),
        lambda s: s.pop("a"),
        lambda s: s.clear(),
        bool,
    ]
    for use in uses:
        session = LazyDictSession(sid, loader, aloader)
        assert not session.loaded and reads == [] and repr(session).endswith("(<not loaded>)")
        use(session)
        assert reads == [sid] and session.loaded and type(session) is DictSession, use
        reads.clear()
    scope = LoadingScope({"type": "http", "session": LazyDictSession(sid, loader, aloader)})
    assert reads == []
    assert __import__("json").dumps(scope["session"]) == '{"a": 1}'  # read by the scope
    assert scope.get("session") == {"a": 1} and reads == [sid]


async def test_a_store_opened_from_a_url_is_read_through_its_blocking_twin(
    counted_redis: RedisServer, redis_namespace: str
) -> None:
    """``url=``: the first use reads through the sync backend of the same URL (no helper loop,
    no thread hand-off); its version token is the async backend's, so the end of the request
    writes with one compare-and-set, and concurrent changes of different keys both land."""
    url = counted_redis.url_for(prefix=redis_namespace)
    app = Starlette(
        routes=interleaved_routes(), middleware=[Middleware(SessionMiddleware, url=url)]
    )
    assert await run_concurrently(app) == {"seed": True, "a": 1, "b": 1}
    ours: Any = app.middleware_stack
    while not isinstance(ours, SessionMiddleware):
        ours = ours.app
    reads = ours._blocking_reads
    assert reads._twin is not None and reads._thread is None
    commands = redis_commands(counted_redis.port)
    async with client_for(app) as client:
        await client.post("/seed")
        assert commands() == 1  # a new session: one SET NX under a fresh id, no read
        await client.post("/seed")  # the same value again: nothing to write
        # GET through the twin, then the sliding expiry's touch: one EVALSHA (touch_session),
        # whose GETRANGE and PEXPIRE Redis counts as commands too: two round trips
        assert commands() == 4
        assert (await client.get("/all")).json() == {"seed": True}
        assert commands() == 4  # the same: GET, then the touch
    reads.close()
    await ours.store.aclose()


async def test_a_store_opened_from_a_url_takes_the_cookie_lifetime_as_its_ttl(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The store the middleware opens from ``url=`` has ``max_age`` as its TTL, so a commit
    (which writes with that lifetime) stores the session as it is, without the frame that
    records a TTL other than the store's (session_store.ownttl), and with that lifetime."""
    url = redis_server.url_for(prefix=redis_namespace)
    app = Starlette(
        routes=interleaved_routes(),
        middleware=[Middleware(SessionMiddleware, url=url, max_age=600)],
    )
    async with client_for(app) as client:
        await client.post("/seed")
        sid = client.cookies.get("session")
    assert sid is not None
    with open_backend(url) as raw:
        stored, left = raw.get(sid), raw.ttl(sid)
    assert stored is not None and stamps.own_ttl(stored) is None  # no frame
    assert left is not None and 590 < left <= 600
