"""Namespace separators: the default U+001F, and another one for another store's layout (the
data-room plan's ``session:{user_id}``)."""

from __future__ import annotations

import pytest

from session_store.errors import ConfigurationError
from session_store.keys import SEPARATOR, Namespace


def test_default_separator_is_unchanged() -> None:
    ns = Namespace("session:")
    assert ns.separator == SEPARATOR == "\x1f"
    assert ns.encode("U1") == "session:\x1fU1"
    assert repr(ns) == "Namespace('session:')"


def test_the_plan_layout() -> None:
    ns = Namespace("session", separator=":")
    assert ns.encode("U1") == "session:U1"
    assert ns.decode("session:U1") == "U1"
    assert ns.decode("session:a:b") == "a:b"  # keys may hold the separator
    assert ns.decode("sessionX:U1") is None
    assert ns.decode("session\x1fU1") is None
    assert ns.scan_head("U") == "session:U"
    assert repr(ns) == "Namespace('session', separator=':')"


@pytest.mark.parametrize(
    ("prefix", "separator"),
    [("session:", ":"), ("a", ""), ("a", "x" * 9), ("a", "\udc80"), ("a", 1)],
)
def test_bad_separators_are_refused(prefix: str, separator: object) -> None:
    with pytest.raises(ConfigurationError):
        Namespace(prefix, separator=separator)  # type: ignore[arg-type]


def test_same_separator_prefixes_never_overlap() -> None:
    """A prefix cannot hold its separator, so ``session`` and ``sess`` (or ``session2``) never
    decode each other's stored keys, whatever the keys hold."""
    spaces = [Namespace(p, separator=":") for p in ("session", "sess", "session2", "")]
    for key in ("U1", "ion:U1", ":x", "2:y"):
        for a in spaces:
            for b in spaces:
                if a is not b:
                    assert b.decode(a.encode(key)) is None, (a, b, key)
