"""Killing a child process part-way through its work, at a point its own output names.

Shared by the crash tests of the reliability folder; every wait is bounded and the child is
stopped by its own process id whatever happens.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def kill_when(
    child: subprocess.Popen[str], enough: Callable[[str], bool], within: float
) -> list[str]:
    """Read ``child``'s output lines; once ``enough(line)`` holds for one, SIGKILL it. Returns
    every line it printed. The child must die by SIGKILL, this one's or its own (its stderr is
    in the failure), and must get there within ``within`` seconds of output."""
    lines: list[str] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + within
        for line in child.stdout:
            lines.append(line)
            if enough(line):
                os.kill(child.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "the child was not killed in time"
        lines += child.stdout.read().splitlines()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
    stderr = child.stderr.read() if child.stderr else ""
    assert child.returncode == -signal.SIGKILL, stderr
    return lines
