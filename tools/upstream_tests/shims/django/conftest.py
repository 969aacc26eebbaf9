"""Fixture adaptation for Django's own session tests: the settings Django's test runner would
give them (``tests/test_sqlite.py``), with ``SESSION_ENGINE`` pointed at session-store.

Nothing of Django's tests is edited: ``sessions_tests`` is their package as shipped in Django's
sdist (``tests/sessions_tests``), imported as an installed app because its ``models.py`` (a
custom database session, which the mixin does not use) must load. The store is the one in the
``SESSION_STORE_URL`` environment variable, set by ``tools/upstream_tests/run.py``
(``memory://``, then a real redis-server of its own).
"""

from __future__ import annotations

import os

import django
from django.conf import settings

settings.configure(
    SECRET_KEY="upstream-session-tests",  # noqa: S106 - a test run's, signs nothing kept
    INSTALLED_APPS=["django.contrib.sessions", "sessions_tests"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    SESSION_ENGINE="session_store.django",
    SESSION_STORE_URL=os.environ["SESSION_STORE_URL"],
    USE_TZ=True,
)
django.setup()
