"""Django's ``SessionTestsMixin`` run on ``session_store.django.SessionStore``.

This is how Django's own suite runs the mixin for each of its engines (``CacheSessionTests``:
``class ...(SessionTestsMixin, SimpleTestCase): backend = CacheSession``); every test and
assertion is the mixin's own, sync and async.
"""

from __future__ import annotations

from django.test import SimpleTestCase
from sessions_tests.tests import SessionTestsMixin  # type: ignore[import-not-found]

from session_store.django import SessionStore


class SessionStoreEngineTests(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]
    backend = SessionStore
