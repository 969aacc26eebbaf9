"""Start a real ``redis-server`` on a free loopback port, and stop it by its process id.

    with RedisServer() as server:
        backend = open_backend(server.url + "?prefix=test:")

The server gets a configuration file in its own directory (``port``, ``bind 127.0.0.1``,
``save ""``, ``appendonly no`` unless asked (then ``appendfsync always``), ``dir``;
``requirepass`` there too, so a password never shows in the process list).
:meth:`RedisServer.stop` signals only the process this object started: SIGTERM, then SIGKILL
if it does not exit. No fake Redis: if the binary is missing,
:class:`RedisServerNotFoundError` says how to install it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import quote

import redis

from session_store_redis.patterns import prefix_pattern
from session_store_redis.testing.workdir import Harness, quote_conf

__all__ = [
    "BINARY_ENV",
    "RedisServer",
    "RedisServerError",
    "RedisServerNotFoundError",
    "TLSFiles",
    "delete_prefix",
    "find_redis_server",
    "free_port",
]

#: Environment variable naming the redis-server binary to use.
BINARY_ENV = "SESSION_STORE_REDIS_SERVER"
_FALLBACK_PATHS = ("/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server")
_PORT_ATTEMPTS = 5


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for a server that speaks TLS only: its certificate, its key, and the CA."""

    cert: Path
    key: Path
    ca: Path


class RedisServerError(RuntimeError):
    """A redis-server could not be started or stopped."""


class RedisServerNotFoundError(RedisServerError):
    """No ``redis-server`` binary: tests that need one fail, they are never skipped."""


def find_binary(name: str, env: str, fallbacks: tuple[str, ...], hint: str) -> str:
    """An executable: ``$env`` if set, else ``name`` on ``PATH``, else one of ``fallbacks``.

    Raises:
        RedisServerNotFoundError: there is none; the message says why it is needed (``hint``),
            how to install it, and which variable points at it.
    """
    named = os.environ.get(env)
    if named:
        if not os.access(named, os.X_OK):
            raise RedisServerNotFoundError(f"{env}={named!r} is not an executable file")
        return named
    found = shutil.which(name)
    if found:
        return found
    for path in fallbacks:
        if os.access(path, os.X_OK):
            return path
    raise RedisServerNotFoundError(
        f"{name} is not installed, and {hint} or point {env} at the binary"
    )


