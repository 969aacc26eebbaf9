"""Compare-and-set of the tiered chain: ``get_versioned`` and ``set_if``, decided by the arbiter.

* ``get_versioned`` reads the arbiter, and every durable tier whatever its breaker says; it
  brings the arbiter up to a newer durable copy first, and refuses (typed) while a durable tier
  does not answer;
* ``set_if`` wins on the arbiter, then places its copy in each lower tier by compare-and-set
  against what that tier holds (:meth:`TieredCas._place_below`); a copy there that went around
  the arbiter since the read is given back to the arbiter and ``set_if`` returns ``False``
  (:meth:`TieredCas._step_back`); a newer lower tombstone moves the value past it
  (:meth:`TieredCas._restamp`).
"""

from __future__ import annotations

import contextlib
from functools import partial

from session_store import stamps
from session_store.backend import SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.errors import BackendError, BackendUnavailableError
from session_store.keys import validate_key
from session_store.stamps import is_tombstone, unframe, version_of
from session_store.tiered import policy
from session_store.tiered.base import DOWN, _Token
from session_store.tiered.bulk import TieredBulk
from session_store.tiered.writes import write_if_newer
from session_store.ttl import normalize_ttl

__all__ = ["TieredCas"]


def _bring_up(
    tier: SessionBackend, key: str, data: bytes, read: Versioned | None, ttl: float | None
) -> bool:
    """Compare-and-set ``data`` into ``tier`` over what ``read`` found there."""
    return tier.set_if(key, data, None if read is None else read.token, ttl)


def _place(
    tier: SessionBackend, key: str, data: bytes, ttl: float | None, base: bytes, absent: bool
) -> bool | bytes:
    """Put ``data`` (won by a compare-and-set on the arbiter, based on a read of version
    ``base``) in ``tier`` by compare-and-set against what it holds: ``True`` if written,
    ``False`` if the tier keeps a newer tombstone over an "absent" read, or the tier's copy if
    it shows a write that went around the arbiter since that read (nothing written)."""
    for _ in range(16):
        read = tier.get_versioned(key)
        if read is not None:
            if policy.overtaken(read.value, data, base, absent):
                return read.value
            if version_of(read.value) >= version_of(data):
                return False
        if tier.set_if(key, data, None if read is None else read.token, ttl):
            return True
    return False  # pragma: no cover - 16 writers in a row changed it: each of them is newer


