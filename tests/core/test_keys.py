"""Key rules and namespaces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store import ConfigurationError, InvalidKeyError, Namespace, validate_key
from session_store.keys import MAX_KEY_BYTES, SEPARATOR, validate_scan_prefix
from session_store.testing.conformance import HOSTILE_KEYS, INVALID_KEYS


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k)[:20])
def test_hostile_but_valid_keys_pass_unchanged(key: str) -> None:
    assert validate_key(key) is key


@pytest.mark.parametrize("key", INVALID_KEYS, ids=lambda k: repr(k)[:20])
def test_invalid_keys_are_refused(key: object) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_limit_is_in_utf8_bytes_not_characters() -> None:
    validate_key("日" * (MAX_KEY_BYTES // 3))
    with pytest.raises(InvalidKeyError, match="1024 UTF-8 bytes"):
        validate_key("日" * (MAX_KEY_BYTES // 3 + 1))


def test_str_subclasses_are_refused() -> None:
    class Sneaky(str):
        pass

    with pytest.raises(InvalidKeyError, match="must be str"):
        validate_key(Sneaky("k"))


def test_error_message_truncates_a_huge_key() -> None:
    with pytest.raises(InvalidKeyError) as info:
        validate_key("x" * 10_000)
    assert len(str(info.value)) < 300
    assert info.value.key == "x" * 10_000


def test_scan_prefix_may_be_empty_but_must_be_text() -> None:
    assert validate_scan_prefix("") == ""
    with pytest.raises(InvalidKeyError):
        validate_scan_prefix(b"x")


@pytest.mark.parametrize("prefix", [SEPARATOR, "a\x1fb", "x" * 257, "bad \udc80"])
def test_bad_prefixes_are_configuration_errors(prefix: str) -> None:
    with pytest.raises(ConfigurationError):
        Namespace(prefix)


def test_overlapping_prefixes_cannot_collide() -> None:
    outer, inner = Namespace("session:"), Namespace("session:admin:")
    assert outer.encode("admin:x") != inner.encode("x")
    assert outer.decode(inner.encode("x")) is None
    assert inner.decode(outer.encode("admin:x")) is None
    assert not inner.encode("x").startswith(outer.scan_head())


_prefixes = st.text(
    alphabet=st.characters(blacklist_characters=SEPARATOR, codec="utf-8"), max_size=8
)
_keys = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8)


@given(_prefixes, _prefixes, _keys, _keys)
def test_distinct_namespaces_never_share_stored_keys(p1: str, p2: str, k1: str, k2: str) -> None:
    a, b = Namespace(p1), Namespace(p2)
    assert a.decode(a.encode(k1)) == k1
    if p1 != p2:
        assert a.encode(k1) != b.encode(k2)
        assert a.decode(b.encode(k2)) is None
