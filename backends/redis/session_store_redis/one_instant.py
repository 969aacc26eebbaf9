"""Two commands of one instant for the sync Redis backends: ``GET`` and ``PTTL``
(``get_with_ttl``, what a chain reads its Redis tier with), ``PERSIST`` and ``EXISTS``
(``touch`` without a TTL).

``MULTI``/``EXEC`` while the server allows it; once its ACL refused ``MULTI``, one script
(:mod:`session_store_redis.multi_acl`), remembered per backend. A mixin of
:class:`~session_store_redis.base.RedisBackendBase`, kept apart so that each module has one job;
the Cluster backend wraps both with its ``ASK``/``MOVED`` handling (a script on one key is routed
and redirected as any one-key command).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis
from redis.exceptions import NoScriptError

from session_store_redis.multi_acl import GET_PTTL, PERSIST_EXISTS, OneScript, needs_one
from session_store_redis.multi_acl import refuses_multi as _refuses_multi

__all__ = ["OneInstant"]

log = logging.getLogger("session_store_redis.base")


class OneInstant:
    """``_get_with_pttl`` and ``_persist`` of :class:`~session_store_redis.base.RedisBackendBase`
    (which provides ``_client`` and ``_description``)."""

    #: ``MULTI`` is tried (until the server's ACL refuses it: then ``False``, for good).
    _multi: bool = True

    if TYPE_CHECKING:
        _client: Any
        _description: str

    def _get_with_pttl(self, stored: str) -> list[Any]:
        """``[value or None, pttl]`` of one instant."""
        return self._of_one_instant(stored, ("get", "pttl"), GET_PTTL, "get_with_ttl")

    def _persist(self, stored: str) -> list[Any]:
        """``[persisted, exists]`` of one instant."""
        return self._of_one_instant(stored, ("persist", "exists"), PERSIST_EXISTS, "touch")

    def _of_one_instant(
        self, stored: str, commands: tuple[str, ...], script: OneScript, what: str
    ) -> list[Any]:
        """The replies of ``commands`` (redis-py's method names) on the key ``stored``, in one
        ``MULTI``/``EXEC``, or as ``script`` once the server refused ``MULTI``."""
        if self._multi:
            try:
                pipe = self._client.pipeline(transaction=True)
                for command in commands:
                    getattr(pipe, command)(stored)
                return list(pipe.execute())
            except redis.ResponseError as exc:
                if not _refuses_multi(exc):
                    raise
            self._multi_refused()
        return self._one_script(script, stored, what)

    def _one_script(self, script: OneScript, stored: str, what: str) -> list[Any]:
        """``script`` on the key ``stored``: by SHA, loaded first (``SCRIPT LOAD``: every
        primary of a cluster) if the server does not know it, as the compare-and-set does (a
        user allowed ``EVALSHA`` but not ``EVAL`` runs it too)."""
        client = self._client
        try:
            try:
                return list(client.evalsha(script.sha, 1, stored))
            except NoScriptError:
                pass
            client.script_load(script.text)
            return list(client.evalsha(script.sha, 1, stored))
        except redis.ResponseError as exc:
            failure: BaseException = needs_one(exc, what)
        raise failure

    def _multi_refused(self) -> None:
        """The server's ACL refused ``MULTI``: from now on the scripts stand for it."""
        if self._multi:
            self._multi = False
            log.warning(
                "%s: the server refused MULTI (ACL or rename-command);"
                " reads and touches run as one script",
                self._description,
            )
