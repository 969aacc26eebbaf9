"""Checks the Redis tests of every topology share: a planted password that must never show, and a
forked child that reports what it saw. Reusable by any backend's tests; the Redis suite hands
them out as the ``planted_password`` and ``run_forked`` fixtures (``backends/redis/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from session_store.errors import BackendError, BackendUnavailableError
from session_store.registry import open_backend

__all__ = [
    "Forked",
    "SecretWatch",
    "exception_chain",
    "exception_texts",
    "open_as",
    "open_async_as",
    "own_sockets",
    "run_forked",
    "run_threads",
    "sockets_opened_since",
    "sockets_settled",
    "through_closes",
    "unread_bytes",
]

_B = TypeVar("_B")


def open_as(kind: type[_B], url: str, **overrides: Any) -> _B:
    """``open_backend(url, **overrides)``, checked to open a ``kind`` (the URL's scheme and
    entry point chose the class the test means)."""
    backend = open_backend(url, **overrides)
    assert isinstance(backend, kind), f"{url!r} opened a {type(backend).__name__}"
    return backend


def open_async_as(kind: type[_B], url: str, **overrides: Any) -> _B:
    """:func:`open_as` for ``open_async_backend``."""
    from session_store.aio import open_async_backend

    backend = open_async_backend(url, **overrides)
    assert isinstance(backend, kind), f"{url!r} opened a {type(backend).__name__}"
    return backend


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything reachable through ``__cause__`` / ``__context__``, once each."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is seen for seen in found):
            continue
        found.append(item)
        todo += [item.__cause__, item.__context__]
    return found


def exception_texts(exc: BaseException) -> list[str]:
    """Every text ``exc`` and its chain show: ``str``, ``repr``, arguments and attributes."""
    texts: list[str] = []
    for item in exception_chain(exc):
        texts += [str(item), repr(item), *(repr(arg) for arg in item.args)]
        texts += [repr(value) for value in vars(item).values()]
    return texts


class SecretWatch:
    """A password to plant in a deployment, and every text a test saw of it: none may hold it.

    Args:
        caplog: the test's log capture; set to DEBUG, and searched too by
            :meth:`assert_never_shown`.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        #: Characters a URL must escape, so that a careless quoting shows.
        self.password = f"pw-{secrets.token_hex(12)}-@:/%|"
        self.shown: list[str] = []
        self._caplog = caplog
        caplog.set_level("DEBUG")

    def show(self, *objects: object) -> None:
        """Record what ``str`` and ``repr`` of each object show."""
        self.shown += [text for obj in objects for text in (str(obj), repr(obj))]

    def error(self, error: BaseException) -> BaseException:
        """Record an error and everything chained to it; one raised by a backend
        (a :class:`~session_store.errors.BackendError`) chains nothing at all."""
        if isinstance(error, BackendError):
            assert error.__cause__ is None and error.__context__ is None, repr(error)
        self.shown += exception_texts(error)
        return error

    def raises(self, kind: type[BaseException], operation: Callable[[], object]) -> BaseException:
        """Run ``operation``, which must raise ``kind``; the error, recorded."""
        with pytest.raises(kind) as caught:
            operation()
        return self.error(caught.value)

    def unavailable(self, operations: list[Callable[[], object]], within: float = 8.0) -> None:
        """Each operation (the deployment down) raises
        :class:`~session_store.errors.BackendUnavailableError`, recorded, within ``within``
        seconds."""
        for operation in operations:
            started = time.monotonic()
            self.raises(BackendUnavailableError, operation)
            assert time.monotonic() - started < within

    def assert_never_shown(self) -> None:
        """Nothing recorded, logged or printed in a log record holds the password (nor its
        first 27 characters, a truncated copy)."""
        self.shown += [self._caplog.text, *(r.getMessage() for r in self._caplog.records)]
        leaks = [t for t in self.shown if self.password in t or self.password[:27] in t]
        assert leaks == []


def run_threads(work: Callable[[int], object], count: int) -> None:
    """``work(0)`` ... ``work(count - 1)``, each on a thread of its own, all at once; returns
    once every one ended, raising the first error any of them raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # reported below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class Forked:
    """A forked child running ``child``, which sends back its report (JSON through a pipe)."""

    def __init__(self, child: Callable[[], dict[str, object]]) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.close(read_end)
                os.write(write_end, json.dumps(child()).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self.pid, self._read_end = pid, read_end

    def report(self) -> dict[str, object]:
        """The child's report, once it exited with status 0."""
        chunks = []
        while chunk := os.read(self._read_end, 65536):
            chunks.append(chunk)
        os.close(self._read_end)
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        report = json.loads(b"".join(chunks))
        assert isinstance(report, dict)
        return report


def run_forked(
    child: Callable[[], dict[str, object]], parent: Callable[[], None] = lambda: None
) -> dict[str, object]:
    """Fork: the child runs ``child`` while this process runs ``parent``; the child's report."""
    forked = Forked(child)
    try:
        parent()
    except BaseException:
        with contextlib.suppress(Exception):
            forked.report()  # reap the child; the parent's failure is the one to show
        raise
    return forked.report()


def unread_bytes(port: int) -> int:
    """Bytes sent to the server on ``port`` (any local process) and not read by it yet, from
    ``/proc/net/tcp``: the receive queues of its sockets and the send queues of the clients'
    sockets to it. A test that pauses the server waits on this to know every client's command
    is on its way, instead of sleeping."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        tx_queue, rx_queue = (int(part, 16) for part in fields[4].split(":"))
        if int(fields[1].split(":")[1], 16) == port:
            total += rx_queue
        elif int(fields[2].split(":")[1], 16) == port:
            total += tx_queue
    return total


def own_sockets(ports: Iterable[int]) -> frozenset[str]:
    """The inodes of this process's open TCP sockets to one of ``ports`` on 127.0.0.1 (any
    state but closed: a socket this process has not closed holds the server's client)."""
    wanted = set(ports)
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port in wanted and fields[9] in inodes:
                found.add(fields[9])
    return frozenset(found)


def sockets_opened_since(ports: Iterable[int], base: frozenset[str]) -> int:
    """This process's sockets to ``ports`` that were not open at ``base`` (what the backend
    under test opened). Not a difference of counts: a socket open at ``base`` that closes
    meanwhile must not move the count. One did (mend10): the sync cluster tests' clients,
    whose ``close()`` released nothing, are dropped in reference cycles, so their sockets
    closed whenever the cyclic garbage collector ran, at any allocation of a later test: the
    cause of attack10's one failure of the async cluster cycle that runs right after them."""
    return len(own_sockets(ports) - base)


def sockets_settled(ports: Iterable[int], base: frozenset[str]) -> int:
    """:func:`sockets_opened_since`, once it reaches 0 or after 3 s (a closed socket leaves the
    table at once; the wait is for an asyncio transport closing on a later turn)."""
    ports = list(ports)
    deadline = time.monotonic() + 3
    while True:
        count = sockets_opened_since(ports, base)
        if count == 0 or time.monotonic() > deadline:
            return count
        time.sleep(0.01)


async def through_closes(call: Callable[[], Awaitable[Any]]) -> Any:
    """``call()``, retried (up to 100 times, yielding between tries) while it raises
    :class:`BackendUnavailableError`: a call racing ``aclose()`` on another event loop may meet
    a driver that close forgot on each of the backend's own tries (the documented typed error,
    mend10b), which an app retries; the close tests hold that no connection is left, not that
    every call succeeds at once."""
    for _ in range(100):
        try:
            return await call()
        except BackendUnavailableError:
            await asyncio.sleep(0)
    return await call()
