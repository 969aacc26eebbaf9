"""Issue 13, item 1: no generated password or secret parameter leaks, however it is spelled.

Passwords are drawn from every printable ASCII character (and some beyond), framed by two canaries
so that a redaction which stops part-way (at a space, a ``&``, a ``#``) shows one of them. They
are put in a URL as its userinfo password or as a secret query parameter whose name is spelled in
any case and with any of its characters percent-encoded (``pass%77ord``), with the value
percent-encoded or raw. Then everything a user may see is searched for the canaries:

* :func:`redact_url` and the ``repr`` / ``str`` of the parsed URL;
* every error raised while opening and using the backend: ``str``, ``repr``, ``.backend``, the
  whole ``__cause__`` / ``__context__`` chain and the formatted traceback;
* every log record at DEBUG, with its formatted exception;
* the output of the command line, plain and ``--json`` (``ls``, ``get``, ``stats``).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator
from unittest import mock
from urllib.parse import quote, quote_plus

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff

from session_store import open_backend, parse_url, redact_url
from session_store.cli import main
from session_store.errors import ConfigurationError, SessionStoreError
from session_store.urls import SECRET_PARAMS
from session_store_redis import base as redis_base

START, END = "Qz7START", "Qz9END"
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
ANY_TEXT = st.characters(blacklist_categories=("Cs", "Cc"))


@st.composite
def passwords(draw: st.DrawFn) -> str:
    middle = draw(st.text(st.one_of(PRINTABLE, ANY_TEXT), min_size=0, max_size=16))
    return START + middle + END


@st.composite
def param_names(draw: st.DrawFn) -> str:
    """A secret parameter's name as a user might spell it: any case, any chars %-encoded."""
    name = draw(st.sampled_from(sorted(SECRET_PARAMS)))
    out = []
    for char in name:
        char = char.upper() if draw(st.booleans()) else char
        spelled = f"%{ord(char):02X}" if draw(st.booleans()) else char
        out.append(spelled.lower() if draw(st.booleans()) else spelled)
    return "".join(out)


def _raw_query_value(password: str) -> str:
    """As raw as the parser takes it: only what would end the value is escaped."""
    return "".join(quote(c, safe="") if c in "%&#+|" else c for c in password)


def _raw_userinfo(password: str) -> str:
    return "".join(quote(c, safe="") if c in "%/?#@|" else c for c in password)


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, str]:
    """(url, password) in one of the shapes users write."""
    password = draw(passwords())
    name = draw(param_names())
    value = draw(
        st.sampled_from(
            [quote(password, safe=""), quote_plus(password), _raw_query_value(password)]
        )
    )
    userinfo = draw(st.sampled_from([quote(password, safe=""), _raw_userinfo(password)]))
    shape = draw(st.integers(0, 5))
    url = [
        f"memory://?{name}={value}&max_entries=5",
        f"memory://?max_entries=5&{name}={value}&bogus=1",
        f"redis://:{userinfo}@127.0.0.1:1/0",
        f"redis://127.0.0.1:1/0?{name}={value}&bogus=1",
        f"memory:// | redis://someone:{userinfo}@127.0.0.1:1/0?{name}={value}",
        f"redis://:{password}@127.0.0.1:1/0",  # unescaped: may not even parse
    ][shape]
    return url, password


def _leaks(text: str, password: str) -> bool:
    return any(
        part in text
        for part in (START, END, password, quote(password, safe=""), quote_plus(password))
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack += [item.__cause__, item.__context__]


def _error_texts(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    for item in _chain(exc):
        texts += [str(item), repr(item), str(getattr(item, "backend", ""))]
    return texts


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


def _library_texts(url: str) -> list[str]:
    texts = [redact_url(url)]
    for tier in url.split(" | "):
        try:
            parsed = parse_url(tier)
        except ConfigurationError as exc:
            texts += _error_texts(exc)
        else:
            texts += [repr(parsed), str(parsed), parsed.redacted()]
    try:
        backend = open_backend(url)
    except SessionStoreError as exc:
        return texts + _error_texts(exc)
    try:
        texts += [repr(backend), backend.describe()]
        calls: list[Callable[[], object]] = [
            lambda: backend.get("k"),
            lambda: backend.set("k", b"v"),
        ]
        for call in calls:
            try:
                call()
            except SessionStoreError as exc:
                texts += _error_texts(exc)
    finally:
        backend.close()
    return texts


def _cli_texts(url: str) -> list[str]:
    runner = CliRunner()
    texts = []
    commands = [["ls", url], ["ls", "--json", url], ["get", "--json", url, "k"]]
    for args in [*commands, ["stats", "--json", "--sample", "1", url]]:
        result = runner.invoke(main, ["-vv", *args], catch_exceptions=True)
        texts += [result.output, result.stderr, repr(result.exception)]
    return texts


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(urls())
def test_no_generated_secret_leaks_anywhere(case: tuple[str, str]) -> None:
    url, password = case
    records = _Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    # The Redis URLs point at a closed port: each call is retried as in production, but
    # without the backoff's pauses between attempts (0.3-0.4 s of sleeping per example, most
    # of this test's time), which show nothing a user could read.
    with mock.patch.object(redis_base, "make_backoff", NoBackoff):
        try:
            texts = _library_texts(url)
        finally:
            root.removeHandler(records)
            root.setLevel(old_level)
        texts += records.texts
        texts += _cli_texts(url)
    leaked = [text for text in texts if _leaks(text, password)]
    assert not leaked, leaked[0]


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?password=correct horse&bogus=1",
        "redis://127.0.0.1:6379/0?pass%77ord=hunter2XYZ&bogus=1",
        "memory://?PASSWORD=hunter2XYZ&bogus=1",
        "memory://?token=a%26b%23hunter2XYZ",
        "memory://?password=ab#hunter2XYZ",
        "memory://?auth=ab@hunter2XYZ&max_entries=5",  # an "@" in a value is no userinfo end
        "redis://hunter2XYZ@h:1/0?prefix=a@b",
    ],
)
def test_the_issue_examples(url: str) -> None:
    shown = redact_url(url)
    assert "horse" not in shown and "hunter2XYZ" not in shown, shown
    assert "***" in shown
