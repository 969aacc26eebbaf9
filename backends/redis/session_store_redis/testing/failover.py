"""What the failover tests of every topology share: client options that notice a dead node
fast, fresh keys on one cluster node, the clock of what resumed after a kill, the checks that
no acknowledged write was lost, and the record (:class:`FailoverLog`) a failing test prints:
what was written, acknowledged, refused and lost, and the cluster's state."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from session_store.errors import BackendError
from session_store.registry import open_backend

if TYPE_CHECKING:
    from session_store_redis.testing.cluster import RedisClusterServers

__all__ = [
    "CLUSTER_KINDS",
    "FAILOVER_OPTIONS",
    "HANG_S",
    "PAUSE_BOUND_S",
    "FailoverLog",
    "Resumed",
    "assert_kept",
    "keys_on",
    "write_again",
]

T = TypeVar("T")

#: URL parameters (appended to a URL with a query) of backends that live through a failover:
#: short timeouts, one retry.
FAILOVER_OPTIONS = "&socket_timeout=1&socket_connect_timeout=0.5&retries=1"

#: Failure detection, agreement, election and promotion, on a loaded 2-core machine.
PAUSE_BOUND_S = 15.0

#: Seconds after which a step that only waits for the machine (a write before the kill that a
#: replica must acknowledge, a write once the killed node is back) counts as hung. Only a bound
#: on the wait: a refusal meanwhile is the documented answer, recorded, and the step is tried
#: again with a fresh key.
HANG_S = 30.0

#: What must resume after a cluster primary is killed: the operations on its slots and elsewhere.
CLUSTER_KINDS = (
    "write on the dead primary's slots",
    "read on the dead primary's slots",
    "acknowledged write elsewhere",
    "read elsewhere",
)


def keys_on(backend: Any, port: int, *, owned: bool) -> Iterator[str]:
    """Fresh session keys whose slot the node on ``port`` owns (or does not) in the slot map of
    ``backend``'s cluster client (sync or asyncio) as it is *now*, when this is called.

    The slots are fixed here, not looked up per key: after a failover the client's map gives
    the dead primary's slots to its promoted replica, and a per-key lookup then found no key
    "on the dead primary" at all and looped for ever (a hung CI run: the write after the
    restart never came), while "elsewhere" started yielding keys on the promoted node."""
    client = backend.client
    slots = {
        slot
        for slot, nodes in client.nodes_manager.slots_cache.items()
        if nodes and nodes[0].port == port
    }
    assert slots, f"the client's slot map gives no slot to the node on port {port}"

    def fresh() -> Iterator[str]:
        for n in itertools.count():
            key = f"key-{n}"
            if (client.keyslot(backend.namespace.encode(key)) in slots) == owned:
                yield key

    return fresh()


class Resumed:
    """Seconds from a kill (when this is made) to the first success of each kind of
    operation."""

    def __init__(self, *kinds: str, timeout: float = 30.0) -> None:
        self.killed = time.monotonic()
        self.kinds = kinds
        self.deadline = self.killed + timeout
        self.after: dict[str, float] = {}

    def ok(self, what: str) -> None:
        """An operation of kind ``what`` succeeded now."""
        assert what in self.kinds, what
        self.after.setdefault(what, time.monotonic() - self.killed)

    def waiting(self) -> bool:
        """Whether a kind has not resumed yet and there is time left."""
        return len(self.after) < len(self.kinds) and time.monotonic() < self.deadline

    def check(self, what: str) -> None:
        """Print the pauses (``pytest -s``); every kind resumed, each within the bound."""
        pause = {kind: round(seconds, 2) for kind, seconds in self.after.items()}
        print(f"\n{what}, seconds after SIGKILL until the first success: {pause}")
        assert len(self.after) == len(self.kinds), f"did not resume in time: {pause}"
        assert max(self.after.values()) < PAUSE_BOUND_S, pause


def write_again(
    acked: Any,
    keys: Iterator[str],
    expected: dict[str, bytes],
    since: float,
    log: FailoverLog | None = None,
) -> None:
    """A write that replicas must acknowledge (which the killed node, back as a replica, makes
    possible again), recorded in ``expected``; prints how long after ``since``. A refusal
    (``WAIT`` saw no replica within ``wait_timeout``: a replica still syncing, or starved on a
    loaded machine) is the documented answer, not a lost write: it is recorded in ``log`` and
    the write is tried again with a fresh key, for up to :data:`HANG_S`."""
    log = log if log is not None else FailoverLog()
    log.until_ok("acknowledged write after the restart", keys, acked.set, expected)
    print(f"acknowledged writes again {time.monotonic() - since:.2f} s after the restart")


def assert_kept(
    url: str, expected: dict[str, bytes], *, only: bool = False, maybe: Iterable[str] = ()
) -> None:
    """Through a fresh backend on ``url``: every acknowledged write is there, and listed (and,
    if ``only``, no other key is listed but those of ``maybe``: refused writes that may have
    landed, :attr:`FailoverLog.maybe`)."""
    with open_backend(url) as fresh:
        assert fresh.get_many(expected) == expected  # no acknowledged write was lost
        listed = set(fresh.scan())
    assert listed >= set(expected)
    if only:
        assert listed - set(expected) <= set(maybe), sorted(listed - set(expected))[:20]


class FailoverLog:
    """What a failover test did and saw, for its failure to explain itself: time-stamped events
    (seconds since this log was made), every write by kind (acknowledged, refused and why),
    and, when :meth:`explained` sees the test fail, the acknowledged writes missing or changed
    through a fresh backend and the cluster's state (each node's role, link and view, the end
    of its log). Printed, so pytest shows it with the failure (and CI keeps it)."""

    def __init__(self) -> None:
        self.began = time.monotonic()
        self.events: list[str] = []
        self.acked: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.first_ok: dict[str, float] = {}
        self.errors: dict[str, list[str]] = {}
        #: keys of refused writes that may have landed all the same (a primary stores a write
        #: before ``WAIT`` finds no replica for it): neither expected nor sure to be absent
        self.maybe: set[str] = set()

    def now(self) -> float:
        """Seconds since this log began."""
        return time.monotonic() - self.began

    def note(self, event: str) -> None:
        """Record ``event`` now."""
        self.events.append(f"{self.now():7.3f} s  {event}")

    def ok(self, kind: str) -> None:
        """An operation of ``kind`` succeeded now."""
        self.acked[kind] += 1
        self.first_ok.setdefault(kind, self.now())

    def refused_with(self, kind: str, error: BaseException) -> None:
        """An operation of ``kind`` raised ``error`` now (the first and the last few are kept)."""
        self.refused[kind] += 1
        kept = self.errors.setdefault(kind, [])
        line = f"{self.now():.3f} s {type(error).__name__}: {error}"[:300]
        if len(kept) < 3:
            kept.append(line)
        else:
            kept[-1] = line  # the first two and the latest

    def until_ok(
        self,
        kind: str,
        keys: Iterator[str],
        write: Callable[[str, bytes], object],
        expected: dict[str, bytes],
        timeout: float = HANG_S,
    ) -> str:
        """Write fresh keys from ``keys`` until one is acknowledged (recorded in ``expected``),
        recording each refusal; the key. Fails after ``timeout`` seconds of refusals."""
        deadline = time.monotonic() + timeout
        while True:
            key = next(keys)
            try:
                write(key, key.encode())
            except BackendError as exc:
                self.refused_with(kind, exc)
                self.maybe.add(key)
            else:
                expected[key] = key.encode()
                self.ok(kind)
                return key
            assert time.monotonic() < deadline, f"{kind}: refused for {timeout} s"
            time.sleep(0.05)

    def writes(self) -> str:
        """Per kind: acknowledged, refused, the first success, kept error messages."""
        lines = []
        for kind in sorted(set(self.acked) | set(self.refused)):
            first = self.first_ok.get(kind)
            lines.append(
                f"  {kind}: {self.acked[kind]} acknowledged, {self.refused[kind]} refused"
                + (f", first ok at {first:.3f} s" if first is not None else "")
            )
            lines.extend(f"      {error}" for error in self.errors.get(kind, []))
        return "\n".join(lines)

    @contextmanager
    def explained(
        self,
        url: Callable[[], str],
        expected: dict[str, bytes],
        cluster: RedisClusterServers | None = None,
    ) -> Iterator[None]:
        """Run the test's body; if it fails, print this log with what a fresh backend on
        ``url()`` reads of ``expected`` and ``cluster``'s state, then let the failure go on."""
        try:
            yield
        except BaseException:
            print(self.report(url, expected, cluster))
            raise

    def report(
        self,
        url: Callable[[], str],
        expected: dict[str, bytes],
        cluster: RedisClusterServers | None = None,
    ) -> str:
        """The whole record: events, writes, acknowledged writes lost, the cluster's state."""
        parts = [
            f"\n==== failover log ({self.now():.3f} s) ====",
            "events:",
            *(f"  {event}" for event in self.events),
            "writes:",
            self.writes(),
            f"acknowledged writes expected: {len(expected)}",
            _lost(url, expected),
        ]
        if cluster is not None:
            parts.append(_cluster_state(cluster))
        return "\n".join(parts)


