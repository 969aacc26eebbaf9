"""Which encryption byte format a store writes where a chain may copy it (the rule of
``test_encryption_one_tier_migrate.py``): a value a store over one backend writes *framed* (the
chain's version frame, :mod:`session_store.stamps`) binds no key prefix (format 2), so whichever
tier a chain copies it to opens it read alone; an unframed value binds the backend's prefix
(format 3), so a copy moved to another prefix of the same store does not open; a chain whose
tiers share one prefix keeps writing format 3; ``migrate`` counts a framed format-2 copy as
current, and through a chain whose tiers' prefixes differ rewrites a copy bound to one tier's
prefix in format 2. All on a real redis-server (the suite's fixture) and real diskcache
directories; the console script is the real one.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from session_store import (
    AesGcmStage,
    AsyncSessionStore,
    Codec,
    CorruptPayloadError,
    SessionStore,
    open_backend,
)
from session_store.keys import Namespace
from session_store.rewrite import rewrite_all
from session_store.stamps import clock, frame, session_bytes
from tests.codec.encryption_support import encrypted_store as _store
from tests.codec.encryption_support import run_cli as _cli

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
GOLDEN_KEY = "Z29sZGVuLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0zMiE="  # tests/golden/make_golden.py


def _format(value: object) -> int:
    """The encryption byte format of a stored copy (its chain frame read through)."""
    assert isinstance(value, bytes), value
    payload = session_bytes(value)
    assert payload is not None
    return payload[3]


def _framed(value: object) -> bool:
    assert isinstance(value, bytes), value
    return session_bytes(value) is not value


def test_a_store_over_one_tier_of_a_same_prefix_chain_frames_in_format_2(
    redis_url: str, tmp_path: Path
) -> None:
    """Input: ``memory:// | redis (prefix P) | diskcache (prefix P)``; the chain saves ``alice``;
    a store over the Redis tier alone saves ``bob`` with the store's TTL, updates it, and saves
    ``carol`` with a TTL of its own. What must hold: the chain keeps writing format 3 (its tiers
    share P); the single-tier store's unframed save is format 3, its framed writes (``update``
    over Redis, a save with its own TTL) format 2; after a chain's read copies them to the disk
    tier, each tier read alone opens every session; ``migrate`` over the Redis tier alone finds
    all three current; through the chain it rewrites the two format-2 copies in the chain's
    format 3, and a second pass finds all current. Before: ``bob`` and ``carol`` format 3 (it
    opened here only because both tiers share the prefix)."""
    key = AesGcmStage.generate_key()
    prefix = redis_url.split("prefix=")[1]
    disk = f"diskcache://{quote(str(tmp_path / 'disk'))}?prefix={prefix}"
    chain = f"memory:// | {redis_url} | {disk}"
    client = redis.Redis.from_url(redis_url.split("?")[0])
    with _store(chain, key) as store:
        assert store.codec.encrypted_format == 3
        store.save("alice", {"who": "alice"})
    with _store(redis_url, key) as alone:
        alone.save("bob", {"who": "bob"})
        assert not _framed(client.get(Namespace(prefix).encode("bob")))
        assert _format(client.get(Namespace(prefix).encode("bob"))) == 3  # unframed: bound
        alone.update("bob", lambda s: {"who": "bob", "n": 1})
        alone.save("carol", {"who": "carol"}, ttl=600)
    for name, expected in (("alice", 3), ("bob", 2), ("carol", 2)):
        raw = client.get(Namespace(prefix).encode(name))
        assert _framed(raw) and _format(raw) == expected, name
    with _store(chain, key) as store:
        for name in ("alice", "bob", "carol"):
            assert store.load(name) is not None  # copies the newer versions to the disk tier
    for tier in (redis_url, disk):
        with _store(tier, key) as alone:
            assert alone.load("bob") == {"who": "bob", "n": 1}, tier
            assert alone.load("carol") == {"who": "carol"}, tier
            assert alone.load("alice") == {"who": "alice"}, tier
    for url, up_to_date in ((redis_url, True), (chain, False)):  # as migrate judges it
        shown = _cli("inspect", url, "bob", "--json", key=key, home=tmp_path)
        assert json.loads(shown.stdout)["up_to_date"] is up_to_date, shown.stdout + shown.stderr
    one = _cli("migrate", redis_url, "--no-checkpoint", "--json", key=key, home=tmp_path)
    assert json.loads(one.stdout)["current"] == 3, one.stdout + one.stderr
    whole = _cli("migrate", chain, "--no-checkpoint", "--json", key=key, home=tmp_path)
    assert json.loads(whole.stdout)["rewritten"] == 2, whole.stdout + whole.stderr
    assert _format(client.get(Namespace(prefix).encode("bob"))) == 3
    again = _cli("migrate", chain, "--no-checkpoint", "--json", key=key, home=tmp_path)
    assert json.loads(again.stdout)["current"] == 3, again.stdout + again.stderr


def test_a_migrate_through_a_mixed_prefix_chain_rewrites_copies_bound_to_one_tier(
    redis_url: str, tmp_path: Path
) -> None:
    """Input: the README's chain shape (Redis prefix P, disk default prefix); a store over the
    disk tier alone saves ``alice`` with the store's TTL (unframed, so format 3 bound to the
    disk's prefix: that stays), and a chain's read copies it to Redis, where Redis read alone
    cannot open it (the documented limit of unframed single-tier writes, and what an older
    release's one-tier migrate left); the chain saves ``bob``. What must hold:
    ``session-store migrate`` through the chain rewrites ``alice`` in format 2 (a copy bound to
    one tier's prefix is not current for a chain bound to none) and counts ``bob`` current;
    every tier alone then opens both; a second pass rewrites nothing."""
    key = AesGcmStage.generate_key()
    prefix = redis_url.split("prefix=")[1]
    disk = f"diskcache://{quote(str(tmp_path / 'disk'))}"
    chain = f"memory:// | {redis_url} | {disk}"
    client = redis.Redis.from_url(redis_url.split("?")[0])
    with _store(disk, key) as alone:
        alone.save("alice", {"who": "alice"})
    with _store(chain, key) as store:
        assert store.load("alice") == {"who": "alice"}  # copied to Redis, still bound to disk's
        store.save("bob", {"who": "bob"})
    assert _format(client.get(Namespace(prefix).encode("alice"))) == 3
    with _store(redis_url, key) as alone, pytest.raises(CorruptPayloadError, match="prefix"):
        alone.load("alice")
    done = _cli("migrate", chain, "--no-checkpoint", "--json", key=key, home=tmp_path)
    report = json.loads(done.stdout)
    assert (report["rewritten"], report["current"]) == (1, 1), done.stdout + done.stderr
    for tier in (redis_url, disk):
        with _store(tier, key) as alone:
            assert alone.load("alice") == {"who": "alice"}, tier
            assert alone.load("bob") == {"who": "bob"}, tier
    assert _format(client.get(Namespace(prefix).encode("alice"))) == 2
    again = _cli("migrate", chain, "--no-checkpoint", "--json", key=key, home=tmp_path)
    assert json.loads(again.stdout)["current"] == 2, again.stdout + again.stderr


def test_a_format_3_value_copied_to_another_prefix_still_fails(redis_url: str) -> None:
    """Input: a store over tenant-a's prefix of one Redis saves ``alice`` with the store's TTL
    (unframed) and ``bob`` through ``update`` (framed); both copied byte for byte under
    tenant-b's prefix. What must hold: ``alice`` is format 3 and does not open at tenant-b
    (what format 3 protects); ``bob`` is format 2 and opens there (the documented price of a
    framed write: bound to the codec namespace and the key, not the prefix)."""
    key = AesGcmStage.generate_key()
    base = redis_url.split("?")[0]
    prefix = redis_url.split("prefix=")[1]
    client = redis.Redis.from_url(base)
    a, b = Namespace(f"{prefix}tenant-a"), Namespace(f"{prefix}tenant-b")
    with _store(f"{base}?prefix={prefix}tenant-a", key) as tenant_a:
        tenant_a.save("alice", {"tenant": "a"})
        tenant_a.update("bob", lambda s: {"tenant": "a"})
    for name in ("alice", "bob"):
        value = client.get(a.encode(name))
        assert isinstance(value, bytes)
        client.set(b.encode(name), value, ex=600)
    assert _format(client.get(a.encode("alice"))) == 3
    assert _format(client.get(a.encode("bob"))) == 2
    with _store(f"{base}?prefix={prefix}tenant-b", key) as tenant_b:
        with pytest.raises(CorruptPayloadError, match="key prefix"):
            tenant_b.load("alice")
        assert tenant_b.load("bob") == {"tenant": "a"}


def test_the_async_store_frames_in_format_2_too(redis_url: str) -> None:
    """The async store shares the rules: over Redis alone, a save with the store's TTL is
    format 3, ``update`` and a save with a TTL of its own (both framed) format 2."""
    key = AesGcmStage.generate_key()
    prefix = redis_url.split("prefix=")[1]
    client = redis.Redis.from_url(redis_url.split("?")[0])

    async def main() -> None:
        codec = Codec(encryption=AesGcmStage([key]))
        store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(redis_url, dict, codec=codec)
        try:
            await store.save("alice", {"n": 0})
            await store.save("carol", {"n": 0}, ttl=600)
            await store.save_many({"dave": {"n": 0}}, ttl=600)
            await store.update("bob", lambda s: {"n": 1})
        finally:
            await store.aclose()

    asyncio.run(main())
    formats = {n: _format(client.get(Namespace(prefix).encode(n))) for n in ("alice", "bob")}
    formats |= {n: _format(client.get(Namespace(prefix).encode(n))) for n in ("carol", "dave")}
    assert formats == {"alice": 3, "bob": 2, "carol": 2, "dave": 2}


@pytest.mark.parametrize("name", ["aesgcm", "aesgcm_ad2", "aesgcm_ad3", "zstd_aesgcm_ad3"])
@pytest.mark.parametrize("framed", [False, True], ids=["unframed", "framed"])
def test_golden_payloads_in_one_tier_load_and_migrate_to_the_rule(
    tmp_path: Path, name: str, framed: bool
) -> None:
    """Input: a golden payload of schema version 2 (byte format 1, 2 or 3, the latter bound to
    the prefix ``golden``), stored as it is or inside a chain's frame in a diskcache tier with
    that prefix. What must hold: a store over the tier loads it, before and after
    ``rewrite_all``; the rewrite leaves what the rule calls current (unframed: format 3;
    framed: format 2 or 3) and rewrites the rest (unframed into format 3, framed into format
    2, framed again); a second pass rewrites nothing."""
    payload = (GOLDEN / f"dataroom_v2_{name}.bin").read_bytes()
    expected = json.loads((GOLDEN / f"dataroom_v2_{name}.expected.json").read_text())
    url = f"diskcache://{quote(str(tmp_path / 'disk'))}?prefix=golden"
    backend = open_backend(url)
    backend.set("U000GOLDEN", frame(payload, clock.now(), None) if framed else payload, 600)
    codec = Codec(encryption=AesGcmStage([GOLDEN_KEY]), namespace="golden:")
    store: SessionStore[Any] = SessionStore(backend, codec=codec)
    with store:
        assert store.codec.to_data(store.load("U000GOLDEN")) == expected
        report = rewrite_all(store)
        before = payload[3]
        current = before == 3 or (framed and before == 2)
        assert (report.rewritten, report.current) == ((0, 1) if current else (1, 0))
        stored = backend.get("U000GOLDEN")
        assert _framed(stored) == framed
        assert _format(stored) == (before if current else 2 if framed else 3)
        assert store.codec.to_data(store.load("U000GOLDEN")) == expected
        assert rewrite_all(store).current == 1
    backend.close()
