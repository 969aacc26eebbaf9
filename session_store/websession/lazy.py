"""A session that is a real ``dict`` and reads the store only when the app first uses it.

Starlette's ``request.session`` is a plain attribute read in async code, so the middleware
cannot await a store read there. :class:`LazyDictSession` is what the middleware puts in the
scope instead of reading the store before the app runs: nothing is read until the app uses the
session, so a request that never does costs the store nothing (the issue's rule, which the
eager read broke for every request carrying a cookie).

The first use reads the store through a synchronous ``loader``
(:class:`~session_store.websession.blocking.BlockingReads`) and then turns the object into a
plain :class:`~session_store.websession.state.DictSession` (its class is swapped), so every
later operation is ``dict``'s own, at ``dict``'s speed. An app that wants the read without
blocking its event loop awaits :meth:`LazyDictSession.aload` first
(``session_store.starlette.load_session``).

What counts as a first use: Starlette's ``request.session`` (it calls ``mark_accessed``, since
Starlette 0.48), and any ``dict`` method. On an older Starlette, whose ``request.session`` calls
nothing, the middleware hands the app a :class:`LoadingScope`, whose ``scope["session"]`` loads
the session before returning it; so C code that reads a ``dict`` directly (``json.dumps``'s
empty-dict shortcut) never sees an unloaded session through ``request.session``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from session_store.websession.state import DictSession, Read

__all__ = ["LazyDictSession", "LoadingScope"]

Loader = Callable[[str], "Read | None"]
AsyncLoader = Callable[[str], Awaitable["Read | None"]]


class LazyDictSession(DictSession):
    """A :class:`DictSession` not read yet: the first use reads it (see the module docstring).

    Args:
        sid: the id from the request's cookie (already checked with ``is_session_id``).
        loader: reads ``sid`` synchronously; ``None`` if the store does not hold it.
        aloader: the same read, awaited (:meth:`aload`).
    """

    def __init__(self, sid: str, loader: Loader, aloader: AsyncLoader) -> None:
        dict.__init__(self)
        self.sid = sid
        self.stored = None
        self._original = {}
        self.loaded = False
        self.accessed = False
        self.cleared = False
        self.regenerate_requested = False
        self._loader = loader
        self._aloader = aloader

    def load(self) -> None:
        """Read the session now (blocking the calling thread for one store read)."""
        assert self.sid is not None
        self._become(self._loader(self.sid))

    async def aload(self) -> None:
        """Read the session now, awaiting the store (the event loop is not blocked)."""
        assert self.sid is not None
        read = await self._aloader(self.sid)
        if type(self) is LazyDictSession:  # not loaded meanwhile by a synchronous first use
            self._become(read)

    def _become(self, read: Read | None) -> None:
        self.__class__ = DictSession  # type: ignore[assignment]  # from now on a plain dict
        self._adopt(self.sid, read)
        self.accessed = True

    def mark_accessed(self) -> None:
        """Starlette's ``request.session`` calls this: the app is about to use the session."""
        self.load()

    def __repr__(self) -> str:
        return "LazyDictSession(<not loaded>)"


def _loading(name: str) -> Callable[..., Any]:
    """``DictSession``'s method ``name``, preceded by the first read."""
    method = getattr(DictSession, name)

    def first_use(self: LazyDictSession, *args: Any, **kwargs: Any) -> Any:
        self.load()
        return method(self, *args, **kwargs)

    first_use.__name__ = name
    first_use.__doc__ = getattr(method, "__doc__", None)
    return first_use


#: Every way to look at or change a dict from Python (and ``clear`` / ``regenerate``, which
#: need to know what was stored): each reads the session first.
_FIRST_USES = (
    "__contains__",
    "__delitem__",
    "__eq__",
    "__getitem__",
    "__ior__",
    "__iter__",
    "__len__",
    "__ne__",
    "__or__",
    "__reversed__",
    "__ror__",
    "__setitem__",
    "changes",
    "clear",
    "copy",
    "get",
    "items",
    "keys",
    "pop",
    "popitem",
    "regenerate",
    "setdefault",
    "update",
    "values",
)
for _name in _FIRST_USES:
    setattr(LazyDictSession, _name, _loading(_name))


class LoadingScope(dict[str, Any]):
    """An ASGI scope (a copy, as the ASGI spec asks of middleware that changes one) whose
    ``"session"`` is read from the store when the app reads it from the scope: for Starlette
    versions whose ``request.session`` does not call ``mark_accessed``."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) is LazyDictSession:
            value.load()
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = dict.get(self, key, default)
        if type(value) is LazyDictSession:
            value.load()
        return value
