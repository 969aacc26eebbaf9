"""The staged transaction's bytes stay redis-py's when its parts come from the packer's tables:
:func:`~session_store_redis.staged_pack.pack_staged` looks its length prefixes and its ``PX`` part
up in tables made on first use (a ``%``-format of bytes costs several dict lookups), so the same
call packs from a table the second time, and the tables are cleared when they fill. Every call of
a random run, first or repeated, across both clearings, must give the bytes redis-py's own
``pack_commands`` gives (the first-call case alone is test_ordered_scripts'
``test_the_staged_transaction_is_packed_as_redis_py_packs_it``)."""

from __future__ import annotations

import random
from typing import Any

import redis

from session_store_redis import staged_pack
from session_store_redis.staged import MOVE_AFTER_SHA, MOVE_IF_NEWER_SHA, staging_key
from session_store_redis.staged_pack import pack_ordered, pack_staged


def _expected(staging: bytes, value: bytes, px: int | None, run: Any) -> bytes:
    verb, script, stored, argv = run
    staged = ("SET", staging, value) if not px else ("SET", staging, value, "PX", px)
    commands = (staged, (verb, script, 2, stored, staging, *argv))
    connection: Any = redis.Connection()  # type: ignore[no-untyped-call]
    return b"".join(connection.pack_commands([("MULTI",), *commands, ("EXEC",)]))


def test_packed_from_the_tables_as_redis_py_packs_it() -> None:
    rng = random.Random(12)
    staging = staging_key("ns\x1f")
    cleared = 0
    for step in range(3000):
        size = rng.choice([16, 17, 100, 2600, rng.randrange(16, 5000)])
        value = rng.randbytes(size)
        px = rng.choice([None, 0, 3_600_000, 1]) if rng.random() < 0.4 else rng.randrange(1, 10**12)
        stored = "ns\x1f" + rng.choice(["k", "user-1", "é✓" * rng.randrange(1, 40)])
        script = rng.choice([MOVE_AFTER_SHA, MOVE_IF_NEWER_SHA])
        argv: tuple[bytes | str | int, ...] = (value[:16],)
        if step % 7 == 0:
            argv = (b"\x00expected", "d1a2", -1)
        run = ("EVALSHA", script, stored, argv)
        expected = _expected(staging, value, px, run)
        before = len(staged_pack._LENGTHS) + len(staged_pack._PX)
        assert pack_staged(staging, value, px, run) == expected, step
        assert pack_staged(staging, value, px, run) == expected, step  # from the tables
        cleared += len(staged_pack._LENGTHS) + len(staged_pack._PX) < before
    assert cleared  # (a table filled and was cleared during the run)


def test_neighbouring_lengths_and_ttls_each_get_their_own_part() -> None:
    """Consecutive lengths and milliseconds, each packed twice, past a table's clearing: a part
    kept under the wrong entry would be served to its neighbour."""
    staging = staging_key("ns\x1f")
    for n in range(16, 2100):
        value = bytes(n)
        run = ("EVALSHA", MOVE_AFTER_SHA, "ns\x1f" + "k" * (n % 300 + 1), (value[:16],))
        expected = _expected(staging, value, n, run)
        assert pack_staged(staging, value, n, run) == expected, n
        assert pack_staged(staging, value, n, run) == expected, n


def test_an_ordered_write_packed_from_its_parts_as_redis_py_packs_it() -> None:
    """``pack_ordered`` (every chain save's transaction, its parts made once per script,
    staging key and expiry) gives ``pack_staged``'s bytes, redis-py's, first call or not,
    across the clearing of its table."""
    rng = random.Random(1212)
    stagings = [staging_key("ns\x1f"), staging_key("é✓\x1f") + b":0123456789abcdef"]
    cleared = 0
    for step in range(3000):
        value = rng.randbytes(rng.choice([16, 17, 2600, rng.randrange(16, 5000)]))
        px = rng.choice([1, 3_600_000]) if rng.random() < 0.5 else rng.randrange(1, 10**12)
        stored = "ns\x1f" + rng.choice(["k", "user-1", "é✓" * rng.randrange(1, 40)])
        script = rng.choice([MOVE_AFTER_SHA, MOVE_IF_NEWER_SHA])
        staging = rng.choice(stagings)
        expected = _expected(staging, value, px, ("EVALSHA", script, stored, (value[:16],)))
        before = len(staged_pack._ORDERED)
        assert pack_ordered(staging, value, px, script, stored) == expected, step
        assert pack_ordered(staging, value, px, script, stored) == expected, step
        cleared += len(staged_pack._ORDERED) < before
    assert cleared
