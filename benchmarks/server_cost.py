"""What one ordered write or compare-and-set costs redis-server itself, per call: instructions
under ``valgrind --tool=callgrind`` (repeatable on a loaded machine) or CPU time from
``/proc/<pid>/schedstat`` and ``INFO commandstats``.

Starts its own redis-server on a free loopback port (``save ""``, ``appendonly no``, as the test
fixtures do), sends each variant's commands one round trip at a time from a plain socket (the
client's own cost is not counted: only the server's), and reports per call:

* ``--callgrind``: the server's instructions, from ``callgrind_control -z`` / ``-d`` around a
  short and a long run of the same variant, the difference divided by the extra calls (so the
  event loop's idle work and the dump itself cancel out);
* otherwise: the server's CPU per call (``schedstat``, min and median of interleaved rounds),
  and the script's ``usec_per_call`` (``INFO commandstats``).

Variants (a framed session of ``--size`` bytes, every write newer than the stored one, so every
write lands; the compare-and-set always expects what is stored, so it always writes):
``set`` (plain ``SET ... PX``, the bare tier's write), ``after-staged`` / ``after-script``
(a chain's save at the arbiter: ``set_after``, staged and one-script), ``newer-staged`` /
``newer-script`` (``set_if_newer``), ``cas-staged`` / ``cas-script`` (compare-and-set of a
framed value), and the same for the previous texts (``old-...``, kept in
``backends/redis/tests/standalone/test_script_texts_mixed.py``).

    python -m benchmarks.server_cost --callgrind
    python -m benchmarks.server_cost --rounds 7
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import itertools
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import floor
from session_store import stamps
from session_store_redis import ordered_scripts, scripts, staged

__all__ = ["Variant", "main", "variants"]

Packet = tuple[bytes, int]  # the bytes of one round trip, how many replies it gets
#: A variant's packets for ``n`` writes to a key: (setting the key up, the writes measured).
Make = Callable[[str, int], tuple[list[Packet], list[Packet]]]


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


class Reader:
    """A minimal RESP2 reader over a socket (the replies here are small)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._more()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _more(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-"):
            return rest if kind == b"+" else RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            while len(self.buffer) < size + 2:
                self._more()
            data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
            return data
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise ValueError(f"unexpected reply {line!r}")


class Server:
    """A throwaway redis-server on 127.0.0.1, optionally under callgrind."""

    def __init__(self, directory: str, callgrind: bool) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.out = Path(directory) / "callgrind.out"
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ]
        if callgrind:  # (the cron at 1 Hz: its work grows with the run's wall time, which
            command += ["--hz", "1"]  # valgrind and a loaded machine stretch, not with the calls)
            command = [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={self.out}",
                *command,
            ]
        with open(Path(directory) / "server.log", "w") as log:  # (the child keeps its own)
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = Reader(self.sock)
        while self.call("PING") != b"PONG":  # pragma: no cover - loading
            time.sleep(0.1)
        self.dumps = 0

    def call(self, *args: bytes | str | int) -> Any:
        self.sock.sendall(pack(*args))
        return self.reader.reply()

    def run(self, packets: Sequence[Packet]) -> list[Any]:
        """Each packet as one round trip; the last reply of each."""
        last = []
        for data, replies in packets:
            self.sock.sendall(data)
            for _ in range(replies):
                reply = self.reader.reply()
            last.append(reply)
        return last

    def track(self, prefix: str) -> None:
        """Track ``prefix`` as a chain does (``CLIENT TRACKING ... REDIRECT ... BCAST``, to a
        connection subscribed to ``__redis__:invalidate`` that a thread drains), so that every
        write pays the invalidation push the default coherent near cache makes Redis send."""
        listener = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        reader = Reader(listener)
        listener.sendall(pack("CLIENT", "ID") + pack("SUBSCRIBE", "__redis__:invalidate"))
        client_id = reader.reply()
        reader.reply()

        def drain() -> None:
            while listener.recv(65536):
                pass

        threading.Thread(target=drain, daemon=True).start()
        reply = self.call(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", prefix
        )
        if reply != b"OK":  # pragma: no cover
            raise RuntimeError(f"CLIENT TRACKING: {reply!r}")

    def cpu_ns(self) -> int:
        return int(Path(f"/proc/{self.process.pid}/schedstat").read_text().split()[0])

    def instructions(self, what: Callable[[], Any]) -> int:
        """Instructions the server executed while ``what`` ran (callgrind only)."""
        pid = str(self.process.pid)
        subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        what()
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        self.dumps += 1
        dump = Path(f"{self.out}.{self.dumps}")
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("totals:", "summary:")):
                return int(line.split()[1])
        raise RuntimeError(f"no totals in {dump}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(pack("SHUTDOWN", "NOSAVE"))
        self.sock.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait()


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


class Variant:
    """One way of writing: its script texts (loaded first) and the packets of ``n`` writes to
    ``key`` (after ``setup`` packets that put the first stored value there)."""

    def __init__(
        self,
        name: str,
        texts: Sequence[str],
        make: Make,
        command: str,
    ) -> None:
        self.name, self.texts, self.make, self.command = name, texts, make, command


def _versions(count: int, start: int) -> Iterator[bytes]:
    for i in range(count):
        yield (start + i).to_bytes(8, "big") + b"\x00\x00\x30\x39"


def _frames(size: int, count: int, start: int | None = None) -> list[bytes]:
    """``count`` framed values of ``size`` payload bytes, each newer than the one before
    (from ``start``, by default this millisecond's clock)."""
    if start is None:
        start = time.time_ns() // 1_000_000 << 16
    payload = os.urandom(size // 2).hex().encode()[:size]
    return [stamps.frame(payload, version, 600.0) for version in _versions(count, start)]


_PX = 600_000
_PREFIX = "bench:\x1f"  # a namespace's head, as a chain tracks it
_STAGING = _PREFIX.encode() + b"\xff:staged-write:0123456789abcdef"  # inside it, as the backend's


def _staged_packet(
    key: str, value: bytes, sha: str, argv: Sequence[bytes | str | int], multi: bool = True
) -> Packet:
    commands = [
        pack("SET", _STAGING, value, "PX", _PX),
        pack("EVALSHA", sha, 2, key, _STAGING, *argv),
    ]
    if not multi:  # (what a server refusing MULTI gets: the two one by one)
        return b"".join(commands), 2
    return b"".join((pack("MULTI"), *commands, pack("EXEC"))), 4


def variants(size: int, old: Any = None) -> list[Variant]:
    """The variants measured, and the previous texts' when ``old`` is the module keeping them
    (``BY_VARIANT``, and the compare-and-set's arguments as the previous release made them)."""
    head, first, last, clock_end = 4, 5, 16, 12
    frames = _frames(size, 1, start=1 << 16)  # older than every write measured

    def setup(key: str) -> list[Packet]:
        return [(pack("SET", key, frames[0], "PX", _PX), 1)]

    def plain(key: str, n: int) -> tuple[list[Packet], list[Packet]]:
        values = _frames(size, n)
        return setup(key), [(pack("SET", key, v, "PX", _PX), 1) for v in values]

    def after_staged(text: str, multi: bool = True) -> Make:
        def make(key: str, n: int) -> tuple[list[Packet], list[Packet]]:
            sha = _sha(text)
            values = _frames(size, n)
            return setup(key), [_staged_packet(key, v, sha, (v[:16],), multi) for v in values]

        return make

    def after_script(text: str, by_arrival: bool) -> Make:
        def make(key: str, n: int) -> tuple[list[Packet], list[Packet]]:
            sha = _sha(text)
            extra = (clock_end,) if by_arrival else ()
            return setup(key), [
                (pack("EVALSHA", sha, 1, key, v, _PX, head, first, last, *extra), 1)
                for v in _frames(size, n)
            ]

        return make

    def floor_script(key: str, n: int) -> tuple[list[Packet], list[Packet]]:
        sha = _sha(floor.NEWER_SCRIPT)
        values = _frames(size, n)
        return setup(key), [(pack("EVALSHA", sha, 1, key, v, v[:16], _PX), 1) for v in values]

    def cas(text: str, is_staged: bool, previous: bool = False) -> Make:
        make_args = old.previous_cas_args if previous else scripts.cas_args
        make_staged = old.previous_staged_cas_args if previous else staged.staged_cas_args

        def make(key: str, n: int) -> tuple[list[Packet], list[Packet]]:
            values = _frames(size, n + 1)
            packets: list[Packet] = []
            for current, new in itertools.pairwise(values):
                token = scripts.version_token(current)
                if is_staged:
                    packets.append(_staged_packet(key, new, _sha(text), make_staged(token)))
                else:
                    argv = make_args(token, new, _PX)
                    packets.append((pack("EVALSHA", _sha(text), 1, key, *argv), 1))
            return [(pack("SET", key, values[0], "PX", _PX), 1)], packets

        return make

    made = [
        Variant("set", [], plain, "set"),
        Variant(
            "after-staged",
            [staged.MOVE_AFTER_SCRIPT],
            after_staged(staged.MOVE_AFTER_SCRIPT),
            "evalsha",
        ),
        Variant(
            "after-script",
            [ordered_scripts.SET_AFTER_SCRIPT],
            after_script(ordered_scripts.SET_AFTER_SCRIPT, True),
            "evalsha",
        ),
        Variant(
            "newer-staged",
            [staged.MOVE_IF_NEWER_SCRIPT],
            after_staged(staged.MOVE_IF_NEWER_SCRIPT),
            "evalsha",
        ),
        Variant(
            "newer-script",
            [ordered_scripts.SET_IF_NEWER_SCRIPT],
            after_script(ordered_scripts.SET_IF_NEWER_SCRIPT, False),
            "evalsha",
        ),
        Variant(
            "cas-staged",
            [staged.STAGED_CAS_SCRIPT],
            cas(staged.STAGED_CAS_SCRIPT, True),
            "evalsha",
        ),
        Variant("cas-script", [scripts.CAS_SCRIPT], cas(scripts.CAS_SCRIPT, False), "evalsha"),
        Variant(
            "after-staged-no-multi",
            [staged.MOVE_AFTER_SCRIPT],
            after_staged(staged.MOVE_AFTER_SCRIPT, multi=False),
            "evalsha",
        ),
        Variant("floor-newer-script", [floor.NEWER_SCRIPT], floor_script, "evalsha"),
        Variant(
            "floor-newer-staged",
            [floor.NEWER_STAGED_SCRIPT],
            after_staged(floor.NEWER_STAGED_SCRIPT),
            "evalsha",
        ),
    ]
    for name, text in (old.BY_VARIANT if old is not None else {}).items():
        kind = name.removeprefix("old-")
        if kind.endswith("-staged"):
            maker = cas(text, True, True) if kind.startswith("cas") else after_staged(text)
        else:
            maker = (
                cas(text, False, True)
                if kind.startswith("cas")
                else after_script(text, "after" in kind)
            )
        made.append(Variant(name, [text], maker, "evalsha"))
    return made


def _prepare(server: Server, variant: Variant, n: int, key: str) -> list[Packet]:
    for text in variant.texts:
        server.call("SCRIPT", "LOAD", text)
    setup, packets = variant.make(key, n)
    server.run(setup)
    return packets


def _check(variant: Variant, replies: list[Any]) -> None:
    bad = [r for r in replies if isinstance(r, Exception) or r in (0, None)]
    if bad:
        raise RuntimeError(f"{variant.name}: a write did not land: {bad[0]!r}")


def _run_into(server: Server, packets: Sequence[Packet], replies: list[Any]) -> None:
    replies.extend(server.run(packets))


def by_callgrind(
    chosen: Sequence[Variant], short: int, long: int, pairs: int, tracked: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        server = Server(directory, callgrind=True)
        try:
            if tracked:
                server.track(_PREFIX)
            print(f"redis-server instructions per call (callgrind; ({long} - {short}) calls)")
            for variant in chosen:
                figures = []
                for pair in range(pairs):
                    key = f"{_PREFIX}{variant.name}:{pair}"
                    runs = []
                    for n in (short, long):
                        packets = _prepare(server, variant, n, f"{key}:{n}")
                        replies: list[Any] = []
                        runs.append(
                            server.instructions(partial(_run_into, server, packets, replies))
                        )
                        _check(variant, replies)
                    figures.append((runs[1] - runs[0]) / (long - short))
                shown = " ".join(f"{f / 1000:.1f}k" for f in figures)
                print(f"  {variant.name:<22} {min(figures) / 1000:7.1f}k   ({shown})", flush=True)
        finally:
            server.close()


def by_cpu(chosen: Sequence[Variant], n: int, rounds: int, tracked: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        server = Server(directory, callgrind=False)
        try:
            if tracked:
                server.track(_PREFIX)
            cpu: dict[str, list[float]] = {v.name: [] for v in chosen}
            usec: dict[str, list[float]] = {v.name: [] for v in chosen}
            for round_ in range(rounds):
                for variant in chosen:
                    packets = _prepare(server, variant, n, f"{_PREFIX}{variant.name}:{round_}")
                    server.call("CONFIG", "RESETSTAT")
                    before = server.cpu_ns()
                    replies = server.run(packets)
                    cpu[variant.name].append((server.cpu_ns() - before) / n / 1000)
                    _check(variant, replies)
                    stats = server.call("INFO", "commandstats").decode()
                    for line in stats.splitlines():
                        if line.startswith(f"cmdstat_{variant.command}:"):
                            field = line.split("usec_per_call=")[1].split(",")[0]
                            usec[variant.name].append(float(field))
            print(f"redis-server CPU per call, us ({rounds} rounds of {n}: min / median)")
            print(f"  {'variant':<22} {'schedstat':>16} {'usec_per_call':>16}")
            for variant in chosen:
                c, u = cpu[variant.name], usec[variant.name]
                print(
                    f"  {variant.name:<22} {min(c):7.2f} / {statistics.median(c):6.2f}"
                    f"  {min(u):7.2f} / {statistics.median(u):6.2f}"
                )
        finally:
            server.close()


def _previous() -> Any:
    """The module keeping the previous release's texts verbatim: the test that runs them beside
    today's."""
    path = Path(__file__).resolve().parent.parent / _FIXTURES
    spec = importlib.util.spec_from_file_location("_previous_texts", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a checkout without tests
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_FIXTURES = "backends/redis/tests/standalone/test_script_texts_mixed.py"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--size", type=int, default=2600, help="payload bytes")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="variant names")
    parser.add_argument("--tracked", action="store_true", help="pay the invalidation push")
    parser.add_argument("--no-old", action="store_true", help="skip the previous texts")
    args = parser.parse_args(argv)
    chosen = variants(args.size, None if args.no_old else _previous())
    if args.only:
        chosen = [v for v in chosen if v.name in args.only]
    if args.callgrind:
        by_callgrind(chosen, 100, 100 + max(args.calls // 6, 200), args.pairs, args.tracked)
    else:
        by_cpu(chosen, args.calls, args.rounds, args.tracked)


if __name__ == "__main__":
    main()
