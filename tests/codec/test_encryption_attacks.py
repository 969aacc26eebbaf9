"""Encryption at rest (``session_store/codec/encryption.py``) and key
rotation (``rewrite_all``, what ``session-store migrate`` runs), by someone who can write to the
backend but holds no key, and by an operator who gets the keys wrong. The promises (README,
"Encryption at rest" and "An encrypted store refuses plaintext"; docs/guarantees.md, "Key
rotation"): every key decrypts, the first encrypts; a tampered payload, a payload under a key
not configured, plaintext and a ciphertext copied under another key or namespace are
``CorruptPayloadError``; nothing is lost (the stored bytes stay as they are).

Everything runs on a real redis-server of the suite's fixtures, with raw redis-py for what the
attacker writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from session_store import (
    AesGcmStage,
    Codec,
    ConfigurationError,
    CorruptPayloadError,
    SessionMapping,
    SessionStore,
    UnknownSchemaVersionError,
    open_backend,
)
from session_store.keys import Namespace
from session_store.rewrite import rewrite_all

Store = SessionStore[dict[str, Any]]


def _store(url: str, *keys: str, namespace: str = "") -> Store:
    return SessionStore(
        url, dict, codec=Codec(encryption=AesGcmStage(list(keys)), namespace=namespace)
    )


def _raw(redis_url: str) -> tuple[redis.Redis, Namespace]:
    """Raw redis-py on the fixture's server and the namespace of ``redis_url``'s stores."""
    backend = open_backend(redis_url)
    namespace: Namespace = getattr(backend, "namespace")  # noqa: B009  (not in the protocol)
    backend.close()
    return redis.Redis.from_url(redis_url.split("?")[0]), namespace


def _bytes(value: Any) -> bytes:
    assert isinstance(value, bytes), value
    return value


def test_held_rotation_over_three_keys_with_one_retired(redis_url: str) -> None:
    """Sessions under A, B and C; the operator rotates to D with ``D, C, B`` (A retired too
    early). What must hold: C and B sessions are rewritten under D and load unchanged; the A
    session is a reported failure naming its error, its bytes untouched, and it loads again
    once A is configured."""
    key_a, key_b, key_c, key_d = (AesGcmStage.generate_key() for _ in range(4))
    for key, user in ((key_a, "ann"), (key_b, "bob"), (key_c, "cat")):
        with _store(redis_url, key) as store:
            store.save(user, {"user": user}, ttl=3600)
    client, ns = _raw(redis_url)
    ann_before = client.get(ns.encode("ann"))
    with _store(redis_url, key_d, key_c, key_b) as store:
        report = rewrite_all(store)
        assert report.rewritten == 2
        assert [(f.key, f.error) for f in report.failures] == [("ann", "CorruptPayloadError")]
        with pytest.raises(CorruptPayloadError, match="not configured"):
            store.load("ann")
    assert client.get(ns.encode("ann")) == ann_before
    with _store(redis_url, key_d) as only_d:
        assert only_d.load("bob") == {"user": "bob"}
        assert only_d.load("cat") == {"user": "cat"}
        assert 0 < client.pttl(ns.encode("bob")) <= 3600_000  # the TTL was kept
    with _store(redis_url, key_d, key_a) as fixed:
        assert rewrite_all(fixed).rewritten == 1
    with _store(redis_url, key_d) as only_d:
        assert only_d.load("ann") == {"user": "ann"}


def test_held_every_single_byte_change_is_refused_and_nothing_is_lost(redis_url: str) -> None:
    """Each byte of a stored ciphertext flipped in Redis, then a ``load``, an ``update`` and a
    ``SessionMapping`` read: each a typed error (``CorruptPayloadError``; a flipped format or
    stage byte reads as a payload from a newer version: ``UnknownSchemaVersionError``), the
    tampered bytes left as they are, and every truncation likewise."""
    key = AesGcmStage.generate_key()
    store = _store(redis_url, key)
    store.save("alice", {"user": "alice", "role": "user"})
    client, ns = _raw(redis_url)
    raw = client.get(ns.encode("alice"))
    assert isinstance(raw, bytes)
    mapping = SessionMapping(store)
    variants = [
        raw[:i] + bytes([raw[i] ^ mask]) + raw[i + 1 :]
        for i in range(len(raw))
        for mask in (0x01, 0x80)
    ]
    variants += [raw[:n] for n in range(1, len(raw))]
    for bad in variants:
        client.set(ns.encode("alice"), bad)
        for attempt in (
            lambda: store.load("alice"),
            lambda: store.update("alice", lambda s: {**(s or {}), "role": "admin"}),
            lambda: mapping["alice"],
        ):
            with pytest.raises((CorruptPayloadError, UnknownSchemaVersionError)):
                attempt()
        assert client.get(ns.encode("alice")) == bad
    store.close()


def test_held_a_ciphertext_moved_to_another_session_id_does_not_open(redis_url: str) -> None:
    """The attacker copies the admin's ciphertext over their own session id (same store, same
    namespace): refused, through the store, the mapping and an ``update``."""
    key = AesGcmStage.generate_key()
    with _store(redis_url, key) as store:
        store.save("admin", {"role": "admin"})
        store.save("mallory", {"role": "user"})
        client, ns = _raw(redis_url)
        client.set(ns.encode("mallory"), _bytes(client.get(ns.encode("admin"))))
        with pytest.raises(CorruptPayloadError, match="failed authentication"):
            store.load("mallory")
        with pytest.raises(CorruptPayloadError):
            SessionMapping(store)["mallory"]
        with pytest.raises(CorruptPayloadError):
            store.update("mallory", lambda s: s)


def test_held_plaintext_planted_in_an_encrypted_store_is_refused_everywhere(
    redis_url: str,
) -> None:
    """A forged session written in plaintext (a session-store payload without the aes-gcm
    stage, and headerless legacy JSON) is refused by ``load``, ``update``, the mapping and a
    rotation (reported, or for bare JSON left alone as not provably a session: never
    encrypted under the new key)."""
    key = AesGcmStage.generate_key()
    with SessionStore(redis_url, dict, codec=Codec(encryption=None)) as plain:
        plain.save("eve", {"role": "admin"})
    client, ns = _raw(redis_url)
    client.set(ns.encode("mallory"), b'{"role": "admin"}')
    with _store(redis_url, key) as store:
        for user in ("eve", "mallory"):
            with pytest.raises(CorruptPayloadError, match="refuses plaintext"):
                store.load(user)
            with pytest.raises(CorruptPayloadError):
                store.update(user, lambda s: s)
            with pytest.raises(CorruptPayloadError):
                SessionMapping(store)[user]
        report = rewrite_all(store)  # legacy JSON without --legacy: not provably a session
        assert [f.key for f in report.failures] == ["eve"]
        assert report.rewritten == 0
    assert client.get(ns.encode("mallory")) == b'{"role": "admin"}'


def test_a_ciphertext_moved_to_another_prefix_on_the_same_redis_does_not_open(
    redis_url: str,
) -> None:
    """Input: one Redis, ``?prefix=tenant-a`` and ``?prefix=tenant-b`` stores with the same
    key (one deployment, two tenants), default codec namespace; the attacker copies
    tenant-a's ``alice`` over tenant-b's ``alice``. What happened: tenant-b loads tenant-a's
    session (the associated data bound the codec's namespace, ``""`` in both). Now a store
    binds its backend's key prefix too (byte format 3): ``CorruptPayloadError``."""
    key = AesGcmStage.generate_key()
    base = redis_url.split("?")[0]
    url_a, url_b = f"{base}?prefix=tenant-a", f"{base}?prefix=tenant-b"
    with _store(url_a, key) as tenant_a, _store(url_b, key) as tenant_b:
        tenant_a.save("alice", {"tenant": "a", "role": "admin"})
        tenant_b.save("alice", {"tenant": "b", "role": "user"})
        client = redis.Redis.from_url(base)
        client.set(
            Namespace("tenant-b").encode("alice"),
            _bytes(client.get(Namespace("tenant-a").encode("alice"))),
        )
        with pytest.raises(CorruptPayloadError):
            tenant_b.load("alice")


@pytest.mark.parametrize("value", [",", " , ", ",OLD", "NEW,,OLD"])
def test_a_keys_variable_with_an_empty_key_is_refused_not_read_as_fewer_keys(
    value: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The careless operator: ``SESSION_STORE_KEYS=${NEW},${OLD}`` with a secret that was not
    injected gives ``,``, ``,OLD`` or ``NEW,,OLD``. Before: the empty parts were skipped, so
    ``,`` turned encryption off (every new session written in plaintext, no warning) and
    ``,OLD`` encrypted under the old key. Now it is a ``ConfigurationError`` naming the
    position; an empty variable still means unset."""
    new, old = AesGcmStage.generate_key(), AesGcmStage.generate_key()
    monkeypatch.setenv("SESSION_STORE_KEYS", value.replace("NEW", new).replace("OLD", old))
    with pytest.raises(ConfigurationError, match=r"SESSION_STORE_KEYS, key #\d+ is empty"):
        SessionStore(redis_url, dict).save("alice", {"secret": "s3cr3t"})
    client, ns = _raw(redis_url)
    assert client.get(ns.encode("alice")) is None
    monkeypatch.setenv("SESSION_STORE_KEYS", "")
    assert AesGcmStage.from_env() is None


class _StopError(Exception):
    """Raised from ``progress``: the rotation killed after its first batch."""


def test_a_checkpoint_of_another_store_is_refused_not_used_to_skip_sessions(
    redis_url: str, tmp_path: Path
) -> None:
    """The careless operator: a script rotates two tenants' stores (one Redis, prefixes
    ``tenant-a`` and ``tenant-b``, the same user ids) with one fixed ``--checkpoint`` file; the
    first run stops after its first batch (an error, a kill) and the script goes on to the
    second store. Before: the second run took the first store's checkpoint as its own (the
    target named only the prefix walked and the key id), skipped the 5 user ids the first run
    had finished, reported itself complete and deleted the checkpoint: those 5 sessions stayed
    under the old key, lost once it is retired. Now the checkpoint names the store too, and
    is refused (``ConfigurationError``)."""
    old, new = AesGcmStage.generate_key(), AesGcmStage.generate_key()
    base = redis_url.split("?")[0]
    urls = [f"{base}?prefix={redis_url.rsplit('=', 1)[1]}{t}" for t in ("tenant-a", "tenant-b")]
    for url in urls:
        with _store(url, old) as store:
            for n in range(10):
                store.save(f"u{n}", {"n": n})
    checkpoint = tmp_path / "rotation.checkpoint"

    def stop_after_first_batch(done: int, total: int) -> None:
        raise _StopError

    with _store(urls[0], new, old) as tenant_a, pytest.raises(_StopError):
        rewrite_all(tenant_a, checkpoint=checkpoint, batch=5, progress=stop_after_first_batch)
    assert checkpoint.exists()
    with _store(urls[1], new, old) as tenant_b:
        try:
            report = rewrite_all(tenant_b, checkpoint=checkpoint, batch=5)
        except ConfigurationError:
            report = rewrite_all(tenant_b, batch=5)  # what the operator does when told
        assert report.skipped == 0 and report.rewritten == 10, report
    with _store(urls[1], new) as retired:
        assert [retired.load(f"u{n}") for n in range(10)] == [{"n": n} for n in range(10)]
