"""Check a recorded history: is every key a linearizable register with compare-and-set?

:func:`check_history` takes the operations of a :mod:`~session_store.testing.history` (any
number of processes, merged) and checks each key on its own (linearizability is local: a
history is linearizable if and only if the history of every key is):

* **Linearizable** (``not-linearizable``): a Wing-Gong search, with Lowe's memoization of
  ``(operations linearized, register value)``, looks for one total order of the operations
  that respects real time (an operation that returned before another was invoked comes first)
  and the register's rules: a ``load`` reads the last value written, a ``save`` writes its
  value, a ``delete`` writes "absent", an ``update`` is a compare-and-set from the value its
  function was handed (``prev``) to the value it wrote. Operations that ``fail`` never
  happened; ``unknown`` ones may have happened once, at any time after their invocation, or
  never (a write nobody ever read is left out: leaving it out never hides a violation).
* **No acknowledged update missing** (``lost-update``): no two acknowledged updates were
  handed the same value (one of them overwrote the other), and nothing invoked after an
  acknowledged update returned observed a value (or an absence) that the update had
  certainly replaced.
* **No resurrected delete** (``resurrected-delete``): nothing invoked after an acknowledged
  delete returned observed a value written before that delete was invoked. (A write invoked
  later writes a new value, so a re-created key is never mistaken for a resurrected one.)
* ``stale-read``: an observation of a value an acknowledged ``save`` had certainly replaced;
  ``phantom-read``: a value no operation wrote.

The explicit rules name the operations involved, which a failed search alone cannot; the search
catches every other ordering violation (a value read before it was written, reads that
disagree about the order of two writes, ...).

``read_staleness`` (seconds) checks the weaker Δ-atomicity of Golab, Li and Shah (2011) for
``load`` instead: each load is treated as if invoked that much earlier, so it may return any
value current at some moment of ``[invoke - Δ, complete]``: the promise of a near cache with a
staleness bound. Updates are never relaxed. Pure computation: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from session_store.testing.history import Operation, Value
from session_store.testing.wing_gong import end_of, search, start_of

__all__ = [
    "Anomaly",
    "AnomalyKind",
    "CheckReport",
    "KeyReport",
    "check_history",
]

#: The kinds of violation :func:`check_history` reports.
AnomalyKind: TypeAlias = Literal[
    "not-linearizable", "lost-update", "resurrected-delete", "stale-read", "phantom-read"
]

_DEFAULT_MAX_STATES: Final = 500_000
#: The search's budget for a key the explicit rules already convicted: the verdict is known
#: (the rules never accuse a linearizable history), the search only looks for a witness.
_CONVICTED_MAX_STATES: Final = 20_000


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One violation: its kind, the key, the operations that show it, and an explanation."""

    kind: AnomalyKind
    key: str
    ops: tuple[str, ...]
    message: str


@dataclass(frozen=True, slots=True)
class KeyReport:
    """The verdict for one key.

    Attributes:
        linearizable: ``None`` when the search gave up after ``max_states`` states.
        operations: how many operations were checked (fails and unread unknown writes left out).
        states: how many distinct search states were visited.
    """

    key: str
    operations: int
    linearizable: bool | None
    anomalies: tuple[Anomaly, ...]
    states: int


@dataclass(frozen=True, slots=True)
class CheckReport:
    """The verdict for a whole history: :attr:`valid` when every key passed every check."""

    keys: tuple[KeyReport, ...]
    read_staleness: float = 0.0  # the longest lag allowed to any load
    anomalies: tuple[Anomaly, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "anomalies", tuple(a for report in self.keys for a in report.anomalies)
        )

    @property
    def valid(self) -> bool:
        """Linearizable (Δ-atomic with ``read_staleness``) and no anomaly on any key."""
        return not self.anomalies and all(r.linearizable is True for r in self.keys)

    def count(self, kind: AnomalyKind) -> int:
        """How many anomalies of ``kind`` were found."""
        return sum(1 for a in self.anomalies if a.kind == kind)

    @property
    def lost_updates(self) -> int:
        """Acknowledged updates whose effect went missing."""
        return self.count("lost-update")

    @property
    def resurrected_deletes(self) -> int:
        """Observations of a value an acknowledged delete had removed."""
        return self.count("resurrected-delete")

    def summary(self, limit: int = 10) -> str:
        """A readable verdict: totals, then the first ``limit`` anomalies."""
        ops = sum(r.operations for r in self.keys)
        bad = [r.key for r in self.keys if r.linearizable is False]
        gave_up = [r.key for r in self.keys if r.linearizable is None]
        kinds: tuple[AnomalyKind, ...] = (
            "lost-update",
            "resurrected-delete",
            "stale-read",
            "phantom-read",
        )
        counts = ", ".join(f"{self.count(k)} {k}" for k in kinds)
        lines = [
            f"{'VALID' if self.valid else 'INVALID'}: {len(self.keys)} keys, {ops} operations; "
            f"not linearizable: {len(bad)} keys; search gave up: {len(gave_up)}; {counts}"
        ]
        lines += [f"  {a.kind} {a.key}: {a.message}" for a in self.anomalies[:limit]]
        if len(self.anomalies) > limit:
            lines.append(f"  ... and {len(self.anomalies) - limit} more")
        return "\n".join(lines)


