"""Adversarial tests of the invalidation stream's reader (review of its batched hiredis reads).

A near cache trusts its copies while the stream is up: a lost or misparsed message means another
process serves a stale session until the next invalidation of that key, and a stream that dies
without telling the listener keeps copies trusted while nothing is reported. Each test drives the
stream with a real redis-server and a second client, and checks what the listener was told.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import signal
import threading
import time
from collections.abc import Callable
from functools import partial

import pytest

from session_store import InvalidKeyError, TieredBackend, open_backend
from session_store.aio import open_async_backend
from session_store.aio.tiered import AsyncTieredBackend
from session_store.keys import Namespace
from session_store_redis import RedisBackend, invalidation
from session_store_redis.testing import RedisServer
from session_store_redis.testing.checks import Forked
from session_store_redis.testing.streams import StreamRecorder as Recorder


def _stored(prefix: str, name: str) -> str:
    """The stored form of session key ``name`` under ``prefix`` (what the chain writes)."""
    return Namespace(prefix).encode(name)


def _streams_again(recorder: Recorder, server: RedisServer) -> None:
    """The stream (re)connects and reports a write made after it, within the tests' bounds."""
    assert recorder.connected.wait(8)
    with server.client() as admin:
        admin.set(_stored("p/", "again"), b"v")
    assert recorder.wait_for(lambda: "again" in recorder.keys)


def _has_all(recorder: Recorder, wanted: set[str]) -> bool:
    return set(recorder.keys) >= wanted


def _open(url: str) -> tuple[RedisBackend, invalidation.InvalidationStream, Recorder]:
    backend = RedisBackend.from_url(url)
    recorder = Recorder()
    stream = backend.invalidations("", recorder)
    return backend, stream, recorder


# -- framing: messages split across reads ----------------------------------------------------------
def test_one_message_larger_than_the_read_buffer_is_reported_whole(
    opened: tuple[RedisBackend, Recorder], stream_server: RedisServer, redis_namespace: str
) -> None:
    """One MSET of 400 keys of ~1 KiB: BCAST sends them as one message of ~400 KiB, several
    times the reader's 64 KiB buffer (and many TLS records): every key arrives, none garbled."""
    _backend, recorder = opened
    names = [f"{i:04d}" + "x" * 1000 for i in range(400)]
    with stream_server.client() as admin:
        admin.mset({_stored(redis_namespace, name): b"v" for name in names})
    assert recorder.wait_for(lambda: set(recorder.keys) >= set(names)), len(recorder.keys)
    assert set(recorder.keys) == set(names)


def test_messages_cut_at_every_offset_of_a_key_are_reported(
    opened: tuple[RedisBackend, Recorder], stream_server: RedisServer, redis_namespace: str
) -> None:
    """One message of ~70 KiB per round (an MSET of 640 keys of ~100 bytes), the first key one
    byte longer each round: whatever fixed sizes the server writes and the reader reads in
    (16 KiB reply blocks, 64 KiB writes, the reader's 64 KiB buffer), over 120 rounds the cut
    falls at every offset of a key's element (inside ``$len``, between CR and LF, inside the
    key): every key arrives whole, every round."""
    _backend, recorder = opened
    with stream_server.client() as admin:
        for shift in range(120):
            names = ["a" + "s" * shift] + [f"r{shift:03d}k{i:03d}" + "x" * 90 for i in range(639)]
            admin.mset({_stored(redis_namespace, name): b"v" for name in names})
            assert recorder.wait_for(partial(_has_all, recorder, set(names))), shift
    assert recorder.connects == 1


def test_a_burst_of_many_writes_in_pipelines_is_reported(
    opened: tuple[RedisBackend, Recorder], stream_server: RedisServer, redis_namespace: str
) -> None:
    """20,000 single-key writes sent in pipelines (many messages per recv, cut anywhere,
    past the 10,000 replies one read returns): every key arrives."""
    _backend, recorder = opened
    names = [f"b{i}" for i in range(20_000)]
    with stream_server.client() as admin:
        for start in range(0, len(names), 2000):
            pipe = admin.pipeline(transaction=False)
            for name in names[start : start + 2000]:
                pipe.set(_stored(redis_namespace, name), b"v")
            pipe.execute()
    assert recorder.wait_for(lambda: set(recorder.keys) >= set(names)), len(set(recorder.keys))
    assert recorder.connects == 1


