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
and sliding expiry with ``touch``. The session is read when the app first uses
``request.session``, so a request that does not use it neither reads nor writes the store; one
that only reads it writes no payload.

That first read happens inside a synchronous attribute access, so it blocks the event loop for
one store round trip (a store in the process's memory is read inline; any other is read by the
async store on a helper loop, :mod:`session_store.websession.blocking`). To read without
blocking the loop, ``await load_session(request)`` first (as with starsessions), or pass
``autoload=True`` to read, awaited, before the app runs for every request that carries a
session cookie (which gives up the "untouched costs nothing" rule for those requests).
"""

from __future__ import annotations

from functools import partial
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
from session_store.websession.blocking import BlockingReads
from session_store.websession.lazy import LazyDictSession, LoadingScope

__all__ = ["DEFAULT_TTL", "SessionMiddleware", "load_session", "regenerate_session"]

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
        autoload: bool = False,
    ) -> None:
        self.app = app
        opened_from = None
        if store is None:
            opened_from = store_url(url)
            # the cookie's lifetime as the store's TTL: commits then need no frame recording
            # a TTL of their own (session_store.ownttl)
            own = float(max_age) if max_age is not None and max_age > 0 else DEFAULT_TTL
            store = AsyncSessionStore(opened_from, dict, codec=web_codec(), ttl=own)
        self.store = store
        self.autoload = autoload
        self._blocking_reads = BlockingReads(store, opened_from)
        self._aread = partial(aread_session, store)
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
        session: DictSession
        if not is_session_id(sid):
            session = DictSession(None, None)
        elif self.autoload:
            session = DictSession(sid, await self._aread(sid))
        else:  # read on first use (see the module docstring)
            session = LazyDictSession(sid, self._blocking_reads, self._aread)
        scope = LoadingScope(scope) if not _STARLETTE_MARKS_ACCESS else scope
        scope["session"] = session
        sent_cookie = sid is not None

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                current = _unread(scope)  # an unused session stays unread
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


async def load_session(connection: HTTPConnection) -> dict[str, Any]:
    """Read the request's session now, awaiting the store (the event loop is not blocked), and
    return it; a no-op for a session already read or without a cookie. Optional: without it,
    the first use of ``request.session`` reads the session, blocking the loop for that read."""
    session = _unread(connection.scope)
    if isinstance(session, LazyDictSession):
        await session.aload()
    if not isinstance(session, dict):
        raise RuntimeError("session_store.starlette.SessionMiddleware is not installed")
    return session


def _unread(scope: Scope) -> Any:
    """The scope's session as it is (a :class:`LoadingScope` would read it from the store)."""
    return dict.get(scope, "session") if isinstance(scope, dict) else scope.get("session")


def _marks_access() -> bool:
    """Whether this Starlette's ``request.session`` calls the session's ``mark_accessed`` (it
    does since 0.48); if not, the middleware hands the app a
    :class:`~session_store.websession.lazy.LoadingScope` so that reading the session from the
    scope reads it from the store."""

    class Probe(dict[str, Any]):
        called = False

        def mark_accessed(self) -> None:
            Probe.called = True

    HTTPConnection({"type": "http", "session": Probe()}).session  # noqa: B018 - the probe
    return Probe.called


_STARLETTE_MARKS_ACCESS = _marks_access()
