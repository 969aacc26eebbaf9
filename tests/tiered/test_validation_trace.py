"""Issue 16's trace: one ``save``, ``load`` and ``update`` of a ``SessionStore`` over a 3-tier
chain check the key once each.

The count is of real calls: every module's reference to
:func:`session_store.keys.validate_key` is wrapped by a function that counts the call (and who
made it) and then runs the real check; nothing is skipped or faked. A composite (the store, the
chain) that checks again what its caller already checked shows up as a count above one.

* Over ``memory | redis | diskcache`` (a real redis-server, a real directory), the store and the
  chain check each key once, and pass the checked call down (:func:`~session_store.backend_base.
  trusted`). The built-in memory, Redis and diskcache backends are not
  :class:`~session_store.backend_base.BackendBase` subclasses: each offers ``trusted_calls``
  (:func:`~session_store.unchecked.unchecked_calls`), so the whole trace checks each key once
  (before they did, it checked save 3, load 3, update 6 times).
* Each of those backends, alone: its trusted calls check nothing and still namespace, count and
  expire; each public call still checks its key once and refuses an invalid one.
* Over a chain of :class:`~session_store.backend_base.BackendBase` tiers (a process-local dict
  tier and two SQLite files of the example plugin), which honour the checked path, the whole
  trace checks each key once.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore, open_backend
from session_store import keys as keys_module
from session_store.backend import Scope, SessionBackend
from session_store.backend_base import BackendBase, trusted
from session_store.errors import InvalidKeyError, InvalidTTLError
from session_store.testing.hostile import INVALID_KEYS
from session_store.tiered import TieredBackend
from session_store.ttl import NO_EXPIRY
from session_store_example.backend import SqliteBackend

KEY = "trace-session-1"

#: Modules of the leaf backends over which the chain of the first trace is built.
LEAVES = ("session_store.memory", "session_store_redis", "session_store_diskcache")


class Calls:
    """The key checks made, each with the module that made it."""

    def __init__(self) -> None:
        self.by_module: Counter[str] = Counter()

    def clear(self) -> None:
        self.by_module.clear()

    @property
    def total(self) -> int:
        return sum(self.by_module.values())

    @property
    def composites(self) -> int:
        """Checks made by anything but a leaf backend (the store, the chain)."""
        return sum(n for module, n in self.by_module.items() if not module.startswith(LEAVES))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Counts the real ``validate_key`` calls on :data:`KEY`, wherever it was imported."""
    real = keys_module.validate_key
    seen = Calls()

    def counting(key: object, **kwargs: Any) -> str:
        if key == KEY:
            caller = sys._getframe(1).f_globals.get("__name__", "?")
            seen.by_module[caller] += 1
        return real(key, **kwargs)

    for module in list(sys.modules.values()):
        if module is not None and getattr(module, "validate_key", None) is real:
            monkeypatch.setattr(module, "validate_key", counting)
    return seen


def _trace(store: SessionStore[dict[str, Any]], calls: Calls) -> dict[str, Calls]:
    """One save, one load that misses the near cache, one update: the checks of each."""
    traced: dict[str, Calls] = {}

    def step(name: str, run: Callable[[], object]) -> None:
        calls.clear()
        run()
        traced[name] = Calls()
        traced[name].by_module.update(calls.by_module)

    step("save", lambda: store.save(KEY, {"n": 1}))
    chain = store.backend
    assert isinstance(chain, TieredBackend)
    chain.nearcache.drop(KEY)  # the load reads the shared tiers, the longest path
    step("load", lambda: store.load(KEY))
    step("update", lambda: store.update(KEY, lambda s: {"n": (s or {"n": 0})["n"] + 1}))
    assert store.load(KEY) == {"n": 2}
    return traced


@pytest.fixture
def default_chain(redis_url: str, tmp_path: Path) -> Iterator[SessionStore[dict[str, Any]]]:
    backend = open_backend(f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}")
    with SessionStore(backend, dict) as sessions:
        yield sessions
    backend.close()


def test_the_store_and_the_chain_check_each_key_once(
    default_chain: SessionStore[dict[str, Any]], calls: Calls
) -> None:
    traced = _trace(default_chain, calls)
    assert {name: t.composites for name, t in traced.items()} == {
        "save": 1,
        "load": 0,  # the memory tier checks a key it does not hold (counted as a leaf's)
        "update": 1,
    }, {name: dict(t.by_module) for name, t in traced.items()}


def test_memory_redis_diskcache_check_each_key_once(
    default_chain: SessionStore[dict[str, Any]], calls: Calls
) -> None:
    traced = _trace(default_chain, calls)
    assert {name: t.total for name, t in traced.items()} == {"save": 1, "load": 1, "update": 1}, {
        name: dict(t.by_module) for name, t in traced.items()
    }


