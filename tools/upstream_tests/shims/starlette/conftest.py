"""Fixture adaptation for Starlette's own session middleware tests
(``tests/middleware/test_session.py``): its ``SessionMiddleware`` is session-store's.

The test module does ``from starlette.middleware.sessions import SessionMiddleware`` when it is
imported; this conftest loads first and puts :class:`session_store.starlette.SessionMiddleware`
in that place, so each ``Middleware(SessionMiddleware, secret_key="example", ...)`` builds ours
with Starlette's own arguments. Ours opens its store from the ``SESSION_STORE_URL`` environment
variable, set by ``tools/upstream_tests/run.py``; ``SESSION_STORE_UPSTREAM_SLIDING=0`` builds it
with ``sliding=False`` (the run's variant for the one test about that setting). Their
``tests/conftest.py`` (the ``test_client_factory`` fixture) is used as shipped.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx
import starlette.middleware.sessions

from session_store.starlette import SessionMiddleware

# Their ``tests/types.py`` imports ``httpx2`` (httpx's successor name, which starlette's test
# client prefers); the installed test client falls back to ``httpx``, so the same module serves.
sys.modules.setdefault("httpx2", httpx)


class NotSliding(SessionMiddleware):
    """Ours with ``sliding=False``: a read restarts no TTL and sends no cookie."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, sliding=False, **kwargs)


sliding = os.environ.get("SESSION_STORE_UPSTREAM_SLIDING", "1") != "0"
ours: type[SessionMiddleware] = SessionMiddleware if sliding else NotSliding
starlette.middleware.sessions.SessionMiddleware = ours  # type: ignore[assignment, misc]
