"""A chain whose disk tier's directory is read-only when the process starts (mend11).

newuser10 (operator): a process already running when the cache directory turns read-only keeps
working (its disk tier still reads its open database and refuses writes, which Redis takes; the
disk catches up later), but a process started then (a worker recycled, a deploy) refused to open
the chain at all: ``BackendError: opening the cache directory (not writable ...)``. One worker
recycled during a read-only disk took a whole service down over its third tier.

Decided: **a chain whose arbiter (first shared tier) is another tier starts** and logs a warning
naming the directory and the fix; its disk tier then does what a running process's does: it
reads the database (SQLite read-only; ``update`` works, since the disk answers) and refuses
writes with ``BackendError``, which the chain takes as a refusal (the arbiter holds what is
acknowledged; the keys missed are remembered). Within a second of the directory turning
writable again it opens read-write and is brought up to date. A database SQLite cannot read
read-only (none yet) makes it a down tier instead. **A chain whose arbiter is the read-only
tier, and the backend alone, refuse** with ``NotWritableError`` (a ``BackendError``), which
names the directory and the fix.

Real directories made read-only by a read-only bind mount in a private mount namespace
(``unshare -rm``, as ``test_crash_disk.py`` does: as root, file modes do not stop writes).
Before the change, opening the chain raised ``BackendError`` (the script died there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

_SCRIPT = """
    import asyncio, json, logging, os, subprocess, sys, time, traceback
    from session_store import SessionStore, SessionStoreError, open_backend
    from session_store.aio import open_async_backend
    from session_store_diskcache import DiskcacheBackend

    ro, rw = sys.argv[1] + "/ro", sys.argv[1] + "/rw"
    warnings = []

    class Keep(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    logging.getLogger().addHandler(Keep(logging.WARNING))

    def attempt(fn):
        try:
            return ["ok", fn()]
        except SessionStoreError as exc:
            return [type(exc).__name__, str(exc)]
        except BaseException:
            return ["UNTYPED", traceback.format_exc()]

    def mount(mode, directory=ro):
        subprocess.run(["mount", "-o", f"remount,bind,{mode}", directory, directory], check=True)

    ro2, empty = sys.argv[1] + "/ro2", sys.argv[1] + "/empty"
    for directory in (ro, ro2, empty):
        if directory != empty:
            with SessionStore(f"diskcache://{directory}", dict) as before:
                before.save("old", {"v": "kept"})
        os.makedirs(directory, exist_ok=True)
        subprocess.run(["mount", "--bind", directory, directory], check=True)
        mount("ro", directory)
    results = {}
    results["alone"] = attempt(lambda: open_backend(f"diskcache://{ro}").close())
    results["arbiter"] = attempt(lambda: open_backend(f"memory:// | diskcache://{ro}").close())
    results["async arbiter"] = attempt(
        lambda: open_async_backend(f"memory:// | diskcache://{ro}") and None)
    chain = f"tiered://?retry_after=0.2 | memory:// | diskcache://{rw} | diskcache://{ro}"
    store = SessionStore(chain, dict)
    results["warned"] = [w for w in warnings if ro in w]
    results["save"] = attempt(lambda: store.save("s", {"n": 1}))
    results["load"] = attempt(lambda: store.load("s"))
    results["load old"] = attempt(lambda: store.load("old"))  # the disk tier alone holds it
    results["update"] = attempt(lambda: store.update("s", lambda d: {"n": d["n"] + 1}))
    results["update old"] = attempt(lambda: store.update("old", lambda d: {"v": "changed"}))
    with DiskcacheBackend(rw) as arbiter:  # what was acknowledged, a durable tier holds
        results["arbiter holds"] = arbiter.get("s") is not None
    mount("rw")
    time.sleep(1.2)  # past RETRY_SECONDS: the next call to the disk tier opens it read-write
    results["save after"] = attempt(lambda: store.save("t", {"n": 2}))
    store.close()
    with SessionStore(f"diskcache://{ro}", dict) as disk:  # brought up to date: what it missed
        results["disk holds"] = [disk.load(k) for k in ("s", "t", "old")]

    results["empty"] = attempt(lambda: SessionStore(
        f"memory:// | diskcache://{rw} | diskcache://{empty}", dict).save("e", {"n": 3}))

    async def run_async():
        backend = open_async_backend(f"memory:// | diskcache://{rw} | diskcache://{ro2}")
        try:
            await backend.set("a", b"x")
            return await backend.get("a")
        finally:
            await backend.aclose()

    results["async chain"] = attempt(lambda: asyncio.run(run_async()).decode())
    print(json.dumps(results))
"""


def _in_namespace(directory: Path) -> dict[str, Any]:
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        pytest.fail("this test needs unshare and mount (util-linux)")
    result = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", textwrap.dedent(_SCRIPT), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(result.stdout)
    return outcome


@pytest.mark.slow
def test_a_chain_starts_with_its_read_only_disk_tier_down_and_opens_it_later(
    tmp_path: Path,
) -> None:
    results = _in_namespace(tmp_path)
    ro = str(tmp_path / "ro")
    for name in ("alone", "arbiter", "async arbiter"):
        kind, message = results[name]
        assert kind == "NotWritableError", (name, results[name])
        assert ro in message and "make" in message and "writable" in message
    assert len(results["warned"]) == 1, results["warned"]
    assert "starts with tier 2 down" in results["warned"][0]
    assert results["save"][0] == "ok", results["save"]
    assert results["load"] == ["ok", {"n": 1}]
    assert results["load old"] == ["ok", {"v": "kept"}]  # read from the read-only disk
    assert results["update"][0] == "ok", results["update"]
    assert results["update old"][0] == "ok", results["update old"]
    assert results["arbiter holds"] is True
    assert results["save after"][0] == "ok", results["save after"]
    assert results["disk holds"] == [{"n": 2}, {"n": 2}, {"v": "changed"}]
    assert results["async chain"] == ["ok", "x"]
    assert results["empty"][0] == "ok", results["empty"]  # no database to read: a down tier
