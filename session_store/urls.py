"""Backend URLs: parsing, typed query parameters, and redaction of secrets.

A backend URL is ``scheme://[user[:password]@]host[:port][/path][?name=value&...]``. Query
parameters are validated per backend through :class:`Params`: a value that does not parse, or a
parameter the backend does not know, is a :class:`ConfigurationError` that names it. Keyword
arguments given in code override URL parameters.

:func:`redact_url` is the only way a URL reaches a log line, an error or a ``repr``. It redacts
what the parser reads (see its docstring), never by pattern on the text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

from session_store.errors import ConfigurationError

__all__ = ["SECRET_PARAMS", "BackendURL", "Params", "is_secret_param", "parse_url", "redact_url"]

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


#: Words that make a query parameter secret wherever they appear in its (decoded) name, on top
#: of :data:`SECRET_PARAMS`: masking a harmless value costs less than showing a secret one.
_SECRET_WORDS = ("pass", "secret", "token", "key", "auth", "cred")
#: Where a chain string splits into tiers: the rule of :func:`session_store.registry.split_chain`
#: (a ``|`` followed by ``scheme://``, or an empty tier), so that a ``|`` inside a password is
#: part of it here exactly as it is there.
_TIER_SEPARATOR = re.compile(r"\|(?=\s*[A-Za-z][A-Za-z0-9+.\-]*://)|\|(?=\s*(?:\||$))|^\s*\|")
_HEAD = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.\-]*:/*")
_PORT = re.compile(r"[0-9]*")


def is_secret_param(name: str) -> bool:
    """Whether the query parameter ``name`` (as the parser reads it: percent-decoded) holds a
    secret: one of :data:`SECRET_PARAMS`, or any name containing pass, secret, token, key, auth
    or cred, in any case."""
    normalized = name.strip().lower()
    return normalized in SECRET_PARAMS or any(word in normalized for word in _SECRET_WORDS)


def _fields(tier: str, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(name start, "=" position or -1, field end)`` of each ``&``-separated query field."""
    pos = start
    while pos <= end:
        stop = tier.find("&", pos, end)
        stop = end if stop < 0 else stop
        equals = tier.find("=", pos, stop)
        yield pos, equals, stop
        pos = stop + 1


def _secret_spans(tier: str, cut: int) -> Iterator[tuple[int, int]]:
    """Where the secrets of one tier are, as ``(start, end)`` spans, under both readings of it.

    The parser's reading: the userinfo ends at the last ``@`` of the authority (which ends at the
    first ``/``, ``?`` or ``#``); the password follows its first ``:`` (a lone userinfo is the
    password, as Redis reads it); a host list that does not parse as ``host[:port],...`` is a
    password cut short; the query splits on ``&`` and a field is secret by its percent-decoded
    name (:func:`is_secret_param`); a fragment can only hold the tail of a value.

    The reading of a user who left ``/``, ``?``, ``#`` or ``@`` unescaped in a password: the
    userinfo runs to the last ``@`` of the tier. Both are masked, so neither reading leaks.
    """
    end = len(tier)
    hash_at = tier.find("#", cut)
    if 0 <= hash_at < end - 1:
        yield hash_at + 1, end
    body_end = end if hash_at < 0 else hash_at
    authority_end = min(
        (i for i in (tier.find(c, cut, body_end) for c in "/?") if i >= 0), default=body_end
    )
    # the parser's reading of the authority
    at = tier.rfind("@", cut, authority_end)
    if at >= 0:
        colon = tier.find(":", cut, at)
        yield (cut if colon < 0 else colon + 1), at
    hosts_start = at + 1 if at >= 0 else cut
    for server in tier[hosts_start:authority_end].split(","):
        host, colon_, port = server.rpartition(":")
        bad_port = colon_ and not host.endswith("]") and not _PORT.fullmatch(port)
        if bad_port or (not colon_ and server.startswith("[") and not server.endswith("]")):
            yield hosts_start, authority_end
            break
    # the query, as parse_qsl reads it
    question = tier.find("?", cut, body_end)
    if question >= 0:
        for name_start, equals, stop in _fields(tier, question + 1, body_end):
            if equals >= 0 and is_secret_param(unquote_plus(tier[name_start:equals])):
                yield equals + 1, stop
    # a password with unescaped reserved characters: everything to the last "@"
    last_at = tier.rfind("@", cut)
    if last_at >= 0:
        colon = tier.find(":", cut, last_at)
        user_clean = colon >= 0 and not any(c in tier[cut:colon] for c in "@/?#&=")
        yield (colon + 1 if user_clean else cut), last_at


def _redact_tier(tier: str) -> str:
    head = _HEAD.match(tier)
    cut = head.end() if head else 0
    masked = bytearray(len(tier))
    for start, stop in _secret_spans(tier, cut):
        masked[start:stop] = b"\x01" * (stop - start)
    out: list[str] = []
    for index, char in enumerate(tier):
        if not masked[index]:
            out.append(char)
        elif index == 0 or not masked[index - 1]:
            out.append(_MASK)
    return "".join(out)


def redact_url(url: str) -> str:
    """``url`` (or a chain string) with passwords and secret query parameters as ``***``.

    Redacts what the parser reads, not what a pattern finds: the chain splits into tiers as
    :func:`~session_store.registry.split_chain` splits it, the userinfo runs to the last ``@``,
    a host list that does not parse is masked, parameter names are percent-decoded before they
    are judged (``pass%77ord`` is ``password``), and a secret value is masked whole, whatever it
    holds (spaces included). The rest is shown exactly as given, even when it does not parse, so
    that an error message quotes what the user wrote, minus the secrets.
    """
    if not isinstance(url, str):
        return _MASK
    tiers = _TIER_SEPARATOR.split(url)
    separators = [m.group(0) for m in _TIER_SEPARATOR.finditer(url)]
    out = [_redact_tier(tiers[0])]
    for separator, tier in zip(separators, tiers[1:], strict=True):
        out.append(separator + _redact_tier(tier))
    return "".join(out)


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
        shown = _MASK if is_secret_param(name) else repr(text)
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
