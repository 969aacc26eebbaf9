"""Web sessions end to end: requests per second of a minimal app that reads and writes a 2 KB
session, served by a real server and driven by a real load generator on loopback, ours against
the peers over the same redis-server; and the async store against the sync store.

* **Flask**: ``session_store.flask`` against Flask-Session (``SESSION_TYPE = "redis"``), each app
  served by gunicorn (1 process, ``gthread``, 4 threads).
* **Starlette**: ``session_store.starlette.SessionMiddleware`` against starsessions
  (``RedisStore`` + ``SessionAutoloadMiddleware``), each served by uvicorn (1 process). The
  like-for-like row, the one the goal is about, is ours with ``autoload=True`` (read, awaited,
  before the app runs): starsessions never reads a session by itself; its ``SessionMiddleware``
  alone hands the app a guard that raises ``SessionNotLoaded`` on any use of
  ``request.session`` until the app awaits ``load_session(request)`` or adds
  ``SessionAutoloadMiddleware``, which is what its docs show and what this app does. Ours is
  also measured as the drop-in (read on first use of ``request.session``, which starsessions
  cannot do): that read is synchronous, so the event loop waits for it, and the row shows what
  that convenience costs; it has no starsessions counterpart and no goal.
* The app: ``GET /`` reads the session's 2 KB ``blob`` and increments its counter ``n`` (so
  every request loads and saves the session). ``wrk -t4 -c4``: four keep-alive connections, one
  session each (a Lua script gives every wrk thread the cookie of a session created first).
* Rounds alternate the contenders (the order rotating) after a 1 s warm-up of each; a ratio is
  the median of per-round ratios. Goal: ours at least equal to the peer (ratio >= 1).
* **Like with like**: both contenders of a pair run under the same server command (gunicorn
  ``-w 1 -k gthread --threads 4``, or uvicorn with one process), the same app code, the same
  redis-server, with no password or TLS, and each library with its defaults: 256-bit random
  ids in both (Flask-Session: ``token_urlsafe(32)``, unsigned), Flask-Session's msgpack and
  blind ``SET``, our JSON envelope (compressed only above 16 KiB, so not here) and Lua
  compare-and-set. The report also gives what each contender costs the redis-server per request
  (its commands and CPU, from ``INFO``) and the bytes it stores for the session, so the
  session sizes can be seen to match.
* **Async vs sync store**: ``AsyncSessionStore.save`` + ``load`` of the 2 KB session on asyncio
  (and uvloop) against ``SessionStore.save`` + ``load``, the same redis-server. Goal: <= 1.2x.

Needs ``wrk`` (Debian: ``apt-get install wrk``), gunicorn and uvicorn (the ``webtest`` extra),
and a ``redis-server`` binary. Run: ``python -m benchmarks.bench_web [--quick]``, or one pair
only, printed as one line each: ``python -m benchmarks.bench_web --only flask|starlette
[--rounds N]``.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import machine_line, markdown_table

ROOT = Path(__file__).resolve().parents[1]
BLOB = "".join(chr(97 + (i * 7) % 26) for i in range(2000))  # 2 KB of text
CONNECTIONS = 4
_LUA = """
local counter = 0
local threads = {}
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
function init(args)
  cookie = args[id]
end
function request()
  return wrk.format("GET", "/", {["Cookie"] = cookie})
