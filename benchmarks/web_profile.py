"""Where one web request's cost goes: ours against Flask-Session or starsessions, in process, no
HTTP server.

The app of :mod:`benchmarks.bench_web` (read a 2 KB session, increment a counter) is called
through its WSGI entry point with a session cookie, over a ``redis-server`` this script starts on
a free loopback port. Three views:

* default: alternating rounds of each contender, the median CPU and wall microseconds per
  request, the redis-server's CPU microseconds per request (``INFO cpu``; one request at a
  time, so not inflated by contention), and the Redis commands per request (``INFO
  commandstats`` before and after, no ``MONITOR``; commands inside a Lua script are counted
  too);
* ``--instructions``: instructions per request counted by ``valgrind --tool=callgrind`` (the
  difference between a run of 400 and one of 100 requests, so start-up cancels out; a fixed
  ``PYTHONHASHSEED``, so two runs of the same code agree to the instruction). Unlike time,
  the count does not move with what else the machine runs: use it to compare changes.
* ``--profile``: the top of a cProfile run of each.
* ``--calls``: the client's cost of each Redis call a request makes (the backend's
  ``get_versioned`` and ``set_if`` of a 2 KB session) on the lean client
  (:mod:`session_store_redis.leanconn`) and on redis-py's pool (the lean client switched
  off: what ran before it), CPU microseconds per call in alternating rounds; with
  ``--instructions``, instructions per call (callgrind, 2,000 calls less 500).

Flask's contenders are ours, ours on redis-py's pool (``ours-redis-py``: before the lean
client) and Flask-Session. Run: ``python -m benchmarks.web_profile [--framework
flask|starlette] [--instructions] [--profile] [--calls] [--requests N]``. Starlette's app
(``bench_web.make_starlette``: ours as the drop-in, ours with ``autoload=True``, starsessions)
is called through its ASGI entry point on one event loop kept for the run, as uvicorn's is.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench_web import BLOB, ROOT, make_flask, make_starlette

#: The contenders of each framework (``--framework``): ours first, then the peer.
FRAMEWORKS = {
    "flask": ("ours", "ours-redis-py", "flask-session"),
    "starlette": ("ours", "ours-autoload", "starsessions"),
}
Request = Callable[[str | None], str | None]


def _environ(cookie: str | None) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
    }
    if cookie is not None:
        environ["HTTP_COOKIE"] = cookie
    return environ


def client(app: Any) -> Request:
    """One request through ``app``'s WSGI callable; returns the ``Set-Cookie`` name=value."""

    def request(cookie: str | None) -> str | None:
        headers: list[tuple[str, str]] = []

        def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
            if not status.startswith("200"):
                raise RuntimeError(f"the app answered {status}")
            headers.extend(response_headers)

        b"".join(app(_environ(cookie), start_response))
        for name, value in headers:
            if name.lower() == "set-cookie":
                return value.split(";", 1)[0]
        return None

    return request


def asgi_client(app: Any) -> Request:
    """One request through ``app`` (an ASGI app) on an event loop of its own, kept for every
    request (as uvicorn's is); returns the ``Set-Cookie`` name=value."""
    import asyncio

    loop = asyncio.new_event_loop()
    body = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return body

    def request(cookie: str | None) -> str | None:
        headers = [(b"host", b"127.0.0.1")]
        if cookie is not None:
            headers.append((b"cookie", cookie.encode("latin-1")))
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": "/", "raw_path": b"/", "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }  # fmt: skip
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        loop.run_until_complete(app(scope, receive, send))
        start = sent[0]
        if start["status"] != 200:
            raise RuntimeError(f"the app answered {start['status']}")
        for name, value in start["headers"]:
            if name == b"set-cookie":
                return str(value.decode("latin-1")).split(";", 1)[0]
        return None

    return request


