"""The ``session-store`` command group: logging, error handling, and the commands.

Every failure a command meets ends as one line on stderr, ``session-store: error: ...``, and a
non-zero exit code (1: an error, 2: a usage error, 3: no session under the key, 4: a tier of a
chain was down, unless ``--allow-degraded``), never a traceback; secrets from the URLs and
``SESSION_STORE_KEYS`` are masked in it. ``-v`` shows the library's INFO logs, ``-vv`` DEBUG
(and the traceback of an unexpected error).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

from session_store.cli import common
from session_store.cli.common import EXIT_DEGRADED, EXIT_ERROR, CommandError, fail, log, scrub
from session_store.errors import SessionStoreError

__all__ = ["COMMANDS", "main"]

#: Each command and where it lives: imported only when it runs (or when help lists it).
COMMANDS = {
    "bench": "session_store.cli.bench:bench",
    "copy": "session_store.cli.commands:copy",
    "delete": "session_store.cli.commands:delete",
    "demo": "session_store.cli.demo:demo",
    "get": "session_store.cli.get:get",
    "inspect": "session_store.cli.commands:inspect_",
    "ls": "session_store.cli.ls:ls",
    "migrate": "session_store.cli.migrate:migrate",
    "stats": "session_store.cli.stats:stats",
}


class _Group(click.Group):
    """A group whose commands load lazily and fail with one line and an exit code, never a
    traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, name = target.partition(":")
        command = getattr(importlib.import_module(module), name)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            _fail_if_degraded()
            return result
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except CommandError as exc:
            fail(exc.message, exc.code)
        except SessionStoreError as exc:
            fail(str(exc))
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except BrokenPipeError:  # the reader went away (`session-store ls | head`)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_ERROR)
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            fail(f"unexpected {type(exc).__name__}: {scrub(str(exc))}")


_allow_degraded = False


def _fail_if_degraded() -> None:
    """Exit with EXIT_DEGRADED if a tier of a chain was down, unless --allow-degraded."""
    down = common.degraded()
    if down and not _allow_degraded:
        tiers = "; ".join(f"{backend} ({why})" for backend, why in down.items())
        fail(
            f"degraded: the answer comes without {len(down)} tier(s) that were down: {tiers}; "
            "pass --allow-degraded to accept that (exit 0)",
            EXIT_DEGRADED,
        )


class _ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ScrubbingFormatter("session-store: %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logging.captureWarnings(True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="session-store")
@click.option("-v", "--verbose", count=True, help="-v: INFO logs, -vv: DEBUG logs.")
@click.option(
    "--allow-degraded",
    is_flag=True,
    help="Exit 0 even when a tier of a chain was down (the answer came from the others).",
)
def main(verbose: int, allow_degraded: bool) -> None:
    """Server-side session storage with pluggable backends.

    URL is a backend URL or a chain string ("memory:// | redis://... | diskcache:///..."); where
    it is optional it defaults to $SESSION_STORE_URL. Passwords and keys are masked in all
    output. Exit codes: 0 ok, 1 error, 2 usage, 3 no session under that key (get, inspect and
    delete alike; delete leaves a retired id's marker or a tombstone alone), 4 a tier of the
    chain was down (the output comes from the other tiers; --allow-degraded accepts that).
    """
    global _allow_degraded
    _allow_degraded = allow_degraded
    common.forget_degraded()
    _setup_logging(verbose)
