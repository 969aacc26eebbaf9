"""Django: SESSION_ENGINE = "session_store.django" behind Django's own SessionMiddleware."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path

import session_store.django as engine
from session_store import MemoryBackend, SessionStore, open_backend, stamps
from session_store_redis.testing import RedisServer
from tests.web.support import SESSION_ID, RecordingBackend, redis_commands

if not settings.configured:
    settings.configure(
        SECRET_KEY="tests-only",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="session_store.django",
        SESSION_STORE_URL="memory://",
        DATABASES={},
        USE_TZ=True,
    )
    django.setup()


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no session here")


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": request.session.get("user"), "cart": request.session.get("cart")})


def login(request: HttpRequest, user: str) -> HttpResponse:
    request.session.cycle_key()  # what django.contrib.auth.login does
    request.session["user"] = user
    return HttpResponse("ok")


def add(request: HttpRequest, item: str) -> HttpResponse:
    request.session["cart"] = [*request.session.get("cart", []), item]
    return HttpResponse("ok")


def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()  # what django.contrib.auth.logout does
    return HttpResponse("ok")


_barrier: threading.Barrier | None = None


def change(request: HttpRequest, key: str) -> HttpResponse:
    request.session.get("seed")
    assert _barrier is not None
    _barrier.wait()
    request.session[key] = 1
    return HttpResponse("ok")


def seed(request: HttpRequest) -> HttpResponse:
    request.session["seed"] = True
    return HttpResponse("ok")


def everything(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.session.items()))


urlpatterns = [
    path("plain", plain),
    path("read", read),
    path("login/<str:user>", login),
    path("cart/<str:item>", add),
    path("logout", logout),
    path("set/<str:key>", change),
    path("seed", seed),
    path("all", everything),
]


@pytest.fixture
def recorder() -> Iterator[RecordingBackend]:
    """The engine's store for this test: a recording memory backend under a URL of its own."""
    url = f"memory://?max_entries={10_000 + threading.get_ident() % 1000}"
    backend = RecordingBackend(MemoryBackend())
    engine._stores[url] = SessionStore(backend, dict)
    with override_settings(SESSION_STORE_URL=url):
        yield backend
    del engine._stores[url]


def sid(client: Client) -> str:
    return str(client.cookies["sessionid"].value)


def test_cookie_is_a_random_256_bit_id_httponly_lax(recorder: RecordingBackend) -> None:
    client = Client()
    response = client.post("/cart/book")
    morsel = response.cookies["sessionid"]
    assert SESSION_ID.fullmatch(morsel.value)
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and not morsel["secure"]
    assert recorder.inner.get(morsel.value) is not None
    with override_settings(SESSION_COOKIE_SECURE=True):
        assert Client().post("/cart/book").cookies["sessionid"]["secure"]


def test_ttl_is_session_cookie_age(recorder: RecordingBackend) -> None:
    client = Client()
    with override_settings(SESSION_COOKIE_AGE=600):
        client.post("/cart/book")
    left = recorder.inner.ttl(sid(client))
    assert left is not None and 590 < left <= 600


def test_untouched_and_read_only_requests(recorder: RecordingBackend) -> None:
    client = Client()
    client.post("/login/ann")
    recorder.calls.clear()
    client.get("/plain")
    assert recorder.calls == []
    assert client.get("/read").json() == {"user": "ann", "cart": None}
    assert recorder.writes() == [] and "touch" not in recorder.names()


def test_sliding_expiry_with_save_every_request(recorder: RecordingBackend) -> None:
    client = Client()
    with override_settings(SESSION_SAVE_EVERY_REQUEST=True, SESSION_COOKIE_AGE=600):
        client.post("/cart/book")
        key = sid(client)
        recorder.inner.touch(key, 5)
        recorder.calls.clear()
        client.get("/read")
    assert recorder.writes() == [] and "touch" in recorder.names()
    left = recorder.inner.ttl(key)
    assert left is not None and 590 < left <= 600


def test_unknown_client_id_is_never_adopted(recorder: RecordingBackend) -> None:
    client = Client()
    planted = "C" * 43
    client.cookies["sessionid"] = planted
    client.post("/cart/book")
    assert sid(client) != planted and recorder.inner.get(planted) is None
    client.cookies["sessionid"] = "x" * 5000  # hostile: longer than any key, refused
    assert client.get("/read").json() == {"user": None, "cart": None}


