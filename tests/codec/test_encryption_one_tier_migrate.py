"""Encryption byte format 3 (bound to the backend's key prefix) in a chain whose tiers have
different key prefixes, the README's own deployment shape (``memory:// |
redis://...?prefix=app: | diskcache:///...``, whose default prefix is ``session:``).

The promise (README, "What was encrypted before keeps loading"): such a chain writes format 2,
bound to no prefix, so each tier read alone (a store over it, ``session-store get`` /
``inspect``) opens what the chain holds. docs/cli.md shows migrating one tier of a chain alone
(``session-store migrate diskcache:///var/lib/app/sessions``) as a normal operation.

Found by an attack pass (round 6), on a real redis-server (the suite's fixture) and a real
diskcache directory: ``migrate`` over the disk tier alone rewrote the chain's format-2 copies in
format 3 bound to the *disk* tier's prefix, framed with a newer version (as it must, so the
chain takes it); the chain's next read found the Redis copy older and repaired it with those
bytes; from then on the Redis tier read alone failed with ``CorruptPayloadError: ... stored
under another key, namespace or key prefix``, while the chain itself still opened it. A store
over one tier that framed a write (``update`` over Redis, a save with its own TTL) did the same.

The rule now (the maintainers' decision): a value a store over one backend writes *framed* (the
chain's version frame, :mod:`session_store.stamps`: a chain takes it as a newer copy and may copy
it to any other tier) is encrypted in format 2, bound to no prefix, and ``migrate`` counts a
framed format-2 copy as current, so it does not rewrite it again and again. Format 3 stays for
unframed single-backend values and for a chain whose tiers share one prefix.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import redis

from session_store import AesGcmStage, open_backend
from session_store.keys import Namespace
from session_store.stamps import session_bytes
from tests.codec.encryption_support import encrypted_store as _store
from tests.codec.encryption_support import run_cli as _cli


def test_migrating_one_tier_leaves_every_tier_readable_alone(
    redis_url: str, tmp_path: Path
) -> None:
    """Input: the mixed-prefix chain saves ``alice`` (format 2); ``session-store migrate`` over
    the disk tier alone, first as it is, then with the keys rotated (a new key in front), which
    rewrites the disk's framed copy; a read through the chain then repairs Redis with it. What
    must hold: the first migrate finds the chain's framed format-2 copy current (before the
    decision it would rewrite it in format 3); the rotated one rewrites it in format 2, framed;
    Redis read alone (a store, ``session-store get``) opens what the repair copied there.
    Before: ``CorruptPayloadError`` from the store over Redis alone, the copy in format 3."""
    key = AesGcmStage.generate_key()
    rotated = f"{AesGcmStage.generate_key()},{key}"
    prefix = redis_url.split("prefix=")[1]
    disk = f"diskcache://{quote(str(tmp_path / 'disk'))}"  # default prefix: not Redis's
    chain = f"memory:// | {redis_url} | {disk}"
    with _store(chain, key) as store:
        assert store.codec.encrypted_format == 2  # tiers differ: bound to no prefix
        store.save("alice", {"role": "admin"})
    client = redis.Redis.from_url(redis_url.split("?")[0])
    stored = Namespace(prefix).encode("alice")
    with _store(redis_url, key) as alone:
        assert alone.load("alice") == {"role": "admin"}  # before: every tier opens it
    first = _cli("migrate", disk, "--no-checkpoint", "--json", key=key, home=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout)["current"] == 1  # a chain's framed format 2 is current
    done = _cli("migrate", disk, "--no-checkpoint", "--json", key=rotated, home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["rewritten"] == 1
    with _store(redis_url, rotated) as alone:
        assert alone.load("alice") == {"role": "admin"}  # the migrate alone did not touch Redis
    on_disk = open_backend(disk).get("alice")
    assert on_disk is not None
    for _ in range(50):  # a chain's read: the newer disk copy repairs Redis (unless, on a
        # loaded machine, the read found Redis slow and skipped it: then read again)
        with _store(chain, rotated) as store:
            assert store.load("alice") == {"role": "admin"}
        if client.get(stored) == on_disk:
            break
    raw = client.get(stored)
    assert raw == on_disk, "the chain's read did not repair Redis with the disk's copy"
    assert isinstance(raw, bytes)
    payload = session_bytes(raw)
    assert payload is not None
    shown = _cli("get", redis_url, "alice", "--json", key=rotated, home=tmp_path)
    with _store(redis_url, rotated) as alone:
        assert alone.load("alice") == {"role": "admin"}, f"Redis alone: format {payload[3]}"
    assert shown.returncode == 0, shown.stderr
    assert payload[3] == 2
    again = _cli("migrate", disk, "--no-checkpoint", "--json", key=rotated, home=tmp_path)
    assert json.loads(again.stdout)["current"] == 1  # no loop: nothing rewritten twice


def test_a_session_one_tier_wrote_stays_readable_in_every_tier_alone(
    redis_url: str, tmp_path: Path
) -> None:
    """The same without ``migrate``: a store over the Redis tier alone (what
    ``tests/codec/test_encryption_prefix_binding.py`` shows the chain opening) saves and
    updates ``bob``; a read through the chain copies that newer version to the disk tier, and
    the disk tier read alone (``session-store get diskcache://...``) then fails."""
    key = AesGcmStage.generate_key()
    disk = f"diskcache://{quote(str(tmp_path / 'disk'))}"
    chain = f"memory:// | {redis_url} | {disk}"
    with _store(redis_url, key) as alone:
        alone.save("bob", {"x": 1})
        alone.update("bob", lambda s: {"x": 2})  # framed with a version (issue 17)
    with _store(chain, key) as store:
        assert store.load("bob") == {"x": 2}
    shown = _cli("get", disk, "bob", "--json", key=key, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    with _store(disk, key) as alone:
        assert alone.load("bob") == {"x": 2}
