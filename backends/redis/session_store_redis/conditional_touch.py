"""The conditional touch on Redis: restart a key's expiry only if its value still begins with
the bytes the caller read (``touch_if``), as one Lua script, so nothing can land between the
comparison and the ``PEXPIRE``.

A tiered chain's ``touch`` reads the copies, then touches each tier; the version frame it read
(:mod:`session_store.stamps`, 25 bytes) is the ``head`` it passes. A delete or a newer write
that lands in between replaced the value, so the script finds another head and touches nothing:
a racing ``touch`` never re-expires a delete's tombstone, nor extends a write it did not read.

The script reads only the value's first bytes (``GETRANGE``, as the ordered writes of
:mod:`session_store_redis.ordered_scripts` do), never the whole value, and is sent by SHA
(``EVALSHA``), by text (``EVAL``) once if the server lost it; with ``wait_replicas`` it is sent
by text with ``WAIT`` after it on the same connection. It touches one key, so it runs unchanged
on a single server, a Sentinel-managed primary and Redis Cluster (routed by its key's slot).
A lost reply is retried like ``touch``: running it twice touches the same value twice.

:class:`ConditionalTouch` gives it to the sync backends (through
:class:`~session_store_redis.base.RedisBackendBase`), :class:`AsyncConditionalTouch` to the
async ones (through :class:`~session_store_redis.aio.AsyncRedisBackend`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from session_store.unchecked import checked

if TYPE_CHECKING:
    from session_store.keys import Namespace
    from session_store_redis.aio_driver import Driver
    from session_store_redis.commands import Command

__all__ = [
    "TOUCH_IF_SCRIPT",
    "TOUCH_IF_SHA",
    "AsyncConditionalTouch",
    "ConditionalTouch",
    "touch_if_args",
]

#: KEYS[1]: the key. ARGV[1]: the bytes its value must begin with ("": any value). ARGV[2]: the
#: new TTL in milliseconds, "0" for none (``PERSIST``). Returns 1 if it touched the key, 0 if
#: the key is absent or holds a value that does not begin with ARGV[1] (nothing changed).
TOUCH_IF_SCRIPT = """
local head = ARGV[1]
if head ~= '' and redis.call('GETRANGE', KEYS[1], 0, string.len(head) - 1) ~= head then
  return 0
end
if ARGV[2] == '0' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
  end
  redis.call('PERSIST', KEYS[1])
  return 1
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

TOUCH_IF_SHA = hashlib.sha1(TOUCH_IF_SCRIPT.encode(), usedforsecurity=False).hexdigest()


def touch_if_args(head: bytes, px: int | None) -> tuple[bytes, int]:
    """The script's ``ARGV`` for ``head`` and a TTL in milliseconds (``None``: no expiry)."""
    return head, px or 0


class ConditionalTouch:
    """``touch_if`` for the sync Redis backends (see the module docstring)."""

    if TYPE_CHECKING:  # provided by RedisBackendBase
        wait_replicas: int
        _namespace: Namespace
        _client: Any

        def _px(self, ttl: float | None) -> int | None: ...
        def _call(
            self, what: str, key: str | None, fn: Callable[..., Any], *args: Any, **kw: Any
        ) -> Any: ...
        def _write_acked(
            self, what: str, key: str | None, commands: Sequence[Command]
        ) -> list[Any]: ...

    def _touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key`` only if its value begins with ``head`` (one script)."""
        stored = self._namespace.encode(key)
        args = touch_if_args(head, self._px(ttl))
        if self.wait_replicas:
            command = (stored, ("EVAL", TOUCH_IF_SCRIPT, 1, stored, *args))
            return bool(self._write_acked("touch_if", key, [command])[0])
        return bool(self._call("touch_if", key, self._run_touch_if, stored, args))

    touch_if = checked(_touch_if)

    def _run_touch_if(self, stored: str, args: tuple[bytes, int]) -> Any:
        client = self._client
        try:
            return client.evalsha(TOUCH_IF_SHA, 1, stored, *args)
        except NoScriptError:
            pass  # a restarted or flushed server: the text once (EVAL caches it again)
        return client.eval(TOUCH_IF_SCRIPT, 1, stored, *args)


class AsyncConditionalTouch:
    """``touch_if`` for the async Redis backends (see the module docstring)."""

    if TYPE_CHECKING:  # provided by AsyncRedisBase
        wait_replicas: int
        _namespace: Namespace

        @property
        def driver(self) -> Driver: ...
        def _px(self, ttl: float | None) -> int | None: ...
        async def _call(
            self,
            what: str,
            key: str | None,
            fn: Callable[[], Awaitable[Any]],
            *,
            retry: bool = True,
        ) -> Any: ...
        async def _acked(
            self, what: str, key: str | None, commands: Sequence[Command]
        ) -> list[Any]: ...

    async def _touch_if(self, key: str, head: bytes, ttl: float | None = None) -> bool:
        """Restart the expiry of ``key`` only if its value begins with ``head`` (one script)."""
        stored = self._namespace.encode(key)
        args = touch_if_args(head, self._px(ttl))
        if self.wait_replicas:
            command = (stored, ("EVAL", TOUCH_IF_SCRIPT, 1, stored, *args))
            return bool((await self._acked("touch_if", key, [command]))[0])
        return bool(await self._call("touch_if", key, lambda: self._run_touch_if(stored, args)))

    touch_if = checked(_touch_if)

    async def _run_touch_if(self, stored: str, args: tuple[bytes, int]) -> Any:
        driver = self.driver
        try:
            return await driver.call("EVALSHA", TOUCH_IF_SHA, 1, stored, *args)
        except NoScriptError:
            pass  # a restarted or flushed server: the text once (EVAL caches it again)
        return await driver.call("EVAL", TOUCH_IF_SCRIPT, 1, stored, *args)
