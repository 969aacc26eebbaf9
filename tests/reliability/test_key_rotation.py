"""Issue 7, item 6 (rotation) and ``session_store.rewrite``: re-encrypt every session, resumably.

End to end on a real redis-server: sessions are written under key A (typed ones, and legacy
headerless JSON as the first host app stored it); a ``rewrite_all`` with keys ``B, A`` runs in a
child process that is killed with SIGKILL part-way; a second run resumes from the checkpoint;
then A is retired and every session loads under B alone, unchanged, with its TTL kept.

The walk's other promises are checked with a Redis backend that lets a "concurrent writer" act
between the walk's read and its compare-and-set: the writer's value always wins, a session deleted
meanwhile stays deleted, and a corrupt session is reported and skipped, not fatal.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from session_store import (
    NO_EXPIRY,
    AesGcmStage,
    Codec,
    ConfigurationError,
    CorruptPayloadError,
    SessionStore,
)
from session_store.backend import VersionToken
from session_store.codec import KEYS_ENV
from session_store.codec.format import parse_header
from session_store.dataroom import EnhancedSessionData
from session_store.keys import Namespace
from session_store.rewrite import RewriteReport, rewrite_all
from session_store.stamps import session_bytes
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer
from tests.reliability.killing import kill_when

KEY_A = base64.urlsafe_b64encode(b"A" * 32).decode()
KEY_B = base64.urlsafe_b64encode(b"B" * 32).decode()
TYPED, LEGACY = 240, 60


def _codec(*keys: str) -> Codec:
    return Codec(encryption=AesGcmStage(list(keys)))


def _key_id(data: Any) -> str:
    assert isinstance(data, bytes)
    payload = session_bytes(data)  # a session saved with a TTL of its own is framed (ownttl)
    assert payload is not None
    header = parse_header(payload)
    return payload[header.payload_offset : header.payload_offset + 4].hex()


def _legacy(i: int) -> dict[str, Any]:
    return {
        "processed_documents": [{"name": f"deck-{i}.pdf", "pages": i % 17}],
        "document_summary": f"summary {i}",
        "analysis_timestamp": "2024-05-01T10:00:00",
    }


_REWRITE = """
    import sys, time
    from pathlib import Path
    from session_store import SessionStore
    from session_store.rewrite import rewrite_all

    def progress(done, total):
        print(done, total, flush=True)
        time.sleep(0.05)  # slow enough to be killed part-way

    with SessionStore(sys.argv[1], access_interval=None) as store:  # keys from the environment
        rewrite_all(
            store, checkpoint=Path(sys.argv[2]), batch=25, progress=progress,
            legacy_schema="dataroom", encrypt_plaintext=True,
        )
    print("finished", flush=True)
