"""Model-based test: a Hypothesis state machine drives two "processes" sharing tiered storage.

Each process is a default ``TieredBackend(max_staleness=1.0)`` with its own memory tier over
two shared tiers (a "redis" and a "disk"; memory backends behind switches, for speed). Random
saves, updates (compare-and-set), deletes, touches, TTL expiries (a hand-driven clock), tier
failures and recoveries (for every process, or for one process alone), process restarts and
the passing of time run against a plain model; every
read is checked, and after every step a process started just then (reading through a read-only
view of the shared tiers, so that the check repairs nothing) must read the newest value of every
key.

What a read may return (the promises of docs/guarantees.md):

* the process that wrote a key last reads exactly the model's value (read-your-writes);
* another process reads the model's value, or one that was current less than ``max_staleness``
  seconds ago (the near-cache bound); never anything older, in particular never a copy that a
  recovering tier held from before writes it missed;
* a compare-and-set read, a delete's and a touch's answer are exact; while the arbiter ("redis")
  is down, a compare-and-set read is refused with ``BackendUnavailableError``.

One shared tier is fallible per run (chosen at the start): the other holds every write. Key
``a`` never expires, ``x`` always lives TTL seconds from its last write or
touch (see docs/guarantees.md for why a TTL that shrinks is out of scope). Two keys keep
collisions (overwrites, deletes of present keys, stale copies) frequent.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from session_store import BackendUnavailableError, MemoryBackend, TieredBackend
from session_store.backend import Scope, VersionToken
from session_store.testing.faults import SwitchableBackend as Switchable
from tests.tiered.support import Clock

MAX_STALENESS = 1.0
RETRY_AFTER = 2.0
TTL = 3.0
PERSISTENT = ("a",)
EXPIRING = ("x",)
KEYS = PERSISTENT + EXPIRING


class ReadOnly(Switchable):
    """Reads go through; writes are dropped (``set_if`` loses): a checker that repairs nothing."""

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._check()

    def set_many(self, items: Any, ttl: float | None = None) -> None:
        self._check()

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        self._check()
        return False

    def delete(self, key: str) -> bool:
        self._check()
        return False

    def delete_many(self, keys: Any) -> int:
        self._check()
        return 0

    def touch(self, key: str, ttl: float | None = None) -> bool:
        self._check()
        return False


class Event(NamedTuple):
    """A write, delete or touch in the model: from ``time`` on, ``value`` until ``expires``."""

    time: float
    value: bytes | None
    expires: float
    writer: str


keys = st.sampled_from(KEYS)
values = st.binary(max_size=6)
processes = st.sampled_from(["A", "B"])


class TieredModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.redis = Switchable(MemoryBackend(clock=self.clock), scope=Scope.NETWORK)
        self.disk = Switchable(MemoryBackend(clock=self.clock), scope=Scope.HOST)
        self.fallible = self.redis
        self.caches: dict[str, Switchable] = {}
        # each process's own view of the shared tiers: an outage only it sees (a network blip,
        # a pause it alone ran into) while the other process reaches the tier fine
        self.views: dict[str, dict[str, Switchable]] = {
            name: {
                "redis": Switchable(self.redis, scope=Scope.NETWORK),
                "disk": Switchable(self.disk, scope=Scope.HOST),
            }
            for name in ("A", "B")
        }
        self.chains: dict[str, TieredBackend] = {}
        for name in ("A", "B"):
            self._start(name)
        self.history: dict[str, list[Event]] = {key: [] for key in KEYS}

    def _start(self, name: str) -> None:
        cache = Switchable(MemoryBackend(clock=self.clock, max_entries=3))
        self.caches[name] = cache
        view = self.views[name]
        self.chains[name] = TieredBackend(
            [cache, view["redis"], view["disk"]],
            clock=self.clock,
            stamps=True,
            max_staleness=MAX_STALENESS,
            retry_after=RETRY_AFTER,
            max_missed=5 if name == "A" else 100_000,  # A's tiers get fenced now and then
        )

    def _fresh_chain(self) -> TieredBackend:
        """A process started just now: no cache, no memory of outages; it reads the shared tiers
        through read-only views (down when they are down), so reading repairs nothing."""
        views = []
        for tier in (self.redis, self.disk):
            view = ReadOnly(tier.inner, scope=tier.scope)
            view.down = tier.down
            views.append(view)
        return TieredBackend(
            [MemoryBackend(clock=self.clock), *views],
            clock=self.clock,
            stamps=True,
            max_staleness=MAX_STALENESS,
        )

    # -- the model ---------------------------------------------------------------------------
    def _ttl(self, key: str) -> float | None:
        return TTL if key in EXPIRING else None

    def _record(self, key: str, value: bytes | None, writer: str) -> None:
        ttl = self._ttl(key)
        expires = math.inf if ttl is None or value is None else self.clock.now + ttl
        self.history[key].append(Event(self.clock.now, value, expires, writer))

    def _current(self, key: str) -> bytes | None:
        events = self.history[key]
        if not events or events[-1].expires <= self.clock.now:
            return None
        return events[-1].value

    def _acceptable(self, name: str, key: str) -> set[bytes | None]:
        """What process ``name`` may read for ``key`` now (see the module doc)."""
        now, events = self.clock.now, self.history[key]
        current = self._current(key)
        if events and events[-1].writer == name:
            return {current}
        horizon = now - MAX_STALENESS
        allowed: set[bytes | None] = {current}
        if not events or events[0].time > horizon:
            allowed.add(None)  # absent before the first write
        for i, event in enumerate(events):
            following = events[i + 1].time if i + 1 < len(events) else math.inf
            if min(event.expires, following) > horizon:
                allowed.add(event.value)
            if event.expires < following and following > horizon:
                allowed.add(None)  # expired, until the next write
        return allowed

    # -- set-up --------------------------------------------------------------------------------
    @initialize(which=st.sampled_from(["redis", "disk"]))
    def choose_the_fallible_tier(self, which: str) -> None:
        self.fallible = self.redis if which == "redis" else self.disk

    def teardown(self) -> None:
        for chain in self.chains.values():
            chain.close()

    # -- writes --------------------------------------------------------------------------------
    @rule(name=processes, key=keys, value=values)
    def save(self, name: str, key: str, value: bytes) -> None:
        self.chains[name].set(key, value, self._ttl(key))
        self._record(key, value, name)

    @rule(name=processes, items=st.dictionaries(keys, values, max_size=3))
    def save_many(self, name: str, items: dict[str, bytes]) -> None:
        for ttl in {self._ttl(key) for key in items}:
            batch = {k: v for k, v in items.items() if self._ttl(k) == ttl}
            self.chains[name].set_many(batch, ttl)
            for key, value in batch.items():
                self._record(key, value, name)

    @rule(name=processes, key=keys)
    def update(self, name: str, key: str) -> None:
        chain = self.chains[name]
        if self.fallible is self.redis and (self.redis.down or self.views[name]["redis"].down):
            # the arbiter is unreachable (for everyone, or for this process alone): refused
            with pytest.raises(BackendUnavailableError, match="arbiter"):
                chain.get_versioned(key)
            return
        disk_unheard = self.fallible is self.disk and (
            self.disk.down or self.views[name]["disk"].down
        )
        if disk_unheard:
            # the disk, which may hold a write made around the arbiter (or the only copy),
            # does not answer: refused rather than built on the arbiter's copy alone
            with pytest.raises(BackendUnavailableError, match="durable tier"):
                chain.get_versioned(key)
            return
        read = chain.get_versioned(key)
        current = self._current(key)
        assert (None if read is None else read.value) == current  # exact, never stale
        new = (current or b"") + b"+"
        token = None if read is None else read.token
        assert chain.set_if(key, new, token, self._ttl(key)) is True
        self._record(key, new, name)

    @rule(name=processes, key=keys)
    def delete(self, name: str, key: str) -> None:
        assert self.chains[name].delete(key) == (self._current(key) is not None)
        self._record(key, None, name)

    @rule(name=processes, chosen=st.lists(keys, max_size=3, unique=True))
    def delete_many(self, name: str, chosen: list[str]) -> None:
        present = sum(1 for key in chosen if self._current(key) is not None)
        assert self.chains[name].delete_many(chosen) == present
        for key in chosen:
            self._record(key, None, name)

    @rule(name=processes, key=keys)
    def touch(self, name: str, key: str) -> None:
        current = self._current(key)
        assert self.chains[name].touch(key, self._ttl(key)) == (current is not None)
        if current is not None:  # a new expiry, the same value and the same last writer
            self._record(key, current, self.history[key][-1].writer)

    # -- reads ---------------------------------------------------------------------------------
    @rule(name=processes, key=keys)
    def get(self, name: str, key: str) -> None:
        got = self.chains[name].get(key)
        assert got in self._acceptable(name, key), (got, self._acceptable(name, key))

    @rule(name=processes, chosen=st.lists(keys, max_size=4, unique=True))
    def get_many(self, name: str, chosen: list[str]) -> None:
        got = self.chains[name].get_many(chosen)
        for key in chosen:
            assert got.get(key) in self._acceptable(name, key), key

    @rule(name=processes, key=keys)
    def exists(self, name: str, key: str) -> None:
        present = self.chains[name].ttl(key) is not None
        assert present in {value is not None for value in self._acceptable(name, key)}

    @rule(name=processes)
    def scan(self, name: str) -> None:
        listed = set(self.chains[name].scan())
        present = {key for key in KEYS if self._current(key) is not None}
        assert present <= listed
        fresh = self._fresh_chain()
        for key in listed - present:  # a tombstone left by a delete during an outage
            assert fresh.get(key) is None, key

    @invariant()
    def a_new_process_reads_the_newest(self) -> None:
        fresh = self._fresh_chain()
        for key in KEYS:
            assert fresh.get(key) == self._current(key), key

    # -- the world -----------------------------------------------------------------------------
    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(which=st.sampled_from(["shared", "A", "B"]))
    def fail(self, which: str) -> None:
        (self.fallible if which == "shared" else self.caches[which]).down = True

    @rule(which=st.sampled_from(["shared", "A", "B"]))
    def recover(self, which: str) -> None:
        (self.fallible if which == "shared" else self.caches[which]).down = False

    @rule(name=processes)
    def fail_for_one_process(self, name: str) -> None:
        """The fallible tier goes down for ``name`` only: the processes disagree."""
        self.views[name]["redis" if self.fallible is self.redis else "disk"].down = True

    @rule(name=processes)
    def recover_for_one_process(self, name: str) -> None:
        self.views[name]["redis" if self.fallible is self.redis else "disk"].down = False

    @rule(name=processes)
    def restart(self, name: str) -> None:
        self.chains[name].close()
        self._start(name)


# Examples and steps from the suite's Hypothesis profile: 150 runs of 40 steps under CI=true
# (the ``ci`` profile, as before), 25 of 20 in a local run.
TestTieredModel = settings(deadline=None)(TieredModel).TestCase
