"""The bulk operations of the Redis Cluster backend: one command per hash slot, the commands of
a node in one pipeline (one round trip per node, every node written to before any reply is read).

* ``get_many`` groups the keys by hash slot (``MGET`` must not cross slots) and sends one
  ``MGET`` per slot; ``set_many`` one ``SET`` per key; ``delete_many`` one ``UNLINK`` per slot.
  None of them is atomic across slots (neither are the standalone ones across keys).
* While a slot migrates (its keys split between two nodes, which multi-key commands refuse with
  ``TRYAGAIN``), one command per key, each following its ``ASK`` redirection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, ClusterError, TryAgainError

from session_store.backend import ensure_bytes
from session_store.keys import validate_key
from session_store.ttl import normalize_ttl
from session_store_redis.base import RedisBackendBase
from session_store_redis.cluster_errors import migrating
from session_store_redis.commands import set_command

__all__ = ["ClusterBulk"]


class ClusterBulk(RedisBackendBase[RedisCluster]):
    """The bulk operations of :class:`~session_store_redis.cluster.RedisClusterBackend`."""

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """One ``MGET`` per hash slot, one pipeline (one round trip) per node."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return {}
        head = self._head
        values: Sequence[bytes | None] = self._call(
            "get_many", None, self._get_values, [head + key for key in wanted]
        )
        found = {k: v for k, v in zip(wanted, values, strict=True) if v is not None}
        missed = sum(1 for value in values if value is None)
        self._count_read(len(wanted) - missed, missed)
        return found

    def _get_values(self, stored: list[str]) -> list[bytes | None]:
        """``MGET`` per slot; while a slot migrates (its keys split between two nodes, which
        multi-key commands refuse with ``TRYAGAIN``), one ``GET`` per key, each following its
        ``ASK`` redirection."""
        client = self._client
        try:
            return list(client.mget_nonatomic(stored))
        except (TryAgainError, ClusterError) as exc:
            if isinstance(exc, ClusterDownError) or not migrating(exc):
                raise
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for one in stored:
            pipe.get(one)
        return list(pipe.execute())

    def set_many(self, items: Mapping[str, bytes], ttl: float | None = None) -> None:
        """One ``SET`` per key, one pipeline (one round trip) per node; not atomic."""
        d = self._description
        checked = [(validate_key(k), ensure_bytes(v, key=k, backend=d)) for k, v in items.items()]
        px = self._px(normalize_ttl(ttl))
        if not checked:
            return
        head = self._head
        if self.wait_replicas:
            commands = [set_command(head + key, value, px) for key, value in checked]
            self._write_acked("set_many", None, commands)
        else:
            self._call("set_many", None, self._set_all, checked, px)
        self.counters.add("writes", len(checked))

    def _set_all(self, items: list[tuple[str, bytes]], px: int | None) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        head = self._head
        for key, value in items:
            pipe.set(head + key, value, px=px)
        return list(pipe.execute())

    def delete_many(self, keys: Iterable[str]) -> int:
        """One ``UNLINK`` per hash slot, one pipeline (one round trip) per node."""
        wanted = [validate_key(key) for key in keys]  # all checked before any I/O
        if not wanted:
            return 0
        stored = list(dict.fromkeys(self._head + k for k in wanted))  # once each, as UNLINK
        if self.wait_replicas:
            commands = [(one, ("UNLINK", one)) for one in stored]
            removed = sum(int(n) for n in self._write_acked("delete_many", None, commands))
        else:
            removed = int(self._call("delete_many", None, self._unlink_all, stored))
        self.counters.add("deletes", len(wanted))
        return removed

    def _unlink_all(self, stored: list[str]) -> int:
        """``UNLINK`` per slot; while a slot migrates, one ``UNLINK`` per key (see
        :meth:`_get_values`)."""
        client = self._client
        try:
            return int(client.unlink(*stored))
        except (TryAgainError, ClusterError) as exc:
            if isinstance(exc, ClusterDownError) or not migrating(exc):
                raise
        pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
        for one in stored:
            pipe.unlink(one)
        return sum(int(n) for n in pipe.execute())
