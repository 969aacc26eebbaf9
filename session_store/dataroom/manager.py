"""``SessionManager``: the data-room facade, with the method names and return shapes of the
first host app's "enhanced session manager" plan, over a :class:`SessionStore`.

What the plan got wrong is not repeated: a store is an atomic read-modify-write
(:meth:`SessionStore.update`), so ``created_at`` survives updates and two concurrent stores
cannot both count as the session's creation; created and updated sessions are counted apart
(:class:`SessionMetrics`); nothing is serialized with ``default=str``; timestamps are aware UTC;
the objects returned are snapshots, not live views of storage: a change reaches storage only
through another :meth:`SessionManager.store_enhanced_session`.

The read APIs give meaningful answers on legacy sessions (the plain dicts the app stored before
the plan): documents come from ``processed_documents`` when there are no extraction results,
market research from the legacy ``market_research`` key. Every dict they return is JSON-ready.

Configuration from the environment (:meth:`SessionManager.from_env`): see
:mod:`session_store.dataroom.config`; a backend whose plugin is not installed is the registry's
:class:`ConfigurationError`, which says which distribution to install.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import attrs

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
    extraction_results,
    market_research,
    session_has_vision,
    session_quality,
    uses_vision,
    vision_extractions,
)
from session_store.dataroom.views import (
    documents,
    iso,
    method_name,
    pages_processed,
    processing_summary,
    vision_cost,
    vision_insights,
)
from session_store.errors import ConfigurationError, SerializationError
from session_store.schema.builtin import dataroom_v0_to_v1
from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
)
from session_store.store import SessionStore

__all__ = [
    "DEFAULT_MAX_MEMORY_SESSIONS",
    "DEFAULT_TTL_HOURS",
    "ENV_MAX_MEMORY_SESSIONS",
    "ENV_REDIS_URL",
    "ENV_SESSION_STORE_URL",
    "ENV_SESSION_TTL_HOURS",
    "EnvConfig",
    "SessionManager",
    "config_from_env",
]

log = logging.getLogger(__name__)


# -- the facade --------------------------------------------------------------------------------
class SessionManager:
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """A manager over the store the environment configures (see the module docstring);
        ``close`` closes it.

        Raises:
            ConfigurationError: a bad variable (named in the message), or a backend whose
                plugin is not installed.
        """
        config = config_from_env(environ)
        manager = cls(SessionStore(config.url, EnhancedSessionData, ttl=config.ttl))
        manager._owns_store = True
        log.info("session store from the environment: %s", manager.store.backend.describe())
        return manager

    def __repr__(self) -> str:
        return f"SessionManager({self.store!r})"

    # -- writes --------------------------------------------------------------------------------
    def _build(self, user_id: str, session_data: Mapping[str, Any]) -> EnhancedSessionData:
        """The typed session for the app's dict, as the legacy (v0) migration reads it."""
        if not isinstance(session_data, Mapping):
            raise SerializationError(
                f"session_data must be a dict, got {type(session_data).__name__}", key=user_id
            )
        data = dict(session_data)
        results = data.get("extraction_results")
        if isinstance(results, Mapping) and any(
            isinstance(r, DocumentExtractionResult) for r in results.values()
        ):  # typed results handed in: as data, so the whole mapping structures alike
            converter = self.store.codec.converter
            data["extraction_results"] = {
                k: converter.unstructure(r) if isinstance(r, DocumentExtractionResult) else r
                for k, r in results.items()
            }
        try:
            session = self.store.codec.converter.structure(
                dataroom_v0_to_v1(data, user_id), EnhancedSessionData
            )
        except Exception as exc:
            raise SerializationError(
                f"cannot build a session: {type(exc).__name__}: {exc}", key=user_id
            ) from None
        assert isinstance(session, EnhancedSessionData)
        return session

    def store_enhanced_session(
        self, user_id: str, session_data: dict[str, Any]
    ) -> EnhancedSessionData:
        """Store the app's session dict for ``user_id``; returns what was stored.

        ``session_data`` is the app's dict: the legacy shape, and/or the schema's fields, with
        ``extraction_results`` as dicts of :class:`DocumentExtractionResult` fields (or the
        objects themselves). Keys the schema does not know are kept in ``extra``; values of an
        unexpected type are kept as they are. The stored session replaces the previous one
        except for ``created_at``, which an existing session keeps; the read-modify-write is
        atomic, so concurrent stores lose no update and exactly one of them creates the session.

        Raises:
            SerializationError: the data cannot be stored (nothing was written).
            InvalidKeyError: ``user_id`` breaks the key rules.
            ConflictError: other writers won every attempt for the store's ``update_timeout``.
        """
        fresh = self._build(user_id, session_data)
        previous: EnhancedSessionData | None = None

        def replace(current: EnhancedSessionData | None) -> EnhancedSessionData:
            nonlocal previous
            previous = current  # the last call is the attempt that was written
            if current is None:
                return fresh
            return attrs.evolve(fresh, created_at=current.created_at)

        stored = self.store.update(user_id, replace)
        assert stored is not None  # replace never returns None
        size = None
        if self.metrics.claim_size_sample():
            size = len(self.store.codec.encode(user_id, stored))
        self.metrics.record_store(previous, stored, size_bytes=size)
        return stored

    def delete_session(self, user_id: str) -> bool:
        """Remove the user's session; ``True`` if there was one."""
        deleted = self.store.delete(user_id)
        if deleted:
            self.metrics.record_delete()
        return deleted

    # -- reads ---------------------------------------------------------------------------------
    def get_enhanced_session(self, user_id: str) -> EnhancedSessionData | None:
        """The user's session (a legacy dict session loads typed), or ``None``.

        The object is a copy: changing it changes nothing stored until it is stored again.
        """
        return self.store.load(user_id)

    def list_sessions(self) -> list[str]:
        """The user ids with a stored session, sorted. Scans the backend: not for the hot
        path."""
        return sorted(self.store.keys())

    def get_metrics(self) -> dict[str, Any]:
        """The counters of :class:`SessionMetrics` and the (redacted) backend description."""
        return {**self.metrics.as_dict(), "backend": self.store.backend.describe()}

    def get_comprehensive_analysis_data(self, user_id: str) -> dict[str, Any] | None:
        """Everything a command needs about the user's session, or ``None`` if there is none.

        Keys: ``user_id``, ``session_created``, ``last_accessed`` (ISO 8601),
        ``documents`` (one entry per extraction result, or per legacy processed document when
        there are none: the keys of ``get_extraction_summary`` plus ``source`` and ``content``),
        ``document_summary``, ``vision_insights`` (one entry per vision extraction),
        ``processing_summary`` (counts, total time and cost, methods used),
        ``market_research`` (``market_research_data``, else the legacy ``market_research``),
        ``cross_document_insights``, ``extra`` (every key the schema does not know, such as the
        legacy ``analysis_result``), and ``session_quality`` (see
        :mod:`session_store.dataroom.quality` for the exact definitions).
        """
        session = self.get_enhanced_session(user_id)
        if session is None:
            return None
        return {
            "user_id": session.user_id,
            "session_created": iso(session.created_at),
            "last_accessed": iso(session.last_accessed),
            "documents": documents(session),
            "document_summary": session.document_summary,
            "vision_insights": vision_insights(session),
            "processing_summary": processing_summary(session),
            "market_research": market_research(session),
            "cross_document_insights": session.cross_document_insights,
            "extra": session.extra,
            "session_quality": session_quality(session),
        }

    def get_vision_specific_data(self, user_id: str) -> dict[str, Any] | None:
        """The vision side of the user's session, or ``None`` if there is none.

        Keys: ``user_id``; ``has_vision_data``; ``vision_insights`` (one entry per vision
        extraction); ``documents`` (per document that used vision: filename, method, count of
        vision extractions, pages, insights, the processor's summary, vision cost);
        ``visual_elements_summary`` (vision extractions per ``content_type``); ``cost_summary``
        with ``total_cost`` (USD), ``per_document`` (document id -> vision cost),
        ``vision_extractions`` (count) and ``pages_processed``. A document's vision cost is
        the sum of its vision extractions' ``cost_usd``, or when that is 0 its
        ``vision_processing_summary["total_estimated_cost"]``.
        """
        session = self.get_enhanced_session(user_id)
        if session is None:
            return None
        documents: dict[str, Any] = {}
        elements: dict[str, int] = {}
        per_document: dict[str, float] = {}
        pages = 0
        for doc_id, result in extraction_results(session).items():
            if not uses_vision(result):
                continue
            visions = vision_extractions(result)
            for vision in visions:
                kind = str(vision.content_type)
                elements[kind] = elements.get(kind, 0) + 1
            cost = vision_cost(result)
            per_document[doc_id] = cost
            pages += pages_processed(result)
            documents[doc_id] = {
                "filename": result.filename,
                "extraction_method": method_name(result),
                "vision_extractions": len(visions),
                "pages": sorted({v.page_number for v in visions if isinstance(v.page_number, int)}),
                "insights": result.insights,
                "vision_processing_summary": result.vision_processing_summary,
                "vision_cost_usd": cost,
            }
        insights = vision_insights(session)
        return {
            "user_id": session.user_id,
            "has_vision_data": session_has_vision(session),
            "vision_insights": insights,
            "documents": documents,
            "visual_elements_summary": elements,
            "cost_summary": {
                "total_cost": sum(per_document.values(), 0.0),
                "per_document": per_document,
                "vision_extractions": len(insights),
                "pages_processed": pages,
            },
        }

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the store if :meth:`from_env` opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
