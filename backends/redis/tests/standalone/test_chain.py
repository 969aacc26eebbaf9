"""A ``memory | redis | diskcache`` chain over a real redis-server and a real directory.

The chain passes the whole conformance kit, and 50 random values written through it are read
back whole, with a fresh ``diskcache://`` on the same directory holding them all.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest

from session_store import SessionBackend, TieredBackend, open_backend
from session_store.stamps import session_bytes
from session_store.testing import BackendConformance
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer


def _chain(server: RedisServer, namespace: str, directory: Path, prefix: str) -> TieredBackend:
    chain = open_backend(
        "memory://?max_entries=100000"
        f" | {server.url_for(prefix=namespace + prefix)}"
        f" | diskcache://{directory}?prefix={quote(prefix, safe=':')}"
    )
    assert isinstance(chain, TieredBackend)
    return chain


class TestChainConformance(BackendConformance):
    @pytest.fixture
    def backend_factory(
        self, redis_server: RedisServer, redis_namespace: str, tmp_path: Path
    ) -> Callable[..., SessionBackend]:
        return lambda prefix="t:": _chain(redis_server, redis_namespace, tmp_path / "disk", prefix)


def test_fifty_random_values_reach_every_tier(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    rng = random.Random(5)
    values = {
        f"user-{rng.randrange(10**9)}-{i}": os.urandom(rng.choice([0, 1, 100, 7 * 1024, 300_000]))
        for i in range(50)
    }
    directory = tmp_path / "disk"
    with _chain(redis_server, redis_namespace, directory, "app:") as chain:
        for key, value in values.items():
            chain.set(key, value, ttl=3600)
        assert {key: chain.get(key) for key in values} == values
        assert chain.get_many(values) == values
        assert sorted(chain.scan()) == sorted(values)
        redis_tier = chain.tiers[1]
        assert isinstance(redis_tier, RedisBackend)
        # every copy carries the chain's version frame; single-tier readers read through it
        assert {k: session_bytes(v) for k, v in redis_tier.get_many(values).items()} == values
    with open_backend(f"diskcache://{directory}?prefix=app:") as fresh:
        assert {k: session_bytes(v) for k, v in fresh.get_many(values).items()} == values
        assert sorted(fresh.scan()) == sorted(values)


def test_redis_orders_new_writes_by_arrival(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    """The arbiter's Lua script: a new write over a newer version takes that version's clock
    plus one (with its own node); a copy (set_if_newer) over a newer version is refused."""
    from session_store import stamps

    redis_tier = RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace + "after:"))
    ahead = (int.from_bytes(stamps.clock.now()[:8], "big") + (60_000 << 16)).to_bytes(8, "big")
    redis_tier.set("k", stamps.frame(b"ahead", ahead + b"\x00\x00\x00\x01", None))
    node = b"\x00\x00\x00\x02"
    mine = stamps.frame(b"mine", stamps.clock.now()[:8] + node, 30.0)
    kw = {"head": 4, "start": 4, "end": 16}
    assert redis_tier.set_if_newer("k", mine, None, **kw) is False
    stored = redis_tier.set_after("k", mine, None, clock_end=12, **kw)
    assert stored == (int.from_bytes(ahead, "big") + 1).to_bytes(8, "big") + node
    held = redis_tier.get("k")
    assert held is not None and stamps.unframe(held) == b"mine"
    assert stamps.version_of(held) == stored and stamps.own_ttl(held) == 30.0
    redis_tier.close()
