"""``SessionMapping`` (``session_store/mapping``), the legacy
``user_sessions`` dict the data-room facade hands out, against its module's promises: "every
change persists, nested ones included ... replayed on the freshly stored session ... so two
processes changing different parts both win. A change that can no longer be applied ... is a
ConflictError, never a silent loss."

The other writer is a real second process on the same real store (a redis-server of the
suite's fixtures, or a diskcache directory: ``shared_url``), run to completion at one point of
this process's sequence, so every interleaving is exact and repeatable.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from session_store import ConflictError, InvalidKeyError, SessionMapping, SessionStore, open_backend
from session_store.codec import Codec
from session_store.websession.steps import RETIRED

_OTHER = textwrap.dedent(
    """
    import sys
    from session_store import SessionMapping, SessionStore
    from session_store.codec import Codec

    url, code = sys.argv[1], sys.argv[2]
    with SessionStore(url, codec=Codec(encryption=None)) as store:
        sessions = SessionMapping(store)
        exec(code)
    """
)


def _other_process(url: str, code: str) -> None:
    """Run ``code`` (with ``sessions``: a mapping on ``url``) in another process, to the end."""
    done = subprocess.run(
        [sys.executable, "-c", _OTHER, url, code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def _mapping(url: str) -> SessionMapping:
    return SessionMapping(SessionStore(url, codec=Codec(encryption=None)))


def _stored(url: str, user: str) -> Any:
    store: SessionStore[Any]
    with SessionStore(url, codec=Codec(encryption=None)) as store:
        return dict(SessionMapping(store)[user])


def test_a_change_to_a_list_item_is_not_applied_to_another_item(shared_url: str) -> None:
    """Input: ``docs = [a, b]``; this process holds ``b`` (``d["docs"][1]``); another
    process inserts ``z`` at the front; this process sets ``b["status"] = "done"``.
    Before: the change was replayed at index 1 of the fresh list, which is now ``a``: ``a``
    was marked done, ``b`` was not, and no error was raised."""
    sessions = _mapping(shared_url)
    sessions["u"] = {"docs": [{"n": "a", "status": "new"}, {"n": "b", "status": "new"}]}
    b = sessions["u"]["docs"][1]
    _other_process(shared_url, "sessions['u']['docs'].insert(0, {'n': 'z', 'status': 'new'})")
    with contextlib.suppress(ConflictError):  # refused: allowed, as long as nothing was misapplied
        b["status"] = "done"
    docs = _stored(shared_url, "u")["docs"]
    assert {"n": "a", "status": "new"} in docs, docs
    assert [d["n"] for d in docs] == ["z", "a", "b"]


def test_a_pop_does_not_remove_what_another_process_appended(shared_url: str) -> None:
    """Input: ``l = [1, 2]`` held; another process appends 3; this process ``l.pop()`` (it saw
    2 last and popped it locally). Before: the replay popped the fresh list's last item, 3:
    the other process's acknowledged append was lost and 2 stayed."""
    sessions = _mapping(shared_url)
    sessions["u"] = {"l": [1, 2]}
    held = sessions["u"]["l"]
    _other_process(shared_url, "sessions['u']['l'].append(3)")
    with contextlib.suppress(ConflictError):
        assert held.pop() == 2
    stored = _stored(shared_url, "u")["l"]
    assert 3 in stored, stored


def test_replacing_a_list_item_does_not_overwrite_another_item(shared_url: str) -> None:
    """Input: ``docs = ["a", "b"]`` held; another process inserts ``"x"`` at the front; this
    process replaces index 1 (``"b"`` as it saw it) with ``"B"``. Before: the
    fresh list's index 1 was ``"a"`` and was overwritten: ``"a"`` lost, ``"b"`` unchanged."""
    sessions = _mapping(shared_url)
    sessions["u"] = {"docs": ["a", "b"]}
    docs = sessions["u"]["docs"]
    _other_process(shared_url, "sessions['u']['docs'].insert(0, 'x')")
    with contextlib.suppress(ConflictError):
        docs[1] = "B"
    stored = _stored(shared_url, "u")["docs"]
    assert "a" in stored, stored


def test_a_held_container_keeps_persisting_after_another_process_changed_it(
    shared_url: str,
) -> None:
    """Input: ``tags = d["tags"]`` held; another process appends ``"other"``; this process
    appends ``"mine1"`` (persisted, the session takes in the other's change), then ``"mine2"``.
    Before: taking in the other's change replaced ``d["tags"]`` with a new list, so ``tags``
    was silently detached: ``"mine2"`` showed in the local list and was never written."""
    sessions = _mapping(shared_url)
    sessions["u"] = {"tags": ["a"]}
    tags = sessions["u"]["tags"]
    _other_process(shared_url, "sessions['u']['tags'].append('other')")
    tags.append("mine1")
    with contextlib.suppress(ConflictError):  # refused is fine; written-locally-but-dropped is not
        tags.append("mine2")
    stored = _stored(shared_url, "u")["tags"]
    if "mine2" not in stored:
        assert "mine2" not in tags, f"local {tags!r}, stored {stored!r}: silently lost"
    assert stored[:3] == ["a", "other", "mine1"]