def test_a_key_that_is_not_an_issued_id_is_never_looked_up(recorder: RecordingBackend) -> None:
    recorder.inner.set("U063826716", b'{"name": "Alice"}')  # another key of a shared store
    client = Client()
    client.cookies["sessionid"] = "U063826716"
    recorder.calls.clear()
    assert client.get("/read").json() == {"user": None, "cart": None}
    session = engine.SessionStore("U063826716")
    assert not session.exists("U063826716")
    session.delete("U063826716")
    assert recorder.calls == []
    assert recorder.inner.get("U063826716") == b'{"name": "Alice"}'


def test_a_change_committed_while_a_login_ran_moves_with_the_session(
    recorder: RecordingBackend,
) -> None:
    first = engine.SessionStore()
    first["user"] = "anonymous"
    first.save()
    old = first.session_key
    login = engine.SessionStore(old)
    assert login["user"] == "anonymous"  # the login request has read the session
    other = engine.SessionStore(old)
    other["cart"] = ["book"]
    other.save()  # another request of the same browser commits meanwhile
    login.cycle_key()  # what django.contrib.auth.login does
    login["user"] = "alice"
    login.save()
    store = SessionStore(recorder, dict)
    assert login.session_key not in (None, old) and store.load(old) is None
    assert store.load(login.session_key) == {"user": "alice", "cart": ["book"]}


def test_login_cycles_the_key_and_logout_deletes(recorder: RecordingBackend) -> None:
    client = Client()
    client.post("/cart/book")
    first = sid(client)
    client.post("/login/ann")
    second = sid(client)
    assert first != second and recorder.inner.get(first) is None
    assert client.get("/read").json() == {"user": "ann", "cart": ["book"]}
    client.post("/logout")
    assert recorder.inner.get(second) is None
    assert client.get("/read").json() == {"user": None, "cart": None}


