"""Time-to-live rules shared by every backend, fixed here once.

* A TTL is a number of seconds, ``int`` or ``float``, with ``0 < ttl <= MAX_TTL`` (100 years).
* ``None`` means "the backend's default TTL", which is itself no expiry unless the backend was
  opened with ``default_ttl``.
* :data:`NO_EXPIRY` (``math.inf``) means "never expires", explicitly: it overrides a backend's
  ``default_ttl``. It is also what ``ttl(key)`` answers for a key that never expires, so
  ``set(key, value, ttl(key))`` copies a key faithfully.
* Anything else (zero, a negative number, NaN, ``-inf``, a non-number, or a number beyond
  :data:`MAX_TTL` such as ``10**400``) is an :class:`InvalidTTLError` (a
  :class:`ConfigurationError`), raised before any I/O, the same for every backend: a caller who
  wants a key gone calls ``delete``.
* Stores keep millisecond precision. A TTL is rounded *up* to the next millisecond, never down,
  so ``0.0001`` becomes ``0.001`` and never zero (which would mean "expire now" or "never").
* ``ttl(key)`` answers :data:`NO_EXPIRY` for a key that never expires and ``None`` for a key
  that does not exist.
* A :class:`~session_store.SessionStore` has a finite default, :data:`DEFAULT_SESSION_TTL`
  (24 hours): a session lives forever only when the store is given ``ttl=NO_EXPIRY``.
"""

from __future__ import annotations

import math

from session_store.errors import InvalidTTLError

__all__ = [
    "DEFAULT_SESSION_TTL",
    "MAX_TTL",
    "NO_EXPIRY",
    "effective_ttl",
    "normalize_ttl",
    "store_ttl",
    "ttl_to_ms",
]

#: What ``ttl(key)`` returns for a key that exists and never expires; as a TTL: "never".
NO_EXPIRY = math.inf
#: The longest finite TTL, 100 years: every backend holds it (Redis refuses about 9e15 s).
MAX_TTL = 100 * 365 * 86400
#: The TTL of a ``SessionStore`` not told otherwise: 24 hours, the first host app's
#: ``SESSION_TTL_HOURS`` default.
DEFAULT_SESSION_TTL = 24 * 3600.0

#: The parameters that may be "never"; other durations (retry_after, max_staleness, ...) may not.
_MAY_BE_FOREVER = frozenset({"ttl", "default_ttl", "own_ttl"})


def normalize_ttl(ttl: float | None, *, what: str = "ttl") -> float | None:
    """Validate a TTL and round it up to whole milliseconds; ``None`` and ``NO_EXPIRY`` pass.

    Raises:
        InvalidTTLError: the TTL is not a positive number of seconds up to :data:`MAX_TTL`
            (nor ``NO_EXPIRY``, where ``what`` is a TTL).
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidTTLError(
            f"{what} must be a number of seconds or None, got {type(ttl).__name__}"
        )
    if ttl == NO_EXPIRY and what in _MAY_BE_FOREVER:
        return NO_EXPIRY
    # Compared before any float conversion: 10**400 is an int that no float holds.
    if (isinstance(ttl, float) and math.isnan(ttl)) or not 0 < ttl <= MAX_TTL:
        shown = repr(ttl)
        if len(shown) > 24:  # 10**400 as 400 digits helps nobody
            shown = f"{shown[:8]}... ({len(shown)} characters)"
        forever = " (or NO_EXPIRY for never)" if what in _MAY_BE_FOREVER else ""
        raise InvalidTTLError(
            f"{what} must be a number of seconds > 0 and <= {MAX_TTL} (100 years){forever}, "
            f"got {shown}"
        )
    return max(1, _ceil_ms(ttl)) / 1000


def _ceil_ms(seconds: float) -> int:
    """Milliseconds rounded up, except that float noise (2.007 * 1000 == 2007.0000000000002)
    does not add a whole millisecond."""
    ms = seconds * 1000
    nearest = round(ms)
    return nearest if abs(ms - nearest) < 1e-6 else math.ceil(ms)


def ttl_to_ms(ttl: float) -> int:
    """Whole milliseconds for a normalized, finite TTL, at least 1 (for ``PX`` / ``PEXPIRE``)."""
    return max(1, _ceil_ms(ttl))


def effective_ttl(ttl: float | None, default_ttl: float | None) -> float | None:
    """The TTL a write uses: the caller's, validated, else the backend's default; ``None`` for
    no expiry (so ``NO_EXPIRY`` becomes ``None`` here, whoever gave it)."""
    chosen = default_ttl if ttl is None else normalize_ttl(ttl)
    return None if chosen is None or chosen == NO_EXPIRY else chosen


def store_ttl(ttl: float | None) -> float:
    """The TTL of a ``SessionStore``: ``None`` (not given) is :data:`DEFAULT_SESSION_TTL`;
    ``NO_EXPIRY`` is never; else a validated number of seconds."""
    chosen = normalize_ttl(DEFAULT_SESSION_TTL if ttl is None else ttl)
    assert chosen is not None
    return chosen
