"""The bulk operations of the Redis Cluster backend: one command per hash slot, the commands of
a node in one pipeline (one round trip per node, every node written to before any reply is read).

* ``get_many`` groups the keys by hash slot (``MGET`` must not cross slots) and sends one
  ``MGET`` per slot; ``set_many`` one ``SET`` per key; ``delete_many`` one ``UNLINK`` per slot.
  None of them is atomic across slots (neither are the standalone ones across keys).
* While a slot migrates (its keys split between two nodes, which multi-key commands refuse with
  ``TRYAGAIN``), one command per key, each following its ``ASK`` redirection.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.cluster import RedisCluster

from session_store.keys import validate_key
from session_store_redis.bulk import SyncBulk
from session_store_redis.cluster_errors import MULTI_KEY_REFUSALS, migrating

__all__ = ["ClusterBulk"]


class ClusterBulk(SyncBulk[RedisCluster]):
    """The bulk operations of :class:`~session_store_redis.cluster.RedisClusterBackend`."""

    def _get_values(self, stored: list[str]) -> list[bytes | None]:
        """``MGET`` per slot; while a slot migrates, one ``GET`` per key (see
        :meth:`_per_key`)."""
        try:
            return list(self._client.mget_nonatomic(stored))
        except MULTI_KEY_REFUSALS as exc:
            if not migrating(exc):
                raise
        return self._per_key("GET", stored)

    def delete_many(self, keys: Iterable[str]) -> int:
        """One ``UNLINK`` per hash slot, one pipeline (one round trip) per node."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return 0
        stored = list(dict.fromkeys(map(self._namespace.encode, wanted)))  # once each, as UNLINK
        if self.wait_replicas:
            commands = [(one, ("UNLINK", one)) for one in stored]
            removed = sum(int(n) for n in self._write_acked("delete_many", None, commands))
        else:
            removed = int(self._call("delete_many", None, self._unlink_all, stored))
        if removed:
            self.counters.add("deletes", removed)
        return removed

    def _unlink_all(self, stored: list[str]) -> int:
        """``UNLINK`` per slot; while a slot migrates, one ``UNLINK`` per key (see
        :meth:`_per_key`)."""
        try:
            return int(self._client.unlink(*stored))
        except MULTI_KEY_REFUSALS as exc:
            if not migrating(exc):
                raise
        return sum(int(n) for n in self._per_key("UNLINK", stored))

    def _per_key(self, command: str, stored: list[str]) -> list[Any]:
        """``command`` once per key, one pipeline (one round trip per node), each following its
        ``ASK`` redirection: what a multi-key command refused while its slot migrates (its keys
        split between two nodes, ``TRYAGAIN``)."""
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for one in stored:
            pipe.execute_command(command, one)
        return list(pipe.execute())
