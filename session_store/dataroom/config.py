"""Configuration of the data-room store from the environment.

``SESSION_STORE_URL``
    A backend URL or chain string; when set (non-empty), it is used as is.
``MAX_MEMORY_SESSIONS`` (default 1000), ``REDIS_URL`` (optional)
    Otherwise the chain is ``memory://?max_entries=MAX_MEMORY_SESSIONS``, then ``REDIS_URL`` if
    set, then ``diskcache://<cache dir>/session-store/sessions`` where the cache directory is
    ``$XDG_CACHE_HOME`` (when absolute, as the XDG spec asks) or ``~/.cache``: memory first,
    nothing lost on eviction, no server needed.
    A ``redis://`` / ``rediss://`` ``REDIS_URL`` without a ``prefix`` or ``separator``
    parameter gets ``prefix=session&separator=:``: keys are ``session:{user_id}``, the plan's
    layout, so the sessions the plan's code wrote are found.
``SESSION_TTL_HOURS`` (default 24)
    How long a stored session lives, in hours (a positive number; fractions allowed).
``SESSION_STORE_WRITE_FORMAT`` (default ``envelope``)
    ``plan-json`` during a rolling deploy from the plan's code: sessions are written as the
    plan's JSON, which its processes read (see :mod:`session_store.codec.legacy`). The store is
    then the Redis of ``REDIS_URL`` (or a single Redis ``SESSION_STORE_URL``) alone, without
    the memory and disk tiers: a chain stamps the values it stores, which the plan's
    ``json.loads`` cannot read. Without a Redis URL it is a ``ConfigurationError``.

An empty variable counts as unset. A bad value is a :class:`ConfigurationError` naming the
variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import attrs

from session_store.errors import ConfigurationError
from session_store.registry import split_chain
from session_store.urls import parse_url, redact_url

__all__ = [
    "DEFAULT_MAX_MEMORY_SESSIONS",
    "DEFAULT_TTL_HOURS",
    "ENV_MAX_MEMORY_SESSIONS",
    "ENV_REDIS_URL",
    "ENV_SESSION_STORE_URL",
    "ENV_SESSION_TTL_HOURS",
    "ENV_WRITE_FORMAT",
    "PLAN_REDIS_PARAMS",
    "WRITE_FORMATS",
    "EnvConfig",
    "config_from_env",
]

ENV_SESSION_STORE_URL: Final = "SESSION_STORE_URL"
ENV_REDIS_URL: Final = "REDIS_URL"
ENV_SESSION_TTL_HOURS: Final = "SESSION_TTL_HOURS"
ENV_MAX_MEMORY_SESSIONS: Final = "MAX_MEMORY_SESSIONS"
DEFAULT_TTL_HOURS: Final = 24.0
DEFAULT_MAX_MEMORY_SESSIONS: Final = 1000
ENV_WRITE_FORMAT: Final = "SESSION_STORE_WRITE_FORMAT"
#: ``envelope``: the versioned byte format; ``plan-json``: the plan's JSON (rolling deploy).
WRITE_FORMATS: Final = ("envelope", "plan-json")
#: What a REDIS_URL without its own key layout gets: the plan's ``session:{user_id}`` keys.
PLAN_REDIS_PARAMS: Final = {"prefix": "session", "separator": ":"}


@attrs.frozen
class EnvConfig:
    """What the environment asks for: a backend URL or chain string, a TTL in seconds, and
    the plan's settings as it read them.

    The ``repr`` masks passwords in the URL.
    """

    url: str = attrs.field(repr=redact_url)
    ttl: float
    ttl_hours: float = DEFAULT_TTL_HOURS
    max_memory_sessions: int = DEFAULT_MAX_MEMORY_SESSIONS
    redis_enabled: bool = False
    write_format: str = "envelope"


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value.strip() if value and value.strip() else None


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = _env(environ, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {text!r}")
    return value


def _positive_hours(environ: Mapping[str, str], name: str, default: float) -> float:
    text = _env(environ, name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0 and math.isfinite(value * 3600)):
        raise ConfigurationError(f"{name} must be a positive number of hours, got {text!r}")
    return value


def _checked_chain(url: str, name: str) -> str:
    """``url`` if every tier parses; else a ConfigurationError naming the variable."""
    try:
        for tier in split_chain(url):
            parse_url(tier)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{name}: {exc.message}") from None
    return url


def _cache_dir(environ: Mapping[str, str]) -> Path:
    xdg = _env(environ, "XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg)
    home = _env(environ, "HOME")
    return (Path(home) if home else Path.home()) / ".cache"


def _plan_layout(url: str) -> str:
    """A standalone Redis URL with the plan's key layout unless it names its own."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return url
    names = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    if names & set(PLAN_REDIS_PARAMS):
        return url
    query = "&".join(filter(None, [parts.query, urlencode(PLAN_REDIS_PARAMS, safe=":")]))
    return urlunsplit(parts._replace(query=query))


