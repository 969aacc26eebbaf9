"""``upper_bound`` turns "starts with" into a half-open range, for every string and prefix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store_diskcache.keyrange import upper_bound

# Valid key text (no surrogates), weighted towards the characters at the edges of the range.
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\x1f", "\x20", "a", "\ud7ff", "\ue000", "\U0010ffff"]),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=6,
)


@given(prefix=_text.filter(lambda p: p.rstrip("\U0010ffff") != ""), text=_text)
def test_range_holds_exactly_the_strings_with_the_prefix(prefix: str, text: str) -> None:
    bound = upper_bound(prefix)
    for candidate in (text, prefix + text, prefix[:-1] + text, bound + text):
        in_range = prefix <= candidate < bound
        assert in_range == candidate.startswith(prefix), (prefix, candidate, bound)
    # UTF-8 byte order is code point order, so SQLite's BINARY collation agrees with Python
    assert prefix.encode() < bound.encode()


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("a", "b"),
        ("t:\x1f", "t:\x20"),
        ("a\U0010ffff\U0010ffff", "b"),
        ("\ud7ff", "\ue000"),  # the surrogate block is skipped: no valid key holds one
        ("x\x00", "x\x01"),
    ],
)
def test_known_bounds(prefix: str, bound: str) -> None:
    assert upper_bound(prefix) == bound


@pytest.mark.parametrize("prefix", ["", "\U0010ffff", "\U0010ffff" * 3])
def test_no_bound_is_an_error(prefix: str) -> None:
    with pytest.raises(ValueError, match="no upper bound"):
        upper_bound(prefix)
