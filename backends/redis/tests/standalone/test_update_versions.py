"""A store's ``update`` over Redis compares a short version, not the session (issue 17): it
frames what it writes with a fresh version (:mod:`session_store.stamps`), so the next
compare-and-set checks the frame's head and tail (``GETRANGE``) instead of reading the whole
value into Lua and hashing it (``GET``, ``sha1hex``). A value written without a frame (``save``,
any earlier release) is still compared whole, and no update is lost either way."""

from __future__ import annotations

import secrets
from typing import Any

import redis

from session_store import SessionStore
from session_store.stamps import MAGIC, own_ttl, session_bytes
from session_store_redis.testing import RedisServer

Session = dict[str, Any]
BIG = {"notes": "x" * 5000, "n": 0}


def _bump(session: Session | None) -> Session:
    return {**(session or {}), "n": (session or {}).get("n", 0) + 1}


def _script_calls(admin: redis.Redis) -> dict[str, int]:
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(row["calls"]) for name, row in stats.items()}


def test_an_update_compares_the_version_it_wrote_not_the_payload(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """Before: the stored value was the bare payload, and each update's script read it whole
    (``GET``) to hash it; now the script reads two ranges of the frame."""
    url = redis_server.url_for(prefix=redis_namespace)
    with SessionStore(url, dict) as store, redis_server.client() as admin:
        store.save("k", BIG)
        store.update("k", _bump)  # over the bare payload: compared whole (as before)
        admin.config_resetstat()
        store.update("k", _bump)  # over what the last update wrote: the frame
        calls = _script_calls(admin)
        assert "get" not in calls, calls
        assert calls.get("getrange") == 2, calls
        stored = store.backend.get("k")
        assert stored is not None and stored.startswith(MAGIC)
        assert own_ttl(stored) is None  # the store's TTL: touch keeps the store's as before
        assert store.load("k") == {**BIG, "n": 2}
        assert SessionStore(url, dict).load("k") == {**BIG, "n": 2}  # another reader


def test_a_concurrent_write_between_two_updates_is_never_overwritten(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The short check still catches every other write: a ``save`` by another store (a bare
    payload), another store's ``update`` (another version), and a copy of the same frame's
    head with other content (the length and tail differ)."""
    url = redis_server.url_for(prefix=redis_namespace)
    with SessionStore(url, dict) as mine, SessionStore(url, dict) as other:
        mine.save("k", BIG)
        mine.update("k", _bump)
        other.save("k", {**BIG, "n": 10})  # bare: the frame mine holds no longer matches
        assert mine.update("k", _bump) == {**BIG, "n": 11}
        other.update("k", _bump)  # another version
        assert mine.update("k", _bump) == {**BIG, "n": 13}
        stored = mine.backend.get("k")
        other.save("elsewhere", {"forged": 0})
        payload = other.backend.get("elsewhere")
        assert stored is not None and payload is not None
        mine.backend.set("k", stored[:25] + payload)  # the same head, other content
        assert mine.update("k", _bump) == {"forged": 0, "n": 1}
        assert session_bytes(stored[:25] + payload) == payload


def test_an_update_with_its_own_ttl_records_it_in_the_same_frame(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    url = redis_server.url_for(prefix=redis_namespace)
    with SessionStore(url, dict, touch_on_load=True) as store:
        store.save("k", BIG)
        store.update("k", _bump, ttl=30)
        stored = store.backend.get("k")
        assert stored is not None and own_ttl(stored) == 30.0
        store.backend.touch("k", 5)
        assert store.load("k") == {**BIG, "n": 1}
        left = store.backend.ttl("k")
        assert left is not None and 25 < left <= 30


def test_a_small_session_updates_in_one_script_without_staging(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """A session shorter than ``STAGE_CAS_FROM`` is compared and written by one ``EVALSHA``
    (the value passes through Lua, which costs Redis less than staging it below that size:
    docs/performance.md); a larger one is still staged (``MULTI``, ``SET`` of the staging key,
    the script, ``EXEC``, ``RENAME``). (Failed before for the small one: it was staged too.)"""
    from session_store_redis.staged import STAGE_CAS_FROM

    url = redis_server.url_for(prefix=redis_namespace)
    small = {"notes": "x" * 200, "n": 0}
    large = {"notes": secrets.token_urlsafe(3 * STAGE_CAS_FROM), "n": 0}  # zstd leaves it large
    with SessionStore(url, dict) as store, redis_server.client() as admin:
        for key, session, staged in (("small", small, False), ("large", large, True)):
            store.save(key, session)
            store.update(key, _bump)  # over the bare payload: compared whole
            stored = store.backend.get(key)
            assert stored is not None and (len(stored) >= STAGE_CAS_FROM) is staged
            admin.config_resetstat()
            for _ in range(3):
                store.update(key, _bump)
            calls = _script_calls(admin)
            assert calls.get("evalsha") == 3, calls
            assert calls.get("getrange") == 6, calls  # the frame's tail and head
            assert ("exec" in calls) is staged and ("rename" in calls) is staged, calls
            assert "multi" not in calls or staged, calls
            assert store.load(key) == {**session, "n": 4}
