"""The lean client's scripts after ``NOSCRIPT``: ``SCRIPT LOAD`` and ``EVALSHA``, never ``EVAL``
(mend11), on a redis-server of this module's own.

The lean client sent ``touch_session`` and the small compare-and-set by SHA and, when the server
did not know the script (flushed, restarted), by text (``EVAL``), while its ordered writes
(lean10) and redis-py's ``Script`` load it (``SCRIPT LOAD``) and send the SHA again. A user whose
ACL allows ``EVALSHA`` and ``SCRIPT LOAD`` but not ``EVAL`` (what ``Script`` needs) was refused
both after a ``SCRIPT FLUSH``: ``touch_session`` and ``set_if`` raised ``BackendError`` ("no
permissions to run the 'eval' command"). One helper (:mod:`session_store_redis.lean_script`) now
serves every script the lean client sends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from session_store import SessionStore
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer

PREFIX = "mend11:"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


def _flush(server: RedisServer) -> None:
    with server.client() as admin:
        admin.script_flush()


def test_evalsha_only_user_touches_and_compares_and_sets_after_a_flush(
    server: RedisServer,
) -> None:
    with server.acl_users() as make:
        url = make("~*", "&*", "+@all", "-eval", prefix=PREFIX)
        with RedisBackend.from_url(url) as backend:
            assert backend._lean is not None  # the client under test
            backend.set("t", b"session", ttl=10)
            backend.set("c", b"before", ttl=600)
            read = backend.get_versioned("c")
            assert read is not None
            _flush(server)
            assert backend.touch_session("t", 600) is True
            assert 500 < (backend.ttl("t") or 0) <= 600
            _flush(server)
            assert backend.set_if("c", b"after", read.token, ttl=600) is True  # small: one script
            assert backend.get("c") == b"after"
            assert backend.set_if("c", b"stale", read.token, ttl=600) is False
            assert backend.get("c") == b"after"


def _increment(data: dict[str, int] | None) -> dict[str, int]:
    assert data is not None
    return {"n": data["n"] + 1}


def test_a_store_of_an_evalsha_only_user_updates_and_slides_after_a_flush(
    server: RedisServer,
) -> None:
    with server.acl_users() as make:
        url = make("~*", "&*", "+@all", "-eval", prefix=PREFIX)
        with SessionStore(url, dict) as store:
            store.save("s", {"n": 1}, ttl=60)
            _flush(server)
            assert store.update("s", _increment) == {"n": 2}
            _flush(server)
            assert store.touch("s", 600) is True
            assert store.load("s") == {"n": 2}


def test_noscript_costs_one_script_load_and_no_eval(server: RedisServer) -> None:
    with RedisBackend.from_url(server.url_for(prefix=PREFIX)) as backend:
        backend.set("k", b"v", ttl=60)
        read = backend.get_versioned("k")
        assert read is not None
        _flush(server)
        before = server.command_calls()
        assert backend.touch_session("k", 60) is True
        assert backend.set_if("k", b"w", read.token, ttl=60) is True
        after = server.command_calls()
        ran = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        assert ran.get("eval", 0) == 0
        assert ran["evalsha"] == 4  # NOSCRIPT, then the SHA again, for each of the two
        assert ran["script|load"] == 2
