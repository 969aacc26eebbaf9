"""Flask: session_store.flask on a real store (memory, and Redis where sharing matters)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, session
from flask.testing import FlaskClient

from session_store import MemoryBackend, SessionStore, open_backend, stamps
from session_store.flask import SessionStoreInterface, regenerate
from session_store_redis.testing import RedisServer
from tests.web.support import SESSION_ID, RecordingBackend, cookie_attributes, redis_commands


def make_app(
    backend: RecordingBackend | None = None, **config: Any
) -> tuple[Flask, RecordingBackend]:
    backend = backend or RecordingBackend(MemoryBackend())
    app = Flask(__name__)
    app.config.update(config)
    SessionStoreInterface.init_app(app, SessionStore(backend, dict))

    @app.get("/plain")
    def plain() -> str:
        return "no session here"

    @app.get("/read")
    def read() -> dict[str, Any]:
        return {"user": session.get("user"), "cart": session.get("cart", [])}

    @app.post("/login/<user>")
    def login(user: str) -> str:
        regenerate()
        session["user"] = user
        return "ok"

    @app.post("/set/<key>/<value>")
    def set_key(key: str, value: str) -> str:
        session[key] = value
        return "ok"

    @app.post("/cart/<item>")
    def add(item: str) -> str:
        session["cart"] = [*session.get("cart", []), item]
        return "ok"

    @app.post("/permanent")
    def permanent() -> str:
        session.permanent = True
        return "ok"

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "ok"

    return app, backend


def session_cookie(response: Any) -> dict[str, str]:
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert len(headers) == 1, response.headers
    return cookie_attributes(headers[0])


def sid_of(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("session")
    return cookie.value if cookie else None


def test_cookie_is_a_random_256_bit_id_httponly_lax() -> None:
    app, backend = make_app()
    client = app.test_client()
    cookie = session_cookie(client.post("/set/a/1"))
    assert SESSION_ID.fullmatch(cookie["value"])
    assert "httponly" in cookie and cookie["samesite"] == "Lax"
    assert "secure" not in cookie and "expires" not in cookie  # a browser-session cookie
    assert backend.inner.get(cookie["value"]) is not None  # the data is server-side
    other = make_app()[0].test_client()
    assert session_cookie(other.post("/set/a/1"))["value"] != cookie["value"]


def test_secure_and_samesite_come_from_flask_config() -> None:
    app, _ = make_app(SESSION_COOKIE_SECURE=True, SESSION_COOKIE_SAMESITE="Strict")
    cookie = session_cookie(app.test_client().post("/set/a/1"))
    assert "secure" in cookie and cookie["samesite"] == "Strict"


def test_untouched_request_costs_the_store_nothing() -> None:
    app, backend = make_app()
    client = app.test_client()
    client.post("/set/a/1")
    backend.calls.clear()
    response = client.get("/plain")
    assert backend.calls == []
    assert "Set-Cookie" not in response.headers


def test_read_only_request_writes_nothing_but_slides_expiry() -> None:
    app, backend = make_app()
    client = app.test_client()
    client.post("/set/user/ann")
    backend.calls.clear()
    assert client.get("/read").json == {"user": "ann", "cart": []}
    assert backend.writes() == []
    assert "touch" in backend.names()  # sliding expiry, no payload rewrite


def test_sliding_expiry_restarts_the_ttl(redis_server: RedisServer, redis_namespace: str) -> None:
    backend = RecordingBackend(open_backend(redis_server.url, prefix=redis_namespace))
    app, _ = make_app(backend, PERMANENT_SESSION_LIFETIME=timedelta(seconds=600))
    client = app.test_client()
    client.post("/set/user/ann")
    sid = sid_of(client)
    assert sid is not None
    backend.inner.touch(sid, 5)  # as if most of its life had passed
    client.get("/read")
    left = backend.inner.ttl(sid)
    assert left is not None and 590 < left <= 600


def test_unknown_client_id_is_never_adopted() -> None:
    app, backend = make_app()
    client = app.test_client()
    planted = "A" * 43  # well-formed, but not an id the store holds
    client.set_cookie("session", planted)
    cookie = session_cookie(client.post("/set/a/1"))
    assert cookie["value"] != planted
    assert backend.inner.get(planted) is None
    client.set_cookie("session", "../../etc/passwd")  # malformed: not even looked up
    backend.calls.clear()
    client.get("/read")
    assert backend.calls == []


def test_login_regenerates_the_id_and_deletes_the_old_one() -> None:
    app, backend = make_app()
    client = app.test_client()
    client.post("/cart/book")
    before = sid_of(client)
    client.post("/login/ann")
    after = sid_of(client)
    assert before and after and before != after
    assert backend.inner.get(before) is None
    assert client.get("/read").json == {"user": "ann", "cart": ["book"]}


def test_logout_deletes_server_side_and_expires_the_cookie() -> None:
    app, backend = make_app()
    client = app.test_client()
    client.post("/login/ann")
    sid = sid_of(client)
    assert sid is not None
    response = client.post("/logout")
    assert backend.inner.get(sid) is None
    assert session_cookie(response)["expires"].startswith("Thu, 01 Jan 1970")
    assert client.get("/read").json == {"user": None, "cart": []}


def test_permanent_session_gets_a_cookie_lifetime() -> None:
    app, _ = make_app(PERMANENT_SESSION_LIFETIME=timedelta(hours=2))
    cookie = session_cookie(app.test_client().post("/permanent"))
    assert "expires" in cookie


@pytest.fixture
def interleaved() -> Flask:
    """An app whose two views both read the session, wait for each other, then each change a
    different key: the two requests' read-modify-writes overlap for certain."""
    app = Flask(__name__)
    app.secret_key = "test"  # Flask-Session signs nothing by default but Flask wants it set
    barrier = threading.Barrier(2, timeout=10)

    @app.post("/a")
    def set_a() -> str:
        session.get("seed")
        barrier.wait()
        session["a"] = 1
        return "ok"

    @app.post("/b")
    def set_b() -> str:
        session.get("seed")
        barrier.wait()
        session["b"] = 2
        return "ok"

    @app.post("/seed")
    def seed() -> str:
        session["seed"] = True
        return "ok"

    @app.get("/all")
    def everything() -> dict[str, Any]:
        return dict(session)

    return app


