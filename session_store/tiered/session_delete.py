"""A chain's ``delete_session``: the delete ``SessionStore.delete`` sends, which removes a
session and leaves a key holding none as it is.

The chain judges its newest copy (the one every read serves) as a single backend judges its
value (:func:`~session_store.deleterules.holds_session` on the caller's bytes): a tombstone,
or a value frame around one (the marker a login's id rotation leaves on the old id,
``websession.steps.RETIRED`` written through the chain), answers ``False`` and writes nothing,
so a logout with an old cookie neither undoes the rotation's marker nor restarts a tombstone's
``tombstone_ttl``, and a write landing after the judgement is never buried. A key no shared
tier holds, every one of them answering, answers ``False`` and writes nothing too: a tombstone
there would bury a save that reached the arbiter after the reads (attack10b). A key holding a
session, or none in the tiers that answered while one did not, is deleted as
:func:`~session_store.tiered.steps.delete` deletes (a tombstone newer than every copy read, in
every shared tier, so a copy in a tier that is down does not come back): the same tombstone
rules. A module of its own so that the chain's
steps stay as they are; the sync and the async chains run the same steps.
"""

from __future__ import annotations

from session_store import stamps
from session_store.deleterules import holds_session
from session_store.stamps import unframe
from session_store.tiered import policy
from session_store.tiered.steps import Chain, Steps, collect, write

__all__ = ["delete_session"]


def delete_session(chain: Chain, key: str) -> Steps[bool]:
    """``delete_session`` of a checked key (module docstring): whether a session was there."""
    copies, answered = yield from collect(chain, key)
    best = policy.newest(copies)
    if best is None and len(answered) == len(chain.layout.shared):
        # every shared tier answered that it holds nothing: there is nothing to delete, and a
        # tombstone stamped now would bury a save that reached the arbiter after these reads
        # (answered False: attack10b). A tier that did not answer may hold a copy that would
        # come back with it: then the tombstone, as steps.delete writes it.
        chain.nearcache.drop(key)
        return False
    if best is not None:
        value = unframe(best.data)
        if value is None or not holds_session(value):
            chain.nearcache.drop(key)  # no session to serve: a near copy is stale
            return False
        stamps.clock.observe(best.version)  # the tombstone is newer than every copy read
    # from here as steps.delete: the tombstone in every shared tier, then the near cache
    yield from write(
        chain, key, stamps.tombstone(stamps.clock.now()), chain.tombstone_ttl, "delete"
    )
    chain.nearcache.drop(key)  # after the tombstones: fills that began before them are fenced
    chain.counters.add("deletes")
    chain.counters.add("tombstones")
    return best is not None
