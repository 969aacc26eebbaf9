"""The multi-process atomic update check: separate processes racing ``SessionStore.update``.

    conflicts = update_race("redis+cluster://127.0.0.1:7000/?prefix=t:", processes=4, rounds=50)
    assert SessionStore(url, dict).load("counter") == {"n": 200}

Each process is a fresh Python interpreter (no shared memory, no inherited sockets) that opens
the URL itself, waits until every process is ready, then applies ``rounds`` increments to one
counter session with ``SessionStore.update``. Nothing is lost if and only if the counter ends at
``processes * rounds``; the number of lost races (and retries) shows they really raced. Works
with any backend URL or chain string.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

__all__ = ["COUNTER_KEY", "update_race"]

#: The session the racing processes increment: ``{"n": <count>}``.
COUNTER_KEY = "counter"

_INCREMENT = """
    import sys
    from session_store import SessionStore
    store = SessionStore(sys.argv[1], dict, access_interval=None, update_timeout=60)
    calls = 0

    def bump(current):  # runs once per attempt: a lost race runs it again
        global calls
        calls += 1
        return {"n": (current or {}).get("n", 0) + 1}

    print("ready", flush=True)
    sys.stdin.readline()  # every process starts at once
    for _ in range(int(sys.argv[2])):
        store.update(sys.argv[3], bump)
    store.close()
    print(calls - int(sys.argv[2]), flush=True)
"""


def update_race(url: str, processes: int = 4, rounds: int = 50, timeout: float = 90.0) -> int:
    """Run the race on ``url``; the number of races lost (and retried) in all.

    Raises:
        AssertionError: a process failed (its stderr is in the message).
    """
    command = [sys.executable, "-c", textwrap.dedent(_INCREMENT), url, str(rounds), COUNTER_KEY]
    children = [
        subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdin is not None
            line = child.stdout.readline().strip()
            if line != "ready":
                _, err = child.communicate(timeout=timeout)
                raise AssertionError(f"an updating process did not start:\n{err}")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        conflicts = 0
        for child in children:
            out, err = child.communicate(timeout=timeout)
            if child.returncode != 0:
                raise AssertionError(f"an updating process failed:\n{err}")
            conflicts += int(out)
        return conflicts
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
