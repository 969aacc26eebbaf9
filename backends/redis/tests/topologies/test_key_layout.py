"""Where every Redis backend stores a key, and which keys it refuses: one namespace encoder
(:meth:`session_store.keys.Namespace.encode`) for every key site of the plugin (single keys,
bulk, compare-and-set, ordered writes, conditional touch; sync and asyncio; standalone, Sentinel
and Cluster), so

* the stored layout is byte for byte what earlier releases wrote (``prefix + separator + key``):
  the golden stored keys below were written by main's code before the change (``ddef040``,
  ``RedisBackend.set`` then ``KEYS *``), and every backend finds, lists, overwrites and deletes
  them where they are;
* a namespace whose separator is not U+001F (the data-room plan's ``session`` + ``:``) refuses a
  key holding U+001F before any I/O, through every operation, also through the unchecked calls
  a chain makes: its stored form would be the default-layout store's key (round-4 attack,
  ``tests/dataroom/test_plan_layout_hostile_ids.py``).

Real servers from the suite's fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest

from session_store import InvalidKeyError, SessionBackend, open_backend
from session_store.aio import AsyncSessionBackend, open_async_backend
from session_store.backend_base import trusted

TOPOLOGIES = ("standalone", "sentinel", "cluster")

#: (layout, its URL parameters, after the test's own namespace prefix)
LAYOUTS: dict[str, dict[str, str]] = {
    "default": {"prefix": "session:"},
    "app": {"prefix": "app:"},
    "plan": {"prefix": "session", "separator": ":"},
    "tagged": {"prefix": "{app}:"},
}
KEYS = ("alice", "a:b", "{tag}x", "\u00e9", "*[x]?", "k\x00z", "a b\n", "session:U1")
#: The stored key of each (layout, key) as main's code wrote it, after the namespace prefix.
GOLDEN: dict[str, dict[str, bytes]] = {
    "default": {
        "alice": b"session:\x1falice",
        "a:b": b"session:\x1fa:b",
        "{tag}x": b"session:\x1f{tag}x",
        "\u00e9": b"session:\x1f\xc3\xa9",
        "*[x]?": b"session:\x1f*[x]?",
        "k\x00z": b"session:\x1fk\x00z",
        "a b\n": b"session:\x1fa b\n",
        "session:U1": b"session:\x1fsession:U1",
        "x\x1fy": b"session:\x1fx\x1fy",  # U+001F in a key of the default layout: its own key
    },
    "app": {
        "alice": b"app:\x1falice",
        "a:b": b"app:\x1fa:b",
        "{tag}x": b"app:\x1f{tag}x",
        "\u00e9": b"app:\x1f\xc3\xa9",
        "*[x]?": b"app:\x1f*[x]?",
        "k\x00z": b"app:\x1fk\x00z",
        "a b\n": b"app:\x1fa b\n",
        "session:U1": b"app:\x1fsession:U1",
    },
    "plan": {
        "alice": b"session:alice",
        "a:b": b"session:a:b",
        "{tag}x": b"session:{tag}x",
        "\u00e9": b"session:\xc3\xa9",
        "*[x]?": b"session:*[x]?",
        "k\x00z": b"session:k\x00z",
        "a b\n": b"session:a b\n",
        "session:U1": b"session:session:U1",
    },
    "tagged": {
        "alice": b"{app}:\x1falice",
        "a:b": b"{app}:\x1fa:b",
        "{tag}x": b"{app}:\x1f{tag}x",
        "\u00e9": b"{app}:\x1f\xc3\xa9",
        "*[x]?": b"{app}:\x1f*[x]?",
        "k\x00z": b"{app}:\x1fk\x00z",
        "a b\n": b"{app}:\x1fa b\n",
        "session:U1": b"{app}:\x1fsession:U1",
    },
}
HOSTILE = "\x1fU2"  # in the plan layout: the default ``session:`` store's ``U2``


class _Deployment:
    """One real deployment of a topology: a raw client and URLs under the test's namespace."""

    def __init__(self, topology: str, request: pytest.FixtureRequest) -> None:
        kind = {"standalone": "redis", "sentinel": "redis_sentinel"}.get(topology, "redis_cluster")
        self.servers: Any = request.getfixturevalue("redis_server" if kind == "redis" else kind)
        self.namespace: str = request.getfixturevalue(f"{kind}_namespace")
        self.raw: Any = (
            self.servers.primary() if topology == "sentinel" else self.servers
        ).client()
        self.topology = topology

    def url(self, layout: str) -> str:
        params = dict(LAYOUTS[layout])
        params["prefix"] = self.namespace + params["prefix"]
        if self.topology == "standalone":
            return str(self.servers.url_for(**params))
        if self.topology == "sentinel":
            return str(self.servers.url_for(sentinels=1, **params))
        return str(self.servers.url_for(startup_nodes=1, **params))

    def stored(self, layout: str, key: str) -> bytes:
        return self.namespace.encode() + GOLDEN[layout][key]


