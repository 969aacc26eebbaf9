"""``delete_session`` on Redis: one Lua script that deletes a key only if it holds a session,
so nothing can land between the judgement and the ``UNLINK``.

``SessionStore.delete`` (a logout, ``del sessions[key]``) sends it over a single Redis: one
round trip, as the ``UNLINK`` it replaces. The script reads the value's first 51 bytes
(``GETRANGE``, :data:`~session_store.touchrules.HEAD_SPAN`) and judges them as
:func:`~session_store.deleterules.holds_session` does, with the same tests as the
``touch_session`` script of :mod:`session_store_redis.conditional_touch` (a 16-, 25- or 50-byte
marker is no session): a retired id's marker or a chain's tombstone is left as it is, with its
expiry, and answers 0; a session saved after the script ran is never deleted by it. The
conformance kit (:mod:`session_store.testing.conformance_session_delete`) holds the script and
the Python rule to the same answers on every topology.

Sent by SHA (``EVALSHA``), by text (``EVAL``) once if the server lost it; with
``wait_replicas`` by text with ``WAIT`` after it on the same connection. It reads and deletes
one key, so it runs unchanged on a single server, a Sentinel-managed primary and Redis Cluster
(routed by its key's slot). Its commands (``GETRANGE``, ``UNLINK``) are in the ACL list
docs/guarantees.md documents. A lost reply is retried like ``delete``: the second run finds
nothing to delete and answers 0.

:class:`ConditionalDelete` gives it to the sync backends (through
:class:`~session_store_redis.base.RedisBackendBase`), :class:`AsyncConditionalDelete` to the
async ones (through :class:`~session_store_redis.aio.AsyncRedisBackend`). A module of its own:
:mod:`~session_store_redis.conditional_touch` holds the touches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from session_store.keys import validate_key

if TYPE_CHECKING:
    from session_store.counters import Counters
    from session_store.keys import Namespace
    from session_store_redis.aio_driver import Driver
    from session_store_redis.commands import Command

__all__ = [
    "DELETE_SESSION_SCRIPT",
    "DELETE_SESSION_SHA",
    "AsyncConditionalDelete",
    "ConditionalDelete",
]

#: KEYS[1]: the key. Returns 1 if it deleted the key, 0 if the key is absent or holds no session
#: (nothing changed). The markers: :mod:`session_store.stamps` (a chain's 25-byte tombstone, a
#: 50-byte value frame around one, an earlier chain's 16-byte tombstone stamp), the same tests
#: as ``conditional_touch.TOUCH_SESSION_SCRIPT``.
DELETE_SESSION_SCRIPT = """
local head = redis.call('GETRANGE', KEYS[1], 0, 50)
local n = string.len(head)
if string.sub(head, 1, 4) == '\\167SF\\001' and n >= 25 then
  local kind = string.byte(head, 17)
  if kind == 2 and n == 25 then
    return 0
  end
  if kind == 1 and n == 50 and string.sub(head, 26, 29) == '\\167SF\\001'
      and string.byte(head, 42) == 2 then
    return 0
  end
elseif n == 16 and string.sub(head, 1, 4) == '\\167ST\\002' then
  return 0
end
return redis.call('UNLINK', KEYS[1])
"""

DELETE_SESSION_SHA = hashlib.sha1(DELETE_SESSION_SCRIPT.encode(), usedforsecurity=False).hexdigest()


class ConditionalDelete:
    """``delete_session`` for the sync Redis backends (see the module docstring)."""

    if TYPE_CHECKING:  # provided by RedisBackendBase
        wait_replicas: int
        counters: Counters
        _namespace: Namespace
        _client: Any

        def _call(
            self, what: str, key: str | None, fn: Callable[..., Any], *args: Any, **kw: Any
        ) -> Any: ...
        def _write_acked(
            self, what: str, key: str | None, commands: Sequence[Command]
        ) -> list[Any]: ...
        def _run_script(
            self, sha: str, text: str, stored: str, args: Sequence[Any]
        ) -> Any: ...  # ConditionalTouch\'s

    def delete_session(self, key: str) -> bool:
        return self._delete_session(validate_key(key))

    def _delete_session(self, key: str) -> bool:
        """Delete ``key`` only if it holds a session (one script, see the module)."""
        stored = self._namespace.encode(key)
        if self.wait_replicas:
            command = (stored, ("EVAL", DELETE_SESSION_SCRIPT, 1, stored))
            removed = self._write_acked("delete_session", key, [command])[0]
        else:
            removed = self._call("delete_session", key, self._run_delete_session, stored)
        if removed:
            self.counters.add("deletes")
        return bool(removed)

    def _run_delete_session(self, stored: str) -> Any:
        return self._run_script(DELETE_SESSION_SHA, DELETE_SESSION_SCRIPT, stored, ())


class AsyncConditionalDelete:
    """``delete_session`` for the async Redis backends (see the module docstring)."""

    if TYPE_CHECKING:  # provided by AsyncRedisBase
        wait_replicas: int
        counters: Counters
        _namespace: Namespace

        @property
        def driver(self) -> Driver: ...
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
        async def _run_script(
            self, sha: str, text: str, stored: str, args: Sequence[Any]
        ) -> Any: ...  # AsyncConditionalTouch\'s

    async def delete_session(self, key: str) -> bool:
        return await self._delete_session(validate_key(key))

    async def _delete_session(self, key: str) -> bool:
        """Delete ``key`` only if it holds a session (one script, see the module)."""
        stored = self._namespace.encode(key)
        if self.wait_replicas:
            command = (stored, ("EVAL", DELETE_SESSION_SCRIPT, 1, stored))
            removed = (await self._acked("delete_session", key, [command]))[0]
        else:
            removed = await self._call(
                "delete_session", key, lambda: self._run_delete_session(stored)
            )
        if removed:
            self.counters.add("deletes")
        return bool(removed)

    async def _run_delete_session(self, stored: str) -> Any:
        return await self._run_script(DELETE_SESSION_SHA, DELETE_SESSION_SCRIPT, stored, ())
