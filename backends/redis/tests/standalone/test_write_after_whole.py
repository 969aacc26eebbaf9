"""A chain's save reaches Redis in one call (save12c): the backend's trusted calls offer
``write_after(key, data, ttl)``, which ``session_store.tiered.writes.bound`` hands the chain
instead of ``set_after`` through ``write_after``'s three calls and keyword arguments. It must
store and return what that path does: the framed bytes stored (``data``, or ``data`` with the
stored version's clock plus one where Redis held one at least as new), and count the write;
a subclass that overrides ``set_after`` is still called by the chain. ``set_after`` itself now
goes through the same code for a chain's frame, and must still answer the stored version.
Both paths run here side by side on one redis-server, staged and not (no expiry: the
one-script text)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from session_store import stamps
from session_store.backend_base import trusted
from session_store.tiered import writes
from session_store_redis import RedisBackend
from session_store_redis.testing import RedisServer

KW = {
    "head": len(stamps.MAGIC),
    "start": stamps.VERSION_START,
    "end": stamps.VERSION_END,
    "clock_end": stamps.VERSION_START + 8,
}


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


def _framed(clock: int, payload: bytes = b"p" * 300) -> bytes:
    return stamps.frame(payload, clock.to_bytes(8, "big") + b"node", 60)


@pytest.mark.parametrize("ttl", [60.0, None], ids=["staged", "one-script"])
def test_write_after_stores_and_returns_what_set_after_does(
    server: RedisServer, ttl: float | None
) -> None:
    url = server.url_for(prefix=f"whole-{ttl}:")
    with RedisBackend.from_url(url) as one, RedisBackend.from_url(url) as other:
        whole = trusted(one).write_after  # type: ignore[attr-defined]
        assert writes.bound("write_after", one) == whole
        for step, clock in enumerate([5, 9, 9, 3, 10**12, 7]):  # ahead, equal and behind
            data = _framed(clock, b"v%d" % step)
            by_whole = whole("w", data, ttl)
            by_parts = writes._after_by(other.set_after, "p", data, ttl)
            assert by_whole == by_parts, step
            assert one.get("w") == by_whole and other.get("p") == by_parts, step
            assert stamps.unframe(by_whole) == b"v%d" % step
        assert one.counters.get("writes") == other.counters.get("writes") == 6


def test_set_after_answers_the_version_stored(server: RedisServer) -> None:
    with RedisBackend.from_url(server.url_for(prefix="whole-version:")) as backend:
        assert backend.set_after("k", _framed(50), 60, **KW) == _framed(50)[4:16]
        behind = backend.set_after("k", _framed(40), 60, **KW)  # lands after 50: 51
        assert behind == (51).to_bytes(8, "big") + b"node"
        assert stamps.version_of(backend.get("k") or b"") == behind
        short = b"\xa7SF\x01abc"  # shorter than a version: the one-script text, as before
        assert backend.set_after("s", short, 60, **KW) == b"abc"


class _Overridden(RedisBackend):
    calls = 0

    def set_after(self, *args: Any, **kwargs: Any) -> bytes:
        type(self).calls += 1
        return super().set_after(*args, **kwargs)


def test_a_subclass_overriding_set_after_is_called(server: RedisServer) -> None:
    with _Overridden.from_url(server.url_for(prefix="whole-sub:")) as backend:
        assert not hasattr(trusted(backend), "write_after")
        write = writes.bound("write_after", backend)
        assert write("k", _framed(8), 60) == _framed(8)
        assert _Overridden.calls == 1


def test_px_from_its_table_is_ttl_to_ms(server: RedisServer) -> None:
    """``_px`` (every write's) answers from a table made on first use, cleared when full:
    each TTL still gets its own milliseconds, no expiry none, the default the default's."""
    from session_store import NO_EXPIRY
    from session_store.ttl import normalize_ttl, ttl_to_ms
    from session_store_redis import base

    with RedisBackend.from_url(server.url_for(prefix="whole-px:"), default_ttl=7) as backend:
        cleared = False
        for n in range(1, 2500):
            ttl = normalize_ttl(n / 997)
            assert ttl is not None
            before = len(base._PX)
            assert backend._px(ttl) == backend._px(ttl) == ttl_to_ms(ttl), n
            cleared = cleared or len(base._PX) < before
        assert cleared
        assert backend._px(NO_EXPIRY) is None and backend._px(NO_EXPIRY) is None
        assert backend._px(None) == 7000
