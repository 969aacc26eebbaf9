"""attack9b: the web integrations under concurrent requests of one user, on real servers.

Flask served by gunicorn and Starlette served by uvicorn, two server processes each, sharing a
real redis-server the suite started: on Redis alone, and on the default chain
``memory:// | redis:// | diskcache://`` (each server with its own near cache, one directory on
disk). Concurrent requests are ordered exactly with gates (:mod:`tests.web.attack9b_servers`):
request A reads its session and waits inside its view, request B runs to completion on the
other server, then A commits. What every tier holds afterwards is read by fresh single-tier
stores (what the CLI and another program read), not only through a chain.

The guarantees under attack (issue 18, ``docs/flask.md``, ``docs/starlette.md``): two concurrent
requests changing different keys both keep their changes; a logout racing a write on the other
worker stays a logout in every tier; a login's rotation racing a request that still carries the
old id never brings the old id back; a client-supplied unknown id is never adopted; a request
that only reads writes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from session_store import SessionStore
from session_store.websession import new_session_id, web_codec
from session_store_redis.testing import RedisServer
from tests.web.attack9b_servers import serve

pytestmark = pytest.mark.slow

Data = dict[str, Any]

FRAMEWORKS = ["flask", "starlette"]
SHAPES = ["redis", "chain"]


class Shape:
    """The store URL the servers share, and single-tier readers of each of its shared tiers."""

    def __init__(self, shape: str, redis_url: str, disk: Path) -> None:
        self.redis_url = redis_url
        self.disk_url = f"diskcache://{disk}" if shape == "chain" else None
        self.url = redis_url if shape == "redis" else f"memory:// | {redis_url} | {self.disk_url}"

    def held(self, sid: str) -> dict[str, Data | None]:
        """What each reader finds for ``sid``: the whole store (a fresh process's view) and each
        shared tier alone."""
        urls = {"store": self.url, "redis": self.redis_url}
        if self.disk_url is not None:
            urls["disk"] = self.disk_url
        found: dict[str, Data | None] = {}
        for name, url in urls.items():
            with SessionStore(url, dict, codec=web_codec()) as store:
                found[name] = store.load(sid)
        return found


@pytest.fixture(params=SHAPES)
def shape(request: pytest.FixtureRequest, redis_url: str, tmp_path: Path) -> Shape:
    return Shape(request.param, redis_url, tmp_path / "disk")


def _post(url: str, sid: str | None = None) -> httpx.Response:
    headers = {"Cookie": f"session={sid}"} if sid else {}
    return httpx.post(url, headers=headers, timeout=180)


def _get(url: str, sid: str | None = None) -> httpx.Response:
    headers = {"Cookie": f"session={sid}"} if sid else {}
    return httpx.get(url, headers=headers, timeout=180)


def _cookie(response: httpx.Response) -> str | None:
    """The session id a response's Set-Cookie carries; ``""`` for an expired cookie;
    ``None`` when it sets no session cookie."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("session="):
            value = header.split(";", 1)[0][len("session=") :].strip('"')
            expired = "1970" in header or "max-age=0" in header.lower()
            return "" if expired or not value else value
    return None


class Held:
    """A request running in a thread (it waits at its gate inside the server)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self._thread.start()

    def _run(self, fn: Any, *args: Any) -> None:
        try:
            self.response = fn(*args)
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self) -> httpx.Response:
        self._thread.join(timeout=240)
        if self.error is not None:
            raise self.error
        assert self.response is not None, "the held request did not finish"
        return self.response


@pytest.fixture(params=FRAMEWORKS)
def servers(
    request: pytest.FixtureRequest, shape: Shape, tmp_path: Path
) -> Iterator[tuple[list[str], Any]]:
    with serve(request.param, shape.url, tmp_path / "app") as running:
        yield running


def _start(base: str, key: str, value: str) -> str:
    """A new session made by a real request (no cookie sent); its id."""
    response = _post(f"{base}/set/{key}/{value}")
    assert response.status_code == 200, response.text
    sid = _cookie(response)
    assert sid, response.headers
    return sid


def test_a_write_racing_a_logout_on_the_other_worker_never_brings_it_back(
    servers: tuple[list[str], Any], shape: Shape
) -> None:
    """B reads the session and waits; A logs out on the other server; B commits its change.
    The session must stay deleted in every tier, B must not hand the old id back, and the old
    id must never be adopted by a later request on either server."""
    (one, two), gate = servers
    sid = _start(one, "user", "ann")
    held = Held(_post, f"{two}/set/cart/3?gate=B", sid)
    gate.wait_inside("B")
    logout = _post(f"{one}/logout", sid)
    assert logout.status_code == 200 and _cookie(logout) == ""
    gate.open("B")
    late = held.result()
    assert late.status_code == 200, late.text
    assert _cookie(late) in (None, ""), "the late write handed the logged-out id back"
    assert shape.held(sid) == {name: None for name in shape.held(sid)}
    for base in (one, two):  # the old id is dead on both workers
        again = _post(f"{base}/set/x/1", sid)
        assert again.status_code == 200 and again.json() == {"x": "1"}
        assert _cookie(again) not in (None, "", sid)
    assert set(shape.held(sid).values()) == {None}


def test_a_request_carrying_the_old_id_racing_a_login_never_revives_it(
    servers: tuple[list[str], Any], shape: Shape
) -> None:
    """B (old id) reads and waits; A logs in on the other server (the session moves to a new
    id, the old one is retired); B commits. The old id must hold nothing in any tier and never
    be handed back; the new id holds the login; a later request with the old id gets a fresh
    id of its own."""
    (one, two), gate = servers
    sid = _start(one, "cart", "1")
    held = Held(_post, f"{two}/set/theme/dark?gate=B", sid)
    gate.wait_inside("B")
    login = _post(f"{one}/login/ann", sid)
    new = _cookie(login)
    assert login.status_code == 200 and new not in (None, "", sid)
    gate.open("B")
    late = held.result()
    assert late.status_code == 200, late.text
    assert _cookie(late) in (None, ""), "the late write handed the retired id back"
    assert set(shape.held(sid).values()) == {None}
    assert new is not None
    moved = shape.held(new)["store"]
    assert moved is not None and moved["user"] == "ann" and moved["cart"] == "1"
    for base in (one, two):
        again = _post(f"{base}/set/x/1", sid)
        assert again.status_code == 200 and again.json() == {"x": "1"}
        assert _cookie(again) not in (None, "", sid, new)
    assert set(shape.held(sid).values()) == {None}


def test_two_logins_racing_on_two_workers_leave_the_old_id_dead_and_each_new_one_whole(
    servers: tuple[list[str], Any], shape: Shape
) -> None:
    """A double-submitted login form: B logs in on one worker (reads, waits), A logs in on the
    other and finishes, then B commits its move. The old id is dead in every tier; B never
    hands back the old id or A's new one; A's new session still holds A's login and the cart
    (B's move must not delete or overwrite it); B's new session, if any, holds B's login."""
    (one, two), gate = servers
    sid = _start(one, "cart", "1")
    held = Held(_post, f"{two}/login/bob?gate=B", sid)
    gate.wait_inside("B")
    first = _post(f"{one}/login/ann", sid)
    ann = _cookie(first)
    assert first.status_code == 200 and ann not in (None, "", sid)
    gate.open("B")
    late = held.result()
    assert late.status_code == 200, late.text
    bob = _cookie(late)
    assert bob not in (sid, ann)
    assert set(shape.held(sid).values()) == {None}
    assert ann is not None
    assert shape.held(ann)["store"] == {"cart": "1", "user": "ann"}
    if bob:
        kept = shape.held(bob)["store"]
        assert kept is not None and kept["user"] == "bob"


def test_a_read_only_request_with_the_old_id_racing_a_login_keeps_the_new_cookie(
    servers: tuple[list[str], Any], shape: Shape
) -> None:
    """B only reads with the old id (sliding expiry: a touch at its end) and waits; A logs in
    on the other worker. B's touch must not revive or extend the old id, and B's response
    must not set or expire the cookie (the browser may already hold A's new id)."""
    (one, two), gate = servers
    sid = _start(one, "cart", "1")
    held = Held(_get, f"{two}/read?gate=B", sid)
    gate.wait_inside("B")
    login = _post(f"{one}/login/ann", sid)
    new = _cookie(login)
    assert login.status_code == 200 and new not in (None, "", sid)
    gate.open("B")
    late = held.result()
    assert late.status_code == 200 and late.json() == {"cart": "1"}
    assert _cookie(late) is None  # neither the old id again nor an expired cookie
    assert set(shape.held(sid).values()) == {None}
    assert new is not None and shape.held(new)["store"] == {"cart": "1", "user": "ann"}


def test_a_client_supplied_unknown_id_is_never_adopted(
    servers: tuple[list[str], Any], shape: Shape
) -> None:
    """A well-formed id the store never issued, sent to both workers (a read, then a write):
    never stored, never echoed back in a cookie."""
    (one, two), _ = servers
    planted = new_session_id()
    for base in (one, two):
        read = _get(f"{base}/read", planted)
        assert read.status_code == 200 and read.json() == {}
        assert _cookie(read) is None
        wrote = _post(f"{base}/set/k/v", planted)
        assert wrote.status_code == 200 and _cookie(wrote) not in (None, "", planted)
    assert set(shape.held(planted).values()) == {None}


def test_emptying_the_session_keeps_a_key_another_request_committed_meanwhile(
    servers: tuple[list[str], Any], shape: Shape
) -> None:
    """A pops the session's only key (a flash message shown, say) and waits; B adds another
    key on the other server and finishes; A commits. The two requests changed different keys:
    issue 18 says both keep their change, so the session holds B's key, not nothing.

    Before attack9b's fix, seen failing on all four (framework, store) pairs with
    ``None == {'b': '2'}``: the emptying request's DELETE was unconditional."""
    (one, two), gate = servers
    sid = _start(one, "a", "1")
    held = Held(_post, f"{one}/pop/a?gate=A", sid)
    gate.wait_inside("A")
    added = _post(f"{two}/set/b/2", sid)
    assert added.status_code == 200 and added.json() == {"a": "1", "b": "2"}
    gate.open("A")
    assert held.result().status_code == 200
    assert shape.held(sid)["store"] == {"b": "2"}


def _commandstats(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name: int(entry["calls"]) for name, entry in stats.items()}


#: Commands that change no value (reads, the chain's invalidation stream, transactions framing
#: reads). A write of the payload is ``set``/``eval``/``evalsha`` with its bytes; a touch moves
#: only the expiry (``pexpire`` or a conditional-touch script).
READ_ONLY = {
    "cmdstat_get",
    "cmdstat_mget",
    "cmdstat_pttl",
    "cmdstat_getrange",
    "cmdstat_multi",
    "cmdstat_exec",
    "cmdstat_ping",
    "cmdstat_info",
    "cmdstat_client|id",
    "cmdstat_client|tracking",
    "cmdstat_client|setname",
    "cmdstat_subscribe",
    "cmdstat_hello",
    "cmdstat_select",
}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_read_only_request_without_sliding_sends_redis_only_reads(
    framework: str, shape: Shape, redis_server: RedisServer, tmp_path: Path
) -> None:
    """With sliding expiry off, a request that only reads the session sends Redis no command
    but reads (INFO commandstats around 20 such requests on each server), and the stored bytes
    in every tier are unchanged."""
    admin = redis.Redis(port=redis_server.port)
    with serve(framework, shape.url, tmp_path / "app", sliding=False) as ((one, two), _):
        sid = _start(one, "user", "ann")
        key = next(k for k in admin.scan_iter(match="*") if sid.encode() in k)
        before_bytes = admin.get(key)
        before = _commandstats(admin)
        for _ in range(10):
            for base in (one, two):
                read = _get(f"{base}/read", sid)
                assert read.status_code == 200 and read.json() == {"user": "ann"}
        after = _commandstats(admin)
        ran = {name: after[name] - before.get(name, 0) for name in after}
        writes = {name: n for name, n in ran.items() if n and name not in READ_ONLY}
        assert writes == {}
        assert admin.get(key) == before_bytes
        assert shape.held(sid)["store"] == {"user": "ann"}
        # the detector sees a write: one changing request shows commands beyond READ_ONLY
        before = _commandstats(admin)
        assert _post(f"{two}/set/cart/1", sid).status_code == 200
        after = _commandstats(admin)
        assert any(after[n] > before.get(n, 0) for n in after if n not in READ_ONLY)
        assert admin.get(key) != before_bytes


def _disk_bytes(shape: Shape, sid: str) -> bytes | None:
    """The raw bytes the chain's disk tier holds for ``sid`` (``None`` on Redis alone)."""
    if shape.disk_url is None:
        return None
    from session_store import open_backend

    disk = open_backend(shape.disk_url)
    try:
        return disk.get(sid)
    finally:
        disk.close()


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_read_only_request_with_sliding_moves_only_the_expiry(
    framework: str, shape: Shape, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The default (sliding expiry on): a read-only request touches, and only touches: no
    ``SET``-family command reaches Redis, and the bytes every shared tier holds (the chain's
    version frame included, which any rewrite would change) are the same after 20 of them."""
    admin = redis.Redis(port=redis_server.port)
    with serve(framework, shape.url, tmp_path / "app") as ((one, two), _):
        sid = _start(one, "user", "ann")
        key = next(k for k in admin.scan_iter(match="*") if sid.encode() in k)
        before_bytes, before_disk = admin.get(key), _disk_bytes(shape, sid)
        before = _commandstats(admin)
        for _ in range(10):
            for base in (one, two):
                read = _get(f"{base}/read", sid)
                assert read.status_code == 200 and read.json() == {"user": "ann"}
        after = _commandstats(admin)
        sets = {n: after[n] - before.get(n, 0) for n in after if "set" in n and "setname" not in n}
        assert {n: count for n, count in sets.items() if count} == {}
        assert admin.get(key) == before_bytes
        assert _disk_bytes(shape, sid) == before_disk
        assert after.get("cmdstat_evalsha", 0) > before.get("cmdstat_evalsha", 0)  # touched
