"""Following the primary, piece by piece: the sentinels' announcements, the ROLE check on
connect, and the periodic ROLE check that leaves a demoted node when no announcement came.

Real sentinels and servers throughout; the tests that demote a node by hand get a set-up of
their own."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from session_store import BackendUnavailableError
from session_store_redis import RedisSentinelBackend
from session_store_redis.sentinel_follow import PrimaryTracker
from session_store_redis.testing import RedisSentinelSet
from session_store_redis.testing.checks import open_as
from session_store_redis.testing.cluster import wait_until
from session_store_redis.testing.server import free_port

SentinelFactory = Callable[..., RedisSentinelSet]


def test_announcements_of_this_service_name_the_primary() -> None:
    tracker = PrimaryTracker("mymaster", [("127.0.0.1", 1)], {})
    tracker.handle("+switch-master", "other 127.0.0.1 7000 127.0.0.1 7001")
    assert tracker.announced is None  # another service
    tracker.handle("+switch-master", "mymaster 127.0.0.1 7000 127.0.0.1 7001")
    assert tracker.announced == ("127.0.0.1", 7001)
    tracker.handle(
        "+promoted-slave", "slave 127.0.0.1:7002 127.0.0.1 7002 @ mymaster 127.0.0.1 7001"
    )
    assert tracker.announced == ("127.0.0.1", 7002)
    tracker.handle("+promoted-slave", "slave 127.0.0.1:7003 127.0.0.1 7003 @ other 127.0.0.1 1")
    tracker.handle("+switch-master", "mymaster garbage")
    assert tracker.announced == ("127.0.0.1", 7002) and tracker.switches == 2
    tracker.refused(("127.0.0.1", 7002))
    assert tracker.announced is None


def test_an_announced_node_that_is_not_the_primary_is_refused_by_its_role(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    """A stale or wrong announcement never sends writes to a replica: the ROLE check on
    connect refuses it, the sentinels are asked again, the write lands on the primary."""
    with open_as(
        RedisSentinelBackend, redis_sentinel.url_for(prefix=redis_sentinel_namespace)
    ) as backend:
        backend.set("before", b"1")
        replica = redis_sentinel.replicas()[0]
        assert backend.tracker is not None
        backend.tracker.switched(("127.0.0.1", replica.port))
        backend.set("after", b"2")  # retried after the refusal
        assert backend.tracker.announced is None
        raw = redis_sentinel.primary().client()
        try:
            assert raw.get(backend.namespace.encode("after")) == b"2"
        finally:
            raw.close()


def test_the_watchers_hear_a_failover_the_sentinels_announce(
    redis_sentinel_factory: SentinelFactory,
) -> None:
    sentinels = redis_sentinel_factory()
    with open_as(RedisSentinelBackend, sentinels.url_for(prefix="w:")) as backend:
        backend.set("k", b"v")  # connected: the watchers run
        assert backend.tracker is not None
        old, replica = sentinels.primary(), sentinels.replicas()[0]
        # The URL names one sentinel; the watcher learns the others from it and listens to all.
        everyone = {("127.0.0.1", sentinel.port) for sentinel in sentinels.sentinels}
        deadline = time.monotonic() + 20
        while backend.tracker.watching != everyone:
            assert time.monotonic() < deadline, f"subscribed to {backend.tracker.watching} only"
            time.sleep(0.01)
        raw = sentinels.sentinels[0].client()
        try:
            raw.execute_command("SENTINEL", "FAILOVER", sentinels.service)  # type: ignore[no-untyped-call]
        finally:
            raw.close()
        deadline = time.monotonic() + 20
        while backend.tracker.announced != ("127.0.0.1", replica.port):
            assert time.monotonic() < deadline, "no announcement of the new primary heard"
            time.sleep(0.02)
        assert old is not replica
        wait_until("the sentinels to name the replica", lambda: sentinels.primary() is replica, 10)
        backend.set("k", b"w")
        assert backend.get("k") == b"w"


def test_reads_leave_a_primary_demoted_without_announcement(
    redis_sentinel_factory: SentinelFactory,
) -> None:
    """With every sentinel unreachable (paused), an operator demotes the primary by hand: no
    announcement can come, and the demoted node would go on answering reads. The periodic ROLE
    check leaves it within ``role_check_interval``: reads fail (no sentinel to ask where the
    primary is) instead of being served by a replica."""
    sentinels = redis_sentinel_factory()
    url = sentinels.url_for(
        prefix="d:", role_check_interval="0.2", socket_timeout="0.5", retries="0"
    )
    old, replica = sentinels.primary(), sentinels.replicas()[0]
    paused = [s.pid for s in sentinels.sentinels if s.pid is not None]
    with open_as(RedisSentinelBackend, url) as backend:
        backend.set("k", b"v")
        assert backend.get("k") == b"v"
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            raw_new, raw_old = replica.client(), old.client()
            try:
                raw_new.replicaof("NO", "ONE")
                raw_old.replicaof("127.0.0.1", replica.port)
            finally:
                raw_new.close()
                raw_old.close()
            time.sleep(0.3)  # past role_check_interval
            with pytest.raises(BackendUnavailableError):
                backend.get("k")
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)


def test_an_announced_primary_that_does_not_answer_is_forgotten(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    """An announcement naming a node that is gone (a later announcement was missed) does not
    strand the backend: the failed connection sends it back to the sentinels."""
    url = redis_sentinel.url_for(prefix=redis_sentinel_namespace, socket_connect_timeout="0.5")
    with open_as(RedisSentinelBackend, url) as backend:
        backend.set("before", b"1")
        assert backend.tracker is not None
        backend.tracker.switched(("127.0.0.1", free_port()))  # nothing listens there
        backend.set("after", b"2")  # refused, forgotten, retried on the sentinels' primary
        assert backend.tracker.announced is None
        assert backend.get("after") == b"2"


def test_a_forked_child_watches_on_its_own(
    redis_sentinel: RedisSentinelSet, redis_sentinel_namespace: str
) -> None:
    """Watcher threads do not survive a fork: the child starts its own on first use, with
    locks of its own."""
    with open_as(
        RedisSentinelBackend, redis_sentinel.url_for(prefix=redis_sentinel_namespace)
    ) as backend:
        backend.set("k", b"v")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            code = 1
            try:
                backend.set("child", b"c")
                names = {t.name for t in threading.enumerate()}
                code = 0 if any("sentinel watch" in name for name in names) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert backend.get("child") == b"c"
