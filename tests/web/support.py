"""Helpers of the web tests: a backend that records the calls it forwards to a real one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping

from session_store.backend import SessionBackend, Versioned, VersionToken

#: Calls that change what is stored (a payload write or a delete; touch only moves the expiry).
WRITES = frozenset({"set", "set_if", "set_many", "delete", "delete_many"})


class RecordingBackend(SessionBackend):
    """Forwards every call to ``inner`` (a real backend) and records its name and key."""

    def __init__(self, inner: SessionBackend) -> None:
        self.inner = inner
        self.scope = inner.scope  # type: ignore[misc]
        self.counters = inner.counters
        self.calls: list[tuple[str, str]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.calls if call[0] in WRITES]

    def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return self.inner.get(key)

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self.calls.append(("set", key))
        self.inner.set(key, value, ttl)

    def delete(self, key: str) -> bool:
        self.calls.append(("delete", key))
        return self.inner.delete(key)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        self.calls.append(("touch", key))
        return self.inner.touch(key, ttl)

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        self.calls.append(("touch", key))  # a store's sliding expiry: recorded as the touch it is
        return self.inner.touch_session(key, ttl, keep_own)

    def ttl(self, key: str) -> float | None:
        self.calls.append(("ttl", key))
        return self.inner.ttl(key)

    def scan(self, prefix: str = "") -> Iterator[str]:
        self.calls.append(("scan", prefix))
        return self.inner.scan(prefix)

    def get_versioned(self, key: str) -> Versioned | None:
        self.calls.append(("get_versioned", key))
        return self.inner.get_versioned(key)

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        self.calls.append(("set_if", key))
        return self.inner.set_if(key, value, token, ttl)

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        keys = list(keys)
        self.calls.extend(("get_many", k) for k in keys)
        return self.inner.get_many(keys)

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        self.calls.extend(("set_many", k) for k in items)
        self.inner.set_many(items, ttl)

    def delete_many(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        self.calls.extend(("delete_many", k) for k in keys)
        return self.inner.delete_many(keys)

    def close(self) -> None:
        self.inner.close()


def cookie_attributes(header: str) -> dict[str, str]:
    """The attributes of one ``Set-Cookie`` header, lower-cased names; the value under its name."""
    parts = [part.strip() for part in header.split(";")]
    name, _, value = parts[0].partition("=")
    attributes = {"name": name, "value": value}
    for part in parts[1:]:
        key, _, val = part.partition("=")
        attributes[key.lower()] = val
    return attributes


SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def redis_commands(port: int) -> Callable[[], int]:
    """A counter of the commands the redis-server on ``port`` has processed: each call returns
    how many ran since the previous call, not counting the ``INFO`` calls that ask."""
    import redis

    client = redis.Redis(port=port)
    last = [int(client.info("stats")["total_commands_processed"])]

    def since() -> int:
        now = int(client.info("stats")["total_commands_processed"])
        ran, last[0] = now - last[0] - 1, now  # the previous INFO itself counts once
        return ran

    return since
