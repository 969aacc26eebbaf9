"""Record what clients did to a store, Jepsen style: every invocation and every completion.

A history is the raw material of :mod:`session_store.testing.linearizability`. Each client
(a thread, or a process) owns a :class:`HistoryRecorder` and wraps every store call::

    recorder = HistoryRecorder("p1")
    pending = recorder.invoke("save", "user:1", value="p1-17")
    try:
        store.save("user:1", {"token": "p1-17"})
    except ConflictError as exc:        # the API promises nothing was written
        recorder.fail(pending, exc)
    except Exception as exc:            # timeout, outage: it may or may not have happened
        recorder.unknown(pending, exc)
    else:
        recorder.ok(pending)

Register values are opaque strings (``None`` is "absent"); every write must write a value no
other write in the history writes (a token such as ``"p1-17"``), so that a read names the write
it saw. An ``update`` records ``prev``, the value the update function was handed on the attempt
that was written, and ``value``, what it wrote (``value == prev`` when it wrote nothing).

Outcomes: ``ok`` (acknowledged: it happened, once, between invocation and completion), ``fail``
(it certainly did not happen, as :class:`~session_store.errors.ConflictError` promises) and
``unknown`` (a timeout, an outage, a crash of the client: it may have happened at any time after
its invocation, or never). An invocation whose completion was never recorded is ``unknown``.

Times are ``time.monotonic_ns()``, which on Linux is one clock for every process of the host, so
histories recorded by separate processes merge into one. Nothing here does I/O: a recorder hands
every event to ``sink`` (a callable), and a process that may be killed streams them to a file
of its own; :func:`operations_from_events` rebuilds the operations from the merged events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, cast, get_args

__all__ = [
    "Event",
    "HistoryRecorder",
    "OpKind",
    "Operation",
    "Outcome",
    "Pending",
    "Value",
    "operations_from_events",
]

#: What a client asked for: ``load`` (a read), ``save`` (a blind write), ``delete``, ``update``
#: (read-modify-write, a compare-and-set of ``prev`` to ``value``).
OpKind: TypeAlias = Literal["load", "save", "delete", "update"]
#: How it ended; see the module docstring.
Outcome: TypeAlias = Literal["ok", "fail", "unknown"]
#: A register value: a unique token written by one operation, or ``None`` for "absent".
Value: TypeAlias = str | None
#: One event as handed to a sink: a JSON-ready dict (``type`` is ``invoke`` or ``complete``).
Event: TypeAlias = dict[str, Any]

_KINDS: Final = frozenset(get_args(OpKind))
_OUTCOMES: Final = frozenset(get_args(Outcome))


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a history, from invocation to completion.

    Attributes:
        id: unique in the history (``"<process>:<sequence>"``).
        process: who ran it; one process runs one operation at a time.
        kind: see :data:`OpKind`.
        key: the key it touched.
        invoke_ns / complete_ns: ``time.monotonic_ns()`` before the call and after it returned
            (``None``: never returned, the client died).
        outcome: see :data:`Outcome`.
        value: ``load``: what it read; ``save`` / ``update``: what it wrote; ``delete``: ``None``.
        prev: ``update`` only: the value the update function was handed.
        error: the exception's type name for ``fail`` and ``unknown``.
    """

    id: str
    process: str
    kind: OpKind
    key: str
    invoke_ns: int
    complete_ns: int | None
    outcome: Outcome
    value: Value = None
    prev: Value = None
    error: str | None = None

    @property
    def writes(self) -> bool:
        """Whether the operation (if it happened) changed the register."""
        if self.kind in ("save", "delete"):
            return True
        return self.kind == "update" and self.value != self.prev

    def describe(self) -> str:
        """A one-line account, for reports: ``p1:17 update user:1 'a'->'b' ok [0.120-0.125 s]``."""
        if self.kind == "update":
            what = f"{self.prev!r}->{self.value!r}"
        elif self.kind == "delete":
            what = ""
        else:
            what = repr(self.value)
        end = "?" if self.complete_ns is None else f"{self.complete_ns / 1e9:.6f}"
        error = f" ({self.error})" if self.error else ""
        return (
            f"{self.id} {self.kind} {self.key} {what} {self.outcome}{error} "
            f"[{self.invoke_ns / 1e9:.6f}-{end}]"
        ).replace("  ", " ")


@dataclass(frozen=True, slots=True)
class Pending:
    """An invocation waiting for its completion (returned by :meth:`HistoryRecorder.invoke`)."""

    id: str
    kind: OpKind
    key: str
    invoke_ns: int
    value: Value


