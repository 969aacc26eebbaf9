"""Shared fixture of the reliability tests: worker processes that take commands.

Everything started here is stopped by its own process id; every wait is bounded.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WORKER = Path(__file__).with_name("reliability_worker.py")
REPLY_TIMEOUT = 60.0


class Worker:
    """One ``reliability_worker.py`` process; commands and replies are JSON lines."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._replies.put(line)
        self._replies.put(None)

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def reply(self, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        """The next reply; a worker error or a dead worker fails the test with its message."""
        try:
            line = self._replies.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"worker {self.process.pid} did not answer within {timeout} s")
        if line is None:
            err = self.process.stderr.read() if self.process.stderr else ""
            pytest.fail(f"worker {self.process.pid} exited: {err[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            pytest.fail(f"worker {self.process.pid}: {answer['error']}: {answer['message']}")
        return answer

    def call(self, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.reply()

    def stop(self) -> None:
        """End input, wait a little, then kill this process (by its pid) if it is still there."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def workers() -> Iterator[list[Worker]]:
    """Four worker processes for the whole module (started once: each start costs ~0.7 s)."""
    started = [Worker() for _ in range(4)]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()
