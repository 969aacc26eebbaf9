"""The tiered backend: several backends chained fastest first, itself a backend.

* **Reads** go top-down; a hit in a lower tier is *promoted* into the tiers above it with the
  TTL it has left, so the next read is served from the top.
* **Writes and deletes** go to every tier, lowest (most durable) first, so a value is never in a
  fast tier without being in the durable one below it.
* **scan** is the union of every tier's keys, without duplicates.
* **Compare-and-set** is arbitrated by the first tier whose scope is wider than ``process`` (the
  first tier other processes also see); after it succeeds the other tiers are written. When the
  arbiter is down, the next shared tier arbitrates; when no tier is shared, the lowest does.
* **Tier outages**: a tier that raises :class:`BackendUnavailableError` is skipped and the call
  succeeds on the others. The transition is logged once (down, and up again) and every skipped
  call counts as a ``fallback``. A down tier is not called again until ``retry_after`` seconds
  have passed (a simple circuit breaker), so a dead server does not cost a timeout per call.
* **What a down tier missed** is recorded: the keys written or deleted while it was down. When it
  comes back, those keys are deleted from it before it serves anything again, so it can never
  serve a copy older than the write it missed (DESIGN.md, "Tiers"). If more than
  ``max_missed`` keys pile up, the tier is fenced: it keeps receiving writes but never serves a
  read again in this process, because its older copies can no longer be found and removed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from session_store import forksafe
from session_store.backend import Scope, SessionBackend, Versioned, VersionToken, ensure_bytes
from session_store.counters import Counters
from session_store.errors import BackendError, BackendUnavailableError, ConfigurationError
from session_store.keys import validate_key, validate_scan_prefix
from session_store.ttl import NO_EXPIRY, normalize_ttl

__all__ = ["TierState", "TieredBackend"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _get_many(tier: SessionBackend, keys: list[str]) -> dict[str, bytes]:
    return tier.get_many(keys)


class TierState:
    """Health of one tier as the tiered backend sees it."""

    __slots__ = ("down_since", "fenced", "missed", "retry_at")

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.retry_at = 0.0
        self.missed: set[str] = set()
        self.fenced = False

    @property
    def down(self) -> bool:
        """Whether the last call to this tier found it unavailable."""
        return self.down_since is not None


class TieredBackend(SessionBackend):
    """Backends chained fastest first (for example memory, then Redis, then disk).

    Args:
        tiers: at least one backend, fastest first. The tiered backend owns them: ``close``
            closes every tier.
        retry_after: seconds a tier that went down is skipped before it is tried again.
        max_missed: most keys remembered per down tier before it is fenced (see module doc).
        clock: monotonic clock in seconds (tests may pass their own).
    """

    def __init__(
        self,
        tiers: Sequence[SessionBackend],
        *,
        retry_after: float = 5.0,
        max_missed: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        tiers = list(tiers)
        if not tiers:
            raise ConfigurationError("a tiered backend needs at least one tier")
        if not all(isinstance(tier, SessionBackend) for tier in tiers):
            raise ConfigurationError("every tier must be a SessionBackend")
        self.tiers: tuple[SessionBackend, ...] = tuple(tiers)
        self.retry_after = normalize_ttl(retry_after, what="retry_after") or 0.0
        self.max_missed = max_missed
        self._clock = clock
        self._states = tuple(TierState() for _ in self.tiers)
        self._lock = threading.Lock()
        self.counters = Counters()
        forksafe.register(self)
        shared = [i for i, tier in enumerate(self.tiers) if tier.scope is not Scope.PROCESS]
        self._arbiters = shared or [len(self.tiers) - 1]

    def _reset_locks(self) -> None:
        """In a forked child: a new, released lock (see :mod:`session_store.forksafe`)."""
        self._lock = threading.Lock()

    @property
    def scope(self) -> Scope:  # type: ignore[override]
        """The widest scope of its tiers: who else can see data written through it."""
        order = (Scope.PROCESS, Scope.HOST, Scope.NETWORK)
        return max((tier.scope for tier in self.tiers), key=order.index)

    def describe(self) -> str:
        return " | ".join(tier.describe() for tier in self.tiers)

    def tier_states(self) -> list[dict[str, Any]]:
        """Per tier: its description, whether it is down or fenced, keys it missed, counters."""
        return [
            {
                "backend": tier.describe(),
                "down": state.down,
                "fenced": state.fenced,
                "missed": len(state.missed),
                "counters": tier.counters.as_dict(),
            }
            for tier, state in zip(self.tiers, self._states, strict=True)
        ]

    # -- health --------------------------------------------------------------------------------
    def _usable(self, index: int) -> bool:
        """Whether tier ``index`` may be called now; heals it first if it is back."""
        state = self._states[index]
        if state.down_since is None:
            return True
        if self._clock() < state.retry_at:
            return False
        return self._heal(index)

    def _heal(self, index: int) -> bool:
        """Try a tier that was down: drop the keys it missed, then mark it up."""
        state = self._states[index]
        with self._lock:
            missed = list(state.missed)
        try:
            if missed:
                self.tiers[index].delete_many(missed)
        except BackendUnavailableError:
            with self._lock:
                state.retry_at = self._clock() + self.retry_after
            return False
        with self._lock:
            state.missed.difference_update(missed)
            still_missed = bool(state.missed)
            if not still_missed:
                down_for = self._clock() - (state.down_since or self._clock())
                state.down_since = None
        if still_missed:  # more writes were missed while healing: go round again next call
            return False
        log.warning(
            "tier %d (%s) is back after %.1f s; %d missed keys invalidated",
            index,
            self.tiers[index].describe(),
            down_for,
            len(missed),
        )
        return True

    def _mark_down(self, index: int, exc: BackendError) -> None:
        state = self._states[index]
        with self._lock:
            now = self._clock()
            state.retry_at = now + self.retry_after
            first = state.down_since is None
            if first:
                state.down_since = now
        if first:
            log.warning(
                "tier %d (%s) is down, going on without it: %s",
                index,
                self.tiers[index].describe(),
                exc.message,
            )

    def _missed(self, index: int, keys: Iterable[str]) -> None:
        state = self._states[index]
        with self._lock:
            if state.fenced:
                return
            state.missed.update(keys)
            if len(state.missed) > self.max_missed:
                state.fenced = True
                state.missed.clear()
                log.error(
                    "tier %d (%s) missed more than %d writes while down; it will no longer "
                    "serve reads in this process",
                    index,
                    self.tiers[index].describe(),
                    self.max_missed,
                )

    def _call(
        self,
        index: int,
        fn: Callable[[SessionBackend], T],
        keys: Iterable[str],
        op: str = "call",
    ) -> tuple[bool, T | None]:
        """Run ``fn`` on tier ``index``; ``(False, None)`` if the tier is or went down.

        The time it took goes into the tier's latency histogram under ``op``.
        """
        if not self._usable(index):
            self.counters.add("fallbacks")
            self._missed(index, keys)
            return False, None
        tier = self.tiers[index]
        start = time.perf_counter()
        try:
            result = fn(tier)
        except BackendUnavailableError as exc:
            tier.counters.observe("unavailable", time.perf_counter() - start)
            self._mark_down(index, exc)
            self.counters.add("fallbacks")
            self._missed(index, keys)
            return False, None
        tier.counters.observe(op, time.perf_counter() - start)
        return True, result

    def _all_down(self, what: str, key: str | None = None) -> BackendUnavailableError:
        self.counters.add("errors")
        return BackendUnavailableError(
            f"every tier is unavailable, cannot {what}", key=key, backend=self.describe()
        )

    # -- reads ---------------------------------------------------------------------------------
    def _read_tiers(self) -> Iterator[int]:
        """Indexes of the tiers a read may use, top first (fenced tiers never serve reads)."""
        return (i for i, state in enumerate(self._states) if not state.fenced)

    def get_with_ttl(self, key: str) -> tuple[bytes, float] | None:
        validate_key(key)
        reached = False
        for index in self._read_tiers():
            ok, found = self._call(index, lambda t: t.get_with_ttl(key), (), "get_with_ttl")
            if not ok:
                continue
            reached = True
            if found is not None:
                self.counters.add("hits")
                self._promote(index, key, *found)
                return found
        if not reached:
            raise self._all_down("read", key)
        self.counters.add("misses")
        return None

    def get(self, key: str) -> bytes | None:
        found = self.get_with_ttl(key)
        return None if found is None else found[0]

    def _promote(self, hit_index: int, key: str, value: bytes, left: float) -> None:
        """Copy a value found in tier ``hit_index`` into the tiers above it.

        The copy is written only where the key is absent (``set_if`` with no token): a writer that
        stored a newer value in an upper tier after our read must win over our older copy.
        """
        if hit_index == 0:
            return
        ttl = None if left == NO_EXPIRY else max(left, 0.001)
        for index in range(hit_index - 1, -1, -1):
            ok, stored = self._call(
                index, lambda t: t.set_if(key, value, None, ttl), (key,), "set_if"
            )
            if ok and stored:
                self.counters.add("promotions")

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))
        if not wanted:
            return {}
        found: dict[str, bytes] = {}
        reached = False
        for index in self._read_tiers():
            ok, got = self._call(index, partial(_get_many, keys=wanted), (), "get_many")
            if not ok or got is None:
                continue
            reached = True
            for key, value in got.items():
                found[key] = value
                if index > 0:  # promotion needs the TTL left: one more read, only on a lower hit
                    left = self.tiers[index].ttl(key)
                    if left is not None:
                        self._promote(index, key, value, left)
            wanted = [key for key in wanted if key not in got]
            if not wanted:
                break
        if not reached:
            raise self._all_down("read")
        self.counters.add("hits", len(found))
        self.counters.add("misses", len(wanted))
        return found

    def ttl(self, key: str) -> float | None:
        validate_key(key)
        reached = False
        for index in self._read_tiers():
            ok, left = self._call(index, lambda t: t.ttl(key), (), "ttl")
            if ok:
                reached = True
                if left is not None:
                    return left
        if not reached:
            raise self._all_down("read a TTL", key)
        return None

    def scan(self, prefix: str = "") -> Iterator[str]:
        validate_scan_prefix(prefix)
        seen: dict[str, None] = {}
        reached = False
        for index in self._read_tiers():
            ok, keys = self._call(index, lambda t: list(t.scan(prefix)), (), "scan")
            if ok and keys is not None:
                reached = True
                seen.update(dict.fromkeys(keys))
        if not reached:
            raise self._all_down("scan")
        return iter(seen)

    # -- writes --------------------------------------------------------------------------------
    def _write_all(
        self, what: str, keys: list[str], fn: Callable[[SessionBackend], T], key: str | None = None
    ) -> list[T]:
        """Run ``fn`` on every tier, lowest first; the results of the tiers that answered.

        A tier that fails after a lower tier already took the write is treated as down for these
        keys (recorded as missed, so it is cleaned before it serves them again); a failure before
        any tier took the write is raised, and nothing was written.
        """
        results: list[T] = []
        for index in range(len(self.tiers) - 1, -1, -1):
            try:
                ok, result = self._call(index, fn, keys, what)
            except BackendError as exc:
                if not results:
                    self.counters.add("errors")
                    raise
                log.error(
                    "tier %d (%s) failed a %s that lower tiers took; fencing the keys: %s",
                    index,
                    self.tiers[index].describe(),
                    what,
                    exc.message,
                )
                self._mark_down(index, exc)
                self._missed(index, keys)
                continue
            if ok:
                results.append(result)  # type: ignore[arg-type]
        if not results:
            raise self._all_down(what, key)
        return results

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        self._write_all("write", [key], lambda t: t.set(key, value, ttl), key)
        self.counters.add("writes")

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        checked = {validate_key(k): ensure_bytes(v, key=k) for k, v in items.items()}
        ttl = normalize_ttl(ttl)
        if not checked:
            return
        self._write_all("write", list(checked), lambda t: t.set_many(checked, ttl))
        self.counters.add("writes", len(checked))

    def delete(self, key: str) -> bool:
        validate_key(key)
        results = self._write_all("delete", [key], lambda t: t.delete(key), key)
        self.counters.add("deletes")
        return any(results)

    def delete_many(self, keys: Iterable[str]) -> int:
        wanted = list(dict.fromkeys(validate_key(key) for key in keys))
        if not wanted:
            return 0
        # Each tier says how many it held; the union is what existed. Ask the lowest tier per key
        # would cost a read; the largest count is exact whenever lower tiers hold the upper ones.
        results = self._write_all("delete", wanted, lambda t: t.delete_many(wanted))
        self.counters.add("deletes", len(wanted))
        return max(results)

    def touch(self, key: str, ttl: float | None = None) -> bool:
        validate_key(key)
        ttl = normalize_ttl(ttl)
        results = self._write_all("touch", [key], lambda t: t.touch(key, ttl), key)
        return any(results)

    # -- compare-and-set -----------------------------------------------------------------------
    def _arbiter(self) -> int:
        for index in self._arbiters:
            if not self._states[index].fenced and self._usable(index):
                return index
        raise self._all_down("arbitrate a compare-and-set")

    def get_versioned(self, key: str) -> Versioned | None:
        validate_key(key)
        while True:
            index = self._arbiter()
            ok, read = self._call(index, lambda t: t.get_versioned(key), (), "get_versioned")
            if ok:
                if read is None:
                    return None
                self.counters.add("hits")
                return Versioned(read.value, (index, read.token))

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        validate_key(key)
        value = ensure_bytes(value, key=key)
        ttl = normalize_ttl(ttl)
        index = self._arbiter()
        if token is None:
            inner: VersionToken | None = None
        elif isinstance(token, tuple) and len(token) == 2 and token[0] == index:
            inner = token[1]
        else:
            return False  # read through another arbiter (it went down since): start over
        ok, won = self._call(index, lambda t: t.set_if(key, value, inner, ttl), (), "set_if")
        if not ok:
            return False  # the arbiter went down mid-way: the caller retries on the next one
        if not won:
            # Another process wrote first; our upper tiers may hold the old copy.
            for upper in range(index):
                self._call(upper, lambda t: t.delete(key), (key,), "delete")
            return False
        for other in range(len(self.tiers) - 1, -1, -1):
            if other != index:
                self._call(other, lambda t: t.set(key, value, ttl), (key,), "set")
        self.counters.add("writes")
        return True

    def close(self) -> None:
        for tier in self.tiers:
            try:
                tier.close()
            except Exception:  # close every tier even if one fails
                log.exception("closing tier %s failed", tier.describe())

    @classmethod
    def from_backends(cls, tiers: Sequence[SessionBackend], **options: Any) -> TieredBackend:
        """Same as the constructor; reads well beside :func:`open_backend`."""
        return cls(tiers, **options)
