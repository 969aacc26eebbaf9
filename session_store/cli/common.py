"""What every command shares: URL arguments, opening backends, reading tiers, errors, output.

Secrets: every URL a command is given is parsed once by :func:`resolve_url`, which remembers its
password and secret query parameters (and the keys in ``SESSION_STORE_KEYS``); :func:`scrub`
masks them in any text before it is printed, on top of :func:`~session_store.urls.redact_url`,
which is how URLs themselves are shown.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, NoReturn
from urllib.parse import quote, quote_plus

import click
import orjson

from session_store.backend import Scope, SessionBackend
from session_store.codec import KEYS_ENV, Codec
from session_store.errors import ConfigurationError
from session_store.keys import storage_heads
from session_store.registry import open_backend, split_chain
from session_store.ttl import NO_EXPIRY
from session_store.urls import is_secret_param, parse_url, redact_url

__all__ = [
    "ENV_URL",
    "EXIT_DEGRADED",
    "EXIT_ERROR",
    "EXIT_NOT_FOUND",
    "EXIT_USAGE",
    "JSON_OPTION",
    "NAMESPACE_OPTION",
    "CommandError",
    "ProgressBar",
    "console",
    "degraded",
    "echo_json",
    "fail",
    "forget_degraded",
    "make_codec",
    "missing",
    "note_chain",
    "note_degraded",
    "opened",
    "resolve_url",
    "scrub",
    "shown_key",
    "ttl_for_json",
    "ttl_text",
    "url_and_one",
]

log = logging.getLogger("session_store.cli")

#: The environment variable giving the default URL or chain string.
ENV_URL = "SESSION_STORE_URL"
#: Exit codes: an error, a usage error (click's own), a key or session that is not there, and a
#: chain that answered with a tier down (unless ``--allow-degraded``).
EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DEGRADED = 1, 2, 3, 4

_MASK = "***"
_secrets: set[str] = set()
#: Tiers of a chain found down while a command ran: description -> why.
_degraded: dict[str, str] = {}


class CommandError(Exception):
    """A failure the command reports as one line on stderr, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``session-store: error: <message>`` (one line, secrets masked) and exit."""
    line = " ".join(scrub(message).split())
    click.echo(f"session-store: error: {line}", err=True)
    sys.exit(code)


# -- secrets -------------------------------------------------------------------------------------
def _remember(secret: str | None) -> None:
    if secret:
        _secrets.update({secret, quote(secret, safe=""), quote(secret), quote_plus(secret)})


def remember_secrets(url: str) -> None:
    """Remember the secrets of ``url`` (every tier of a chain, split as the registry splits it)
    as the parser reads them, so that :func:`scrub` masks them in any text printed later."""
    try:
        tiers = split_chain(url)
    except ConfigurationError:
        tiers = [url]
    for tier in tiers:
        try:
            parsed = parse_url(tier)
        except ConfigurationError:
            continue  # what does not parse is masked by redact_url, from its structure
        _remember(parsed.password)
        if parsed.username and not parsed.password:  # redis://secret@host: the password
            _remember(parsed.username)
        for name, value in parsed.params.items():
            if is_secret_param(name):
                _remember(value)


def _remember_env_keys() -> None:
    for part in os.environ.get(KEYS_ENV, "").split(","):
        _remember(part.strip())


def scrub(text: str) -> str:
    """``text`` with every remembered secret replaced by ``***``."""
    _remember_env_keys()
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, _MASK)
    return text


# -- URLs and backends ---------------------------------------------------------------------------
def resolve_url(given: str | None) -> str:
    """The URL given, else ``$SESSION_STORE_URL``; checked (every tier parses), secrets noted.

    Raises:
        CommandError: neither is there.
        ConfigurationError: the URL or a tier of the chain does not parse.
    """
    url = given if given is not None else os.environ.get(ENV_URL, "").strip()
    if not url:
        raise CommandError(f"no URL given and {ENV_URL} is not set", EXIT_USAGE)
    remember_secrets(url)
    for tier in split_chain(url):
        parse_url(tier)
    return url


def url_and_one(args: tuple[str, ...], name: str) -> tuple[str, str]:
    """``[URL] NAME`` arguments: two given are URL and NAME; one is NAME, the URL from the
    environment."""
    if len(args) == 2:
        return resolve_url(args[0]), args[1]
    if len(args) == 1:
        if "://" in args[0] and not os.environ.get(ENV_URL, "").strip():
            remember_secrets(args[0])  # a URL given without its NAME, not a NAME
            raise CommandError(
                f"expected [URL] {name}: {redact_url(args[0])!r} is a URL; give the {name} "
                f"after it (or set {ENV_URL} and give the {name} alone)",
                EXIT_USAGE,
            )
        return resolve_url(None), args[0]
    raise click.UsageError(f"expected [URL] {name}, got {len(args)} arguments")


@contextmanager
def opened(url: str, *, note_memory: bool = True) -> Iterator[SessionBackend]:
    """The backend ``url`` names, closed afterwards; a tier of a chain that was down while it
    was used is noted (:func:`degraded`). ``note_memory``: say on stderr that ``memory://``
    alone is this command's own, empty memory (what a new user trying it may not expect)."""
    from session_store.tiered import TieredBackend

    backend = open_backend(url)
    try:
        alone = not isinstance(backend, TieredBackend)
        if note_memory and alone and backend.scope is Scope.PROCESS:
            click.echo(
                f"session-store: note: {backend.describe()} is this command's own process "
                "memory, empty when it starts: an app's memory tier cannot be read from "
                "outside; look at a shared store (redis://, diskcache://)",
                err=True,
            )
        yield backend
        note_chain(backend)
    finally:
        backend.close()


