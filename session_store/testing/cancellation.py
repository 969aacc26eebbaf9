"""A check for async stores: an ``update`` cancelled at any point is applied whole or not at all.

An async backend author runs it on a store over their backend::

    from session_store.testing import cancelled_updates

    outcomes = await cancelled_updates(AsyncSessionStore(MyAsyncBackend(...), dict))
    assert outcomes  # every (cancelled?, written?) pair seen left a whole session

It cancels ``update`` once ``fn`` has run (its read is done), after 0, 1, 2, ... more event-loop
steps: between the read and the compare-and-set, and at each step of the write. Each time the
session must be exactly the old one or exactly the new one, and the store must keep answering
correctly (no reply left behind on a pooled connection, no lock held).
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from session_store.aio import AsyncSessionStore

__all__ = ["cancelled_updates"]

Session = dict[str, Any]


async def cancelled_updates(
    store: AsyncSessionStore[Session], key: str = "s", rounds: int = 12
) -> set[tuple[bool, bool]]:
    """Cancel ``store.update(key, ...)`` after 0 to ``rounds - 1`` loop steps past its read
    (see the module docstring); what each round saw, as (the task was cancelled, the new
    session was written) pairs. Fails with an ``AssertionError`` at the first half-applied
    session or wrong answer; overwrites ``key`` and the key ``"probe"``."""
    outcomes: set[tuple[bool, bool]] = set()
    for steps in range(rounds):
        before: Session = {"cart": list(range(steps)), "owner": "me", "step": steps}
        await store.save(key, before)
        after = {"cart": [*before["cart"], "new"], "owner": "me", "step": steps, "paid": True}
        read_done = asyncio.Event()

        def change(
            current: Session | None, done: asyncio.Event = read_done, new: Session = after
        ) -> Session:
            done.set()
            return dict(new)

        task = asyncio.ensure_future(store.update(key, change))
        await read_done.wait()
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        result = (await asyncio.gather(task, return_exceptions=True))[0]
        stored = await store.load(key)
        assert stored in (before, after), f"half-applied after {steps} steps: {stored}"
        outcomes.add((isinstance(result, asyncio.CancelledError), stored == after))
        probe: Session = {"steps": steps}
        assert await store.update("probe", partial(_replace, probe)) == probe
    return outcomes


def _replace(new: Session, current: Session | None) -> Session:
    return new
