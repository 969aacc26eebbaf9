"""The async backend conformance suite, as a pytest base class: the sync kit's contract
(:mod:`session_store.testing.conformance`) through :class:`~session_store.aio.AsyncSessionBackend`,
plus what only the async protocol has (async ``scan``, ``aclose``, concurrent tasks, a
cancelled write).

A subclass provides ``backend_factory``: ``factory(prefix: str = "t:")`` returning an async
backend over storage fresh for each test and shared between calls within it. Each test runs on
an event loop of its own (anyio's pytest plugin), once on plain asyncio and once on uvloop
where it is installed::

    class TestMyAsyncBackend(AsyncBackendConformance):
        @pytest.fixture
        def backend_factory(self, tmp_path):
            return lambda prefix="t:": MyAsyncBackend(tmp_path, prefix=prefix)
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from session_store.aio.backend import AsyncSessionBackend
from session_store.errors import ConfigurationError, InvalidKeyError, SerializationError
from session_store.testing.conformance import short_lived
from session_store.testing.conformance_session_delete import AsyncSessionDeleteConformance
from session_store.testing.conformance_session_touch import AsyncSessionTouchConformance
from session_store.testing.conformance_touch import AsyncConditionalTouchConformance
from session_store.testing.hostile import HOSTILE_KEYS, HOSTILE_PREFIXES, INVALID_KEYS

__all__ = ["EVENT_LOOPS", "AsyncBackendConformance"]

AsyncBackendFactory = Callable[..., AsyncSessionBackend]

#: The event loops every async test runs on: asyncio, and uvloop where installed.
EVENT_LOOPS: list[Any] = [pytest.param("asyncio", id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    EVENT_LOOPS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


async def _keys(backend: AsyncSessionBackend, prefix: str = "") -> list[str]:
    return sorted([key async for key in backend.scan(prefix)])


#: What makes a cancelled ``set_many`` whole over a worker thread (CONTRIBUTING.md, "2b").
_WHOLE = (
    ": some keys hold the old values, some the new. A cancelled call a worker thread already"
    " runs finishes there (ThreadedBackend), so the sync backend's set_many must be one atomic"
    " step: on BackendBase, override _set_many (its default loops over _set)"
)


@pytest.mark.anyio
class AsyncBackendConformance(
    AsyncConditionalTouchConformance, AsyncSessionTouchConformance, AsyncSessionDeleteConformance
):
    """Every async backend passes these. Subclass and provide ``backend_factory``."""

    shares_storage: bool = True
    ttl_short: float = 0.3
    ttl_wait: float = 0.7

    @pytest.fixture(params=EVENT_LOOPS)
    def anyio_backend(self, request: pytest.FixtureRequest) -> Any:
        return request.param

    @pytest.fixture
    def backend_factory(self) -> AsyncBackendFactory:  # pragma: no cover - must be overridden
        raise NotImplementedError("provide a backend_factory fixture")

    @pytest.fixture
    async def backend(
        self, backend_factory: AsyncBackendFactory
    ) -> AsyncIterator[AsyncSessionBackend]:
        backend = backend_factory()
        try:
            yield backend
        finally:
            await backend.aclose()

    # -- round trip ----------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "value",
        [b"", b"x", bytes(range(256)), b"\x00" * 1000, bytes(range(256)) * 4099],
        ids=["empty", "one", "all-bytes", "nul", "megabyte"],
    )
    async def test_round_trip(self, backend: AsyncSessionBackend, value: bytes) -> None:
        await backend.set("k", value)
        assert await backend.get("k") == value

    async def test_missing_key(self, backend: AsyncSessionBackend) -> None:
        assert await backend.get("absent") is None
        assert await backend.ttl("absent") is None
        assert await backend.delete("absent") is False
        assert await backend.touch("absent", 10) is False
        assert await backend.get_with_ttl("absent") is None

    async def test_overwrite_and_delete(self, backend: AsyncSessionBackend) -> None:
        await backend.set("k", b"one")
        await backend.set("k", bytearray(b"two"))  # type: ignore[arg-type]
        assert await backend.get("k") == b"two"
        assert await _keys(backend) == ["k"]
        assert await backend.delete("k") is True
        assert await backend.get("k") is None

    @pytest.mark.parametrize("value", ["text", 1, None], ids=repr)
    async def test_non_bytes_value(self, backend: AsyncSessionBackend, value: object) -> None:
        await backend.set("k", b"kept")
        with pytest.raises(SerializationError):
            await backend.set("k", value)  # type: ignore[arg-type]
        with pytest.raises(SerializationError):
            await backend.set_many({"k": value})  # type: ignore[dict-item]
        assert await backend.get("k") == b"kept"

    async def test_no_expiry_ttl_means_never(self, backend: AsyncSessionBackend) -> None:
        """``ttl=NO_EXPIRY`` (``math.inf``) stores without expiry, as in the sync kit."""
        await backend.set("a", b"v", ttl=60)
        await backend.set("a", b"w", ttl=math.inf)
        assert await backend.ttl("a") == math.inf
        await backend.set_many({"b": b"w"}, ttl=math.inf)
        assert await backend.ttl("b") == math.inf
        await backend.set("c", b"v", ttl=60)
        assert await backend.touch("c", math.inf) is True
        assert await backend.ttl("c") == math.inf
        assert await backend.set_if("d", b"v", None, ttl=math.inf) is True
        assert await backend.ttl("d") == math.inf

    # -- keys ----------------------------------------------------------------------------------
    async def test_hostile_keys_round_trip(self, backend: AsyncSessionBackend) -> None:
        await backend.set("plain", b"other")
        for key in HOSTILE_KEYS:
            await backend.set(key, b"value:" + key.encode())
        for key in HOSTILE_KEYS:
            assert await backend.get(key) == b"value:" + key.encode()
        assert await backend.get_many(HOSTILE_KEYS) == {
            k: b"value:" + k.encode() for k in HOSTILE_KEYS
        }
        assert await _keys(backend) == sorted({*HOSTILE_KEYS, "plain"})
        assert await backend.delete_many(HOSTILE_KEYS) == len(set(HOSTILE_KEYS))
        assert await _keys(backend) == ["plain"]

    @pytest.mark.parametrize("key", INVALID_KEYS, ids=lambda k: repr(k)[:24])
    async def test_invalid_key_refused(self, backend: AsyncSessionBackend, key: Any) -> None:
        await backend.set("kept", b"v")
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: backend.get(key),
            lambda: backend.set(key, b"v"),
            lambda: backend.delete(key),
            lambda: backend.touch(key, 5),
            lambda: backend.ttl(key),
            lambda: backend.get_versioned(key),
            lambda: backend.set_if(key, b"v", None),
            lambda: backend.get_with_ttl(key),
            lambda: backend.get_many(["kept", key]),
            lambda: backend.set_many({"kept": b"new", key: b"v"}),
            lambda: backend.delete_many(["kept", key]),
        ]
        for call in calls:
            with pytest.raises(InvalidKeyError):
                await call()
        assert await backend.get("kept") == b"v"

    # -- TTL -----------------------------------------------------------------------------------
    async def test_ttl_expiry_and_touch(self, backend: AsyncSessionBackend) -> None:
        # what a live key shows is checked in a round done before its TTL passed (short_lived)
        for short in short_lived(self.ttl_short):
            await backend.set("short", b"v", ttl=short.ttl)
            await backend.set("touched", b"v", ttl=short.ttl)
            await backend.set_many({"a": b"1", "b": b"2"}, ttl=short.ttl)
            await backend.set("forever", b"v")
            left = await backend.ttl("short")
            touched = await backend.touch("touched", 60)
            if short.in_time():
                break
        assert left is not None and 0 < left <= short.ttl
        assert touched is True
        assert await backend.ttl("forever") == math.inf
        await asyncio.sleep(short.ttl + self.ttl_wait)
        assert await backend.get("short") is None
        assert await backend.get_many(["a", "b", "forever"]) == {"forever": b"v"}
        assert await backend.get("touched") == b"v"
        found = await backend.get_with_ttl("touched")
        assert found is not None and found[0] == b"v" and short.ttl < found[1] <= 60
        assert await _keys(backend) == ["forever", "touched"]

    async def test_touch_without_ttl_and_set_clears_expiry(
        self, backend: AsyncSessionBackend
    ) -> None:
        await backend.set("k", b"v", ttl=30)
        await backend.set("k", b"w")
        assert await backend.ttl("k") == math.inf
        await backend.set("j", b"v", ttl=12.3456)
        left = await backend.ttl("j")
        assert left is not None and 11.0 < left <= 12.346

    @pytest.mark.parametrize(
        "ttl",
        [0, -1, -0.5, math.nan, -math.inf, "10", True, pytest.param(10**400, id="1e400"), 2e16],
    )
    async def test_bad_ttl(self, backend: AsyncSessionBackend, ttl: Any) -> None:
        await backend.set("k", b"kept", ttl=60)
        for call in (
            lambda: backend.set("k", b"new", ttl=ttl),
            lambda: backend.set_many({"k": b"new"}, ttl=ttl),
            lambda: backend.touch("k", ttl),
            lambda: backend.set_if("k", b"new", None, ttl=ttl),
        ):
            with pytest.raises(ConfigurationError):
                await call()
        assert await backend.get("k") == b"kept"

    # -- scan ----------------------------------------------------------------------------------
    async def test_scan_by_prefix(self, backend: AsyncSessionBackend) -> None:
        keys = ["user:1", "user:2", "user:10", "admin:1", "user", "usex:1"]
        await backend.set_many(dict.fromkeys(keys, b"v"))
        assert await _keys(backend) == sorted(keys)
        assert await _keys(backend, "user:") == ["user:1", "user:10", "user:2"]
        assert await _keys(backend, "nobody") == []

    async def test_scan_prefix_is_literal(self, backend: AsyncSessionBackend) -> None:
        decoys = ["a", "b", "ab", "[a]", "x*", "\\x", "日x", "%x", "_x", "\n"]
        await backend.set_many(dict.fromkeys(decoys, b"decoy"))
        for prefix in HOSTILE_PREFIXES:
            mine = [prefix + "1", prefix + prefix]
            await backend.set_many(dict.fromkeys(mine, b"mine"))
            everything = {*decoys, *mine}
            assert await _keys(backend, prefix) == sorted(
                {k for k in everything if k.startswith(prefix)}
            )
            await backend.delete_many(mine)

    async def test_scan_many_keys(self, backend: AsyncSessionBackend) -> None:
        keys = {f"bulk:{i}" for i in range(1500)}
        await backend.set_many(dict.fromkeys(keys, b"v"))
        found = [key async for key in backend.scan("bulk:")]
        assert len(found) == 1500 and set(found) == keys

    async def test_scan_refuses_a_bad_prefix_at_once(self, backend: AsyncSessionBackend) -> None:
        with pytest.raises(InvalidKeyError):
            backend.scan(b"bytes")  # type: ignore[arg-type]

    # -- bulk ----------------------------------------------------------------------------------
    async def test_bulk_operations(self, backend: AsyncSessionBackend) -> None:
        items = {f"k{i}": f"v{i}".encode() for i in range(50)}
        await backend.set_many(items)
        assert await backend.get_many([*items, "absent"]) == items
        assert await backend.get_many(iter(["k1", "k1"])) == {"k1": b"v1"}
        assert await backend.get_many([]) == {}
        assert await backend.delete_many(["k0", "k1", "absent"]) == 2
        assert await backend.get_many(["k0", "k1", "k2"]) == {"k2": b"v2"}
        await backend.set_many({})
        assert await backend.delete_many([]) == 0

    # -- compare-and-set -----------------------------------------------------------------------
    async def test_set_if(self, backend: AsyncSessionBackend) -> None:
        assert await backend.get_versioned("k") is None
        assert await backend.set_if("k", b"first", None) is True
        assert await backend.set_if("k", b"second", None) is False
        read = await backend.get_versioned("k")
        assert read is not None and read.value == b"first"
        assert await backend.set_if("k", b"two", read.token, ttl=60) is True
        left = await backend.ttl("k")
        assert left is not None and 0 < left <= 60
        assert await backend.set_if("k", b"three", read.token) is False
        assert await backend.set_if("k", b"foreign", object()) is False
        assert await backend.get("k") == b"two"
        await backend.delete("k")
        assert await backend.set_if("k", b"late", read.token) is False
        assert await backend.get("k") is None

    async def test_token_for_names_only_the_bytes_it_was_given(
        self, backend: AsyncSessionBackend
    ) -> None:
        """As the sync kit's test: a predicted token matches while the key holds those bytes,
        and only then; ``None`` from a backend that cannot tell."""
        await backend.set("k", b"one")
        predicted = backend.token_for(b"one")
        if predicted is None:
            assert backend.token_for(b"two") is None
            return
        assert await backend.set_if("k", b"never", backend.token_for(b"two")) is False
        assert await backend.set_if("k", b"two", predicted) is True
        assert await backend.set_if("k", b"three", predicted) is False
        await backend.delete("k")
        assert await backend.set_if("k", b"late", backend.token_for(b"two")) is False
        assert await backend.get("k") is None
        near, far = b"h" * 2048 + b"A" + b"t" * 2047, b"h" * 2048 + b"B" + b"t" * 2047
        await backend.set("k", near)  # alike but in the middle: a partial token matches both
        assert await backend.set_if("k", b"never", backend.token_for(far)) is False
        assert await backend.set_if("k", far, backend.token_for(near)) is True

    async def test_set_if_lost_race(self, backend_factory: AsyncBackendFactory) -> None:
        mine, theirs = backend_factory(), backend_factory()
        try:
            await mine.set("k", b"base")
            read = await mine.get_versioned("k")
            assert read is not None
            await (theirs if self.shares_storage else mine).set("k", b"theirs")
            assert await mine.set_if("k", b"mine", read.token) is False
            assert await mine.get("k") == b"theirs"
        finally:
            await mine.aclose()
            await theirs.aclose()

    async def test_concurrent_tasks_lose_no_increment(self, backend: AsyncSessionBackend) -> None:
        """Many tasks on one loop doing read-compare-set on one key: every increment lands."""
        await backend.set("counter", b"0")

        async def increment() -> None:
            while True:
                read = await backend.get_versioned("counter")
                assert read is not None
                if await backend.set_if("counter", str(int(read.value) + 1).encode(), read.token):
                    return

        await asyncio.gather(*(increment() for _ in range(25)))
        assert await backend.get("counter") == b"25"

    # -- namespaces ----------------------------------------------------------------------------
    async def test_overlapping_namespaces(self, backend_factory: AsyncBackendFactory) -> None:
        outer = backend_factory(prefix="session:")
        inner = backend_factory(prefix="session:admin:")
        try:
            await outer.set("admin:x", b"outer")
            await inner.set("x", b"inner")
            assert await inner.get("admin:x") is None
            assert await outer.get("x") is None
            assert await _keys(outer) == ["admin:x"]
            assert await _keys(inner) == ["x"]
            assert await inner.delete("admin:x") is False
        finally:
            await outer.aclose()
            await inner.aclose()

    async def test_same_prefix_shares_data(self, backend_factory: AsyncBackendFactory) -> None:
        if not self.shares_storage:
            pytest.skip("process-local store")
        first, second = backend_factory(prefix="app:"), backend_factory(prefix="app:")
        try:
            await first.set("k", b"v")
            assert await second.get("k") == b"v"
        finally:
            await first.aclose()
            await second.aclose()

    # -- cancellation --------------------------------------------------------------------------
    async def test_cancelled_writes_are_whole_or_absent(self, backend: AsyncSessionBackend) -> None:
        """Cancel ``set_many`` / ``set_if`` after 0, 1, 2, ... loop steps: every key set holds all
        old or all new values, and the backend answers correctly afterwards."""
        old = {f"c{i}": b"old" for i in range(20)}
        for steps in range(12):
            await backend.set_many(old)
            read = await backend.get_versioned("c0")
            assert read is not None
            task = asyncio.ensure_future(backend.set_many(dict.fromkeys(old, b"new")))
            cas = asyncio.ensure_future(backend.set_if("c0", b"cas", read.token))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            cas.cancel()
            await asyncio.gather(task, cas, return_exceptions=True)
            values = set((await backend.get_many(old)).values())
            assert values <= {b"old", b"new", b"cas"}
            assert len(values - {b"cas"}) == 1, f"half-applied set_many after {steps} steps{_WHOLE}"
            await backend.set("probe", str(steps).encode())
            assert await backend.get("probe") == str(steps).encode()

    # -- counters, life cycle ------------------------------------------------------------------
    async def test_counters(self, backend: AsyncSessionBackend) -> None:
        before = backend.counters.as_dict()
        await backend.set("k", b"v")
        await backend.get("k")
        await backend.get("absent")
        after = backend.counters.as_dict()
        assert after["hits"] >= before["hits"] + 1
        assert after["misses"] >= before["misses"] + 1

    async def test_aclose_idempotent_and_context(
        self, backend_factory: AsyncBackendFactory
    ) -> None:
        async with backend_factory() as backend:
            await backend.set("k", b"v")
            assert backend.describe() in repr(backend)
        await backend.aclose()
