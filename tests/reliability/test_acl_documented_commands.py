"""The ACL command list that docs/guarantees.md section 6 promises "is enough for every store
operation", taken from the page itself and granted to a user limited to the store's prefix on
the suite's real redis-server: every store operation works, sync and async, on Redis alone and
through a ``memory:// | redis://`` chain; also with ``+rename`` added (the staged writes) and
with ``+multi`` taken away (the page says the commands of one instant then run as scripts).

The list once named ``+evalsha`` and ``+script|load`` but not ``+eval`` nor the commands the
scripts call (``GETRANGE``, ``SETRANGE``, ``DEL``): ``update``, ``touch`` and every chain save
failed with a ``BackendError`` for such a user, with or without ``+multi``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from session_store import SessionStore
from session_store.aio.store import AsyncSessionStore
from session_store_redis.testing import RedisServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "guarantees.md"


def _documented() -> list[str]:
    """The commands the page lists as enough for every store operation."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"enough for every store\s+operation:\s+`([^`]+)`", text)
    assert found is not None, "docs/guarantees.md no longer lists the ACL commands"
    return found.group(1).split()


#: The ACL rules of each case: the documented list, with ``+rename``, without ``+multi``.
CASES: dict[str, Callable[[list[str]], list[str]]] = {
    "as documented": lambda listed: listed,
    "with +rename": lambda listed: [*listed, "+rename"],
    "without +multi": lambda listed: [rule for rule in listed if rule != "+multi"],
}


@pytest.fixture
def documented_user(redis_server: RedisServer) -> Iterator[Callable[[list[str]], str]]:
    """``make(rules)``: the URL of a new user granted ``rules`` on the keys of a prefix of its
    own (``~<prefix>\\x1f*``, as the page says); the users are deleted after the test."""
    with redis_server.acl_users() as make:

        def documented(rules: list[str]) -> str:
            prefix = f"doc-{uuid.uuid4().hex[:12]}:"
            return make(f"~{prefix}\x1f*", *rules, prefix=prefix)

        yield documented


def _steps(store: Any) -> list[tuple[str, Callable[[], Any]]]:
    """Every store operation, as (name, call); a call's result may be awaitable."""
    return [
        ("save", lambda: store.save("k", {"a": 1})),
        ("load", lambda: store.load("k")),
        ("update", lambda: store.update("k", lambda current: {"a": 2})),
        ("touch", lambda: store.touch("k")),
        ("touch with a TTL", lambda: store.touch("k", 120)),
        ("exists", lambda: store.exists("k")),
        ("save_many", lambda: store.save_many({"x": {"x": 1}, "y": {"y": 2}}, ttl=60)),
        ("load_many", lambda: store.load_many(["x", "y", "z"])),
        ("a large save", lambda: store.save("big", {"a": "x" * 20_000})),
        ("delete", lambda: store.delete("k")),
    ]


def _sync_failures(url: str) -> list[str]:
    failed = []
    with SessionStore(url, dict) as store:
        for name, call in _steps(store):
            try:
                call()
            except Exception as exc:  # every failure is reported below
                failed.append(f"{name}: {exc}")
        try:
            assert sorted(store.keys()) == ["big", "x", "y"]
        except Exception as exc:
            failed.append(f"keys: {exc!r}")
    return failed


async def _async_failures(url: str) -> list[str]:
    failed = []
    store: AsyncSessionStore[Any] = AsyncSessionStore(url, dict)
    try:
        for name, call in _steps(store):
            try:
                await call()
            except Exception as exc:
                failed.append(f"{name}: {exc}")
        try:
            listing = store.keys()
            assert sorted([key async for key in listing]) == ["big", "x", "y"]
        except Exception as exc:
            failed.append(f"keys: {exc!r}")
    finally:
        await store.aclose()
    return failed


@pytest.mark.parametrize("case", list(CASES))
def test_the_documented_acl_commands_are_enough_for_every_store_operation(
    documented_user: Callable[[list[str]], str], case: str, caplog: pytest.LogCaptureFixture
) -> None:
    rules = CASES[case](_documented())
    failed: list[str] = []
    with caplog.at_level(logging.ERROR):  # (the fall-backs warn once each: expected)
        for kind in ("redis", "chain"):
            url = documented_user(rules)
            url = url if kind == "redis" else f"memory:// | {url}"
            failed += [f"sync {kind} {line}" for line in _sync_failures(url)]
            url = documented_user(rules)
            url = url if kind == "redis" else f"memory:// | {url}"
            failed += [f"async {kind} {line}" for line in asyncio.run(_async_failures(url))]
    assert not failed, "\n".join(failed)
