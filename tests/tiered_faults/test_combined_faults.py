"""The chain under faults the nemesis does not combine, found by an adversarial review of its
guarantees (docs/guarantees.md, parts 2 and 3).

Each test reproduced one broken promise before its fix, against real things: a redis-server the
test starts on a free loopback port (killed, restarted empty, or paused for writes with
``CLIENT PAUSE ... WRITE`` so that only a client with a short socket timeout gives up), real
diskcache directories (locked by another SQLite connection), real second chains with their own
connections and invalidation streams. A "host whose clock runs ahead" is simulated as
tests/tiered/test_tier_regressions.py does: a frame written with a version from the future.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from session_store import TieredBackend, open_backend, stamps
from session_store.tiered.writes import write_after
from session_store_redis.testing import RedisServer
from tests.tiered.test_tier_regressions import disk_locked


def _ahead(seconds: float) -> bytes:
    """A version from a host whose clock runs ``seconds`` ahead of this one's."""
    now = int.from_bytes(stamps.clock.now()[:8], "big")
    return (now + (int(seconds * 1000) << 16)).to_bytes(8, "big") + bytes(4)


def _chain(spec: str) -> TieredBackend:
    chain = open_backend(spec)
    assert isinstance(chain, TieredBackend)
    return chain


@contextlib.contextmanager
def _writes_paused(server: RedisServer) -> Iterator[None]:
    """Redis holds every client's writes (``CLIENT PAUSE 2000 WRITE``) until the block ends:
    a client with a short socket timeout gives up on its write, while the others' connections
    and invalidation streams are untouched (PING is not a write)."""
    admin = redis.Redis.from_url(server.url_for())
    admin.execute_command("CLIENT", "PAUSE", "2000", "WRITE")  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
        admin.close()


def _wait_coherent(*chains: TieredBackend) -> None:
    deadline = time.monotonic() + 5
    while not all(chain.coherent for chain in chains):
        assert time.monotonic() < deadline, "the invalidation streams never connected"
        time.sleep(0.01)


