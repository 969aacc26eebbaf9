"""The chain's version frames, attacked (``session_store.stamps``) by whoever can write
one tier's bytes: a hostile operator with access to the cache directory or to Redis, or a
corrupted disk. Frames are not authenticated, so anyone who can write a tier can write one.

Each scenario runs in a child interpreter: the hybrid logical clock is one per process
(``stamps.clock``) and a poisoned one would poison the rest of the test run too. The tier is a
real diskcache directory; the planted bytes go in through the single-tier backend, the way any
program with the directory's permissions could put them there.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from session_store import open_backend, stamps
from session_store.errors import SessionStoreError
from session_store.ttl import MAX_TTL

_CHILD = textwrap.dedent(
    """
    import json, struct, sys
    from session_store import SessionStore, open_backend, stamps
    from session_store.errors import SessionStoreError

    directory, clock_hex, key = sys.argv[1], sys.argv[2], sys.argv[3]
    forged = (
        stamps.MAGIC + bytes.fromhex(clock_hex) + b"\\0\\0\\0\\1"
        + struct.pack(">Bd", stamps.KIND_VALUE, 0.0) + b"planted"
    )
    open_backend(f"diskcache://{directory}").set("planted", forged)
    chain = open_backend(f"memory:// | diskcache://{directory}")
    report = {"read": chain.get("planted").decode()}

    def attempt(name, call):
        try:
            call()
            report[name] = "ok"
        except SessionStoreError as exc:
            report[name] = "typed: " + type(exc).__name__
        except Exception as exc:  # what the promise rules out
            report[name] = "untyped: " + type(exc).__name__ + ": " + str(exc)

    attempt("save", lambda: chain.set(key, b"v"))
    attempt("delete", lambda: chain.delete(key))
    store = SessionStore(chain, dict)
    attempt("store_save", lambda: store.save(key, {"n": 1}))
    print(json.dumps(report))
    """
)


def _run(tmp_path: Path, clock: int, key: str) -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "disk"), clock.to_bytes(8, "big").hex(), key],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _no_untyped(report: dict[str, str]) -> list[str]:
    return [f"{name}: {outcome}" for name, outcome in report.items() if "untyped" in outcome]


def test_a_planted_far_future_version_does_not_break_writes_of_other_keys(tmp_path: Path) -> None:
    report = _run(tmp_path, 2**64 - 1, key="other")
    assert report["read"] == "planted"
    assert report == {"read": "planted", "save": "ok", "delete": "ok", "store_save": "ok"}


def test_writes_over_a_planted_maximal_version_fail_typed(tmp_path: Path) -> None:
    report = _run(tmp_path, 2**64 - 1, key="planted")
    assert _no_untyped(report) == []


def test_a_planted_version_far_ahead_but_below_the_maximum_keeps_writes_working(
    tmp_path: Path,
) -> None:
    """What held: a frame from the year ~10,000 (a clock field of 2**63: a flipped top bit, or
    a host whose clock ran wild) is read, and writes of it and of other keys still land (the
    chain orders them after it by clock plus one). The clock jumps ahead for good, which is the
    hybrid clock's rule, and is harmless until the field is exhausted (the tests above)."""
    for key in ("planted", "other"):
        report = _run(tmp_path / key, 2**63, key=key)
        assert report == {"read": "planted", "save": "ok", "delete": "ok", "store_save": "ok"}


@pytest.mark.parametrize("ttl", [float("-inf"), -1.0, 1e300], ids=["-inf", "-1", "1e300"])
def test_a_planted_frame_ttl_is_no_ttl_a_tier_is_given(
    redis_url: str, tmp_path: Path, ttl: float
) -> None:
    """A frame's TTL field that no write can have asked for (-inf, -1, 1e300: planted or
    corrupted) is read as unknown, so ``touch`` keeping "the session's own TTL" gives the
    tiers their default instead. Before the fix (``stamps.parse`` took any non-zero, non-NaN
    double): -inf was a bare OverflowError from the Redis tier, -1 turned the touch into a
    delete (True, and the session gone), 1e300 was stored as a TTL beyond ``MAX_TTL``."""
    disk = f"diskcache://{tmp_path / 'disk'}"
    raw = open_backend(disk)
    raw.set("k", stamps.MAGIC + stamps.clock.now() + struct.pack(">Bd", 1, ttl) + b"payload")
    chain = open_backend(f"memory:// | {redis_url} | {disk}")
    redis_tier = open_backend(redis_url)
    try:
        try:
            touched: object = chain.touch("k")
        except SessionStoreError as exc:  # typed: acceptable
            touched = exc
        except Exception as exc:  # what the promise rules out
            pytest.fail(f"untyped {type(exc).__name__}: {exc}")
        assert touched is True, touched
        assert chain.get("k") == b"payload", "the touch deleted the session"
        for left in (raw.ttl("k"), redis_tier.ttl("k")):
            assert left is None or left == float("inf") or 0 < left <= MAX_TTL, left
    finally:
        for closing in (chain, raw, redis_tier):
            closing.close()
