"""The tiered chain's failures that take more than one process: stale reads in another worker, lost
updates when two workers disagree about an outage, ``load`` on a read-only disk tier, and the
CLI's ``copy`` out of a chain's tier. Real processes, a real redis-server (SIGSTOP of the test's
own), a read-only bind mount in a private mount namespace. Each ran and failed on the chain before
the redesign (see the commit that added them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store import Codec, SessionStore, open_backend
from session_store_redis.testing import RedisServer

WORKER = Path(__file__).with_name("tier_worker.py")


class Worker:
    """A worker process speaking the line protocol of ``tier_worker.py``."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.read() == "ready"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self) -> Any:
        assert self.proc.stdout is not None
        return json.loads(self.proc.stdout.readline())

    def ask(self, line: str) -> Any:
        self.send(line)
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send("quit")
            self.proc.wait(30)


@pytest.fixture
def workers() -> Iterator[Callable[[str], Worker]]:
    started: list[Worker] = []

    def start(url: str) -> Worker:
        worker = Worker(url)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        try:
            worker.close()
        finally:
            if worker.proc.poll() is None:
                worker.proc.kill()


def plain(url: str) -> SessionStore[dict[str, Any]]:
    return SessionStore(url, dict, codec=Codec(encryption=None, compression=None))


# -- 2. stale reads across processes are the default -------------------------------------------
@pytest.mark.slow
def test_2_another_workers_save_and_delete_are_seen_within_a_second(
    redis_url: str, tmp_path: Path, workers: Callable[[str], Worker]
) -> None:
    url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    store = plain(url)
    store.save("s", {"v": 1})
    assert store.load("s") == {"v": 1}  # now in this worker's near cache
    other = workers(url)
    assert other.ask('save s {"v": 2}') == "saved"
    deadline = time.monotonic() + 1.5
    while store.load("s") != {"v": 2} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.load("s") == {"v": 2}
    assert other.ask("delete s") is True
    deadline = time.monotonic() + 1.5
    while store.load("s") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.load("s") is None
    store.close()


# -- 1. a logout does not log out, two processes -------------------------------------------------
RACING_KEYS = 10_000 if os.environ.get("SESSION_STORE_SOAK") else 1_000


