"""The primary of a real Sentinel set-up is paused (SIGSTOP) past the failover, then resumed,
while several writer processes write; no acknowledged write may be lost beyond the bound
docs/scale-out.md gives (with ``wait_replicas=1``: none; without: only writes acknowledged
before the writer heard of the failover), every writer must hear of the failover, and every
writer's writes must succeed again on the promoted primary.

This is the failure that kill -9 does not show: the old primary comes back *still believing it
is the primary*, takes the writes that were waiting on its sockets and any a client keeps sending
it, acknowledges them, and throws them all away when the sentinels turn it into a replica of the
promoted one.

Each test gets a set-up of its own: a primary, two replicas (so the promoted primary keeps one:
``wait_replicas=1`` and ``min-replicas-to-write 1`` can be met after the failover), three
sentinels (``down-after-milliseconds`` 1000), every data node with
:data:`~session_store_redis.testing.sentinel.NO_LOSS_CONFIG`, the settings docs/scale-out.md
gives for no loss. The writers are separate interpreters; each records every write it got an
acknowledgement for (key, time); the checker reads them all back through a fresh backend once
the old primary is a replica again.

Checked on the record, not on the clock: "writes succeed again" is each writer's first write
after the promotion that the checker finds stored, however long a loaded machine took to get
there (the writers keep writing until each has one, up to a hang bound); the times are printed.
A fixed 2 s bound from the promotion failed under load once (no writer resumed within the 3 s
run: the promoted primary refuses writes until its remaining replica has synced, and a starved
machine makes that, not the client, slow). What the bound guarded, a client left on the old
primary, is what ``heard`` and the loss bound check: a writer that never hears of the failover,
or whose write acknowledged after it heard is lost, fails.

``SESSION_STORE_LONG_FAULTS=1`` pauses for 10 s after the promotion instead of 1 s and writes
for longer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from session_store import open_backend
from session_store_redis.testing import RedisSentinelSet
from session_store_redis.testing.sentinel import NO_LOSS_CONFIG

SentinelFactory = Callable[..., RedisSentinelSet]

LONG = os.environ.get("SESSION_STORE_LONG_FAULTS") == "1"
WRITERS = 3
HOLD_AFTER_PROMOTION_S = 10.0 if LONG else 1.0  # the old primary stays paused this long
WRITE_AFTER_RESUME_S = 10.0 if LONG else 3.0  # at least: then until every writer resumed
#: Seconds after which writers that have not all resumed count as hung (a bound on the wait for
#: a loaded machine, not an allowance: the check is that they resume, on the record).
HANG_S = 60.0

_WRITER = """
    import sys, time
    from session_store import BackendError, open_backend
    url, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
    backend = open_backend(url)
    started = time.monotonic()
    while True:  # connected: the watchers start
        try:
            backend.set(f"{name}-ready", b"")
            break
        except BackendError:  # NOREPLICAS: a starved replica lagged past min-replicas-max-lag
            if time.monotonic() - started > 30:  # a hang bound, not an allowance
                raise
            time.sleep(0.05)
    tracker = getattr(backend, "tracker", None)  # (none before issue 15: nothing to wait for)
    while tracker is not None and len(tracker.watching) < int(sys.argv[4]):
        time.sleep(0.01)  # subscribed to every sentinel
    # when this process heard of each failover (the bound of docs/scale-out.md), written at once
    heard = open(out + ".heard", "w", buffering=1)
    if tracker is not None:
        switched = tracker.switched
        def recording(address, switched=switched):
            switched(address)  # the connections elsewhere are dropped: heard from now on
            heard.write(f"heard {time.time():.6f}\\n")
        tracker.switched = recording
    n = 0
    with open(out, "w", buffering=1) as log:
        print("ready", flush=True)
        while not sys.stdin.closed:
            import select
            if select.select([sys.stdin], [], [], 0)[0]:
                break  # the test says stop
            key = f"{name}-{n}"
            n += 1
            try:
                backend.set(key, key.encode())
            except BackendError as exc:
                log.write(f"err {time.time():.6f} {type(exc).__name__}\\n")
                time.sleep(0.01)
                continue
            log.write(f"ok {time.time():.6f} {key}\\n")
    backend.close()
    heard.close()
