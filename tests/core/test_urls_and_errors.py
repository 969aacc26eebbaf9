"""URL parsing, redaction of secrets, and the error hierarchy."""

from __future__ import annotations

import pytest

from session_store import errors, parse_url, redact_url
from session_store.errors import SessionStoreError

SECRET = "hunter2-Sup3rSecret"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@127.0.0.1:6379/0",
        f"redis://user:{SECRET}@host/0?prefix=x",
        f"redis://{SECRET}@host:1/0",
        f"rediss://h/0?password={SECRET}",
        f"memory://?encryption_key={SECRET}",
        f"memory:// | redis://:{SECRET}@h/0 | diskcache:///tmp/x",
    ],
)
def test_redaction_hides_every_secret(url: str) -> None:
    shown = redact_url(url)
    assert SECRET not in shown
    assert "***" in shown
    parsed = parse_url(url.split("|")[-2].strip() if "|" in url else url)
    assert SECRET not in repr(parsed)
    assert SECRET not in str(parsed)


def test_parse_keeps_the_parts() -> None:
    url = parse_url("redis://user:p%40ss@example.org:6380/2?prefix=a%3Ab&x=1")
    assert (url.scheme, url.hostname, url.port, url.path) == ("redis", "example.org", 6380, "/2")
    assert url.username == "user" and url.password == "p@ss"
    assert dict(url.params) == {"prefix": "a:b", "x": "1"}


@pytest.mark.parametrize("bad", ["not a url", "memory", "://x", "redis://h:notaport/0", ""])
def test_malformed_urls_are_configuration_errors(bad: str) -> None:
    with pytest.raises(errors.ConfigurationError):
        parse_url(bad)


def test_every_error_derives_from_the_base_and_is_documented() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, SessionStoreError)
        assert cls.__doc__ and len(cls.__doc__) > 20, name


def test_errors_carry_key_and_backend() -> None:
    exc = errors.CorruptPayloadError("bad bytes", key="user:1", backend="memory://")
    assert exc.key == "user:1" and exc.backend == "memory://"
    assert "user:1" in str(exc) and "memory://" in str(exc)
    assert "CorruptPayloadError" in repr(exc)


def test_stdlib_bases_keep_existing_except_clauses_working() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.InvalidKeyError, ValueError)
    assert issubclass(errors.BackendUnavailableError, errors.BackendError)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("memory://?max_entries=5", "memory://?max_entries=5"),
        ("diskcache:///var/lib/x?prefix=a:", "diskcache:///var/lib/x?prefix=a:"),
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
    ],
)
def test_redaction_keeps_the_rest_readable(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_bad_secret_parameter_leaves_no_trace_in_the_error_chain() -> None:
    from session_store.urls import Params

    url = parse_url(f"memory://?password={SECRET}")
    with pytest.raises(errors.ConfigurationError) as info:
        Params(url, {}).take_int("password", 0)
    seen = [info.value, info.value.__cause__, info.value.__context__]
    assert all(SECRET not in repr(e) and SECRET not in str(e) for e in seen)
    assert info.value.__context__ is None


@pytest.mark.parametrize(
    "url",
    [
        f"redis:/:{SECRET}@127.0.0.1:1/0",  # a missing slash
        f"redis:{SECRET}@h/0",
        f"redis://:{SECRET}/x@127.0.0.1:1/0",  # unescaped / in the password
        f"redis://:{SECRET}?x@h/0",
        f"redis://:{SECRET}#x@h/0",
        f"redis://:{SECRET}|x@h/0",  # | would split a chain
        f"memory:// | redis://:{SECRET}@h:1/0?bogus=1 | diskcache:///tmp/x",
    ],
)
def test_secrets_in_malformed_urls_never_reach_errors(url: str) -> None:
    from session_store import open_backend

    assert SECRET not in redact_url(url)
    try:
        backend = open_backend(url)  # a "|" in a password is part of it, not a tier break
    except errors.SessionStoreError as exc:
        text = f"{exc!s} {exc!r} {exc.__cause__!r} {exc.__context__!r}"
    else:
        text = f"{backend!r} {backend.describe()}"
        backend.close()
    assert SECRET not in text


def test_redaction_quotes_the_text_as_written() -> None:
    assert redact_url("diskcache:tmp/x") == "diskcache:tmp/x"
    with pytest.raises(errors.ConfigurationError, match="got 'diskcache:tmp/x'"):
        parse_url("diskcache:tmp/x")


def test_backend_unavailable_is_a_connection_error() -> None:
    """errors.py promises that ``except ConnectionError`` handlers keep working (issue 13, 9)."""
    assert issubclass(errors.BackendUnavailableError, ConnectionError)
    with pytest.raises(ConnectionError) as caught:  # what a host app already catches
        raise errors.BackendUnavailableError("down", key="k", backend="redis://h:1/0")
    assert isinstance(caught.value, SessionStoreError)
    assert str(caught.value) == "down | key='k' | backend=redis://h:1/0"
    assert caught.value.key == "k" and caught.value.backend == "redis://h:1/0"