def test_keys_with_unusual_bytes_are_reported_as_written(
    opened: tuple[RedisBackend, Recorder], stream_server: RedisServer, redis_namespace: str
) -> None:
    """Keys holding CRLF, RESP markers, NUL, non-ASCII text and the longest key allowed are
    named in the messages exactly as the chain knows them."""
    backend, recorder = opened
    names = ["a\r\nb", "*3\r\n$7\r\nmessage", "nul\x00x", "é/ü/日本", "$-1\r\n", "k" * 1024]
    with RedisBackend.from_url(stream_server.url_for(prefix=redis_namespace)) as writer:
        for name in names:
            writer.set(name, b"v")
    assert recorder.wait_for(lambda: set(recorder.keys) >= set(names)), recorder.keys
    del backend


def test_a_flush_among_key_messages_is_reported(
    own_server: RedisServer, redis_namespace: str
) -> None:
    """FLUSHDB and FLUSHALL (a message with a null list) sent in the same pipeline as writes
    (so they arrive in one read with key messages): each flush reaches the listener. On a
    server of the test's own: FLUSHALL must not wipe the suite's shared one."""
    backend, stream, recorder = _open(own_server.url_for(prefix=redis_namespace))
    try:
        assert recorder.connected.wait(10)
        with own_server.client() as admin:
            pipe = admin.pipeline(transaction=False)
            pipe.set(_stored(redis_namespace, "before"), b"v")
            pipe.flushdb()
            pipe.set(_stored(redis_namespace, "between"), b"v")
            pipe.flushall()
            pipe.set(_stored(redis_namespace, "after"), b"v")
            pipe.execute()
        assert recorder.wait_for(lambda: recorder.flushes >= 1)
        # (a key message read in the same batch as a flush is covered by the flush, not repeated)
        with RedisBackend.from_url(own_server.url_for(prefix=redis_namespace)) as writer:
            writer.set("later", b"v")
        assert recorder.wait_for(lambda: "later" in recorder.keys)
        assert recorder.connects == 1
    finally:
        stream.close()
        backend.close()


# -- the server going away -------------------------------------------------------------------------
def test_a_killed_server_is_reported_down_and_the_stream_comes_back(
    own_server: RedisServer,
) -> None:
    """kill -9 of the server while a writer writes: the listener is told the stream is down,
    and after the restart it is connected again and reports new writes."""
    backend, stream, recorder = _open(own_server.url_for(prefix="p/"))
    try:
        assert recorder.connected.wait(8)
        with own_server.client() as admin:
            pipe = admin.pipeline(transaction=False)
            for i in range(5000):
                pipe.set(_stored("p/", f"k{i}"), b"v")
            pipe.execute()
        own_server.kill()
        assert recorder.wait_for(lambda: recorder.disconnects >= 1, 3)
        own_server.start()
        _streams_again(recorder, own_server)
    finally:
        stream.close()
        backend.close()


def test_a_paused_server_is_reported_down_within_a_second(own_server: RedisServer) -> None:
    """SIGSTOP of the server: no pong comes back, and the stream is declared down within the
    stated bound (pong 0.5 s late, pings every 0.25 s), not after the socket timeout or never."""
    backend, stream, recorder = _open(own_server.url_for(prefix="p/"))
    pid = own_server.pid
    assert pid is not None
    try:
        assert recorder.connected.wait(8)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert recorder.wait_for(lambda: recorder.disconnects >= 1, 3)
            assert time.monotonic() - started < 1.5
        finally:
            os.kill(pid, signal.SIGCONT)
        assert recorder.connected.wait(8)
    finally:
        stream.close()
        backend.close()


def test_a_server_paused_mid_burst_is_reported_down(own_server: RedisServer) -> None:
    """SIGSTOP while a writer floods 1 KiB keys (the stream's reader likely holding part of a
    message): the stream is still declared down within the bound, then comes back after
    SIGCONT and reports the writes made after it reconnected."""
    backend, stream, recorder = _open(own_server.url_for(prefix="p/"))
    pid = own_server.pid
    assert pid is not None
    flooding = threading.Event()
    stop = threading.Event()

    def flood() -> None:
        with own_server.client(socket_timeout=10) as admin:
            i = 0
            while not stop.is_set():
                pipe = admin.pipeline(transaction=False)
                for _ in range(50):
                    pipe.set(_stored("p/", f"{i:06d}" + "x" * 1000), b"v")
                    i += 1
                pipe.execute()
                flooding.set()

    writer = threading.Thread(target=flood)
    try:
        assert recorder.connected.wait(8)
        writer.start()
        assert flooding.wait(5)
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            assert recorder.wait_for(lambda: recorder.disconnects >= 1, 3)
            assert time.monotonic() - started < 1.5
        finally:
            stop.set()
            os.kill(pid, signal.SIGCONT)
        writer.join(10)
        _streams_again(recorder, own_server)
    finally:
        stop.set()
        stream.close()
        backend.close()


