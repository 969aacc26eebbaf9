"""The rule by which a near cache trusts its invalidation stream, on a hand-driven clock.

A copy checked while the stream is up is served on the stream's word only until 95 % of
``max_staleness`` after the stream was last *heard from* (``on_heard(age)``: it handled every
invalidation sent before the moment ``age`` seconds ago); after that only by its own age, as
without a stream. The calls a stream makes are made here by hand, on both chains (they share
:class:`~session_store.tiered.near.NearState`); the real stream, paused processes and a paused
server are in ``backends/redis/tests/standalone/test_stream_attack.py``.
"""

from __future__ import annotations

import os

import pytest

from session_store import MemoryBackend, TieredBackend
from session_store.aio import AsyncMemoryBackend
from session_store.aio.tiered import AsyncTieredBackend
from session_store.backend import Scope
from session_store.tiered import policy
from tests.tiered.support import Clock, SharedMemory


class AsyncSharedMemory(AsyncMemoryBackend):
    """The same for the async chain."""

    scope = Scope.NETWORK


def chain_over(shared: SharedMemory, clock: Clock) -> TieredBackend:
    return TieredBackend([MemoryBackend(clock=clock), shared], clock=clock, max_staleness=1.0)


@pytest.fixture
def pair() -> tuple[TieredBackend, TieredBackend, Clock]:
    """A reader whose "stream" the test drives, and a writer in another "process"."""
    clock = Clock()
    shared = SharedMemory(clock=clock)
    return chain_over(shared, clock), chain_over(shared, clock), clock


def test_a_stream_not_heard_from_stops_vouching_after_the_bound(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    """Connected, never heard from again (a paused process, whose stream thread has not run):
    the copy is served on the stream's word for 95 % of max_staleness after the connection,
    then the next read asks the shared tier. (Before the fix it was served as long as the
    stream was "connected": ``b'old'`` here.)"""
    reader, writer, clock = pair
    writer.set("k", b"old")
    reader.on_connected()
    assert reader.get("k") == b"old"  # checked while the stream is up
    writer.set("k", b"new")  # its invalidation waits in a socket nobody reads
    clock.now += 0.949
    assert reader.get("k") == b"old"  # within the bound
    clock.now += 0.002
    assert reader.get("k") == b"new"
    assert reader.counters.get("revalidations") == 1
    assert reader.coherent  # the stream is still up: only its word lapsed


def test_each_answered_ping_extends_the_trust(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    """A healthy idle stream is heard from every 0.25 s: its copies are served indefinitely,
    without a revalidation, and the trust runs from when the answered ping *left* (``age``)."""
    reader, writer, clock = pair
    writer.set("k", b"v")
    reader.on_connected()
    assert reader.get("k") == b"v"
    for _ in range(40):  # 10 s
        clock.now += 0.25
        reader.on_heard(0.001)
        assert reader.get("k") == b"v"
    assert reader.counters.get("revalidations") == 0
    reader.on_heard(0.9)  # an answer read late: trust runs from the ping, not the pong
    assert reader.near.trusted_until == pytest.approx(clock.now - 0.001 + 0.95)
    clock.now += 0.5
    reader.on_heard(0.6)  # that ping left before the last one heard: no change
    assert reader.near.trusted_until == pytest.approx(clock.now - 0.501 + 0.95)


def test_a_ping_answered_while_down_or_before_the_connection_vouches_for_nothing(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    reader, writer, clock = pair
    writer.set("k", b"old")
    reader.on_heard(0.0)  # no stream connected: nothing to vouch with
    assert reader.near.trusted_until == float("-inf")
    reader.on_connected()
    assert reader.get("k") == b"old"
    clock.now += 0.5
    reader.on_heard(0.6)  # that ping left before the connection (its flush): ignored
    assert reader.near.trusted_until == pytest.approx(clock.now - 0.5 + 0.95)
    reader.on_disconnected()
    reader.on_heard(0.0)
    assert reader.near.trusted_until == float("-inf")
    writer.set("k", b"new")
    clock.now += 0.4  # down: the copy's own check (0.9 s old) is all that vouches for it
    assert reader.get("k") == b"old"
    clock.now += 0.1
    assert reader.get("k") == b"new"


def test_get_many_follows_the_same_rule(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    reader, writer, clock = pair
    writer.set("k", b"old")
    reader.on_connected()
    assert reader.get("k") == b"old"  # (get fills the near cache; get_many does not)
    writer.set("k", b"new")
    clock.now += 0.9
    assert reader.get_many(["k"]) == {"k": b"old"}
    clock.now += 0.1
    assert reader.get_many(["k"]) == {"k": b"new"}


def test_is_fresh() -> None:
    assert policy.is_fresh(10.0, 10.5, trusted_until=11.0, max_staleness=0.1)  # the stream
    assert policy.is_fresh(10.0, 10.05, trusted_until=float("-inf"), max_staleness=0.1)  # age
    assert not policy.is_fresh(10.0, 11.0, trusted_until=11.0, max_staleness=0.1)
    assert not policy.is_fresh(None, 10.0, trusted_until=11.0, max_staleness=0.1)  # dropped


def test_a_forked_child_does_not_inherit_the_trust(
    pair: tuple[TieredBackend, TieredBackend, Clock],
) -> None:
    """The stream's thread does not fork: the child's near cache must not go on serving on
    the word of a stream it does not have."""
    reader, _writer, _clock = pair
    reader.on_connected()
    assert reader.near.trusted_until > float("-inf")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write_end, b"1" if reader.near.trusted_until == float("-inf") else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 1) == b"1"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


@pytest.mark.anyio
async def test_the_async_chain_follows_the_same_rule() -> None:
    """The async chain shares the hit path and the state: its stream-checked copy lapses too."""
    clock = Clock()
    shared = AsyncSharedMemory(backend=MemoryBackend(clock=clock))
    reader = AsyncTieredBackend([AsyncMemoryBackend(), shared], clock=clock, max_staleness=1.0)
    try:
        await shared.set("k", b"old")
        reader.on_connected()
        assert await reader.get("k") == b"old"
        await shared.set("k", b"new")
        clock.now += 0.9
        assert await reader.get("k") == b"old"
        reader.on_heard(0.0)
        clock.now += 0.9
        assert await reader.get("k") == b"old"  # heard 0.9 s ago: still vouched for
        clock.now += 0.1
        assert await reader.get("k") == b"new"
    finally:
        await reader.aclose()