def run_concurrently(app: Flask) -> dict[str, Any]:
    client = app.test_client()
    client.post("/seed")
    cookie = client.get_cookie("session")
    assert cookie is not None
    results: list[int] = []

    def hit(path: str) -> None:
        c = app.test_client()
        c.set_cookie("session", cookie.value)
        results.append(c.post(path).status_code)

    threads = [threading.Thread(target=hit, args=(p,)) for p in ("/a", "/b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200]
    data: dict[str, Any] = client.get("/all").get_json()
    return data


def test_concurrent_requests_changing_different_keys_both_survive(
    interleaved: Flask, redis_server: RedisServer, redis_namespace: str
) -> None:
    store = SessionStore(open_backend(redis_server.url, prefix=redis_namespace), dict)
    SessionStoreInterface.init_app(interleaved, store)
    assert run_concurrently(interleaved) == {"seed": True, "a": 1, "b": 2}


def test_flask_session_loses_one_of_the_two_changes(
    interleaved: Flask, redis_server: RedisServer, redis_namespace: str
) -> None:
    """The baseline the merge is measured against: Flask-Session writes the whole session back,
    so the later of the two requests erases the other's key."""
    import redis
    from flask_session import Session  # type: ignore[import-untyped]

    interleaved.config.update(
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis(port=redis_server.port),
        SESSION_KEY_PREFIX=f"{redis_namespace}fs:",
    )
    Session(interleaved)
    data = run_concurrently(interleaved)
    assert data["seed"] is True
    assert ("a" in data) != ("b" in data), data  # exactly one change was lost


def test_flask_value_types_survive_as_tagged_json() -> None:
    """Flask's own sessions keep tuples, bytes, Markup, UUIDs and datetimes (tagged JSON, no
    pickle); so do these, so flash(..., category) and friends work unchanged."""
    import uuid
    from datetime import UTC, datetime

    from flask import flash, get_flashed_messages
    from markupsafe import Markup

    app, _ = make_app()
    ident = uuid.uuid4()
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    @app.post("/types")
    def put() -> str:
        session.update(t=(1, 2), b=b"\x00\xff", m=Markup("<b>x</b>"), u=ident, d=when)
        flash(Markup("<i>saved</i>"), "info")
        return "ok"

    @app.get("/types")
    def get() -> str:
        assert session["t"] == (1, 2) and session["b"] == b"\x00\xff"
        assert session["m"] == Markup("<b>x</b>") and isinstance(session["m"], Markup)
        assert session["u"] == ident and session["d"] == when
        assert get_flashed_messages(with_categories=True) == [("info", Markup("<i>saved</i>"))]
        return "checked"

    client = app.test_client()
    client.post("/types")
    assert client.get("/types").text == "checked"


def test_emptying_the_session_deletes_it_and_modified_reflects_changes() -> None:
    app, backend = make_app()
    seen: list[bool] = []

    @app.post("/pop")
    def pop() -> str:
        seen.append(session.modified)
        session.pop("a", None)
        seen.append(session.modified)
        return "ok"

    client = app.test_client()
    client.post("/set/a/1")
    sid = sid_of(client)
    assert sid is not None
    response = client.post("/pop")
    assert seen == [False, True]
    assert backend.inner.get(sid) is None
    assert session_cookie(response)["expires"].startswith("Thu, 01 Jan 1970")


def test_an_unused_session_costs_a_real_redis_nothing(
    counted_redis: RedisServer, redis_namespace: str
) -> None:
    """Counted by the redis-server itself: requests with a valid session cookie that never use
    the session run no command; one that reads it runs its read (and a touch)."""
    store: SessionStore[dict[str, Any]] = SessionStore(
        counted_redis.url_for(prefix=redis_namespace), dict
    )
    app, _ = make_app(RecordingBackend(store.backend))
    client = app.test_client()
    client.post("/login/ann")
    commands = redis_commands(counted_redis.port)
    for _ in range(3):
        response = client.get("/plain")
        assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert commands() == 0
    assert client.get("/read").json == {"user": "ann", "cart": []}
    assert commands() >= 1
    store.close()


def test_set_cookie_only_when_the_browser_needs_a_new_one() -> None:
    """A browser-session cookie already carrying the session's id is not sent again when the
    session changes (its value and attributes would be the same); a new id, a permanent
    session's expiry, and a session made temporary again are sent."""
    app, _ = make_app(PERMANENT_SESSION_LIFETIME=timedelta(hours=2))

    @app.post("/temporary")
    def temporary() -> str:
        session.permanent = False
        return "ok"

    client = app.test_client()

    def cookies(response: Any) -> list[str]:
        return [h for h in response.headers.getlist("Set-Cookie") if h.startswith("session=")]

    assert len(cookies(client.post("/cart/book"))) == 1  # a new id
    first = sid_of(client)
    assert cookies(client.post("/cart/lamp")) == []  # same id, no expiry: nothing to send
    assert cookies(client.get("/read")) == []
    assert "Cookie" in client.post("/cart/pen").headers.get("Vary", "")
    assert len(cookies(client.post("/login/ann"))) == 1 and sid_of(client) != first
    assert "expires" in session_cookie(client.post("/permanent"))
    assert "expires" in session_cookie(client.post("/cart/cup"))  # a permanent one refreshes
    made_temporary = session_cookie(client.post("/temporary"))
    assert "expires" not in made_temporary and made_temporary["value"] == sid_of(client)
    assert cookies(client.post("/cart/hat")) == []
    assert client.get("/read").json == {
        "user": "ann",
        "cart": ["book", "lamp", "pen", "cup", "hat"],
    }


def test_a_store_opened_from_the_config_takes_the_session_lifetime_as_its_ttl(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The store opened from ``SESSION_STORE_URL`` has ``PERMANENT_SESSION_LIFETIME`` as its
    TTL, so a commit (which writes with that lifetime) stores the session as it is, without the
    frame that records a TTL other than the store's (session_store.ownttl)."""
    url = redis_server.url_for(prefix=redis_namespace)
    app = Flask(__name__)
    app.config.update(SESSION_STORE_URL=url, PERMANENT_SESSION_LIFETIME=timedelta(seconds=600))
    SessionStoreInterface.init_app(app)

    @app.post("/set")
    def put() -> str:
        session["user"] = "ann"
        return "ok"

    client = app.test_client()
    client.post("/set")
    sid = sid_of(client)
    assert sid is not None
    with open_backend(url) as raw:
        stored, left = raw.get(sid), raw.ttl(sid)
    assert stored is not None and stamps.own_ttl(stored) is None  # no frame
    assert left is not None and 590 < left <= 600