"""


def _kill_part_way(url: str, checkpoint: Path, after: int) -> int:
    """Run the walk in a child with keys ``B, A``; SIGKILL it once ``after`` sessions are done."""
    env = {**os.environ, KEYS_ENV: f"{KEY_B},{KEY_A}"}
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_REWRITE), url, str(checkpoint)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    done = 0

    def enough(line: str) -> bool:
        nonlocal done
        assert line.strip() != "finished", "the walk ended before it could be killed"
        done = int(line.split()[0])
        return done >= after

    kill_when(child, enough, within=60)
    return done


@pytest.mark.slow
def test_rotation_end_to_end_with_a_kill_and_a_resume(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    prefix = redis_namespace + "rot:"
    url = redis_server.url_for(prefix=prefix)
    raw = redis_server.client()
    namespace = Namespace(prefix)
    checkpoint = tmp_path / "rewrite.checkpoint"
    try:
        # 1. written under key A: typed sessions (some with a TTL) and legacy JSON
        with SessionStore(url, EnhancedSessionData, codec=_codec(KEY_A)) as old_app:
            originals = {
                f"user-{i}": old_app.save(
                    f"user-{i}",
                    EnhancedSessionData(f"user-{i}", document_summary=f"doc {i}"),
                    ttl=3600 if i % 3 == 0 else NO_EXPIRY,
                )
                for i in range(TYPED)
            }
        for i in range(LEGACY):
            raw.set(namespace.encode(f"legacy-{i}"), orjson.dumps(_legacy(i)))
        total = TYPED + LEGACY
        with (
            SessionStore(url, EnhancedSessionData, codec=_codec(KEY_B)) as new_only,
            pytest.raises(CorruptPayloadError, match="not configured"),
        ):
            new_only.load("user-1")  # control: retiring A now would lose the sessions

        # 2. the walk, killed part-way, then resumed from its checkpoint
        done = _kill_part_way(url, checkpoint, after=100)
        assert checkpoint.exists()
        ids = [_key_id(raw.get(namespace.encode(f"user-{i}")) or b"") for i in range(TYPED)]
        under_b = ids.count(_codec(KEY_B).encryption.key_ids[0])  # type: ignore[union-attr]
        assert 0 < under_b < TYPED, "the kill was not part-way"
        assert ids.count(_codec(KEY_A).encryption.key_ids[0]) == TYPED - under_b  # type: ignore[union-attr]
        seen: list[tuple[int, int]] = []
        rotating: SessionStore[Any]
        with SessionStore(url, codec=_codec(KEY_B, KEY_A), access_interval=None) as rotating:
            report = rewrite_all(
                rotating,
                checkpoint=checkpoint,
                batch=25,
                progress=lambda d, t: seen.append((d, t)),
                legacy_schema="dataroom",
                encrypt_plaintext=True,  # the legacy app's JSON was never encrypted
            )
            assert report.complete and report.failures == []
            assert report.skipped >= done  # resumed: what the first run finished is not redone
            assert report.current <= 25  # at most the batch in flight when it was killed
            assert report.rewritten + report.current + report.skipped == total
            assert seen[-1] == (total, total)
            assert not checkpoint.exists()  # finished: the next run is a fresh, idempotent pass
            again = rewrite_all(
                rotating, checkpoint=checkpoint, legacy_schema="dataroom", encrypt_plaintext=True
            )
            assert (again.rewritten, again.current, again.failed) == (0, total, 0)

        # 3. A retired: everything loads under B alone, unchanged, TTLs kept
        with SessionStore(url, EnhancedSessionData, codec=_codec(KEY_B)) as new_app:
            for key, original in originals.items():
                assert new_app.load(key) == original, key
                left = new_app.backend.ttl(key)
                if int(key.split("-")[1]) % 3 == 0:
                    assert left is not None and 3000 < left <= 3600, key
                else:
                    assert left == float("inf"), key
            for i in range(LEGACY):
                loaded = new_app.load(f"legacy-{i}")
                assert loaded is not None
                assert loaded.processed_documents == _legacy(i)["processed_documents"]
                assert loaded.document_summary == f"summary {i}"
                stored = raw.get(namespace.encode(f"legacy-{i}"))
                assert isinstance(stored, bytes)
                assert not new_app.codec.inspect(stored).legacy  # migrated to the envelope
    finally:
        raw.close()


# -- the walk beside live writers ---------------------------------------------------------------
class Interleaved(RedisBackend):
    """A real Redis backend that runs ``before_set_if[key]()`` once, just before that key's
    compare-and-set: a concurrent writer acting between the walk's read and its write."""

    before_set_if: dict[str, Callable[[], object]]

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        action = self.before_set_if.pop(key, None)
        if action is not None:
            action()
        return super().set_if(key, value, token, ttl)


