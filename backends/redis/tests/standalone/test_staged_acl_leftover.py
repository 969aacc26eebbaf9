"""The staged compare-and-set (:mod:`session_store_redis.staged`) under an
ACL that refuses ``RENAME`` inside the script: what becomes of the staged copy of the session.

``staged_write`` sends ``MULTI``, ``SET <staging key> <the new value> [PX ttl]``, ``EVALSHA``,
``EXEC``; when the script's ``RENAME`` is refused (``NOPERM``), the ``SET`` has run and the
script stopped before its ``DEL``, so the staging key holds the session's new payload. Its
docstring says "the next staged write replaces" it; but the backend answers a refusal by
writing with the one-script texts *for good* (``RedisBackend._refused``), so no staged write
ever comes: the payload outlives the session. Found on the suite's real redis-server: after the
session is deleted (a logout), ``<prefix>\\x1f\\xff:staged-write`` still holds its data
(``{"secret": "s3cr3t", ...}`` in clear JSON without encryption), with no expiry for a session
that had none (else until the session's TTL), invisible to ``scan``/``session-store ls``.
Fixed: the backend deletes the staging key when it turns staging off
(``RedisBackend._refused``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from session_store import NO_EXPIRY, SessionStore
from session_store_redis.testing import RedisServer


def test_a_refused_staged_write_leaves_no_copy_of_the_session(tmp_path: Path) -> None:
    with RedisServer(directory=tmp_path) as server:
        with server.client() as admin:
            admin.execute_command(
                "ACL", "SETUSER", "limited", "on", ">secret", "~*", "&*", "+@all", "-rename"
            )
        url = f"redis://limited:secret@127.0.0.1:{server.port}/0?prefix=acl:"
        store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=NO_EXPIRY)
        with store:
            store.save("alice", {"secret": "s3cr3t"})
            assert store.update("alice", lambda s: {**(s or {}), "n": 1}) is not None
            assert store.load("alice") == {"secret": "s3cr3t", "n": 1}
            assert store.delete("alice")  # a logout
        with server.client() as admin:
            holding = {
                key: admin.pttl(key)
                for key in admin.scan_iter(match=b"acl:*")
                if b"s3cr3t" in (admin.get(key) or b"")
            }
        assert holding == {}, f"the deleted session's data is still stored: {holding}"
