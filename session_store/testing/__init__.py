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

Requires ``pytest`` and ``hypothesis`` (the ``test`` extra).
"""

from session_store.testing.conformance import BackendConformance
from session_store.testing.profiles import register_hypothesis_profiles
from session_store.testing.statemachine import make_state_machine

__all__ = ["BackendConformance", "make_state_machine", "register_hypothesis_profiles"]