"""


@dataclass
class Writer:
    process: subprocess.Popen[str]
    log: Path

    def history(self) -> tuple[list[tuple[float, str]], list[float]]:
        """The acknowledged writes (time, key) and the failed attempts (time)."""
        acked: list[tuple[float, str]] = []
        failed: list[float] = []
        for line in self.log.read_text().splitlines():
            kind, when, *rest = line.split()
            if kind == "ok":
                acked.append((float(when), rest[0]))
            elif kind == "err":
                failed.append(float(when))
        return acked, failed

    def heard(self) -> float:
        """When this writer first heard of a failover (``inf``: never)."""
        heard = Path(f"{self.log}.heard")
        lines = heard.read_text().splitlines() if heard.exists() else []
        times = [float(line.split()[1]) for line in lines if line.startswith("heard ")]
        return min(times, default=float("inf"))


def _start_writers(url: str, directory: Path, sentinels: int) -> list[Writer]:
    writers = []
    for index in range(WRITERS):
        log = directory / f"writer-{index}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(_WRITER),
                url,
                f"w{index}",
                str(log),
                str(sentinels),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        writers.append(Writer(process, log))
    for writer in writers:
        assert writer.process.stdout is not None
        line = writer.process.stdout.readline().strip()
        assert line == "ready", writer.process.communicate(timeout=30)[1]
    return writers


def _stop_writers(writers: list[Writer]) -> None:
    for writer in writers:
        assert writer.process.stdin is not None
        writer.process.stdin.write("stop\n")
        writer.process.stdin.flush()
    for writer in writers:
        _, err = writer.process.communicate(timeout=60)
        assert writer.process.returncode == 0, err


def _pause_past_failover(sentinels: RedisSentinelSet, starve_s: float = 0.0) -> tuple[float, float]:
    """SIGSTOP the primary until a replica has been promoted and ``HOLD_AFTER_PROMOTION_S``
    more, then SIGCONT; the wall-clock times of the promotion and the resume. ``starve_s``: also
    SIGSTOP one replica with the primary, until ``starve_s`` after the promotion, as a loaded
    machine starves it: the sentinels promote the other, which (``min-replicas-to-write 1``)
    refuses writes until the starved one is back and replicates from it."""
    old = sentinels.primary()
    assert old.pid is not None
    starved = [sentinels.replicas()[-1].pid or 0] if starve_s else []
    os.kill(old.pid, signal.SIGSTOP)
    for pid in starved:
        os.kill(pid, signal.SIGSTOP)
    promoted = time.time()
    try:
        deadline = time.monotonic() + 30
        while sentinels.primary() is old:
            assert time.monotonic() < deadline, "the sentinels promoted no replica within 30 s"
            time.sleep(0.01)
        promoted = time.time()
        time.sleep(HOLD_AFTER_PROMOTION_S)
    finally:
        os.kill(old.pid, signal.SIGCONT)
        resumed = time.time()
        if starved:
            time.sleep(max(0.0, promoted + starve_s - time.time()))
            for pid in starved:
                os.kill(pid, signal.SIGCONT)
    return promoted, resumed


def _run(
    sentinels: RedisSentinelSet,
    url: str,
    tmp_path: Path,
    *,
    replicated: bool,
    starve_s: float = 0.0,
) -> None:
    """Write through the pause; ``replicated`` (``wait_replicas=1``): nothing acknowledged may be
    lost; otherwise only what docs/scale-out.md bounds: writes the old primary acknowledged
    before the writer heard of the failover (those that waited on its sockets)."""
    old = sentinels.primary()
    writers = _start_writers(url, tmp_path, len(sentinels.sentinels))
    try:
        time.sleep(0.5)  # writing, connected to the primary
        promoted, resumed = _pause_past_failover(sentinels, starve_s)
        time.sleep(WRITE_AFTER_RESUME_S)  # the old primary is back: its writes are the risk
        deadline = time.monotonic() + HANG_S
        while not all(_wrote_since(writer, max(promoted, writer.heard())) for writer in writers):
            assert time.monotonic() < deadline, f"writers did not write again within {HANG_S} s"
            time.sleep(0.1)
    finally:
        _stop_writers(writers)
    sentinels.rejoin(old)  # anything the old primary took is then gone

    acked = [entry for writer in writers for entry in writer.history()[0]]
    with open_backend(sentinels.url_for(prefix="p:")) as fresh:
        found = fresh.get_many([key for _, key in acked])
    lost = [(when, key) for when, key in acked if found.get(key) != key.encode()]
    recovery = []
    for writer in writers:
        after = [when for when, key in writer.history()[0] if when > promoted and key in found]
        recovery.append(min(after) - promoted if after else float("inf"))
    lost_after_resume = sum(1 for when, _ in lost if when >= resumed)
    heard = {f"w{index}": writer.heard() for index, writer in enumerate(writers)}
    print(
        f"\n{len(lost):,} of {len(acked):,} acknowledged writes lost "
        f"({lost_after_resume:,} acknowledged after the old primary resumed); "
        f"surviving writes again {', '.join(f'{r:.2f}' for r in recovery)} s after the "
        f"promotion; heard {', '.join(f'{h - promoted:.2f}' for h in heard.values())} s after it"
    )
    # Every writer heard of the failover (the announcement is how a client leaves the old
    # primary), and none had a write acknowledged after it heard and then lost.
    assert max(heard.values()) < float("inf"), f"a writer never heard of the failover: {heard}"
    past_bound = [(when, key) for when, key in lost if when >= heard[key.split("-")[0]]]
    assert not past_bound, (
        f"{len(past_bound):,} acknowledged writes lost after their writer heard of the "
        f"failover ({len(lost):,} lost in all, of {len(acked):,})"
    )
    if replicated:
        assert not lost, f"{len(lost):,} of {len(acked):,} acknowledged writes lost"
    # Each writer wrote again after the promotion, and the write is stored (on the new primary).
    assert max(recovery) < float("inf"), f"a writer's writes never survived again: {recovery}"


def _wrote_since(writer: Writer, since: float) -> bool:
    """Whether ``writer`` has logged an acknowledged write after ``since`` (``inf``: not yet;
    whether it is stored, the checker decides at the end)."""
    return any(when > since for when, _ in writer.history()[0])


@pytest.mark.slow
def test_a_paused_primary_loses_no_acknowledged_write(
    redis_sentinel_factory: SentinelFactory, tmp_path: Path
) -> None:
    sentinels = redis_sentinel_factory(replicas=2, server_config=NO_LOSS_CONFIG)
    _run(sentinels, sentinels.url_for(prefix="p:"), tmp_path, replicated=False)


@pytest.mark.slow
def test_a_paused_primary_loses_no_write_acknowledged_by_a_replica(
    redis_sentinel_factory: SentinelFactory, tmp_path: Path
) -> None:
    sentinels = redis_sentinel_factory(replicas=2, server_config=NO_LOSS_CONFIG)
    _run(sentinels, sentinels.url_for(prefix="p:", wait_replicas="1"), tmp_path, replicated=True)


@pytest.mark.slow
def test_writers_resume_when_the_promoted_primary_accepts_writes_late(
    redis_sentinel_factory: SentinelFactory, tmp_path: Path
) -> None:
    """What a loaded machine did once: the other replica, starved (here SIGSTOPped with the
    primary, until 5 s after the promotion), cannot acknowledge, so the promoted primary refuses
    every write (``NOREPLICAS``) past the old fixed 3 s run. The writers keep writing and
    resume once it accepts; nothing acknowledged after they heard is lost."""
    sentinels = redis_sentinel_factory(replicas=2, server_config=NO_LOSS_CONFIG)
    _run(sentinels, sentinels.url_for(prefix="p:"), tmp_path, replicated=False, starve_s=5.0)