def check_history(
    operations: Iterable[Operation],
    *,
    initial: Value | Mapping[str, Value] = None,
    read_staleness: float | Callable[[Operation], float] = 0.0,
    max_states: int = _DEFAULT_MAX_STATES,
) -> CheckReport:
    """Check every key of a history (see the module docstring).

    Args:
        operations: from one or more :class:`~session_store.testing.history.HistoryRecorder`.
        initial: the register's value before the history, for every key or per key
            (default: absent).
        read_staleness: seconds a ``load`` may lag behind (0: linearizability), or a function
            giving it per load (say, a longer bound for loads during and just after an outage).
        max_states: give up the search of a key after this many states (its
            ``linearizable`` is then ``None`` and the report is not valid); a key the explicit
            rules already found an anomaly in gets at most 20,000 (its verdict is known).

    Raises:
        ValueError: two writes of the history write the same value (values must be unique
            tokens), or an ``ok`` operation has no completion time.
    """
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in operations:
        if op.outcome == "ok" and op.complete_ns is None:
            raise ValueError(f"{op.id} is ok but has no completion time")
        by_key[op.key].append(op)

    def lag(op: Operation) -> float:
        return read_staleness(op) if callable(read_staleness) else read_staleness

    shifts = {
        op.id: round(lag(op) * 1e9) for ops in by_key.values() for op in ops if op.kind == "load"
    }
    reports = []
    for key in sorted(by_key):
        start = initial.get(key) if isinstance(initial, Mapping) else initial
        reports.append(_check_key(key, by_key[key], start, shifts, max_states))
    return CheckReport(tuple(reports), max(map(float, shifts.values()), default=0.0) / 1e9)


# -- one key --------------------------------------------------------------------------------------
def _relevant(ops: Sequence[Operation]) -> tuple[list[Operation], dict[str, int]]:
    """The operations that may have had an effect or made an observation, and for each kept
    indeterminate one the time after which taking effect could no longer matter.

    An indeterminate write of a value some acknowledged operation observed (directly, or through
    indeterminate updates built on it) must have happened, before the last such observer
    returned. One nobody needs is left out: leaving it out can hide no violation. An
    indeterminate delete may or may not have happened, and matters only until the last
    observation of "absent" that could follow it.
    """
    writers: dict[str, Operation] = {}
    for op in ops:
        if op.outcome == "fail" or not op.writes or op.value is None:
            continue
        other = writers.get(op.value)
        if other is not None:
            raise ValueError(
                f"{other.id} and {op.id} both write {op.value!r}: give every write a unique value"
            )
        writers[op.value] = op
    needed: dict[str, int] = {}
    pending = [
        (_observed(op), op.complete_ns)
        for op in ops
        if op.outcome == "ok" and op.kind in ("load", "update") and op.complete_ns is not None
    ]
    while pending:
        value, by = pending.pop()
        writer = None if value is None else writers.get(value)
        if writer is None or writer.outcome == "ok" or needed.get(writer.id, -1) >= by:
            continue
        needed[writer.id] = by
        if writer.kind == "update":
            pending.append((writer.prev, by))
    last_absent = max(
        (
            op.complete_ns if op.complete_ns is not None and op.outcome == "ok" else needed[op.id]
            for op in ops
            if op.kind in ("load", "update")
            and _observed(op) is None
            and (op.outcome == "ok" or op.id in needed)
        ),
        default=-1,
    )
    kept = []
    for op in ops:
        if op.outcome == "ok" or (op.outcome == "unknown" and op.id in needed):
            kept.append(op)
        elif op.outcome == "unknown" and op.kind == "delete" and last_absent >= op.invoke_ns:
            needed[op.id] = last_absent
            kept.append(op)
    return kept, needed


