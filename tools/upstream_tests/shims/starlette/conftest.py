"""Fixture adaptation for Starlette's own session middleware tests
(``tests/middleware/test_session.py``): its ``SessionMiddleware`` is session-store's.

The test module does ``from starlette.middleware.sessions import SessionMiddleware`` when it is
imported; this conftest loads first and puts :class:`session_store.starlette.SessionMiddleware`
in that place, so each ``Middleware(SessionMiddleware, secret_key="example", ...)`` builds ours
with Starlette's own arguments. Ours opens its store from the ``SESSION_STORE_URL`` environment
variable, set by ``tools/upstream_tests/run.py``. Their ``tests/conftest.py`` (the
``test_client_factory`` fixture) is used as shipped.
"""

from __future__ import annotations

import sys

import httpx
import starlette.middleware.sessions

from session_store.starlette import SessionMiddleware

# Their ``tests/types.py`` imports ``httpx2`` (httpx's successor name, which starlette's test
# client prefers); the installed test client falls back to ``httpx``, so the same module serves.
sys.modules.setdefault("httpx2", httpx)

starlette.middleware.sessions.SessionMiddleware = SessionMiddleware  # type: ignore[misc]
