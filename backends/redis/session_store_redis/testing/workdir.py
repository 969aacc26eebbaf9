"""What every Redis test harness shares: the loopback address, the password of its servers, a
working directory of its own (a temporary one unless given, removed on stop only if the harness
made it) and use as a context manager (``with`` starts, leaving stops).
:class:`~session_store_redis.testing.server.RedisServer`,
:class:`~session_store_redis.testing.cluster.RedisClusterServers` and
:class:`~session_store_redis.testing.sentinel.RedisSentinelSet` are ones."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["Harness", "quote_conf"]


def quote_conf(text: str) -> str:
    """``text`` as one quoted ``redis.conf`` argument."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class Harness:
    """A set of processes in a directory: subclasses implement :meth:`start` and :meth:`stop`
    (which ends with :meth:`_release_directory`)."""

    directory: Path | None

    def __init__(
        self, directory: str | os.PathLike[str] | None, password: str | None = None
    ) -> None:
        self._own_directory = directory is None
        self.directory = Path(directory) if directory is not None else None
        self._password = password

    @property
    def host(self) -> str:
        """Always the loopback address."""
        return "127.0.0.1"

    @property
    def password(self) -> str | None:
        """The servers' ``requirepass`` (and the URLs'), if any."""
        return self._password

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self, *, remove_directory: bool | None = None) -> None:
        raise NotImplementedError

    def _make_directory(self, prefix: str) -> Path:
        """The working directory, made now (a temporary one named ``prefix...`` if none given)."""
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory

    def _release_directory(self, remove_directory: bool | None) -> None:
        """Remove the directory if asked to, by default only if this harness made it."""
        if remove_directory is None:
            remove_directory = self._own_directory
        if remove_directory and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
