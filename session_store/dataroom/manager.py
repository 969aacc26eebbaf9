"""The data-room facade: the first host app's "enhanced session manager" plan, over a
:class:`SessionStore`, with its names, return shapes and formulas.

* :class:`EnhancedSessionManager`: the plan's zero-argument manager, configured from the
  environment (``SESSION_TTL_HOURS``, ``MAX_MEMORY_SESSIONS``, ``REDIS_URL``, and ours, see
  :mod:`session_store.dataroom.config`), with the plan's attributes ``session_ttl_hours``,
  ``max_memory_sessions``, ``redis_enabled`` and ``session_metrics.session_stats``.
* :class:`SessionManager`: the same over a store you configure.

What the plan got wrong is not repeated (docs/migrating-from-plan.md lists each difference with
the one-line change it needs): a store is an atomic read-modify-write
(:meth:`SessionStore.update`), so ``created_at`` survives updates and two concurrent stores
cannot both count as the session's creation; created and updated sessions are counted apart
(:class:`SessionMetrics`); nothing is serialized with ``default=str``; timestamps are aware UTC
inside; the objects returned are snapshots, not live views of storage: a change reaches
storage through ``store_enhanced_session`` or the mapping of :meth:`SessionManager.user_sessions`.

Configuration from the environment: see :mod:`session_store.dataroom.config`; a backend whose
plugin is not installed is the registry's :class:`ConfigurationError`, which says which
distribution to install.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import logging
from collections.abc import Mapping
from typing import Any, Self

import attrs

from session_store.backend import Closing
from session_store.codec.legacy import PlanJsonCodec, adopt_dataroom
from session_store.dataroom.config import (
    DEFAULT_MAX_MEMORY_SESSIONS,
    DEFAULT_TTL_HOURS,
    ENV_MAX_MEMORY_SESSIONS,
    ENV_REDIS_URL,
    ENV_SESSION_STORE_URL,
    ENV_SESSION_TTL_HOURS,
    EnvConfig,
    config_from_env,
)
from session_store.dataroom.metrics import SessionMetrics
from session_store.dataroom.quality import (
    assess_session_completeness,
    assess_session_quality,
    average_extraction_quality,
    has_vision_extractions,
    total_processing_cost,
)
from session_store.dataroom.views import (
    NO_SESSION_ANALYSIS,
    NO_SESSION_VISION,
    compile_processing_summary,
    comprehensive_analysis_data,
    extract_vision_insights,
    format_document_data,
    format_vision_insights,
    vision_specific_data,
)
from session_store.errors import ConfigurationError, SerializationError
from session_store.mapping import SessionMapping, user_key
from session_store.schema.dataroom import EnhancedSessionData
from session_store.store import SessionStore

__all__ = [
    "DEFAULT_MAX_MEMORY_SESSIONS",
    "DEFAULT_TTL_HOURS",
    "ENV_MAX_MEMORY_SESSIONS",
    "ENV_REDIS_URL",
    "ENV_SESSION_STORE_URL",
    "ENV_SESSION_TTL_HOURS",
    "EnhancedSessionManager",
    "EnvConfig",
    "SessionManager",
    "config_from_env",
]

log = logging.getLogger(__name__)


# -- the facade --------------------------------------------------------------------------------
class SessionManager(Closing):
    """The data-room session manager: store, read and score users' sessions.

    Args:
        store: a store of :class:`EnhancedSessionData` sessions, keyed by user id.
        size_sample_every: how often a store's payload size is measured for the metrics (see
            :class:`SessionMetrics`).

    Safe to share between threads (the store and the metrics are).
    """

    def __init__(
        self, store: SessionStore[EnhancedSessionData], *, size_sample_every: int = 16
    ) -> None:
        if store.schema is not EnhancedSessionData:
            raise ConfigurationError(
                "SessionManager needs a SessionStore whose schema is EnhancedSessionData"
            )
        self.store = store
        self.metrics = SessionMetrics(size_sample_every=size_sample_every)
        self._owns_store = False

    @property
    def session_metrics(self) -> SessionMetrics:
        """The plan's name for :attr:`metrics`: ``session_metrics.session_stats``."""
        return self.metrics

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """A manager over the store the environment configures (see the module docstring);
        ``close`` closes it.

        Raises:
            ConfigurationError: a bad variable (named in the message), or a backend whose
                plugin is not installed.
        """
        manager = cls(_store_from(config_from_env(environ)))
        manager._owns_store = True
        log.info("session store from the environment: %s", manager.store.backend.describe())
        return manager

    def __repr__(self) -> str:
        return f"SessionManager({self.store!r})"

    # -- writes --------------------------------------------------------------------------------
    def _build(self, user_id: str, session_data: Mapping[str, Any]) -> EnhancedSessionData:
        """The typed session for the app's dict, read as legacy (version 0) data-room JSON is
        read: every migration, then the schema. Its ``user_id`` is the one it is stored for,
        as the plan's ``EnhancedSessionData(user_id)`` (a dict copied from another user's
        session, or holding an int id, does not say whose it is)."""
        if not isinstance(session_data, Mapping):
            raise SerializationError(
                f"session_data must be a dict, got {type(session_data).__name__}", key=user_id
            )
        data = _json_data(dict(session_data))
        session = adopt_dataroom(self.store.codec, user_id, data)
        if session.user_id != user_id:
            session = attrs.evolve(session, user_id=user_id)
        return session

    def store_enhanced_session(
        self, user_id: str | int, session_data: Mapping[str, Any]
    ) -> EnhancedSessionData:
        """Store the app's session dict for ``user_id``; returns what was stored.

        ``session_data`` is the app's dict: the legacy shape, ``session.to_dict()``, or both,
        with ``extraction_results`` as ``asdict(DocumentExtractionResult(...))`` dicts (the
        objects themselves, and :class:`ExtractionMethod` members, are turned into that data).
        Keys the schema does not know are kept in ``extra``; values of an unexpected type are
        kept as they are. The stored session replaces the previous one
        except for ``created_at``, which an existing session keeps; the read-modify-write is
        atomic, so concurrent stores lose no update and exactly one of them creates the session.

        ``created_at`` follows the plan's rule, "from the dict or now", so that every session
        this method stores has one: the stored session's; else (a new session, or a stored one
        whose creation time is unknown, ``None``: a legacy session that records no time) the
        oldest time ``session_data`` records (see
        :func:`~session_store.schema.builtin.legacy_times`), else the time of this store.

        ``user_id`` is text; an ``int`` (a chat platform's id) means its decimal text, in every
        method, as in :class:`SessionMapping`.

        Raises:
            SerializationError: the data cannot be stored (nothing was written).
            InvalidKeyError: ``user_id`` breaks the key rules.
            ConflictError: other writers won every attempt for the store's ``update_timeout``.
        """
        user_id = user_key(user_id)
        fresh = self._build(user_id, session_data)
        previous: EnhancedSessionData | None = None

        def replace(current: EnhancedSessionData | None) -> EnhancedSessionData:
            nonlocal previous
            previous = current  # the last call is the attempt that was written
            if current is None or current.created_at is None:
                return fresh  # created now, or at the oldest time session_data records
            return attrs.evolve(fresh, created_at=current.created_at)

        stored = self.store.update(user_id, replace)
        assert stored is not None  # replace never returns None
        size = None
        if self.metrics.claim_size_sample():
            size = len(self.store.codec.encode(user_id, stored))
        self.metrics.record_store(previous, stored, size_bytes=size)
        return stored

    def user_sessions(self) -> SessionMapping:
        """The legacy ``user_sessions`` dict over this manager's store: what the app's
        ``user_sessions = {}`` becomes. Every change persists (nested ones included, see
        :class:`SessionMapping`), and its writes count in :attr:`session_metrics` (a write that
        creates a session counts as created)."""
        return SessionMapping(self.store, observer=self._observe_mapping)

    def _typed(self, user_id: str, obj: Any) -> EnhancedSessionData:
        if isinstance(obj, EnhancedSessionData):
            return obj
        return self._build(user_id, obj if isinstance(obj, Mapping) else {})

    def _observe_mapping(self, user_id: str, previous: Any, stored: Any) -> None:
        """Count a write made through :meth:`user_sessions` (``previous`` ``None``: it
        created the session; ``stored`` ``None``: it deleted it). A write that is not a
        data-room session counts with no vision data and no cost."""

        def typed(obj: Any) -> EnhancedSessionData:
            try:
                return self._typed(user_id, obj)
            except SerializationError:
                return EnhancedSessionData(user_id)

        if stored is None:
            self.metrics.record_delete()
            return
        before = None if previous is None else typed(previous)
        self.metrics.claim_size_sample()
        self.metrics.record_store(before, typed(stored))

    def delete_session(self, user_id: str | int) -> bool:
        """Remove the user's session; ``True`` if there was one."""
        deleted = self.store.delete(user_key(user_id))
        if deleted:
            self.metrics.record_delete()
        return deleted

    # -- reads ---------------------------------------------------------------------------------
    def get_enhanced_session(self, user_id: str | int) -> EnhancedSessionData | None:
        """The user's session (a legacy dict session loads typed), or ``None``.

        The object is a copy: changing it changes nothing stored until it is stored again.
        """
        return self.store.load(user_key(user_id))

    def list_sessions(self) -> list[str]:
        """The user ids with a stored session, sorted. Scans the backend: not for the hot
        path."""
        return sorted(self.store.keys())

    def get_metrics(self) -> dict[str, Any]:
        """The counters of :class:`SessionMetrics` and the (redacted) backend description."""
        return {**self.metrics.as_dict(), "backend": self.store.backend.describe()}

    def get_comprehensive_analysis_data(self, user_id: str | int) -> dict[str, Any]:
        """Everything a command needs about the user's session, in the plan's shape; for a
        user without a session ``{'error': 'No session found for user'}``.

        Keys: ``user_id``, ``session_created``, ``last_accessed`` (naive UTC ISO strings, as
        the plan wrote them), ``documents``, ``document_summary``, ``vision_insights``,
        ``processing_summary``, ``market_research``, ``cross_document_insights``,
        ``session_quality`` (the plan's six quality keys and its formula). The helpers the plan
        names without a body are defined in :mod:`session_store.dataroom.views` and
        :mod:`session_store.dataroom.quality`.
        """
        session = self.get_enhanced_session(user_id)
        if session is None:
            return dict(NO_SESSION_ANALYSIS)
        return {**comprehensive_analysis_data(session), "user_id": user_id}  # as asked, as the plan

    def get_vision_specific_data(self, user_id: str | int) -> dict[str, Any]:
        """The vision side of the user's session, in the plan's shape (``has_vision_data``,
        ``vision_insights``, ``visual_elements_summary``, ``cost_summary`` with
        ``total_cost`` and ``pages_processed``); for a user without a session
        ``{'has_vision_data': False, 'vision_insights': []}``."""
        session = self.get_enhanced_session(user_id)
        if session is None:
            return copy.deepcopy(dict(NO_SESSION_VISION))
        return vision_specific_data(session)

    # -- the plan's helpers, under its names (defined in views.py and quality.py) -------------
    def _assess_session_quality(self, session: EnhancedSessionData) -> dict[str, Any]:
        return assess_session_quality(session)

    def _assess_session_completeness(self, session: EnhancedSessionData) -> float:
        return assess_session_completeness(session)

    def _calculate_average_extraction_quality(self, session: EnhancedSessionData) -> float:
        return average_extraction_quality(session)

    def _calculate_total_processing_cost(self, session: EnhancedSessionData) -> float:
        return total_processing_cost(session)

    def _has_vision_extractions(self, session: EnhancedSessionData) -> bool:
        return has_vision_extractions(session)

    def _format_vision_insights(self, vision_extractions: Any) -> list[dict[str, Any]]:
        return format_vision_insights(vision_extractions)

    def _extract_vision_insights(self, extraction_results: Any) -> list[dict[str, Any]]:
        return extract_vision_insights(extraction_results)

    def _format_document_data(self, extraction_results: Any) -> dict[str, Any]:
        return format_document_data(extraction_results)

    def _compile_processing_summary(self, processing_metadata: Any) -> dict[str, Any]:
        return compile_processing_summary(processing_metadata)

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the store if :meth:`from_env` opened it."""
        if self._owns_store:
            self.store.close()


def _store_from(config: EnvConfig) -> SessionStore[EnhancedSessionData]:
    """The store the environment's ``config`` describes, for ``from_env`` and
    ``EnhancedSessionManager()`` alike: during a rolling deploy (``plan-json``) its codec writes
    the plan's JSON, which the plan's processes read (and refuses encryption keys)."""
    codec = PlanJsonCodec() if config.write_format == "plan-json" else None
    return SessionStore(config.url, EnhancedSessionData, ttl=config.ttl, codec=codec)


def _json_data(value: Any) -> Any:
    """The app's data as JSON data: dataclasses (``DocumentExtractionResult``) as
    ``dataclasses.asdict``, enum members as their values, tuples as lists; the rest as is."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_data(dataclasses.asdict(value))
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _json_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_data(v) for v in value]
    return value


