"""What Redis Cluster's own conditions mean, for the sync and asyncio cluster backends alike.

Besides the standalone mapping (:mod:`session_store_redis.errors`), ``CLUSTERDOWN``,
``TRYAGAIN``, an uncovered slot, too many redirections and no reachable startup node are
:class:`~session_store.errors.BackendUnavailableError` and are retried like a failed connection;
a server that is not in cluster mode is a :class:`~session_store.errors.BackendError`.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis.exceptions import (
    AskError,
    ClusterDownError,
    ClusterError,
    RedisClusterException,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from session_store.errors import BackendError, BackendUnavailableError
from session_store_redis.client import retryable
from session_store_redis.errors import is_refusal, sanitize, translate

__all__ = ["cluster_retryable", "is_cluster_error", "migrating", "translate_cluster"]


# Cluster conditions that clear by themselves (a failover, a migration, a topology change).
_TRANSIENT: tuple[type[BaseException], ...] = (ClusterDownError, TryAgainError)
_TRANSIENT_MESSAGES = ("cannot be connected", "not covered", "No targets", "TTL exhausted")


def is_cluster_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a cluster condition (:func:`translate_cluster`'s), not a server's."""
    return isinstance(exc, (*_TRANSIENT, RedisClusterException, ClusterError))


def cluster_retryable(error: BaseException) -> bool:
    """Whether a cluster-level failure may clear by running the operation again (shared by the
    sync and async backends; a ``MOVED`` also wants the slot map refreshed, by the caller)."""
    if isinstance(error, (*_TRANSIENT, AskError)):
        return True
    if isinstance(error, RedisClusterException):  # no startup node answered, say
        return _cluster_unavailable(error) and not _refused(error) and not _timed_out(error)
    return retryable(error)


def translate_cluster(
    exc: BaseException, *, what: str, key: str | None, backend: str, secrets: Iterable[str | None]
) -> BackendError:
    """The typed error of a failed call to a cluster, no secret in it: a cluster condition
    (:func:`is_cluster_error`) its own way, any other as a single server's."""
    if not is_cluster_error(exc):
        return translate(exc, what=what, key=key, backend=backend, secrets=secrets)
    secrets = tuple(secrets)
    detail = sanitize(exc, secrets)
    cause = _refused(exc)
    if cause is not None:  # wrapped by the client's start-up: refused credentials, say
        error = translate(cause, what=what, key=key, backend=backend, secrets=secrets)
    elif "Cluster mode is not enabled" in str(exc):
        error = BackendError(
            f"redis is not in cluster mode during {what} ({detail}); "
            "use a redis:// URL for a single server",
            key=key,
            backend=backend,
        )
    elif isinstance(exc, _TRANSIENT) or _cluster_unavailable(exc):
        error = BackendUnavailableError(
            f"redis cluster is unavailable during {what} ({detail})", key=key, backend=backend
        )
    else:
        error = BackendError(
            f"redis cluster failed during {what} ({detail})", key=key, backend=backend
        )
    return error


#: What a multi-key command may fail with while its slot migrates (see :func:`migrating`).
MULTI_KEY_REFUSALS: tuple[type[BaseException], ...] = (TryAgainError, ClusterError)


def migrating(exc: BaseException) -> bool:
    """Whether a multi-key command failed because its slot is being migrated (its keys split
    between two nodes): then one command per key, each following its ``ASK`` redirection, does
    it. A cluster that is down is not migrating."""
    if isinstance(exc, ClusterDownError):
        return False
    return isinstance(exc, TryAgainError) or "TTL exhausted" in str(exc) or "TRYAGAIN" in str(exc)


def _cluster_unavailable(exc: BaseException) -> bool:
    """Whether a cluster-level error means the cluster cannot serve now (rather than that we
    asked for something wrong)."""
    if isinstance(exc, _TRANSIENT):
        return True
    text = str(exc)
    return any(marker in text for marker in _TRANSIENT_MESSAGES) and (
        "Cluster mode is not enabled" not in text
    )


def _timed_out(exc: BaseException) -> bool:
    """Whether a start-up error wraps a timeout (retrying would multiply what it costs)."""
    item: BaseException | None = exc
    for _ in range(5):
        if item is None:
            return False
        if isinstance(item, RedisTimeoutError | TimeoutError):
            return True
        item = item.__cause__ or item.__context__
    return False


def _refused(exc: BaseException) -> BaseException | None:
    """The refusal (credentials, certificate) a start-up error wraps, if any."""
    item: BaseException | None = exc
    for _ in range(5):
        if item is None:
            return None
        if item is not exc and is_refusal(item):
            return item
        item = item.__cause__ or item.__context__
    return None
