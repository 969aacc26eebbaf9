"""How long another process keeps loading an older session after a save: the measurement the
sync and the async visibility tests share (:mod:`test_chain_acceptance`,
:mod:`test_aio_chain_visibility`).

A watcher process loads the session ``seen`` in a loop through its own chain and reports each
new value with the start of the last load that still returned the one before; this process saves
new values, and each save's lag is that start minus the moment the save returned (0 if the
watcher's first load after the save saw it).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from session_store_redis.testing import RedisServer

from .nemesis import NEAR_CACHE_BOUND, OUTAGE_BOUND, chain_url

#: Seconds without the watcher's report of a save after which it counts as hung. Only a bound
#: on the wait: a save's lag is what the watcher's own timestamps show (the start of its last
#: load that still returned the older value), however late a starved watcher reports it.
HUNG = 30.0

#: The watcher's chain counters it reports with each new value: a load that fell back on its
#: near copy because no shared tier answered (``fallbacks``), errors, and checks of a copy
#: against the shared tiers (``revalidations``).
WATCHED_COUNTERS = ("errors", "fallbacks", "revalidations", "hits", "misses")

#: Set up in the watcher before its first load: every moment its chain's near cache has
#: *finished* handling an invalidation of ``seen`` (or a flush, or a (re)connection of its
#: stream, which distrusts every copy checked before), reported with the next new value.
_HANDLED = """
    handled = []
    near = store.backend.nearcache  # the listener the stream's thread calls (sync and async)
    invalidate, connected = near.on_invalidate, near.on_connected

    def on_invalidate(keys):
        invalidate(keys)
        if keys is None or "seen" in keys:
            handled.append(time.monotonic_ns())

    def on_connected():
        connected()
        handled.append(time.monotonic_ns())

    near.on_invalidate, near.on_connected = on_invalidate, on_connected
"""

#: The watcher's loop, over ``load`` (its own store is set up before, closed after).
_LOOP = """
    current, last_stale, reported = None, 0, 0
    while True:
        started = time.monotonic_ns()
        session = {load}
        token = None if session is None else session["t"]
        if token != current:
            chain = store.backend.counters.as_dict()  # why a load was late, if one was
            told, reported = handled[reported:], len(handled)  # (appended to by the stream)
            print(json.dumps({{"token": token, "last_stale": last_stale, "at": started,
                              "chain": {{name: chain[name] for name in _COUNTERS}},
                              "handled": told}}), flush=True)
            current = token
            if token == "stop":
                break
        last_stale = started  # the latest load that had not yet seen what comes next
        {pause}
"""


def _script(imports: str, store: str, load: str, pause: str, close: str, run: str) -> str:
    return (
        f"import json, sys, time{imports}\n"
        f"_COUNTERS = {WATCHED_COUNTERS!r}\n"
        f"{'async ' if 'await' in load else ''}def main():\n"
        f"    store = {store}(sys.argv[1], dict)\n"
        + _HANDLED
        + '    print("ready", flush=True)'
        + _LOOP.format(load=load, pause=pause)
        + f"    {close}\n{run}\n"
    )


SYNC_WATCHER = _script(
    "\nfrom session_store import SessionStore",
    "SessionStore",
    'store.load("seen")',
    "",
    "store.close()",
    "main()",
)
ASYNC_WATCHER = _script(
    ", asyncio\nfrom session_store.aio import AsyncSessionStore",
    "AsyncSessionStore",
    'await store.load("seen")',
    "await asyncio.sleep(0)",
    "await store.aclose()",
    "asyncio.run(main())",
)


@contextmanager
def watcher(script: str, url: str) -> Iterator[subprocess.Popen[str]]:
    """The watcher process (``script``: :data:`SYNC_WATCHER` or :data:`ASYNC_WATCHER`)."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), url],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


