"""Issue 7, item 4: crash safety of the diskcache tier, and typed errors for a bad directory.

**kill -9 in a stream of writes.** A child process writes sessions as fast as it can (``save``,
``update`` and 3-key ``save_many``), small ones in SQLite rows and large ones (> 32 KiB) in
diskcache's value files, announcing each operation before it starts and after it returns. It is
killed with SIGKILL: from outside at a random moment, from inside at a random SQLite VM step
(a progress handler; in one mode only inside a 3-key ``save_many``), and from inside right after
a value file was written but before its row. Afterwards every session must load, be whole (a
digest of its content matches), and be at its acknowledged value, except the one operation in
flight, whose keys are all old or all new.

**A read-only or full directory** (made for real in a private mount namespace, since root ignores
permissions: a read-only bind mount, a 2 MiB tmpfs) gives a typed ``BackendError``, never a crash,
and what was stored stays readable.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from session_store import Codec, SessionStore
from session_store_diskcache import DEFAULT_SIZE_LIMIT, DiskcacheBackend
from session_store_diskcache.cache import SessionCache
from tests.reliability.killing import kill_when

KEYS = 12
BIG = 70_000  # characters of the big sessions' blob: their payload goes to a value file
SMALL = 600

# The writer. argv: directory, seed, mode (external | sqlite | value-file).
_STREAM = """
    import hashlib, json, os, random, signal, sys
    from diskcache.core import MODE_BINARY
    from session_store import Codec, SessionStore
    from session_store_diskcache import disk

    directory, seed, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    KEYS, BIG, SMALL = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    rng = random.Random(seed)
    store = SessionStore(
        f"diskcache://{directory}?prefix=crash:", dict,
        codec=Codec(encryption=None, compression=None), access_interval=None,
    )
    keys = [f"s{i:02d}" for i in range(KEYS)]
    gens = {key: store.load(key)["gen"] for key in keys}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    in_batch = False
    if mode.startswith("sqlite"):  # SIGKILL at a random step of SQLite's virtual machine
        # "sqlite-batch" counts only the steps inside save_many: it dies inside one
        target, steps = rng.randrange(2 if mode == "sqlite-batch" else 20, 400), 0
        def step():
            global steps
            if in_batch or mode == "sqlite":
                steps += 1
                if steps == target:
                    die()
            return 0
        store.backend._cache._con.set_progress_handler(step, 10 if mode == "sqlite-batch" else 50)
    elif mode == "value-file":  # SIGKILL after a value file is written, before its row is
        target, files = rng.randrange(2, 12), 0
        original = disk.SafeDisk.store
        def store_then_die(self, value, read, key=None):
            global files
            columns = original(self, value, read, key=key)
            if columns[1] == MODE_BINARY:
                files += 1
                if files == target:
                    die()
            return columns
        disk.SafeDisk.store = store_then_die

    def session(key, gen):
        size = BIG if int(key[1:]) % 2 else SMALL
        blob = rng.randbytes(size // 2).hex()
        return {"key": key, "gen": gen, "blob": blob,
                "digest": hashlib.sha256(blob.encode()).hexdigest()}

    print(json.dumps({"ready": True}), flush=True)
    op = 0
    while True:
        op += 1
        chosen = rng.sample(keys, 3) if op % 5 == 0 else [rng.choice(keys)]
        new = {key: gens[key] + 1 for key in chosen}
        print(json.dumps({"begin": op, "keys": new}), flush=True)
        if len(chosen) == 3:
            batch = {key: session(key, gen) for key, gen in new.items()}
            in_batch = True
            store.save_many(batch)
            in_batch = False
        elif op % 2:
            (key,) = chosen
            value = session(key, new[key])
            def bump(current, value=value):
                assert current["gen"] == value["gen"] - 1
                return value
            store.update(key, bump)
        else:
            (key,) = chosen
            store.save(key, session(key, new[key]))
        gens.update(new)
        print(json.dumps({"ack": op}), flush=True)
"""


def _digest(blob: str) -> str:
    return hashlib.sha256(blob.encode()).hexdigest()


def _store(directory: Path, prefix: str = "crash:") -> SessionStore[Any]:
    return SessionStore(
        f"diskcache://{directory}?prefix={prefix}",
        dict,
        codec=Codec(encryption=None, compression=None),
        access_interval=None,
    )


def _seed_sessions(directory: Path) -> dict[str, int]:
    with _store(directory) as store:
        for i in range(KEYS):
            key = f"s{i:02d}"
            blob = ("b" if i % 2 else "s") * (BIG if i % 2 else SMALL)
            store.save(key, {"key": key, "gen": 0, "blob": blob, "digest": _digest(blob)})
    return {f"s{i:02d}": 0 for i in range(KEYS)}


def _run_and_kill(directory: Path, seed: int, mode: str) -> list[dict[str, Any]]:
    """Run the writer until it dies by SIGKILL; every line it printed."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(_STREAM),
            str(directory),
            str(seed),
            mode,
            str(KEYS),
            str(BIG),
            str(SMALL),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acks_wanted = random.Random(seed).randrange(15, 120)
    acks = 0

    def enough(line: str) -> bool:
        nonlocal acks
        acks += "ack" in json.loads(line)
        return mode == "external" and acks >= acks_wanted

    return [json.loads(line) for line in kill_when(child, enough, within=30)]


def _check_after_crash(
    directory: Path, before: dict[str, int], lines: list[dict[str, Any]]
) -> tuple[dict[str, int], str]:
    """Every session whole and at its acknowledged value, the op in flight all or nothing."""
    acked = dict(before)
    begun = {entry["begin"]: entry["keys"] for entry in lines if "begin" in entry}
    done = {entry["ack"] for entry in lines if "ack" in entry}
    in_flight = {op: keys for op, keys in begun.items() if op not in done}
    assert len(in_flight) <= 1
    for op in sorted(done):
        acked.update(begun[op])
    with sqlite3.connect(directory / "cache.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    db.close()
    found: dict[str, int] = {}
    with _store(directory) as store:
        for key in acked:
            value = store.load(key)  # raises if torn or unreadable
            assert value is not None, key
            assert value["key"] == key and _digest(value["blob"]) == value["digest"], key
            found[key] = value["gen"]
    flight_keys: dict[str, int] = next(iter(in_flight.values()), {})
    for key, gen in found.items():
        if key not in flight_keys:
            assert gen == acked[key], (key, gen, acked[key])
    outcome = "none in flight"
    if flight_keys:
        landed = {found[key] == gen for key, gen in flight_keys.items()}
        assert len(landed) == 1, "a save_many landed in part"
        for key, gen in flight_keys.items():
            assert found[key] in (acked[key], gen)
        outcome = "landed" if landed == {True} else "rolled back"
        outcome = f"in-flight write of {len(flight_keys)} key(s) {outcome}"
    return found, outcome


@pytest.mark.slow
def test_kill_9_in_a_stream_of_writes_leaves_every_session_old_or_new(tmp_path: Path) -> None:
    directory = tmp_path / "cache"
    gens = _seed_sessions(directory)
    outcomes = []
    rounds = [
        ("external", 1),
        ("external", 2),
        ("sqlite", 3),
        ("sqlite-batch", 4),
        ("sqlite-batch", 5),
        ("value-file", 6),
    ]
    for mode, seed in rounds:
        lines = _run_and_kill(directory, seed, mode)
        assert any("ack" in entry for entry in lines), mode  # it did write before dying
        gens, outcome = _check_after_crash(directory, gens, lines)
        outcomes.append((mode, outcome))
    big_files = list(directory.glob("*/*/*.val"))
    assert big_files  # the big sessions really live in value files
    assert sum(gens.values()) > 50, gens
    print(outcomes)


def test_a_rolled_back_transaction_keeps_the_old_value_files(tmp_path: Path) -> None:
    """The bug the kill test found: diskcache removed the file of a value replaced inside a
    transaction before the transaction committed, so a rollback (a kill, a full disk at a later
    write of a batch) left the restored row naming a file that was gone: the session was lost."""
    directory = tmp_path / "cache"
    backend = DiskcacheBackend(directory, prefix="t:")
    cache = SessionCache(
        str(directory), timeout=5, size_limit=DEFAULT_SIZE_LIMIT, eviction_policy="none"
    )
    old, new = b"o" * 100_000, b"n" * 100_000  # both in value files
    try:
        backend.set_many({"a": old, "b": old, "small": b"s"})

        def batch_then_crash() -> None:
            with cache.transact():
                cache.set(backend.namespace.encode("a"), new)
                cache.delete(backend.namespace.encode("b"))
                cache.set(backend.namespace.encode("small"), new)
                raise RuntimeError("killed before the commit")

        with pytest.raises(RuntimeError):
            batch_then_crash()
        assert backend.get_many(["a", "b", "small"]) == {"a": old, "b": old, "small": b"s"}
        files = len(list(directory.glob("*/*/*.val")))
        with cache.transact():  # committed: the replaced and deleted files go, after the commit
            cache.set(backend.namespace.encode("a"), new)
            cache.delete(backend.namespace.encode("b"))
        assert backend.get_many(["a", "b"]) == {"a": new}
        assert len(list(directory.glob("*/*/*.val"))) == files + 1 - 2
    finally:
        cache.close()
        backend.close()


# -- a read-only or full directory ------------------------------------------------------------
def _namespace_tools() -> None:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.fail("these tests need unshare and mount (util-linux)")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail(f"unshare -rm is not allowed here: {probe.stderr.decode()}")


def _in_namespace(shell: str, code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in Python after ``shell`` (given ``$1`` = args[0]) in a private namespace."""
    result = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            f'{shell} && exec "$0" -c "$CODE" "$@"',
            sys.executable,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CODE": textwrap.dedent(code)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


_PROBE = """
    import json, subprocess, sys, traceback
    from session_store import Codec, SessionStore, SessionStoreError

    def attempt(fn):
        try:
            return ["ok", fn()]
        except SessionStoreError as exc:
            return [type(exc).__name__, str(exc)]
        except BaseException as exc:  # anything else is the failure under test
            return ["UNTYPED", type(exc).__name__, traceback.format_exc()]

    def store(url):
        return SessionStore(url, dict, codec=Codec(encryption=None, compression=None),
                            access_interval=None)
"""

_READ_ONLY = (
    _PROBE
    + """
    directory = sys.argv[1]
    url = f"diskcache://{directory}/cache?prefix=ro:"
    results = {}
    running = store(url)
    running.save("small", {"v": "old"})
    running.save("big", {"v": "o" * 100_000})
    # the directory turns read-only under the running app (a read-only mount over it)
    subprocess.run(["mount", "--bind", directory, directory], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", directory, directory], check=True)
    results["save big"] = attempt(lambda: running.save("big", {"v": "n" * 100_000}) and None)
    results["update big"] = attempt(
        lambda: running.update("big", lambda c: {"v": "u" * 100_000}) and None)
    results["load big"] = attempt(lambda: running.load("big")["v"][:3])
    results["load small"] = attempt(lambda: running.load("small"))
    # an app that starts now, alone or in a chain
    results["open"] = attempt(lambda: store(url) and None)
    results["open chain"] = attempt(lambda: store("memory:// | " + url) and None)
    results["open new dir"] = attempt(lambda: store(f"diskcache://{directory}/new") and None)
    print(json.dumps(results))
"""
)


@pytest.mark.slow
def test_read_only_directory_is_a_typed_error(tmp_path: Path) -> None:
    _namespace_tools()
    results = _in_namespace("true", _READ_ONLY, str(tmp_path))
    untyped = {name: result for name, result in results.items() if result[0] == "UNTYPED"}
    assert untyped == {}
    for name in ("save big", "update big"):
        assert results[name][0] == "BackendError", (name, results[name])
    for name in ("open", "open chain", "open new dir"):  # a BackendError naming the fix (mend11)
        assert results[name][0] == "NotWritableError", (name, results[name])
        assert "make " in results[name][1] and "writable" in results[name][1]
    assert "not writable" in results["open"][1]
    assert results["load big"] == ["ok", "ooo"]  # the failed writes changed nothing
    assert results["load small"] == ["ok", {"v": "old"}]
    with _store(tmp_path / "cache", "ro:") as store:  # outside the namespace: intact, old values
        assert store.load("big") == {"v": "o" * 100_000}
        assert store.load("small") == {"v": "old"}


_FULL = (
    _PROBE
    + """
    import os, sqlite3
    directory = sys.argv[1] + "/cache"
    url = f"diskcache://{directory}?prefix=full:"
    app = store(url)
    acked, errors = {}, []
    for i in range(400):
        key = f"k{i % 40}"
        value = {"i": i, "blob": os.urandom((60_000 if i % 3 == 0 else 5_000) // 2).hex()}
        batch = {f"k{(i + n) % 40}": value for n in range(3)}
        if i % 5 == 4:  # a batch: all of it or none of it
            result = attempt(lambda: app.save_many(batch))
        elif i % 4 == 1 and key in acked:
            result = attempt(lambda: app.update(key, lambda current: value) and None)
        else:
            result = attempt(lambda: app.save(key, value) and None)
        if result[0] == "ok":
            acked.update(dict.fromkeys(batch if i % 5 == 4 else [key], i))
        else:
            errors.append(result)
            if len(errors) >= 8:
                break
    wrong = {key: attempt(lambda: app.load(key)["i"]) for key in acked}
    wrong = {key: got for key, got in wrong.items() if got != ["ok", acked[key]]}
    check = sqlite3.connect(directory + "/cache.db").execute("PRAGMA integrity_check").fetchall()
    print(json.dumps({
        "acked": len(acked), "errors": errors, "wrong": wrong, "integrity": check,
        "open another": attempt(lambda: store(url) and None),
        "delete": attempt(lambda: app.delete("k0")),
    }))
"""
)


@pytest.mark.slow
def test_full_disk_is_a_typed_error_and_keeps_what_was_stored(tmp_path: Path) -> None:
    _namespace_tools()
    mount = tmp_path / "small-disk"
    mount.mkdir()
    results = _in_namespace('mount -t tmpfs -o size=2m tmpfs "$1"', _FULL, str(mount))
    assert results["acked"] > 5
    assert results["errors"], "the 2 MiB disk never filled up"
    kinds = {error[0] for error in results["errors"]}
    assert kinds == {"BackendError"}, results["errors"]
    assert any("full" in error[1] or "No space" in error[1] for error in results["errors"])
    assert results["wrong"] == {}  # every acknowledged session reads back at its last value
    assert results["integrity"] == [["ok"]]
    for name in ("open another", "delete"):  # typed either way (SQLite may need room to delete)
        assert results[name][0] in ("ok", "BackendError"), (name, results[name])
