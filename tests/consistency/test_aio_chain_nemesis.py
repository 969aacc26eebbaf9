"""The history checker on the async chain: :mod:`test_chain_nemesis`'s runs, with async clients.

Four client processes (:mod:`aio_chain_worker`, an :class:`~session_store.aio.AsyncSessionStore`
on ``memory | redis | diskcache``, each process its own async chain; two with a short Redis
timeout so that they disagree about an outage) run random ``load`` / ``save`` / ``delete`` /
``update`` while the nemesis kills Redis with SIGKILL, pauses it with SIGSTOP, restarts it from an
older append-only file and makes the disk tier read-only; then a fresh async process reads every
key and :func:`session_store.testing.check_history` checks the whole history with the sync
chain's bounds (linearizable per key as a register with compare-and-set, no acknowledged update
missing, no resurrected delete; loads may lag by the near cache's stated bound).

Length: ``SESSION_STORE_NEMESIS_SECONDS`` (default 4 s of faults), as for the sync runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from session_store_redis.testing import RedisServer

from .test_chain_nemesis import (
    FLOOR,
    ServerFactory,
    acknowledged,
    nemesis_run,
    quiet_run,
    report_line,
)

AIO_WORKER = Path(__file__).with_name("aio_chain_worker.py")


@pytest.mark.slow
def test_async_chain_history_under_the_nemesis_is_linearizable(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    run, nemesis, report = nemesis_run(redis_server_factory, tmp_path, "aionemesis:", AIO_WORKER)
    print(report_line("async nemesis " + nemesis.summary(), run, report.summary()))
    assert nemesis.log, "the nemesis never struck"
    assert acknowledged(run) >= FLOOR
    assert report.valid, report.summary()


@pytest.mark.slow
def test_async_chain_history_without_faults_is_linearizable(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    # the sync no-fault run's bound, for the sync run's reason (a starved listener thread)
    run, report = quiet_run(redis_server, redis_namespace, tmp_path, AIO_WORKER)
    print(report_line("async, no faults", run, report.summary()))
    assert acknowledged(run) >= FLOOR
    assert report.valid, report.summary()
