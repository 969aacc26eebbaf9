"""Found by newuser9 while making ``session-store delete`` agree with ``get``: the store itself
says a retired id (the marker a login's id rotation leaves on the old id for a minute) holds no
session (``load`` None, ``exists`` False, ``touch`` False), yet ``SessionStore.delete`` of it
answers ``True`` ("there was one", its docstring) and removes the marker, on every backend and
through a chain. The command line now reads first and leaves a marker alone (exit 3); the
store's answer is left to the maintainers, as the web integrations' logout calls it.

Fixed (retired10): a ``delete_session(key)`` beside ``touch_session`` (one Lua script on Redis
that deletes only a value holding a session, the same check in diskcache's transaction and the
memory backend's lock; a chain judging its newest copy), which ``SessionStore.delete`` calls.
The web integrations' id rotation ends its own marker with the store's ``_discard``.
"""

from __future__ import annotations

from session_store import SessionStore
from session_store.websession.steps import RETIRED


def test_delete_of_a_retired_id_says_there_was_no_session(single_url: str) -> None:
    with SessionStore(single_url, dict) as store:
        store.backend.set("old-id", RETIRED, 60)
        assert store.exists("old-id") is False and store.load("old-id") is None
        assert store.delete("old-id") is False
        assert store.backend.get("old-id") == RETIRED  # left to expire
