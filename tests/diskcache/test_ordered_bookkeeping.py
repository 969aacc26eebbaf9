"""diskcache's own bookkeeping after the chain's ordered writes (``set_after`` / ``set_if_newer``).

The ordered writes read a row once and write it with diskcache's own row steps
(:meth:`session_store_diskcache.cache.SessionCache.replace_head`) instead of calling
``Cache.set``. Whatever they store must leave diskcache exactly as ``Cache.set`` of the same
bytes would: its ``count`` and ``size`` settings (``Cache.check``), the rows (value, mode,
file, size, expiry), what diskcache's own ``get`` reads, and the evictions past
``size_limit``. Each case runs the same writes on two directories, one through the ordered
writes and one through plain ``set`` of the bytes they stored, and compares them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session_store import stamps
from session_store.stamps import MAGIC, VERSION_END, VERSION_START
from session_store.tiered.writes import CLOCK_END
from session_store_diskcache import DiskcacheBackend

ORDER = {"head": len(MAGIC), "start": VERSION_START, "end": VERSION_END}
#: diskcache keeps a value this long or longer in a file of its own (its default).
FILE_SIZE = 2**15

ops = st.lists(
    st.tuples(
        st.sampled_from(["after", "newer", "expire"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 5),  # clock: small, so that ties are common
        st.sampled_from([0, 10, 3000, FILE_SIZE + 10]),  # inline or a value file
        st.sampled_from([None, 60.0, 3600.0]),
    ),
    min_size=1,
    max_size=10,
)


def _cache(backend: DiskcacheBackend) -> Any:
    cache = backend._cache
    assert cache is not None
    return cache


def _rows(backend: DiskcacheBackend) -> list[tuple[Any, ...]]:
    """Every row as ``Cache.set`` would have left it (times compared as present or not)."""
    rows = _cache(backend)._sql(
        "SELECT key, raw, expire_time IS NULL, tag, size, mode, filename IS NULL, value"
        " FROM Cache ORDER BY key"
    )
    return [(*row[:7], None if row[7] is None else bytes(row[7])) for row in rows.fetchall()]


def _expire_now(backend: DiskcacheBackend, key: str) -> None:
    """Make ``key``'s row expired (still there: diskcache removes it at a later cull)."""
    stored = backend.namespace.encode(key)
    _cache(backend)._sql("UPDATE Cache SET expire_time = ? WHERE key = ?", (1.0, stored))


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(writes=ops)
def test_ordered_writes_leave_diskcache_as_set_does(
    tmp_path_factory: pytest.TempPathFactory, writes: list[tuple[str, str, int, int, Any]]
) -> None:
    ordered = DiskcacheBackend(tmp_path_factory.mktemp("ordered"))
    plain = DiskcacheBackend(tmp_path_factory.mktemp("plain"))
    try:
        for kind, key, clock, size, ttl in writes:
            if kind == "expire":
                _expire_now(ordered, key)
                _expire_now(plain, key)
                continue
            data = stamps.frame(b"x" * size, clock.to_bytes(8, "big") + bytes(4), None)
            before = ordered.get(key)
            if kind == "after":
                version = ordered.set_after(key, data, ttl, clock_end=CLOCK_END, **ORDER)
                stored: bytes | None = data[:VERSION_START] + version + data[VERSION_END:]
            else:
                stored = data if ordered.set_if_newer(key, data, ttl, **ORDER) else None
            if stored is not None:
                plain.set(key, stored, ttl)
            else:
                assert ordered.get(key) == before
            for backend in (ordered, plain):
                assert _cache(backend).check() == []  # count, size and files as diskcache keeps
            assert _rows(ordered) == _rows(plain)
            assert len(_cache(ordered)) == len(_cache(plain))
            assert _cache(ordered).volume() - _cache(plain).volume() in range(-8192, 8193)
            for name in ("a", "b", "c"):
                got = _cache(ordered).get(ordered.namespace.encode(name), expire_time=True)
                want = _cache(plain).get(plain.namespace.encode(name), expire_time=True)
                assert got[0] == want[0]  # diskcache's own read
                assert (got[1] is None) == (want[1] is None)
                if got[1] is not None:
                    assert abs(got[1] - want[1]) < 60  # (written a moment apart)
    finally:
        ordered.close()
        plain.close()


def test_ordered_writes_evict_as_set_does(tmp_path: Path) -> None:
    """Past ``size_limit``, each ordered write culls as ``set`` does (same rows evicted)."""
    limit = 200_000
    ordered = DiskcacheBackend(tmp_path / "ordered", size_limit=limit)
    plain = DiskcacheBackend(tmp_path / "plain", size_limit=limit)
    try:
        for index in range(120):
            data = stamps.frame(bytes(3000), stamps.clock.now(), None)
            key = f"k{index}"
            version = ordered.set_after(key, data, None, clock_end=CLOCK_END, **ORDER)
            plain.set(key, data[:VERSION_START] + version + data[VERSION_END:], None)
            time.sleep(0.001)  # (store times apart: the least-recently-stored order is strict)
        assert ordered.counters.get("evictions") > 0
        assert ordered.counters.get("evictions") == plain.counters.get("evictions")
        assert [row[0] for row in _rows(ordered)] == [row[0] for row in _rows(plain)]
        assert _cache(ordered).check() == []
    finally:
        ordered.close()
        plain.close()
