"""diskcache backend specifics: URLs, no pickle, evictions, typed failures, real processes.

Everything here runs against real SQLite files and real processes. Failures that need the
operating system's help are produced for real: a database locked by another connection, a file
size limit (``RLIMIT_FSIZE``) standing in for a full disk, and a read-only directory (a read-only
bind mount in a private mount namespace when running as root, since root ignores permissions).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache
import pytest
from diskcache.core import MODE_BINARY

from session_store import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    CorruptPayloadError,
    SerializationError,
    available_backends,
    open_backend,
)
from session_store.keys import Namespace
from session_store.testing.processes import race
from session_store_diskcache import (
    DEFAULT_SIZE_LIMIT,
    SCAN_PAGE_SIZE,
    DiskcacheBackend,
    SafeDisk,
    version_token,
)


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "sessions"


@pytest.fixture
def backend(directory: Path) -> Iterator[DiskcacheBackend]:
    opened = DiskcacheBackend(directory, prefix="t:")
    try:
        yield opened
    finally:
        opened.close()


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (the same venv) with ``args`` in ``sys.argv[1:]``."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- URLs and the entry point ------------------------------------------------------------------
def test_found_through_its_entry_point(directory: Path) -> None:
    assert (
        available_backends()["diskcache"]
        == "session_store_diskcache.backend:DiskcacheBackend.from_url"
    )
    backend = open_backend(
        f"diskcache://{directory}?prefix=app:&size_limit=1048576&default_ttl=30"
        "&eviction_policy=least-recently-used&timeout=2.5"
    )
    assert isinstance(backend, DiskcacheBackend)
    assert backend.directory == str(directory)
    assert backend.namespace.prefix == "app:"
    assert backend.size_limit == 1048576
    assert backend.default_ttl == 30
    assert backend.eviction_policy == "least-recently-used"
    assert backend.timeout == 2.5
    backend.set("k", b"v")
    left = backend.ttl("k")
    assert left is not None and 29 < left <= 30
    backend.close()


def test_defaults_are_explicit(directory: Path) -> None:
    backend = open_backend(f"diskcache://{directory}")
    assert isinstance(backend, DiskcacheBackend)
    assert backend.size_limit == DEFAULT_SIZE_LIMIT == 4 * 1024**3
    assert backend.namespace.prefix == "session:"
    assert backend.default_ttl is None
    backend.close()


def test_keyword_overrides_win_over_url(directory: Path) -> None:
    backend = open_backend(
        f"diskcache://{directory}?size_limit=1000000&prefix=url:", size_limit=2000000
    )
    assert isinstance(backend, DiskcacheBackend)
    assert backend.size_limit == 2000000
    assert backend.namespace.prefix == "url:"
    backend.close()


def test_describe_is_a_url_that_reopens_the_store(directory: Path) -> None:
    first = DiskcacheBackend(
        directory / "odd dir", prefix="a b:é", default_ttl=60, size_limit=10**7
    )
    first.set("k", b"v")
    second = open_backend(first.describe())
    assert isinstance(second, DiskcacheBackend)
    assert (second.directory, second.namespace.prefix, second.size_limit, second.default_ttl) == (
        first.directory,
        "a b:é",
        10**7,
        60,
    )
    assert second.get("k") == b"v"
    assert first.describe() in repr(first)
    first.close()
    second.close()


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("size_limit=big", "size_limit"),
        ("size_limit=0", "size_limit"),
        ("size_limit=-5", "size_limit"),
        ("default_ttl=soon", "default_ttl"),
        ("default_ttl=0", "default_ttl"),
        ("default_ttl=-1", "default_ttl"),
        ("timeout=forever", "timeout"),
        ("timeout=-1", "timeout"),
        ("eviction_policy=random", "eviction_policy"),
        ("prefix=a%1Fb", "prefix"),
        ("max_entries=10", "max_entries"),
        ("size_limit=1&sizelimit=2", "sizelimit"),
    ],
)
def test_bad_url_parameter_is_named_and_touches_nothing(
    directory: Path, query: str, named: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        open_backend(f"diskcache://{directory}?{query}")
    assert named in str(info.value)
    assert not directory.exists()  # refused before any I/O


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"size_limit": "10"}, "size_limit"),
        ({"bogus": 1}, "bogus"),
        ({"timeout": math.nan}, "timeout"),
    ],
)
def test_bad_override_is_named(directory: Path, overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        open_backend(f"diskcache://{directory}", **overrides)
    assert not directory.exists()


@pytest.mark.parametrize(
    "url", ["diskcache://", "diskcache:///", "diskcache://host/srv/sessions", "diskcache://srv"]
)
def test_url_without_an_absolute_path_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="diskcache"):
        open_backend(url)


def test_dollar_in_directory_is_refused(tmp_path: Path) -> None:
    # diskcache would expand $HOME: /x/$HOME/y would silently become /x/root/y
    with pytest.raises(ConfigurationError, match=r"\$"):
        DiskcacheBackend(tmp_path / "$HOME")
    assert not (tmp_path / "$HOME").exists()


# -- keys --------------------------------------------------------------------------------------
def test_nul_and_separator_in_keys_round_trip_and_scan(backend: DiskcacheBackend) -> None:
    """SQLite keeps NUL inside TEXT when bound with a length, as Python's sqlite3 does; the
    backend uses no SQL string function (length, substr) that would stop at it. The namespace
    separator U+001F is valid inside a key (only a prefix may not hold it)."""
    keys = ["\x00", "a\x00", "a\x00b", "a\x00\x00", "a", "ab", "\x1f", "x\x1fy", "\x1f\x1f"]
    for key in keys:
        backend.set(key, key.encode())
    for key in keys:
        assert backend.get(key) == key.encode()
    assert sorted(backend.scan()) == sorted(keys)
    assert sorted(backend.scan("a\x00")) == ["a\x00", "a\x00\x00", "a\x00b"]
    assert sorted(backend.scan("\x1f")) == ["\x1f", "\x1f\x1f"]
    assert backend.delete("a\x00") is True
    assert backend.get("a\x00b") == b"a\x00b"


def test_scan_pages_through_many_keys(backend: DiskcacheBackend) -> None:
    count = SCAN_PAGE_SIZE * 2 + 3
    backend.set_many({f"p:{i:05d}": b"v" for i in range(count)})
    backend.set_many({f"q:{i}": b"v" for i in range(10)})
    scanned = backend.scan("p:")
    first = next(scanned)  # lazy: pages are read as the iterator advances
    rest = list(scanned)
    assert [first, *rest] == [f"p:{i:05d}" for i in range(count)]


def test_scan_skips_keys_other_programs_stored(backend: DiskcacheBackend, directory: Path) -> None:
    backend.set("mine", b"v")
    with diskcache.Cache(str(directory)) as other:
        other.set(42, b"int key")
        other.set(b"t:\x1fbytes", b"bytes key")
        other.set(("tuple", "key"), b"pickled key")
    assert list(backend.scan()) == ["mine"]


# -- no pickle ---------------------------------------------------------------------------------
class Armed:
    """Unpickling this creates the file at ``path``: proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


