"""Translate redis-py exceptions into session-store's typed errors, without leaking secrets.

The mapping:

* ``AuthenticationError`` / ``AuthorizationError`` / ``NoPermissionError`` (a wrong password or a
  user the server refuses), and a TLS certificate that fails verification: the server is up and
  answering, we are misconfigured. :class:`~session_store.errors.BackendError`, *not* unavailable:
  retrying or failing over to another tier would hide a configuration mistake behind a silent
  fallback, so a tiered backend lets this one through to the caller. (It is not a
  ``ConfigurationError`` either: that type promises "raised before any I/O".)
* ``ConnectionError`` and ``TimeoutError`` (refused, reset, timed out, busy loading, no pooled
  connection free in time) and a stray ``OSError``:
  :class:`~session_store.errors.BackendUnavailableError`.
* Any other ``RedisError`` (a server error such as ``OOM`` or ``WRONGTYPE``, a read-only replica):
  :class:`~session_store.errors.BackendError`.

A pipeline's error names the command that failed with its arguments (``Command # 3 (SET key
value...) of pipeline caused error: ...``): :func:`sanitize` drops that part, so neither keys nor
stored values reach a message.

The new error is raised with no ``__cause__`` and no ``__context__`` (callers raise it *after*
their ``except`` block), so the redis-py exception, whose attributes and arguments are outside
our control, is not reachable from it. Its type and its message, with every secret the client
knows replaced by ``***``, are copied into the new message instead.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from redis import exceptions as rexc

from session_store.errors import BackendError, BackendUnavailableError

__all__ = ["is_refusal", "is_unavailable", "sanitize", "scrub", "translate"]

_MASK = "***"
_MAX_MESSAGE = 300
# redis-py prefixes a pipeline command's error with the command and its arguments.
_PIPELINE_CONTEXT = re.compile(r"^Command # \d+ \(.*\) of pipeline caused error: ", re.DOTALL)

_AUTH_ERRORS: tuple[type[BaseException], ...] = (
    rexc.AuthenticationError,
    rexc.AuthorizationError,
    rexc.AuthenticationWrongNumberOfArgsError,
    rexc.NoPermissionError,
)
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    OSError,  # socket errors redis-py did not wrap (TimeoutError of the stdlib is an OSError)
)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret, raw or percent-encoded, replaced by ``***``."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret, safe="")}:
            text = text.replace(form, _MASK)
    return text


def sanitize(exc: BaseException, secrets: Iterable[str | None]) -> str:
    """A one-line description of ``exc`` safe to show: its type and its scrubbed message."""
    secrets = tuple(secrets)
    message = _PIPELINE_CONTEXT.sub("", str(exc))  # keys and values of the pipeline's commands
    message = " ".join(message.split())  # one line, whatever the server sent
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    name = type(exc).__name__
    return scrub(f"{name}: {message}" if message else name, secrets)


def _tls_verification_failed(exc: BaseException) -> bool:
    # redis-py wraps the ssl error in a ConnectionError raised inside its except block.
    item: BaseException | None = exc
    for _ in range(5):
        if item is None:
            return False
        if isinstance(item, ssl.SSLCertVerificationError):
            return True
        item = item.__cause__ or item.__context__
    return False


#: The commands a script of ours runs, by the operation that sends it, so that a refusal inside
#: the script (Redis names no command then) tells the operator which permission to grant.
SCRIPT_COMMANDS = {"delete_session": "getrange, unlink"}


def _script_refused(exc: BaseException) -> bool:
    # Redis 7 refuses a command inside a script with a plain error, not NOPERM.
    return isinstance(exc, rexc.ResponseError) and "user executing the script can't run" in str(exc)


def is_refusal(exc: BaseException) -> bool:
    """Whether the server refused *us*: our credentials, or its certificate failed our checks."""
    return isinstance(exc, _AUTH_ERRORS) or _tls_verification_failed(exc)


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the server cannot be reached (and a tier may be skipped)."""
    return isinstance(exc, _UNAVAILABLE_ERRORS) and not is_refusal(exc)


def translate(
    exc: BaseException,
    *,
    what: str,
    key: str | None,
    backend: str,
    secrets: Iterable[str | None],
) -> BackendError:
    """The typed error to raise for ``exc``, which happened while doing ``what``.

    Raise the result outside the ``except`` block that caught ``exc`` (or ``from None`` *and*
    outside it), so that neither ``__cause__`` nor ``__context__`` points at ``exc``.
    """
    detail = sanitize(exc, secrets)
    if isinstance(exc, rexc.NoPermissionError):
        return BackendError(
            f"redis refused {what}: the user lacks an ACL permission for this command or key "
            f"({detail}); grant it with ACL SETUSER, or check the key prefix",
            key=key,
            backend=backend,
        )
    if isinstance(exc, _AUTH_ERRORS):
        return BackendError(
            f"redis refused the credentials during {what} ({detail}); "
            "check the username and password of the URL",
            key=key,
            backend=backend,
        )
    if _script_refused(exc):
        runs = SCRIPT_COMMANDS.get(what)
        return BackendError(
            f"redis refused {what}: the user lacks an ACL permission for a command its script "
            f"runs{f' ({runs})' if runs else ''} ({detail}); grant it with ACL SETUSER "
            "(docs/guarantees.md lists the commands each operation needs)",
            key=key,
            backend=backend,
        )
    if _tls_verification_failed(exc):
        return BackendError(
            f"the TLS certificate of the redis server failed verification during {what} "
            f"({detail}); check ssl_ca_certs and the host name",
            key=key,
            backend=backend,
        )
    if is_unavailable(exc):
        return BackendUnavailableError(
            f"redis is unavailable during {what} ({detail})", key=key, backend=backend
        )
    return BackendError(f"redis failed during {what} ({detail})", key=key, backend=backend)
