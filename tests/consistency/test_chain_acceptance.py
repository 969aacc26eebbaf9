"""Issue 12's acceptance numbers, through the public API on the default chain, real processes.

* **Resurrected deletes**: 10,000 deletes, each raced by loads of the same key (from another
  thread, and from another process, each with its own chain): afterwards no key reads back,
  neither through a fresh chain nor through the racing reader's own (once the near cache's
  bound has passed).
* **Lost updates**: 4 processes x 100 increments with ``SessionStore.update`` while Redis
  stalls (SIGSTOP) for the one process that gives up on it after 0.1 s, and while Redis is
  killed and restarted from an older append-only file: the counter holds every acknowledged
  increment (and at most the indeterminate ones besides), and the recorded history passes the
  checker.
* **Visibility**: a session saved in this process is seen by another process's next load
  within 50 ms with the invalidation stream up (median and max over 200 saves), within 1 s
  with it down (the reader's Redis user may not subscribe or track).

* **Newest write wins**: a save made right after another process's save returned is what
  both read next.

``SESSION_STORE_RACE_PAIRS`` and ``SESSION_STORE_VISIBILITY_TRIES`` make them longer or
shorter.
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store_redis.testing import RedisServer

from . import visibility
from .nemesis import NEAR_CACHE_BOUND, OUTAGE_BOUND, Nemesis, chain_url, run_clients

PAIRS = int(os.environ.get("SESSION_STORE_RACE_PAIRS", "10000"))
TRIES = int(os.environ.get("SESSION_STORE_VISIBILITY_TRIES", "200"))
#: The GIL switch interval while a thread races the deletes (see the thread test).
SWITCH_INTERVAL = 0.0005
TRIES_DOWN = int(os.environ.get("SESSION_STORE_VISIBILITY_TRIES_DOWN", "20"))
ServerFactory = Callable[..., RedisServer]
Session = dict[str, Any]


# -- resurrected deletes ----------------------------------------------------------------------
class Progress:
    """The index of the key being deleted now, shared through a memory-mapped file (so that a
    reader in another process loads exactly the key a delete is racing on)."""

    def __init__(self, path: Path) -> None:
        path.write_bytes(bytes(8))
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 8)

    def set(self, value: int) -> None:
        struct.pack_into("q", self._map, 0, value)

    def get(self) -> int:
        return int(struct.unpack_from("q", self._map, 0)[0])

    def close(self) -> None:
        self._map.close()
        self._file.close()


_READER = """
import mmap, struct, sys
from session_store import SessionStore
url, path, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SessionStore(url, dict)
with open(path, "r+b") as f:
    shared = mmap.mmap(f.fileno(), 8)
    print("ready", flush=True)
    loads = 0
    while True:
        index = struct.unpack_from("q", shared, 0)[0]
        if index >= total:
            break
        store.load(f"race:{index}")
        loads += 1
    sys.stdin.readline()  # the deletes are done: read every key back through this same chain
    import time
    time.sleep(float(sys.argv[4]))
    back = [i for i in range(total) if store.load(f"race:{i}") is not None]
