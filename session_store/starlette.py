"""Starlette / FastAPI sessions on session-store: a drop-in for Starlette's ``SessionMiddleware``.

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from session_store.starlette import SessionMiddleware

    app = Starlette(middleware=[Middleware(SessionMiddleware, url="redis://127.0.0.1:6379/0")])
    # FastAPI: app.add_middleware(SessionMiddleware, url="redis://127.0.0.1:6379/0")

``request.session`` is a ``dict`` as with Starlette's own middleware, and the keyword arguments
are Starlette's (``session_cookie``, ``max_age``, ``path``, ``same_site``, ``https_only``,
``domain``, ``partitioned``; ``secret_key`` is accepted and unused: the cookie holds only a
random 256-bit id, so there is nothing to sign). The store is an
:class:`~session_store.aio.AsyncSessionStore` given as ``store=``, or opened from ``url=``
(default: the ``SESSION_STORE_URL`` environment variable, else ``memory://``).

``max_age`` is the cookie's lifetime and the server-side TTL; ``max_age=None`` (a browser-session
cookie) keeps the store's own TTL, 24 hours unless the store says otherwise: a session always
expires server-side.

The rules are :mod:`session_store.websession`'s: no fixation, merged per-key writes through
compare-and-set, regenerate on login (:func:`regenerate_session` or
``request.session.regenerate()``), ``request.session.clear()`` on logout deletes server-side,
and sliding expiry with ``touch``. One difference from the sync frameworks: an async app reads
``request.session`` synchronously, so a request that carries a session cookie has its session
read once before the app runs (a request without one costs nothing). A request that does not
look at it writes and touches nothing; one that only reads it writes no payload.
"""

from __future__ import annotations

from typing import Any, Literal

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from session_store.aio.store import AsyncSessionStore
from session_store.websession import (
    Action,
    DictSession,
    acommit,
    aread_session,
    is_session_id,
    store_url,
    web_codec,
)

__all__ = ["DEFAULT_TTL", "SessionMiddleware", "regenerate_session"]

Data = dict[str, Any]

#: Server-side TTL of a session whose cookie has no ``max_age`` (a browser-session cookie).
DEFAULT_TTL = 24 * 3600.0


class SessionMiddleware:
    """Server-side sessions for Starlette and FastAPI (arguments: see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        secret_key: object = None,
        session_cookie: str = "session",
        max_age: int | None = 14 * 24 * 60 * 60,
        path: str = "/",
        same_site: Literal["lax", "strict", "none"] = "lax",
        https_only: bool = False,
        domain: str | None = None,
        partitioned: bool = False,
        *,
        store: AsyncSessionStore[Data] | None = None,
        url: str | None = None,
        sliding: bool = True,
    ) -> None:
        self.app = app
        if store is None:
            store = AsyncSessionStore(store_url(url), dict, codec=web_codec())
        self.store = store
        self.session_cookie = session_cookie
        self.max_age = max_age
        if max_age is None:  # a browser-session cookie: the server still expires the session
            self.ttl: float = store.ttl or DEFAULT_TTL
        elif max_age <= 0:  # Starlette's "expire at once": nothing outlives the response
            self.ttl = 0.001
        else:
            self.ttl = float(max_age)
        self.path = path
        self.sliding = sliding
        flags = "httponly; samesite=" + same_site
        if https_only:
            flags += "; secure"
        if domain is not None:
            flags += f"; domain={domain}"
        if partitioned:
            flags += "; partitioned"
        self.security_flags = flags

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sid = HTTPConnection(scope).cookies.get(self.session_cookie)
        read = await aread_session(self.store, sid) if is_session_id(sid) else None
        session = DictSession(sid, read)
        scope["session"] = session
        sent_cookie = sid is not None

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                current = scope["session"]
                if isinstance(current, DictSession):
                    await self._commit(current, message, sent_cookie)
            await send(message)

        await self.app(scope, receive, send_wrapper)

    async def _commit(self, session: DictSession, message: Message, had_cookie: bool) -> None:
        headers = MutableHeaders(scope=message)
        if session.accessed:
            headers.add_vary_header("Cookie")
        outcome = await acommit(self.store, session, self.ttl, sliding=self.sliding)
        if outcome.action is Action.DELETE:
            if had_cookie:
                headers.append(
                    "Set-Cookie",
                    f"{self.session_cookie}=null; path={self.path}; "
                    f"expires=Thu, 01 Jan 1970 00:00:00 GMT; {self.security_flags}",
                )
            return
        if outcome.sid is None or outcome.action is Action.NOTHING:
            return
        if outcome.action is Action.TOUCH and self.max_age is None:
            return  # a browser-session cookie stays as it is; the server TTL was restarted
        max_age = f"Max-Age={self.max_age}; " if self.max_age is not None else ""
        cookie = f"{self.session_cookie}={outcome.sid}; path={self.path}; "
        headers.append("Set-Cookie", cookie + max_age + self.security_flags)


def regenerate_session(connection: HTTPConnection) -> None:
    """Move the request's session to a new id when the response starts (call it on login)."""
    session = connection.scope.get("session")
    if isinstance(session, DictSession):
        session.regenerate()