#: (topology, layout): ``separator`` is a ``redis://`` parameter only (sync and asyncio), so the
#: plan layout exists on a standalone server only.
CASES = [
    (t, layout) for t in TOPOLOGIES for layout in LAYOUTS if layout != "plan" or t == TOPOLOGIES[0]
]


@pytest.fixture(params=TOPOLOGIES)
def deployment(request: pytest.FixtureRequest) -> Iterator[_Deployment]:
    opened = _Deployment(request.param, request)
    try:
        yield opened
    finally:
        opened.raw.close()


@contextmanager
def _sync(url: str) -> Iterator[SessionBackend]:
    with open_backend(url) as backend:
        yield backend


def _run(url: str, body: Callable[[AsyncSessionBackend], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        backend = open_async_backend(url)
        try:
            return await body(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


def _plant(deployment: _Deployment) -> None:
    """Write every golden stored key with raw redis-py, as main's code left them."""
    for layout, keys in GOLDEN.items():
        for key in keys:
            deployment.raw.set(deployment.stored(layout, key), f"{layout}|{key}".encode())


@pytest.mark.parametrize(("deployment", "layout"), CASES, indirect=["deployment"])
def test_keys_stored_by_the_previous_layout_are_found_where_they_are(
    deployment: _Deployment, layout: str
) -> None:
    """Input: the golden stored keys of four layouts, written raw. What must hold for the sync
    backend of ``layout``: ``get``/``get_many``/``ttl``/``get_versioned`` find each of its own,
    ``scan`` lists exactly its own keys (none of another layout's), a ``set`` overwrites the
    golden stored key itself, ``delete``/``delete_many`` remove it."""
    _plant(deployment)
    keys = list(GOLDEN[layout])
    with _sync(deployment.url(layout)) as backend:
        for key in keys:
            assert backend.get(key) == f"{layout}|{key}".encode(), key
            assert backend.ttl(key) is not None, key
            found = backend.get_versioned(key)
            assert found is not None and found.value == f"{layout}|{key}".encode()
        assert backend.get_many(keys) == {k: f"{layout}|{k}".encode() for k in keys}
        assert sorted(backend.scan()) == sorted(keys)
        backend.set(keys[0], b"new")
        backend.set_many({k: b"many" for k in keys[1:3]})
        assert deployment.raw.get(deployment.stored(layout, keys[0])) == b"new"
        assert [deployment.raw.get(deployment.stored(layout, k)) for k in keys[1:3]] == [
            b"many",
            b"many",
        ]
        assert backend.delete(keys[0]) is True
        assert backend.delete_many(keys[1:3]) == 2
        assert deployment.raw.exists(*(deployment.stored(layout, k) for k in keys[:3])) == 0
    others = [deployment.stored(o, k) for o in GOLDEN if o != layout for k in GOLDEN[o]]
    assert deployment.raw.exists(*others) == len(others)  # another layout's keys untouched


@pytest.mark.parametrize(
    ("deployment", "layout"),
    [("standalone", "default"), ("standalone", "plan"), ("cluster", "tagged")],
    indirect=["deployment"],
)
def test_the_async_backends_find_the_same_stored_keys(deployment: _Deployment, layout: str) -> None:
    """The same for the asyncio backends: reads, listing, a write and a delete at the golden
    stored keys."""
    _plant(deployment)
    keys = list(GOLDEN[layout])

    async def body(backend: AsyncSessionBackend) -> None:
        for key in keys:
            assert await backend.get(key) == f"{layout}|{key}".encode(), key
        assert await backend.get_many(keys) == {k: f"{layout}|{k}".encode() for k in keys}
        assert sorted([k async for k in backend.scan()]) == sorted(keys)
        await backend.set(keys[0], b"new")
        await backend.set_many({keys[1]: b"many"})
        assert await backend.delete(keys[2]) is True
        assert await backend.delete_many([keys[3]]) == 1

    _run(deployment.url(layout), body)
    assert deployment.raw.get(deployment.stored(layout, keys[0])) == b"new"
    assert deployment.raw.get(deployment.stored(layout, keys[1])) == b"many"
    assert deployment.raw.exists(*(deployment.stored(layout, k) for k in keys[2:4])) == 0


#: Every single-key operation and its arguments after the key.
_SINGLE: dict[str, tuple[Any, ...]] = {
    "get": (),
    "set": (b"x",),
    "delete": (),
    "touch": (60,),
    "touch_if": (b"v", 60),
    "ttl": (),
    "get_with_ttl": (),
    "get_versioned": (),
    "set_if": (b"x", None),
}


def _sync_attempts(backend: SessionBackend) -> dict[str, Callable[[], Any]]:
    """Every operation of a sync backend that names a key, public and unchecked (a chain's)."""
    attempts: dict[str, Callable[[], Any]] = {}
    for name, target in (("", backend), ("trusted.", trusted(backend))):
        for operation, args in _SINGLE.items():
            attempts[name + operation] = partial(getattr(target, operation), HOSTILE, *args)
    attempts["touch_session"] = partial(backend.touch_session, HOSTILE, 60, keep_own=True)
    attempts["get_many"] = partial(backend.get_many, ["ok", HOSTILE])
    attempts["set_many"] = partial(backend.set_many, {"ok": b"x", HOSTILE: b"x"})
    attempts["delete_many"] = partial(backend.delete_many, ["ok", HOSTILE])
    frame = {"head": 3, "start": 3, "end": 11}
    for ordered, extra in (("set_if_newer", {}), ("set_after", {"clock_end": 9})):
        method = getattr(backend, ordered, None)
        if method is not None:
            attempts[ordered] = partial(method, HOSTILE, b"x" * 32, 60, **frame, **extra)
    return attempts


@pytest.mark.parametrize("deployment", ["standalone"], indirect=True)
def test_a_plan_layout_backend_refuses_a_key_holding_u001f_through_every_operation(
    deployment: _Deployment,
) -> None:
    """Input: the default-layout store's ``U2`` (stored ``<ns>session:\\x1fU2``) and, on the
    plan-layout backend (``<ns>session`` + ``:``), every sync operation with key ``"\\x1fU2"``,
    whose stored form would be exactly that key. Before (main): each read, overwrote, touched
    or deleted ``U2``. What must hold: each is ``InvalidKeyError`` naming U+001F; ``U2`` keeps
    its bytes and its TTL; nothing else is written (``ok`` of the bulk calls neither)."""
    victim = deployment.namespace.encode() + b"session:\x1fU2"
    deployment.raw.set(victim, b"victim", ex=1000)
    with _sync(deployment.url("plan")) as backend:
        attempts = _sync_attempts(backend)
        assert len(attempts) >= 21
        for name, attempt in attempts.items():
            with pytest.raises(InvalidKeyError, match="U\\+001F"):
                attempt()
            assert deployment.raw.get(victim) == b"victim", name
            assert 990 < deployment.raw.ttl(victim) <= 1000, name
        assert backend.get("ok") is None
        assert list(backend.scan()) == []


@pytest.mark.parametrize("deployment", ["standalone"], indirect=True)
def test_the_async_plan_layout_backends_refuse_it_too(deployment: _Deployment) -> None:
    """The same over the asyncio backends (single keys, bulk, compare-and-set, ordered
    writes)."""
    victim = deployment.namespace.encode() + b"session:\x1fU2"
    deployment.raw.set(victim, b"victim", ex=1000)

    async def body(backend: AsyncSessionBackend) -> int:
        attempts: list[Callable[[], Awaitable[Any]]] = [
            lambda: backend.get(HOSTILE),
            lambda: backend.set(HOSTILE, b"x"),
            lambda: backend.delete(HOSTILE),
            lambda: backend.touch(HOSTILE, 60),
            lambda: backend.touch_if(HOSTILE, b"v", 60),
            lambda: backend.touch_session(HOSTILE, 60, keep_own=True),
            lambda: backend.ttl(HOSTILE),
            lambda: backend.get_with_ttl(HOSTILE),
            lambda: backend.get_versioned(HOSTILE),
            lambda: backend.set_if(HOSTILE, b"x", None),
            lambda: backend.get_many(["ok", HOSTILE]),
            lambda: backend.set_many({"ok": b"x", HOSTILE: b"x"}),
            lambda: backend.delete_many(["ok", HOSTILE]),
        ]
        ordered: Any = backend
        if hasattr(ordered, "set_if_newer"):
            attempts.append(
                lambda: ordered.set_if_newer(HOSTILE, b"x" * 32, 60, head=3, start=3, end=11)
            )
            attempts.append(
                lambda: ordered.set_after(
                    HOSTILE, b"x" * 32, 60, head=3, start=3, end=11, clock_end=9
                )
            )
        for attempt in attempts:
            with pytest.raises(InvalidKeyError, match="U\\+001F"):
                await attempt()
        assert await backend.get("ok") is None
        return len(attempts)

    assert _run(deployment.url("plan"), body) >= 12
    assert deployment.raw.get(victim) == b"victim"
    assert 990 < deployment.raw.ttl(victim) <= 1000
