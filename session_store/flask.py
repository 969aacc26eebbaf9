"""Flask sessions on session-store: ``flask.session`` unchanged, the data server-side.

    from flask import Flask, session
    from session_store.flask import SessionStoreInterface

    app = Flask(__name__)
    app.config["SESSION_STORE_URL"] = "redis://127.0.0.1:6379/0?prefix=myapp:"
    SessionStoreInterface.init_app(app)      # or: app.session_interface = SessionStoreInterface()

Configuration comes from the app: ``SESSION_STORE_URL`` (default: the ``SESSION_STORE_URL``
environment variable, else ``memory://``, which is one process only), and Flask's own
``SESSION_COOKIE_NAME``, ``_DOMAIN``, ``_PATH``, ``_HTTPONLY``, ``_SECURE``, ``_SAMESITE`` (Flask's
default ``None`` becomes ``Lax`` here: set ``"None"`` explicitly to send cookies cross-site),
``PERMANENT_SESSION_LIFETIME`` (the server-side TTL of every session, and the cookie's lifetime
for a permanent one) and ``SESSION_REFRESH_EACH_REQUEST`` (sliding expiry through ``touch``).
The cookie holds only a random 256-bit id; no ``secret_key`` is needed to protect the data.

On login call :func:`regenerate` (or ``session.regenerate()``) so the session moves to a new id;
on logout ``session.clear()`` deletes it server-side. The rules (lazy loading, merged writes,
no fixation) are :mod:`session_store.websession`'s. Values must be JSON-compatible (no pickle).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from flask import Flask, Request, Response
from flask import session as current_session
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin

from session_store.store import SessionStore
from session_store.websession import (
    Action,
    ServerSession,
    commit,
    is_session_id,
    read_session,
    store_url,
    web_codec,
)

__all__ = ["FlaskSession", "SessionStoreInterface", "regenerate"]

Data = dict[str, Any]


_TAGS = TaggedJSONSerializer()


#: JSON's scalars are their own tag (asked of the serializer, each costs a walk of its eight
#: tag checks); anything else is tagged as Flask's own sessions do (tuples, bytes, Markup,
#: UUID, datetime survive), no pickle.
_UNTAGGED = frozenset({str, int, float, bool, type(None)})


def _untag(value: Any) -> Any:
    """The inverse of :func:`_tag`, bottom-up as Flask's ``object_hook`` runs."""
    if isinstance(value, dict):
        return _TAGS.untag({k: _untag(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


class FlaskSession(ServerSession, SessionMixin):
    """``flask.session``: a :class:`~session_store.websession.ServerSession` with Flask's
    ``permanent`` flag (the ``_permanent`` key) and Flask's value types (tagged JSON, as in
    Flask's own sessions: tuples, bytes, ``Markup``, UUIDs and datetimes come back as such)."""

    def __init__(self, sid: str | None, store: SessionStore[Data] | None = None) -> None:
        self._force_modified = False
        self.cookie_sid = sid  # the id the request's cookie carried
        super().__init__(sid, None if store is None else partial(read_session, store))

    def _view(self, stored: Data) -> Data:
        view = dict(stored)
        for key, value in view.items():  # only containers can hold a tag (no call per value)
            if type(value) is dict or type(value) is list:
                view[key] = _untag(value)  # same key: the dict does not change size
        return view

    @property
    def modified(self) -> bool:
        """Whether the request changed the session (detected by comparison with what was
        loaded; setting it ``True`` is accepted, as Flask's API allows, and changes nothing)."""
        if self._force_modified or self.cleared or self.regenerate_requested:
            return True
        changed, removed = ServerSession.changes(self)
        return bool(changed or removed)

    @modified.setter
    def modified(self, value: bool) -> None:
        self._force_modified = value

    @property
    def was_temporary(self) -> bool:
        """Whether the session was not permanent when loaded (so its cookie has no expiry)."""
        return not self._original.get("_permanent", False)

    def changes(self) -> tuple[Data, frozenset[str]]:
        changed, removed = ServerSession.changes(self)
        for key, value in changed.items():
            if type(value) not in _UNTAGGED:
                changed[key] = _TAGS.tag(value)  # ``changed`` is a new dict of our own
        return changed, removed


class SessionStoreInterface(SessionInterface):
    """A Flask session interface over a :class:`SessionStore` of ``dict`` sessions.

    Args:
        store: the store (``SessionStore(url_or_backend, dict)``); ``None``: opened from the
            app's ``SESSION_STORE_URL`` on the first request.
    """

    pickle_based = False

    def __init__(self, store: SessionStore[Data] | None = None) -> None:
        self.store = store

    @classmethod
    def init_app(cls, app: Flask, store: SessionStore[Data] | None = None) -> SessionStoreInterface:
        """Install a new interface on ``app`` (the store opened now from the app's config)."""
        interface = cls(store or _open_store(app))
        app.session_interface = interface
        app.extensions["session_store"] = interface
        return interface

    def _store(self, app: Flask) -> SessionStore[Data]:
        store = self.store
        if store is None:
            store = self.store = _open_store(app)
        return store

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        sid = request.cookies.get(self.get_cookie_name(app))
        if not is_session_id(sid):
            return FlaskSession(None)
        return FlaskSession(sid, self.store if self.store is not None else self._store(app))

    def get_cookie_samesite(self, app: Flask) -> str | None:
        value = super().get_cookie_samesite(app)
        return "Lax" if value is None else value

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):  # a null session: nothing to save
            return
        if session.accessed:
            response.vary.add("Cookie")
        if not session.loaded:
            return
        refresh = bool(app.config.get("SESSION_REFRESH_EACH_REQUEST", True))
        store = self.store if self.store is not None else self._store(app)
        outcome = commit(store, session, _lifetime(app), sliding=refresh)
        if outcome.action is Action.DELETE:
            response.delete_cookie(self.get_cookie_name(app), **self._cookie_flags(app))
            return
        if outcome.action is Action.NOTHING or outcome.sid is None:
            return
        if outcome.sid == session.cookie_sid and not session.permanent and session.was_temporary:
            return  # the browser already holds this very cookie (no expiry to refresh)
        expires = self.get_expiration_time(app, session)
        response.set_cookie(
            self.get_cookie_name(app), outcome.sid, expires=expires, **self._cookie_flags(app)
        )

    def _cookie_flags(self, app: Flask) -> dict[str, Any]:
        """The cookie's attributes from the app's config (read only when a cookie is sent)."""
        return {
            "domain": self.get_cookie_domain(app),
            "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app),
            "samesite": self.get_cookie_samesite(app),
            "httponly": self.get_cookie_httponly(app),
            "partitioned": self.get_cookie_partitioned(app),
        }

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        if session.permanent:
            return datetime.now(UTC) + app.permanent_session_lifetime
        return None


def _lifetime(app: Flask) -> float:
    """The server-side TTL of the app's sessions: ``PERMANENT_SESSION_LIFETIME``."""
    return max(1.0, app.permanent_session_lifetime.total_seconds())


def _open_store(app: Flask) -> SessionStore[Data]:
    """The store opened from ``SESSION_STORE_URL``, with the session lifetime as its TTL: every
    commit writes with that TTL, so none needs the frame that records a TTL of its own
    (:mod:`session_store.ownttl`)."""
    url = store_url(app.config.get("SESSION_STORE_URL"))
    return SessionStore(url, dict, codec=web_codec(), ttl=_lifetime(app))


def regenerate() -> None:
    """Move the current request's session to a new id at the end of the request (on login)."""
    session = cast("Any", current_session)._get_current_object()
    if isinstance(session, FlaskSession):
        session.regenerate()
