"""The conditional touches on Redis, each one Lua script, so nothing can land between the
comparison and the ``PEXPIRE``: ``touch_if`` restarts a key's expiry only if its value still
begins with the bytes the caller read; ``touch_session`` only if the key holds a session (not a
deleted session's marker), with the TTL the value's frame records when asked to keep it.

A tiered chain's ``touch`` reads the copies, then touches each tier; the version frame it read
(:mod:`session_store.stamps`, 25 bytes) is the ``head`` it passes. A delete or a newer write
that lands in between replaced the value, so the script finds another head and touches nothing:
a racing ``touch`` never re-expires a delete's tombstone, nor extends a write it did not read.

``touch_session`` is what a store's sliding expiry sends over a single Redis (``touch(key)``,
``touch(key, ttl)``, ``touch_on_load``, every web integration's read-only request): one round
trip, as the ``PEXPIRE`` it replaces. Its script reads the value's first 51 bytes
(:data:`~session_store.touchrules.HEAD_SPAN`) and judges them exactly as
:func:`~session_store.touchrules.touch_decision` does (a 16-, 25- or 50-byte marker is no session;
a frame's TTL field, a big-endian double, is kept when it is one a write can have asked for);
the conformance kit (:mod:`session_store.testing.conformance_session_touch`) holds the two to
the same answers on every topology.

The scripts read only the value's first bytes (``GETRANGE``, as the ordered writes of
:mod:`session_store_redis.ordered_scripts` do), never the whole value, and each is sent by SHA
(``EVALSHA``), by text (``EVAL``) once if the server lost it; with ``wait_replicas`` by text
with ``WAIT`` after it on the same connection. Each touches one key, so it runs unchanged on a
single server, a Sentinel-managed primary and Redis Cluster (routed by its key's slot), its key
built by the backend's :class:`~session_store.keys.Namespace`. A lost reply is retried like
``touch``: running either twice touches the same value twice.

:class:`ConditionalTouch` gives them to the sync backends (through
:class:`~session_store_redis.base.RedisBackendBase`), :class:`AsyncConditionalTouch` to the
async ones (through :class:`~session_store_redis.aio.AsyncRedisBackend`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from session_store.keys import validate_key
from session_store.ttl import normalize_ttl
from session_store.unchecked import checked

if TYPE_CHECKING:
    from session_store.keys import Namespace
    from session_store_redis.aio_driver import Driver
    from session_store_redis.commands import Command

__all__ = [
    "TOUCH_IF_SCRIPT",
    "TOUCH_IF_SHA",
    "TOUCH_SESSION_SCRIPT",
    "TOUCH_SESSION_SHA",
    "AsyncConditionalTouch",
    "ConditionalTouch",
    "touch_if_args",
    "touch_session_args",
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


#: KEYS[1]: the key. ARGV[1]: the TTL in milliseconds, "0" for none (``PERSIST``). ARGV[2]: "1"
#: to use instead the TTL the value's frame records, if it records one. Returns 1 if it touched
#: the key, 0 if the key is absent or holds no session (nothing changed). The markers and the
#: frame: :mod:`session_store.stamps`; the TTL field's rules: ``stamps._asked_for``; the
#: rounding to milliseconds: :func:`session_store.ttl.ttl_to_ms`.
TOUCH_SESSION_SCRIPT = """
local head = redis.call('GETRANGE', KEYS[1], 0, 50)
local n = string.len(head)
if n == 0 and redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local px = ARGV[1]
if string.sub(head, 1, 4) == '\\167SF\\001' and n >= 25 then
  local kind = string.byte(head, 17)
  if kind == 2 and n == 25 then
    return 0
  end
  if kind == 1 and n == 50 and string.sub(head, 26, 29) == '\\167SF\\001'
      and string.byte(head, 42) == 2 then
    return 0
  end
  if kind == 1 and ARGV[2] == '1' then
    local ttl = struct.unpack('>d', string.sub(head, 18, 25))
    if ttl == math.huge then
      px = '0'
    elseif ttl > 0 and ttl <= 3153600000 then
      local ms = ttl * 1000
      local near = math.floor(ms + 0.5)
      if math.abs(ms - near) >= 1e-6 then
        near = math.ceil(ms)
      end
      px = math.max(1, near)
    end
  end
