"""Real web servers for attack9b's tests: a Flask app served by gunicorn and a Starlette app
served by uvicorn, each run as separate server processes on free loopback ports, sharing one
store URL (a redis-server the suite started, or the default chain over it and a real
directory).

A request can be held inside its view at a **gate**: the view says it is inside (a file
``<gate>.inside``, written once it has read the session) and waits until the test opens the
gate (a file ``<gate>.go``). The test thus orders the commits of concurrent requests exactly,
with no sleep that merely makes a race likely: request A reads, request B runs to completion
on the other server, then A commits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["APP_SOURCE", "Gate", "serve"]

#: The two apps (one module; ``FRAMEWORK`` picks). Every route answers the session as JSON.
APP_SOURCE = textwrap.dedent(
    """
    import asyncio, os, pathlib, time

    GATES = pathlib.Path(os.environ["ATTACK9B_GATES"])
    CAP = 120.0  # a gate never opened: the request fails (and so does the test)

    def _inside(gate):
        (GATES / f"{gate}.inside").write_text(str(os.getpid()))
        return GATES / f"{gate}.go", time.monotonic() + CAP

    def wait_gate(gate):
        if gate:
            go, deadline = _inside(gate)
            while not go.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("gate never opened")
                time.sleep(0.002)

    async def await_gate(gate):
        if gate:
            go, deadline = _inside(gate)
            while not go.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("gate never opened")
                await asyncio.sleep(0.002)

    if os.environ["FRAMEWORK"] == "flask":
        from flask import Flask, request, session
        from session_store.flask import SessionStoreInterface, regenerate

        app = Flask(__name__)
        app.config["SESSION_STORE_URL"] = os.environ["SESSION_STORE_URL"]
        app.config["SESSION_REFRESH_EACH_REQUEST"] = os.environ.get("SLIDING", "1") == "1"
        SessionStoreInterface.init_app(app)

        @app.get("/health")
        def health():
            return "ok"

        @app.get("/pid")
        def pid():
            return str(os.getpid())

        @app.get("/read")
        def read():
            data = dict(session)
            wait_gate(request.args.get("gate"))
            return data

        @app.post("/set/<key>/<value>")
        def set_key(key, value):
            session[key] = value
            wait_gate(request.args.get("gate"))
            return dict(session)

        @app.post("/pop/<key>")
        def pop_key(key):
            session.pop(key, None)
            wait_gate(request.args.get("gate"))
            return dict(session)

        @app.post("/login/<user>")
        def login(user):
            regenerate()
            session["user"] = user
            wait_gate(request.args.get("gate"))
            return dict(session)

        @app.post("/logout")
        def logout():
            session.clear()
            wait_gate(request.args.get("gate"))
            return {}

    else:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.responses import JSONResponse, PlainTextResponse
        from starlette.routing import Route
        from session_store.starlette import SessionMiddleware, regenerate_session

        async def health(request):
            return PlainTextResponse("ok")

        async def read(request):
            data = dict(request.session)
            await await_gate(request.query_params.get("gate"))
            return JSONResponse(data)

        async def set_key(request):
            request.session[request.path_params["key"]] = request.path_params["value"]
            await await_gate(request.query_params.get("gate"))
            return JSONResponse(dict(request.session))

        async def pop_key(request):
            request.session.pop(request.path_params["key"], None)
            await await_gate(request.query_params.get("gate"))
            return JSONResponse(dict(request.session))

        async def login(request):
            regenerate_session(request)
            request.session["user"] = request.path_params["user"]
            await await_gate(request.query_params.get("gate"))
            return JSONResponse(dict(request.session))

        async def logout(request):
            request.session.clear()
            await await_gate(request.query_params.get("gate"))
            return JSONResponse({})

        app = Starlette(
            routes=[
                Route("/health", health),
                Route("/read", read),
                Route("/set/{key}/{value}", set_key, methods=["POST"]),
                Route("/pop/{key}", pop_key, methods=["POST"]),
                Route("/login/{user}", login, methods=["POST"]),
                Route("/logout", logout, methods=["POST"]),
            ],
            middleware=[
                Middleware(
                    SessionMiddleware,
                    url=os.environ["SESSION_STORE_URL"],
                    sliding=os.environ.get("SLIDING", "1") == "1",
                )
            ],
        )
    """
)

#: The most a server may take to answer its first request (polled; one that exits fails at once).
START_CAP = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gate:
    """The gates of the apps' views (see the module's docstring), in a directory of the test's."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def wait_inside(self, name: str, process: subprocess.Popen[bytes] | None = None) -> None:
        """Block until the request held at gate ``name`` has read its session (polled: the
        request runs in another process), or fail after :data:`START_CAP` seconds."""
        path = self.directory / f"{name}.inside"
        deadline = time.monotonic() + START_CAP
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no request reached gate {name!r}")
            time.sleep(0.002)

    def open(self, name: str) -> None:
        (self.directory / f"{name}.go").write_text("go")


def _wait_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_CAP
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that is not open yet
    raise TimeoutError(f"{url} did not answer in {START_CAP} s")


@contextmanager
def serve(
    framework: str,
    store_url: str,
    directory: Path,
    count: int = 2,
    sliding: bool = True,
) -> Iterator[tuple[list[str], Gate]]:
    """``count`` server processes of ``framework`` (``flask``: gunicorn, one sync worker each;
    ``starlette``: uvicorn) on ``store_url``; yields their base URLs and the gates."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "attack9b_app.py").write_text(APP_SOURCE)
    gates = directory / "gates"
    gates.mkdir(exist_ok=True)
    root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "FRAMEWORK": framework,
        "SESSION_STORE_URL": store_url,
        "ATTACK9B_GATES": str(gates),
        "SLIDING": "1" if sliding else "0",
        "PYTHONPATH": os.pathsep.join([str(directory), root]),
    }
    processes: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    logs: list[Path] = []
    try:
        for n in range(count):
            port = _free_port()
            log = directory / f"{framework}-{n}.log"
            if framework == "flask":
                argv = [sys.executable, "-m", "gunicorn", "-w", "1", "--timeout", "300"]
                argv += ["-b", f"127.0.0.1:{port}", "attack9b_app:app"]
            else:
                argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1"]
                argv += ["--port", str(port), "--log-level", "warning", "attack9b_app:app"]
            with log.open("wb") as output:
                processes.append(
                    subprocess.Popen(
                        argv, env=env, cwd=directory, stdout=output, stderr=subprocess.STDOUT
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
            logs.append(log)
        for url, process, log in zip(urls, processes, logs, strict=True):
            _wait_serving(url, process, log)
        yield urls, Gate(gates)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
