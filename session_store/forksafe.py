"""Fork safety for locks: a child never inherits a lock another thread held.

gunicorn ``--preload`` forks workers from a process whose threads may be inside a critical
section at that instant; the child would wait forever on a lock nobody will release. An object
that owns locks registers here and gets its ``_reset_locks()`` called in every forked child,
before any of the child's code runs. Plain ``threading.Lock`` objects stay on the hot path.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["ResetsLocks", "register"]


class ResetsLocks(Protocol):
    """An object that can replace its locks with new, released ones."""

    def _reset_locks(self) -> None: ...


_owners: weakref.WeakSet[ResetsLocks] = weakref.WeakSet()


def register(owner: ResetsLocks) -> None:
    """Have ``owner._reset_locks()`` called in every child forked from now on."""
    _owners.add(owner)


def _reset_all() -> None:
    for owner in list(_owners):
        owner._reset_locks()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all)
