"""Time-to-live rules shared by every backend, fixed here once.

* A TTL is a number of seconds, ``int`` or ``float``.
* ``None`` means "the backend's default TTL", which is itself ``None`` (no expiry) unless the
  backend was opened with ``default_ttl``.
* Zero, a negative number, NaN, infinity or a non-number is a :class:`ConfigurationError`: a
  caller who wants a key gone calls ``delete``.
* Stores keep millisecond precision. A TTL is rounded *up* to the next millisecond, never down,
  so ``0.0001`` becomes ``0.001`` and never zero (which would mean "expire now" or "never").
* ``ttl(key)`` answers :data:`NO_EXPIRY` (``math.inf``) for a key that never expires and
  ``None`` for a key that does not exist.
"""

from __future__ import annotations

import math

from session_store.errors import ConfigurationError

__all__ = ["NO_EXPIRY", "effective_ttl", "normalize_ttl", "ttl_to_ms"]

#: What ``ttl(key)`` returns for a key that exists and never expires.
NO_EXPIRY = math.inf


def normalize_ttl(ttl: float | None, *, what: str = "ttl") -> float | None:
    """Validate a TTL and round it up to whole milliseconds; ``None`` passes through.

    Raises:
        ConfigurationError: the TTL is not a finite, positive number.
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise ConfigurationError(
            f"{what} must be a number of seconds or None, got {type(ttl).__name__}"
        )
    if not math.isfinite(ttl) or ttl <= 0:
        raise ConfigurationError(f"{what} must be a finite number of seconds > 0, got {ttl!r}")
    return max(1, _ceil_ms(ttl)) / 1000


def _ceil_ms(seconds: float) -> int:
    """Milliseconds rounded up, except that float noise (2.007 * 1000 == 2007.0000000000002)
    does not add a whole millisecond."""
    ms = seconds * 1000
    nearest = round(ms)
    return nearest if abs(ms - nearest) < 1e-6 else math.ceil(ms)


def ttl_to_ms(ttl: float) -> int:
    """Whole milliseconds for a normalized TTL, at least 1 (for ``PX`` / ``PEXPIRE``)."""
    return max(1, _ceil_ms(ttl))


def effective_ttl(ttl: float | None, default_ttl: float | None) -> float | None:
    """The TTL a write uses: the caller's, validated, else the backend's default."""
    if ttl is None:
        return default_ttl
    return normalize_ttl(ttl)
