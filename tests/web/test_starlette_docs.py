"""The Python examples of docs/starlette.md run as written, and the FastAPI example does what its
comment says: a worker started without ``SESSION_STORE_URL`` keeps its sessions in its own
memory **and warns**.

newuser10 served that example with ``uvicorn --workers 2`` and forgot the variable: logins
vanished on every other request, and nothing was logged. The example passed
``url=os.environ.get("SESSION_STORE_URL", "memory://")``, so the middleware was *given*
``memory://`` and had nothing to warn about; the warning is for a store that was not configured.
"""

from __future__ import annotations

import ast
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from session_store.starlette import SessionMiddleware
from session_store.websession import config

DOC = Path(__file__).resolve().parents[2] / "docs" / "starlette.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
FASTAPI = [block for block in BLOCKS if "from fastapi import" in block]
OTHERS = [block for block in BLOCKS if "from fastapi import" not in block]

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


def test_the_page_has_its_examples() -> None:
    assert len(FASTAPI) == 1 and len(OTHERS) >= 2


@pytest.mark.parametrize("code", OTHERS, ids=[f"block{i}" for i in range(len(OTHERS))])
def test_the_starlette_examples_run(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSION_STORE_URL", raising=False)
    exec(compile(code, str(DOC), "exec"), {"__name__": "docs"})


def _middleware_arguments(code: str) -> tuple[list[Any], dict[str, Any]]:
    """The arguments after ``SessionMiddleware`` of the example's ``app.add_middleware(...)``
    call, evaluated as the example evaluates them (``os`` imported)."""
    for node in ast.walk(ast.parse(code)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "add_middleware"
        ):
            scope = {"os": os}
            args = [eval(compile(ast.Expression(a), "doc", "eval"), scope) for a in node.args[1:]]
            kwargs = {
                k.arg: eval(compile(ast.Expression(k.value), "doc", "eval"), scope)
                for k in node.keywords
                if k.arg is not None
            }
            return args, kwargs
    raise AssertionError("the FastAPI example no longer calls app.add_middleware")


async def _login(request: Request) -> JSONResponse:
    request.session["user"] = "ann"
    return JSONResponse(dict(request.session))


def test_the_fastapi_examples_middleware_warns_a_worker_without_a_store_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The example's own ``add_middleware`` arguments (on Starlette, whose ``add_middleware``
    FastAPI's is), with ``SESSION_STORE_URL`` unset: the first request warns."""
    monkeypatch.delenv("SESSION_STORE_URL", raising=False)
    monkeypatch.setattr(config, "_warned_memory", False)
    args, kwargs = _middleware_arguments(FASTAPI[0])
    app = Starlette(routes=[Route("/login", _login, methods=["POST"])])
    app.add_middleware(SessionMiddleware, *args, **kwargs)
    with caplog.at_level(logging.WARNING, logger="session_store.web"), TestClient(app) as client:
        assert client.post("/login").json() == {"user": "ann"}
    assert "no SESSION_STORE_URL configured" in caplog.text


def test_the_fastapi_example_serves_a_login_and_a_logout(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    """The whole example, where FastAPI is installed (it is no dependency of ours), over the
    suite's real redis-server as ``SESSION_STORE_URL``."""
    pytest.importorskip("fastapi")
    monkeypatch.setenv("SESSION_STORE_URL", redis_url)  # its key prefix is this test's own
    scope: dict[str, Any] = {"__name__": "shop"}
    exec(compile(FASTAPI[0], str(DOC), "exec"), scope)
    with TestClient(scope["app"]) as client:
        assert client.post("/login/ann").json() == {"user": "ann"}
        assert client.get("/me").json() == {"user": "ann"}
        assert client.post("/logout").json() == {}
        assert client.get("/me").json() == {}