end
"""


# -- the apps (built in the server processes, from the environment) -----------------------------
def make_flask() -> Any:
    """The Flask app for ``BENCH_KIND`` = ``ours`` | ``flask-session`` over ``BENCH_REDIS_URL``
    (``ours-redis-py``: ours with its Redis calls on redis-py's pool, not the lean client of
    :mod:`session_store_redis.leanconn`, for :mod:`benchmarks.web_profile`'s before/after)."""
    from flask import Flask, session

    app = Flask(__name__)
    app.secret_key = "bench"
    url = os.environ["BENCH_REDIS_URL"]
    kind = os.environ["BENCH_KIND"]
    if kind.startswith("ours"):
        from session_store.flask import SessionStoreInterface

        app.config["SESSION_STORE_URL"] = url + "?prefix=ours:"
        interface = SessionStoreInterface.init_app(app)
        if kind == "ours-redis-py":  # (web_profile's "before": the lean client switched off)
            assert interface.store is not None
            interface.store.backend._lean = None  # type: ignore[attr-defined]
    else:
        import redis
        from flask_session import Session  # type: ignore[import-untyped]

        app.config.update(SESSION_TYPE="redis", SESSION_REDIS=redis.Redis.from_url(url))
        Session(app)

    @app.get("/")
    def hit() -> str:
        if "blob" not in session:
            session["blob"] = BLOB
        session["n"] = session.get("n", 0) + 1
        return str(len(session["blob"]) + session["n"])

    return app


def make_starlette() -> Any:
    """The Starlette app for ``BENCH_KIND`` = ``ours`` | ``starsessions``."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hit(request: Request) -> PlainTextResponse:
        session = request.session
        if "blob" not in session:
            session["blob"] = BLOB
        session["n"] = session.get("n", 0) + 1
        return PlainTextResponse(str(len(session["blob"]) + session["n"]))

    url = os.environ["BENCH_REDIS_URL"]
    middleware: list[Middleware]
    kind = os.environ["BENCH_KIND"]
    if kind.startswith("ours"):
        from session_store.starlette import SessionMiddleware

        # "ours": the drop-in (read on first use of request.session, the loop waits for it);
        # "ours-autoload": read awaited before the app runs, as starsessions' autoload does
        autoload = kind == "ours-autoload"
        middleware = [
            Middleware(
                SessionMiddleware, url=url + "?prefix=ours:", max_age=3600, autoload=autoload
            )
        ]
    else:
        import redis.asyncio
        from starsessions import SessionAutoloadMiddleware
        from starsessions import SessionMiddleware as StarSessions
        from starsessions.stores.redis import RedisStore

        store = RedisStore(connection=redis.asyncio.Redis.from_url(url))
        middleware = [
            Middleware(StarSessions, store=store, lifetime=3600, cookie_https_only=False),
            Middleware(SessionAutoloadMiddleware),
        ]
    return Starlette(routes=[Route("/", hit)], middleware=middleware)


# -- servers and load ----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its direct children (a
    gunicorn worker), read from ``/proc``: the server's cost, whatever else the machine runs."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a process that ended meanwhile
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


@dataclass
class Server:
    """A contender's server process."""

    url: str
    pid: int


@contextmanager
def serving(framework: str, kind: str, redis_url: str) -> Iterator[Server]:
    """A server process for one contender; yields it, stops it by its pid."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    if framework == "flask":
        command = [
            str(bin_dir / "gunicorn"), "-w", "1", "-k", "gthread", "--threads", "4",
            "-b", f"127.0.0.1:{port}", "--log-level", "warning",
            "benchmarks.bench_web:make_flask()",
        ]  # fmt: skip
    else:
        command = [
            str(bin_dir / "uvicorn"), "--factory", "benchmarks.bench_web:make_starlette",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log",
        ]  # fmt: skip
    env = {**os.environ, "BENCH_KIND": kind, "BENCH_REDIS_URL": redis_url}
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_serving(url, process)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=15)


def _new_session(url: str) -> str:
    """Create a session with one request; its ``Cookie`` header value."""
    with urllib.request.urlopen(url, timeout=5) as response:
        cookie = response.headers.get("Set-Cookie")
    if not cookie:
        raise RuntimeError(f"{url} set no session cookie")
    return str(cookie).split(";", 1)[0]


@dataclass
class Run:
    """One ``wrk`` run on one contender."""

    rate: float  # requests per second
    cpu_us: float  # the server's CPU microseconds per request
    requests: int


def load(server: Server, seconds: float, script: Path) -> Run:
    """``wrk`` on the server for ``seconds``, one session per connection (errors and non-2xx
    responses make it fail)."""
    url = server.url
    cookies = [_new_session(url) for _ in range(CONNECTIONS)]
    cpu_before = cpu_seconds(server.pid)
    result = subprocess.run(
        ["wrk", f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "-s", str(script),
         url, "--", *cookies],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    if "Non-2xx" in result.stdout or "Socket errors" in result.stdout:
        raise RuntimeError(f"wrk saw errors:\n{result.stdout}")
    cpu = cpu_seconds(server.pid) - cpu_before
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    total = re.search(r"(\d+) requests in", result.stdout)
    if match is None or total is None:
        raise RuntimeError(f"no request counts in wrk's output:\n{result.stdout}")
    requests = max(1, int(total.group(1)))
    return Run(float(match.group(1)), cpu / requests * 1e6, requests)


class RedisCost:
    """What the shared redis-server did for a contender's requests: ``INFO commandstats``
    calls and ``INFO cpu`` seconds, before and after a run (no ``MONITOR``, which would slow
    the server down). Commands run inside a Lua script are counted too (``EVALSHA`` of our
    compare-and-set shows as ``evalsha`` + ``get`` + ``set``)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: dict[str, list[float]] = {}
        self.cpu_us: list[float] = []

    def _read(self) -> tuple[dict[str, int], float]:
        stats = self._client.info("commandstats")
        cpu = self._client.info("cpu")
        calls = {
            name.removeprefix("cmdstat_"): int(fields["calls"])
            for name, fields in stats.items()
            if isinstance(fields, dict)
        }
        return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    def measure(self, run: Callable[[], Run]) -> Run:
        """``run()``, with the server's commands and CPU per request it caused recorded."""
        calls_before, cpu_before = self._read()
        result = run()
        calls_after, cpu_after = self._read()
        self.cpu_us.append((cpu_after - cpu_before) / result.requests * 1e6)
        for name, count in calls_after.items():
            if name in ("info", "hello", "ping", "client|setinfo"):
                continue  # our own reading, connection set-up and health checks
            per_request = (count - calls_before.get(name, 0)) / result.requests
            if per_request >= 0.01:
                self.calls.setdefault(name, []).append(per_request)
        return result

    def summary(self) -> str:
        """``"get 2.0, evalsha 1.0, set 1.0"``: the median calls per request of each command."""
        return ", ".join(
            f"{name.upper()} {statistics.median(counts):.1f}"
            for name, counts in sorted(self.calls.items())
        )


def stored_bytes(redis: Any, cookie: str) -> int:
    """The size of the value stored for the session whose cookie is ``cookie`` (its id is
    part of the key, whatever the prefix)."""
    sid = cookie.split("=", 1)[1]
    keys = list(redis.scan_iter(match=f"*{sid}*", count=1000))
    if len(keys) != 1:
        raise RuntimeError(f"expected one key holding session {sid}, found {len(keys)}")
    return int(redis.strlen(keys[0]))


@dataclass
class Comparison:
    """Per-round figures of both contenders, and what each costs the shared Redis."""

    rate: dict[str, list[float]]
    cpu: dict[str, list[float]]
    redis: dict[str, RedisCost]
    size: dict[str, int]  # bytes stored per session


def compare(
    framework: str, ours: str, peer: str, redis_server: Any, rounds: int, seconds: float
) -> Comparison:
    """Requests/s and server CPU us/request of each contender per round, the order
    alternating, each contender's Redis commands and Redis CPU per request, and the bytes each
    stores for a session."""
    url = redis_server.url_for()
    redis = redis_server.client()
    result = Comparison({ours: [], peer: []}, {ours: [], peer: []}, {}, {})
    result.redis = {ours: RedisCost(redis), peer: RedisCost(redis)}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "sessions.lua"
        script.write_text(_LUA, encoding="utf-8")
        with (
            serving(framework, ours, url) as ours_url,
            serving(framework, peer, url) as peer_url,
        ):
            servers = {ours: ours_url, peer: peer_url}
            for name in (ours, peer):  # warm-up
                load(servers[name], 1, script)
            for index in range(rounds):
                order = [ours, peer] if index % 2 == 0 else [peer, ours]
                for name in order:
                    run = result.redis[name].measure(
                        lambda name=name: load(servers[name], seconds, script)  # type: ignore[misc]
                    )
                    result.rate[name].append(run.rate)
                    result.cpu[name].append(run.cpu_us)
            for name in (ours, peer):
                result.size[name] = stored_bytes(redis, _new_session(servers[name].url))
    redis.close()
    return result


# -- the async store against the sync store -------------------------------------------------------
def store_ratio(redis_url: str, rounds: int, calls: int) -> dict[str, float]:
    """The async store's time over the sync store's for ``save`` + ``load``, on asyncio (and
    uvloop): :func:`benchmarks.bench_aio_store.paired` (rounds rotating the contenders, each
    on a loop and store kept for the run; medians of per-round ratios of wall time)."""
    from benchmarks.bench_aio_store import paired

    result = paired("redis", redis_url, rounds, calls)
    ratios = {
        name: float(value["wall"])
        for name, value in result.items()
        if isinstance(value, dict)  # one per event loop
    }
    return ratios | {"sync_us": float(result["sync_wall_us"])}


# -- report ---------------------------------------------------------------------------------------
def _ratios(samples: dict[str, list[float]], ours: str, peer: str) -> list[float]:
    return [a / b for a, b in zip(samples[ours], samples[peer], strict=True)]


def _ratio(samples: dict[str, list[float]], ours: str, peer: str) -> float:
    return statistics.median(_ratios(samples, ours, peer))


def spread(ratios: list[float]) -> str:
    """The middle half of the per-round ratios (``"0.91-1.06"``: first to third quartile), or
    their range under four rounds: how far one round's ratio moves with what else the shared
    machine runs, so that a median's distance from 1 can be read against it."""
    if len(ratios) < 4:
        return f"{min(ratios):.2f}-{max(ratios):.2f}"
    low, _, high = statistics.quantiles(ratios, n=4)
    return f"{low:.2f}-{high:.2f}"


def _row(app: str, peer_name: str, result: Comparison, peer: str, ours: str = "ours") -> list[str]:
    rate, cpu = result.rate, result.cpu
    return [
        app,
        peer_name,
        f"{statistics.median(rate[ours]):,.0f}",
        f"{statistics.median(rate[peer]):,.0f}",
        f"{_ratio(rate, ours, peer):.2f}",
        spread(_ratios(rate, ours, peer)),
        f"{statistics.median(cpu[ours]):,.0f} / {statistics.median(cpu[peer]):,.0f}",
        f"{_ratio(cpu, peer, ours):.2f}",
        ">= 1",
    ]


def report(quick: bool = False) -> str:
    """The Markdown section (and ``benchmarks/web.png``)."""
    from session_store_redis.testing import RedisServer

    if shutil.which("wrk") is None:
        return "### Web sessions (bench_web)\n\nnot run: `wrk` is not installed\n"
    rounds, seconds = (2, 1.0) if quick else (8, 2.0)
    server = RedisServer(directory=Path(tempfile.mkdtemp(prefix="bench-web-"))).start()
    try:
        flask = compare("flask", "ours", "flask-session", server, rounds, seconds)
        star = compare("starlette", "ours", "starsessions", server, rounds, seconds)
        auto = compare("starlette", "ours-autoload", "starsessions", server, rounds, seconds)
        stores = store_ratio(server.url_for(), rounds, 300 if quick else 2000)
    finally:
        server.stop()
    drop_in = _row(
        "Starlette (uvicorn, 1 process), drop-in: read on first use, blocking the loop",
        "starsessions (autoload; it cannot read on first use)",
        star,
        "starsessions",
    )
    drop_in[-1] = "none (no counterpart)"
    rows = [
        _row("Flask (gunicorn -w 1 gthread x4)", "Flask-Session", flask, "flask-session"),
        _row(
            "Starlette (uvicorn, 1 process), autoload=True: like for like",
            "starsessions (autoload)",
            auto,
            "starsessions",
            "ours-autoload",
        ),
        drop_in,
    ]
    redis_rows = [
        [framework, name, result.redis[key].summary(),
         f"{statistics.median(result.redis[key].cpu_us):.0f}", f"{result.size[key]:,}"]
        for framework, result, ours, peer in (
            ("Flask", flask, "ours", "flask-session"),
            ("Starlette", auto, "ours-autoload", "starsessions"),
        )
        for name, key in (("ours", ours), (peer, peer))
    ]  # fmt: skip
    store_rows = [
        [f"async ({name}) / sync", f"{ratio:.2f}", "<= 1.2"]
        for name, ratio in stores.items()
        if name != "sync_us"
    ]
    _plot(flask.rate, auto.rate, stores)
    return (
        "### Web sessions (bench_web)\n\n"
        f"{machine_line()}. A minimal app reads and writes a 2 KB session per request; "
        f"`wrk -t{CONNECTIONS} -c{CONNECTIONS}` on loopback, one session per connection, "
        f"a 1 s warm-up each, then {rounds} rounds of {seconds:g} s alternating the "
        "contenders; ratios are medians of per-round ratios, beside the first to third "
        "quartile of those ratios. Each pair runs the same server with the same workers, and "
        "one redis-server serves everyone.\n\n"
        + markdown_table(
            rows,
            [
                "app and server",
                "peer",
                "ours req/s",
                "peer req/s",
                "req/s ours / peer",
                "middle half of the rounds' ratios",
                "server CPU us/request ours / peer",
                "CPU peer / ours",
                "goal (both ratios)",
            ],
        )
        + "\n\nWhat each costs the shared redis-server per request (`INFO commandstats` and "
        "`INFO cpu` around each run; commands inside a Lua script are counted too) and the "
        "bytes it stores for the session:\n\n"
        + markdown_table(
            redis_rows,
            ["app", "contender", "commands / request", "Redis CPU us / request", "stored bytes"],
        )
        + "\n\nThe server's CPU per request (``/proc``, the server process and its workers) "
        "counts no time spent waiting for the CPU, but it still moves with what else the "
        "machine runs (caches, context switches: 250-490 us for the same app at load "
        "averages of 2-24 here); requests/s moves far more, and this machine is shared. "
        "``benchmarks/web_profile.py --instructions`` gives counts that do not move at all."
        + "\n\nThe async store against the sync store, `save` + `load` of the same session "
        f"(sync: {stores['sync_us']:.0f} us per pair):\n\n"
        + markdown_table(store_rows, ["time ratio", "value", "goal"])
        + "\n\n![web benchmark](web.png)\n"
    )


def _plot(
    flask: dict[str, list[float]], star: dict[str, list[float]], stores: dict[str, float]
) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    names = ["Flask", "Starlette (autoload)"]
    ours = [statistics.median(flask["ours"]), statistics.median(star["ours-autoload"])]
    peers = [statistics.median(flask["flask-session"]), statistics.median(star["starsessions"])]
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], ours, 0.4, label="session-store")
    left.bar([x + 0.2 for x in xs], peers, 0.4, label="Flask-Session / starsessions")
    left.set_xticks(list(xs), names)
    left.set_ylabel("requests / s (2 KB session)")
    left.legend(fontsize=8)
    loops = [name for name in stores if name != "sync_us"]
    right.bar(loops, [stores[name] for name in loops], color="tab:green")
    right.axhline(1.2, color="tab:red", linestyle="--", label="goal 1.2x")
    right.set_ylabel("async / sync time (save + load)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(__file__).with_name("web.png"), dpi=110)
    plt.close(fig)


def only(framework: str, rounds: int, seconds: float = 2.0) -> list[str]:
    """One framework's pairs (``--only``), one line each: the median requests/s ratio with the
    middle half of the rounds' ratios, and the server CPU ratio; nothing is written. Flask's
    second pair is ours against ours on redis-py's pool (the lean client switched off)."""
    from session_store_redis.testing import RedisServer

    pairs = {
        "flask": [("ours", "flask-session"), ("ours", "ours-redis-py")],
        "starlette": [("ours-autoload", "starsessions"), ("ours", "starsessions")],
    }[framework]
    server = RedisServer(directory=Path(tempfile.mkdtemp(prefix="bench-web-"))).start()
    lines = []
    try:
        for ours, peer in pairs:
            result = compare(framework, ours, peer, server, rounds, seconds)
            rates = _ratios(result.rate, ours, peer)
            lines.append(
                f"{framework} {ours} / {peer}: req/s {statistics.median(rates):.2f} "
                f"({spread(rates)}), server CPU {peer} / {ours} "
                f"{_ratio(result.cpu, peer, ours):.2f}, Redis CPU us/request "
                f"{statistics.median(result.redis[ours].cpu_us):.0f} / "
                f"{statistics.median(result.redis[peer].cpu_us):.0f}"
            )
    finally:
        server.stop()
    return lines


if __name__ == "__main__":
    if "--only" in sys.argv:
        count = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 8
        print("\n".join(only(sys.argv[sys.argv.index("--only") + 1], count)))
    else:
        print(report(quick="--quick" in sys.argv))