def _is_redis(tier: str) -> bool:
    return urlsplit(tier.strip()).scheme.startswith(("redis", "rediss"))


def _write_format(environ: Mapping[str, str]) -> str:
    text = _env(environ, ENV_WRITE_FORMAT)
    if text is None:
        return "envelope"
    if text not in WRITE_FORMATS:
        raise ConfigurationError(
            f"{ENV_WRITE_FORMAT} must be one of {', '.join(WRITE_FORMATS)}, got {text!r}"
        )
    return text


def _plan_json_url(url: str | None, redis_url: str | None) -> str:
    """The store of a rolling deploy: one Redis, alone. A chain stamps the values it stores
    (session_store.stamps), which the plan's ``json.loads`` cannot read."""
    if url is not None:
        checked = _checked_chain(url, ENV_SESSION_STORE_URL)
        tiers = split_chain(checked)
        if len(tiers) != 1 or not _is_redis(tiers[0]):
            raise ConfigurationError(
                f"{ENV_WRITE_FORMAT}=plan-json needs {ENV_SESSION_STORE_URL} to be one Redis URL "
                "(the plan's processes read that Redis; a chain stamps what it stores)"
            )
        return checked
    if redis_url is None:
        raise ConfigurationError(
            f"{ENV_WRITE_FORMAT}=plan-json is for a rolling deploy over the plan's Redis: "
            f"set {ENV_REDIS_URL}"
        )
    return _checked_chain(_plan_layout(redis_url.replace("|", "%7C")), ENV_REDIS_URL)


def config_from_env(environ: Mapping[str, str] | None = None) -> EnvConfig:
    """The backend URL and TTL the environment asks for (see the module docstring).

    Args:
        environ: the variables to read (default: ``os.environ``).

    Raises:
        ConfigurationError: a variable holds a bad value; the message names it.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    hours = _positive_hours(env, ENV_SESSION_TTL_HOURS, DEFAULT_TTL_HOURS)
    max_sessions = _positive_int(env, ENV_MAX_MEMORY_SESSIONS, DEFAULT_MAX_MEMORY_SESSIONS)
    write_format = _write_format(env)

    def config(url: str, redis_enabled: bool) -> EnvConfig:
        return EnvConfig(url, hours * 3600, hours, max_sessions, redis_enabled, write_format)

    url = _env(env, ENV_SESSION_STORE_URL)
    redis_url = _env(env, ENV_REDIS_URL)
    if write_format == "plan-json":
        return config(_plan_json_url(url, redis_url), True)
    if url is not None:
        checked = _checked_chain(url, ENV_SESSION_STORE_URL)
        return config(checked, any(_is_redis(tier) for tier in split_chain(checked)))
    tiers = [f"memory://?max_entries={max_sessions}"]
    if redis_url is not None:
        # a "|" would split the chain; percent-encoded, the URL parser decodes it back
        tier = _plan_layout(redis_url.replace("|", "%7C"))
        tiers.append(_checked_chain(tier, ENV_REDIS_URL))
    directory = (_cache_dir(env) / "session-store" / "sessions").as_posix()
    tiers.append(f"diskcache://{quote(directory)}")
    return config(" | ".join(tiers), redis_url is not None)