class TieredCas(TieredBulk):
    """:class:`~session_store.tiered.bulk.TieredBulk` with compare-and-set."""

    def get_versioned(self, key: str) -> Versioned | None:
        validate_key(key)
        arbiter = self.layout.arbiter
        for _ in range(8):
            read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            # every durable tier, whatever its breaker says: a copy only it holds decides
            lower, answered = self._collect(key, skip=arbiter, force=True)
            best = policy.newest(lower)
            if policy.unheard_durable(self.layout, answered, arbiter):
                # it may hold a write made around the arbiter (or the only copy): an update
                # built on the arbiter's copy alone could silently replace it
                self.counters.add("errors")
                raise BackendUnavailableError(
                    "a durable tier does not answer: it may hold a newer copy of the session, "
                    "cannot read it for an update",
                    key=key,
                    backend=self.describe(),
                )
            if policy.arbiter_behind(None if read is None else read.value, best):
                assert best is not None
                # The arbiter lost the key or holds an older copy: bring it up to the newest
                # durable copy (a compare-and-set against what it holds), then read again.
                ttl = policy.copy_ttl(best, self.tombstone_ttl)
                self._arbitrate(
                    partial(_bring_up, key=key, data=best.data, read=read, ttl=ttl),
                    "set_if",
                    key,
                )
                self.counters.add("repairs")
                continue
            break
        if best is not None:
            # a lower tier's tombstone may be newer than the clock of this process: the value
            # that replaces "absent" must be newer still (see set_if)
            stamps.clock.observe(best.version)
        if read is None:
            return None
        stamps.clock.observe(version_of(read.value))
        value = unframe(read.value)
        if value is None:
            return None
        self.counters.add("hits")
        return Versioned(value, _Token(read.token, version_of(read.value)))

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        if token is None:
            inner: VersionToken | None = None
            base = b""
        elif isinstance(token, _Token):
            inner, base = token.inner, token.base
        else:
            return False  # not a token of this chain
        start = self._clock()
        began = self.near.begin()
        data = stamps.frame(value, stamps.clock.now(), ttl)
        won = self._arbitrate(lambda t: t.set_if(key, data, inner, ttl), "set_if", key)
        if not won and inner is None:
            # "only if absent", and the arbiter holds a tombstone: that is absent. It may be a
            # delete that landed since the caller's read, with a version newer than this
            # process's clock gives (another host's clock, or a busier one): the value must be
            # newer than it, or the lower tiers keep the tombstone and it wins every later read.
            read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
            if read is not None and is_tombstone(read.value):
                dead = read.token
                base = version_of(read.value)
                stamps.clock.observe(base)
                data = stamps.with_version(data, stamps.clock.now())
                won = self._arbitrate(lambda t: t.set_if(key, data, dead, ttl), "set_if", key)
        if not won:
            self._drop_near(key)
            return False
        behind, overtaking = self._place_below(key, data, ttl, base, absent=inner is None)
        if overtaking is not None and self._step_back(key, data, overtaking):
            self._drop_near(key)
            return False
        if behind:
            data = self._restamp(key, data, behind, ttl)
        self.nearcache.after_write(key, data, value, ttl, start, began)
        self.counters.add("writes")
        return True

    def _place_below(
        self, key: str, data: bytes, ttl: float | None, base: bytes, *, absent: bool
    ) -> tuple[list[int], bytes | None]:
        """Copy what a compare-and-set stored on the arbiter to the other shared tiers, lowest
        first, each by a compare-and-set against what it holds, unless that shows a write that
        went around the arbiter after the read the compare-and-set is based on
        (:func:`~session_store.tiered.policy.overtaken`).

        Returns the tiers that kept a newer tombstone (see :meth:`_restamp`), and the copy that
        overtook the read, if one did (then nothing more is written).
        """
        behind: list[int] = []
        for index in reversed(self.layout.shared):
            if index == self.layout.arbiter:
                continue
            try:
                placed = self._call(
                    index,
                    partial(_place, key=key, data=data, ttl=ttl, base=base, absent=absent),
                    "write",
                )
            except BackendError as exc:
                self.breakers.refused(index, key, exc, data)
                continue
            if placed is DOWN:
                self.breakers.note_missed(index, key, data)
            elif isinstance(placed, bytes):
                return behind, placed
            elif placed is False:
                behind.append(index)
        return behind, None

    def _step_back(self, key: str, data: bytes, newer: bytes) -> bool:
        """A compare-and-set that won on the arbiter found ``newer``, written after the read it
        is based on, in a lower tier. If the arbiter still holds ``data``, ``newer`` went
        around it (its process could not reach it): the arbiter gets ``newer`` back, by a
        compare-and-set against ``data``, and ``True`` says the compare-and-set is undone (the
        caller's retry reads ``newer``). Otherwise a later write went through the arbiter (one
        that read ``data``, or a save): ``data`` stood before it, ``False``."""
        read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
        if read is None or version_of(read.value) != version_of(data):
            return False  # a later write replaced it on the arbiter: ours came first
        token = read.token
        ttl = self.tombstone_ttl if is_tombstone(newer) else stamps.own_ttl(newer)
        if self._arbitrate(lambda t: t.set_if(key, newer, token, ttl), "set_if", key):
            self.counters.add("repairs")
            return True
        return False  # pragma: no cover - a later write replaced it meanwhile: ours came first

    def _restamp(self, key: str, data: bytes, behind: list[int], ttl: float | None) -> bytes:
        """A compare-and-set over "absent" won on the arbiter, but a lower tier holds a newer
        tombstone (a delete from a clock ahead of this one, kept after the arbiter lost it):
        move the value past it, by a compare-and-set on the arbiter (so a later write is never
        overwritten), then copy it down again. Returns the framed bytes the chain now holds."""
        ahead = self._newer_below(key, data, behind)
        if ahead is None:
            return data
        stamps.clock.observe(ahead)
        read = self._arbitrate(lambda t: t.get_versioned(key), "get_versioned", key)
        if read is None or version_of(read.value) != version_of(data):
            return data  # a later write replaced it: that one decides
        newer = stamps.with_version(data, stamps.clock.now())
        token = read.token
        if self._arbitrate(lambda t: t.set_if(key, newer, token, ttl), "set_if", key):
            self.counters.add("repairs")
            for index in reversed(self.layout.shared):
                if index != self.layout.arbiter:
                    with contextlib.suppress(BackendError):
                        self._call(
                            index, partial(write_if_newer, key=key, data=newer, ttl=ttl), "write"
                        )
            return newer
        return data  # pragma: no cover - a later write won the race: it decides

    def _newer_below(self, key: str, data: bytes, behind: list[int]) -> bytes | None:
        """The newest version among the ``behind`` tiers if it is newer than ``data``'s and the
        arbiter still holds ``data``'s version (no later write exists); else ``None``."""
        version = version_of(data)
        below: list[bytes] = []
        for index in behind:
            found = self._call(index, lambda t: t.get_with_ttl(key), "get_with_ttl")
            if found is not DOWN and found is not None:
                below.append(found[0])
        newest = policy.newer_below(version, below)
        if newest is None:
            return None
        held = self._call(self.layout.arbiter, lambda t: t.get_with_ttl(key), "get_with_ttl")
        if held is DOWN or held is None or version_of(held[0]) != version:
            return None
        return newest
