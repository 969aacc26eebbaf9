"""Races between processes: :func:`update_race`, separate processes racing
``SessionStore.update``, and :func:`race`, the starting gun it is built on.

    conflicts = update_race("redis+cluster://127.0.0.1:7000/?prefix=t:", processes=4, rounds=50)
    assert SessionStore(url, dict).load("counter") == {"n": 200}

Each process is a fresh Python interpreter (no shared memory, no inherited sockets) that opens
the URL itself, waits until every process is ready, then applies ``rounds`` increments to one
counter session with ``SessionStore.update``. Nothing is lost if and only if the counter ends at
``processes * rounds``; the number of lost races (and retries) shows they really raced. Works
with any backend URL or chain string. A backend author races their own script with
:func:`race` (its compare-and-set, say, without the store).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

__all__ = ["COUNTER_KEY", "race", "race_each", "update_race"]

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
    outputs = race(_INCREMENT, [url, str(rounds), COUNTER_KEY], processes, timeout)
    return sum(int(out) for out in outputs)


def race(script: str, args: list[str], processes: int, timeout: float = 90.0) -> list[str]:
    """Run ``script`` (dedented) in ``processes`` fresh interpreters with ``args`` as
    ``sys.argv[1:]``, all at once: :func:`race_each` with the same arguments for every one.

    Raises:
        AssertionError: a process did not start or failed (its stderr is in the message).
    """
    return race_each(script, [args] * processes, timeout)


def race_each(script: str, argvs: list[list[str]], timeout: float = 90.0) -> list[str]:
    """Run ``script`` (dedented) in one fresh interpreter per entry of ``argvs``, with that
    entry as its ``sys.argv[1:]``, all at once: each prints ``ready`` once set up, then reads a
    line from its stdin, which they all get together. Returns what each printed after
    ``ready``, in the order of ``argvs``; every child is stopped (by its own process id) however
    this ends.

    Raises:
        AssertionError: a process did not start or failed (its stderr is in the message).
    """
    code = textwrap.dedent(script)
    children = [
        subprocess.Popen(  # noqa: S603 - this interpreter, the caller's own script
            [sys.executable, "-c", code, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in argvs
    ]
    try:
        for child in children:
            assert child.stdout is not None and child.stdin is not None
            line = child.stdout.readline().strip()
            if line != "ready":
                _, err = child.communicate(timeout=timeout)
                raise AssertionError(f"a racing process did not start:\n{err}")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = []
        for child in children:
            out, err = child.communicate(timeout=timeout)
            if child.returncode != 0:
                raise AssertionError(f"a racing process failed:\n{err}")
            outputs.append(out)
        return outputs
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