@pytest.mark.parametrize("padding", [0, 100_000], ids=["in-database", "in-value-file"])
def test_pickled_row_is_refused_without_running_it(
    backend: DiskcacheBackend, directory: Path, tmp_path: Path, padding: int
) -> None:
    proof = tmp_path / "pwned"
    stored = Namespace("t:").encode("k")
    with diskcache.Cache(str(directory)) as other:  # the default Disk pickles python objects
        other.set(stored, [Armed(proof), "x" * padding])
    calls: list[Callable[[], object]] = [
        lambda: backend.get("k"),
        lambda: backend.get_versioned("k"),
        lambda: backend.get_many(["k"]),
        lambda: backend.get_with_ttl("k"),
        lambda: backend.ttl("k"),
        lambda: backend.set_if("k", b"new", None),
    ]
    for call in calls:
        with pytest.raises(CorruptPayloadError) as info:
            call()
        assert info.value.key == "k"
        assert info.value.backend == backend.describe()
        assert "pickle" in str(info.value)
    assert not proof.exists()
    assert backend.counters.get("errors") == len(calls)
    # the row is left for inspection and can be replaced or deleted
    assert list(backend.scan()) == ["k"]
    backend.set("k", b"clean")
    assert backend.get("k") == b"clean"
    # the payload was live: the default Disk does run it
    with diskcache.Cache(str(directory)) as other:
        other.set(stored, Armed(proof))
        other.get(stored)
    assert proof.exists()


def test_pickled_key_is_never_unpickled(
    backend: DiskcacheBackend, directory: Path, tmp_path: Path
) -> None:
    proof = tmp_path / "pwned"
    with diskcache.Cache(str(directory)) as other:
        other.set((Armed(proof),), b"v")
    backend.set("mine", b"v")
    assert list(backend.scan()) == ["mine"]
    assert list(backend.scan("")) == ["mine"]
    assert not proof.exists()
    disk = SafeDisk(str(directory))
    with pytest.raises(CorruptPayloadError, match="pickled key"):
        disk.get(b"\x80\x05.", False)


