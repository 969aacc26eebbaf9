"""Sliding expiry through a chain: ``touch`` (what ``touch_on_load=True`` and the web
integrations' ``sliding=True`` call on every read) racing another process's ``delete``.

The interleaving is forced, not hoped for: the chain's ``touch`` is its sequence of tier calls
(``session_store.tiered.steps.touch``), performed here one call at a time on the real tiers
(a real redis-server, a real diskcache directory) exactly as ``TieredBackend._run`` performs
them, with another chain (another process's, sharing the tiers) deleting the session at the one
point where a real process can: after the touch has read the tiers and before it touches them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from session_store import open_backend, stamps
from session_store.tiered import TieredBackend, steps
from session_store_diskcache import DiskcacheBackend
from session_store_redis import RedisBackend

TOMBSTONE_TTL = 3600.0


def _chain(redis_url: str, disk: Path) -> TieredBackend:
    chain = open_backend(
        f"tiered://?tombstone_ttl={TOMBSTONE_TTL:g} | memory:// | {redis_url} | diskcache://{disk}"
    )
    assert isinstance(chain, TieredBackend)
    return chain


def _touch_with_a_delete_before_the_first_touch(
    chain: TieredBackend, other: TieredBackend, key: str, ttl: float | None
) -> bool:
    """``chain.touch(key, ttl)``, with ``other.delete(key)`` landing between its reads and its
    first tier ``touch`` (the window a concurrent logout has). A tier touch is the step
    ``touch_if`` (the conditional touch), ``touch`` before it."""
    sequence = steps.touch(chain, key, ttl)
    value: Any = None
    deleted = False
    while True:
        try:
            step = sequence.send(value)
        except StopIteration as done:
            assert deleted, "the sequence never reached a tier touch"
            return bool(done.value)
        if step.fn in ("touch", "touch_if") and not deleted:  # before and after the fix
            assert other.delete(key)  # another process's logout, acknowledged
            deleted = True
        value = chain._step(step)


@pytest.mark.parametrize("ttl", [None, 7200.0])
def test_a_touch_racing_a_delete_leaves_the_tombstone_its_full_life(
    redis_url: str, tmp_path: Path, ttl: float | None
) -> None:
    """Failed before the conditional touch: the tombstones lived 30 s (``ttl=None``, the
    session's own) or 7200 s, and ``touch`` answered True."""
    disk = tmp_path / "disk"
    reader, deleter = _chain(redis_url, disk), _chain(redis_url, disk)
    raw_redis, raw_disk = RedisBackend.from_url(redis_url), DiskcacheBackend(disk)
    try:
        reader.set("k", b"session", ttl=30)
        answered = _touch_with_a_delete_before_the_first_touch(reader, deleter, "k", ttl)
        held_redis, held_disk = raw_redis.get("k"), raw_disk.get("k")
        assert held_redis is not None and stamps.is_tombstone(held_redis)
        assert held_disk is not None and stamps.is_tombstone(held_disk)
        assert reader.get("k") is None and deleter.get("k") is None  # still deleted: held
        lives = {"redis": raw_redis.ttl("k"), "disk": raw_disk.ttl("k")}
        assert all(
            left is not None and TOMBSTONE_TTL - 60 < left <= TOMBSTONE_TTL
            for left in lives.values()
        ), f"tombstones re-expired by the racing touch: {lives}"
        assert answered is False, "touch reported a deleted session as alive"
    finally:
        for closing in (reader, deleter, raw_redis, raw_disk):
            closing.close()


def test_a_touch_after_a_delete_neither_resurrects_nor_shortens_the_tombstone(
    redis_url: str, tmp_path: Path
) -> None:
    """What held: ``touch`` (and ``touch_on_load``) of a session another process already
    deleted answers False, leaves the tombstones as the delete wrote them, and nothing reads
    the session back, also through the reader's near cache that held it."""
    disk = tmp_path / "disk"
    reader, deleter = _chain(redis_url, disk), _chain(redis_url, disk)
    raw_redis = RedisBackend.from_url(redis_url)
    try:
        reader.set("k", b"session", ttl=30)
        assert reader.get("k") == b"session"  # a near copy in the reader
        assert deleter.delete("k")
        assert reader.touch("k") is False
        assert reader.touch("k", 5) is False
        assert reader.get("k") is None
        left = raw_redis.ttl("k")
        assert left is not None and left > TOMBSTONE_TTL - 60
    finally:
        for closing in (reader, deleter, raw_redis):
            closing.close()
