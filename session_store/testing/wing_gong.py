"""Wing and Gong's search for a linearization of one key's operations, with Lowe's memoization.

Used by :func:`session_store.testing.linearizability.check_history` once the explicit rules have
run: it decides whether some total order of the operations respects real time and the rules of
a register with compare-and-set, and when none does names the operation no order could place.
Pure computation: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from session_store.testing.history import Operation, Value

__all__ = ["NEVER", "end_of", "search", "start_of"]

NEVER: Final = 1 << 63  # the completion time of an operation that may take effect at any time


def start_of(op: Operation, shifts: Mapping[str, int]) -> int:
    """When ``op`` may first take effect: its invocation, less the lag allowed to a load."""
    return op.invoke_ns - shifts.get(op.id, 0)


def end_of(op: Operation) -> int:
    """When ``op`` took effect at the latest: its completion, or :data:`NEVER` if unknown."""
    return op.complete_ns if op.outcome == "ok" and op.complete_ns is not None else NEVER


class _Entry:
    """A call or a return in the doubly linked list the search lifts operations out of."""

    __slots__ = ("call", "index", "match", "next", "prev", "time")

    def __init__(self, index: int, call: bool, time: int) -> None:
        self.index = index
        self.call = call
        self.time = time
        self.prev: _Entry | None = None
        self.next: _Entry | None = None
        self.match: _Entry | None = None  # a call's return


def _step(op: Operation, state: Value) -> tuple[bool, Value]:
    """Apply ``op`` to a register holding ``state``: (allowed, new state)."""
    if op.kind == "load":
        return op.value == state, state
    if op.kind == "save":
        return True, op.value
    if op.kind == "delete":
        return True, None
    return op.prev == state, op.value


def _lift(entry: _Entry) -> None:
    for node in (entry, entry.match):
        assert node is not None and node.prev is not None
        node.prev.next = node.next
        if node.next is not None:
            node.next.prev = node.prev


def _unlift(entry: _Entry) -> None:
    for node in (entry.match, entry):
        assert node is not None and node.prev is not None
        node.prev.next = node
        if node.next is not None:
            node.next.prev = node


_PLACED, _READ, _SKIPPED = 0, 1, 2  # how an operation left the list (see _search)


def search(
    ops: Sequence[Operation],
    deadlines: Mapping[str, int],
    initial: Value,
    shift: Mapping[str, int],
    max_states: int,
) -> tuple[bool | None, int, tuple[tuple[str, ...], str]]:
    """Wing & Gong's search with Lowe's memoization: (verdict, states, witness if not).

    Two prunings keep it small. A read (a load, or an update that wrote nothing) that fits the
    register when the scan reaches it is placed there and never tried later: placing it as early
    as it fits loses no order, since it changes nothing. An indeterminate delete whose deadline
    passes unplaced never happened (it is lifted out; backtracking through that is no choice).
    An indeterminate write somebody needed is placed like an acknowledged one, its deadline
    standing for its return.
    """
    events: list[tuple[int, int, int]] = []
    for index, op in enumerate(ops):
        begin = start_of(op, shift)
        end = max(deadlines.get(op.id, end_of(op)), begin)  # needed before it began: cannot fit
        events.append((begin, 0, index))  # calls sort before returns at a tie
        events.append((end, 1, index))
    events.sort()
    head = _Entry(-1, False, -1)
    calls: dict[int, _Entry] = {}
    last = head
    for time, is_return, index in events:
        node = _Entry(index, not is_return, time)
        if is_return:
            calls[index].match = node
        else:
            calls[index] = node
        node.prev, last.next = last, node
        last = node
    optional = [op.outcome != "ok" and op.kind == "delete" for op in ops]
    reads = [not op.writes for op in ops]

    state = initial
    linearized = 0
    seen: set[tuple[int, Value]] = set()
    stack: list[tuple[_Entry, Value, int]] = []
    deepest, blocked, blocked_state = -1, -1, initial
    entry: _Entry | None = head.next
    while entry is not None:
        index = entry.index
        if entry.call:
            allowed, after = _step(ops[index], state)
            if allowed:
                bits = linearized | (1 << index)
                if (bits, after) not in seen:
                    seen.add((bits, after))
                    if len(seen) > max_states:
                        return None, len(seen), ((), "search budget exhausted")
                    stack.append((entry, state, _READ if reads[index] else _PLACED))
                    state, linearized = after, bits
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        if optional[index]:  # an indeterminate delete past its deadline: it never happened
            bits = linearized | (1 << index)
            if (bits, state) not in seen:
                seen.add((bits, state))
                call = calls[index]
                stack.append((call, state, _SKIPPED))
                linearized = bits
                _lift(call)
                entry = head.next
                continue
        # the return of an operation not placed yet: undo the last real choice
        if len(stack) > deepest:
            deepest, blocked, blocked_state = len(stack), index, state
        while True:
            if not stack:
                return False, len(seen), _witness(ops, blocked, blocked_state, deepest)
            top, state, how = stack.pop()
            linearized &= ~(1 << top.index)
            _unlift(top)
            if how == _PLACED:
                entry = top.next
                break
    return True, len(seen), ((), "")


def _witness(
    ops: Sequence[Operation], blocked: int, state: Value, depth: int
) -> tuple[tuple[str, ...], str]:
    op = ops[blocked]
    return (op.id,), (
        f"no order of the operations fits: at best {depth} of {len(ops)} were placed, "
        f"then {op.describe()} could not be, the register holding {state!r}"
    )
