"""Defaults and argument checks for the diskcache backend, all done before any I/O.

Every check raises :class:`~session_store.errors.ConfigurationError` naming the argument, so a
bad URL parameter or keyword fails before a directory is created or a database is opened.
"""

from __future__ import annotations

import math
import os

from session_store.errors import ConfigurationError

__all__ = [
    "DEFAULT_EVICTION_POLICY",
    "DEFAULT_PREFIX",
    "DEFAULT_SIZE_LIMIT",
    "DEFAULT_TIMEOUT",
    "EVICTION_POLICIES",
    "TILDE_HINT",
    "check_directory",
    "check_eviction_policy",
    "check_size_limit",
    "check_timeout",
]

#: Namespace prefix of a store opened without one.
DEFAULT_PREFIX = "session:"

#: Bytes on disk (the SQLite file plus value files) before entries are evicted: 4 GiB.
#: diskcache's own default is 1 GiB, which a busy session store can reach and then silently drop
#: sessions; ours is larger and explicit, and every eviction is counted.
DEFAULT_SIZE_LIMIT = 4 * 1024**3

#: diskcache's default: evict the entries stored longest ago. It needs no write on reads, so
#: ``get`` stays a plain SELECT; ``least-recently-used`` turns every read into a write.
DEFAULT_EVICTION_POLICY = "least-recently-stored"

#: The policies diskcache knows; ``none`` never evicts (``size_limit`` is then not enforced).
EVICTION_POLICIES = (
    "least-recently-stored",
    "least-recently-used",
    "least-frequently-used",
    "none",
)

#: Seconds a call waits for another writer's lock before ``BackendUnavailableError``.
#: diskcache's default is 60 s, far too long to hold a web request.
DEFAULT_TIMEOUT = 5.0


#: What an error about a ``~`` in the directory adds: no URL or path here expands it.
TILDE_HINT = (
    "; a URL does not expand ~ (it would be a host, or a directory named ~): write the "
    "absolute path, diskcache:///home/you/sessions, or let the shell expand "
    "diskcache://$HOME/sessions"
)


def check_directory(directory: object) -> str:
    """The cache directory as an absolute path.

    A ``$`` is refused because diskcache expands environment variables in the path
    (``os.path.expandvars``): ``/srv/$x`` would silently become another directory.

    Raises:
        ConfigurationError: not a ``str`` or ``os.PathLike[str]``, empty, holding NUL or ``$``,
            or starting with a ``~`` no one expanded.
    """
    if not isinstance(directory, str | os.PathLike):
        raise ConfigurationError(f"directory must be a str or path, got {type(directory).__name__}")
    path = os.fspath(directory)
    if not isinstance(path, str):
        raise ConfigurationError("directory must be a text path, not bytes")
    if not path:
        raise ConfigurationError("directory must not be empty")
    if "\x00" in path:
        raise ConfigurationError("directory must not contain NUL")
    if path.split(os.sep)[:2] in (["~"], ["", "~"]) or path.startswith(("~/", "/~/")):
        raise ConfigurationError(f"directory {path!r} starts with a literal '~'{TILDE_HINT}")
    if "$" in path:
        raise ConfigurationError(
            f"directory {path!r} contains '$', which diskcache would expand as an environment "
            "variable; rename the directory"
        )
    return os.path.abspath(path)


def check_size_limit(size_limit: object) -> int:
    """``size_limit`` as a positive integer number of bytes.

    Raises:
        ConfigurationError: not an integer >= 1.
    """
    if isinstance(size_limit, bool) or not isinstance(size_limit, int) or size_limit < 1:
        raise ConfigurationError(f"size_limit must be an integer >= 1 (bytes), got {size_limit!r}")
    return size_limit


def check_eviction_policy(policy: object) -> str:
    """``eviction_policy`` if diskcache knows it.

    Raises:
        ConfigurationError: any other value.
    """
    if policy not in EVICTION_POLICIES:
        raise ConfigurationError(
            f"eviction_policy must be one of {', '.join(EVICTION_POLICIES)}, got {policy!r}"
        )
    return str(policy)


def check_timeout(timeout: object) -> float:
    """``timeout`` as finite seconds >= 0 (0: fail at once when another writer holds the lock).

    Raises:
        ConfigurationError: not a finite number >= 0.
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout < 0
    ):
        raise ConfigurationError(
            f"timeout must be a finite number of seconds >= 0, got {timeout!r}"
        )
    return float(timeout)