def contender(
    kind: str, redis_url: str, warm_up: int = 200, framework: str = "flask"
) -> tuple[Request, str]:
    """The app of ``kind`` as a request function, and the cookie of a session it created."""
    os.environ["BENCH_KIND"] = kind
    os.environ["BENCH_REDIS_URL"] = redis_url
    request = client(make_flask()) if framework == "flask" else asgi_client(make_starlette())
    cookie = request(None)
    if cookie is None:
        raise RuntimeError(f"{kind} set no session cookie")
    for _ in range(warm_up):
        request(cookie)
    return request, cookie


def run(request: Request, cookie: str, requests: int) -> tuple[float, float]:
    """CPU and wall microseconds per request over ``requests`` requests."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(requests):
        request(cookie)
    return (
        (time.process_time() - cpu) / requests * 1e6,
        (time.perf_counter() - wall) / requests * 1e6,
    )


def measure(server: Any, requests: int, framework: str, rounds: int = 10) -> None:
    """Alternating rounds: median CPU and wall us/request, Redis commands/request."""
    kinds = FRAMEWORKS[framework]
    apps = {kind: contender(kind, server.url_for(), framework=framework) for kind in kinds}
    cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    wall: dict[str, list[float]] = {kind: [] for kind in kinds}
    redis_cpu: dict[str, list[float]] = {kind: [] for kind in kinds}
    calls: dict[str, dict[str, float]] = {}
    for index in range(rounds):
        for kind in kinds if index % 2 == 0 else kinds[::-1]:
            before, redis_before = server.command_calls(), _redis_cpu(server)
            c, w = run(*apps[kind], requests)
            redis_after, after = _redis_cpu(server), server.command_calls()
            cpu[kind].append(c)
            wall[kind].append(w)
            redis_cpu[kind].append((redis_after - redis_before) / requests * 1e6)
            calls[kind] = {
                name: (count - before.get(name, 0)) / requests
                for name, count in after.items()
                if count - before.get(name, 0) >= requests / 100 and name != "info"
            }
    for kind in kinds:
        print(
            f"{kind:14s} CPU {statistics.median(cpu[kind]):6.1f} us/request, wall "
            f"{statistics.median(wall[kind]):6.1f}; Redis CPU "
            f"{statistics.median(redis_cpu[kind]):5.1f} us/request, commands/request: "
            f"{calls[kind]}"
        )
    peer = kinds[-1]
    for kind in kinds[:-1]:
        ratio = statistics.median(a / b for a, b in zip(cpu[peer], cpu[kind], strict=True))
        print(f"CPU {peer} / {kind}: {ratio:.2f}")


def _redis_cpu(server: Any) -> float:
    """The redis-server's CPU seconds so far (``INFO cpu``, user + system)."""
    client = server.client()
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _child(framework: str, kind: str, requests: int, redis_url: str) -> None:
    """In a process run under valgrind: ``requests`` requests of ``kind`` (framework
    ``calls``: ``requests`` calls of the :data:`CALLS` contender ``kind``)."""
    if framework == "calls":
        call_loop(kind, redis_url)(requests)
        return
    request, cookie = contender(kind, redis_url, warm_up=50, framework=framework)
    for _ in range(requests):
        request(cookie)