class HistoryRecorder:
    """Records the operations of one client; safe to share between threads of one process.

    Args:
        process: the client's name, unique in the history (``"p1"``, ``"worker-3/thread-2"``).
        sink: called with every event as it happens (for example to append it to a file that
            outlives a crash); the recorder also keeps the finished :attr:`operations`.
        clock: nanoseconds of a monotonic clock shared by every recording process.
    """

    def __init__(
        self,
        process: str,
        *,
        sink: Callable[[Event], None] | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.process = process
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._sequence = 0
        self._pending: dict[str, Pending] = {}
        self.operations: list[Operation] = []

    def invoke(self, kind: OpKind, key: str, value: Value = None) -> Pending:
        """Record the start of an operation; call it just before the store call.

        Args:
            value: for ``save`` and ``update``, the value it will write (known in advance:
                a token); ignored for ``load`` and ``delete``.
        """
        if kind not in _KINDS:
            raise ValueError(f"unknown operation kind {kind!r}")
        with self._lock:
            self._sequence += 1
            pending = Pending(
                f"{self.process}:{self._sequence}",
                kind,
                key,
                self._clock(),
                value if kind in ("save", "update") else None,
            )
            self._pending[pending.id] = pending
        self._emit(
            {
                "type": "invoke",
                "id": pending.id,
                "process": self.process,
                "kind": kind,
                "key": key,
                "time": pending.invoke_ns,
                "value": pending.value,
            }
        )
        return pending

    def ok(self, pending: Pending, value: Value = None, *, prev: Value = None) -> Operation:
        """The call returned normally.

        Args:
            value: ``load``: what it read. ``save`` / ``update``: leave it out to keep the value
                given to :meth:`invoke`; an ``update`` that wrote nothing passes ``prev``.
            prev: ``update``: the value its function was handed on the attempt that counted.
        """
        if pending.kind in ("save", "update") and value is None:
            value = pending.value
        if pending.kind == "delete":
            value = None
        return self._complete(pending, "ok", value, prev, None)

    def fail(self, pending: Pending, error: BaseException | str) -> Operation:
        """The call raised and certainly changed nothing (for example ``ConflictError``)."""
        return self._complete(pending, "fail", pending.value, None, _error_name(error))

    def unknown(
        self, pending: Pending, error: BaseException | str, *, prev: Value = None
    ) -> Operation:
        """The call raised and may have taken effect (timeouts, outages).

        Args:
            prev: ``update``: the value its function was last handed, if it ran.
        """
        return self._complete(pending, "unknown", pending.value, prev, _error_name(error))

    def _complete(
        self, pending: Pending, outcome: Outcome, value: Value, prev: Value, error: str | None
    ) -> Operation:
        now = self._clock()
        with self._lock:
            if self._pending.pop(pending.id, None) is None:
                raise ValueError(f"operation {pending.id} was already completed")
            op = Operation(
                pending.id,
                self.process,
                pending.kind,
                pending.key,
                pending.invoke_ns,
                now,
                outcome,
                value,
                prev if pending.kind == "update" else None,
                error,
            )
            self.operations.append(op)
        self._emit(
            {
                "type": "complete",
                "id": op.id,
                "time": now,
                "outcome": outcome,
                "value": value,
                "prev": op.prev,
                "error": error,
            }
        )
        return op

    def _emit(self, event: Event) -> None:
        if self._sink is not None:
            self._sink(event)

    def unfinished(self) -> list[Operation]:
        """The invocations without a completion so far, as ``unknown`` operations."""
        with self._lock:
            pending = list(self._pending.values())
        return [_unfinished(p, self.process) for p in pending]


def _error_name(error: BaseException | str) -> str:
    return error if isinstance(error, str) else type(error).__name__


def _unfinished(pending: Pending, process: str) -> Operation:
    return Operation(
        pending.id,
        process,
        pending.kind,
        pending.key,
        pending.invoke_ns,
        None,
        "unknown",
        pending.value,
        None,
        "never completed",
    )


def operations_from_events(events: Iterable[Mapping[str, Any]]) -> list[Operation]:
    """Rebuild operations from the events of one or more recorders, in invocation order.

    An invocation without a completion (its client was killed) becomes an ``unknown``
    operation with ``complete_ns=None``.

    Raises:
        ValueError: an event is malformed, an id is invoked twice, or a completion has no
            invocation.
    """
    invoked: dict[str, Mapping[str, Any]] = {}
    completed: dict[str, Mapping[str, Any]] = {}
    for event in events:
        kind = event.get("type")
        op_id = str(event.get("id"))
        target = invoked if kind == "invoke" else completed if kind == "complete" else None
        if target is None:
            raise ValueError(f"not a history event: {event!r}")
        if op_id in target:
            raise ValueError(f"operation {op_id} has two {kind} events")
        target[op_id] = event
    stray = set(completed) - set(invoked)
    if stray:
        raise ValueError(f"completions without invocation: {sorted(stray)[:5]}")
    operations = []
    for op_id, start in invoked.items():
        op_kind = start["kind"]
        if op_kind not in _KINDS:
            raise ValueError(f"unknown operation kind in {start!r}")
        end = completed.get(op_id)
        if end is None:
            operations.append(
                _unfinished(
                    Pending(op_id, op_kind, str(start["key"]), int(start["time"]), start["value"]),
                    str(start["process"]),
                )
            )
            continue
        outcome = end["outcome"]
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome in {end!r}")
        operations.append(
            Operation(
                op_id,
                str(start["process"]),
                cast(OpKind, op_kind),
                str(start["key"]),
                int(start["time"]),
                int(end["time"]),
                cast(Outcome, outcome),
                end.get("value"),
                end.get("prev"),
                end.get("error"),
            )
        )
    operations.sort(key=lambda op: (op.invoke_ns, op.id))
    return operations
