"""The future of one reply (a Redis reply, a worker thread's result), whose waiting task
resumes in the loop pass that delivers it.

asyncio's own loop wakes a task awaiting an :class:`asyncio.Future` in two passes: the pass
that reads the reply sets the future's result, which only *schedules* the task (``call_soon``);
the next pass (one more ``epoll_wait``, one more ``Handle``) runs it. Measured with callgrind on
this project's machine, that second pass was about a tenth of what an async ``save`` + ``load``
over Redis cost the client. A :class:`Reply` is a future by asyncio's duck typing
(``asyncio.isfuture``: what a ``Task`` awaits through ``_asyncio_future_blocking``,
``add_done_callback`` and ``result``) whose :meth:`Reply.resolve` runs the waiting task's
wake-up at once, from the loop callback that delivers the reply, instead of scheduling it.

That is sound only where no task is running (a task's step cannot start inside another's), so
only loop callbacks resolve inline: the Redis connection's transport callbacks (checking
``asyncio.current_task()`` first) and a worker thread's ``call_soon_threadsafe``
(:mod:`session_store.aio.worker`). Every other completion (:meth:`set_result`,
:meth:`set_exception`, :meth:`cancel`) schedules the callbacks as :class:`asyncio.Future` does.
The Redis connection hands out replies only on asyncio's own loops: uvloop runs its passes in C,
and a Python future costs it more than the pass it would save.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Reply"]

_PENDING, _DONE, _FAILED, _CANCELLED = 0, 1, 2, 3

T = TypeVar("T")

Callback = Callable[["Reply[Any]"], object]


class Reply(Generic[T]):
    """A duck-typed :class:`asyncio.Future` of one reply (see the module docstring)."""

    __slots__ = ("_asyncio_future_blocking", "_callbacks", "_loop", "_result", "_state")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._state = _PENDING
        self._result: Any = None
        self._callbacks: list[tuple[Callback, contextvars.Context | None]] | None = None
        self._asyncio_future_blocking = False

    # -- what a Task asks of a future ----------------------------------------------------------
    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def add_done_callback(
        self, fn: Callback, *, context: contextvars.Context | None = None
    ) -> None:
        if context is None:  # as asyncio.Future: the adder's context, not the resolver's
            context = contextvars.copy_context()
        if self._state != _PENDING:
            self._loop.call_soon(fn, self, context=context)
        elif self._callbacks is None:  # (the usual: one, the waiting task's)
            self._callbacks = [(fn, context)]
        else:
            self._callbacks.append((fn, context))

    def remove_done_callback(self, fn: Callback) -> int:
        callbacks = self._callbacks or []
        kept = [(f, c) for f, c in callbacks if f != fn]
        self._callbacks = kept or None
        return len(callbacks) - len(kept)

    def result(self) -> T:
        state = self._state
        if state == _DONE:
            return self._result  # type: ignore[no-any-return]
        if state == _FAILED:
            raise self._result
        if state == _CANCELLED:
            raise self._make_cancelled_error()
        raise asyncio.InvalidStateError("Result is not ready.")

    # -- what asyncio.gather asks of a cancelled child (asyncio.Future's private API) ----------
    @property
    def _cancel_message(self) -> Any:
        return self._result if self._state == _CANCELLED else None

    def _make_cancelled_error(self) -> asyncio.CancelledError:
        return asyncio.CancelledError(*(() if self._result is None else (self._result,)))

    def exception(self) -> BaseException | None:
        state = self._state
        if state == _CANCELLED:
            raise asyncio.CancelledError
        if state == _PENDING:
            raise asyncio.InvalidStateError("Exception is not set.")
        return self._result if state == _FAILED else None

    def cancel(self, msg: Any = None) -> bool:
        if self._state != _PENDING:
            return False
        self._state, self._result = _CANCELLED, msg
        self._schedule()
        return True

    def __await__(self) -> Generator[Any, None, T]:
        if self._state == _PENDING:
            self._asyncio_future_blocking = True
            yield self  # the task adds its wake-up, and is woken by resolve / _schedule
        return self.result()

    __iter__ = __await__

    # -- completion ----------------------------------------------------------------------------
    def set_result(self, value: T) -> None:
        """Done with ``value``; the callbacks scheduled, as ``asyncio.Future`` does."""
        if self._state == _PENDING:
            self._state, self._result = _DONE, value
            self._schedule()

    def set_exception(self, error: BaseException) -> None:
        """Failed with ``error``; the callbacks scheduled."""
        if self._state == _PENDING:
            self._state, self._result = _FAILED, error
            self._schedule()

    def resolve(self, value: Any, failed: bool = False) -> None:
        """Done with ``value`` (failed with it if ``failed``), the callbacks run now (a
        cancelled reply is dropped). Only from a loop callback outside any task: the waiting
        task's step runs inside this call."""
        if self._state != _PENDING:
            return
        self._state, self._result = (_FAILED if failed else _DONE), value
        callbacks, self._callbacks = self._callbacks, None
        for fn, context in callbacks or ():
            try:
                if context is None:
                    fn(self)
                else:
                    context.run(fn, self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as the loop's Handle would report it
                self._loop.call_exception_handler(
                    {"message": "Exception in a reply's callback", "exception": exc}
                )

    def _schedule(self) -> None:
        callbacks, self._callbacks = self._callbacks, None
        for fn, context in callbacks or ():
            self._loop.call_soon(fn, self, context=context)
