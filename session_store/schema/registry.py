"""Schemas by name: the attrs class, its current version, and its migrations.

Schemas register in the entry-point group ``session_store.schemas`` (the name is the schema
name, the value a :class:`SchemaInfo`), exactly like backends; the built-in ``dataroom`` and
``dict`` schemas register from this package's own ``pyproject.toml``. :func:`register_schema`
adds one at run time (tests, apps that keep a schema next to their code).

A migration turns the ``data`` of version ``n`` into the ``data`` of version ``n + 1``; it gets
the session key too, because a legacy dict has no ``user_id`` of its own. Version 0 is the
legacy shape: a bare JSON object as the first host app's ``json.dumps`` wrote it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from attrs import define, field

from session_store.entrypoints import BrokenPlugin, EntryPointGroup
from session_store.errors import ConfigurationError

__all__ = [
    "SCHEMAS_GROUP",
    "Migration",
    "SchemaInfo",
    "available_schemas",
    "get_schema",
    "register_schema",
    "require_schema",
    "schema_for_class",
]

log = logging.getLogger(__name__)

#: The entry-point group schemas register in.
SCHEMAS_GROUP = "session_store.schemas"

#: ``migration(data, key) -> data`` of the next version.
Migration = Callable[[dict[str, Any], str], dict[str, Any]]


@define(frozen=True)
class SchemaInfo:
    """A named, versioned schema.

    Args:
        name: the name stored in every envelope; never change it once data is written.
        cls: the attrs class, or ``dict`` for schema-less JSON objects.
        version: the current version, written by default.
        migrations: ``{n: fn}`` upgrades version ``n`` data to ``n + 1``, for every ``n`` from
            the oldest readable version up to ``version - 1``.
        downgrades: ``{n: fn}`` turns version ``n`` data into ``n - 1``; needed only to write an
            older version during a rolling deploy (``Codec(write_versions=...)``).
        legacy_keys: what makes a headerless JSON object a legacy (version 0) session of this
            schema when a migration looks for them (``session-store migrate --legacy NAME``):
            holding one of these keys. ``None``: any JSON object is one (the ``dict`` schema).
            Anything else another program stored in the same place is left alone.
    """

    name: str
    cls: type[Any]
    version: int
    migrations: Mapping[int, Migration] = field(factory=dict)
    downgrades: Mapping[int, Migration] = field(factory=dict)
    legacy_keys: frozenset[str] | None = None

    def __attrs_post_init__(self) -> None:
        missing = [n for n in range(self.oldest, self.version) if n not in self.migrations]
        if missing:
            raise ConfigurationError(
                f"schema {self.name!r} v{self.version} lacks migrations from {missing}"
            )

    @property
    def oldest(self) -> int:
        """The oldest version this schema can still read."""
        return min(self.migrations, default=self.version)


_lock = threading.Lock()
_schemas: dict[str, SchemaInfo] = {}
_by_class: dict[type[Any], SchemaInfo] = {}
_plugins = EntryPointGroup(SCHEMAS_GROUP, "schema")
_entry_points_lock = threading.Lock()
# set while this thread loads: a schema module that looks a schema up while it is imported sees
# what is registered so far instead of deadlocking on the lock (or loading again)
_loading = threading.local()
_loaded_entry_points = False


def register_schema(info: SchemaInfo) -> SchemaInfo:
    """Register ``info`` under its name (replacing an earlier registration of the same class)."""
    with _lock:
        existing = _schemas.get(info.name)
        if existing is not None and existing.cls is not info.cls:
            raise ConfigurationError(
                f"schema name {info.name!r} is already taken by {existing.cls.__qualname__}"
            )
        _schemas[info.name] = info
        _by_class[info.cls] = info
    return info


def _load_entry_points() -> None:
    """Register every schema entry point, once; a broken one is logged and skipped.

    The "loaded" flag is set inside the lock, after the loading: a second thread waits for the
    first to finish instead of seeing a half-loaded registry.
    """
    global _loaded_entry_points
    if _loaded_entry_points or getattr(_loading, "active", False):
        return
    with _entry_points_lock:
        if _loaded_entry_points:
            return
        _loading.active = True
        try:
            for name in _plugins.discover():
                info = _plugins.load(name)
                if isinstance(info, BrokenPlugin):
                    continue  # logged by the loader
                if not isinstance(info, SchemaInfo) or info.name != name:
                    log.warning("schema entry point %r does not name a matching SchemaInfo", name)
                    continue
                if info.name not in _schemas:
                    register_schema(info)
        finally:
            _loading.active = False
        _loaded_entry_points = True


def get_schema(name: str) -> SchemaInfo | None:
    """The schema registered as ``name``, or ``None`` (a lookup; see :func:`require_schema`)."""
    if name not in _schemas:
        _load_entry_points()
    return _schemas.get(name)


def require_schema(name: str) -> SchemaInfo:
    """The schema registered as ``name``.

    Raises:
        ConfigurationError: no schema of that name is registered (as :func:`schema_for_class`
            raises for a class; :func:`get_schema` returns ``None`` instead).
    """
    info = get_schema(name)
    if info is None:
        raise ConfigurationError(f"no schema named {name!r} is registered")
    return info


def schema_for_class(cls: type[Any]) -> SchemaInfo:
    """The schema whose class is ``cls``.

    Raises:
        ConfigurationError: ``cls`` is not a registered schema class.
    """
    info = _by_class.get(cls)
    if info is None:
        _load_entry_points()
        info = _by_class.get(cls)
    if info is None:
        raise ConfigurationError(
            f"{cls.__qualname__} is not a registered schema; register it with register_schema()"
        )
    return info


def available_schemas() -> Mapping[str, SchemaInfo]:
    """A read-only view of every registered schema."""
    _load_entry_points()
    return MappingProxyType(dict(_schemas))