print(loads, len(back), back[:10], flush=True)
store.close()
"""


def delete_all(writer: SessionStore[Session], progress: Progress, total: int) -> None:
    for index in range(total):
        progress.set(index)
        writer.delete(f"race:{index}")
    progress.set(total)


def read_back(url: str, total: int) -> list[int]:
    with SessionStore(url, dict) as fresh:
        return [i for i in range(total) if fresh.load(f"race:{i}") is not None]


def seed(url: str, total: int) -> None:
    with SessionStore(url, dict) as store:
        for start in range(0, total, 500):
            store.save_many({f"race:{i}": {"i": i} for i in range(start, min(total, start + 500))})


@pytest.mark.slow
def test_no_delete_is_resurrected_by_a_racing_load_in_another_thread(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    url = chain_url(redis_server.url_for(prefix=redis_namespace), tmp_path / "disk")
    seed(url, PAIRS)
    progress = Progress(tmp_path / "progress")
    done = threading.Event()
    loads = 0
    with SessionStore(url, dict) as writer, SessionStore(url, dict) as reader:

        def race() -> None:
            nonlocal loads
            while not done.is_set():
                index = progress.get()
                if index >= PAIRS:
                    break
                reader.load(f"race:{index}")
                loads += 1

        # The reader spins on its near cache while the writer waits on Redis and the disk; with
        # the default 5 ms switch interval the writer waited for the GIL after each of those
        # calls (300 loads per delete, mostly while the writer stood still, 108 s at load 19).
        # A 0.5 ms interval hands the GIL over more often, so the loads land at more points
        # *inside* each delete, and the run takes half the time.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        thread = threading.Thread(target=race)
        thread.start()
        try:
            delete_all(writer, progress, PAIRS)
        finally:
            done.set()
            thread.join()
            sys.setswitchinterval(interval)
        time.sleep(NEAR_CACHE_BOUND)  # the near cache's stated bound, then it must agree
        own = [i for i in range(PAIRS) if reader.load(f"race:{i}") is not None]
    shared = read_back(url, PAIRS)
    progress.close()
    print(
        f"\nMEASURED threads: {PAIRS} deletes raced by {loads} loads; read back through the "
        f"reader's chain: {len(own)}, through a fresh chain: {len(shared)}"
    )
    assert (own, shared) == ([], [])


@pytest.mark.slow
def test_no_delete_is_resurrected_by_a_racing_load_in_another_process(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    url = chain_url(redis_server.url_for(prefix=redis_namespace), tmp_path / "disk")
    seed(url, PAIRS)
    progress = Progress(tmp_path / "progress")
    progress.set(-1)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _READER,
            url,
            str(tmp_path / "progress"),
            str(PAIRS),
            str(NEAR_CACHE_BOUND),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "ready"
        with SessionStore(url, dict) as writer:
            delete_all(writer, progress, PAIRS)
        out, err = reader.communicate("done\n", timeout=300)
        assert reader.returncode == 0, err
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
        progress.close()
    loads, own, first = out.split(" ", 2)
    shared = read_back(url, PAIRS)
    print(
        f"\nMEASURED processes: {PAIRS} deletes raced by {loads} loads in another process; "
        f"read back through its chain: {own} (first {first.strip()}), through a fresh chain: "
        f"{len(shared)}"
    )
    assert (int(own), shared) == (0, [])


# -- lost updates -----------------------------------------------------------------------------
def wait_for(progress: Callable[[], int], count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while progress() < count:
        assert time.monotonic() < deadline, f"the clients stalled before {count} increments"
        time.sleep(0.01)


def increments(
    server: RedisServer, tmp_path: Path, faults: Callable[[Callable[[], int]], None]
) -> tuple[int, int, int, Any]:
    """4 processes x 100 increments of one counter, the first with a 0.1 s Redis timeout, the
    others with the defaults, while ``faults`` runs (given the count of finished increments);
    returns (acknowledged, indeterminate, final count, checker report)."""
    disk = tmp_path / "disk"
    short = server.url_for(prefix="inc:", socket_timeout="0.1", socket_connect_timeout="0.1")
    default = server.url_for(prefix="inc:")
    urls = [chain_url(url, disk) for url in (short, default, default, default)]
    run = run_clients(
        urls,
        tmp_path / "events",
        keys=["counter"],
        ops=100,
        mix={"update": 1},
        sweep_url=chain_url(default, disk),
        update_timeout=10.0,
        during=faults,
    )
    acked = sum(1 for op in run.operations if op.kind == "update" and op.outcome == "ok")
    maybe = sum(1 for op in run.operations if op.kind == "update" and op.outcome == "unknown")
    with SessionStore(urls[1], dict) as store:
        final = store.load("counter")
    count = 0 if final is None else int(final["n"])
    report = run.check(read_staleness=0.0)
    print(
        f"\nMEASURED stored {count} of {acked} acknowledged increments ({maybe} indeterminate, "
        f"{run.outcomes()}) in {run.seconds:.1f} s\n{report.summary()}"
    )
    return acked, maybe, count, report


@pytest.mark.slow
def test_no_update_is_lost_while_one_process_alone_sees_redis_stalled(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = redis_server_factory(appendonly=True, extra_config=("appendfsync always",))
    nemesis = Nemesis(server, tmp_path / "disk")

    def stalls(progress: Callable[[], int]) -> None:
        for share in (0.15, 0.4, 0.65):  # three 0.5 s stalls, while the increments run
            wait_for(progress, int(400 * share))
            nemesis.strike("pause", 0.5)

    acked, maybe, count, report = increments(server, tmp_path, stalls)
    assert acked <= count <= acked + maybe, f"stored {count} of {acked} ({nemesis.summary()})"
    assert report.valid, report.summary()


@pytest.mark.slow
def test_no_update_is_lost_when_redis_restarts_from_an_older_aof(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = redis_server_factory(appendonly=True, extra_config=("appendfsync always",))
    nemesis = Nemesis(server, tmp_path / "disk")

    def rollback(progress: Callable[[], int]) -> None:
        wait_for(progress, 100)
        nemesis.snapshot_aof()
        wait_for(progress, 250)  # 150 acknowledged increments that the copy does not hold
        nemesis.strike("aof-rollback", 0.2)

    acked, maybe, count, report = increments(server, tmp_path, rollback)
    assert acked <= count <= acked + maybe, f"stored {count} of {acked} ({nemesis.summary()})"
    assert report.valid, report.summary()


# -- a save after another process's save ------------------------------------------------------
_SAVER = """
import sys
from session_store import SessionStore
store = SessionStore(sys.argv[1], dict)
print("ready", flush=True)
for line in sys.stdin:  # the other process's save has returned when this line arrives
    store.save("k", {"by": "B", "i": int(line)})
    print("saved", flush=True)
