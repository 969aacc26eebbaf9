"""``get_many`` and ``set_many`` of the sync backends, one server and a cluster alike: every key
checked before any I/O, then one round trip (one per node on a cluster), counted as
``memory://`` counts. Where they differ is :meth:`SyncBulk._get_values`: one ``MGET`` on a
server, one per hash slot on a cluster. ``delete_many`` differs more and stays with each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from session_store.keys import validate_key
from session_store.ttl import normalize_ttl
from session_store_redis.base import ClientT, RedisBackendBase
from session_store_redis.commands import checked_items, found_values, set_command

__all__ = ["SyncBulk"]


class SyncBulk(RedisBackendBase[ClientT]):
    """The bulk reads and writes the standalone and Cluster backends share."""

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """One ``MGET`` (on a cluster, one per hash slot, one pipeline per node)."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return {}
        stored = [self._namespace.encode(key) for key in wanted]
        values: Sequence[bytes | None] = self._call("get_many", None, self._get_values, stored)
        found, missed = found_values(wanted, values)
        self._count_read(len(wanted) - missed, missed)
        return found

    def _get_values(self, stored: list[str]) -> Sequence[bytes | None]:
        """The values of the stored keys, in order (``None``: absent)."""
        raise NotImplementedError

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """One ``SET`` per key, one pipeline (on a cluster, one per node); not atomic."""
        checked = checked_items(items, self._description)
        px = self._px(normalize_ttl(ttl))
        if not checked:
            return
        encode = self._namespace.encode  # every stored key made before any I/O
        stored = [(encode(key), value) for key, value in checked]
        if self.wait_replicas:
            commands = [set_command(skey, value, px) for skey, value in stored]
            self._write_acked("set_many", None, commands)
        else:
            self._call("set_many", None, self._set_all, stored, px)
        self.counters.add("writes", len(checked))

    def _set_all(self, stored: list[tuple[str, bytes]], px: int | None) -> list[Any]:
        # one round trip (one per node), not atomic; the cluster client's is untyped
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call,unused-ignore]
        for skey, value in stored:
            pipe.set(skey, value, px=px)
        return list(pipe.execute())
