"""sort_node_replies: how the sync and asyncio cluster backends read one primary's replies to a
round of writes (pure; the redirections themselves are driven on a real cluster in
test_cluster_listing.py and backends/redis/tests/async_backends/test_async_cluster.py)."""

from __future__ import annotations

from typing import Any

import pytest
from redis.exceptions import AskError, MovedError, NoScriptError, ResponseError, TryAgainError

from session_store_redis.cluster import sort_node_replies

KNOWN = {("127.0.0.1", 7001): "node-7001"}


def _find(host: str, port: int) -> str | None:
    return KNOWN.get((host, port))


def test_replies_land_and_redirections_bounce() -> None:
    replies: list[Any] = [None] * 6
    asking: dict[int, Any] = {5: "stale"}
    outcome = sort_node_replies(
        [0, 1, 2, 3, 4, 5],
        [
            True,
            MovedError("3999 127.0.0.1:7002"),
            AskError("4000 127.0.0.1:7001"),
            NoScriptError("NOSCRIPT"),
            TryAgainError("TRYAGAIN"),
            1,
        ],
        2,
        replies,
        asking,
        _find,
    )
    assert replies == [True, None, None, None, None, 1]
    assert outcome.bounced == [1, 2, 3, 4]
    assert outcome.refresh is True  # MOVED: the slot map is stale
    assert outcome.reload_script is True
    assert outcome.acked == 2
    assert asking == {2: "node-7001"}  # the ASK target; index 5 ran and is no longer asking


def test_an_ask_to_an_unknown_node_refreshes_and_nothing_ran_counts_no_acks() -> None:
    replies: list[Any] = [None]
    asking: dict[int, Any] = {}
    outcome = sort_node_replies(
        [0], [AskError("4000 127.0.0.1:7999")], ResponseError("WAIT failed"), replies, asking, _find
    )
    assert (outcome.bounced, outcome.refresh, outcome.acked) == ([0], True, None)
    assert asking == {}


def test_a_failed_wait_is_raised_when_a_write_ran() -> None:
    with pytest.raises(ResponseError, match="WAIT failed"):
        sort_node_replies([0], [True], ResponseError("WAIT failed"), [None], {}, _find)