@pytest.fixture(params=["memory", "redis", "diskcache"])
def leaf(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionBackend]:
    """A built-in backend alone."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
    else:
        url = "memory://" if request.param == "memory" else f"diskcache://{tmp_path / 'leaf'}"
    backend = open_backend(url)
    yield backend
    backend.close()


def test_a_leaf_s_trusted_calls_check_nothing_but_still_namespace_count_and_expire(
    leaf: SessionBackend, calls: Calls
) -> None:
    calls_of = trusted(leaf)
    assert calls_of is not leaf  # its own unchecked calls, not the public methods
    before = leaf.counters.as_dict()
    calls_of.set(KEY, b"one", 60.0)
    assert calls_of.get(KEY) == b"one"
    found = calls_of.get_with_ttl(KEY)
    assert found is not None and found[0] == b"one" and 0 < found[1] <= 60
    read = calls_of.get_versioned(KEY)
    assert read is not None and read.value == b"one"
    assert calls_of.set_if(KEY, b"two", read.token, None)
    assert not calls_of.set_if(KEY, b"three", read.token, None)  # the token is stale now
    assert calls_of.touch(KEY, 30.0)
    left = calls_of.ttl(KEY)
    assert left is not None and 0 < left <= 30
    assert calls.total == 0, dict(calls.by_module)
    # what the unchecked calls wrote is where the public methods look (the same namespace)
    assert leaf.get(KEY) == b"two"
    assert calls.total == (0 if leaf.scope is Scope.PROCESS else 1)  # memory: a held key
    assert calls_of.delete(KEY)
    assert calls_of.get(KEY) is None
    after = leaf.counters.as_dict()
    counted = {name: after[name] - before[name] for name in ("hits", "misses", "writes")}
    assert counted["writes"] == 2 and counted["misses"] == 1 and counted["hits"] >= 3, counted


def test_a_leaf_s_public_calls_check_every_key_once_and_refuse_bad_ones(
    leaf: SessionBackend, calls: Calls
) -> None:
    public: dict[str, Callable[[Any], object]] = {
        "get": leaf.get,
        "get_with_ttl": leaf.get_with_ttl,
        "set": lambda key: leaf.set(key, b"v"),
        "ttl": leaf.ttl,
        "touch": leaf.touch,
        "get_versioned": leaf.get_versioned,
        "set_if": lambda key: leaf.set_if(key, b"w", None),
        "delete": leaf.delete,
    }
    for name, call in public.items():
        calls.clear()
        call(KEY)
        # memory's set decides an ASCII key inline, without validate_key (refusals below)
        assert calls.total == (0 if name == "set" and leaf.scope is Scope.PROCESS else 1), name
        for bad in INVALID_KEYS:
            with pytest.raises(InvalidKeyError):
                call(bad)
    for write in (
        lambda: leaf.set(KEY, b"v", -1),
        lambda: leaf.set_if(KEY, b"v", None, math.nan),
        lambda: leaf.touch(KEY, 0),
    ):
        with pytest.raises(InvalidTTLError):
            write()


class DictTier(BackendBase):
    """A process-local tier in a dict (``key -> (value, monotonic deadline)``): the near cache
    of the second trace, written as :class:`BackendBase` hooks like any plugin."""

    scope = Scope.PROCESS

    def __init__(self) -> None:
        super().__init__(prefix="near:")
        self.data: dict[str, tuple[bytes, float]] = {}

    def _live(self, skey: str) -> tuple[bytes, float] | None:
        entry = self.data.get(skey)
        return entry if entry is not None and entry[1] > time.monotonic() else None

    def _get(self, skey: str) -> bytes | None:
        entry = self._live(skey)
        return None if entry is None else entry[0]

    def _set(self, skey: str, value: bytes, ttl: float | None) -> None:
        self.data[skey] = (value, math.inf if ttl is None else time.monotonic() + ttl)

    def _delete(self, skey: str) -> bool:
        return self.data.pop(skey, None) is not None

    def _touch(self, skey: str, ttl: float | None) -> bool:
        entry = self._live(skey)
        if entry is not None:
            self._set(skey, entry[0], ttl)
        return entry is not None

    def _ttl(self, skey: str) -> float | None:
        entry = self._live(skey)
        if entry is None:
            return None
        return NO_EXPIRY if entry[1] == math.inf else entry[1] - time.monotonic()

    def _scan(self, head: str) -> list[str]:
        return [skey for skey in self.data if skey.startswith(head)]


def test_a_chain_of_base_class_tiers_checks_each_key_once_end_to_end(
    tmp_path: Path, calls: Calls
) -> None:
    chain = TieredBackend(
        [
            DictTier(),
            SqliteBackend(str(tmp_path / "shared.sqlite")),
            SqliteBackend(str(tmp_path / "durable.sqlite")),
        ]
    )
    with SessionStore(chain, dict) as store:
        traced = _trace(store, calls)
    chain.close()
    assert {name: t.total for name, t in traced.items()} == {"save": 1, "load": 1, "update": 1}, {
        name: dict(t.by_module) for name, t in traced.items()
    }
