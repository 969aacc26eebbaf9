"""An update needs every durable tier to answer (the sync chain's rule, on the event loop).

``get_versioned`` brings the arbiter up to the newest copy of the lower durable tiers. If one of
them does not answer (locked, slow, down for this process) it may hold an acknowledged write
made by a process that could not reach Redis, or the only copy of a session Redis lost: an
update built on the arbiter's copy alone would silently replace it. So the chain refuses
(``BackendUnavailableError``, nothing written) until every durable tier answers; this was first
recorded here as a known gap shared by both chains (an update that lost a disk-only write).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from session_store import BackendUnavailableError, Codec, stamps
from session_store.aio import AsyncMemoryBackend, AsyncSessionStore, AsyncTieredBackend
from session_store.aio.threaded import ThreadedBackend
from session_store.testing.faults import SwitchableBackend
from session_store.tiered.writes import write_after
from session_store_diskcache import DiskcacheBackend
from session_store_redis.aio import AsyncRedisBackend

pytestmark = pytest.mark.anyio


async def test_update_while_the_disk_is_unreachable_sees_a_disk_only_write(
    redis_url: str, tmp_path: Path
) -> None:
    disk = tmp_path / "disk"
    codec = Codec(encryption=None, compression=None)
    switch = SwitchableBackend(DiskcacheBackend(disk))
    tiers = [AsyncMemoryBackend(), AsyncRedisBackend.from_url(redis_url), ThreadedBackend(switch)]
    chain = AsyncTieredBackend(tiers)
    store: AsyncSessionStore[dict[str, Any]] = AsyncSessionStore(chain, dict, codec=codec)
    try:
        await store.save("c", {"who": "first"})
        # another process, which saw Redis down, saved this: on the disk alone, acknowledged
        other = stamps.frame(codec.encode("c", {"who": "other"}), stamps.clock.now(), None)
        write_after(DiskcacheBackend(disk), "c", other, None)
        switch.down = True  # this process cannot reach the disk right now
        seen: list[Any] = []

        def record(current: dict[str, Any] | None) -> dict[str, Any]:
            seen.append(current)
            return {"who": "updated"}

        with pytest.raises(BackendUnavailableError, match="durable tier does not answer"):
            await store.update("c", record)
        assert seen == []  # refused before fn ran: nothing built on the arbiter's older copy
        switch.down = False
        assert await store.update("c", record) == {"who": "updated"}
        assert seen == [{"who": "other"}]  # once the disk answers, the update starts from it
    finally:
        await chain.aclose()
