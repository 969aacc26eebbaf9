"""One entry-point loader, shared by the backend registry and the schema registry.

An :class:`EntryPointGroup` discovers its group's entry points once, imports each one at most
once, and is safe to call from many threads (discovery and each import run under one lock, and
the "discovered" state is set inside it). A plugin that fails to import is logged and returned
as a :class:`BrokenPlugin`, never breaking the host: the caller decides whether that is an
error (a backend the user asked for by URL) or a skip (a schema found while listing them all).

Missing names, everywhere in session-store: ``get_*`` lookups return ``None`` for a name nobody
registered; ``load_*``/``require_*``/``*_for_*`` functions raise :class:`ConfigurationError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = ["BrokenPlugin", "EntryPointGroup"]

log = logging.getLogger(__name__)


class BrokenPlugin:
    """What a plugin that failed to import left: its entry point value and the exception."""

    def __init__(self, value: str, error: Exception) -> None:
        self.value = value
        self.error = error

    def __repr__(self) -> str:
        return f"BrokenPlugin({self.value!r}, {type(self.error).__name__})"


class EntryPointGroup:
    """The entry points of one group, discovered once, each imported at most once.

    Args:
        group: the entry-point group name.
        kind: what a plugin of this group is, for log messages ("backend", "schema").
        fold_case: whether names are case-insensitive (URL schemes are; schema names are not).
    """

    def __init__(self, group: str, kind: str, *, fold_case: bool = False) -> None:
        self.group = group
        self.kind = kind
        self.fold_case = fold_case
        self._lock = threading.RLock()
        self._found: dict[str, EntryPoint] | None = None
        self._loaded: dict[str, Any] = {}

    def _key(self, name: str) -> str:
        return name.lower() if self.fold_case else name

    def discover(self) -> Mapping[str, EntryPoint]:
        """``{name: entry point}`` of the group (nothing imported); the first of a clash wins."""
        with self._lock:
            if self._found is None:
                from importlib.metadata import entry_points  # on first use: reads site-packages

                found: dict[str, EntryPoint] = {}
                for ep in sorted(entry_points(group=self.group), key=lambda e: (e.name, e.value)):
                    name = self._key(ep.name)
                    if name in found and found[name].value != ep.value:
                        log.warning(
                            "%s %r is registered twice (%s and %s); using the first",
                            self.kind,
                            name,
                            found[name].value,
                            ep.value,
                        )
                        continue
                    found[name] = ep
                self._found = found
            return MappingProxyType(self._found)

    def load(self, name: str) -> Any:
        """The object ``name`` names, imported once.

        Returns:
            the object; ``None`` if no entry point has that name; a :class:`BrokenPlugin` if
            importing it failed (logged as a warning each time it is asked for).
        """
        name = self._key(name)
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            ep = self.discover().get(name)
            if ep is None:
                return None
            try:
                loaded: Any = ep.load()
            except Exception as exc:  # a broken plugin must not break the host
                log.warning(
                    "%s plugin %r (%s) failed to import: %r", self.kind, name, ep.value, exc
                )
                return BrokenPlugin(ep.value, exc)  # not cached: each request logs it again
            self._loaded[name] = loaded
            return loaded
