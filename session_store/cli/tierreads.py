"""Reading a store tier by tier, as the commands that inspect a chain do: nothing promoted,
nothing written, a chain's framing and tombstones never shown as data."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from session_store.backend import SessionBackend
from session_store.cli.common import note_degraded
from session_store.errors import BackendUnavailableError
from session_store.keys import batches
from session_store.stamps import own_ttl, session_bytes, version_of

__all__ = ["TierRead", "live_keys", "read_first", "read_tiers", "tiers_of"]


def tiers_of(backend: SessionBackend) -> list[SessionBackend]:
    """The tiers of a chain, fastest first; a plain backend is its only tier."""
    from session_store.tiered import TieredBackend

    return list(backend.tiers) if isinstance(backend, TieredBackend) else [backend]


def live_keys(backend: SessionBackend, keys: Iterable[str]) -> Iterator[str]:
    """``keys`` that hold a session: without a chain's tombstones (one tier of a chain, read
    alone, holds them: they are deleted sessions, not sessions) or an id a login rotated away
    (a chain's listing leaves both out with its ``sessions()``, from the reads it makes).

    Lazy, a batch of 500 keys (one ``get_many``) at a time, so that a caller that stops early
    (``stats --scan-limit``) reads no further.
    """
    from session_store.tiered import TieredBackend

    if isinstance(backend, TieredBackend):
        sessions = getattr(keys, "sessions", None)
        yield from keys if sessions is None else sessions()
        return
    for batch in batches(keys, _LIVE_BATCH):
        yield from _live_batch(backend, batch)


_LIVE_BATCH = 500


def _live_batch(backend: SessionBackend, batch: list[str]) -> Iterator[str]:
    """The keys of ``batch`` that hold a value: present, and not a chain's tombstone."""
    found = backend.get_many(batch)
    return (k for k in batch if k in found and session_bytes(found[k]) is not None)


@dataclass(frozen=True)
class TierRead:
    """One tier's answer for a key, read directly (no promotion, nothing written)."""

    index: int
    backend: str
    value: bytes | None = None
    ttl: float | None = None
    down: str | None = None  # why the tier could not answer
    version: bytes = b""  # the chain's version of the copy (b"": none); value is unframed
    deleted: bool = False  # the copy is a chain's tombstone
    own_ttl: float | None = None  # the TTL its frame records (session_store.ownttl), if any


def read_first(backend: SessionBackend, key: str) -> TierRead | None:
    """The answer holding the newest copy of ``key`` (by the chain's version; on a tie the
    fastest tier), without promoting anything; ``None`` if no tier holds it or it was deleted."""
    best: TierRead | None = None
    for read in read_tiers(backend, key):
        if (read.value is not None or read.deleted) and (
            best is None or read.version > best.version
        ):
            best = read
    return None if best is None or best.deleted else best


def read_tiers(backend: SessionBackend, key: str, *, stop: bool = False) -> list[TierRead]:
    """Ask every tier for ``key``, fastest first, without promoting anything.

    A tier that is down is reported as such when the backend is a chain; a plain backend that is
    down raises :class:`BackendUnavailableError`. ``stop``: no tier below the first that holds
    it is asked.
    """
    tiers = tiers_of(backend)
    reads: list[TierRead] = []
    for index, tier in enumerate(tiers):
        if stop and reads and reads[-1].value is not None:
            break
        try:
            found = tier.get_with_ttl(key)
        except BackendUnavailableError as exc:
            if len(tiers) == 1:
                raise
            reads.append(TierRead(index, tier.describe(), down=exc.message))
            note_degraded(tier.describe(), exc.message)
            continue
        if found is None:
            reads.append(TierRead(index, tier.describe()))
        else:
            value = session_bytes(found[0])  # the chain's framing never reaches the data
            reads.append(
                TierRead(
                    index,
                    tier.describe(),
                    value,
                    None if value is None else found[1],
                    version=version_of(found[0]),
                    deleted=value is None,
                    own_ttl=own_ttl(found[0]),
                )
            )
    if all(read.down for read in reads):
        raise BackendUnavailableError(
            "every tier is unavailable, cannot read", key=key, backend=backend.describe()
        )
    return reads