"""


def test_a_save_made_after_another_process_save_returned_wins(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    """Process A saves, then process B saves the same key after A's save returned: B's save is
    the one stored (never dropped as "older" by its version), and A's near cache shows it
    within max_staleness (it may lag by one invalidation message: that is the documented
    staleness, not a lost save; the 50 ms figure is the visibility test's below)."""
    prefix = redis_namespace
    url = chain_url(redis_server.url_for(prefix=prefix), tmp_path / "disk")
    arbiter = SessionStore(redis_server.url_for(prefix=prefix), dict)  # the arbiter, read alone
    other = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SAVER), url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lost, late = [], []
    try:
        assert other.stdout is not None and other.stdin is not None
        assert other.stdout.readline().strip() == "ready"
        with SessionStore(url, dict) as store:
            for i in range(200):
                store.save("k", {"by": "A", "i": i})
                other.stdin.write(f"{i}\n")
                other.stdin.flush()
                assert other.stdout.readline().strip() == "saved"
                theirs = {"by": "B", "i": i}
                if arbiter.load("k") != theirs:
                    lost.append(i)  # B's acknowledged save is not what the chain stores
                    continue
                deadline = time.monotonic() + OUTAGE_BOUND
                while store.load("k") != theirs:
                    if time.monotonic() > deadline:
                        late.append(i)
                        break
                    time.sleep(0.0005)
    finally:
        other.kill()
        other.wait()
        arbiter.close()
    print(
        f"\nMEASURED saves lost to an earlier save of another process: {len(lost)} of 200; "
        f"seen later than {OUTAGE_BOUND * 1000:.0f} ms: {len(late)}"
    )
    assert lost == []
    assert late == []


# -- visibility across processes --------------------------------------------------------------
def staleness_ms(writer_url: str, reader_url: str, tries: int, patience: float) -> visibility.Lags:
    """:func:`.visibility.staleness_ms` of saves through a sync store on ``writer_url``."""
    with SessionStore(writer_url, dict) as store:
        return visibility.staleness_ms(
            lambda token: store.save("seen", {"t": token}),
            visibility.SYNC_WATCHER,
            reader_url,
            tries,
            patience,
        )


@pytest.mark.slow
def test_a_save_is_seen_by_another_process_within_50_ms(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    url = chain_url(redis_server.url_for(prefix=redis_namespace), tmp_path / "disk")
    # The stream's lag is one message on loopback (about 5 ms on a quiet 2-core machine), but
    # a starved listener thread can deliver late: 458 ms once at a load average of 23, and a
    # p95 of 67 ms under the parallel suite. The tail is printed (and measured quietly by
    # benchmarks/bench_near_cache.py); the bound that holds whatever the scheduler does is the
    # version check's, max_staleness. And per save, whatever the message took: no load that
    # began after the watcher handled the save's invalidation returned the older value.
    lags = staleness_ms(url, url, TRIES, visibility.HUNG)
    visibility.check_with_stream("visibility", lags, TRIES)


@pytest.mark.slow
def test_a_save_is_seen_by_another_process_within_1_s_without_invalidations(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    writer, reader = visibility.without_stream(redis_server_factory(), tmp_path / "disk")
    lags = staleness_ms(writer, reader, TRIES_DOWN, patience=visibility.HUNG)
    visibility.check_without_stream("visibility", lags, TRIES_DOWN)
