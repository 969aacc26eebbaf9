"""A chain whose Redis *refuses* instead of failing: the recommended chain
``memory:// | redis://... | diskcache:///...`` with a misconfigured Redis tier.

docs/guarantees.md (part 2, "Secrets and access"): a wrong or missing password "is a
``BackendError`` saying the credentials were refused, not a ``BackendUnavailableError`` (so a
chain does not silently skip a misconfigured tier)". The suite's own chain check uses
``memory:// | redis://`` (Redis is then the only durable tier, so the refusal surfaces). With a
disk tier below, it does not: the chain's write path takes any ``BackendError`` of a tier as a
refused write (``Breakers.refused``: logged at DEBUG), and the disk acknowledges.

Real servers of the test's own: one with ``requirepass``, and a primary with a real replica
(what a static ``redis://`` URL points at after a Sentinel failover demoted its host); real
diskcache directories, one per "host" where two hosts are played.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from session_store import BackendError, SessionStore
from session_store.aio import AsyncSessionStore
from session_store_redis.testing import RedisServer

ServerFactory = Callable[..., RedisServer]


def _chain(redis: str, disk: Path) -> str:
    return f"memory:// | {redis} | diskcache://{disk}"


@pytest.fixture
def guarded(redis_server_factory: ServerFactory) -> RedisServer:
    return redis_server_factory(password="the-right-one")


def _wrong_password_url(server: RedisServer) -> str:
    return f"redis://:not-the-right-one@127.0.0.1:{server.port}/0?prefix=app:"


def test_a_wrong_password_fails_the_save_through_the_recommended_chain(
    guarded: RedisServer, tmp_path: Path
) -> None:
    url = _chain(_wrong_password_url(guarded), tmp_path / "disk")
    with SessionStore(url, dict) as store, pytest.raises(BackendError, match="credentials"):
        store.save("k", {"a": 1})


def test_a_wrong_password_is_loud_on_reads_and_updates(
    guarded: RedisServer, tmp_path: Path
) -> None:
    """Through the same chain, a cold ``load``, ``exists``, ``delete`` and ``update`` of a
    session the disk holds (written by a correctly configured process) raise ``BackendError``
    naming the credentials (not ``BackendUnavailableError``), write nothing, and a correctly
    configured process still reads the session."""
    disk = tmp_path / "disk"
    right = f"redis://:the-right-one@127.0.0.1:{guarded.port}/0?prefix=app:"
    with SessionStore(_chain(right, disk), dict) as writer:
        writer.save("k", {"a": 1})
    admin = guarded.client()
    admin.flushall()  # Redis lost it: only the disk holds it (the test's own server)
    admin.close()
    with SessionStore(_chain(_wrong_password_url(guarded), disk), dict) as cold:
        calls: list[Callable[[], object]] = [
            lambda: cold.load("k"),
            lambda: cold.exists("k"),
            lambda: cold.delete("k"),
            lambda: cold.update("k", lambda current: current),
        ]
        for call in calls:
            with pytest.raises(BackendError, match="credentials") as caught:
                call()
            assert type(caught.value) is BackendError
    with SessionStore(_chain(right, disk), dict) as fixed:
        assert fixed.load("k") == {"a": 1}


def test_a_wrong_password_fails_the_save_through_the_async_chain(
    guarded: RedisServer, tmp_path: Path
) -> None:
    async def main() -> None:
        url = _chain(_wrong_password_url(guarded), tmp_path / "disk")
        async with AsyncSessionStore(url, dict) as store:
            with pytest.raises(BackendError, match="credentials"):
                await store.save("k", {"a": 1})

    asyncio.run(main())


def _wait_replicating(replica: RedisServer, timeout: float = 20.0) -> None:
    """Until the replica reports its link to the primary up (polled, not slept on)."""
    client = replica.client()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            info: dict[str, Any] = client.info("replication")
            if info.get("master_link_status") == "up":
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError("the replica never connected to its primary")


def test_a_logout_through_a_chain_on_a_read_only_replica_is_not_silently_lost(
    redis_server_factory: ServerFactory, tmp_path: Path
) -> None:
    primary = redis_server_factory()
    replica = redis_server_factory(extra_config=(f"replicaof 127.0.0.1 {primary.port}",))
    _wait_replicating(replica)
    on_primary = f"redis://127.0.0.1:{primary.port}/0?prefix=app:"
    on_replica = f"redis://127.0.0.1:{replica.port}/0?prefix=app:"
    with SessionStore(_chain(on_primary, tmp_path / "before"), dict) as before:
        before.save("alice", {"user": "alice"})
    reader = replica.client()
    deadline = time.monotonic() + 20
    while not reader.keys("app:*") and time.monotonic() < deadline:
        time.sleep(0.05)  # polled until replicated
    reader.close()
    host_a = SessionStore(_chain(on_replica, tmp_path / "host-a"), dict)
    host_b = SessionStore(_chain(on_replica, tmp_path / "host-b"), dict)  # nothing read yet
    try:
        assert host_a.load("alice") == {"user": "alice"}  # logged in
        try:
            logged_out = host_a.delete("alice")
        except BackendError:
            return  # the refusal surfaced: the promise holds
        assert logged_out is True
        assert host_b.load("alice") is None, "host B still serves the session host A logged out"
    finally:
        host_a.close()
        host_b.close()
