"""The typed errors of session-store.

Every error raised on purpose by session-store derives from :class:`SessionStoreError`, so one
``except SessionStoreError`` catches them all. Each carries, where known, the ``key`` and the
``backend`` (a redacted description, never a URL with its password) involved.

Messages never contain passwords, encryption keys or session contents: keys are shown
truncated, backends by their redacted description.

Where a stdlib type describes the failure well, the error also derives from it, so code that
already catches ``ValueError`` or ``ConnectionError``-style failures keeps working.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "CorruptPayloadError",
    "InvalidKeyError",
    "InvalidTTLError",
    "NotWritableError",
    "SerializationError",
    "SessionStoreError",
    "UnknownSchemaVersionError",
]

_KEY_SHOWN = 80


def _show_key(key: str) -> str:
    """A key as shown in messages: repr-escaped and truncated, so a 10 kB key stays readable."""
    shown = repr(key)
    if len(shown) > _KEY_SHOWN:
        shown = shown[: _KEY_SHOWN - 5] + "...'" + f" ({len(key)} chars)"
    return shown


class SessionStoreError(Exception):
    """Base of every error session-store raises on purpose.

    Args:
        message: what went wrong, for a human; never holds secrets or session contents.
        key: the session key involved, if any.
        backend: a redacted description of the backend involved, if any.
    """

    def __init__(self, message: str, *, key: str | None = None, backend: str | None = None) -> None:
        self.message = message
        self.key = key
        self.backend = backend
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.key is not None:
            parts.append(f"key={_show_key(self.key)}")
        if self.backend is not None:
            parts.append(f"backend={self.backend}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class ConfigurationError(SessionStoreError, ValueError):
    """A URL, chain string, parameter or argument is invalid, or names a backend not installed.

    Raised before any I/O. For an unknown scheme the message lists the installed schemes and, for a
    known scheme whose plugin is missing, the distribution to install.
    """


class InvalidKeyError(SessionStoreError, ValueError):
    """A session key breaks the key rules (see :mod:`session_store.keys`); raised before any I/O."""


class InvalidTTLError(ConfigurationError):
    """A TTL no backend may hold: not a number, zero or negative, NaN, or beyond
    :data:`session_store.ttl.MAX_TTL` (``10**400`` included); raised before any I/O, the same
    for every backend. ``NO_EXPIRY`` (``math.inf``) is the explicit "never expires"."""


class BackendError(SessionStoreError):
    """A backend failed an operation (a read-only directory, a full disk, a server error).

    The data already stored is untouched; the operation did not happen.
    """


class BackendUnavailableError(BackendError, ConnectionError):
    """A backend cannot be reached: connection refused, timed out, or the server is gone.

    A tiered backend skips a tier that raises this and goes on with the others. It is also a
    ``ConnectionError``, so a host app's existing ``except ConnectionError`` keeps working.
    """


class NotWritableError(BackendError):
    """A backend's storage cannot be written when it opens (a read-only file system, a
    directory this process may not write): the message names the place and the fix.

    Opened alone, such a backend refuses to start, and so does a chain whose first shared tier
    (its arbiter) it is. Any other chain starts with it: ``down_tier`` is the backend the chain
    places there, which serves what it can until its storage can be written, then opens (the
    diskcache backend: reads read-only, refuses writes, as when its directory turns read-only
    under a running process; docs/guarantees.md, part 2, "Crash safety on disk").
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        backend: str | None = None,
        down_tier: object = None,
    ) -> None:
        super().__init__(message, key=key, backend=backend)
        self.down_tier = down_tier


class SerializationError(SessionStoreError, ValueError):
    """A value cannot be turned into bytes (an unsupported type, a value not JSON can hold).

    Nothing was written.
    """


class CorruptPayloadError(SessionStoreError, ValueError):
    """Stored bytes cannot be decoded: random bytes, truncated data, a wrong shape, a foreign one.

    No code from the payload runs; the stored bytes are left as they are for inspection.
    """


class UnknownSchemaVersionError(SessionStoreError, ValueError):
    """A payload names a schema or version this code does not know, such as one from the future.

    Loading never guesses: upgrade the code, or register the migration.
    """


class ConflictError(SessionStoreError):
    """An atomic update lost the race too many times and gave up; nothing was written by it."""