def _observed(op: Operation) -> Value:
    """What an operation saw of the register (a load's value, an update's ``prev``)."""
    return op.prev if op.kind == "update" else op.value


def _check_key(
    key: str,
    all_ops: Sequence[Operation],
    initial: Value,
    shift: Mapping[str, int],
    max_states: int,
) -> KeyReport:
    ops, deadlines = _relevant(all_ops)
    anomalies = _rule_anomalies(key, ops, initial, shift)
    if anomalies:
        max_states = min(max_states, _CONVICTED_MAX_STATES)
    verdict, states, witness = search(ops, deadlines, initial, shift, max_states)
    if verdict is False:
        anomalies.append(Anomaly("not-linearizable", key, witness[0], witness[1]))
    return KeyReport(key, len(ops), verdict, tuple(anomalies), states)


class _Latest:
    """Acknowledged writes of one kind: "the latest invocation among those that returned before
    time t" in O(log n)."""

    def __init__(self, ops: Iterable[Operation]) -> None:
        done = sorted(ops, key=lambda op: (end_of(op), op.invoke_ns))
        self._ends = [end_of(op) for op in done]
        self._best: list[Operation] = []
        for op in done:
            if not self._best or op.invoke_ns > self._best[-1].invoke_ns:
                self._best.append(op)
            else:
                self._best.append(self._best[-1])

    def before(self, time: int) -> Operation | None:
        index = bisect.bisect_left(self._ends, time)
        return self._best[index - 1] if index else None


def _rule_anomalies(
    key: str, ops: Sequence[Operation], initial: Value, shift: Mapping[str, int]
) -> list[Anomaly]:
    acked = [op for op in ops if op.outcome == "ok"]
    writers = {op.value: op for op in ops if op.writes and op.value is not None}
    deletes = _Latest(op for op in acked if op.kind == "delete")
    updates = _Latest(op for op in acked if op.kind == "update" and op.writes)
    saves = _Latest(op for op in acked if op.kind == "save")
    any_write = _Latest(op for op in acked if op.writes and op.kind != "delete")
    maybe_deletes = sorted((op for op in ops if op.kind == "delete"), key=lambda op: op.invoke_ns)
    delete_starts = [op.invoke_ns for op in maybe_deletes]
    delete_latest_end = list(itertools.accumulate((end_of(op) for op in maybe_deletes), max))
    anomalies: list[Anomaly] = []

    for op in acked:
        if op.kind not in ("load", "update"):
            continue
        seen, since = _observed(op), start_of(op, shift)
        if seen is not None and seen not in writers and seen != initial:
            anomalies.append(
                Anomaly("phantom-read", key, (op.id,), f"{op.describe()}: nothing wrote {seen!r}")
            )
            continue
        if seen is not None:
            writer = writers.get(seen)
            written = -1 if writer is None else end_of(writer)  # -1: the initial value
            for kind, latest in (
                ("resurrected-delete", deletes),
                ("lost-update", updates),
                ("stale-read", saves),
            ):
                newer = latest.before(since)
                if newer is not None and newer.invoke_ns > written:
                    source = "the initial value" if writer is None else writer.id
                    anomalies.append(
                        Anomaly(
                            kind,  # type: ignore[arg-type]
                            key,
                            (op.id, newer.id) + (() if writer is None else (writer.id,)),
                            f"{op.describe()} saw {seen!r} (from {source}), which "
                            f"{newer.describe()} had replaced before it began",
                        )
                    )
                    break
            continue
        newest = any_write.before(since)
        if newest is None:
            continue
        # a delete (maybe indeterminate) that may fall between the write and this observation
        began = bisect.bisect_right(delete_starts, end_of(op))
        explained = began > 0 and delete_latest_end[began - 1] >= newest.invoke_ns
        if not explained:
            anomalies.append(
                Anomaly(
                    "lost-update" if newest.kind == "update" else "stale-read",
                    key,
                    (op.id, newest.id),
                    f"{op.describe()} found the key absent after {newest.describe()} returned, "
                    "and no delete could have come between",
                )
            )

    based: dict[str, list[Operation]] = defaultdict(list)
    for op in acked:
        if op.kind == "update" and op.writes and op.prev is not None:
            based[op.prev].append(op)
    for prev, group in based.items():
        if len(group) > 1:
            anomalies.append(
                Anomaly(
                    "lost-update",
                    key,
                    tuple(op.id for op in group),
                    f"{len(group)} acknowledged updates were all handed {prev!r}: "
                    + "; ".join(op.describe() for op in group),
                )
            )
    return anomalies
