"""The tiered backend: a chain of backends that is one consistent store.

* :mod:`.backend`: :class:`TieredBackend`, writes, deletes and life cycle, over the layers
  :mod:`.base` (plumbing, tier calls), :mod:`.reconcile` (missed writes, the probe timer),
  :mod:`.reads` (single-key reads), :mod:`.bulk` (``get_many``, ``scan``) and :mod:`.cas`
  (``get_versioned``, ``set_if``): the I/O;
* :mod:`.core`: what the sync chain and its async twin share besides their I/O (construction,
  description, the invalidation stream, breaker bookkeeping);
* :mod:`.steps`, :mod:`.cas_steps`, :mod:`.read_steps`: the I/O sequences (writes, deletes,
  ``touch``, compare-and-set, reconciliation, reads and the near-cache hit path) as generators
  of tier calls, written once for the sync chain and its async twin, which perform them with
  calls and with awaits;
* :mod:`.policy`: the decisions (layout, health, newest copy, repairs, freshness), pure functions
  an async twin shares;
* :mod:`.near`, :mod:`.nearcache`: the near cache's coherence state, the invalidation listener
  protocol, and the near tiers' fills and writes;
* :mod:`.writes`: ordered writes (never an older version over a newer one).
"""

from session_store.tiered.backend import (
    DEFAULT_MAX_STALENESS,
    DEFAULT_TOMBSTONE_TTL,
    TIERED_COUNTER_NAMES,
    TieredBackend,
)
from session_store.tiered.near import InvalidationListener, Subscription

__all__ = [
    "DEFAULT_MAX_STALENESS",
    "DEFAULT_TOMBSTONE_TTL",
    "TIERED_COUNTER_NAMES",
    "InvalidationListener",
    "Subscription",
    "TieredBackend",
]
