"""The Django engine (``SESSION_ENGINE = "session_store.django"``) with Redis going away in the
middle of a request, and with the expiry settings (``SESSION_COOKIE_AGE``, ``set_expiry``,
``SESSION_EXPIRE_AT_BROWSER_CLOSE``).

Django's settings can be configured once per process, so each scenario runs in a child
process driving Django's own test client through Django's own ``SessionMiddleware``, on a real
redis-server started for the test (``redis_server_factory``). An outage is the server paused
with ``SIGSTOP`` (it accepts connections and answers nothing: what a hung or overloaded Redis
does), from inside the view, between the session's read and its write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from session_store_redis.testing import RedisServer

_SETUP = textwrap.dedent(
    """
    import json, os, signal, sys
    import django
    from django.conf import settings

    url, pid = sys.argv[1], int(sys.argv[2])
    settings.configure(
        SECRET_KEY="tests-only", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        SESSION_ENGINE="session_store.django", SESSION_STORE_URL=url, DATABASES={},
        USE_TZ=True, SESSION_COOKIE_AGE=600, **json.loads(sys.argv[3]),
    )
    django.setup()
    from django.http import HttpResponse, JsonResponse
    from django.test import Client
    from django.urls import path
    import session_store.django as engine

    def outage():
        os.kill(pid, signal.SIGSTOP)

    def login(request):
        request.session.cycle_key()
        request.session["user"] = "ann"
        request.session["cart"] = []
        return HttpResponse("ok")

    def add_during_outage(request):
        cart = request.session["cart"]  # read while Redis answers
        outage()
        request.session["cart"] = [*cart, "book"]  # written at the end of the request
        return HttpResponse("ok")

    def read(request):
        return JsonResponse(dict(request.session.items()))

    def logout_during_outage(request):
        request.session["user"]
        outage()
        request.session.flush()
        return HttpResponse("ok")

    def expiry(request, seconds):
        request.session["user"] = "ann"
        request.session.set_expiry(seconds)
        return HttpResponse("ok")

    urlpatterns = [
        path("login", login), path("add", add_during_outage), path("read", read),
        path("logout", logout_during_outage), path("expiry/<int:seconds>", expiry),
    ]
    client = Client(raise_request_exception=False)
    out = {}
    """
)

_OUTAGES = _SETUP + textwrap.dedent(
    """
    client.get("/login")
    sid = client.cookies["sessionid"].value

    response = client.get("/add")  # Redis paused mid-request: the save cannot answer
    out["add_status"] = response.status_code
    out["add_set_cookie"] = "sessionid" in response.cookies
    os.kill(pid, signal.SIGCONT)
    out["after_add"] = client.get("/read").json()

    os.kill(pid, signal.SIGSTOP)  # down before the request: the load cannot answer
    response = client.get("/read")
    out["read_status"] = response.status_code
    out["read_set_cookie"] = "sessionid" in response.cookies
    os.kill(pid, signal.SIGCONT)
    out["after_read"] = client.get("/read").json()

    response = client.get("/logout")
    out["logout_status"] = response.status_code
    os.kill(pid, signal.SIGCONT)
    out["after_logout"] = client.get("/read").json()
    out["same_cookie"] = client.cookies["sessionid"].value == sid
    print(json.dumps(out))
    """
)


def _run(script: str, server: RedisServer, settings: dict[str, Any]) -> dict[str, Any]:
    assert server.pid is not None
    url = server.url_for(socket_timeout="0.5", prefix="round4")
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, url, str(server.pid), json.dumps(settings)],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        os.kill(server.pid, signal.SIGCONT)  # never leave the server paused
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_held_redis_pausing_mid_request_fails_the_request_and_loses_nothing(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """What must hold, for a save, a load and a logout that meet a Redis that stopped
    answering: the request fails (500), its response sets or deletes no session cookie (the
    user is not logged out by an outage, nor handed a new empty session), and once Redis
    answers again the session is there with nothing lost: the cart is as before or, if the
    timed-out compare-and-set was executed when Redis resumed, with the book; the user is
    still ann unless the timed-out logout's delete was executed when Redis resumed."""
    server = redis_server_factory()
    out = _run(_OUTAGES, server, {})
    assert (out["add_status"], out["add_set_cookie"]) == (500, False), out
    assert out["after_add"]["user"] == "ann"
    assert out["after_add"]["cart"] in ([], ["book"])
    assert (out["read_status"], out["read_set_cookie"]) == (500, False), out
    assert out["after_read"] == out["after_add"]
    assert out["logout_status"] == 500
    assert out["after_logout"] in (out["after_add"], {}), out
    assert out["same_cookie"] or out["after_logout"] == {}, out