def run_concurrently() -> dict[str, Any]:
    global _barrier
    _barrier = threading.Barrier(2, timeout=10)
    client = Client()
    client.post("/seed")
    cookie = sid(client)
    statuses: list[int] = []

    def hit(key: str) -> None:
        other = Client()
        other.cookies["sessionid"] = cookie
        statuses.append(other.post(f"/set/{key}").status_code)

    threads = [threading.Thread(target=hit, args=(key,)) for key in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    data: dict[str, Any] = client.get("/all").json()
    return data


def test_concurrent_requests_changing_different_keys_both_survive(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    url = redis_server.url_for(prefix=redis_namespace)
    engine._stores[url] = SessionStore(open_backend(url), dict)
    with override_settings(SESSION_STORE_URL=url):
        assert run_concurrently() == {"seed": True, "a": 1, "b": 1}
    engine._stores.pop(url).close()


def test_djangos_cache_engine_loses_one_of_the_two_changes() -> None:
    """The baseline: Django's cache engine writes the whole session, the later request wins."""
    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
    ):
        data = run_concurrently()
    assert data["seed"] is True
    assert ("a" in data) != ("b" in data), data


def test_a_changing_request_is_one_read_and_one_compare_and_set(
    recorder: RecordingBackend,
) -> None:
    client = Client()
    client.post("/cart/book")
    recorder.calls.clear()
    client.post("/cart/lamp")
    assert recorder.names() == ["get_versioned", "set_if"]
    assert client.get("/read").json() == {"user": None, "cart": ["book", "lamp"]}


def test_an_unused_session_costs_a_real_redis_nothing(
    counted_redis: RedisServer, redis_namespace: str
) -> None:
    """Counted by the redis-server itself, behind Django's own SessionMiddleware."""
    url = counted_redis.url_for(prefix=redis_namespace)
    engine._stores[url] = SessionStore(open_backend(url), dict)
    with override_settings(SESSION_STORE_URL=url):
        client = Client()
        client.post("/login/ann")
        commands = redis_commands(counted_redis.port)
        for _ in range(3):
            assert client.get("/plain").status_code == 200
        assert commands() == 0
        assert client.get("/read").json() == {"user": "ann", "cart": None}
        assert commands() >= 1
    engine._stores.pop(url).close()


class _SavesOnceRetired(MemoryBackend):
    """A real memory backend where another request's ``save`` runs right after a
    ``cycle_key`` retired the old id (between the retire and the delete)."""

    def __init__(self) -> None:
        super().__init__()
        self.other: Any = None
        self.errors: list[BaseException] = []

    def set_if(self, key: str, value: bytes, token: Any, ttl: float | None = None) -> bool:
        done = super().set_if(key, value, token, ttl)
        other = self.other
        if done and other is not None and key == other.session_key:
            self.other = None
            try:
                other.save()
            except Exception as exc:  # what Django's middleware would turn into a 400
                self.errors.append(exc)
        return done


def test_a_save_after_cycle_key_retired_the_old_id_is_refused_not_lost() -> None:
    from django.contrib.sessions.backends.base import UpdateError

    url = f"memory://?max_entries={20_000 + threading.get_ident() % 1000}"
    backend = _SavesOnceRetired()
    engine._stores[url] = SessionStore(backend, dict)
    try:
        with override_settings(SESSION_STORE_URL=url):
            seed = engine.SessionStore()
            seed["cart"] = []
            seed.save()
            old = seed.session_key
            login = engine.SessionStore(old)
            assert login["cart"] == []
            other = engine.SessionStore(old)
            other["cart"] = ["book"]
            backend.other = other
            login.cycle_key()
            assert backend.other is None  # the other save ran, once the old id was retired
            assert [type(e) for e in backend.errors] == [UpdateError]  # told: nothing lost
            assert login.session_key != old and not engine.SessionStore().exists(old)
            assert dict(engine.SessionStore(login.session_key).items()) == {"cart": []}
    finally:
        del engine._stores[url]


def test_acycle_key_after_a_logout_moves_only_the_requests_own_changes(
    recorder: RecordingBackend,
) -> None:
    import asyncio

    seed = engine.SessionStore()
    seed["cart"] = ["bob's book"]
    seed.save()
    old = seed.session_key
    login = engine.SessionStore(old)
    assert login["cart"] == ["bob's book"]
    login["theme"] = "dark"
    engine.SessionStore(old).flush()  # a logout elsewhere
    asyncio.run(login.acycle_key())
    login.save()
    assert login.session_key not in (None, old)
    assert dict(engine.SessionStore(login.session_key).items()) == {"theme": "dark"}


@pytest.mark.parametrize(
    "paths",
    [["/cart/book"], ["/cart/book", "/cart/pen"], ["/cart/book", "/login/ann"]],
    ids=["create", "first-try", "cycle-key"],
)
def test_the_cookie_age_is_recorded_for_every_other_reader(
    recorder: RecordingBackend, paths: list[str]
) -> None:
    """Django commits with ``SESSION_COOKIE_AGE`` (600 s here), not the store's 24 h: a plain
    store over the same backend that slides the session (``touch`` without a TTL) keeps 600 s
    (session_store.ownttl). Before, it restarted the session with 24 h."""
    client = Client()
    with override_settings(SESSION_COOKIE_AGE=600):
        for url in paths:
            assert client.post(url).status_code == 200
    key = sid(client)
    recorder.inner.touch(key, 5)
    assert SessionStore(recorder.inner, dict).touch(key) is True
    left = recorder.inner.ttl(key)
    assert left is not None and 590 < left <= 600, left


def test_the_engine_opens_its_store_with_the_cookie_age_as_its_ttl(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The store the engine opens from ``SESSION_STORE_URL`` has ``SESSION_COOKIE_AGE`` as its
    TTL, so a commit (which writes with that age) stores the session as it is, without the
    frame that records a TTL other than the store's (session_store.ownttl)."""
    url = redis_server.url_for(prefix=redis_namespace)
    try:
        with override_settings(SESSION_STORE_URL=url, SESSION_COOKIE_AGE=600):
            client = Client()
            assert client.post("/cart/book").status_code == 200
            key = sid(client)
        with open_backend(url) as raw:
            stored, left = raw.get(key), raw.ttl(key)
        assert stored is not None and stamps.own_ttl(stored) is None  # no frame
        assert left is not None and 590 < left <= 600, left
    finally:
        engine._stores.pop(url).close()