def instructions(redis_url: str, framework: str, kind: str, requests: int) -> int:
    """Instructions of a child process making ``requests`` requests (``callgrind``)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable,
             "-m", "benchmarks.web_profile", "--child", framework, kind, str(requests),
             redis_url],
            cwd=ROOT, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # the same string hashes every run
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def count_instructions(server: Any, framework: str) -> None:
    """Instructions per request of each contender (400 requests less 100, so start-up and
    warm-up cancel out)."""
    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind")
        return
    kinds = FRAMEWORKS[framework]
    per_request = {}
    for kind in kinds:
        many = instructions(server.url_for(), framework, kind, 400)
        few = instructions(server.url_for(), framework, kind, 100)
        per_request[kind] = (many - few) / 300
        print(f"{kind:14s} {per_request[kind] / 1e3:7.1f} k instructions/request", flush=True)
    peer = kinds[-1]
    for kind in kinds[:-1]:
        print(f"instructions {peer} / {kind}: {per_request[peer] / per_request[kind]:.2f}")


# -- the client's cost per Redis call ------------------------------------------------------------
#: ``--calls``' contenders: (backend method, lean client on).
CALLS = {
    "get_versioned, redis-py pool": ("get_versioned", False),
    "get_versioned, lean": ("get_versioned", True),
    "set_if, redis-py pool": ("set_if", False),
    "set_if, lean": ("set_if", True),
}


def call_loop(name: str, redis_url: str) -> Callable[[int], None]:
    """A function making ``n`` calls of contender ``name`` (:data:`CALLS`) on a backend of its
    own: a read of, or a compare-and-set rewriting, a 2 KB session stored first (the same
    bytes each time, so the token stays valid and every write lands)."""
    from session_store_redis import RedisBackend

    method, lean = CALLS[name]
    backend = RedisBackend.from_url(f"{redis_url}?prefix=calls-{method}:", retries=0)
    if not lean:
        backend._lean = None  # what ran before the lean client
    value = BLOB.encode()
    backend.set("k", value)
    found = backend.get_versioned("k")
    assert found is not None
    token = found.token
    get_versioned, set_if = backend.get_versioned, backend.set_if

    def run(n: int) -> None:
        if method == "get_versioned":
            for _ in range(n):
                get_versioned("k")
        else:
            for _ in range(n):
                if not set_if("k", value, token):
                    raise RuntimeError("the compare-and-set did not land")

    run(200)  # warm-up (connections open)
    return run


def call_costs(server: Any, rounds: int = 10, calls: int = 2000) -> None:
    """CPU microseconds per call of each :data:`CALLS` contender, alternating rounds."""
    loops = {name: call_loop(name, server.url_for()) for name in CALLS}
    cpu: dict[str, list[float]] = {name: [] for name in CALLS}
    for index in range(rounds):
        for name in CALLS if index % 2 == 0 else list(CALLS)[::-1]:
            began = time.process_time()
            loops[name](calls)
            cpu[name].append((time.process_time() - began) / calls * 1e6)
    for name in CALLS:
        print(f"{name:30s} CPU {statistics.median(cpu[name]):6.1f} us/call")
    for method in ("get_versioned", "set_if"):
        before, after = cpu[f"{method}, redis-py pool"], cpu[f"{method}, lean"]
        ratio = statistics.median(a / b for a, b in zip(after, before, strict=True))
        print(f"CPU {method} lean / redis-py pool: {ratio:.2f}")


def count_call_instructions(server: Any) -> None:
    """Instructions per call of each :data:`CALLS` contender (2,000 calls less 500)."""
    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind")
        return
    for name in CALLS:
        many = instructions(server.url_for(), "calls", name, 2000)
        few = instructions(server.url_for(), "calls", name, 500)
        print(f"{name:30s} {(many - few) / 1500 / 1e3:7.1f} k instructions/call", flush=True)


def profile(server: Any, requests: int, framework: str) -> None:
    """The top of a cProfile run of each contender."""
    for kind in FRAMEWORKS[framework]:
        request, cookie = contender(kind, server.url_for(), framework=framework)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            request(cookie)
        profiler.disable()
        print(f"=== {kind}")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2], int(argv[3]), argv[4])
        return
    from session_store_redis.testing import RedisServer

    requests = int(argv[argv.index("--requests") + 1]) if "--requests" in argv else 1000
    framework = argv[argv.index("--framework") + 1] if "--framework" in argv else "flask"
    if framework not in FRAMEWORKS:
        raise SystemExit(f"--framework: one of {', '.join(FRAMEWORKS)}")
    server = RedisServer(directory=Path(tempfile.mkdtemp(prefix="web-profile-"))).start()
    try:
        if "--calls" in argv:
            if "--instructions" in argv:
                count_call_instructions(server)
            else:
                call_costs(server)
        elif "--instructions" in argv:
            count_instructions(server, framework)
        elif "--profile" in argv:
            profile(server, requests, framework)
        else:
            measure(server, requests, framework)
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
