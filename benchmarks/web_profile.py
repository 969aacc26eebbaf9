"""Where one Flask request's cost goes: ours against Flask-Session, in process, no HTTP server.

The app of :mod:`benchmarks.bench_web` (read a 2 KB session, increment a counter) is called
through its WSGI entry point with a session cookie, over a ``redis-server`` this script starts on
a free loopback port. Three views:

* default: alternating rounds of each contender, the median CPU and wall microseconds per
  request, and the Redis commands per request (``INFO commandstats`` before and after, no
  ``MONITOR``; commands inside a Lua script are counted too);
* ``--instructions``: instructions per request counted by ``valgrind --tool=callgrind`` (the
  difference between a run of 400 and one of 100 requests, so start-up cancels out; a fixed
  ``PYTHONHASHSEED``, so two runs of the same code agree to the instruction). Unlike time,
  the count does not move with what else the machine runs: use it to compare changes.
* ``--profile``: the top of a cProfile run of each.

Run: ``python -m benchmarks.web_profile [--instructions] [--profile] [--requests N]``.
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

from benchmarks.bench_web import ROOT, make_flask

KINDS = ("ours", "flask-session")
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


def contender(kind: str, redis_url: str, warm_up: int = 200) -> tuple[Request, str]:
    """The app of ``kind`` as a request function, and the cookie of a session it created."""
    os.environ["BENCH_KIND"] = kind
    os.environ["BENCH_REDIS_URL"] = redis_url
    request = client(make_flask())
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


def measure(server: Any, requests: int, rounds: int = 10) -> None:
    """Alternating rounds: median CPU and wall us/request, Redis commands/request."""
    apps = {kind: contender(kind, server.url_for()) for kind in KINDS}
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    wall: dict[str, list[float]] = {kind: [] for kind in KINDS}
    calls: dict[str, dict[str, float]] = {}
    for index in range(rounds):
        for kind in KINDS if index % 2 == 0 else KINDS[::-1]:
            before = server.command_calls()
            c, w = run(*apps[kind], requests)
            after = server.command_calls()
            cpu[kind].append(c)
            wall[kind].append(w)
            calls[kind] = {
                name: (count - before.get(name, 0)) / requests
                for name, count in after.items()
                if count - before.get(name, 0) >= requests / 100 and name != "info"
            }
    for kind in KINDS:
        print(
            f"{kind:14s} CPU {statistics.median(cpu[kind]):6.1f} us/request, wall "
            f"{statistics.median(wall[kind]):6.1f}; Redis commands/request: {calls[kind]}"
        )
    ratio = statistics.median(a / b for a, b in zip(cpu["flask-session"], cpu["ours"], strict=True))
    print(f"CPU Flask-Session / ours: {ratio:.2f}")


def _child(kind: str, requests: int, redis_url: str) -> None:
    """In a process run under valgrind: ``requests`` requests of ``kind``."""
    request, cookie = contender(kind, redis_url, warm_up=50)
    for _ in range(requests):
        request(cookie)


def instructions(redis_url: str, kind: str, requests: int) -> int:
    """Instructions of a child process making ``requests`` requests (``callgrind``)."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", sys.executable,
             "-m", "benchmarks.web_profile", "--child", kind, str(requests), redis_url],
            cwd=ROOT, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # the same string hashes every run
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def count_instructions(server: Any) -> None:
    """Instructions per request of each contender (400 requests less 100, so start-up and
    warm-up cancel out)."""
    if shutil.which("valgrind") is None:
        print("--instructions needs valgrind")
        return
    per_request = {}
    for kind in KINDS:
        many = instructions(server.url_for(), kind, 400)
        few = instructions(server.url_for(), kind, 100)
        per_request[kind] = (many - few) / 300
        print(f"{kind:14s} {per_request[kind] / 1e3:7.1f} k instructions/request", flush=True)
    ratio = per_request["flask-session"] / per_request["ours"]
    print(f"instructions Flask-Session / ours: {ratio:.2f}")


def profile(server: Any, requests: int) -> None:
    """The top of a cProfile run of each contender."""
    for kind in KINDS:
        request, cookie = contender(kind, server.url_for())
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            request(cookie)
        profiler.disable()
        print(f"=== {kind}")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        _child(argv[1], int(argv[2]), argv[3])
        return
    from session_store_redis.testing import RedisServer

    requests = int(argv[argv.index("--requests") + 1]) if "--requests" in argv else 1000
    server = RedisServer(directory=Path(tempfile.mkdtemp(prefix="web-profile-"))).start()
    try:
        if "--instructions" in argv:
            count_instructions(server)
        elif "--profile" in argv:
            profile(server, requests)
        else:
            measure(server, requests)
    finally:
        server.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
