"""The standalone Redis backend's ordered writes (``set_if_newer``, ``set_after``: what a chain
writes its versioned copies with), staged where the server allows it.

Staged (:mod:`session_store_redis.staged`), the value travels in a plain ``SET`` of a staging key
and the script only compares heads and ``RENAME``-s it into place; a layout, a client or a
server (its ACL, from then on) that takes only the one-script texts gets those
(:mod:`session_store_redis.ordered_scripts`), by SHA on the lean client where the backend has
one (every write without an expiry: it never stages), else through redis-py's ``Script``. With
``wait_replicas`` both go through the compare-and-set, which waits for the replicas. A mixin of
:class:`~session_store_redis.backend.RedisBackend`, kept apart so that each module has one job.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from session_store.stamps import VERSION_END, VERSION_START
from session_store.unchecked import checked
from session_store_redis import staged
from session_store_redis.base import _PX
from session_store_redis.lean_script import run_by_sha
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT
from session_store_redis.staged import (
    MOVE_AFTER_SCRIPT,
    MOVE_AFTER_SHA,
    MOVE_IF_NEWER_SCRIPT,
    MOVE_IF_NEWER_SHA,
    REFUSED,
    STAGED_LAYOUT,
    Unqueued,
    can_stage,
    settle,
    staged_write,
)

if TYPE_CHECKING:
    from session_store_redis.bulk import SyncBulk
    from session_store_redis.leanconn import LeanRedis

    _Backend = SyncBulk[redis.Redis]
else:
    _Backend = object

__all__ = ["StagedOrderedWrites"]

#: :func:`~session_store_redis.staged.staged_write`, as the hot path calls it with the lean
#: client (which has the pool calls it makes of a redis-py client).
_write_staged: Callable[..., Any] = staged_write

log = logging.getLogger("session_store_redis.backend")

#: What :meth:`StagedOrderedWrites._after_reply` is given when no staged write was tried yet.
_NOT_TRIED: Any = object()

#: The one-script texts' SHAs (what ``EVALSHA`` names them by; the async twin's, computed alike).
_SET_IF_NEWER = hashlib.sha1(SET_IF_NEWER_SCRIPT.encode()).hexdigest(), SET_IF_NEWER_SCRIPT  # noqa: S324
_SET_AFTER = hashlib.sha1(SET_AFTER_SCRIPT.encode()).hexdigest(), SET_AFTER_SCRIPT  # noqa: S324


class StagedOrderedWrites(_Backend):
    """``set_if_newer`` and ``set_after`` of :class:`~session_store_redis.backend.RedisBackend`
    (which sets the attributes below)."""

    _stage: bool
    _staging: bytes
    _lean: LeanRedis | None
    _set_if_newer_script: Any
    _set_after_script: Any

    def _set_if_newer(
        self, key: str, value: bytes, ttl: float | None, *, head: int, start: int, end: int
    ) -> bool:
        """Store ``value`` unless the current value shares its first ``head`` bytes and its
        bytes ``[start:end]`` are at least ``value``'s (one atomic round trip)."""
        if self.wait_replicas:  # the WAIT path: compare-and-set, which waits for replicas
            read = self._get_versioned(key)
            if (
                read is not None
                and read.value[:head] == value[:head]
                and read.value[start:end] >= value[start:end]
            ):
                return False
            return self._set_if(key, value, None if read is None else read.token, ttl)
        stored = self._namespace.encode(key)
        px = self._px(ttl)
        script = MOVE_IF_NEWER_SCRIPT, MOVE_IF_NEWER_SHA
        layout = head, start, end
        written = self._staged("set_if_newer", key, stored, script, value, px, layout)
        if written is None:
            args = [value, px or 0, head, start + 1, end]
            written = self._unstaged(
                "set_if_newer", key, self._set_if_newer_script, _SET_IF_NEWER, stored, args
            )
        if written:
            self.counters.add("writes")
        return bool(written)

    set_if_newer = checked(_set_if_newer)

    def _set_after(
        self,
        key: str,
        value: bytes,
        ttl: float | None,
        *,
        head: int,
        start: int,
        end: int,
        clock_end: int,
    ) -> bytes:
        """Store ``value``; if the current value shares its first ``head`` bytes and its bytes
        ``[start:end]`` are at least ``value``'s, ``value``'s bytes ``[start:clock_end]`` become
        the current ones plus one first. Returns the bytes ``[start:end]`` stored. One atomic
        round trip, never retried (a lost reply is an error: the caller cannot know)."""
        if self.wait_replicas:  # the WAIT path: compare-and-set, which waits for replicas
            from session_store.tiered.writes import write_after_cas

            return write_after_cas(self, key, value, ttl)[start:end]
        layout = head, start, end, clock_end
        if layout == STAGED_LAYOUT and len(value) >= VERSION_END:  # a chain's frame
            return self._write_after(key, value, ttl)[VERSION_START:VERSION_END]
        stored = self._namespace.encode(key)
        return self._after_reply(key, stored, value, self._px(ttl), layout, _NOT_TRIED)

    set_after = checked(_set_after)

    def _write_after(self, key: str, data: bytes, ttl: float | None) -> bytes:
        """:func:`session_store.tiered.writes.write_after` of a value a chain framed
        (:data:`~session_store_redis.staged.STAGED_LAYOUT`): ``set_after`` of it, as the
        framed bytes stored (``data``, or ``data`` with the version the write took). What a
        chain calls for every save (the trusted call ``write_after``: one call, no keyword
        arguments, where ``set_after`` through ``write_after`` took three)."""
        if self.wait_replicas:  # the WAIT path: compare-and-set, which waits for replicas
            from session_store.tiered.writes import write_after_cas

            return write_after_cas(self, key, data, ttl)
        stored = self._namespace.encode(key)
        px = _PX.get(ttl)  # (_px, from its table: every save asks)
        if px is None:
            px = self._px(ttl)
        lean = self._lean
        version: Any
        if (  # every save of a chain: the staged write on the lean client, without the layers
            lean is not None
            and px  # (no expiry: never staged, as staged.can_stage says)
            and self._stage
            and len(data) >= VERSION_END
            and staged.STAGED_WRITES
        ):
            try:  # _call_once, inlined: tried once, errors translated outside the except block
                version = _write_staged(
                    lean, MOVE_AFTER_SCRIPT, MOVE_AFTER_SHA, stored, self._staging, data, px
                )
                failure: BaseException | None = None
            except self._FAILURES as exc:
                failure = exc
            if failure is not None:
                raise self._translate(failure, "set_after", key)
            if type(version) is not bytes:  # (the script's reply, the version, is settled)
                version = self._after_reply(key, stored, data, px, STAGED_LAYOUT, version)
            else:  # counted (self.counters.add, inline as in base's _set)
                lock = self._count_lock
                lock.acquire()
                self._counts["writes"] += 1  # cannot raise: "writes" is there
                lock.release()
        else:
            version = self._after_reply(key, stored, data, px, STAGED_LAYOUT, _NOT_TRIED)
        if version == data[VERSION_START:VERSION_END]:
            return data
        return b"".join((data[:VERSION_START], version, data[VERSION_END:]))  # (with_version)

    def _after_reply(
        self,
        key: str,
        stored: str,
        value: bytes,
        px: int | None,
        layout: tuple[int, ...],
        reply: Any,
    ) -> bytes:
        """The version ``set_after`` stored, from the lean staged write's ``reply`` (settled:
        :meth:`_settled`), or from the staged write through the pool's client (``reply``
        :data:`_NOT_TRIED`), or from the one-script text where it was not staged; the write
        counted."""
        if reply is not _NOT_TRIED:
            version = self._settled(reply)
        else:
            script = MOVE_AFTER_SCRIPT, MOVE_AFTER_SHA
            version = self._staged("set_after", key, stored, script, value, px, layout)
        if version is None:
            head, start, end, clock_end = layout
            args = [value, px or 0, head, start + 1, end, clock_end]
            version = self._unstaged(
                "set_after", key, self._set_after_script, _SET_AFTER, stored, args
            )
        self.counters.add("writes")
        return version if type(version) is bytes else bytes(version)

    def _unstaged(
        self,
        what: str,
        key: str,
        script: Any,
        text: tuple[str, str],
        stored: str,
        args: list[Any],
    ) -> Any:
        """The reply of the one-script text ``text`` (its SHA and text; ``script``: redis-py's
        ``Script`` of it) on ``stored``: tried once, errors translated (a lost reply is an error:
        the caller cannot know whether it ran). On the lean client where there is one (no
        import, pool checkout or encoder layers: a chain save without an expiry costs the client
        half the instructions it did through ``Script``), else through ``Script``; both send the
        same commands (:func:`~session_store_redis.lean_script.run_by_sha`)."""
        lean = self._lean
        if lean is None:
            return self._call_once(what, key, script, keys=[stored], args=args)
        return self._call_once(what, key, run_by_sha, lean, *text, stored, args)

    def _staged(
        self,
        what: str,
        key: str,
        stored: str,
        script: tuple[str, str],
        value: bytes,
        px: int | None,
        layout: tuple[int, ...],
    ) -> Any:
        """The reply of the staged form (:mod:`~session_store_redis.staged`) of the ordered
        write ``script`` (its text and SHA), or ``None`` if it was not staged: a layout, a
        client or a server (its ACL, from now on) that takes only the one-script texts."""
        if not (self._stage and can_stage(self._client, value, layout, px)):
            return None
        run = (*script, stored, self._staging, value, px)
        return self._settled(
            self._call_once(what, key, staged_write, self._lean or self._client, *run)
        )

    def _settled(self, reply: Any) -> Any:
        """What a staged write's ``reply`` (:func:`~session_store_redis.staged.staged_write`)
        means here: its outcome, or ``None`` to write with the one-script text instead; staging
        stops for good when the server refused it (:func:`~session_store_redis.staged.settle`)."""
        stop, outcome = settle(reply)
        if stop:
            if isinstance(reply, Unqueued) and reply.multi_refused:  # MULTI itself, for good:
                self._multi_refused()  # the reads stop trying it too (and staging stops)
            else:
                self._refused()
        return None if outcome is REFUSED else outcome

    def _multi_refused(self) -> None:
        """The server's ACL refused ``MULTI`` (a read or touch met it first): no staged write
        either (its ``MULTI`` would be refused and its commands run one by one)."""
        super()._multi_refused()
        self._refused()

    def _refused(self) -> None:
        """The server's ACL refused a staged write's commands (``MULTI``, ``RENAME``, ...):
        this backend writes with the one-script texts from now on (the connection that met the
        refusal deleted its staging key: :func:`~session_store_redis.staged.staged_write`)."""
        if self._stage:
            self._stage = False
            log.warning(
                "%s: the server refused a staged write (ACL or rename-command);"
                " using the one-script writes",
                self._description,
            )
