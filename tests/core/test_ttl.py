"""TTL rules, fixed in one place."""

from __future__ import annotations

import math

import pytest

from session_store import ConfigurationError
from session_store.ttl import effective_ttl, normalize_ttl, ttl_to_ms


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, None), (1, 1.0), (2.5, 2.5), (0.0001, 0.001), (1.0001, 1.001), (1e-12, 0.001)],
)
def test_normalize_rounds_up_to_milliseconds(given: float | None, expected: float | None) -> None:
    assert normalize_ttl(given) == expected


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.001, math.nan, math.inf, -math.inf, "5", True])
def test_bad_ttls_are_configuration_errors(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        normalize_ttl(bad)  # type: ignore[arg-type]


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
