"""A request that empties the session (removes its last keys) while other requests keep
committing to it: each race is staged deterministically, another request's save made just
before one of this request's compare-and-sets (review of attack9b).

* after its merged write lost, the commit reads again: retiring with the token that write just
  proved stale is a round trip certain to fail;
* overtaken every round by a request that only sets the removed key again, its last merge
  leaves nothing: the session ends (retired, deleted, cookie expired), not stored empty with
  the cookie kept."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from session_store import MemoryBackend, SessionStore
from session_store.backend import VersionToken
from session_store.websession import Action, ServerSession, commit, new_session_id, read_session
from session_store.websession.steps import MOVE_ATTEMPTS, RETIRED
from tests.web.support import RecordingBackend

Data = dict[str, Any]


class RacedBackend(RecordingBackend):
    """Runs ``before[n]`` (another request's commit) just before the n-th ``set_if``."""

    def __init__(self, inner: MemoryBackend) -> None:
        super().__init__(inner)
        self.before: dict[int, Callable[[], object]] = {}
        self.set_ifs: list[bytes] = []

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        race = self.before.get(len(self.set_ifs))
        self.set_ifs.append(value)
        if race is not None:
            race()
        return super().set_if(key, value, token, ttl)


def _setup(stored: Data) -> tuple[SessionStore[Data], SessionStore[Data], RacedBackend, str]:
    inner = MemoryBackend()
    backend = RacedBackend(inner)
    store: SessionStore[Data] = SessionStore(backend, dict)
    other: SessionStore[Data] = SessionStore(inner, dict)  # the other request, unrecorded
    sid = new_session_id()
    other.save(sid, stored)
    return store, other, backend, sid


def _saving(other: SessionStore[Data], sid: str, data: Data) -> Callable[[], object]:
    return lambda: other.save(sid, data)


def _emptied(store: SessionStore[Data], sid: str) -> ServerSession:
    session = ServerSession(sid, lambda key: read_session(store, key))
    session.pop("flash")  # the read happens here; the session is empty now
    return session


def test_a_lost_merged_write_is_followed_by_a_read_not_a_stale_retire() -> None:
    store, other, backend, sid = _setup({"flash": "saved"})
    session = _emptied(store, sid)
    other.save(sid, {"flash": "saved", "cart": [1]})  # committed after our read
    backend.before[1] = lambda: other.save(sid, {"flash": "saved", "cart": [2]})
    backend.calls.clear()
    assert commit(store, session, ttl=60) == (sid, Action.WRITE)
    # retire (lost), read, merged write (lost), read again, merged write (won)
    assert backend.names() == ["set_if", "get_versioned", "set_if", "get_versioned", "set_if"]
    assert store.load(sid) == {"cart": [2]}
    assert backend.set_ifs.count(RETIRED) == 1


def test_overtaken_every_round_by_the_removed_key_only_ends_the_session() -> None:
    store, other, backend, sid = _setup({"flash": "saved"})
    session = _emptied(store, sid)
    for n in range(MOVE_ATTEMPTS):  # the other request sets the removed key again each round
        backend.before[n] = _saving(other, sid, {"flash": f"again {n}"})
    outcome = commit(store, session, ttl=60)
    assert outcome == (None, Action.DELETE)  # the cookie is expired, as with no race
    assert store.load(sid) is None and backend.inner.get(sid) is None


def test_overtaken_every_round_then_a_new_key_is_kept() -> None:
    store, other, backend, sid = _setup({"flash": "saved"})
    session = _emptied(store, sid)
    for n in range(MOVE_ATTEMPTS):
        backend.before[n] = _saving(other, sid, {"flash": f"again {n}"})
    # the last merge leaves nothing; a key committed before the retire survives it
    backend.before[MOVE_ATTEMPTS + 1] = lambda: other.save(sid, {"cart": [3]})
    assert commit(store, session, ttl=60) == (sid, Action.WRITE)
    assert store.load(sid) == {"cart": [3]}