def test_len_agrees_with_iteration(redis_url: str) -> None:
    """``len(mapping)`` and ``list(mapping)`` count the same sessions. Input: one session and a
    key a web login rotated away (the retired marker a ``regenerate`` leaves for up to 60 s).
    Before: ``len`` scanned the raw keys (2), iteration listed live sessions only (1)."""
    backend = open_backend(redis_url)
    sessions = SessionMapping(SessionStore(backend, codec=Codec(encryption=None)))
    sessions["u"] = {"a": 1}
    backend.set("rotated-away", RETIRED, 60)
    assert list(sessions) == ["u"]
    assert len(sessions) == 1
    assert "rotated-away" not in sessions


def test_edit_reads_as_every_other_read_does(redis_url: str) -> None:
    """``edit`` on a key that holds no session (a retired id) is the ``KeyError`` of
    ``sessions[key]``; on a session a chain wrote, read through its Redis tier alone (the
    single-tier readers of docs/guarantees.md), it edits the session. Before: both were
    ``CorruptPayloadError`` (``edit`` decoded the raw bytes, frame and marker included)."""
    backend = open_backend(redis_url)
    sessions = SessionMapping(SessionStore(backend, codec=Codec(encryption=None)))
    backend.set("rotated-away", RETIRED, 60)
    with pytest.raises(KeyError):
        sessions["rotated-away"]
    with pytest.raises(KeyError), sessions.edit("rotated-away") as data:
        data["x"] = 1
    chain = open_backend(f"memory:// | {redis_url}")
    try:
        SessionMapping(SessionStore(chain, codec=Codec(encryption=None)))["c"] = {"n": 1}
    finally:
        chain.close()
    assert sessions["c"] == {"n": 1}
    with sessions.edit("c") as data:
        data["n"] = 2
    assert sessions["c"] == {"n": 2}


def test_held_changes_to_different_items_of_one_list_both_win(shared_url: str) -> None:
    """Held (the fix must not turn the common case into conflicts): another process marks
    ``docs[0]`` done, this process, holding ``docs[1]`` from before, marks it done too, then
    changes it again through the same held dict."""
    sessions = _mapping(shared_url)
    sessions["u"] = {"docs": [{"n": "a", "status": "new"}, {"n": "b", "status": "new"}]}
    b = sessions["u"]["docs"][1]
    _other_process(shared_url, "sessions['u']['docs'][0]['status'] = 'done'")
    b["status"] = "done"
    b["pages"] = 3
    assert _stored(shared_url, "u")["docs"] == [
        {"n": "a", "status": "done"},
        {"n": "b", "status": "done", "pages": 3},
    ]


@pytest.mark.parametrize(
    "user_id", ["x" * 1025, "\ud800", 10**5000], ids=["long", "surrogate", "huge-int"]
)
def test_a_user_id_no_session_can_have_is_not_in_the_mapping(user_id: object) -> None:
    """``in`` answers ``False`` for any user id that breaks the key rules (the module: "Other
    key types are an InvalidKeyError (``in`` answers ``False``)"), and every other entry
    raises ``InvalidKeyError``. Before: ``"x" * 1025 in sessions`` raised ``InvalidKeyError``
    (only the type was checked inside the ``try``), and an int of 5,000 digits raised a bare
    ``ValueError`` from ``str(int)`` everywhere."""
    sessions = SessionMapping(SessionStore("memory://", codec=Codec(encryption=None)))
    assert user_id not in sessions
    with pytest.raises(InvalidKeyError):
        sessions[user_id]
    with pytest.raises(InvalidKeyError):
        sessions[user_id] = {}


_EDITOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from session_store import ConflictError, SessionMapping, SessionStore
    from session_store.codec import Codec

    url, start, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    with SessionStore(url, codec=Codec(encryption=None)) as store:
        sessions = SessionMapping(store)
        Path(f"{start}.{sys.argv[4]}").touch()
        while not start.exists():
            time.sleep(0.001)
        conflicts = 0
        for _ in range(rounds):
            while True:
                try:
                    with sessions.edit("u") as data:
                        data["n"] += 1
                    break
                except ConflictError:
                    conflicts += 1
        print(conflicts)
    """
)


def test_held_edits_from_two_processes_are_never_lost(shared_url: str, tmp_path: Path) -> None:
    """``edit`` is a compare-and-set on the version it read: two processes released together,
    each retrying its 40 increments on ``ConflictError``, end at 80 (a conflict is reported,
    never a silent overwrite)."""
    sessions = _mapping(shared_url)
    sessions["u"] = {"n": 0}
    start, rounds = tmp_path / "start", 40
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _EDITOR, shared_url, str(start), str(rounds), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{start}.{name}").exists() for name in ("a", "b")):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.01)
    start.touch()
    conflicts = 0
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        conflicts += int(out)
    assert _stored(shared_url, "u") == {"n": 2 * rounds}, f"{conflicts} conflicts retried"