def test_a_concurrent_writer_is_never_overwritten(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    url = redis_server.url_for(prefix=redis_namespace + "live:")
    old_app = SessionStore(url, dict, codec=_codec(KEY_A), access_interval=None)
    new_app = SessionStore(url, dict, codec=_codec(KEY_B, KEY_A), access_interval=None)
    for i in range(10):
        old_app.save(f"k{i}", {"v": i})
    old_app.backend.set("corrupt", b"\xa7SS\x02\x01\x02 not a payload")  # our header, then junk
    walker = Interleaved.from_url(url)
    walker.before_set_if = {
        "k1": lambda: new_app.save("k1", {"v": "new app wrote this"}),  # already current
        "k2": lambda: old_app.save("k2", {"v": "old app wrote this"}),  # under A: redo it
        "k3": lambda: new_app.delete("k3"),
    }
    walking: SessionStore[Any] = SessionStore(
        walker, codec=_codec(KEY_B, KEY_A), access_interval=None
    )
    try:
        report = rewrite_all(walking, batch=4)
        assert walker.before_set_if == {}  # every interleaving happened
        assert [(f.key, f.error) for f in report.failures] == [("corrupt", "CorruptPayloadError")]
        assert (report.rewritten, report.current, report.vanished) == (8, 1, 1)
        assert report.complete  # a bad session does not stop the walk
        assert new_app.load("k1") == {"v": "new app wrote this"}
        assert new_app.load("k2") == {"v": "old app wrote this"}
        assert new_app.load("k3") is None  # not resurrected
        assert _key_id(walker.get("k2") or b"") == new_app.codec.encryption.key_ids[0]  # type: ignore[union-attr]
        assert walker.get("corrupt") == b"\xa7SS\x02\x01\x02 not a payload"  # left as it was
        retired = SessionStore(url, dict, codec=_codec(KEY_B), access_interval=None)
        assert all(retired.load(f"k{i}") is not None for i in (0, 1, 2, 4, 5, 6, 7, 8, 9))
        retired.close()
    finally:
        walking.close()
        walker.close()
        old_app.close()
        new_app.close()


def test_a_checkpoint_for_another_target_is_refused(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    url = redis_server.url_for(prefix=redis_namespace + "cp:")
    checkpoint = tmp_path / "cp"
    checkpoint.write_text(
        json.dumps({"session-store-rewrite": 1, "target": {"prefix": "", "key_id": "00000000"}})
        + "\n"
    )
    store: SessionStore[Any] = SessionStore(url, codec=_codec(KEY_B), access_interval=None)
    with store:
        store.save("k", {"a": 1})
        with pytest.raises(ConfigurationError, match="another rewrite"):
            rewrite_all(store, checkpoint=checkpoint)
        (tmp_path / "junk").write_text("not a checkpoint")
        with pytest.raises(ConfigurationError, match="not a rewrite checkpoint"):
            rewrite_all(store, checkpoint=tmp_path / "junk")
        with pytest.raises(ConfigurationError, match="batch"):
            rewrite_all(store, batch=0)
        report = rewrite_all(store, checkpoint=tmp_path / "fresh")
        assert isinstance(report, RewriteReport) and report.current == 1
        assert "already current 1" in report.summary()


@pytest.mark.parametrize("kind", ["memory", "diskcache", "chain"])
def test_rotation_on_every_backend(
    kind: str, redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> None:
    redis_url = redis_server.url_for(prefix=redis_namespace + "every:")
    disk_url = f"diskcache://{tmp_path / 'disk'}?prefix=every:"
    url = {
        "memory": "memory://",
        "diskcache": disk_url,
        "chain": f"memory:// | {redis_url} | {disk_url}",
    }[kind]
    old: SessionStore[Any] = SessionStore(url, dict, codec=_codec(KEY_A), access_interval=None)
    with old:
        for i in range(30):
            old.save(f"k{i}", {"i": i}, ttl=600 if i % 2 else NO_EXPIRY)
        old.backend.set("legacy", orjson.dumps({"plain": "dict"}))
        rotating: SessionStore[Any] = SessionStore(
            old.backend,
            dict,
            codec=Codec(encryption=AesGcmStage([KEY_B, KEY_A]), legacy_schema="dict"),
            access_interval=None,
        )
        refused = rewrite_all(rotating, batch=7, legacy_schema="dict")  # a rotation alone
        assert (refused.rewritten, refused.failed) == (30, 1)  # the plaintext is not laundered
        assert [f.key for f in refused.failures] == ["legacy"]
        report = rewrite_all(rotating, batch=7, legacy_schema="dict", encrypt_plaintext=True)
        assert (report.rewritten, report.current, report.failed) == (1, 30, 0)
        again = rewrite_all(rotating, batch=7, legacy_schema="dict")
        assert (again.rewritten, again.current) == (0, 31)
        retired: SessionStore[Any] = SessionStore(
            old.backend,
            dict,
            codec=Codec(encryption=AesGcmStage([KEY_B]), legacy_schema="dict"),
            access_interval=None,
        )
        assert {key: retired.load(key) for key in (f"k{i}" for i in range(30))} == {
            f"k{i}": {"i": i} for i in range(30)
        }
        assert retired.load("legacy") == {"plain": "dict"}
        assert old.backend.ttl("k1") is not None and old.backend.ttl("k1") <= 600  # type: ignore[operator]
        assert old.backend.ttl("k0") == float("inf")
