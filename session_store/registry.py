"""Find backends through entry points and build them from URLs and chain strings.

Backends register in the entry-point group ``session_store.backends``: the name is the URL
scheme, the value a callable ``factory(url: BackendURL, **overrides) -> SessionBackend`` (usually
a backend class's ``from_url``). The built-in ``memory`` backend registers there from this
package's own ``pyproject.toml``, exactly as a third-party plugin does. Plugins are imported on
first use through :mod:`session_store.entrypoints` (the loader schemas share); one that fails to
import is logged and reported as not usable, never breaking the host. An unknown scheme raises
:class:`ConfigurationError` (``load_backend_factory`` promises a factory, never ``None``).

A chain string joins URLs with ``|`` and builds a :class:`~session_store.tiered.TieredBackend`,
fastest tier first::

    open_backend("memory://?max_entries=1000 | diskcache:///var/lib/app/sessions")

A ``|`` inside a tier's URL (in a password, say) must be percent-encoded as ``%7C``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from session_store.backend import Scope, SessionBackend
from session_store.entrypoints import BrokenPlugin, EntryPointGroup
from session_store.errors import ConfigurationError, NotWritableError
from session_store.urls import BackendURL, Params, parse_url, redact_url

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "BACKENDS_GROUP",
    "KNOWN_PLUGINS",
    "BackendFactory",
    "available_backends",
    "load_backend_factory",
    "open_backend",
    "open_url",
    "split_chain",
]

log = logging.getLogger(__name__)

#: The entry-point group backends register in.
BACKENDS_GROUP = "session_store.backends"

B = TypeVar("B")
#: What a URL opens: the class a factory must return, its entry-point group, and how an error
#: names the factory and the class.
_Kind = tuple[type[B], str, str, str]
_SYNC: _Kind[SessionBackend] = (SessionBackend, BACKENDS_GROUP, "factory", "a SessionBackend")

#: Schemes with a known distribution, named in the error when the plugin is not installed.
KNOWN_PLUGINS: Mapping[str, str] = MappingProxyType(
    {
        "diskcache": "session-store-diskcache",
        "redis": "session-store-redis",
        "rediss": "session-store-redis",
        "redis+cluster": "session-store-redis",
        "redis+sentinel": "session-store-redis",
    }
)

BackendFactory = Callable[..., SessionBackend]

# A "|" separates tiers only where a URL (scheme://) follows, so that a "|" inside a password
# does not cut a URL in two.
_TIER_SEPARATOR = re.compile(r"\|(?=\s*[A-Za-z][A-Za-z0-9+.\-]*://)|\|(?=\s*(?:\||$))|^\s*\|")

# one loader per entry-point group (the async backends have one of their own)
_groups: dict[str, EntryPointGroup] = {}
_groups_lock = threading.Lock()


def _group(group: str) -> EntryPointGroup:
    with _groups_lock:
        if group not in _groups:
            _groups[group] = EntryPointGroup(group, "backend", fold_case=True)
        return _groups[group]


def _discover(group: str = BACKENDS_GROUP) -> Mapping[str, EntryPoint]:
    return _group(group).discover()


def available_backends() -> Mapping[str, str]:
    """A read-only view of the installed schemes and the object each one names (not imported)."""
    return MappingProxyType({name: ep.value for name, ep in sorted(_discover().items())})


def _unknown_scheme(scheme: str, group: str = BACKENDS_GROUP) -> ConfigurationError:
    if group != BACKENDS_GROUP and scheme in _discover(BACKENDS_GROUP):  # installed, sync only
        return ConfigurationError(
            f"the plugin for scheme {scheme!r} has a sync backend only (no {group!r} entry "
            "point): wrap it, ThreadedBackend(open_backend(url)) from session_store.aio, "
            "or give the plugin an async twin"
        )
    installed = ", ".join(sorted(_discover(group))) or "none"
    package = KNOWN_PLUGINS.get(scheme)
    hint = ""
    if package:
        from session_store.pluginhint import plugin_install_hint  # only for this error (tomllib)

        hint = f"; install the {package!r} distribution to use it: {plugin_install_hint(package)}"
    if not package:
        import difflib  # only to suggest a scheme in this error

        close = difflib.get_close_matches(scheme, [*_discover(group), *KNOWN_PLUGINS], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigurationError(
        f"no backend is installed for scheme {scheme!r}{hint} (installed: {installed})"
    )


def load_backend_factory(scheme: str, group: str = BACKENDS_GROUP) -> BackendFactory:
    """Import (once) and return the factory registered for ``scheme`` in ``group``.

    Raises:
        ConfigurationError: no plugin provides the scheme, or the plugin failed to import.
    """
    scheme = scheme.lower()
    loaded = _group(group).load(scheme)
    if loaded is None:
        raise _unknown_scheme(scheme, group)
    if isinstance(loaded, BrokenPlugin):  # already logged by the loader
        raise ConfigurationError(
            f"the plugin for scheme {scheme!r} ({loaded.value}) failed to import: "
            f"{type(loaded.error).__name__}"
        ) from loaded.error
    if not callable(loaded):
        value = _discover(group)[scheme].value
        raise ConfigurationError(f"the plugin for scheme {scheme!r} ({value}) is not callable")
    return loaded  # type: ignore[no-any-return]


def split_chain(text: str) -> list[str]:
    """The tier URLs of a chain string (a single URL gives a list of one).

    Raises:
        ConfigurationError: a tier is empty (``"memory:// | | diskcache://..."``).
    """
    if not isinstance(text, str):
        raise ConfigurationError(f"a backend URL must be str, got {type(text).__name__}")
    if not text.strip():
        raise ConfigurationError("empty backend URL: give scheme://... or a chain a | b")
    parts = [part.strip() for part in _TIER_SEPARATOR.split(text)]
    if any(not part for part in parts):
        raise ConfigurationError(f"empty tier in chain string {redact_url(text)!r}")
    return parts


def _open_one(
    url: BackendURL,
    overrides: Mapping[str, Any],
    kind: _Kind[B],
) -> B:
    cls, group, factory_name, expected = kind
    backend = load_backend_factory(url.scheme, group)(url, **overrides)
    if not isinstance(backend, cls):
        raise ConfigurationError(
            f"the {factory_name} for scheme {url.scheme!r} returned {type(backend).__name__}, "
            f"not {expected}"
        )
    return backend


#: A chain string may start with ``tiered://?option=value&...``: options of the chain itself.
CHAIN_OPTIONS_SCHEME = "tiered"


def _chain_options(url: BackendURL) -> dict[str, Any]:
    """The :class:`TieredBackend` options a leading ``tiered://?...`` pseudo-tier sets."""
    if url.netloc or url.path not in ("", "/"):
        raise ConfigurationError(
            "tiered:// takes no host or path, only options", backend=url.redacted()
        )
    params = Params(url, {})
    options: dict[str, Any] = {
        "stamps": params.take_bool("stamps", True),  # accepted, ignored: every chain versions
        "max_staleness": params.take_float("max_staleness", 1.0),
        "retry_after": params.take_float("retry_after", 1.0),
        "max_missed": params.take_int("max_missed", 100_000),
        "tombstone_ttl": params.take_float("tombstone_ttl", 7 * 86_400.0),
        "invalidation": params.take_bool("invalidation", True),
    }
    params.finish()
    return options