# -- lost acknowledged write ----------------------------------------------------------------------
def test_a_save_while_redis_is_down_is_not_lost_behind_a_copy_from_a_clock_ahead(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory(appendonly=True, extra_config=("appendfsync always",))
    url = server.url_for(prefix="lost:", socket_timeout="0.2", socket_connect_timeout="0.2")
    spec = f"memory:// | {url} | diskcache://{tmp_path / 'disk'}"
    writer = _chain(spec)
    # another host, whose clock runs 60 s ahead, saved the session through its chain
    theirs = stamps.frame(b"theirs", _ahead(60), None)
    for tier in writer.tiers[1:]:
        write_after(tier, "k", theirs, 3600)
    server.kill()  # Redis is down: the disk tier alone acknowledges writes (guarantees.md 3)
    writer.set("k", b"mine")  # returns: acknowledged
    server.restart()
    reader = _chain(spec)
    try:
        assert reader.get("k") == b"mine", "an acknowledged save is not in any tier"
    finally:
        reader.close()
        writer.close()


# -- stale read beyond the bound (a logout that does not log out) ----------------------------------
def test_a_logout_while_the_deleter_skips_redis_reaches_other_near_caches_within_the_bound(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory()
    disk = tmp_path / "disk"
    # worker A: a short socket timeout (so a brief stall opens its breaker); worker B: defaults
    url_a = server.url_for(prefix="bye:", socket_timeout="0.2", socket_connect_timeout="0.2")
    a = _chain(f"memory:// | {url_a} | diskcache://{disk}")
    b = _chain(f"memory:// | {server.url_for(prefix='bye:')} | diskcache://{disk}")
    try:
        _wait_coherent(a, b)
        a.set("session", b"logged in")
        assert b.get("session") == b"logged in"  # in B's near cache, checked, stream up
        with _writes_paused(server):  # a write stall only A sees
            a.set("other", b"x")  # times out on Redis: A's breaker opens (acknowledged by disk)
        assert b.coherent
        assert a.delete("session") is True  # the logout: acknowledged (by the disk alone)
        deleted_at = time.monotonic()
        # A's probe timer brings Redis the tombstone within retry_after of the stall; then B's
        # stream drops its copy (one message): the documented bound for a write that went
        # around the arbiter, plus scheduling slack on a loaded machine
        bound = a.retry_after + 0.5
        while b.get("session") is not None:
            assert time.monotonic() - deleted_at < bound, "B still serves the deleted session"
            time.sleep(0.005)
        assert b.coherent  # the stream never went down: it was the stream that told B
    finally:
        a.close()
        b.close()


# -- resurrected delete ---------------------------------------------------------------------------
def test_a_logout_while_the_disk_is_locked_survives_the_worker_exiting_and_redis_losing_data(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory()  # no persistence: a cache-style Redis
    disk = tmp_path / "disk"
    spec = f"memory:// | {server.url_for(prefix='res:')} | diskcache://{disk}?timeout=0.05"
    worker = _chain(spec)
    worker.set("session", b"logged in")
    with disk_locked(disk):
        assert worker.delete("session") is True  # the logout: acknowledged (by Redis)
    worker.close()  # the worker is recycled (a deploy, max-requests): its memory is gone
    server.kill()
    server.restart()  # Redis comes back empty (the per-fault table: "without persistence")
    reader = _chain(spec)
    try:
        assert reader.get("session") is None, "the deleted session is back"
    finally:
        reader.close()


# -- lost updates ---------------------------------------------------------------------------------
def test_update_after_redis_lost_the_key_never_starts_from_nothing_while_the_disk_is_skipped(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    from session_store import Codec, SessionStore

    server = redis_server_factory()  # no persistence
    disk = tmp_path / "disk"
    spec = f"memory:// | {server.url_for(prefix='upd:')} | diskcache://{disk}?timeout=0.05"
    chain = _chain(spec)
    store: SessionStore[dict[str, Any]] = SessionStore(
        chain, dict, codec=Codec(encryption=None, compression=None)
    )

    def bump(current: dict[str, Any] | None) -> dict[str, Any]:
        return {"n": (current or {"n": 0})["n"] + 1}

    for _ in range(10):
        store.update("counter", bump)
    with disk_locked(disk):
        store.save("other", {"n": 0})  # acknowledged by Redis; the disk's breaker opens
    server.kill()
    server.restart()  # Redis comes back without the key (no persistence); the disk has n=10
    try:
        result = store.update("counter", bump)
        assert result is not None and result["n"] == 11, f"update started from {result}"
    finally:
        chain.close()
    survivor = _chain(spec)
    try:
        stored = SessionStore(survivor, dict, codec=Codec(encryption=None, compression=None)).load(
            "counter"
        )
        assert stored is not None and stored["n"] >= 11
    finally:
        survivor.close()


def _open_breaker_of(chain: TieredBackend, server: RedisServer) -> None:
    """Make ``chain`` (with a short socket timeout) alone see Redis stall: its write times out,
    so its breaker skips Redis for ``retry_after`` (5 s); other clients see nothing."""
    with _writes_paused(server):
        chain.set("breaker-opener", b"x")  # times out on Redis, acknowledged by the disk
    assert chain.tier_states()[1]["down"], "the breaker did not open"


@pytest.mark.parametrize("write", ["save", "delete"])
def test_a_write_that_skipped_the_arbiter_is_not_overwritten_by_an_older_compare_and_set(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path, write: str
) -> None:
    server = redis_server_factory()
    disk = tmp_path / "disk"
    short = server.url_for(prefix="cas:", socket_timeout="0.2", socket_connect_timeout="0.2")
    saver = _chain(f"memory:// | {short} | diskcache://{disk}")
    updater = _chain(f"memory:// | {server.url_for(prefix='cas:')} | diskcache://{disk}")
    try:
        _wait_coherent(saver, updater)
        updater.set("k", b"v0")
        _open_breaker_of(saver, server)  # worker S alone saw a short write stall
        read = updater.get_versioned("k")  # worker U's update reads v0 ...
        assert read is not None and read.value == b"v0"
        if write == "save":  # ... S's save (or logout) is acknowledged (by the disk) ...
            saver.set("k", b"saved by S")
        else:
            assert saver.delete("k") is True
        won = updater.set_if("k", b"f(v0) by U", read.token)  # ... U's compare-and-set
        final = _chain(f"{server.url_for(prefix='cas:')} | diskcache://{disk}")
        try:
            stored = final.get("k")
        finally:
            final.close()
        # linearizable outcomes: U's compare-and-set fails (it retries on S's value), or it
        # is ordered before S's write and S's write stands
        expected = b"saved by S" if write == "save" else None
        assert not won or stored == expected, f"S's acknowledged {write} was lost: {stored!r}"
    finally:
        saver.close()
        updater.close()


def test_a_logout_while_the_disk_is_locked_survives_redis_losing_data_in_a_live_worker(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory()  # no persistence: a cache-style Redis
    disk = tmp_path / "disk"
    worker = _chain(
        f"tiered://?retry_after=0.2 | memory:// | {server.url_for(prefix='res2:')}"
        f" | diskcache://{disk}?timeout=0.05"
    )
    try:
        worker.set("session", b"logged in")
        with disk_locked(disk):
            assert worker.delete("session") is True  # the logout: acknowledged (by Redis)
        server.kill()
        server.restart()  # Redis comes back empty
        time.sleep(0.3)  # past retry_after: the disk is probed and its missed keys reconciled
        for _ in range(3):  # a few requests of the same worker
            assert worker.get("session") is None, "the deleted session is back"
            time.sleep(0.1)
    finally:
        worker.close()


def test_set_if_absent_does_not_replace_a_session_only_the_disk_still_holds(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    server = redis_server_factory()  # no persistence
    spec = f"memory:// | {server.url_for(prefix='abs:')} | diskcache://{tmp_path / 'disk'}"
    writer = _chain(spec)
    writer.set("k", b"existing session")
    writer.close()
    server.kill()
    server.restart()  # Redis lost the key; the disk has it
    chain = _chain(spec)
    try:
        created = chain.set_if("k", b"new session", None)  # create only if absent
        assert not created, "'only if absent' replaced an existing session"
        assert chain.get("k") == b"existing session"
    finally:
        chain.close()


# -- stale read of this process's own write (found by tests/tiered_processes/test_tier_model.py)
def test_own_write_is_read_back_when_the_near_tier_failed_to_take_it(tmp_path: Path) -> None:
    """Without an invalidation stream (a diskcache arbiter; or Redis with its stream down) the
    stale copy is served for up to max_staleness; with the stream up, until this process's own
    invalidation message arrives. Either way "own writes: read back at once" is broken."""
    from session_store import MemoryBackend
    from session_store.testing.faults import SwitchableBackend
    from session_store_diskcache import DiskcacheBackend

    near = SwitchableBackend(MemoryBackend())
    chain = TieredBackend([near, DiskcacheBackend(tmp_path)])
    try:
        chain.set("k", b"old")
        near.down = True  # the near tier refuses the next write (a process-local tier failing)
        chain.set("k", b"new")  # acknowledged by the disk
        near.down = False
        assert chain.get("k") == b"new", "this process reads its own overwritten value"
    finally:
        chain.close()


@pytest.mark.parametrize("write", ["save", "delete"])
def test_a_write_that_timed_out_on_the_arbiter_is_not_overwritten_by_an_older_compare_and_set(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path, write: str
) -> None:
    """As above, with the arbiter tried and timing out (writes paused for S alone, whose socket
    timeout is short): S's write is acknowledged by the disk only. U's compare-and-set, based on
    a read made before it, wins on Redis, finds S's newer copy on the disk, steps back (Redis
    gets S's write) and fails, so its retry reads S's write."""
    server = redis_server_factory()
    disk = tmp_path / "disk"
    short = server.url_for(prefix="cas2:", socket_timeout="0.2", socket_connect_timeout="0.2")
    saver = _chain(f"memory:// | {short} | diskcache://{disk}")
    updater = _chain(f"memory:// | {server.url_for(prefix='cas2:')} | diskcache://{disk}")
    try:
        _wait_coherent(saver, updater)
        updater.set("k", b"v0")
        read = updater.get_versioned("k")  # U's update reads v0
        assert read is not None and read.value == b"v0"
        with _writes_paused(server):  # S's write times out on Redis; the disk acknowledges it
            if write == "save":
                saver.set("k", b"saved by S")
            else:
                assert saver.delete("k") is True
        won = updater.set_if("k", b"f(v0) by U", read.token)
        assert not won, "U's compare-and-set replaced S's acknowledged write"
        expected = b"saved by S" if write == "save" else None
        assert updater.get("k") == expected
        again = updater.get_versioned("k")  # U's retry starts from S's write
        assert (None if again is None else again.value) == expected
        final = _chain(f"{server.url_for(prefix='cas2:')} | diskcache://{disk}")
        try:
            assert final.get("k") == expected
        finally:
            final.close()
    finally:
        saver.close()
        updater.close()


def _tier_calls(chain: TieredBackend, index: int, op: str) -> int:
    """How many calls of kind ``op`` the chain timed on tier ``index``: an operation it answered
    (``write``, ``probe``, ...), ``unavailable`` (a caller's call that found it unavailable) or
    ``probe_unavailable`` (the probe timer's)."""
    return int(chain.tiers[index].counters.latency().get(op, {}).get("count", 0))


def test_a_paused_redis_costs_callers_one_timeout_and_the_timer_finds_it_back(
    redis_server_factory: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """Found by a new user: with Redis paused (SIGSTOP), every call that probed the down tier
    waited a whole socket timeout, once per retry_after (5 s of every 6 at the defaults). Now
    only the first call waits; the chain's timer probes it (callers skip it meanwhile), and
    finds it back after SIGCONT with no caller's help.

    Checked by counts, not by how long a call took (on a loaded machine a caller that never
    touched Redis was measured at 1.04 s): the callers' calls that reached the paused server
    (the tier's ``unavailable`` histogram) stay at one over several rounds of the timer's
    failed probes, and the probe that answers is the timer's."""
    import os
    import signal

    server = redis_server_factory()
    redis_url = server.url_for(prefix="hung:", socket_timeout="0.5", socket_connect_timeout="0.5")
    chain = _chain(f"tiered://?retry_after=0.2 | memory:// | {redis_url} | diskcache://{tmp_path}")
    assert server.pid is not None
    try:
        chain.set("k", b"v0")
        os.kill(server.pid, signal.SIGSTOP)
        try:
            chain.set("k", b"v1")  # the call that finds Redis silent: one timeout
            assert chain.tier_states()[1]["down"] is True
            assert _tier_calls(chain, 1, "unavailable") == 1
            calls, hang_guard = 0, time.monotonic() + 60
            # callers go on over three rounds of the timer's probes of the paused server
            while _tier_calls(chain, 1, "probe_unavailable") < 3 or calls < 50:
                chain.set("k", b"v2")
                assert chain.get("k") == b"v2"
                calls += 2
                assert time.monotonic() < hang_guard, "the timer does not probe the paused tier"
            reached = _tier_calls(chain, 1, "unavailable") - 1
            assert reached == 0, f"{reached} of {calls} later calls waited for the paused server"
        finally:
            os.kill(server.pid, signal.SIGCONT)
        hang_guard = time.monotonic() + 60
        while chain.tier_states()[1]["down"]:  # the timer's probe, no call of ours
            assert time.monotonic() < hang_guard, "the chain never found Redis back"
            time.sleep(0.01)
        assert _tier_calls(chain, 1, "probe") >= 1  # the probe that answered was the timer's
        assert _tier_calls(chain, 1, "unavailable") == 1  # and no caller waited meanwhile
        # and gave it the write it missed: the timer marks the tier up, then reconciles, so a
        # reader between the two still sees the write that timed out (v1, which the resumed
        # server ran); waited for by its outcome, not for a fixed time
        with open_backend(redis_url) as redis_alone:
            held = redis_alone.get("k")
            while held is None or stamps.session_bytes(held) != b"v2":
                assert time.monotonic() < hang_guard, f"Redis never got the write: {held!r}"
                time.sleep(0.01)
                held = redis_alone.get("k")
    finally:
        chain.close()
