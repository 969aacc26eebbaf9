"""Faults tests/consistency/nemesis.py does not make, on the same clients and checker.

Run (not collected by pytest; from the repository root)::

    python -m tests.tiered_faults.nemesis_extra SEED SECONDS FAULTS [KEYS]

``FAULTS`` is a comma-separated list of the nemesis's own faults (``kill``, ``pause``,
``aof-rollback``, ``disk-read-only``) and these:

* ``write-pause``: ``CLIENT PAUSE <fault> WRITE``: the clients with a 0.25 s socket timeout give
  up on their writes (their breaker opens) while the invalidation streams and the other clients
  keep going: one process alone sees a stall, without any stream going down;
* ``disk-lock``: another SQLite connection holds the disk tier's lock (``BEGIN EXCLUSIVE``);
* ``flush``: Redis loses its data (``FLUSHALL``: a restart without persistence, an eviction).

Results (2-core machine, 4 clients, 2026-11-30): ``write-pause`` alone, 15 s: not linearizable
(two runs of two); ``write-pause,disk-lock,flush``, 30 s: 6 lost updates, 4 resurrected
deletes, 7 stale reads in 34,871 operations; ``flush`` alone and ``disk-lock`` alone: valid; the
nemesis's own faults on 16 keys, 20-25 s, seeds 5-8: seed 8 (and one run of seed 5) not
linearizable (an update blocked through a SIGSTOP overwrote a save acknowledged meanwhile by a
client whose breaker skipped Redis).
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import redis

from session_store_redis.testing import RedisServer
from tests.consistency.nemesis import FaultRecord, Nemesis, chain_url, run_clients

OWN_FAULTS = ("kill", "pause", "aof-rollback", "disk-read-only")


class ExtraNemesis(Nemesis):
    """:class:`Nemesis` with the faults of the module doc."""

    def strike(self, name: str, seconds: float) -> None:
        if name in OWN_FAULTS:
            super().strike(name, seconds)
            return
        record = FaultRecord(name, time.monotonic_ns())
        self.log.append(record)
        try:
            if name == "write-pause":
                admin = redis.Redis.from_url(self.server.url_for())
                pause = str(int(seconds * 1000))
                admin.execute_command("CLIENT", "PAUSE", pause, "WRITE")  # type: ignore[no-untyped-call]
                self._stop.wait(seconds)
                admin.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
                admin.close()
            elif name == "disk-lock":
                lock = sqlite3.connect(self.disk / "cache.db", timeout=5, isolation_level=None)
                lock.execute("BEGIN EXCLUSIVE")
                self._stop.wait(seconds)
                lock.execute("ROLLBACK")
                lock.close()
            elif name == "flush":
                admin = redis.Redis.from_url(self.server.url_for())
                admin.flushall()
                admin.close()
            else:
                raise ValueError(f"unknown fault {name!r}")
        finally:
            record.end_ns = time.monotonic_ns()


def main(seed: int, seconds: float, faults: list[str], keys: int = 4) -> bool:
    """One run; prints the outcome and the history around the first anomalies."""
    tmp = Path(tempfile.mkdtemp())
    server = RedisServer(
        appendonly=True, extra_config=("appendfsync always",), directory=tmp / "redis"
    ).start()
    try:
        disk = tmp / "disk"
        short = server.url_for(prefix="n:", socket_timeout="0.25", socket_connect_timeout="0.25")
        default = server.url_for(prefix="n:")
        urls = [chain_url(url, disk) + "?timeout=0.1" for url in (short, default, short, default)]
        nemesis = ExtraNemesis(server, disk, seed=seed)
        nemesis.faults = tuple(faults)
        run = run_clients(
            urls,
            tmp / "events",
            keys=[f"user:{i}" for i in range(keys)],
            seconds=seconds,
            seed=seed,
            nemesis=nemesis,
            sweep_url=urls[1],
        )
        report = run.check()
        print(nemesis.summary())
        print(run.outcomes())
        print(report.summary())
        for anomaly in report.anomalies[:3]:
            ids = set(anomaly.ops)
            at = min(op.invoke_ns for op in run.operations if op.id in ids)
            history = sorted(
                (op for op in run.operations if op.key == anomaly.key), key=lambda o: o.invoke_ns
            )
            first = next(i for i, op in enumerate(history) if op.invoke_ns >= at)
            print("===", anomaly.kind, anomaly.key, anomaly.ops, "(ms from the first op named)")
            for op in history[max(0, first - 30) : first + 8]:
                done = "-" if op.complete_ns is None else f"{(op.complete_ns - at) / 1e6:9.2f}"
                print(
                    f"  {op.id:9} {op.kind:6} {op.outcome:7} {(op.invoke_ns - at) / 1e6:9.2f}"
                    f" {done} prev={op.prev} value={op.value} error={op.error}"
                )
            for fault in nemesis.log:
                start, end = (fault.start_ns - at) / 1e6, (fault.end_ns - at) / 1e6
                print(f"  fault {fault.name} {start:.1f} .. {end:.1f}")
        return report.valid
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    valid = main(
        int(arguments[0]),
        float(arguments[1]),
        arguments[2].split(","),
        int(arguments[3]) if len(arguments) > 3 else 4,
    )
    sys.exit(0 if valid else 1)
