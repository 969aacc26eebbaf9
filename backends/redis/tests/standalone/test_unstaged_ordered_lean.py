"""An ordered write without an expiry goes through the lean client (lean10).

Such a write never stages (stage10: no staging key without an expiry), so it runs the one-script
text (:mod:`session_store_redis.ordered_scripts`). Through redis-py's ``Script`` that cost a
chain save of a TTL-less session three times the client instructions of a staged one; it is now
sent by SHA on the backend's lean client. ``INFO commandstats`` cannot tell the two apart (both
send ``EVALSHA``, and ``SCRIPT LOAD`` after ``NOSCRIPT``), so the tests count the connections the
server accepted: the lean client's connection, opened by a first ``get``, serves the write, and
redis-py's pool (which ``Script`` runs on) never opens one. Before the change they failed there
(one connection more). A user allowed ``EVALSHA`` and ``SCRIPT LOAD`` but not ``EVAL`` still
writes after the server lost the scripts. All on a redis-server of this module's own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from session_store import NO_EXPIRY, SessionStore, stamps
from session_store_redis import RedisBackend
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT
from session_store_redis.staged import staging_key
from session_store_redis.testing import RedisServer

PREFIX = "lean10:"
KW = {"head": len(stamps.MAGIC), "start": stamps.VERSION_START, "end": stamps.VERSION_END}


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


def _value(version: int) -> bytes:
    return stamps.MAGIC + version.to_bytes(12, "big") + b"p" * 2000


def _accepted(server: RedisServer) -> int:
    with server.client() as admin:
        return int(admin.info("stats")["total_connections_received"])


def _staging_keys(server: RedisServer) -> list[bytes]:
    with server.client() as admin:
        return list(admin.scan_iter(match=staging_key(PREFIX + "\x1f") + b"*"))


@pytest.mark.parametrize("flushed", [False, True], ids=["cached", "noscript"])
def test_ordered_writes_without_expiry_use_the_lean_client(
    server: RedisServer, flushed: bool
) -> None:
    with RedisBackend.from_url(server.url_for(prefix=PREFIX), default_ttl=None) as backend:
        assert backend._lean is not None
        backend.get("warm")  # the lean client's connection
        with server.client() as admin:
            admin.delete(*(backend._namespace.encode(k) for k in "ab"))
            admin.script_flush()
            if not flushed:  # else the server meets them first here: NOSCRIPT, SCRIPT LOAD
                admin.script_load(SET_AFTER_SCRIPT)
                admin.script_load(SET_IF_NEWER_SCRIPT)
        calls = server.command_calls()
        before = _accepted(server)
        version = backend.set_after("a", _value(5), NO_EXPIRY, clock_end=stamps.VERSION_END, **KW)
        assert version == (5).to_bytes(12, "big")
        assert backend.set_if_newer("b", _value(3), NO_EXPIRY, **KW)
        assert not backend.set_if_newer("b", _value(2), NO_EXPIRY, **KW)
        assert _accepted(server) == before + 1  # this count's own connection, no other
        later = server.command_calls()
        assert later.get("evalsha", 0) - calls.get("evalsha", 0) == (5 if flushed else 3)
        loads = later.get("script|load", 0) - calls.get("script|load", 0)
        assert loads == (2 if flushed else 0)
        assert later.get("eval", 0) == calls.get("eval", 0)  # by SHA only, as Script sends it
        assert backend.client.ttl(backend._namespace.encode("a")) == -1  # no expiry
        assert backend.get("b") == _value(3)
        assert _staging_keys(server) == []


def test_chain_save_without_expiry_uses_the_lean_client(server: RedisServer) -> None:
    url = f"memory://?max_entries=100 | {server.url_for(prefix=PREFIX)}"
    with SessionStore(url, dict) as store:
        store.save("warm", {"n": 0}, ttl=600)  # staged on the lean client: opens its connection
        before = _accepted(server)
        for n in range(1, 4):
            store.save("s", {"n": n}, ttl=NO_EXPIRY)
        assert store.load("s") == {"n": 3}
        assert _accepted(server) == before + 1  # this count's own: redis-py's pool opened none
        assert _staging_keys(server) == []
        store.delete("s")
        store.delete("warm")


def test_evalsha_only_user_writes_without_expiry_after_noscript(server: RedisServer) -> None:
    with server.acl_users() as make:
        url = make("~*", "&*", "+@all", "-eval", prefix=PREFIX)
        with server.client() as admin:
            admin.script_flush()
        with RedisBackend.from_url(url, default_ttl=None) as backend:
            assert backend._lean is not None
            clock = stamps.VERSION_END
            assert backend.set_after("c", _value(7), NO_EXPIRY, clock_end=clock, **KW)
            assert backend.set_if_newer("d", _value(1), NO_EXPIRY, **KW)
            assert backend.get("d") == _value(1)
            backend.delete("c")
            backend.delete("d")
