"""ThreadedBackend's own worker threads (session_store.aio.worker): calls run off the loop in
the caller's context, errors reach the caller, a call cancelled before its thread took it is
not run while one already running finishes whole, and ``aclose`` joins the threads. Over a real
diskcache directory, on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import contextvars
import re
import threading
from pathlib import Path

import pytest

from session_store.aio import ThreadedBackend
from session_store.errors import InvalidKeyError
from session_store_diskcache import DiskcacheBackend

DOC = Path(__file__).resolve().parents[2] / "docs" / "async.md"

_WHO = contextvars.ContextVar("who", default="nobody")


@pytest.mark.anyio
async def test_calls_run_off_the_loop_in_the_callers_context_and_close_joins(
    tmp_path: Path,
) -> None:
    backend = ThreadedBackend(DiskcacheBackend(tmp_path / "disk"), threads=2)
    loop_thread = threading.get_ident()
    _WHO.set("ann")
    seen = await backend.run(lambda: (threading.get_ident(), _WHO.get()))
    assert seen[0] != loop_thread and seen[1] == "ann"
    await backend.set("k", b"v")
    assert await backend.get("k") == b"v"
    with pytest.raises(InvalidKeyError):  # raised in the thread, to the awaiting task
        await backend.get("")
    threads = [t for t in threading.enumerate() if t.name.startswith("session-store-Disk")]
    mine = [t for t in threads if t in backend._worker._threads]
    assert mine
    await backend.aclose()
    assert not any(t.is_alive() for t in mine)  # joined: none left running


@pytest.mark.anyio
async def test_a_cancelled_call_is_never_half_applied(tmp_path: Path) -> None:
    """One thread, held busy: a ``set`` cancelled while queued is not run; a ``set`` cancelled
    while it runs in the thread is applied whole."""
    backend = ThreadedBackend(DiskcacheBackend(tmp_path / "disk"), threads=1)
    try:
        release, started = threading.Event(), threading.Event()

        def hold() -> None:
            started.set()
            release.wait(20)

        holding = asyncio.ensure_future(backend.run(hold))
        await asyncio.to_thread(started.wait, 20)
        queued = asyncio.ensure_future(backend.set("queued", b"never"))
        await asyncio.sleep(0.01)
        queued.cancel()
        release.set()
        await holding
        with pytest.raises(asyncio.CancelledError):
            await queued
        running_release, running_started = threading.Event(), threading.Event()

        def slow_set() -> None:
            running_started.set()
            running_release.wait(20)
            backend.sync.set("running", b"whole")

        running = asyncio.ensure_future(backend.run(slow_set))
        await asyncio.to_thread(running_started.wait, 20)
        running.cancel()
        running_release.set()
        with pytest.raises(asyncio.CancelledError):
            await running
        await backend.run(lambda: None)  # after every call queued before it
        assert await backend.get("queued") is None
        assert await backend.get("running") == b"whole"
    finally:
        await backend.aclose()


def test_the_threaded_backend_example_in_docs_async_runs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    section = DOC.read_text(encoding="utf-8").split("## Backends", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.S)
    before = set(threading.enumerate())
    exec(compile(block, str(DOC), "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out == "{'user': 'ann'}\n17\n"
    assert set(threading.enumerate()) <= before  # its worker threads were joined