def open_backend(url: str, **overrides: Any) -> SessionBackend:
    """Build a backend from a URL, or a tiered backend from a chain string.

    Args:
        url: ``scheme://...`` or ``url | url | ...`` (fastest tier first). A chain may start
            with ``tiered://?max_staleness=1&retry_after=1&tombstone_ttl=604800&invalidation=true``,
            which sets the options of the chain itself (every chain is coherent without them).
        **overrides: for one URL, parameters that override the URL's query parameters; for a
            chain, keyword arguments of :class:`~session_store.tiered.TieredBackend`.

    Raises:
        ConfigurationError: a malformed URL, an unknown scheme, a bad or unknown parameter.
    """
    return open_url(url, overrides, _SYNC, _tiered, SessionBackend.close)


def _tiered() -> Callable[..., SessionBackend]:
    from session_store.tiered import TieredBackend  # only a chain needs it

    return TieredBackend


def open_url(
    url: str,
    overrides: Mapping[str, Any],
    kind: _Kind[B],
    chain: Callable[[], Callable[..., B]],
    discard: Callable[[B], None],
) -> B:
    """:func:`open_backend` and :func:`~session_store.aio.open_async_backend`, written once:
    one URL opens one backend of ``kind`` (``overrides``: its parameters); a chain string opens
    every tier (all checked before any is opened) and builds a chain of them (``chain()``: its
    class, imported only then) with the chain
    options and ``overrides``; tiers opened before a failure are ``discard``-ed."""
    parsed = [parse_url(tier) for tier in split_chain(url)]  # all checked before any is opened
    options: dict[str, Any] = {}
    if parsed[0].scheme == CHAIN_OPTIONS_SCHEME:
        options = _chain_options(parsed.pop(0))
        if not parsed:
            raise ConfigurationError("a chain's options need at least one tier after them")
    elif len(parsed) == 1:
        return _open_one(parsed[0], overrides, kind)
    if any(tier.scheme == CHAIN_OPTIONS_SCHEME for tier in parsed):  # not "plugin missing"
        raise ConfigurationError(
            "tiered://?... sets the chain's options and must come first: "
            "'tiered://?max_staleness=1 | memory:// | ...'",
            backend=redact_url(url),
        )
    opened: list[B] = []
    down: dict[int, NotWritableError] = {}
    try:
        for tier in parsed:
            try:
                opened.append(_open_one(tier, {}, kind))
            except NotWritableError as exc:  # it may start down: see _start_down
                if not isinstance(exc.down_tier, kind[0]):
                    raise
                down[len(opened)] = exc
                opened.append(exc.down_tier)
        _start_down(opened, down)
        return chain()(opened, **{**options, **overrides})
    except BaseException:
        for backend in opened:
            discard(backend)
        raise


def _start_down(tiers: Sequence[Any], down: Mapping[int, NotWritableError]) -> None:
    """Whether a chain may start with the tiers ``down`` (by index) down: those whose storage
    could not be written at open (a read-only disk tier), each placed as its error's
    ``down_tier``, which opens once it can. Only if the chain's arbiter (its first shared tier,
    as :func:`session_store.tiered.policy.layout` picks it) is another tier: it takes every
    write, so what a chain acknowledges is still held by a durable tier. Else the arbiter's
    error is raised. Each tier started down is logged as a warning."""
    if not down:
        return
    shared = [index for index, tier in enumerate(tiers) if tier.scope is not Scope.PROCESS]
    arbiter = shared[0] if shared else len(tiers) - 1
    if arbiter in down:
        raise down[arbiter]
    for index, exc in down.items():
        log.warning("the chain starts with tier %d down (%s): %s", index, exc.backend, exc.message)