class EnhancedSessionManager(SessionManager):
    """The plan's ``EnhancedSessionManager()``: no arguments, configured from the environment.

    Attributes (the plan's):
        session_ttl_hours: ``SESSION_TTL_HOURS`` (default 24; an ``int`` when whole).
        max_memory_sessions: ``MAX_MEMORY_SESSIONS`` (default 1000), the memory tier's bound.
        redis_enabled: whether a Redis tier is configured (``REDIS_URL``, or a Redis tier in
            ``SESSION_STORE_URL``). Unlike the plan it does not ping at start-up: a Redis that
            is down is the chain's outage to handle, not a silent switch to memory only.
        session_metrics: :class:`SessionMetrics`; ``session_metrics.session_stats``.

    Args:
        environ: the variables to read (default ``os.environ``); for tests.

    Raises:
        ConfigurationError: a bad variable (named), a backend whose plugin is missing, or
            ``SESSION_STORE_WRITE_FORMAT=plan-json`` with encryption keys configured.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        config = config_from_env(environ)
        super().__init__(_store_from(config))
        self._owns_store = True
        hours = config.ttl_hours
        self.session_ttl_hours: int | float = int(hours) if hours.is_integer() else hours
        self.max_memory_sessions = config.max_memory_sessions
        self.redis_enabled = config.redis_enabled
        self.write_format = config.write_format
        log.info("session store from the environment: %s", self.store.backend.describe())

    def __repr__(self) -> str:
        return f"EnhancedSessionManager({self.store!r})"