elseif n == 16 and string.sub(head, 1, 4) == '\\167ST\\002' then
  return 0
end
if px == '0' then
  redis.call('PERSIST', KEYS[1])
  return 1
end
return redis.call('PEXPIRE', KEYS[1], px)
"""

TOUCH_SESSION_SHA = hashlib.sha1(TOUCH_SESSION_SCRIPT.encode(), usedforsecurity=False).hexdigest()


def touch_session_args(px: int | None, keep_own: bool) -> tuple[int, int]:
    """The ``touch_session`` script's ``ARGV``: the TTL in milliseconds (``None``: no expiry)
    and whether to keep the one the value records."""
    return px or 0, int(keep_own)


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
        return self._run_script(TOUCH_IF_SHA, TOUCH_IF_SCRIPT, stored, args)

    def _run_script(self, sha: str, text: str, stored: str, args: Sequence[Any]) -> Any:
        """One of this module's scripts on ``stored``, by SHA, else by text."""
        client = self._client
        try:
            return client.evalsha(sha, 1, stored, *args)
        except NoScriptError:
            pass  # a restarted or flushed server: the text once (EVAL caches it again)
        return client.eval(text, 1, stored, *args)

    def _touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        """Restart the expiry of the session under ``key`` only (one script, see the module)."""
        stored = self._namespace.encode(key)
        args = touch_session_args(self._px(ttl), keep_own)
        if self.wait_replicas:
            command = (stored, ("EVAL", TOUCH_SESSION_SCRIPT, 1, stored, *args))
            return bool(self._write_acked("touch_session", key, [command])[0])
        return bool(self._call("touch_session", key, self._run_touch_session, stored, args))

    def touch_session(self, key: str, ttl: float | None = None, keep_own: bool = False) -> bool:
        return self._touch_session(validate_key(key), normalize_ttl(ttl), keep_own)

    def _run_touch_session(self, stored: str, args: tuple[int, int]) -> Any:
        return self._run_script(TOUCH_SESSION_SHA, TOUCH_SESSION_SCRIPT, stored, args)


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
        return await self._run_script(TOUCH_IF_SHA, TOUCH_IF_SCRIPT, stored, args)

    async def _run_script(self, sha: str, text: str, stored: str, args: Sequence[Any]) -> Any:
        """One of this module's scripts on ``stored``, by SHA, else by text."""
        driver = self.driver
        try:
            return await driver.call("EVALSHA", sha, 1, stored, *args)
        except NoScriptError:
            pass  # a restarted or flushed server: the text once (EVAL caches it again)
        return await driver.call("EVAL", text, 1, stored, *args)

    async def _touch_session(
        self, key: str, ttl: float | None = None, keep_own: bool = False
    ) -> bool:
        """Restart the expiry of the session under ``key`` only (one script, see the module)."""
        stored = self._namespace.encode(key)
        args = touch_session_args(self._px(ttl), keep_own)
        if self.wait_replicas:
            command = (stored, ("EVAL", TOUCH_SESSION_SCRIPT, 1, stored, *args))
            return bool((await self._acked("touch_session", key, [command]))[0])
        return bool(
            await self._call("touch_session", key, lambda: self._run_touch_session(stored, args))
        )

    async def touch_session(
        self, key: str, ttl: float | None = None, keep_own: bool = False
    ) -> bool:
        return await self._touch_session(validate_key(key), normalize_ttl(ttl), keep_own)

    async def _run_touch_session(self, stored: str, args: tuple[int, int]) -> Any:
        return await self._run_script(TOUCH_SESSION_SHA, TOUCH_SESSION_SCRIPT, stored, args)
