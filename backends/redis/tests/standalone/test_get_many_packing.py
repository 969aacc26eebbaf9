"""``get_many`` sends its ``MGET`` packed by :class:`session_store_redis.commands.BulkPacker` (a
batch of plain keys, in one pass) or :func:`session_store_redis.commands.packed_mget` (any other,
one format per key), and ``delete_many`` its ``UNLINK`` by the former: the very bytes redis-py
would send, and the values of every key, ASCII or not, in order."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.connection import Connection

from session_store.errors import InvalidKeyError
from session_store.keys import MAX_KEY_BYTES, Namespace
from session_store_redis.backend import RedisBackend
from session_store_redis.commands import BulkPacker, packed_mget
from session_store_redis.testing import RedisServer


def test_packed_mget_is_what_redis_py_sends() -> None:
    stored = ["app\x1fa", "app\x1fkéy", "app\x1f" + "z" * 300, "app\x1f\U0001f600"]
    reference = b"".join(Connection().pack_command("MGET", *stored))  # type: ignore[no-untyped-call]
    assert packed_mget(stored) == reference


def test_get_many_reads_every_key_in_order(redis_server: RedisServer, redis_namespace: str) -> None:
    keys = [f"k{i}" for i in range(50)] + ["kéy", "\U0001f600", "missing"]
    with RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace)) as backend:
        assert backend._lean is not None  # the path under test
        for index, key in enumerate(keys[:-1]):
            backend.set(key, b"v%d" % index)
        assert backend.get_many(keys) == {
            key: b"v%d" % index for index, key in enumerate(keys[:-1])
        }
        assert backend.get_many(["missing"]) == {}


# -- BulkPacker: a batch of plain keys packed in one pass (get_many's MGET, delete_many's UNLINK)


def _reference(name: str, stored: list[str]) -> bytes:
    return b"".join(Connection().pack_command(name, *stored))  # type: ignore[no-untyped-call]


def test_bulk_packer_sends_what_redis_py_sends() -> None:
    # every length from 1 to the longest key (learnt as they come), and a prefix that is not
    # ASCII: its UTF-8 size, not its length, counts in each key's size
    for prefix in ("app", "prëfix\U0001f600", ""):
        namespace = Namespace(prefix)
        packer = BulkPacker(namespace)
        for keys in (["a"], [f"k{i}" for i in range(120)], ["z" * MAX_KEY_BYTES, "b", "b"]):
            stored = [namespace.encode(key) for key in keys]
            for name in (b"MGET", b"UNLINK"):
                assert packer.command(name, keys) == _reference(name.decode(), stored)


class _Key(str):
    pass


@pytest.mark.parametrize(
    "keys",
    [
        [],
        ["a", "kéy"],  # not ASCII: its length is not its size
        ["a", _Key("b")],  # a str subclass is no key
        ["a", 3],
        ["a", b"b"],
        ["a", ""],
        ["a", "z" * (MAX_KEY_BYTES + 1)],
    ],
)
def test_bulk_packer_leaves_any_other_batch_to_the_checks(keys: list[object]) -> None:
    packer = BulkPacker(Namespace("app"))
    assert packer.command(b"MGET", keys) is None  # type: ignore[arg-type]
    # and learnt nothing from it: a plain batch after it is packed as before
    assert packer.command(b"MGET", ["a"]) == _reference("MGET", ["app\x1fa"])


def test_bulk_packer_leaves_a_namespace_of_another_separator_to_the_checks() -> None:
    # such a namespace refuses keys holding U+001F: Namespace.encode says so, key by key
    assert BulkPacker(Namespace("app", ":")).command(b"MGET", ["a"]) is None


def test_plain_and_checked_batches_read_and_delete_alike(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    plain = [f"k{i}" for i in range(30)]
    with RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace)) as backend:
        assert backend._lean is not None  # the packed path under test
        backend.set_many({key: key.encode() for key in [*plain, "kéy"]})
        before = redis_server.command_calls()
        assert backend.get_many(iter([*plain, "gone", plain[0]])) == {k: k.encode() for k in plain}
        assert backend.get_many(["kéy", "k1"]) == {"kéy": b"k\xc3\xa9y", "k1": b"k1"}
        counted = {k: redis_server.command_calls().get(k, 0) - before.get(k, 0) for k in ("mget",)}
        assert counted == {"mget": 2}
        assert backend.counters.get("hits") == 33 and backend.counters.get("misses") == 1
        with pytest.raises(InvalidKeyError, match="must be str"):
            backend.get_many(["k1", 3])  # type: ignore[list-item]
        with pytest.raises(InvalidKeyError, match="must be str"):
            backend.delete_many(["k1", 3])  # type: ignore[list-item]
        assert backend.get("k1") == b"k1"  # the refused batch deleted nothing
        assert backend.delete_many(iter([*plain[:10], plain[0], "gone"])) == 10
        assert backend.delete_many(["kéy", "k10"]) == 2
        assert backend.delete_many([]) == 0
        assert backend.get_many([*plain, "kéy"]) == {k: k.encode() for k in plain[11:]}
        assert backend.counters.get("deletes") == 12


# -- any batch: the packed path (plain keys) and the checked one (any other) agree with get

_ASCII_KEYS = st.text(st.characters(codec="ascii"), max_size=12)  # "" included: refused
_KEYS = st.one_of(
    _ASCII_KEYS,
    _ASCII_KEYS,
    _ASCII_KEYS,
    st.text(st.sampled_from("ab\r\n:\x1f"), min_size=1020, max_size=1030),  # around the limit
    st.sampled_from(["kéy", "\U0001f600", "\x1f"]),  # not ASCII (checked path); a separator
)


@given(keys=st.lists(_KEYS, min_size=1, max_size=6), absent=st.lists(_KEYS, max_size=2))
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_batch_reads_and_deletes_what_single_calls_would(
    redis_server: RedisServer, redis_namespace: str, keys: list[str], absent: list[str]
) -> None:
    """Hostile keys (control characters, the separator, non-ASCII, duplicates, lengths around
    the limit) in one batch: ``get_many`` returns exactly what ``get`` returns for each, never
    a value under another key; ``delete_many`` removes exactly those; a batch with a key
    ``get`` refuses is refused whole, with the same error, and changes nothing."""
    with RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace)) as backend:
        valid = {}
        for key in keys:
            try:
                backend.set(key, key.encode("utf-8") + b"!")
            except InvalidKeyError:
                continue
            valid[key] = key.encode("utf-8") + b"!"
        batch = [*keys, *absent]
        refused = None
        for key in batch:
            try:
                backend.get(key)
            except InvalidKeyError as exc:
                refused = type(exc)
                break
        if refused is not None:
            with pytest.raises(refused):
                backend.get_many(batch)
            with pytest.raises(refused):
                backend.delete_many(batch)
            assert {k: backend.get(k) for k in valid} == valid  # nothing deleted
        else:
            expected = {k: v for k in batch if (v := backend.get(k)) is not None}
            assert backend.get_many(batch) == expected
            assert backend.delete_many(batch) == len(expected)
            assert backend.get_many(batch) == {}
        backend.delete_many(list(valid))
