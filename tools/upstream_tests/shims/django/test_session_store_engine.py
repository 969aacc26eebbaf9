"""Django's session tests on ``SESSION_ENGINE = "session_store.django"``.

``SessionTestsMixin`` runs as Django's own suite runs it for each of its engines
(``CacheSessionTests``: ``class ...(SessionTestsMixin, SimpleTestCase): backend = CacheSession``),
sync and async. ``SessionMiddlewareTests`` is Django's class as shipped: its tests drive Django's
``SessionMiddleware``, which opens the configured engine (ours, see ``conftest.py``). Every test
and assertion is Django's own.
"""

from __future__ import annotations

from django.test import SimpleTestCase
from sessions_tests.tests import (  # type: ignore[import-not-found]
    SessionMiddlewareTests,
    SessionTestsMixin,
)

from session_store.django import SessionStore

__all__ = ["SessionMiddlewareTests", "SessionStoreEngineTests"]


class SessionStoreEngineTests(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    backend = SessionStore
