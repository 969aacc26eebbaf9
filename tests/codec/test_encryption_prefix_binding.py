"""Encryption bound to the backend's key prefix (byte format 3), closing the hole that a
ciphertext copied from tenant-a's ``alice`` to tenant-b's ``alice`` on one Redis opened
(``test_encryption_attacks.py::test_a_ciphertext_moved_to_another_prefix_on_the_same_redis_does_not_open``).

What must hold beside the fix, on a real redis-server of the suite's fixtures and real diskcache
directories:

* what was written before (format 2, bound to no prefix) still opens, also where it was copied
  (the documented consequence), until ``session-store migrate`` rewrites it in format 3, after
  which a copy to another prefix no longer opens;
* a chain binds the prefix its shared tiers share, and each tier read alone (a store over it,
  ``session-store get``) opens what the chain wrote (docs/guarantees.md, "Single-tier
  readers");
* a chain whose tiers have different prefixes writes format 2 (every tier read alone opens
  it) and opens what a store over one of its tiers wrote in format 3;
* a codec bound to no prefix says why it cannot open format 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from session_store import AesGcmStage, Codec, CorruptPayloadError, open_backend
from session_store.keys import Namespace, storage_heads
from session_store.stamps import session_bytes
from tests.codec.encryption_support import encrypted_store as _store
from tests.codec.encryption_support import run_cli as _cli


def _payload(value: object) -> bytes:
    assert isinstance(value, bytes), value
    payload = session_bytes(value)  # a chain's frame read through
    assert payload is not None
    return payload


def test_a_payload_written_before_opens_until_migrate_binds_it_to_its_prefix(
    redis_url: str, tmp_path: Path
) -> None:
    """Input: tenant-a's ``alice`` written as the previous release wrote it (format 2: a codec
    bound to no prefix), and the same bytes copied to tenant-b's ``alice``. What must hold:
    both stores open it (format 2 bound no prefix: the documented consequence); ``session-store
    migrate`` over tenant-a rewrites it in format 3; a copy of the rewritten bytes to tenant-b
    then fails with ``CorruptPayloadError`` while tenant-a still loads it."""
    key = AesGcmStage.generate_key()
    base = redis_url.split("?")[0]
    prefix = redis_url.split("prefix=")[1]
    url_a, url_b = f"{base}?prefix={prefix}tenant-a", f"{base}?prefix={prefix}tenant-b"
    stored_a = Namespace(f"{prefix}tenant-a").encode("alice")
    stored_b = Namespace(f"{prefix}tenant-b").encode("alice")
    before = Codec(encryption=AesGcmStage([key])).encode("alice", {"tenant": "a"})
    assert before[3] == 2
    client = redis.Redis.from_url(base)
    client.set(stored_a, before, ex=3600)
    client.set(stored_b, before, ex=3600)
    with _store(url_a, key) as tenant_a, _store(url_b, key) as tenant_b:
        assert tenant_a.load("alice") == {"tenant": "a"}
        assert tenant_b.load("alice") == {"tenant": "a"}  # until rewritten
    done = _cli("migrate", url_a, "--no-checkpoint", "--json", key=key, home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rewritten"] == 1
    after = _payload(client.get(stored_a))
    assert after[3] == 3
    client.set(stored_b, after, ex=3600)
    with _store(url_a, key) as tenant_a, _store(url_b, key) as tenant_b:
        assert tenant_a.load("alice") == {"tenant": "a"}
        with pytest.raises(CorruptPayloadError, match="key prefix"):
            tenant_b.load("alice")
    again = _cli("migrate", url_a, "--no-checkpoint", "--json", key=key, home=tmp_path)
    assert json.loads(again.stdout)["current"] == 1  # format 3 is current: not rewritten again


def test_a_chain_binds_the_prefix_its_tiers_share_and_each_tier_read_alone_opens_it(
    redis_url: str, tmp_path: Path
) -> None:
    """Input: ``memory:// | redis (prefix P) | diskcache (prefix P)`` saves ``alice``. What must
    hold: the payload is format 3 in both shared tiers; a store over the Redis tier alone, one
    over the disk tier alone and ``session-store get`` over the disk tier open it; copied to
    another prefix of the same Redis it does not open."""
    key = AesGcmStage.generate_key()
    prefix = redis_url.split("prefix=")[1]
    disk = f"diskcache://{quote(str(tmp_path / 'disk'))}?prefix={prefix}"
    chain = f"memory:// | {redis_url} | {disk}"
    with _store(chain, key) as store:
        assert store.codec.storage == (Namespace(prefix).scan_head(),)
        store.save("alice", {"role": "admin"})
    client = redis.Redis.from_url(redis_url.split("?")[0])
    in_redis = _payload(client.get(Namespace(prefix).encode("alice")))
    assert in_redis[3] == 3
    for tier in (redis_url, disk):
        with _store(tier, key) as alone:
            assert alone.load("alice") == {"role": "admin"}, tier
    shown = _cli("get", disk, "alice", "--json", key=key, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["data"] == {"role": "admin"}
    other = f"{prefix}other"
    client.set(Namespace(other).encode("alice"), in_redis)
    elsewhere = _store(f"{redis_url.split('?')[0]}?prefix={other}", key)
    with elsewhere, pytest.raises(CorruptPayloadError):
        elsewhere.load("alice")


def test_a_chain_whose_tiers_have_different_prefixes_writes_what_every_tier_opens(
    redis_url: str, tmp_path: Path
) -> None:
    """Input: ``memory:// | redis (prefix P) | diskcache (default prefix)``, the README's
    deployment shape. What must hold: the chain writes format 2 (bound to no prefix, so each
    tier read alone opens it); a store over the Redis tier alone writes ``bob`` in format 3,
    and the chain opens that too (it reads format 3 bound to any of its tiers' prefixes)."""
    key = AesGcmStage.generate_key()
    prefix = redis_url.split("prefix=")[1]
    disk = f"diskcache://{quote(str(tmp_path / 'disk'))}"
    chain = f"memory:// | {redis_url} | {disk}"
    with _store(chain, key) as store:
        assert len(store.codec.storage) == 2 and store.codec.encrypted_format == 2
        store.save("alice", {"role": "admin"})
    client = redis.Redis.from_url(redis_url.split("?")[0])
    assert _payload(client.get(Namespace(prefix).encode("alice")))[3] == 2
    for tier in (redis_url, disk):
        with _store(tier, key) as alone:
            assert alone.load("alice") == {"role": "admin"}, tier
    with _store(redis_url, key) as alone:
        alone.save("bob", {"role": "user"})
    assert _payload(client.get(Namespace(prefix).encode("bob")))[3] == 3
    with _store(chain, key) as store:
        assert store.load("bob") == {"role": "user"}


def test_a_codec_bound_to_no_prefix_says_why_it_cannot_open_format_3(redis_url: str) -> None:
    """A format-3 payload read by a codec used on its own (no backend): a
    ``CorruptPayloadError`` that says to read it through a store over its backend."""
    key = AesGcmStage.generate_key()
    with _store(redis_url, key) as store:
        store.save("alice", {"role": "admin"})
        payload = _payload(store.backend.get("alice"))
        assert storage_heads(store.backend) == store.codec.storage
    with pytest.raises(CorruptPayloadError, match="through a store over that backend"):
        Codec(encryption=AesGcmStage([key])).decode("alice", payload)
    backend = open_backend(redis_url)
    try:
        bound = Codec(encryption=AesGcmStage([key])).bound_to(storage_heads(backend))
        assert bound.decode("alice", payload).obj == {"role": "admin"}
    finally:
        backend.close()
