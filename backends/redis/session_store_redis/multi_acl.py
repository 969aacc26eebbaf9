"""What the Redis backends run once the server's ACL refuses ``MULTI`` (issue 12).

A few operations need two or more commands of one instant: ``get_with_ttl`` (``GET`` and
``PTTL``: what a chain reads its Redis tier with), ``touch`` without a TTL (``PERSIST`` and
``EXISTS``), the async ``set_many`` (all or none), and the staged ordered writes
(:mod:`session_store_redis.staged`), and a cluster listing's reading of a node's state
(:mod:`session_store_redis.listing`). They are ``MULTI``/``EXEC``, the cheapest form. A user
whose ACL refuses ``MULTI`` (or a server that disabled it: ``rename-command MULTI ""``) gets the
same commands in one Lua script instead (a script is as
atomic: nothing runs between its commands, and it is one command, so a cancelled caller never
leaves half of it): :data:`GET_PTTL`, :data:`PERSIST_EXISTS`, :data:`SET_MANY`,
:data:`NODE_STATE`. Each backend remembers the refusal, so ``MULTI`` is refused once per backend,
not on every call (a cluster listing remembers it on its client: :data:`NO_MULTI`).

The call that meets the refusal: Redis runs the commands after a refused ``MULTI`` one by one
(they are not queued), so the reads and ``PERSIST`` ran, and an async ``set_many``'s ``SET``-s
landed, before the script runs them again as one step (the same values: a write another client
made to one of those keys in between is overwritten, as if it had come first). A user refused
the script's command too gets :func:`needs_one` (a ``NOPERM`` error that names ``MULTI`` and it),
which the backends translate into a :class:`~session_store.errors.BackendError`. A user allowed
``MULTI`` but not ``EVAL`` keeps the ``MULTI`` form: it is always tried first.

:func:`refuses_multi` is the one test of "the ACL refused ``MULTI``", which the staged writes'
``Unqueued`` (:func:`session_store_redis.staged.settle`) use too.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from redis import exceptions as rexc

__all__ = [
    "GET_PTTL",
    "LISTING",
    "NODE_STATE",
    "NO_MULTI",
    "PERSIST_EXISTS",
    "SET_MANY",
    "OneScript",
    "is_refused",
    "needs_one",
    "refuses_multi",
]


class OneScript(NamedTuple):
    """A script's text and its SHA (what ``EVALSHA`` names it by)."""

    text: str
    sha: str


def _script(text: str) -> OneScript:
    return OneScript(text, hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest())


#: ``MULTI GET PTTL EXEC``, as one script: KEYS[1] the key; ``[value or nil, pttl]``.
GET_PTTL = _script("return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}")

#: ``MULTI PERSIST EXISTS EXEC``, as one script: KEYS[1] the key; ``[persisted, exists]``.
PERSIST_EXISTS = _script("return {redis.call('PERSIST', KEYS[1]), redis.call('EXISTS', KEYS[1])}")

#: ``MULTI SET ... SET ... EXEC``, as one script: KEYS the keys, ARGV[1] the milliseconds to
#: live (``''``: no expiry), ARGV[i + 1] the value of KEYS[i]; returns how many it set.
SET_MANY = _script(
    """local px = ARGV[1]
for i, key in ipairs(KEYS) do
  if px == '' then
    redis.call('SET', key, ARGV[i + 1])
  else
    redis.call('SET', key, ARGV[i + 1], 'PX', px)
  end
end
return #KEYS
"""
)


#: A cluster node's view of itself and its keys in some slots, of one instant (what the complete
#: listing reads, :func:`session_store_redis.listing.read_state`): ``CLUSTER NODES``, ``INFO
#: commandstats``, then ``CLUSTER GETKEYSINSLOT ARGV[i] ARGV[#ARGV]`` for every other argument.
NODE_STATE = _script(
    """local out = {redis.call('CLUSTER', 'NODES'), redis.call('INFO', 'commandstats')}
for i = 1, #ARGV - 1 do
  out[i + 2] = redis.call('CLUSTER', 'GETKEYSINSLOT', ARGV[i], ARGV[#ARGV])
end
return out
"""
)


#: Set on a cluster client (one per backend) once a node refused ``MULTI`` (ACL or
#: ``rename-command``): its complete listings read node states with :data:`NODE_STATE` from
#: then on, instead of paying a refused ``MULTI`` on each (:mod:`~.listing`).
NO_MULTI = "session_store_no_multi"

#: What :func:`needs_one` calls a complete cluster listing.
LISTING = "a complete cluster listing"


def is_refused(error: BaseException) -> bool:
    """``NOPERM`` (refused when queued), or Redis 7.0's words for a command a script calls."""
    text = str(error)
    return (
        isinstance(error, rexc.NoPermissionError)
        or "NOPERM" in text
        or "can't run this command" in text
    )


def refuses_multi(reply: object) -> bool:
    """Whether ``reply`` (an error reply, or anything else) says the server refused ``MULTI``
    itself: ``MULTI``'s own ``NOPERM`` (the ACL) or "unknown command" (disabled by
    ``rename-command``), which the lean clients and a cluster node's pipeline raise, or ``EXEC
    without MULTI`` (all that redis-py's transactional pipeline reports of either). A command
    refused inside the transaction (a key outside the user's patterns) is not this."""
    if not isinstance(reply, rexc.ResponseError):
        return False
    text = str(reply)
    lowered = text.lower()
    return (
        "EXEC without MULTI" in text
        or "unknown command 'multi'" in lowered
        or (is_refused(reply) and "'multi'" in lowered)
    )


def needs_one(error: BaseException, what: str) -> BaseException:
    """What to raise for ``error``, met running the script that stands for ``MULTI`` (by
    ``EVALSHA``, loaded by ``SCRIPT LOAD`` first where the server does not know it; by ``EVAL``
    with ``wait_replicas``): if the ACL refused that command too, a ``NOPERM`` error naming
    it; else ``error`` itself."""
    text = str(error).lower()
    refused = next((name for name in _SCRIPT_COMMANDS if f"'{name}'" in text), None)
    if refused is None or not is_refused(error):
        return error
    return rexc.NoPermissionError(
        f"this user may run neither MULTI nor {refused.upper()}, and {what} needs one of them "
        "(its commands of one instant run inside MULTI/EXEC, or in one script where MULTI is "
        "refused: EVALSHA, after SCRIPT LOAD where the server does not know it; EVAL with "
        "wait_replicas)"
    )


#: The commands the scripts standing for ``MULTI`` run with, as ``NOPERM`` names them.
_SCRIPT_COMMANDS = ("evalsha", "eval", "script|load")
