"""TTL rules, fixed in one place."""

from __future__ import annotations

import math

import pytest

from session_store import ConfigurationError
from session_store.ttl import effective_ttl, normalize_ttl, ttl_to_ms

MAX_TTL = 100 * 365 * 86400  # the documented bound (session_store.ttl.MAX_TTL)


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, None), (1, 1.0), (2.5, 2.5), (0.0001, 0.001), (1.0001, 1.001), (1e-12, 0.001)],
)
def test_normalize_rounds_up_to_milliseconds(given: float | None, expected: float | None) -> None:
    assert normalize_ttl(given) == expected


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.001, math.nan, -math.inf, "5", True])
def test_bad_ttls_are_configuration_errors(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        normalize_ttl(bad)  # type: ignore[arg-type]


HUGE = [
    pytest.param(10**400, id="1e400"),
    pytest.param(-(10**400), id="-1e400"),
    1e300,
    MAX_TTL + 1,
    float(MAX_TTL) + 0.5,
]


@pytest.mark.parametrize("huge", HUGE)
def test_huge_ttls_are_one_typed_error(huge: float) -> None:
    """Issue 13, item 6: not a bare OverflowError, and the same bound for every backend."""
    from session_store.errors import InvalidTTLError

    with pytest.raises(InvalidTTLError, match="ttl"):
        normalize_ttl(huge)
    assert issubclass(InvalidTTLError, ConfigurationError)


def test_the_bound_itself_is_accepted() -> None:
    assert normalize_ttl(MAX_TTL) == MAX_TTL
    assert ttl_to_ms(MAX_TTL) == MAX_TTL * 1000


def test_no_expiry_is_an_explicit_ttl() -> None:
    """``NO_EXPIRY`` (what ``ttl(key)`` answers for a key that never expires) is accepted as a
    TTL and means "never", overriding a backend's default_ttl: copy and migrate pass it on."""
    from session_store.ttl import NO_EXPIRY

    assert normalize_ttl(NO_EXPIRY) == NO_EXPIRY
    assert effective_ttl(NO_EXPIRY, 30.0) is None
    assert effective_ttl(None, NO_EXPIRY) is None
    with pytest.raises(ConfigurationError):
        normalize_ttl(math.inf, what="retry_after")  # other durations stay finite


def test_milliseconds_never_zero() -> None:
    assert ttl_to_ms(0.001) == 1
    assert ttl_to_ms(normalize_ttl(1e-9) or 0) == 1
    assert ttl_to_ms(1.5) == 1500


def test_effective_ttl_prefers_the_callers() -> None:
    assert effective_ttl(None, 30.0) == 30.0
    assert effective_ttl(5, 30.0) == 5.0
    assert effective_ttl(None, None) is None


@pytest.mark.parametrize("seconds", [2.007, 0.001, 1.1, 86400.123, 0.3])
def test_whole_milliseconds_are_not_rounded_up_by_float_noise(seconds: float) -> None:
    assert ttl_to_ms(seconds) == round(seconds * 1000)
    assert normalize_ttl(seconds) == round(seconds * 1000) / 1000
