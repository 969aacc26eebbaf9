"""The history checker, tested on handmade histories whose verdict is known, and on generated ones.

Times in the handmade histories are milliseconds; ``(0, 1)`` means invoked at 0 ms, returned at
1 ms. Every bad history must be caught, and by the rule that names its anomaly; every good one
(including overlapping and indeterminate operations) must pass.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store.testing import (
    HistoryRecorder,
    Operation,
    check_history,
    operations_from_events,
)
from session_store.testing.history import OpKind, Outcome, Value

_ids = itertools.count()


def op(
    kind: OpKind,
    at: tuple[float, float | None],
    value: Value = None,
    *,
    prev: Value = None,
    outcome: Outcome = "ok",
    key: str = "k",
    process: str | None = None,
) -> Operation:
    n = next(_ids)
    start, end = at
    return Operation(
        id=f"{process or 'p'}:{n}",
        process=process or f"p{n}",
        kind=kind,
        key=key,
        invoke_ns=int(start * 1e6),
        complete_ns=None if end is None else int(end * 1e6),
        outcome=outcome,
        value=value,
        prev=prev,
        error=None if outcome == "ok" else "TimeoutError",
    )


def kinds(history: list[Operation], **options: Any) -> list[str]:
    report = check_history(history, **options)
    return sorted({a.kind for a in report.anomalies})


# -- good histories --------------------------------------------------------------------------------
def test_a_sequential_history_is_valid() -> None:
    history = [
        op("load", (0, 1), None),
        op("save", (2, 3), "a"),
        op("load", (4, 5), "a"),
        op("update", (6, 7), "b", prev="a"),
        op("load", (8, 9), "b"),
        op("delete", (10, 11)),
        op("load", (12, 13), None),
        op("update", (14, 15), "c", prev=None),
        op("load", (16, 17), "c"),
    ]
    report = check_history(history)
    assert report.valid, report.summary()
    assert report.keys[0].linearizable is True


def test_overlapping_operations_may_take_effect_in_either_order() -> None:
    save_a = op("save", (0, 10), "a")
    save_b = op("save", (1, 9), "b")
    # reads during the writes see either, or nothing yet; after both, the last one of the order
    history = [save_a, save_b, op("load", (2, 3), "b"), op("load", (4, 5), None)]
    assert not check_history(history).valid  # b was read, then absence: b cannot be undone
    history = [save_a, save_b, op("load", (2, 3), None), op("load", (4, 5), "a")]
    history += [op("load", (11, 12), "a"), op("load", (13, 14), "a")]
    assert check_history(history).valid
    history = [save_a, save_b, op("load", (11, 12), "b")]
    assert check_history(history).valid


def test_a_read_racing_a_delete_may_see_the_value() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("delete", (2, 6)),
        op("load", (3, 4), "a"),  # concurrent with the delete: before it
        op("load", (5, 7), None),
        op("load", (8, 9), None),
    ]
    assert check_history(history).valid


def test_a_key_re_created_after_a_delete_is_not_a_resurrection() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("delete", (2, 3)),
        op("save", (4, 5), "b"),
        op("load", (6, 7), "b"),
    ]
    assert check_history(history).valid


def test_an_indeterminate_write_may_take_effect_late_or_never() -> None:
    late = [
        op("save", (0, 1), "a"),
        op("save", (2, 3), "b", outcome="unknown"),
        op("load", (4, 5), "a"),
        op("load", (6, 7), "b"),  # the timed-out write landed after all
    ]
    assert check_history(late).valid
    never = [
        op("save", (0, 1), "a"),
        op("save", (2, 3), "b", outcome="unknown"),
        op("load", (4, 5), "a"),
        op("delete", (6, 7), outcome="unknown"),
        op("load", (8, 9), "a"),
    ]
    report = check_history(never)
    assert report.valid, report.summary()
    assert report.keys[0].operations == 3  # the write and the delete nobody observed: left out


def test_an_indeterminate_update_is_a_compare_and_set_that_may_have_happened() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("update", (2, 3), "b", prev="a", outcome="unknown"),
        op("update", (4, 5), "c", prev="b"),  # it did happen
        op("load", (6, 7), "c"),
    ]
    assert check_history(history).valid


def test_an_indeterminate_write_seen_only_by_an_indeterminate_update_is_kept() -> None:
    # found by a generated history: leaving out p0's write (no acknowledged op read v0) made
    # p1's compare-and-set impossible and a good history look bad
    history = [
        op("update", (0, 3), "v0", prev=None, outcome="unknown"),
        op("update", (1, 4), "v1", prev="v0", outcome="unknown"),
        op("load", (5, 6), "v1"),
    ]
    report = check_history(history)
    assert report.valid, report.summary()


def test_keys_are_checked_apart() -> None:
    history = [
        op("save", (0, 1), "a", key="x"),
        op("save", (0, 1), "b", key="y"),
        op("load", (2, 3), "a", key="x"),
        op("load", (2, 3), "b", key="y"),
    ]
    report = check_history(history)
    assert report.valid
    assert [r.key for r in report.keys] == ["x", "y"]


def test_initial_values_per_key() -> None:
    history = [op("load", (0, 1), "seed", key="x")]
    assert check_history(history, initial={"x": "seed"}).valid
    assert kinds(history) == ["not-linearizable", "phantom-read"]


# -- bad histories ---------------------------------------------------------------------------------
def test_a_stale_read_is_caught() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("save", (2, 3), "b"),
        op("load", (4, 5), "a"),
    ]
    report = check_history(history)
    assert not report.valid
    assert kinds(history) == ["not-linearizable", "stale-read"]
    stale = next(a for a in report.anomalies if a.kind == "stale-read")
    assert stale.ops == (history[2].id, history[1].id, history[0].id)


def test_a_resurrected_delete_is_caught() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("load", (1.5, 2.5), "a", process="reader"),
        op("delete", (2, 3)),
        op("load", (4, 5), "a", process="reader"),  # the copy came back
    ]
    assert kinds(history) == ["not-linearizable", "resurrected-delete"]
    # an update handed the deleted value is a resurrection too
    history[3] = op("update", (4, 5), "b", prev="a")
    report = check_history(history)
    assert report.resurrected_deletes == 1


def test_two_updates_built_on_the_same_value_lose_one() -> None:
    history = [
        op("save", (0, 1), "n0"),
        op("update", (2, 6), "n1", prev="n0"),
        op("update", (3, 7), "n1'", prev="n0"),
        op("load", (8, 9), "n1'"),
    ]
    report = check_history(history)
    assert report.lost_updates == 1
    assert report.keys[0].linearizable is False


def test_an_update_that_vanishes_is_a_lost_update() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("update", (2, 3), "b", prev="a"),
        op("load", (4, 5), "a"),  # the disk's older copy came back
    ]
    assert kinds(history) == ["lost-update", "not-linearizable"]
    history[2] = op("load", (4, 5), None)  # the key vanished: no delete explains it
    assert kinds(history) == ["lost-update", "not-linearizable"]


def test_an_update_handed_none_while_the_session_exists_is_caught() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("update", (2, 3), "b", prev=None),  # issue 12, 4 and 8: fn(None) rebuilds from nothing
    ]
    assert kinds(history) == ["not-linearizable", "stale-read"]


def test_a_failed_write_must_never_be_seen() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("save", (2, 3), "b", outcome="fail"),
        op("load", (4, 5), "b"),
    ]
    assert kinds(history) == ["not-linearizable", "phantom-read"]


def test_reads_that_disagree_about_the_order_of_concurrent_writes() -> None:
    # No explicit rule applies (both writes overlap); only the search sees it.
    history = [
        op("save", (0, 10), "a"),
        op("save", (0, 10), "b"),
        op("load", (11, 12), "b"),
        op("load", (13, 14), "a"),
    ]
    report = check_history(history)
    assert kinds(history) == ["not-linearizable"]
    assert "could not be" in report.anomalies[0].message


def test_an_indeterminate_write_cannot_land_twice() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("save", (2, 3), "b", outcome="unknown"),
        op("load", (4, 5), "b"),
        op("load", (6, 7), "a"),  # b landed, then a came back: a stale read
    ]
    assert kinds(history) == ["not-linearizable"]


def test_read_staleness_allows_a_bounded_lag_and_no_more() -> None:
    history = [
        op("save", (0, 1), "a"),
        op("save", (2, 3), "b"),
        op("load", (3.5, 4), "a"),  # 0.5 ms after b was acknowledged
    ]
    assert not check_history(history).valid
    assert check_history(history, read_staleness=0.002).valid
    assert not check_history(history, read_staleness=0.0001).valid
    # per load: only this one may lag
    assert check_history(history, read_staleness=lambda o: 0.002 if o is history[2] else 0).valid
    # updates are never relaxed
    history[2] = op("update", (3.5, 4), "c", prev="a")
    assert not check_history(history, read_staleness=0.002).valid


def test_the_search_gives_up_within_its_budget_and_says_so() -> None:
    history = [op("save", (0, 100), f"w{i}") for i in range(12)]
    history += [op("load", (101, 102), "w0"), op("load", (103, 104), "w1")]
    report = check_history(history, max_states=50)
    assert report.keys[0].linearizable is None
    assert not report.valid
    assert "gave up: 1" in report.summary()
    assert check_history(history).keys[0].linearizable is False


def test_duplicate_written_values_are_refused() -> None:
    history = [op("save", (0, 1), "a"), op("save", (2, 3), "a")]
    with pytest.raises(ValueError, match="unique"):
        check_history(history)


# -- the recorder ----------------------------------------------------------------------------------
def test_the_recorder_records_invocations_and_completions_in_order() -> None:
    ticks = itertools.count(1_000)
    events: list[dict[str, Any]] = []
    recorder = HistoryRecorder("p1", sink=events.append, clock=lambda: next(ticks))
    save = recorder.invoke("save", "k", "v1")
    recorder.ok(save)
    load = recorder.invoke("load", "k")
    recorder.ok(load, "v1")
    update = recorder.invoke("update", "k", "v2")
    recorder.unknown(update, TimeoutError("slow"), prev="v1")
    delete = recorder.invoke("delete", "k")
    recorder.fail(delete, "ConflictError")
    recorder.invoke("load", "k")  # the process dies here
    assert [o.outcome for o in recorder.operations] == ["ok", "ok", "unknown", "fail"]
    assert recorder.operations[2].error == "TimeoutError"
    assert recorder.operations[0].invoke_ns == 1_000 and recorder.operations[0].complete_ns == 1_001
    assert [o.error for o in recorder.unfinished()] == ["never completed"]
    with pytest.raises(ValueError, match="already completed"):
        recorder.ok(save)

    rebuilt = operations_from_events(events)
    assert rebuilt[:4] == recorder.operations
    assert rebuilt[4].outcome == "unknown" and rebuilt[4].complete_ns is None
    assert check_history(rebuilt).valid


def test_events_of_several_processes_merge_into_one_history() -> None:
    clock = itertools.count()
    events: list[dict[str, Any]] = []
    one = HistoryRecorder("p1", sink=events.append, clock=lambda: next(clock))
    two = HistoryRecorder("p2", sink=events.append, clock=lambda: next(clock))
    one.ok(one.invoke("save", "k", "a"))
    delete = two.invoke("delete", "k")
    racing = one.invoke("load", "k")
    one.ok(racing, "a")  # concurrent with the delete: fine
    two.ok(delete)
    late = one.invoke("load", "k")
    one.ok(late, "a")  # after the delete returned: resurrected
    history = operations_from_events(events)
    assert [o.process for o in history] == ["p1", "p2", "p1", "p1"]
    assert check_history(history).resurrected_deletes == 1
    with pytest.raises(ValueError, match="without invocation"):
        operations_from_events([events[-1]])


# -- generated histories ---------------------------------------------------------------------------
Step = tuple[str, int]  # (kind, key)

steps = st.lists(
    st.tuples(st.sampled_from(["load", "save", "delete", "update"]), st.integers(0, 2)),
    min_size=1,
    max_size=40,
)


def run_model(
    plan: list[Step], spans: list[tuple[int, int]], outcomes: list[Outcome] | None = None
) -> list[Operation]:
    """Execute ``plan`` on a dict register; op i takes effect at time 10*i inside ``spans[i]``."""
    state: dict[str, Value] = {}
    history = []
    for i, ((kind, key_index), (before, after)) in enumerate(zip(plan, spans, strict=True)):
        key = f"k{key_index}"
        current = state.get(key)
        outcome: Outcome = outcomes[i] if outcomes else "ok"
        value: Value
        prev: Value = None
        if kind == "load":
            value = current
        elif kind == "delete":
            value = None
        else:
            value = f"v{i}"
            prev = current if kind == "update" else None
        if outcome != "fail" and kind != "load":
            state[key] = value
        at = 10 * i
        history.append(
            Operation(
                f"p{i % 3}:{i}",
                f"p{i % 3}",
                kind,  # type: ignore[arg-type]
                key,
                (at - before) * 1000,
                (at + after) * 1000,
                outcome,
                value,
                prev,
            )
        )
    return history


@given(steps)
def test_generated_sequential_histories_pass(plan: list[Step]) -> None:
    report = check_history(run_model(plan, [(1, 1)] * len(plan)))
    assert report.valid, report.summary()


@given(steps.flatmap(lambda p: st.tuples(st.just(p), _spans(len(p)), _outcomes(p))))
def test_generated_concurrent_histories_with_indeterminate_ops_pass(
    drawn: tuple[list[Step], list[tuple[int, int]], list[Outcome]],
) -> None:
    # each op takes effect at its own instant inside an interval that may overlap many others;
    # an "unknown" write took effect, a "fail" did not: a linearizable history by construction
    plan, spans, outcomes = drawn
    history = run_model(plan, spans, outcomes)
    history = [h for h in history if not (h.kind == "load" and h.outcome != "ok")]
    report = check_history(history)
    assert report.valid, report.summary()


def _spans(n: int) -> st.SearchStrategy[list[tuple[int, int]]]:
    span = st.tuples(st.integers(0, 35), st.integers(0, 35))
    return st.lists(span, min_size=n, max_size=n)


def _outcomes(plan: list[Step]) -> st.SearchStrategy[list[Outcome]]:
    def one(kind: str) -> st.SearchStrategy[Outcome]:
        if kind == "load":
            return st.just("ok")
        return st.sampled_from(["ok", "ok", "ok", "unknown", "fail"])

    return st.tuples(*(one(kind) for kind, _ in plan)).map(list)


@given(steps, st.data())
def test_mutated_sequential_histories_are_caught(plan: list[Step], data: st.DataObject) -> None:
    history = run_model(plan, [(1, 1)] * len(plan))
    observers = [i for i, h in enumerate(history) if h.kind in ("load", "update")]
    if not observers:
        plan = [*plan, ("load", plan[0][1])]
        history = run_model(plan, [(1, 1)] * len(plan))
        observers = [len(history) - 1]
    index = data.draw(st.sampled_from(observers))
    target = history[index]
    seen = target.prev if target.kind == "update" else target.value
    written = [h.value for h in history if h.writes and h.value is not None and h.key == target.key]
    candidates = [v for v in [None, "phantom", *written] if v != seen and v != target.value]
    wrong = data.draw(st.sampled_from(candidates))
    if target.kind == "update":
        mutated = Operation(**{**_fields(target), "prev": wrong})
    else:
        mutated = Operation(**{**_fields(target), "value": wrong})
    history[index] = mutated
    report = check_history(history)
    assert not report.valid
    assert report.keys[[r.key for r in report.keys].index(target.key)].linearizable is False


def _fields(operation: Operation) -> dict[str, Any]:
    return {name: getattr(operation, name) for name in Operation.__slots__}


# -- the search against brute force ----------------------------------------------------------
def brute_force(history: list[Operation], staleness_ns: int = 0) -> bool:
    """Linearizable? By trying every subset of the indeterminate operations and every order."""
    acked = [h for h in history if h.outcome == "ok"]
    maybe = [h for h in history if h.outcome == "unknown" and h.kind != "load"]

    def start(h: Operation) -> int:
        return h.invoke_ns - staleness_ns if h.kind == "load" else h.invoke_ns

    def end(h: Operation) -> float:
        return h.complete_ns if h.outcome == "ok" and h.complete_ns is not None else float("inf")

    def place(left: list[Operation], state: Value) -> bool:
        if not left:
            return True
        for h in left:
            if any(end(o) < start(h) for o in left if o is not h):
                continue  # another one must come first
            if h.kind == "load":
                fits, after = h.value == state, state
            elif h.kind == "update":
                fits, after = h.prev == state, h.value
            else:
                fits, after = True, h.value
            if fits and place([o for o in left if o is not h], after):
                return True
        return False

    for size in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, size):
            if place([*acked, *chosen], None):
                return True
    return False


small_histories = st.lists(
    st.tuples(
        st.sampled_from(["load", "save", "delete", "update"]),
        st.integers(0, 20),
        st.integers(0, 12),
        st.sampled_from([None, "w0", "w1", "w2", "w3", "w4"]),
        st.sampled_from([None, "w0", "w1", "w2", "w3"]),
        st.sampled_from(["ok", "ok", "ok", "unknown"]),
    ),
    min_size=1,
    max_size=6,
)


@given(small_histories, st.sampled_from([0, 5]))
def test_the_search_agrees_with_brute_force(
    drawn: list[tuple[str, int, int, Value, Value, str]], staleness: int
) -> None:
    history = []
    for i, (kind, at, length, value, prev, outcome) in enumerate(drawn):
        if kind in ("save", "update"):
            value = f"w{i}"  # unique written values
        if kind == "delete":
            value = None
        if kind == "load":
            outcome = "ok"
        history.append(
            Operation(
                f"p{i}:{i}",
                f"p{i}",
                kind,  # type: ignore[arg-type]
                "k",
                at * 1_000_000,
                (at + length) * 1_000_000,
                outcome,  # type: ignore[arg-type]
                value,
                prev if kind == "update" else None,
            )
        )
    report = check_history(history, read_staleness=staleness / 1000)
    expected = brute_force(history, staleness * 1_000_000)
    assert report.keys[0].linearizable is expected, [h.describe() for h in history]
    if expected:  # and the explicit rules never accuse a linearizable history
        assert report.valid, report.summary()