@pytest.mark.slow
def test_1_deletes_in_one_process_racing_reads_in_another_stay_deleted(
    redis_url: str, tmp_path: Path, workers: Callable[[str], Worker]
) -> None:
    """Another process deletes k0, k1, ... while this one reads the same keys in the same order
    (two threads), every key only on the disk tier so that each read promotes it into Redis."""
    disk = tmp_path / "disk"
    url = f"memory:// | {redis_url} | diskcache://{disk}"
    seeding = open_backend(f"memory:// | diskcache://{disk}")
    for i in range(RACING_KEYS):
        seeding.set(f"k{i}", b"session", 3600)
    seeding.close()
    deleter = workers(url)
    reader = open_backend(url)
    errors: list[BaseException] = []

    def read_all() -> None:
        try:
            for i in range(RACING_KEYS):
                reader.get(f"k{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read_all) for _ in range(2)]
    deleter.send(f"delete_all {RACING_KEYS}")
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert deleter.read() == RACING_KEYS  # every delete found its session
    assert errors == []
    fresh = open_backend(url)
    back = [i for i in range(RACING_KEYS) if fresh.get(f"k{i}") is not None]
    assert back == [], f"{len(back)} of {RACING_KEYS} deleted keys read back"
    reader.close()
    fresh.close()


# -- 3. lost updates when processes disagree about an outage -----------------------------------
@pytest.mark.slow
def test_3_no_lost_update_when_one_worker_alone_saw_redis_stall(  # 4 x 100 increments
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    workers: Callable[[str], Worker],
) -> None:
    server = redis_server_factory()
    redis = server.url_for(prefix="split:", socket_timeout="0.3", socket_connect_timeout="0.3")
    url = f"tiered://?retry_after=30 | memory:// | {redis} | diskcache://{tmp_path / 'disk'}"
    stalled, *healthy = [workers(url) for _ in range(4)]
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        stalled.ask("probe")  # only this worker sees Redis stall: its breaker stays open 30 s
    finally:
        os.kill(server.pid, signal.SIGCONT)
    for worker in (stalled, *healthy):
        worker.send("incr 100")
    answers = [worker.read() for worker in (stalled, *healthy)]
    acked, unknown = sum(a for a, _ in answers), sum(u for _, u in answers)
    assert acked == 400  # the arbiter answers every worker: none had to give up
    store = plain(url)
    stored = (store.load("counter") or {"n": 0})["n"]
    store.close()
    assert acked <= stored <= acked + unknown, (stored, acked, unknown)  # none lost


# -- 6. load on a read-only disk tier ----------------------------------------------------------
_READ_ONLY = """
    import json, subprocess, sys, time
    from session_store import Codec, SessionStore, open_backend
    from session_store.schema import EnhancedSessionData

    directory = sys.argv[1]
    url = f"memory:// | diskcache://{directory}/cache"

    def store():
        return SessionStore(url, codec=Codec(encryption=None, compression=None),
                            access_interval=0.0)

    writer, reader = store(), store()
    # big enough to live in a file of its own: a rewrite must create one, which fails
    writer.save("s", EnhancedSessionData(user_id="u", document_summary="x" * 200_000))
    time.sleep(0.01)
    subprocess.run(["mount", "--bind", directory, directory], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", directory, directory], check=True)
    results = {}
    for name, which in (("cold", reader), ("warm", writer)):
        try:
            results[name] = ["ok", which.load("s").user_id]
        except Exception as exc:
            results[name] = [type(exc).__name__, str(exc)]
    print(json.dumps(results))
"""


@pytest.mark.slow
def test_6_load_works_on_a_read_only_disk_tier(tmp_path: Path) -> None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.fail("this test needs unshare and mount (util-linux)")
    result = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", textwrap.dedent(_READ_ONLY), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == {"cold": ["ok", "u"], "warm": ["ok", "u"]}


# -- 10. copy from a chain's tier carries the framing into the data ----------------------------
def _s0_s1_and_a_deleted_s2(url: str) -> None:
    """Through a store on ``url`` (a chain): sessions ``s0`` and ``s1`` saved, ``s2`` saved and
    deleted (its tiers keep a tombstone)."""
    chain = plain(url)
    for i in range(3):
        chain.save(f"s{i}", {"i": i})
    chain.delete("s2")
    chain.close()


def _cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The installed ``session-store`` command, run without this environment's
    ``SESSION_STORE*`` settings and with a cache directory of the test's own."""
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_STORE")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [script, *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )

    return cli


def test_10_cli_copy_out_of_a_chains_tier_copies_sessions_not_framing(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    _s0_s1_and_a_deleted_s2(f"tiered://?stamps=true | memory:// | diskcache://{source}")
    result = _cli(tmp_path)("copy", f"diskcache://{source}", f"diskcache://{target}")
    assert result.returncode == 0, result.stderr
    copied = plain(f"diskcache://{target}")
    assert sorted(copied.keys()) == ["s0", "s1"]
    assert copied.load("s0") == {"i": 0}
    assert copied.load("s1") == {"i": 1}
    copied.close()


# -- the near cache's bound: one message with the stream up, max_staleness without it ------------
def _seen_after(store: SessionStore[dict[str, Any]], other: Worker, tries: int) -> list[float]:
    """For each try: another process saves a new value; seconds from the moment this process
    learnt that the save was acknowledged to the start of its last load that still returned an
    older value (0 if none did): how long it was served a stale copy. Measured from the loads'
    own start times, so the time the fresh load takes, or this thread waiting for a core on a
    loaded machine after its last stale load, is not counted (a wall-clock 'until seen' was,
    and once read 1.43 s for a copy the chain served 0.95 s)."""
    delays: list[float] = []
    for i in range(tries):
        assert other.ask(f'save s {{"v": {i}}}') == "saved"
        acked = last_stale = time.monotonic()
        while True:
            started = time.monotonic()
            if store.load("s") == {"v": i}:
                break
            last_stale = started
            assert started - acked < 30, "never seen (a hang bound, not the staleness bound)"
            time.sleep(0.0002)  # a request loop, not a spin that starves the stream's thread
        delays.append(last_stale - acked)
    return sorted(delays)


@pytest.mark.slow
def test_another_processs_save_is_seen_within_50_ms_with_the_stream_up(
    redis_url: str, workers: Callable[[str], Worker]
) -> None:
    url = f"memory:// | {redis_url}"
    store = plain(url)
    chain = store.backend
    deadline = time.monotonic() + 5
    while not getattr(chain, "coherent", False) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert getattr(chain, "coherent", False), "the invalidation stream did not connect"
    other = workers(url)
    store.save("s", {"v": -1})
    hits_before = chain.counters.get("hits")
    delays = _seen_after(store, other, 200)
    median, p99, worst = delays[len(delays) // 2], delays[197], delays[-1]
    assert median < 0.05, (median, p99, worst)
    # The tail is one thread wake-up on a busy host: 0.4-11 ms here alone, up to 98 ms with the
    # whole suite and ~8 other jobs on 2 cores. Asserting 50 ms on it would test the scheduler;
    # it is printed, and the bound that holds whatever the scheduler does is max_staleness.
    assert worst < 1.0, worst
    assert chain.counters.get("invalidations") >= 200
    assert chain.counters.get("hits") - hits_before >= 200
    store.close()
    print(
        f"\nMEASURED near cache, stream up: an older copy served after another process's save "
        "for "
        f"{median * 1000:.2f} ms median, {p99 * 1000:.2f} ms p99, {worst * 1000:.2f} ms max "
        "(200 tries)"
    )


@pytest.mark.slow
def test_another_processs_save_is_seen_within_max_staleness_without_the_stream(
    redis_url: str, workers: Callable[[str], Worker]
) -> None:
    url = f"tiered://?invalidation=false | memory:// | {redis_url}"
    store = plain(url)
    other = workers(url)
    store.save("s", {"v": -1})
    delays = _seen_after(store, other, 8)
    assert delays[-1] < 1.0, delays  # max_staleness
    store.close()
    print(
        "\nMEASURED near cache, no stream: an older copy served for "
        f"{delays[-1] * 1000:.0f} ms at most"
    )


def _wait_for(condition: Callable[[], bool], seconds: float) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "not within the bound"
        time.sleep(0.005)
    return time.monotonic() - start


@pytest.mark.slow
def test_a_stalled_server_turns_the_stream_down_and_back_up(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """SIGSTOP of the redis-server: the near cache notices within the ping bound and falls back
    to the version check; SIGCONT: it reconnects and flushes what it could not know about."""
    server = redis_server_factory()
    store = plain(f"memory:// | {server.url_for(prefix='stall:')}")
    chain: Any = store.backend
    _wait_for(lambda: chain.coherent, 5)
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        noticed = _wait_for(lambda: not chain.coherent, 2)
    finally:
        os.kill(server.pid, signal.SIGCONT)
    back = _wait_for(lambda: chain.coherent, 5)
    store.close()
    print(f"\nMEASURED stream: down noticed after {noticed * 1e3:.0f} ms, back {back * 1e3:.0f} ms")


def test_10_cli_get_ls_and_migrate_read_a_chains_tier(tmp_path: Path) -> None:
    """The CLI over one tier of a chain: ``ls`` lists the sessions (not the tombstones), ``get``
    decodes through the frame, ``migrate`` walks the tier without a failure, and the chain and a
    single-tier store still read every session afterwards."""
    source = tmp_path / "a"
    _s0_s1_and_a_deleted_s2(f"memory:// | diskcache://{source}")
    cli = _cli(tmp_path)
    tier = f"diskcache://{source}"
    listed = cli("ls", tier)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == ["s0", "s1"]
    got = cli("get", tier, "s1", "--json")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["data"] == {"i": 1}
    assert cli("get", tier, "s2").returncode != 0  # deleted: a tombstone is not a session
    migrated = cli("migrate", tier, "--no-checkpoint", "--json")
    assert migrated.returncode == 0, migrated.stderr + migrated.stdout
    for url in (f"memory:// | {tier}", tier):
        store = plain(url)
        assert store.load("s0") == {"i": 0} and store.load("s1") == {"i": 1}
        assert store.load("s2") is None
        store.close()


def test_a_forked_child_opens_a_stream_of_its_own(redis_url: str) -> None:
    """A pre-forking server: the chain opened in the parent, used in a forked child. The child
    does not inherit the parent's stream (its thread did not fork): it starts in version-check
    mode and opens its own stream on its first near-cache miss."""
    chain: Any = open_backend(f"memory:// | {redis_url}")
    _wait_for(lambda: chain.coherent, 5)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and leaves
        code = 1
        try:
            os.close(read_end)
            before = chain.coherent
            chain.get("absent")  # a miss: the child's stream starts
            deadline = time.monotonic() + 5
            while not chain.coherent and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(write_end, json.dumps([before, chain.coherent]).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert status == 0
    assert report == [False, True]
    assert chain.coherent  # the parent's stream is untouched
    chain.close()


# -- 3 (bis). no lost update across a kill -9 and a restart from an older AOF --------------------
@pytest.mark.slow
def test_3_no_lost_update_when_redis_restarts_from_an_older_aof(
    redis_server_factory: Callable[..., RedisServer],
    tmp_path: Path,
    workers: Callable[[str], Worker],
) -> None:
    """4 workers x 100 increments; meanwhile Redis is killed with -9 and restarted from a copy of
    its append-only files taken earlier (it comes back with the counter as it was before the
    increments). The counter must hold every acknowledged increment, and no more than those plus
    the attempts whose outcome the worker could not know.

    The copy is taken once the counter exists and before any increment, and the kill comes once
    100 increments are in, so the scenario holds whatever the machine's speed (a copy taken
    after a fixed sleep held every increment on a quiet machine)."""
    server = redis_server_factory(appendonly=True, extra_config=("appendfsync always",))
    redis = server.url_for(prefix="aof4:", socket_timeout="0.5", socket_connect_timeout="0.5")
    url = f"tiered://?retry_after=0.3 | memory:// | {redis} | diskcache://{tmp_path / 'disk'}"
    with plain(url) as seeding:
        seeding.save("counter", {"n": 0})
    assert server.directory is not None
    aof = server.directory / "appendonlydir"
    older = tmp_path / "older-aof"
    shutil.copytree(aof, older)  # what Redis will come back with: the counter at 0
    crew = [workers(url) for _ in range(4)]
    for worker in crew:
        worker.send("incr 100")
    with plain(redis) as watching:
        _wait_for(lambda: (watching.load("counter") or {"n": 0})["n"] >= 100, 60)
    server.kill()
    shutil.rmtree(aof)
    shutil.copytree(older, aof)
    time.sleep(0.3)
    server.restart()
    redis_alone = plain(redis)
    came_back_with = (redis_alone.load("counter") or {"n": 0})["n"]
    redis_alone.close()
    answers = [worker.read() for worker in crew]
    acked, unknown = sum(a for a, _ in answers), sum(u for _, u in answers)
    assert came_back_with < acked  # the scenario is real: Redis lost increments
    assert acked == 400  # every worker got through once the arbiter was back
    store = plain(url)
    stored = (store.load("counter") or {"n": 0})["n"]
    store.close()
    # none lost; more only by attempts whose outcome was unknown (a reply lost to the kill or to
    # the 0.5 s socket timeout on a loaded machine: seen once, 401 of 400, with unknown ones)
    assert acked <= stored <= acked + unknown, (stored, acked, unknown)