# -- a chain with a tier down --------------------------------------------------------------------
def note_degraded(backend: str, why: str) -> None:
    """Remember that the tier ``backend`` (a redacted description) could not answer."""
    _degraded.setdefault(backend, why)


def note_chain(backend: SessionBackend) -> None:
    """Note every tier of a chain that is marked down (after the chain skipped it)."""
    from session_store.tiered import TieredBackend

    if isinstance(backend, TieredBackend):
        for state in backend.tier_states():
            if state["down"]:
                note_degraded(state["backend"], "down")


def degraded() -> dict[str, str]:
    """The tiers found down during this command: description -> why."""
    return dict(_degraded)


def forget_degraded() -> None:
    """Start a command with no tier noted down (the group calls it; matters in-process)."""
    _degraded.clear()


#: ``--namespace``, of the commands that decode.
NAMESPACE_OPTION = click.option(
    "--namespace",
    default="",
    show_default=False,
    help="The store's namespace, bound into encryption (default: none).",
)
#: ``--json``, of the commands that can print JSON for scripts.
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def missing(key: str, url: str) -> CommandError:
    """The error of a key that holds nothing (exit 3)."""
    return CommandError(f"no session under key {key!r} in {redact_url(url)}", EXIT_NOT_FOUND)


def make_codec(namespace: str = "", backend: object = None) -> Codec:
    """The codec the commands decode with: encryption keys from ``SESSION_STORE_KEYS``, bound
    to ``backend``'s key prefix as a store over it is (what a command that reads a backend's
    bytes itself needs to open what a store wrote there: byte format 3)."""
    codec = Codec(namespace=namespace)
    heads = () if backend is None else storage_heads(backend)
    return codec.bound_to(heads) if heads else codec


# -- output ----------------------------------------------------------------------------------------
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown_key(key: str) -> str:
    """``key`` as one unambiguous line of text: printable characters as they are (``café``),
    a backslash doubled, and every other character escaped as Python writes it (``\\n``,
    ``\\x1f``, ``\\u2028``). Keys are data and may hold anything but a lone surrogate, such
    as a newline or the U+001F that ends a namespace prefix; ``--json`` gives them exactly."""
    if key.isprintable() and "\\" not in key:
        return key
    out: list[str] = []
    for char in key:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        else:
            code = ord(char)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else f"\\u{code:04x}"
                if code < 0x10000
                else f"\\U{code:08x}"
            )
    return "".join(out)


def ttl_text(seconds: float | None) -> str:
    """A TTL for people: ``never``, ``2d 03h``, ``1h 05m``, ``4m 10s``, ``12.5s``."""
    if seconds is None:
        return "-"
    if seconds == NO_EXPIRY:
        return "never"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{seconds:.1f}s"


def ttl_for_json(seconds: float | None) -> float | None:
    """A TTL in JSON: seconds, or ``null`` for a key that never expires."""
    return None if seconds is None or seconds == NO_EXPIRY else round(seconds, 3)


def echo_json(value: Any, *, pretty: bool = False) -> None:
    """``value`` as JSON on stdout, one document per call. An int orjson cannot write (beyond
    64 bits: plain JSON, or a legacy session, read exactly) is written by Python's ``json``."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if pretty else 0)
    try:
        text = orjson.dumps(value, option=option).decode()
    except TypeError:  # orjson.JSONEncodeError: an int beyond 64 bits
        text = json.dumps(value, indent=2 if pretty else None, ensure_ascii=False)
    click.echo(text)


def console(*, stderr: bool = False, force: bool | None = None) -> Any:
    """A rich console on stdout (or stderr); wide enough for URLs when not a terminal."""
    from rich.console import Console

    stream: IO[str] = sys.stderr if stderr else sys.stdout
    # a terminal: its width; else $COLUMNS if set (rich reads it), else wide enough for URLs
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(file=stream, width=width, force_terminal=force, highlight=False)


class ProgressBar:
    """A rich progress bar on stderr, or nothing; used as ``with ProgressBar(...) as advance``."""

    def __init__(self, show: bool, total: int, what: str) -> None:
        self.show = show
        self.total = total
        self.what = what
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.show:
            return lambda *_args: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self._bar = Progress(
            f"[bold]{self.what}[/]",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
        )
        self._bar.start()
        self._task = self._bar.add_task(self.what, total=self.total)

        def advance(done: int | None = None, total: int | None = None) -> None:
            if done is None:
                self._bar.advance(self._task)
            else:
                self._bar.update(self._task, completed=done, total=total or self.total)

        return advance

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()