@pytest.mark.parametrize("value", ["text", 42, 4.2], ids=lambda v: type(v).__name__)
def test_text_or_number_row_is_corrupt(
    backend: DiskcacheBackend, directory: Path, value: object
) -> None:
    with diskcache.Cache(str(directory)) as other:
        other.set(Namespace("t:").encode("k"), value)
    with pytest.raises(CorruptPayloadError, match="not bytes"):
        backend.get("k")


@pytest.mark.parametrize(
    "value", ["text", 1, None, {"a": 1}, ["list"], object()], ids=lambda v: type(v).__name__
)
def test_safe_disk_stores_bytes_only(tmp_path: Path, value: object) -> None:
    disk = SafeDisk(str(tmp_path))
    with pytest.raises(SerializationError):
        disk.store(value, False)
    with pytest.raises(SerializationError):
        disk.store(b"file-like", True)


@pytest.mark.parametrize("key", [1, 1.5, None, ("t",), frozenset()], ids=lambda v: type(v).__name__)
def test_safe_disk_refuses_keys_that_would_be_pickled(tmp_path: Path, key: object) -> None:
    with pytest.raises(SerializationError):
        SafeDisk(str(tmp_path)).put(key)


def test_row_naming_a_file_outside_the_cache_is_refused(
    backend: DiskcacheBackend, directory: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret")
    backend.set("k", b"v")
    with sqlite3.connect(directory / "cache.db") as db:
        db.execute(
            "UPDATE Cache SET mode = ?, filename = ?, value = NULL WHERE key = ?",
            (MODE_BINARY, "../victim", Namespace("t:").encode("k")),
        )
    db.close()
    with pytest.raises(CorruptPayloadError, match="outside"):
        backend.get("k")
    backend.set("k", b"new")  # diskcache removes the old row's file: not this one
    assert backend.delete("k") is True
    assert victim.read_bytes() == b"secret"


# -- evictions ---------------------------------------------------------------------------------
def test_evictions_are_counted_exactly(directory: Path) -> None:
    backend = DiskcacheBackend(directory, size_limit=200_000)
    writes = 150
    for i in range(writes):
        backend.set(f"k{i}", os.urandom(8_000))
    kept = list(backend.scan())
    evicted = backend.counters.get("evictions")
    assert evicted > 0
    assert len(kept) + evicted == writes  # every write is either still there or counted
    assert backend.get(f"k{writes - 1}") is not None  # the oldest went first
    assert backend.get("k0") is None
    backend.close()


def test_bulk_writes_count_evictions_too(directory: Path) -> None:
    backend = DiskcacheBackend(directory, size_limit=200_000)
    backend.set_many({f"k{i}": os.urandom(8_000) for i in range(100)})
    assert len(list(backend.scan())) + backend.counters.get("evictions") == 100
    backend.close()


def test_a_limit_smaller_than_one_value_evicts_it_and_says_so(directory: Path) -> None:
    backend = DiskcacheBackend(directory, size_limit=1)
    backend.set("k", b"v")
    assert backend.get("k") is None  # diskcache dropped the value it was just given
    assert backend.counters.get("evictions") == 1
    backend.close()


def test_expired_entries_removed_to_make_room_are_not_evictions(directory: Path) -> None:
    backend = DiskcacheBackend(directory)
    for i in range(30):
        backend.set(f"old{i}", b"v", ttl=0.05)
    time.sleep(0.1)
    for i in range(30):
        backend.set(f"new{i}", b"v")
    with diskcache.Cache(str(directory)) as raw:
        assert len(raw) < 60  # diskcache did remove expired rows on those writes
    assert backend.counters.get("evictions") == 0
    backend.close()


def test_least_recently_used_policy_keeps_what_is_read(directory: Path) -> None:
    backend = DiskcacheBackend(directory, size_limit=200_000, eviction_policy="least-recently-used")
    backend.set_many({f"k{i}": os.urandom(8_000) for i in range(10)})
    for i in range(10, 150):
        assert backend.get_many(["k0", "k1"]).keys() == {"k0", "k1"}  # reads write access time
        backend.set(f"k{i}", os.urandom(8_000))
    kept = set(backend.scan())
    assert {"k0", "k1"} <= kept
    assert len(kept) + backend.counters.get("evictions") == 150
    backend.close()


def test_eviction_policy_none_keeps_everything(directory: Path) -> None:
    backend = DiskcacheBackend(directory, size_limit=1, eviction_policy="none")
    backend.set_many({f"k{i}": b"v" * 1000 for i in range(50)})
    assert len(list(backend.scan())) == 50
    assert backend.counters.get("evictions") == 0
    backend.close()


# -- typed failures ----------------------------------------------------------------------------
def test_locked_database_is_unavailable_then_recovers(directory: Path) -> None:
    backend = DiskcacheBackend(directory, prefix="t:", timeout=0.2)
    backend.set("a", b"1")
    locker = sqlite3.connect(directory / "cache.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as info:
            backend.set("b", b"2")
        assert time.monotonic() - started < 5
        assert info.value.key == "b"
        assert info.value.backend == backend.describe()
        for call in (
            lambda: backend.set_many({"c": b"3"}),
            lambda: backend.set_if("a", b"x", None),
            lambda: backend.delete_many(["a"]),
            lambda: backend.touch("a", 10),
        ):
            with pytest.raises(BackendUnavailableError):
                call()
        assert backend.get("a") == b"1"  # WAL: readers never wait for the writer
        assert backend.get_many(["a", "b"]) == {"a": b"1"}
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert backend.counters.get("errors") == 5
    backend.set("b", b"2")
    assert backend.get_many(["a", "b", "c"]) == {"a": b"1", "b": b"2"}
    backend.close()


def test_directory_that_cannot_be_created_is_a_backend_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(BackendError, match="could not be created") as info:
        DiskcacheBackend(blocker / "sessions")
    assert str(blocker / "sessions") in str(info.value)


def test_database_path_that_is_not_a_file_is_a_backend_error(directory: Path) -> None:
    (directory / "cache.db").mkdir(parents=True)
    with pytest.raises(BackendError, match="unable to open database file"):
        DiskcacheBackend(directory)


def test_file_that_is_not_a_database_is_a_backend_error(directory: Path) -> None:
    directory.mkdir()
    (directory / "cache.db").write_bytes(b"this is not sqlite" * 1000)
    with pytest.raises(BackendError, match="not a database"):
        DiskcacheBackend(directory)


_OPEN_READ_ONLY = """
    import json, sys
    from session_store import SessionStoreError
    from session_store_diskcache import DiskcacheBackend
    results = {}
    for name in sys.argv[1:]:
        try:
            DiskcacheBackend(name, timeout=0.5)
            results[name] = "opened"
        except SessionStoreError as exc:
            results[name] = [type(exc).__name__, str(exc)]
    print(json.dumps(results))
"""


def _read_only_mount_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.slow
def test_read_only_directory_is_a_backend_error(tmp_path: Path) -> None:
    existing, empty = tmp_path / "existing", tmp_path / "empty"
    DiskcacheBackend(existing).close()
    empty.mkdir()
    names = [str(existing), str(empty)]
    if os.geteuid() != 0:
        for path in [*existing.iterdir(), existing, empty]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        result = run_python(_OPEN_READ_ONLY, *names)
    elif _read_only_mount_works():
        # root ignores file permissions: mount the directory read-only in a private namespace
        script = (
            'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
        )
        result = subprocess.run(
            [
                "unshare",
                "-rm",
                "sh",
                "-c",
                script,
                "sh",
                str(tmp_path),
                sys.executable,
                "-c",
                textwrap.dedent(_OPEN_READ_ONLY),
                *names,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    else:
        pytest.skip("running as root without unshare: cannot make a directory read-only")
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    for name in names:
        kind, message = outcome[name]
        assert kind == "NotWritableError", message  # a BackendError naming the fix (mend11)
        assert "opening the cache directory (not writable" in message
        assert name in message  # the backend, described, names the directory


_FILL_THE_DISK = """
    import json, os, resource, signal, sys
    from session_store import SessionStoreError
    from session_store_diskcache import DiskcacheBackend
    backend = DiskcacheBackend(sys.argv[1], prefix="t:")
    backend.set("kept", b"safe")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    results = []
    for key, size in [("big", 1_000_000)] + [(f"k{i}", 20_000) for i in range(40)]:
        try:
            backend.set(key, os.urandom(size))
        except SessionStoreError as exc:
            results.append([type(exc).__name__, exc.key, str(exc)])
            if key != "big":
                break
    results.append(backend.get("kept").decode())
    results.append(backend.counters.get("errors"))
    print(json.dumps(results))
"""


@pytest.mark.slow
def test_full_disk_is_a_backend_error(directory: Path) -> None:
    result = run_python(_FILL_THE_DISK, str(directory))
    assert result.returncode == 0, result.stderr
    big, small, kept, errors = json.loads(result.stdout)
    assert big[:2] == ["BackendError", "big"] and "File too large" in big[2]
    assert small[0] == "BackendError" and small[1].startswith("k") and "SQLite" in small[2]
    assert kept == "safe" and errors == 2
    with DiskcacheBackend(directory, prefix="t:") as backend:
        assert backend.get("kept") == b"safe"
        assert backend.get("big") is None


def test_closed_backend_refuses_calls(directory: Path) -> None:
    backend = DiskcacheBackend(directory)
    backend.set("k", b"v")
    backend.close()
    backend.close()
    with pytest.raises(BackendError, match="closed"):
        backend.get("k")
    with pytest.raises(BackendError, match="closed"):
        list(backend.scan())
    with DiskcacheBackend(directory) as reopened:
        assert reopened.get("k") == b"v"


# -- across instances and processes -------------------------------------------------------------
def test_expiry_across_instances(directory: Path) -> None:
    writer, reader = DiskcacheBackend(directory), DiskcacheBackend(directory)
    writer.set("short", b"v", ttl=0.3)
    writer.set("touched", b"v", ttl=0.3)
    assert reader.get("short") == b"v"
    left = reader.ttl("short")
    assert left is not None and 0 < left <= 0.3
    assert reader.touch("touched", 30) is True
    time.sleep(0.5)
    assert reader.get("short") is None
    assert writer.ttl("short") is None
    assert sorted(writer.scan()) == ["touched"]
    assert reader.set_if("short", b"again", None) is True  # an expired key counts as absent
    writer.close()
    reader.close()


def test_get_with_ttl_reads_both_at_once(backend: DiskcacheBackend) -> None:
    backend.set("k", b"v", ttl=20)
    backend.set("big", b"x" * 100_000)  # kept in its own file
    got = backend.get_with_ttl("k")
    assert got is not None and got[0] == b"v" and 19 < got[1] <= 20
    assert backend.get_with_ttl("big") == (b"x" * 100_000, math.inf)
    assert backend.ttl("big") == math.inf
    assert backend.get_with_ttl("absent") is None


def test_token_is_a_digest_of_the_bytes(backend: DiskcacheBackend) -> None:
    backend.set("k", b"value")
    read = backend.get_versioned("k")
    assert read is not None and read.token == version_token(b"value")


_WRITE_ONE = """
    import sys
    from session_store import open_backend
    backend = open_backend(f"diskcache://{sys.argv[1]}?prefix=app:")
    backend.set("from-child", f"pid {sys.argv[2]}".encode(), ttl=60)
    backend.close()
"""


@pytest.mark.slow
def test_a_value_written_by_one_process_is_read_by_another(directory: Path) -> None:
    backend = DiskcacheBackend(directory, prefix="app:")
    result = run_python(_WRITE_ONE, str(directory), "7")
    assert result.returncode == 0, result.stderr
    assert backend.get("from-child") == b"pid 7"
    left = backend.ttl("from-child")
    assert left is not None and 50 < left <= 60
    backend.close()


_INCREMENT = """
    import sys, time
    from session_store_diskcache import DiskcacheBackend
    backend = DiskcacheBackend(sys.argv[1], prefix="app:", timeout=30)
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts at once
    conflicts = 0
    for _ in range(int(sys.argv[2])):
        while True:
            read = backend.get_versioned("counter")
            time.sleep(0.0005)  # the work between read and write, where races happen
            if backend.set_if("counter", str(int(read.value) + 1).encode(), read.token):
                break
            conflicts += 1
    print(conflicts)
"""


@pytest.mark.slow
def test_compare_and_set_loses_no_update_across_processes(directory: Path) -> None:
    """Read-modify-write from four processes at once: every increment lands exactly once."""
    backend = DiskcacheBackend(directory, prefix="app:")
    backend.set("counter", b"0")
    processes, rounds = 4, 50
    outputs = race(_INCREMENT, [str(directory), str(rounds)], processes, timeout=120)
    conflicts = sum(int(out) for out in outputs)
    assert backend.get("counter") == str(processes * rounds).encode()
    assert conflicts > 0  # the processes really raced, and the losers retried
    backend.close()
