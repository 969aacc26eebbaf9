"""The staged compare-and-set (:mod:`session_store_redis.staged`) under an ACL that refuses
``MULTI`` itself: ``update`` must apply its function's result once.

``staged_write`` sends ``MULTI``, ``SET <staging key> <value>``, ``EVALSHA <staged CAS>``,
``EXEC`` in one round trip and reads the four replies. When ``MULTI`` is refused (``NOPERM``:
an ACL with ``-multi``, as some managed Redis plans and hand-written ACLs have), the ``SET`` and
the ``EVALSHA`` are not queued: they *run*, one by one, and the script's compare-and-set
succeeds and writes the new value. ``_transaction`` then takes the first error it read (the
``MULTI`` refusal) for "refused when queued: nothing ran" and answers ``REFUSED``; the backend
falls back to the one-script compare-and-set with the same token, which now fails (the key
holds the value just written), so ``update`` sees a conflict, reads its own write and runs the
function again: one ``update(+1)`` stored ``n = 2``.

Worse, by reasoning (not reproduced here): the staging key is one per database, shared by
every client because ``MULTI`` makes each ``SET``-then-``RENAME`` atomic. Unqueued, another
process's ``SET`` of the staging key can land between this one's ``SET`` and its script, whose
``RENAME`` then moves the *other* session's payload under this key (a large value arrives in
several reads, between which Redis serves other clients). Each backend stages at most once
under such an ACL (a refusal turns staging off), so the window is the first write of every
process.

The script must already be in the server's cache (else the ``EVALSHA`` outside ``MULTI`` answers
``NOSCRIPT`` and nothing is written): any earlier staged write by any client of the server, such
as every other process of the app, caches it. Found by attack7 (round 7) on the suite's real
redis-server.

Fixed: when the ``MULTI`` reply is an error, ``_transaction`` returns the script's own reply
(the commands after it ran outside a transaction). The shared-staging-key window above remains
for the first write of a process under such an ACL (staging is then turned off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from session_store import SessionStore
from session_store_redis.testing import RedisServer


def test_an_update_under_an_acl_refusing_multi_applies_its_function_once(tmp_path: Path) -> None:
    with RedisServer(directory=tmp_path) as server:
        with server.client() as admin:
            admin.execute_command(
                "ACL", "SETUSER", "nomulti", "on", ">secret", "~*", "&*", "+@all", "-multi"
            )
        # another process of the app (no such ACL) has written: the staged script is cached
        warm: SessionStore[dict[str, Any]] = SessionStore(
            f"redis://127.0.0.1:{server.port}/0?prefix=other:", dict, ttl=600
        )
        with warm:
            warm.save("w", {"n": 0})
            warm.update("w", lambda s: {"n": (s or {"n": 0})["n"] + 1})
        url = f"redis://nomulti:secret@127.0.0.1:{server.port}/0?prefix=acl:"
        store: SessionStore[dict[str, Any]] = SessionStore(url, dict, ttl=600)
        with store:
            store.save("counter", {"n": 0})
            calls: list[Any] = []

            def increment(current: dict[str, Any] | None) -> dict[str, Any]:
                calls.append(current)
                return {"n": (current or {"n": 0})["n"] + 1}

            result = store.update("counter", increment)
            stored = store.load("counter")
        assert stored == {"n": 1}, f"one update(+1) stored {stored} after {len(calls)} calls"
        assert result == {"n": 1}