def _lost(url: Callable[[], str], expected: dict[str, bytes]) -> str:
    """The acknowledged writes a fresh backend does not read back as written."""
    try:
        with open_backend(url()) as fresh:
            found = fresh.get_many(expected)
    except Exception as exc:  # a report of a failure must not hide it
        return f"lost: could not read back ({type(exc).__name__}: {exc})"
    lost = sorted(key for key in expected if key not in found)
    changed = sorted(key for key in found if found[key] != expected[key])
    return f"lost: {len(lost)} {lost[:20]}; changed: {len(changed)} {changed[:20]}"


def _cluster_state(cluster: RedisClusterServers) -> str:
    """Each node: running, role and replication link, cluster state and view; its log's end."""
    lines = ["cluster:"]
    for node in cluster.nodes:
        lines.append(f"  node {node.port} (pid {node.pid}): {'up' if node.running else 'down'}")
        if node.running:
            try:
                with node.client(socket_timeout=2, socket_connect_timeout=2) as client:
                    info = client.info("replication")
                    state = client.cluster("INFO").get("cluster_state")
                    view = client.execute_command("CLUSTER", "NODES")
                link = {k: info.get(k) for k in ("role", "master_port", "master_link_status")}
                lines.append(f"    {link} cluster_state={state}")
                text = view if isinstance(view, str) else view.decode()
                lines.extend(f"    | {row}" for row in text.strip().splitlines())
            except Exception as exc:  # a node that does not answer is a finding
                lines.append(f"    no answer: {type(exc).__name__}: {exc}")
        if node.directory is not None:
            log = node.directory / "redis.log"
            try:
                tail = log.read_text(errors="replace").splitlines()[-12:]
            except OSError:
                tail = ["(no log)"]
            lines.extend(f"    log| {row}" for row in tail)
    return "\n".join(lines)
