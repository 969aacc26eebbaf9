"""The defaults of ``touch_session`` for backends that do not implement it (third-party ones): the
protocol's steps (read, judge, then ``touch_if`` on a head that cannot have become a marker, else
``set_if`` on the exact bytes read), ``BackendBase``'s per ``cas`` mode, and the guard they rest
on (:func:`session_store.touchrules.touch_guard`). Each racing write is forced between the read and
the touch by the backend itself, so the interleaving is certain, not likely."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st

from session_store.backend import Versioned
from session_store.backend_base import CasMode
from session_store.memory import MemoryBackend
from session_store.plugin import BackendBase, Scope, SessionBackend, VersionToken
from session_store.stamps import frame, tombstone
from session_store.testing.conformance_session_touch import touch_session_corpus
from session_store.touchrules import HEAD_SPAN, touch_decision, touch_guard
from session_store.websession.steps import RETIRED

MARKER = tombstone(bytes(range(12)))


class RacedMemory(MemoryBackend):
    """A memory backend seen through the protocol's defaults only (``touch_session``,
    ``touch_if``), whose ``get`` / ``get_versioned`` let one scripted write land right after
    the read, as another process's would."""

    touch_session = SessionBackend.touch_session  # the protocol's defaults
    touch_if = SessionBackend.touch_if

    def __init__(self) -> None:
        super().__init__()
        self.after_read: list[tuple[bytes, float]] = []

    def _race(self, key: str) -> None:
        if self.after_read:
            value, ttl = self.after_read.pop(0)
            self.set(key, value, ttl)

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        self._race(key)
        return value

    def get_versioned(self, key: str) -> Versioned | None:
        read = super().get_versioned(key)
        self._race(key)
        return read


def test_the_default_never_touches_a_marker_written_after_its_read() -> None:
    """The session is read and judged live; a delete's tombstone lands before the touch: the
    touch must find it (``set_if`` against the token read fails), read again, and leave it."""
    backend = RacedMemory()
    backend.set("k", b"\xa7SS\x01session", 3600)
    backend.after_read.append((MARKER, 3600))
    assert backend.touch_session("k", 5) is False
    left = backend.ttl("k")
    assert left is not None and left > 3500, f"the tombstone now lives {left} s"


class GuardedMemory(RacedMemory):
    """As :class:`RacedMemory`, with the memory backend's own atomic ``touch_if``: the default
    then guards the touch with the value's head."""

    touch_if = MemoryBackend.touch_if


def test_the_guarded_default_never_touches_a_marker_written_after_its_read() -> None:
    backend = GuardedMemory()
    backend.set("k", b"\xa7SS\x01" + b"s" * 100, 3600)
    backend.after_read.append((RETIRED, 3600))
    assert backend.touch_session("k", 5) is False
    left = backend.ttl("k")
    assert left is not None and left > 3500, f"the retired id now lives {left} s"


def test_the_default_keeps_the_own_ttl_of_the_value_it_touches() -> None:
    """A save with another own TTL lands after the read: the touch applies that one."""
    backend = GuardedMemory()
    backend.set("k", frame(b"\xa7SS\x01old", bytes(12), 30.0), 3600)
    backend.after_read.append((frame(b"\xa7SS\x01new", bytes(range(12)), 900.0), 900))
    assert backend.touch_session("k", 86400, keep_own=True) is True
    left = backend.ttl("k")
    assert left is not None and 800 < left <= 900, f"the new session lives {left} s"


class NoCas(BackendBase):
    """A third-party backend without compare-and-set nor a conditional touch."""

    scope = Scope.HOST
    cas: ClassVar[CasMode] = "none"

    def __init__(self) -> None:
        super().__init__(prefix="n:")
        self.data: dict[str, tuple[bytes, float]] = {}

    def _get(self, skey: str) -> bytes | None:
        entry = self.data.get(skey)
        return None if entry is None or entry[1] <= time.monotonic() else entry[0]

    def _set(self, skey: str, value: bytes, ttl: float | None) -> None:
        self.data[skey] = (value, time.monotonic() + (math.inf if ttl is None else ttl))

    def _delete(self, skey: str) -> bool:
        return self.data.pop(skey, None) is not None

    def _touch(self, skey: str, ttl: float | None) -> bool:
        value = self._get(skey)
        if value is not None:
            self._set(skey, value, ttl)
        return value is not None

    def _ttl(self, skey: str) -> float | None:
        entry = self.data.get(skey)
        return None if entry is None else entry[1] - time.monotonic()

    def _scan(self, head: str) -> Iterator[str]:
        return iter([k for k in self.data if k.startswith(head)])


class NativeCas(NoCas):
    """The same with compare-and-set of its own (digest tokens), and still no ``_touch_if``."""

    cas: ClassVar[CasMode] = "native"

    def _set_if(
        self, skey: str, value: bytes, token: VersionToken | None, ttl: float | None
    ) -> bool:
        current = self._get_versioned(skey)
        if (None if current is None else current.token) != token:
            return False
        self._set(skey, value, ttl)
        return True


def test_base_class_backends_without_a_hook_of_their_own_touch_sessions_only() -> None:
    """``cas = "none"`` (judged and touched in two steps) and ``"native"`` (compare-and-set of
    the bytes read) both refuse the markers and keep a frame's own TTL."""
    for backend in (NoCas(), NativeCas()):
        backend.set("m", MARKER, 3600)
        backend.set("r", RETIRED, 60)
        backend.set("s", frame(b"\xa7SS\x01x", bytes(12), 30.0), 3600)
        assert backend.touch_session("m", 5) is False
        assert backend.touch_session("r", 600) is False
        assert backend.touch_session("s", 600, keep_own=True) is True
        left = {key: backend.ttl(key) for key in "mrs"}
        assert left["m"] and left["m"] > 3500 and left["r"] and 50 < left["r"] <= 60, left
        assert left["s"] and 20 < left["s"] <= 30, left
        assert backend.touch_session("absent", 5) is False


_CORPUS = touch_session_corpus()


@given(st.sampled_from(_CORPUS) | st.binary(max_size=70), st.binary(max_size=8), st.booleans())
def test_a_value_beginning_with_the_guard_is_judged_as_the_one_read(
    read: bytes, more: bytes, keep_own: bool
) -> None:
    """Whatever is stored when the touch runs, if it begins with the guard of the session
    read, the decision on it is the decision on the session read (a session, the same TTL)."""
    guard = touch_guard(read)
    decided = touch_decision(read[:HEAD_SPAN], 600.0, keep_own)
    if guard is None or not decided[0]:
        return  # too short to tell (compare-and-set on the exact bytes), or never touched
    now = guard + more
    assert touch_decision(now[:HEAD_SPAN], 600.0, keep_own) == decided


def test_the_guard_refuses_exactly_the_proper_prefixes_of_a_markers_shape() -> None:
    for marker in (MARKER, RETIRED, b"\xa7ST\x02" + bytes(12)):
        for cut in range(len(marker)):
            assert touch_guard(marker[:cut]) is None, (marker, cut)
        assert touch_guard(marker) is not None  # a marker itself: judged, never touched
    assert touch_guard(b"\xa7SS\x01short") == b"\xa7SS\x01short"
    assert touch_guard(b"y" * 80) == b"y" * HEAD_SPAN