def test_a_killed_stream_connection_is_reported_down(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """CLIENT KILL of the stream's own connection (as an operator or a pubsub output-buffer
    limit would do): reported down, then connected again."""
    backend, stream, recorder = _open(redis_server.url_for(prefix=redis_namespace))
    try:
        assert recorder.connected.wait(8)
        with redis_server.client() as admin:
            killed = admin.client_kill_filter(_type="pubsub", skipme=True)
        assert killed >= 1
        assert recorder.wait_for(lambda: recorder.disconnects >= 1 and recorder.connects >= 2)
    finally:
        stream.close()
        backend.close()


# -- the process around the stream -----------------------------------------------------------------
def test_the_stream_survives_a_process_with_many_open_files(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """A server process holding more than 1,024 descriptors (sockets of its clients, files)
    gives the stream's socket a descriptor above FD_SETSIZE. The stream must still connect and
    report writes, not die in its thread. (Failed before: ``select.select`` raised ValueError,
    which the thread did not catch.)"""
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        backend, stream, recorder = _open(redis_server.url_for(prefix=redis_namespace))
        try:
            assert recorder.connected.wait(5), "the stream never connected"
            with redis_server.client() as admin:
                admin.set(_stored(redis_namespace, "k"), b"v")
            assert recorder.wait_for(lambda: "k" in recorder.keys, 5)
        finally:
            stream.close()
            backend.close()
    finally:
        for fd in spare:
            os.close(fd)


# -- what the stream names -------------------------------------------------------------------------
def test_a_key_holding_the_default_separator_is_kept_coherent_under_another_separator(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """A store with its own separator (``separator=:``, the data-room layout) refuses a session
    key holding U+001F (round 4: its stored form is a default-layout store's key), through a
    chain too, before any write; the chains stay coherent on the keys it holds. (Before round
    4 such a key was stored, and this test checked that its invalidation was not dropped.)"""
    url = redis_server.url_for(prefix=redis_namespace.rstrip("/"), separator=":")
    chain = f"tiered://?max_staleness=60 | memory:// | {url}"
    key = "user\x1f42"
    with open_backend(chain) as reader, open_backend(chain) as writer:
        assert isinstance(reader, TieredBackend)
        with pytest.raises(InvalidKeyError, match="U\\+001F"):
            writer.set(key, b"old")
        writer.set("plain", b"old")
        assert reader.get("plain") == b"old"  # a near copy
        deadline = time.monotonic() + 5
        while not reader.coherent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.coherent
        writer.set("plain", b"new")
        deadline = time.monotonic() + 5
        while reader.get("plain") != b"new" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reader.get("plain") == b"new"
        with pytest.raises(InvalidKeyError, match="U\\+001F"):
            reader.get(key)


def test_a_forked_child_leaves_the_parents_stream_alone(
    redis_server: RedisServer,
    redis_namespace: str,
    run_forked: Callable[..., dict[str, object]],
) -> None:
    """A forked child (pre-forking server) inherits the stream's socket but not its thread. It
    closes the inherited stream, lets the connection be collected and opens a stream of its
    own: the parent's stream stays connected (no shutdown of the shared socket from the
    child, no bytes read off it) and reports every write, before, during and after."""
    url = redis_server.url_for(prefix=redis_namespace)
    backend, stream, recorder = _open(url)
    try:
        assert recorder.connected.wait(8)

        def child() -> dict[str, object]:
            import gc

            stream.close()
            stream._connection = None  # (the thread's reference: gone, collected)
            gc.collect()
            own_backend, own_stream, own = _open(url)
            try:
                ok = own.connected.wait(5)
                with RedisBackend.from_url(url) as writer:
                    writer.set("from-child", b"v")
                got = own.wait_for(lambda: "from-child" in own.keys, 5)
                return {"connected": ok, "got": got}
            finally:
                own_stream.close()
                own_backend.close()

        def parent() -> None:
            with RedisBackend.from_url(url) as writer:
                for i in range(200):
                    writer.set(f"during{i}", b"v")

        assert run_forked(child, parent) == {"connected": True, "got": True}
        with RedisBackend.from_url(url) as writer:
            writer.set("after", b"v")
        expected = {"after", "from-child", *(f"during{i}" for i in range(200))}
        assert recorder.wait_for(lambda: set(recorder.keys) >= expected)
        assert (recorder.connects, recorder.disconnects) == (1, 0)
    finally:
        stream.close()
        backend.close()


def test_a_pubsub_output_buffer_limit_drop_is_reported_and_recovered(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A server that drops a subscriber whose output buffer passes 64 KiB, and one MSET of 400
    keys of 1 KiB (one message of ~400 KiB): the server drops the stream, which is reported
    down, comes back (flushing) and then reports writes again."""
    server = redis_server_factory(extra_config=("client-output-buffer-limit pubsub 64kb 0 0",))
    backend, stream, recorder = _open(server.url_for(prefix="p/"))
    try:
        assert recorder.connected.wait(8)
        with server.client() as admin:
            admin.mset({_stored("p/", f"{i:05d}" + "x" * 1000): b"v" for i in range(400)})
        assert recorder.wait_for(lambda: recorder.disconnects >= 1)
        assert recorder.keys == []  # the message was never sent whole: nothing half-parsed
        _streams_again(recorder, server)
    finally:
        stream.close()
        backend.close()


def test_an_unexpected_error_in_the_thread_reconnects_instead_of_ending_the_stream(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The listener fails once (here a RuntimeError from its own code; MemoryError would do the
    same): the stream must reconnect, flushing, as it does after any failure, and keep
    reporting, not end its thread and leave the near cache without a stream for the life of
    the process. (Failed before: the thread caught only RedisError and OSError.)"""

    class FailingOnce(Recorder):
        failed = False

        def on_invalidate(self, keys: list[str] | None) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("the listener failed once")
            super().on_invalidate(keys)

    backend = RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace))
    recorder = FailingOnce()
    stream = backend.invalidations("", recorder)
    try:
        assert recorder.connected.wait(8)
        with redis_server.client() as admin:
            admin.set(_stored(redis_namespace, "first"), b"v")
            assert recorder.wait_for(lambda: recorder.disconnects >= 1, 5)
            assert recorder.wait_for(lambda: recorder.connects >= 2, 5)
            admin.set(_stored(redis_namespace, "second"), b"v")
        assert recorder.wait_for(lambda: "second" in recorder.keys, 5)
    finally:
        stream.close()
        backend.close()


# -- the near cache's trust in the stream ----------------------------------------------------
#: Pauses of the reading process per run of the paused-reader tests.
PAUSES = 4


class _Rounds:
    """What a reading process read right after each of its pauses: up to 20 values per pause.

    The writing process says which pause the reader is in: it stores the pause's number in a
    page both processes share *before* it sends SIGCONT, so a read that sees number ``n``
    began after pause ``n`` ended. (Guessing pauses from gaps between reads and stopping after
    9 s of wall clock, as this did before, lost a round on a loaded machine.) The reader says
    back, in the same page, the last pause it has read after, so the writer never pauses it
    again before it has read at least once."""

    def __init__(self, shared: mmap.mmap) -> None:
        self.seen: list[list[str]] = [[] for _ in range(PAUSES)]
        self.shared = shared
        self.started = time.monotonic()

    def pause(self) -> int:
        """The number of the pause the reader last resumed from (0: none yet)."""
        return self.shared[0]

    def done(self) -> bool:
        full = self.pause() == PAUSES and len(self.seen[-1]) >= 20
        return full or time.monotonic() - self.started > 120  # a hang, not a bound

    def record(self, pause: int, value: bytes | None) -> None:
        """``value`` is what a read returned that began after pause ``pause`` ended; a read
        during which the reader was paused again (it straddles two pauses) is not counted."""
        if pause and pause == self.pause() and len(self.seen[pause - 1]) < 20:
            self.seen[pause - 1].append((value or b"").decode())
            self.shared[1] = pause


def _pause_while_writing(child: Callable[[int, _Rounds], dict[str, object]], url: str) -> None:
    """Fork a reader (``child``, given the pipe end to say it holds a coherent near copy on,
    and its :class:`_Rounds`), then :data:`PAUSES` times: SIGSTOP it, write ``k`` = ``v<n>``
    from this process, wait 1.1 s, tell it pause ``n`` is over and SIGCONT it. Every read the
    reader made after pause ``n`` began more than ``max_staleness`` (1 s) after write ``n``
    returned, so each must return ``v<n>``."""
    shared = mmap.mmap(-1, 2)  # anonymous and shared: the forked reader sees the same page
    ready_read, ready_write = os.pipe()
    forked = Forked(partial(child, ready_write, _Rounds(shared)))
    try:
        assert os.read(ready_read, 1) == b"r"
        with open_backend(url) as writer:
            for n in range(1, PAUSES + 1):
                deadline = time.monotonic() + 60
                while shared[1] != n - 1:  # the reader has read after the previous pause
                    assert time.monotonic() < deadline, "the reader stopped reading"
                    time.sleep(0.01)
                time.sleep(0.3)
                os.kill(forked.pid, signal.SIGSTOP)
                try:
                    writer.set("k", f"v{n}".encode())
                    time.sleep(1.1)
                finally:
                    shared[0] = n
                    os.kill(forked.pid, signal.SIGCONT)
    finally:
        report = forked.report()
        os.close(ready_read)
        os.close(ready_write)
        shared.close()
    seen = report["seen"]
    assert isinstance(seen, list) and len(seen) == PAUSES, report
    assert all(seen), f"a pause with no read after it: {seen}"
    stale = [(n, reads) for n, reads in enumerate(seen, 1) if any(r != f"v{n}" for r in reads)]
    assert stale == [], f"stale reads after a pause in rounds {[n for n, _ in stale]}"


def _chain_url(server: RedisServer, namespace: str) -> str:
    return f"memory:// | {server.url_for(prefix=namespace.rstrip('/'))}"


def test_a_process_resumed_after_a_pause_does_not_serve_copies_older_than_the_bound(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """A process with a coherent near-cache copy is paused (SIGSTOP) for 1.1 s while another
    process writes the key; right after SIGCONT its request thread reads the key again. Each
    of those reads began more than ``max_staleness`` (1 s) after the write had returned, so
    none may return the older value. Four rounds: whether the request thread (holding the GIL)
    reads before the stream's thread handles the queued message depends on where each thread
    was when the process stopped. (Failed before the near cache trusted its stream only while
    heard from: stale in rounds [1, 2], then [2], of 4; 15 of 16 rounds when found.)"""
    url = _chain_url(redis_server, redis_namespace)

    def child(ready: int, rounds: _Rounds) -> dict[str, object]:
        with open_backend(url) as chain:
            assert isinstance(chain, TieredBackend)
            chain.set("k", b"v0")
            deadline = time.monotonic() + 5
            while not chain.coherent and time.monotonic() < deadline:
                time.sleep(0.01)
            chain.get("k")  # a copy checked while the stream is up
            os.write(ready, b"r")
            while not rounds.done():
                pause = rounds.pause()
                rounds.record(pause, chain.get("k"))
            return {"seen": rounds.seen}

    _pause_while_writing(child, url)


def test_an_async_process_resumed_after_a_pause_does_not_serve_copies_older_than_the_bound(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The same on the async chain (its hit path is the sync chain's, run on the event loop,
    which after SIGCONT holds the GIL as a request thread does; its stream is the same thread).
    (Failed before the fix: stale in round [1] of 4.)"""
    url = _chain_url(redis_server, redis_namespace)

    def child(ready: int, rounds: _Rounds) -> dict[str, object]:
        async def read() -> list[list[str]]:
            chain = open_async_backend(url)
            assert isinstance(chain, AsyncTieredBackend)
            try:
                await chain.set("k", b"v0")
                deadline = time.monotonic() + 5
                while not chain.coherent and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                await chain.get("k")  # a copy checked while the stream is up
                os.write(ready, b"r")
                while not rounds.done():
                    pause = rounds.pause()
                    rounds.record(pause, await chain.get("k"))
                return rounds.seen
            finally:
                await chain.aclose()

        return {"seen": asyncio.run(read())}

    _pause_while_writing(child, url)


def _coherent_copy(chain: TieredBackend) -> None:
    """Wait for the stream, write ``k`` and wait for its own invalidation (which drops the
    write's check), then read it once: ``k`` is a copy checked while the stream is up."""
    deadline = time.monotonic() + 10
    while not chain.coherent:
        assert time.monotonic() < deadline, "the invalidation stream did not connect"
        time.sleep(0.01)
    chain.set("k", b"v")
    while chain.counters.get("invalidations") < 1:
        assert time.monotonic() < deadline, "the write's own invalidation never arrived"
        time.sleep(0.005)
    assert chain.get("k") == b"v"


def test_an_idle_healthy_stream_keeps_serving_hits(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """No message arrives for 6 s (three times ``max_staleness``, 2 s here) while a request
    reads one key every 20 ms: the stream's answered pings (every 0.25 s) keep its word good, so
    every read is a near-cache hit and none revalidates. (A near cache that trusted the stream
    only for a while after its connection or its last *message* would revalidate once per 95 %
    of ``max_staleness``: 3 here; it failed so with the pings' reports switched off. The 2 s
    bound leaves a starved machine 1.5 s between two answered pings before a lapse.)"""
    url = f"tiered://?max_staleness=2 | {_chain_url(redis_server, redis_namespace)}"
    with open_backend(url) as chain:
        assert isinstance(chain, TieredBackend)
        _coherent_copy(chain)
        revalidated = chain.counters.get("revalidations")
        reads = 0
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            assert chain.get("k") == b"v"
            reads += 1
            time.sleep(0.02)
        revalidations = chain.counters.get("revalidations") - revalidated
        assert chain.coherent
    assert reads > 50
    # one lapse is tolerated: a starved 2-core box may hold the stream's thread past the margin
    assert revalidations <= 1, f"{revalidations} revalidations in {reads} reads of an idle key"


def test_a_stream_that_stops_answering_pings_makes_hits_revalidate_within_the_bound(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """SIGSTOP of the server (a stream that stays connected but answers nothing, as a stalled
    or partitioned server does): no read that began 95 % of ``max_staleness`` after the pause
    is a hit on the stream's word (the last ping answered left before the pause), whether or
    not the stream has noticed yet, and a read then asks the server (a counted revalidation).
    The bound is checked on when the last hit *began*, which a starved test thread cannot
    push past it."""
    server = redis_server_factory()
    pid = server.pid
    assert pid is not None
    url = f"memory:// | {server.url_for(prefix='p', socket_timeout='0.5')}"
    with open_backend(url) as chain:
        assert isinstance(chain, TieredBackend)
        _coherent_copy(chain)
        time.sleep(1.2)  # the copy's own check is older than max_staleness: only the stream vouches
        assert chain.get("k") == b"v"
        revalidated = chain.counters.get("revalidations")
        os.kill(pid, signal.SIGSTOP)
        paused = time.monotonic()
        last_hit = paused
        revalidating = False
        try:
            while time.monotonic() - paused < 3:
                asked = time.monotonic()
                assert chain.get("k") == b"v"  # (no shared tier answers: the near copy serves)
                if chain.counters.get("revalidations") > revalidated:
                    revalidating = True
                    break
                last_hit = asked
                time.sleep(0.005)
        finally:
            os.kill(pid, signal.SIGCONT)
    assert revalidating, "hits went on for 3 s while the server answered nothing"
    assert last_hit - paused < chain.max_staleness * 0.95, last_hit - paused


def test_a_refused_subscribe_is_a_warning_once_not_a_silent_retry(
    redis_server: RedisServer, redis_namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis 7 ACL user created without channel permissions gets SUBSCRIBE refused: the
    near cache then never becomes coherent (it falls back to the version check). The operator
    must hear why, once, not find it in debug logs; a server that is merely down stays quiet."""
    user = f"nochannels{os.getpid()}"
    admin = redis_server.client()
    admin.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], reset_channels=True, commands=["+@all"]
    )
    recorder = Recorder()
    try:
        url = redis_server.url_for(prefix=redis_namespace).replace("://", f"://{user}:pw@", 1)
        with (
            caplog.at_level("WARNING", logger=invalidation.__name__),
            RedisBackend.from_url(url) as backend,
        ):
            stream = backend.invalidations("", recorder)
            try:
                assert recorder.wait_for(
                    lambda: any("NOPERM" in r.getMessage() for r in caplog.records)
                ), [r.getMessage() for r in caplog.records]
                time.sleep(0.5)  # a few more refused attempts (0.05 s doubling): still one warning
            finally:
                stream.close()
        warned = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warned) == 1 and "NOPERM" in warned[0].getMessage()
        assert recorder.connects == 0
    finally:
        admin.acl_deluser(user)
        admin.close()
