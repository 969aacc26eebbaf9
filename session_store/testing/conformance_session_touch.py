"""The conformance tests of ``touch_session(key, ttl, keep_own)``, the touch a store's sliding
expiry sends over a single backend: it restarts the expiry of a key that holds a session and of
nothing else (an absent key, or a deleted session's marker: a chain's tombstone, an earlier
chain's tombstone stamp, the marker a login's id rotation leaves on the old id), with ``ttl``, or
with ``keep_own`` the TTL the value's frame records. Every backend passes them, sync
(:class:`SessionTouchConformance`, a base of
:class:`~session_store.testing.conformance.BackendConformance`) and async
(:class:`AsyncSessionTouchConformance`), whether it implements ``touch_session`` itself or
inherits the protocol's default.

:func:`touch_session_corpus` is the set of values they store: the markers, values one byte
away from a marker (a prefix, one byte more, another kind byte), frames recording every kind of
TTL field (none, a short one, no expiry, and values no write asks for: 0, negative, NaN, beyond
``MAX_TTL``), and values of ordinary sessions. A backend that judges on its server (Redis's
script) is held to :func:`~session_store.touchrules.touch_decision` on all of them.
"""

from __future__ import annotations

import math
import struct

import pytest

from session_store.aio.backend import AsyncSessionBackend
from session_store.backend import SessionBackend
from session_store.errors import InvalidKeyError
from session_store.ownttl import keeps_own_ttl
from session_store.stamps import KIND_VALUE, MAGIC, tombstone
from session_store.touchrules import HEAD_SPAN, touch_decision
from session_store.ttl import MAX_TTL

__all__ = [
    "AsyncSessionTouchConformance",
    "SessionTouchConformance",
    "expected_touch",
    "touch_session_corpus",
]

#: The TTL every corpus value is stored with, and the one a touch gives (seconds).
STORED, GIVEN = 3600.0, 600.0
_VERSION = bytes(range(1, 13))
_OLD_TOMBSTONE = b"\xa7ST\x02" + bytes(12)


def _framed(payload: bytes, ttl_field: float, kind: int = KIND_VALUE) -> bytes:
    return MAGIC + _VERSION + struct.pack(">Bd", kind, ttl_field) + payload


def touch_session_corpus() -> list[bytes]:
    """The values the conformance tests store (see the module docstring)."""
    retired = tombstone(bytes(12))
    markers = [_OLD_TOMBSTONE, tombstone(_VERSION), _framed(retired, 0.0)]
    near: list[bytes] = []
    for marker in markers:
        near += [marker[:-1], marker + b"x", marker[:1], marker[:4], marker[: len(marker) // 2]]
    near += [
        _framed(retired, 0.0)[:-1] + b"\x01",  # a frame around a tombstone-like value
        _framed(tombstone(_VERSION)[:16] + b"\x01" + bytes(8), 0.0),  # ... around a value frame
        b"\xa7ST\x01" + bytes(12),  # an earlier chain's stamped value
        MAGIC + _VERSION + b"\x03" + bytes(8),  # a kind no frame has
    ]
    own = [30.0, 2.007, 86400.0, MAX_TTL, math.inf, 0.0, -5.0, math.nan, MAX_TTL * 2, -math.inf]
    frames = [_framed(b"\xa7SS\x01session", ttl) for ttl in own]
    frames += [_framed(b"", 30.0), _framed(b"x" * 100, 30.0)]
    plain = [b"", b"\xa7SS\x01" + b"z" * 40, b'{"user": 1}', b"y" * (HEAD_SPAN + 7), bytes(50)]
    return markers + near + frames + plain


def expected_touch(value: bytes, keep_own: bool, records: bool = False) -> tuple[bool, float]:
    """What a touch of ``value`` with ``GIVEN`` must do: touch or not, and the TTL it gives.
    ``records``: the backend records each write's TTL itself (a chain, ``keeps_own_ttl``), so
    with ``keep_own`` a value whose bytes record none keeps ``STORED``, the TTL it was set with."""
    live, chosen = touch_decision(value[:HEAD_SPAN], None, keep_own)
    if chosen is None:
        chosen = STORED if records and keep_own else GIVEN
    return live, chosen


def _check(
    value: bytes, keep_own: bool, touched: bool, left: float | None, records: bool = False
) -> None:
    live, ttl = expected_touch(value, keep_own, records)
    assert touched is live, f"touch_session of {value!r} (keep_own={keep_own}) said {touched}"
    assert left is not None, f"{value!r} is gone"
    if not live:
        assert STORED - 60 < left <= STORED, f"{value!r} (no session) now lives {left} s"
    elif ttl == math.inf:
        assert left == math.inf, f"{value!r} records no expiry, yet lives {left} s"
    else:
        assert ttl - 60 < left <= ttl, f"{value!r} lives {left} s, not {ttl} s"


class SessionTouchConformance:
    """``touch_session`` on a sync backend (module docstring). Expects the ``backend``
    fixture of :class:`~session_store.testing.conformance.BackendConformance`."""

    @pytest.mark.parametrize("keep_own", [False, True])
    def test_touch_session_touches_a_session_only(
        self, backend: SessionBackend, keep_own: bool
    ) -> None:
        for n, value in enumerate(touch_session_corpus()):
            if not expected_touch(value, keep_own)[1] >= 60:
                continue  # a TTL too short to see through a slow machine's call
            key = f"ts{n}"
            backend.set(key, value, ttl=STORED)
            touched = backend.touch_session(key, GIVEN, keep_own=keep_own)
            _check(value, keep_own, touched, backend.ttl(key), keeps_own_ttl(backend))
            assert backend.get(key) == value  # never rewritten
        assert backend.touch_session("absent", GIVEN) is False
        assert backend.touch_session("absent", GIVEN, keep_own=True) is False

    def test_touch_session_checks_its_key(self, backend: SessionBackend) -> None:
        with pytest.raises(InvalidKeyError):
            backend.touch_session("", GIVEN)


@pytest.mark.anyio
class AsyncSessionTouchConformance:
    """``touch_session`` on an async backend (as :class:`SessionTouchConformance`). Expects
    the ``backend`` fixture of
    :class:`~session_store.testing.async_conformance.AsyncBackendConformance`."""

    @pytest.mark.parametrize("keep_own", [False, True])
    async def test_touch_session_touches_a_session_only(
        self, backend: AsyncSessionBackend, keep_own: bool
    ) -> None:
        for n, value in enumerate(touch_session_corpus()):
            if not expected_touch(value, keep_own)[1] >= 60:
                continue
            key = f"ts{n}"
            await backend.set(key, value, ttl=STORED)
            touched = await backend.touch_session(key, GIVEN, keep_own=keep_own)
            _check(value, keep_own, touched, await backend.ttl(key), keeps_own_ttl(backend))
            assert await backend.get(key) == value
        assert await backend.touch_session("absent", GIVEN, keep_own=True) is False
