"""What the failover tests of every topology share: client options that notice a dead node
fast, fresh keys on one cluster node, the clock of what resumed after a kill, and the checks
that no acknowledged write was lost."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from session_store.registry import open_backend

__all__ = [
    "CLUSTER_KINDS",
    "FAILOVER_OPTIONS",
    "PAUSE_BOUND_S",
    "Resumed",
    "assert_kept",
    "keys_on",
    "write_again",
]

#: URL parameters (appended to a URL with a query) of backends that live through a failover:
#: short timeouts, one retry.
FAILOVER_OPTIONS = "&socket_timeout=1&socket_connect_timeout=0.5&retries=1"

#: Failure detection, agreement, election and promotion, on a loaded 2-core machine.
PAUSE_BOUND_S = 15.0

#: What must resume after a cluster primary is killed: the operations on its slots and elsewhere.
CLUSTER_KINDS = (
    "write on the dead primary's slots",
    "read on the dead primary's slots",
    "acknowledged write elsewhere",
    "read elsewhere",
)


def keys_on(backend: Any, port: int, *, owned: bool) -> Iterator[str]:
    """Fresh session keys whose slot the node on ``port`` owns (or does not) in the slot map of
    ``backend``'s cluster client (sync or asyncio)."""
    client = backend.client
    for n in itertools.count():
        key = f"key-{n}"
        if (client.get_node_from_key(backend.namespace.encode(key)).port == port) == owned:
            yield key


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


def write_again(acked: Any, keys: Iterator[str], expected: dict[str, bytes], since: float) -> None:
    """One write that replicas must acknowledge (which the killed node, back as a replica,
    makes possible again), recorded in ``expected``; prints how long after ``since``."""
    key = next(keys)
    acked.set(key, key.encode())
    expected[key] = key.encode()
    print(f"acknowledged writes again {time.monotonic() - since:.2f} s after the restart")


def assert_kept(url: str, expected: dict[str, bytes], *, only: bool = False) -> None:
    """Through a fresh backend on ``url``: every acknowledged write is there, and listed (the
    only keys listed, if ``only``)."""
    with open_backend(url) as fresh:
        assert fresh.get_many(expected) == expected  # no acknowledged write was lost
        listed = set(fresh.scan())
    assert listed == set(expected) if only else listed >= set(expected)
