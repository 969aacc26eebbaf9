"""Fixture adaptation for Flask's own session tests: every ``Flask`` app the tests build (their
``app`` fixture and the apps some tests make themselves) has session-store's interface.

Their ``tests/conftest.py`` is used as shipped; this autouse fixture sets the class attribute
``Flask.session_interface`` (Flask's default for every app) to a fresh
:class:`session_store.flask.SessionStoreInterface` per test. That interface opens its store from
the ``SESSION_STORE_URL`` environment variable, set by ``tools/upstream_tests/run.py``.
"""

from __future__ import annotations

import _pytest.monkeypatch
import flask
import pytest

from session_store.flask import SessionStoreInterface

# Their ``tests/conftest.py`` (written for pytest 8) reads ``_pytest.monkeypatch.notset``,
# which pytest 9 names ``NOTSET``: the same sentinel under the old name.
if not hasattr(_pytest.monkeypatch, "notset"):
    _pytest.monkeypatch.notset = _pytest.monkeypatch.NOTSET  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _session_store_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flask.Flask, "session_interface", SessionStoreInterface())
