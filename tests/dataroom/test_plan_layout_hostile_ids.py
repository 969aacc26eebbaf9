"""Hostile keys on two stores that share one Redis: the data-room plan's
layout (``session:{user_id}``: prefix ``session``, separator ``:``, what
``SessionManager.from_env()`` uses) beside a default-layout store (``redis://`` without a
prefix: ``session:`` + U+001F). The promise (``session_store/keys.py``, docs/dataroom.md): the
two "share a database without listing, migrating or counting each other's sessions"; the
guarantee under attack is that neither can read, overwrite or delete the other's.

The hostile input is a user id holding U+001F, through every public entry of the plan-layout
store: ``SessionManager``, ``SessionMapping``, the backend and the command line; on a real
redis-server (the suite's fixture) and on a plugin backend (the example SQLite plugin, one real
file) in the same two layouts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from session_store import InvalidKeyError, SessionMapping, SessionStore, open_backend
from session_store.codec import Codec
from session_store.dataroom import SessionManager
from session_store.keys import SEPARATOR, Namespace
from session_store.schema.dataroom import EnhancedSessionData
from session_store_example.backend import SqliteBackend
from session_store_redis.testing import RedisServer

VICTIM = {"user_id": "U2", "role": "admin"}
HOSTILE = f"{SEPARATOR}U2"  # the plan-layout user id whose stored key is the default's "U2"


def _victim(where: Any) -> SessionStore[Any]:
    """The default-layout store (``session:`` + U+001F) holding the victim's session ``U2``."""
    store = _store(where)
    store.save("U2", dict(VICTIM))
    return store


class _PlanLayoutSqlite(SqliteBackend):
    """The example plugin (``examples/session_store_example``, a :class:`BackendBase` over one
    SQLite file) in the plan's layout, as a plugin that takes a ``separator`` would be."""

    def __init__(self, path: str) -> None:
        super().__init__(path, prefix="session")
        self.namespace = Namespace("session", ":")


def _layouts(kind: str, server: RedisServer | None, directory: Path) -> tuple[Any, Any]:
    """The default layout's backend (or URL) and the plan layout's, sharing one Redis
    database or one SQLite file."""
    if server is not None:
        return server.url, server.url_for(prefix="session", separator=":")
    directory.mkdir()
    path = str(directory / "sessions.sqlite")
    return SqliteBackend(path, prefix="session:"), _PlanLayoutSqlite(path)


def _store(where: Any, schema: Any = None) -> SessionStore[Any]:
    return SessionStore(where, schema, codec=Codec(encryption=None))


def _facade_attempts(plan: Any) -> list[tuple[str, Callable[[], Any]]]:
    """The data-room facade's entries: where user ids from outside come in."""
    manager = SessionManager(_store(plan, EnhancedSessionData))
    mapping = SessionMapping(_store(plan))
    return [
        ("manager.get", lambda: manager.get_enhanced_session(HOSTILE)),
        ("manager.store", lambda: manager.store_enhanced_session(HOSTILE, {"role": "x"})),
        ("manager.delete", lambda: manager.delete_session(HOSTILE)),
        ("mapping.get", lambda: mapping[HOSTILE]),
        ("mapping.set", lambda: mapping.__setitem__(HOSTILE, {"role": "x"})),
        ("mapping.del", lambda: mapping.__delitem__(HOSTILE)),
    ]


def _backend_attempts(plan: Any) -> list[tuple[str, Callable[[], Any]]]:
    """The plan-layout backend itself (and a store over it)."""
    backend = open_backend(plan) if isinstance(plan, str) else plan
    store = _store(backend)
    return [
        ("backend.get", lambda: backend.get(HOSTILE)),
        ("backend.set", lambda: backend.set(HOSTILE, b'{"role": "x"}')),
        ("backend.delete", lambda: backend.delete(HOSTILE)),
        ("store.load", lambda: store.load(HOSTILE)),
        ("store.delete", lambda: store.delete(HOSTILE)),
    ]


def _check_refused(default: Any, attempts: list[tuple[str, Callable[[], Any]]]) -> None:
    """Each attempt is an ``InvalidKeyError`` and leaves the victim's session as it was."""
    victim = _victim(default)
    before = victim.backend.get("U2")
    for name, attempt in attempts:
        with pytest.raises(InvalidKeyError, match="U\\+001F"):
            attempt()
        assert victim.backend.get("U2") == before, name
        assert victim.load("U2") == VICTIM, name


def _server(kind: str, factory: Callable[..., RedisServer]) -> RedisServer | None:
    return factory() if kind == "redis" else None


@pytest.mark.parametrize("kind", ["redis", "plugin"])
def test_the_data_room_facade_cannot_reach_a_default_stores_session(
    kind: str, redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Input: the default store holds ``U2``; each entry of the data-room facade over the
    plan-layout store (``SessionManager``, ``SessionMapping``) is called with user id
    ``"\\x1fU2"``. Before (both kinds): ``manager.get`` and ``mapping[...]`` returned the
    victim's session, ``manager.store`` and ``mapping[...] =`` overwrote it,
    ``delete_session`` / ``del`` deleted it: the stored key ``session:\\x1fU2`` is the same.
    What must hold: each is an ``InvalidKeyError`` before any I/O (``in`` answers ``False``),
    and the victim's session is untouched."""
    default, plan = _layouts(kind, _server(kind, redis_server_factory), tmp_path / "d")
    _check_refused(default, _facade_attempts(plan))
    assert HOSTILE not in SessionMapping(_store(plan))


@pytest.mark.parametrize("kind", ["redis", "plugin"])
def test_a_plan_layout_backend_cannot_reach_a_default_stores_session(
    kind: str, redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """The same through the plan-layout backend and a ``SessionStore`` over it. Before: the
    backend read, overwrote and deleted ``U2``. Fixed in ``Namespace.encode`` for every
    ``BackendBase`` backend (the plugin) and, since every key site of the Redis plugin builds
    its stored key through it, on Redis (there every operation is covered by
    ``backends/redis/tests/topologies/test_key_layout.py``)."""
    default, plan = _layouts(kind, _server(kind, redis_server_factory), tmp_path / "d")
    _check_refused(default, _backend_attempts(plan))


def test_the_command_line_cannot_delete_a_default_stores_session_through_the_plan_url(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """``session-store delete "<plan url>" $'\\x1fU2'`` on Redis: refused (exit status not
    0), the victim's session untouched. Before: ``deleted \\x1fU2``, exit status 0, ``U2``
    gone."""
    default_url, plan_url = _layouts("redis", redis_server_factory(), tmp_path / "d")
    victim = _victim(default_url)
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSION_STORE", "REDIS"))}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = subprocess.run(
        [script, "delete", plan_url, HOSTILE],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    assert victim.load("U2") == VICTIM