_EXPIRY = _SETUP + textwrap.dedent(
    """
    from session_store import open_backend
    raw = open_backend(url)
    for seconds in (0, 1, 30):
        c = Client(raise_request_exception=False)
        response = c.get(f"/expiry/{seconds}")
        sid = c.cookies["sessionid"].value
        out[str(seconds)] = {
            "status": response.status_code,
            "ttl": raw.ttl(sid),
            "user": c.get("/read").json().get("user"),
        }
    print(json.dumps(out))
    """
)


def test_held_expiry_settings_bound_the_server_side_ttl(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """``set_expiry(0)`` (until the browser closes) keeps a server-side TTL of
    ``SESSION_COOKIE_AGE`` (never a session that lives forever), ``set_expiry(n)`` gives
    ``n``; the same with ``SESSION_EXPIRE_AT_BROWSER_CLOSE = True``."""
    server = redis_server_factory()
    for settings in ({}, {"SESSION_EXPIRE_AT_BROWSER_CLOSE": True}):
        out = _run(_EXPIRY, server, settings)
        assert out["0"]["status"] == 200 and out["0"]["user"] == "ann"
        assert 590 < out["0"]["ttl"] <= 600, out
        assert 0 < out["1"]["ttl"] <= 1 and 25 < out["30"]["ttl"] <= 30, out


_SERIALIZER = textwrap.dedent(
    """
    import json, sys
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="tests-only", INSTALLED_APPS=["django.contrib.sessions"],
        SESSION_ENGINE="session_store.django", SESSION_STORE_URL=sys.argv[1], DATABASES={},
        USE_TZ=True, SESSION_FILE_PATH=sys.argv[2],
    )
    django.setup()
    from django.contrib.sessions.backends.file import SessionStore as DjangoFileEngine
    import session_store.django as engine

    def round_trip(engine_class):
        session = engine_class()
        session["cart"] = {42: 2, 7: 1}  # product id -> quantity: the common idiom
        session[1] = "top-level int key"
        session["pair"] = (1, 2)
        session.save()
        added = engine_class(session.session_key)
        added["cart"][99] = 5  # a change to a loaded session: the merge path
        added.save()
        again = engine_class(session.session_key)
        return dict(sorted(again.items()))

    out = {"django": round_trip(DjangoFileEngine)}
    try:
        out["ours"] = round_trip(engine.SessionStore)
    except Exception as exc:
        out["ours"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
    """
)


def test_session_values_round_trip_as_through_djangos_own_serializer(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """The engine's docstring: "Values must be JSON-compatible, as with Django's default
    serializer". Differential check against Django's own file engine in the same process (it
    stores, as the default database engine does, through ``SessionBase.encode``):
    a cart keyed by product id (``{42: 2}``), a top-level int key and a tuple, then a change
    to the loaded session. Django's engines store them through ``SESSION_SERIALIZER`` (JSON:
    int keys come back as text, tuples as lists). Before: ``save`` raised
    ``SerializationError: dict keys must be str, got int`` (a 500 for a view Django's own
    engines serve)."""
    server = redis_server_factory()
    done = subprocess.run(
        [sys.executable, "-c", _SERIALIZER, server.url_for(prefix="round4"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["django"]["cart"] == {"42": 2, "7": 1, "99": 5}  # what Django itself does
    assert out["ours"] == out["django"]
