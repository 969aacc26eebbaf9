"""A session's own TTL survives ``session-store migrate`` (a key rotation) and ``copy``
through a chain: each copy expires with the time it has left, and records the TTL the session
was saved with, so that ``touch`` keeps sliding it by that.

A chain records in every copy's frame the TTL its write asked for, and ``touch(key)`` /
``touch_on_load`` restart the expiry with it (guarantees, ``touch``: "restarts expiry with the
session's **own** TTL"). ``migrate`` rewrites each session with compare-and-set and "the TTL it
has left" (``rewrite.walk.rewrite_one``: ``backend.ttl(key)``); ``copy`` writes each session
with the TTL it has left. A chain's write had one TTL for both the expiry and the record, so
after a rotation every session slid by whatever it had left at that moment (a 24 h session with
5 minutes left slid by 5 minutes from then on; measured: 86384 s and 584 s instead of 86400 s
and 600 s). Now the rewrite goes through the chain's ``set_if_with_own_ttl`` (the own TTL read
from the token's copy) and ``copy`` into a chain through ``set_with_own_ttl`` /
``set_if_with_own_ttl``. Over a single backend the rewrite re-frames a framed session with the
frame's own TTL (held, below).

Real redis-server and diskcache directory; ``migrate`` and ``copy`` run as separate processes,
as an operator runs them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from session_store import SessionStore, open_backend, stamps
from session_store_redis import RedisBackend

OWN_TTL = 600.0
STORE_TTL = 86400.0


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _migrate(url: str, keys: str) -> None:
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_STORE")}
    done = subprocess.run(
        [script, "migrate", url],
        capture_output=True,
        text=True,
        env={**env, "SESSION_STORE_KEYS": keys},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rewritten 2" in done.stdout, done.stdout


def _rotate(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sessions saved under key A (one with the store's TTL, one with its own), then a
    rotation to B: ``migrate`` with ``SESSION_STORE_KEYS=B,A``."""
    old, new = _key(), _key()
    monkeypatch.setenv("SESSION_STORE_KEYS", old)
    store: SessionStore[dict[str, object]] = SessionStore(url, dict, ttl=STORE_TTL)
    try:
        store.save("default", {"user": "ann"})
        store.save("reset", {"user": "bob", "step": "password-reset"}, ttl=OWN_TTL)
    finally:
        store.close()
    _migrate(url, f"{new},{old}")


def test_a_rotation_through_a_chain_keeps_each_sessions_own_ttl(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain_url = f"memory:// | {redis_url} | diskcache://{tmp_path / 'disk'}"
    _rotate(chain_url, monkeypatch)
    raw = RedisBackend.from_url(redis_url)
    chain = open_backend(chain_url)
    try:
        recorded = {}
        for key in ("default", "reset"):
            held = raw.get(key)
            assert held is not None
            recorded[key] = stamps.own_ttl(held)
        left = raw.ttl("reset")  # the rewrite kept the time left, not a fresh OWN_TTL
        assert left is not None and OWN_TTL - 60 < left <= OWN_TTL
        assert chain.get("reset") is not None and chain.get("default") is not None
        for key in ("default", "reset"):
            assert chain.touch(key)
        slides = {key: raw.ttl(key) for key in ("default", "reset")}
        assert recorded == {"default": STORE_TTL, "reset": OWN_TTL}, (recorded, slides)
    finally:
        chain.close()
        raw.close()


def test_held_a_rotation_over_a_single_backend_keeps_each_sessions_own_ttl(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held: over one backend the rewrite re-frames a framed session with its own TTL, and a
    session with the store's TTL stays unframed (the store's TTL is its own)."""
    _rotate(redis_url, monkeypatch)
    store: SessionStore[dict[str, object]] = SessionStore(redis_url, dict, ttl=STORE_TTL)
    try:
        default, reset = store.backend.get("default"), store.backend.get("reset")
        assert default is not None and default[:4] != stamps.MAGIC
        assert reset is not None and stamps.own_ttl(reset) == OWN_TTL
        assert store.touch("reset") and store.touch("default")
        left = store.backend.ttl("reset")
        assert left is not None and OWN_TTL - 60 < left <= OWN_TTL
    finally:
        store.close()


def _cli(*args: str) -> str:
    script = shutil.which("session-store", path=str(Path(sys.executable).parent))
    assert script is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_STORE")}
    done = subprocess.run(
        [script, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("skip_existing", [False, True])
def test_a_copy_into_a_chain_keeps_each_sessions_own_ttl(
    redis_url: str, tmp_path: Path, skip_existing: bool
) -> None:
    """Failed before: the chain destination recorded the time left as the session's own TTL
    (``{'reset': 599.9...} == {'reset': 600.0}``)."""
    store: SessionStore[dict[str, object]] = SessionStore(redis_url, dict, ttl=STORE_TTL)
    try:
        store.save("reset", {"user": "bob"}, ttl=OWN_TTL)
    finally:
        store.close()
    dst_redis = f"{redis_url}?prefix=dst:"
    dst = f"memory:// | {dst_redis} | diskcache://{tmp_path / 'disk'}"
    extra = ["--skip-existing"] if skip_existing else []
    assert "copied 1" in _cli("copy", redis_url, dst, *extra)
    raw = RedisBackend.from_url(dst_redis)
    chain = open_backend(dst)
    try:
        held = raw.get("reset")
        assert held is not None
        assert {"reset": stamps.own_ttl(held)} == {"reset": OWN_TTL}
        left = raw.ttl("reset")
        assert left is not None and OWN_TTL - 60 < left <= OWN_TTL
        assert chain.touch("reset")
        slid = raw.ttl("reset")
        assert slid is not None and OWN_TTL - 60 < slid <= OWN_TTL
    finally:
        chain.close()
        raw.close()
