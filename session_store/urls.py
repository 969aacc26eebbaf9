"""Backend URLs: parsing, typed query parameters, and redaction of secrets.

A backend URL is ``scheme://[user[:password]@]host[:port][/path][?name=value&...]``. Query
parameters are validated per backend through :class:`Params`: a value that does not parse, or a
parameter the backend does not know, is a :class:`ConfigurationError` that names it. Keyword
arguments given in code override URL parameters.

:func:`redact_url` is the only way a URL reaches a log line, an error or a ``repr``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from session_store.errors import ConfigurationError

__all__ = ["SECRET_PARAMS", "BackendURL", "Params", "parse_url", "redact_url"]

#: Query parameters whose values are secrets, masked wherever a URL is shown.
SECRET_PARAMS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "secret",
        "token",
        "key",
        "encryption_key",
        "keys",
        "auth",
        "sentinel_password",
    }
)
_MASK = "***"

T = TypeVar("T")


_SCHEME = re.compile(r"(?:^|\|)\s*[A-Za-z][A-Za-z0-9+.\-]*:/*")
_SECRET_QUERY = re.compile(
    r"([?&](?:" + "|".join(sorted(SECRET_PARAMS)) + r"))=([^&#|\s]*)", re.IGNORECASE
)


def _mask_userinfo(text: str) -> str:
    """Mask the password of every ``user:password@`` in ``text``, found by its ``@``.

    Works on the raw text, without parsing it, so that a URL which does not parse (a missing
    ``//``, a password holding an unescaped ``/``, ``?``, ``#`` or ``|``) is masked too: the
    userinfo runs from just after the last ``scheme:`` or ``scheme://`` before the ``@``.
    """
    out: list[str] = []
    pos = 0
    while (at := text.find("@", pos)) != -1:
        heads = [m.end() for m in _SCHEME.finditer(text, 0, at) if m.end() <= at]
        start = max(heads[-1] if heads else 0, pos)
        user, colon, _password = text[start:at].partition(":")
        # "redis://secret@host": a lone userinfo is the password for Redis, so mask it too.
        out.append(text[pos:start] + (f"{user}:{_MASK}" if colon else _MASK) + "@")
        pos = at + 1
    out.append(text[pos:])
    return "".join(out)


def redact_url(url: str) -> str:
    """``url`` (or a chain string) with passwords and secret query parameters as ``***``.

    The text is otherwise shown exactly as given, even when it does not parse, so that an
    error message quotes what the user wrote, minus the secrets.
    """
    return _SECRET_QUERY.sub(rf"\1={_MASK}", _mask_userinfo(url))


@dataclass(frozen=True, repr=False)
class BackendURL:
    """A parsed backend URL. ``repr`` and ``str`` are redacted; ``raw`` holds the original."""

    scheme: str
    netloc: str
    hostname: str | None
    port: int | None
    username: str | None
    password: str | None = field(compare=False)
    path: str
    params: Mapping[str, str]
    raw: str = field(compare=False)

    def __repr__(self) -> str:
        return f"BackendURL({redact_url(self.raw)!r})"

    __str__ = __repr__

    def redacted(self) -> str:
        """The URL as it may be shown: no password, no secret parameter."""
        return redact_url(self.raw)


def parse_url(url: str) -> BackendURL:
    """Parse one backend URL (not a chain).

    Raises:
        ConfigurationError: the text is not a URL with a scheme, or a parameter is repeated.
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a backend URL must be str, got {type(url).__name__}")
    text = url.strip()
    parsed = True
    try:
        parts = urlsplit(text)
        # scheme://host:port,host:port/... (Redis Cluster, Sentinel): several servers, no one port
        several = "," in parts.netloc.rpartition("@")[2]
        port = None if several else parts.port
    except ValueError:  # urllib's message may quote the password: it is not passed on
        parsed = False
    if not parsed:  # raised outside the except: no __context__ holding the raw text
        raise ConfigurationError(
            f"cannot parse backend URL {redact_url(text)!r}: a malformed host or port "
            "(characters such as / ? # @ | in a password must be percent-encoded)"
        )
    if not parts.scheme or "://" not in text:
        raise ConfigurationError(f"a backend URL looks like scheme://..., got {redact_url(text)!r}")
    params: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in params:
            raise ConfigurationError(
                f"URL parameter {name!r} is given twice", backend=redact_url(text)
            )
        params[name] = value
    return BackendURL(
        scheme=parts.scheme.lower(),
        netloc=parts.netloc,
        hostname=None if several else parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        path=unquote(parts.path),
        params=params,
        raw=text,
    )


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _parse_optional_float(text: str) -> float | None:
    return None if text.lower() in {"", "none", "null"} else _parse_float(text)


class Params:
    """Typed access to a backend's URL parameters, merged with keyword overrides.

    Each ``take_*`` consumes one parameter; :meth:`finish` raises for any left over, so a typo such
    as ``max_entrys=10`` is an error instead of a silently ignored setting.
    """

    def __init__(self, url: BackendURL, overrides: Mapping[str, Any]) -> None:
        self._url = url
        self._text = dict(url.params)
        self._overrides = dict(overrides)

    def _take(self, name: str, parse: Callable[[str], T], default: T, kind: str) -> T:
        if name in self._overrides:
            self._text.pop(name, None)
            return self._overrides.pop(name)  # type: ignore[no-any-return]
        if name not in self._text:
            return default
        text = self._text.pop(name)
        try:
            return parse(text)
        except ValueError:
            pass
        # Raised outside the except, so that no __context__ carries the raw (maybe secret) text.
        shown = _MASK if name.lower() in SECRET_PARAMS else repr(text)
        raise ConfigurationError(
            f"URL parameter {name}={shown} is not {kind}", backend=self._url.redacted()
        )

    def take_str(self, name: str, default: str) -> str:
        """A text parameter."""
        return self._take(name, str, default, "text")

    def take_optional_str(self, name: str) -> str | None:
        """A text parameter that may be absent."""
        return self._take(name, str, None, "text")

    def take_int(self, name: str, default: int) -> int:
        """An integer parameter."""
        return self._take(name, int, default, "an integer")

    def take_optional_int(self, name: str, default: int | None = None) -> int | None:
        """An integer parameter that may be ``none``."""
        return self._take(
            name,
            lambda t: None if t.lower() in {"", "none"} else int(t),
            default,
            "an integer or none",
        )

    def take_float(self, name: str, default: float) -> float:
        """A number parameter."""
        return self._take(name, _parse_float, default, "a number")

    def take_optional_float(self, name: str, default: float | None = None) -> float | None:
        """A number parameter that may be ``none``."""
        return self._take(name, _parse_optional_float, default, "a number or none")

    def take_bool(self, name: str, default: bool) -> bool:
        """A boolean parameter."""
        return self._take(name, _parse_bool, default, "a boolean")

    def finish(self) -> None:
        """Raise for every parameter no ``take_*`` consumed."""
        unknown = sorted({*self._text, *self._overrides})
        if unknown:
            raise ConfigurationError(
                f"unknown parameter(s) for {self._url.scheme}://: {', '.join(unknown)}",
                backend=self._url.redacted(),
            )
