"""What a rewrite walk did: the counts, and the sessions it could not bring up to date."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RewriteFailure", "RewriteReport"]


@dataclass(frozen=True)
class RewriteFailure:
    """A session the walk could not bring up to date.

    Attributes:
        key: the session key.
        error: the name of the typed error (``"CorruptPayloadError"``, ``"ConflictError"``, ...).
        message: the error's message (session-store messages never hold secrets or contents).
    """

    key: str
    error: str
    message: str


@dataclass
class RewriteReport:
    """What :func:`rewrite_all` did.

    Attributes:
        rewritten: sessions written again in the current format.
        current: sessions already in the current format, left alone.
        vanished: sessions listed but deleted or expired before they could be read or rewritten.
        deleted: a chain's tombstones, met when one tier of a chain is migrated alone: sessions
            deleted through the chain (the marker that keeps them deleted), left alone.
        skipped: sessions finished by an earlier, interrupted run (known from the checkpoint).
        not_sessions: values left alone because nothing proves they are sessions: no
            session-store header, and not legacy JSON given a ``legacy_schema`` (a raw value
            some other code stored, such as ``b'{"documents": 3}'`` or a counter).
        failures: the sessions that could not be rewritten, with their typed errors.
        complete: the walk reached the end of the listing, and the listing is complete.
            ``False`` in a report still being filled, or when the backend's listing says it
            could not be proven complete (``listing.complete is False``: a Redis Cluster whose
            slots kept moving); the checkpoint is then kept, so running again finishes the job.
            (A backend error raises instead, and the checkpoint keeps what was done.)
    """

    rewritten: int = 0
    current: int = 0
    vanished: int = 0
    deleted: int = 0
    skipped: int = 0
    not_sessions: int = 0
    failures: list[RewriteFailure] = field(default_factory=list)
    complete: bool = False

    @property
    def failed(self) -> int:
        """How many sessions failed."""
        return len(self.failures)

    @property
    def examined(self) -> int:
        """Sessions this run looked at (not counting those skipped from the checkpoint)."""
        return (
            self.rewritten
            + self.current
            + self.vanished
            + self.deleted
            + self.failed
            + self.not_sessions
        )

    def summary(self) -> str:
        """One line for a human: the counts, and the failures by error type."""
        kinds: dict[str, int] = {}
        for failure in self.failures:
            kinds[failure.error] = kinds.get(failure.error, 0) + 1
        detail = ", ".join(f"{name}: {count}" for name, count in sorted(kinds.items()))
        return (
            f"rewritten {self.rewritten}, already current {self.current}, failed {self.failed}"
            + (f" ({detail})" if detail else "")
            + f", vanished {self.vanished}"
            + (
                f", deleted (a chain's tombstones, left alone) {self.deleted}"
                if self.deleted
                else ""
            )
            + f", not sessions (left alone) {self.not_sessions}"
            + f", skipped from checkpoint {self.skipped}"
            + ("" if self.complete else ", INCOMPLETE")
        )
