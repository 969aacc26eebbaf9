"""The conformance kit: the tests every :class:`~session_store.backend.SessionBackend` must pass.

Shipped inside the package so that a third-party backend's test file is a dozen lines::

    import pytest
    from session_store.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest.fixture
        def backend_factory(self, tmp_path):
            # a fresh store per test; each call opens another view of the SAME storage
            return lambda prefix="t:": MyBackend(tmp_path, prefix=prefix)

and, for random operation sequences checked against a ``dict`` model::

    from session_store.testing import make_state_machine
    TestMyBackendModel = make_state_machine(lambda: MyBackend(...)).TestCase

and, to check what concurrent clients saw (Jepsen style; see docs/testing-consistency.md)::

    from session_store.testing import HistoryRecorder, check_history

    report = check_history(recorder.operations)   # merged from every client
    assert report.valid, report.summary()

and, for an async backend, that a cancelled ``update`` is applied whole or not at all::

    from session_store.testing import cancelled_updates

    assert await cancelled_updates(AsyncSessionStore(MyAsyncBackend(...), dict))

and, for a backend shared by processes, that racing ``update`` calls lose nothing::

    from session_store.testing import update_race

    update_race("mybackend://...", processes=4, rounds=50)  # then load "counter": {"n": 200}

Requires ``pytest`` and ``hypothesis`` (the ``test`` extra); the history recorder and checker
need neither.
"""

from session_store.testing import rewriting  # noqa: F401  (first: before the kit loads)
from session_store.testing.cancellation import cancelled_updates
from session_store.testing.conformance import BackendConformance
from session_store.testing.history import HistoryRecorder, Operation, operations_from_events
from session_store.testing.linearizability import Anomaly, CheckReport, KeyReport, check_history
from session_store.testing.processes import race, update_race
from session_store.testing.profiles import register_hypothesis_profiles
from session_store.testing.statemachine import make_state_machine

__all__ = [
    "Anomaly",
    "BackendConformance",
    "CheckReport",
    "HistoryRecorder",
    "KeyReport",
    "Operation",
    "cancelled_updates",
    "check_history",
    "make_state_machine",
    "operations_from_events",
    "race",
    "register_hypothesis_profiles",
    "update_race",
]