def find_redis_server() -> str:
    """The redis-server binary: ``$SESSION_STORE_REDIS_SERVER``, else on ``PATH``, else the usual
    places.

    Raises:
        RedisServerNotFoundError: there is none.
    """
    return find_binary(
        "redis-server",
        BINARY_ENV,
        _FALLBACK_PATHS,
        "the Redis tests need a real one: install it (Debian/Ubuntu: `apt-get install "
        "redis-server`, macOS: `brew install redis`)",
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer(Harness):
    """One redis-server process on 127.0.0.1.

    Args:
        port: the port; by default a free one is picked (and another if it was taken meanwhile).
        password: ``requirepass``; the :attr:`url` then carries it.
        appendonly: keep an append-only file, so data survives :meth:`restart` and :meth:`kill`:
            written with ``appendfsync always``, so every write the server acknowledged is in the
            file before its reply (under the default ``everysec``, Redis may hold writes in its
            own buffer for up to 2 s while a background fsync runs, and a :meth:`kill` loses
            them: attack10's killed-server test read the previous round's values back in 5 of
            40 trials on a loaded machine). ``extra_config`` may say otherwise.
        directory: the server's working directory (data, config, log); a temporary directory that
            :meth:`stop` removes by default.
        binary: the redis-server to run; see :func:`find_redis_server`.
        tls: serve TLS only (``rediss://``) with these files; clients need not present a
            certificate.
        extra_config: more ``redis.conf`` lines, such as ``"maxmemory 10mb"``.
        startup_timeout: seconds to wait for the first PING to be answered.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        appendonly: bool = False,
        directory: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        tls: TLSFiles | None = None,
        extra_config: tuple[str, ...] = (),
        startup_timeout: float = 10.0,
    ) -> None:
        self.binary = binary or find_redis_server()
        self._fixed_port = port
        self.port = port or 0
        self.appendonly = appendonly
        super().__init__(directory, password)
        self.tls = tls
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    # -- addresses -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0`` (``rediss://...?ssl_ca_certs=...`` for TLS)."""
        return self.url_for()

    def url_for(self, db: int = 0, **params: str) -> str:
        """A URL for database ``db``, with the query parameters given (values are quoted)."""
        auth = f":{quote(self._password, safe='')}@" if self._password else ""
        return self._url(auth, db, params)

    def _url(self, auth: str, db: int, params: dict[str, str]) -> str:
        scheme = "redis"
        if self.tls is not None:
            scheme = "rediss"
            params = {"ssl_ca_certs": str(self.tls.ca), **params}
        query = "&".join(f"{name}={quote(value, safe='/')}" for name, value in params.items())
        return f"{scheme}://{auth}{self.host}:{self.port}/{db}" + (f"?{query}" if query else "")

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the process this object started is alive."""
        return self._process is not None and self._process.poll() is None

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"RedisServer(127.0.0.1:{self.port}, {state})"

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> Self:
        """Start the server and wait until it answers PING.

        Raises:
            RedisServerError: it exited or did not answer within ``startup_timeout``.
        """
        if self.running:
            return self
        self._make_directory("session-store-redis-")
        attempts = 1 if self._fixed_port else _PORT_ATTEMPTS
        for attempt in range(attempts):
            if not self._fixed_port and (attempt or not self.port):
                self.port = free_port()
            log_text = self._launch()
            if log_text is None:
                return self
            if "Address already in use" not in log_text or attempt == attempts - 1:
                raise RedisServerError(
                    f"redis-server ({self.binary}) did not start on port {self.port}:\n{log_text}"
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self) -> str | None:
        """Run the binary once; ``None`` when it answers, else the tail of its log."""
        assert self.directory is not None
        conf = self.directory / "redis.conf"
        if self.tls is None:
            listen = [f"port {self.port}"]
        else:
            listen = [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {quote_conf(str(self.tls.cert))}",
                f"tls-key-file {quote_conf(str(self.tls.key))}",
                f"tls-ca-cert-file {quote_conf(str(self.tls.ca))}",
                "tls-auth-clients no",
            ]
        lines = [
            *listen,
            "bind 127.0.0.1",
            'save ""',
            f"appendonly {'yes' if self.appendonly else 'no'}",
            *(["appendfsync always"] if self.appendonly else []),
            f"dir {quote_conf(str(self.directory))}",
            "daemonize no",
            'logfile ""',
            *self.extra_config,
        ]
        if self._password:
            lines.append(f"requirepass {quote_conf(self._password)}")
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        conf.chmod(0o600)
        return self._spawn(conf, "redis.log")

    def _spawn(self, conf: Path, log_name: str, *args: str) -> str | None:
        """Run the binary on ``conf`` (output to ``log_name`` in the directory) and wait until it
        answers a PING: ``None``, or why it did not (the log's tail). Servers and sentinels
        alike."""
        assert self.directory is not None
        log_path = self.directory / log_name
        with open(log_path, "ab") as log_file:
            self._process = subprocess.Popen(  # noqa: S603 - our own binary and config file
                [self.binary, str(conf), *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return self._log_tail(log_path)
            if self._answers():
                return None
            time.sleep(0.02)
        self.stop(remove_directory=False)
        return f"no answer to PING within {self.startup_timeout} s\n" + self._log_tail(log_path)

    @staticmethod
    def _log_tail(path: Path, lines: int = 20) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _answers(self) -> bool:
        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, *, remove_directory: bool | None = None, timeout: float = 5.0) -> None:
        """Stop the process this object started: SIGTERM, then SIGKILL after ``timeout`` s.

        Args:
            remove_directory: delete the server's directory; by default only one it created.
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._release_directory(remove_directory)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; :meth:`restart` brings it back on the same port."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port and directory."""
        self.stop(remove_directory=False)
        fixed, self._fixed_port = self._fixed_port, self.port
        try:
            return self.start()
        finally:
            self._fixed_port = fixed

    # -- inspection ----------------------------------------------------------------------------
    def client(self, db: int = 0, **options: object) -> redis.Redis:
        """A plain redis-py client to this server (the caller closes it)."""
        settings: dict[str, object] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
        if self.tls is not None:
            settings.update(ssl=True, ssl_ca_certs=str(self.tls.ca))
        settings.update(options)
        return redis.Redis(
            host=self.host,
            port=self.port,
            db=db,
            password=self._password,
            **settings,  # type: ignore[arg-type]
        )

    @contextlib.contextmanager
    def acl_users(self, db: int = 0) -> Iterator[Callable[..., str]]:
        """``make(*rules, prefix=...)``: a new ACL user (on, password ``secret``, granted
        ``rules``) and a URL that logs in as it, for database ``db`` under ``prefix``; every
        user made is deleted on exit. For tests of what a restricted user can do."""
        made: list[str] = []

        def make(*rules: str, prefix: str) -> str:
            name = f"acl-{uuid.uuid4().hex[:12]}"
            with self.client() as admin:
                admin.execute_command("ACL", "SETUSER", name, "on", ">secret", *rules)
            made.append(name)
            return self._url(f"{name}:secret@", db, {"prefix": prefix})

        try:
            yield make
        finally:
            with self.client() as admin:
                for name in made:
                    admin.execute_command("ACL", "DELUSER", name)

    def command_calls(self) -> dict[str, int]:
        """``INFO commandstats`` as ``{"get": calls, "mget": calls, ...}`` (server-wide)."""
        client = self.client()
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return {
            name.removeprefix("cmdstat_"): int(fields["calls"])
            for name, fields in stats.items()
            if isinstance(fields, dict)
        }

    def delete_prefix(self, prefix: str, db: int = 0) -> int:
        """Delete every key starting with the literal ``prefix`` (SCAN + UNLINK, never KEYS)."""
        if not prefix:  # checked before connecting
            raise ValueError("refusing to delete every key: give a non-empty prefix")
        client = self.client(db)
        try:
            return delete_prefix(client, prefix)
        finally:
            client.close()


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key starting with the literal ``prefix`` on the server ``client`` talks to
    (SCAN + UNLINK of up to 500 keys at a time, never KEYS); how many were there.

    Raises:
        ValueError: an empty prefix (which would delete every key).
    """
    if not prefix:
        raise ValueError("refusing to delete every key: give a non-empty prefix")
    removed = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=prefix_pattern(prefix), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += int(client.unlink(*batch))
            batch.clear()
    if batch:
        removed += int(client.unlink(*batch))
    return removed