class Lags(list[float]):
    """Per save, milliseconds the watcher kept loading the older value, and :attr:`history`:
    per save, what the watcher reported (when, its chain's counters) or, for a save it did not
    report in time, the watcher's state and the end of its error output. A check that fails
    prints it, so the failure explains itself."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[str] = []
        #: per save, ms from the moment the watcher finished handling the first invalidation
        #: after the save began to the start of its last load that still returned the older
        #: value (``None``: no invalidation was handled, e.g. without a stream)
        self.late: list[float | None] = []

    def explain(self) -> str:
        """The history, one save a line."""
        head = "per save (ms from its return to the watcher's last stale load):"
        return "\n".join([head, *self.history])


def _watcher_state(child: subprocess.Popen[str], lines: list[str]) -> str:
    """What a watcher that did not report a save looks like: alive or its exit status, its
    last reports, the end of its error output."""
    status = child.poll()
    if status is None:
        return f"watcher alive (pid {child.pid}); last reports: {lines[-3:]}"
    assert child.stderr is not None
    error = child.stderr.read()[-2000:]
    return f"watcher exited {status}; last reports: {lines[-3:]}; stderr: {error}"


def staleness_ms(
    save: Callable[[str], object], script: str, reader_url: str, tries: int, patience: float
) -> Lags:
    """Per save (``save(token)`` stores ``{"t": token}`` under ``seen``): how long after it
    returned the watcher's loads still returned the older value. Stops at the first save not
    seen within ``patience`` seconds (inf)."""
    lags = Lags()
    handled: list[int] = []  # when the watcher finished handling invalidations (its reports)
    save("start")
    with watcher(script, reader_url) as child:
        lines: list[str] = []

        def read_lines() -> None:
            assert child.stdout is not None
            for line in child.stdout:
                lines.append(line)

        reading = threading.Thread(target=read_lines)
        reading.start()
        deadline = time.monotonic() + patience
        while not any('"start"' in line for line in lines) and time.monotonic() < deadline:
            time.sleep(0.001)
        for attempt in range(tries):
            token = f"v{attempt}"
            began = time.monotonic_ns()
            save(token)
            saved = time.monotonic_ns()
            deadline = time.monotonic() + patience
            seen = None
            while seen is None and time.monotonic() < deadline:
                seen = next((line for line in lines if f'"{token}"' in line), None)
                time.sleep(0.0005)
            if seen is None:
                lags.append(float("inf"))
                lags.history.append(
                    f"{token}: not seen in {patience} s; {_watcher_state(child, lines)}"
                )
                break
            report = json.loads(seen)
            lags.append(max(0, report["last_stale"] - saved) / 1e6)
            handled.extend(report["handled"])
            after = [moment for moment in handled if moment >= began]
            # a stale load that started after the watcher handled this save's invalidation
            late = (report["last_stale"] - min(after)) / 1e6 if after else None
            lags.late.append(late)
            lags.history.append(
                f"{token}: {lags[-1]:.1f} ms, seen {(report['at'] - saved) / 1e6:.1f} ms after "
                f"the save returned; last stale load "
                + ("(no invalidation handled)" if late is None else f"{late:+.1f} ms after "
                   "its invalidation was handled")
                + f"; watcher's chain {report['chain']}"
            )  # fmt: skip
        save("stop")
        reading.join(10)
    return lags


def without_stream(server: RedisServer, disk: Path) -> tuple[str, str]:
    """A writer's chain URL, and a reader's whose Redis user may neither subscribe nor track
    keys (no invalidation stream: the version check bounds its staleness)."""
    with server.client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "nostream", "on", ">nostream-pw", "~*", "&*", "+@all",
            "-subscribe", "-psubscribe", "-ssubscribe", "-client", "+client|setname",
        )  # fmt: skip
    writer = chain_url(server.url_for(prefix="seen:"), disk)
    reader = chain_url(
        server.url_for(prefix="seen:", username="nostream", password="nostream-pw"), disk
    )
    return writer, reader


def check_with_stream(name: str, lags: Lags, tries: int) -> float:
    """Print what saves with the invalidation stream up showed, and check it: every save seen,
    the median within the near cache's bound, the max within ``max_staleness``, and no load
    that started after the watcher had handled the save's invalidation returned the older
    value (:attr:`Lags.late`: the promise, one message, whatever the message's delivery took
    on a starved machine). Returns the 95th percentile, which is the machine's: printed, not
    bounded."""
    p95 = statistics.quantiles(lags, n=20)[-1]
    late = [ms for ms in lags.late if ms is not None]
    print(
        f"\nMEASURED {name}, invalidation up: {len(lags)} saves, median "
        f"{statistics.median(lags):.2f} ms, p95 {p95:.2f} ms, max {max(lags):.2f} ms; "
        f"{len(late)} with an invalidation handled, the last stale load "
        f"{max(late, default=0):+.2f} ms after it at most"
    )
    explained = lags.explain()
    assert len(lags) == tries, explained
    assert statistics.median(lags) <= NEAR_CACHE_BOUND * 1000, explained
    assert max(lags) <= OUTAGE_BOUND * 1000, explained
    assert all(ms <= 0 for ms in late), explained  # served after its invalidation was handled
    return p95


def check_without_stream(name: str, lags: Lags, tries: int) -> None:
    """Print what saves without the invalidation stream showed, and check it: every save seen,
    within ``max_staleness`` (the version check)."""
    print(
        f"\nMEASURED {name}, invalidation down: {len(lags)} saves, median "
        f"{statistics.median(lags):.1f} ms, max {max(lags):.1f} ms"
    )
    explained = lags.explain()
    assert len(lags) == tries, explained
    assert max(lags) <= OUTAGE_BOUND * 1000, explained
