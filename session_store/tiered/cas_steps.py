"""The chain's compare-and-set sequences (``get_versioned``, ``set_if``), written once for the
sync and the async chain (see :mod:`.steps` for how a sequence is run).

* :func:`get_versioned` reads the arbiter, and every durable tier whatever its breaker says; it
  brings the arbiter up to a newer durable copy first, and refuses (typed) while a durable tier
  does not answer;
* :func:`set_if` wins on the arbiter, then places its copy in each lower tier by
  compare-and-set against what that tier holds (:func:`place_below`); a copy there that went
  around the arbiter since the read is given back to the arbiter and ``set_if`` returns
  ``False`` (:func:`step_back`); a newer lower tombstone moves the value past it
  (:func:`restamp`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

from session_store import stamps
from session_store.backend import Versioned, VersionToken
from session_store.errors import BackendError, BackendUnavailableError
from session_store.stamps import HEADER_SIZE, is_tombstone, unframe, version_of
from session_store.tiered import policy
from session_store.tiered.steps import DOWN, Chain, OnArbiter, OnTier, Steps, collect, newer_below

__all__ = ["ChainToken", "TierSteps", "get_versioned", "place", "set_if"]


class ChainToken(NamedTuple):
    """A version token of the chain: the arbiter's own token, the version that was read, and
    the frame header of the copy read (:attr:`own_ttl`)."""

    inner: VersionToken
    base: bytes
    head: bytes = b""

    @property
    def own_ttl(self) -> float | None:
        """The TTL the copy read records as its own (``None``: none recorded): what a rewrite
        of it keeps (:meth:`~session_store.tiered.TieredBackend.set_if_with_own_ttl`)."""
        return stamps.own_ttl(self.head)


#: A sequence of calls on one tier: ``(method name, args)``, each answered by its result.
TierSteps = Generator[tuple[str, tuple[Any, ...]], Any, bool | bytes]


def place(key: str, data: bytes, ttl: float | None, base: bytes, absent: bool) -> TierSteps:
    """Put ``data`` (won by a compare-and-set on the arbiter, based on a read of version
    ``base``) in one tier by compare-and-set against what it holds: ``True`` if written,
    ``False`` if the tier keeps a newer tombstone over an "absent" read, or the tier's copy if
    it shows a write that went around the arbiter since that read (nothing written)."""
    for _ in range(16):
        read = yield "get_versioned", (key,)
        if read is not None:
            if policy.overtaken(read.value, data, base, absent):
                return bytes(read.value)
            if version_of(read.value) >= version_of(data):
                return False
        if (yield "set_if", (key, data, None if read is None else read.token, ttl)):
            return True
    return False  # pragma: no cover - 16 writers in a row changed it: each of them is newer


def get_versioned(chain: Chain, key: str) -> Steps[Versioned | None]:
    """``get_versioned`` of a checked key, decided by the arbiter."""
    arbiter = chain.layout.arbiter
    for _ in range(8):
        read = yield OnArbiter("get_versioned", (key,), "get_versioned", key)
        # every durable tier, whatever its breaker says: a copy only it holds decides
        lower, answered = yield from collect(chain, key, skip=arbiter, force=True)
        best = policy.newest(lower)
        if policy.unheard_durable(chain.layout, answered, arbiter):
            # it may hold a write made around the arbiter (or the only copy): an update
            # built on the arbiter's copy alone could silently replace it
            chain.counters.add("errors")
            raise BackendUnavailableError(
                "a durable tier does not answer: it may hold a newer copy of the session, "
                "cannot read it for an update",
                key=key,
                backend=chain.describe(),
            )
        if policy.arbiter_behind(None if read is None else read.value, best):
            assert best is not None
            # The arbiter lost the key or holds an older copy: bring it up to the newest
            # durable copy (a compare-and-set against what it holds), then read again.
            ttl = policy.copy_ttl(best, chain.tombstone_ttl)
            token = None if read is None else read.token
            yield OnArbiter("set_if", (key, best.data, token, ttl), "set_if", key)
            chain.counters.add("repairs")
            continue
        break
    if best is not None:
        # a lower tier's tombstone may be newer than the clock of this process: the value
        # that replaces "absent" must be newer still (see set_if)
        stamps.clock.follow(key, best.version)  # refused before anything is written after it
    if read is None:
        return None
    stamps.clock.follow(key, version_of(read.value))
    value = unframe(read.value)
    if value is None:
        return None
    chain.counters.add("hits")
    head = read.value[:HEADER_SIZE]  # (a slice: own_ttl is parsed only when asked)
    return Versioned(value, ChainToken(read.token, version_of(read.value), head))


def set_if(
    chain: Chain,
    key: str,
    value: bytes,
    token: VersionToken | None,
    ttl: float | None,
    own_ttl: float | None,
) -> Steps[bool]:
    """``set_if`` of checked arguments; ``False`` at once for a token not of this chain. The
    copies expire after ``ttl``; the frame records ``own_ttl`` (``ttl`` for a plain
    ``set_if``)."""
    inner: VersionToken | None = None
    base = b""
    if isinstance(token, ChainToken):
        inner, base = token.inner, token.base
    elif token is not None:
        return False
    start = chain._clock()
    began = chain.near.begin()
    data = stamps.frame(value, stamps.clock.now(), own_ttl)
    won = yield OnArbiter("set_if", (key, data, inner, ttl), "set_if", key)
    if not won and inner is None:
        # "only if absent", and the arbiter holds a tombstone: that is absent. It may be a
        # delete that landed since the caller's read, with a version newer than this
        # process's clock gives (another host's clock, or a busier one): the value must be
        # newer than it, or the lower tiers keep the tombstone and it wins every later read.
        read = yield OnArbiter("get_versioned", (key,), "get_versioned", key)
        if read is not None and is_tombstone(read.value):
            base = version_of(read.value)
            stamps.clock.follow(key, base)
            data = stamps.with_version(data, stamps.clock.now())
            won = yield OnArbiter("set_if", (key, data, read.token, ttl), "set_if", key)
    if not won:
        chain.nearcache.drop(key)
        return False
    behind, overtaking = yield from place_below(chain, key, data, ttl, base, absent=inner is None)
    if overtaking is not None and (yield from step_back(chain, key, data, overtaking, ttl)):
        chain.nearcache.drop(key)
        return False
    if behind:
        data = yield from restamp(chain, key, data, behind, ttl)
    chain.nearcache.after_write(key, data, value, ttl, start, began)
    chain.counters.add("writes")
    return True


def place_below(
    chain: Chain, key: str, data: bytes, ttl: float | None, base: bytes, *, absent: bool
) -> Steps[tuple[list[int], bytes | None]]:
    """Copy what a compare-and-set stored on the arbiter to the other shared tiers, lowest
    first, each by a compare-and-set against what it holds (:func:`place`), unless that shows a
    write that went around the arbiter after the read the compare-and-set is based on
    (:func:`~session_store.tiered.policy.overtaken`).

    Returns the tiers that kept a newer tombstone (see :func:`restamp`), and the copy that
    overtook the read, if one did (then nothing more is written).
    """
    behind: list[int] = []
    for index in reversed(chain.layout.shared):
        if index == chain.layout.arbiter:
            continue
        try:
            placed = yield OnTier(index, "place", (key, data, ttl, base, absent), "write")
        except BackendError as exc:
            chain.breakers.refused(index, key, exc, data)
            continue
        if placed is DOWN:
            chain.breakers.note_missed(index, key, data)
        elif isinstance(placed, bytes):
            return behind, placed
        elif placed is False:
            behind.append(index)
    return behind, None


def step_back(chain: Chain, key: str, data: bytes, newer: bytes, ttl: float | None) -> Steps[bool]:
    """A compare-and-set that won on the arbiter found ``newer``, written after the read it is
    based on, in a lower tier. If the arbiter still holds ``data``, ``newer`` went around it
    (its process could not reach it): the arbiter gets ``newer`` back, by a compare-and-set
    against ``data``, and ``True`` says the compare-and-set is undone (the caller's retry reads
    ``newer``). Otherwise a later write went through the arbiter (one that read ``data``, or a
    save): ``data`` stood before it, ``False``.

    The repaired copy expires after the TTL ``newer`` records, or, when it records none (a
    copy or migrate of a session saved with its store's TTL), after ``ttl``, the undone
    write's: never "no expiry" by default (test_step_back_expiry)."""
    read = yield OnArbiter("get_versioned", (key,), "get_versioned", key)
    if read is None or version_of(read.value) != version_of(data):
        return False  # a later write replaced it on the arbiter: ours came first
    own = stamps.own_ttl(newer)
    keep = chain.tombstone_ttl if is_tombstone(newer) else ttl if own is None else own
    if (yield OnArbiter("set_if", (key, newer, read.token, keep), "set_if", key)):
        chain.counters.add("repairs")
        return True
    return False  # pragma: no cover - a later write replaced it meanwhile: ours came first


def restamp(
    chain: Chain, key: str, data: bytes, behind: list[int], ttl: float | None
) -> Steps[bytes]:
    """A compare-and-set over "absent" won on the arbiter, but a lower tier holds a newer
    tombstone (a delete from a clock ahead of this one, kept after the arbiter lost it): move
    the value past it, by a compare-and-set on the arbiter (so a later write is never
    overwritten), then copy it down again. Returns the framed bytes the chain now holds."""
    ahead = yield from newer_below(chain, key, data, behind)
    if ahead is None:
        return data
    stamps.clock.follow(key, ahead)
    read = yield OnArbiter("get_versioned", (key,), "get_versioned", key)
    if read is None or version_of(read.value) != version_of(data):
        return data  # a later write replaced it: that one decides
    newer = stamps.with_version(data, stamps.clock.now())
    if (yield OnArbiter("set_if", (key, newer, read.token, ttl), "set_if", key)):
        chain.counters.add("repairs")
        for index in reversed(chain.layout.shared):
            if index != chain.layout.arbiter:
                try:
                    yield OnTier(index, "write_if_newer", (key, newer, ttl), "write")
                except BackendError:
                    continue
        return newer
    return data  # pragma: no cover - a later write won the race: it decides
