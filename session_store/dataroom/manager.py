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

Configuration from the environment (:meth:`SessionManager.from_env`, :func:`config_from_env`):

``SESSION_STORE_URL``
    A backend URL or chain string; when set (non-empty), it is used as is.
``MAX_MEMORY_SESSIONS`` (default 1000), ``REDIS_URL`` (optional)
    Otherwise the chain is ``memory://?max_entries=MAX_MEMORY_SESSIONS``, then ``REDIS_URL`` if
    set, then ``diskcache://<cache dir>/session-store/sessions`` where the cache directory is
    ``$XDG_CACHE_HOME`` (when absolute, as the XDG spec asks) or ``~/.cache``: memory first,
    nothing lost on eviction, no server needed.
``SESSION_TTL_HOURS`` (default 24)
    How long a stored session lives, in hours (a positive number; fractions allowed).

An empty variable counts as unset. A bad value is a :class:`ConfigurationError` naming the
variable; a backend whose plugin is not installed is the registry's :class:`ConfigurationError`,
which says which distribution to install.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote

import attrs

from session_store.dataroom.metrics import SessionMetrics
from session_store.dataroom.quality import (
    extraction_results,
    legacy_document_ok,
    legacy_documents,
    market_research,
    number,
    session_has_vision,
    session_quality,
    uses_vision,
    vision_extractions,
)
from session_store.errors import ConfigurationError, SerializationError
from session_store.registry import split_chain
from session_store.schema.builtin import dataroom_v0_to_v1
from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
)
from session_store.store import SessionStore
from session_store.urls import parse_url, redact_url

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

ENV_SESSION_STORE_URL: Final = "SESSION_STORE_URL"
ENV_REDIS_URL: Final = "REDIS_URL"
ENV_SESSION_TTL_HOURS: Final = "SESSION_TTL_HOURS"
ENV_MAX_MEMORY_SESSIONS: Final = "MAX_MEMORY_SESSIONS"
DEFAULT_TTL_HOURS: Final = 24.0
DEFAULT_MAX_MEMORY_SESSIONS: Final = 1000


# -- configuration from the environment --------------------------------------------------------
@attrs.frozen
class EnvConfig:
    """What the environment asks for: a backend URL or chain string and a TTL in seconds.

    The ``repr`` masks passwords in the URL.
    """

    url: str = attrs.field(repr=redact_url)
    ttl: float


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    return value.strip() if value and value.strip() else None


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    text = _env(environ, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, got {text!r}")
    return value


def _positive_hours(environ: Mapping[str, str], name: str, default: float) -> float:
    text = _env(environ, name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0 and math.isfinite(value * 3600)):
        raise ConfigurationError(f"{name} must be a positive number of hours, got {text!r}")
    return value


def _checked_chain(url: str, name: str) -> str:
    """``url`` if every tier parses; else a ConfigurationError naming the variable."""
    try:
        for tier in split_chain(url):
            parse_url(tier)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{name}: {exc.message}") from None
    return url


def _cache_dir(environ: Mapping[str, str]) -> Path:
    xdg = _env(environ, "XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg)
    home = _env(environ, "HOME")
    return (Path(home) if home else Path.home()) / ".cache"


def config_from_env(environ: Mapping[str, str] | None = None) -> EnvConfig:
    """The backend URL and TTL the environment asks for (see the module docstring).

    Args:
        environ: the variables to read (default: ``os.environ``).

    Raises:
        ConfigurationError: a variable holds a bad value; the message names it.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    ttl = _positive_hours(env, ENV_SESSION_TTL_HOURS, DEFAULT_TTL_HOURS) * 3600
    max_sessions = _positive_int(env, ENV_MAX_MEMORY_SESSIONS, DEFAULT_MAX_MEMORY_SESSIONS)
    url = _env(env, ENV_SESSION_STORE_URL)
    if url is not None:
        return EnvConfig(_checked_chain(url, ENV_SESSION_STORE_URL), ttl)
    tiers = [f"memory://?max_entries={max_sessions}"]
    redis_url = _env(env, ENV_REDIS_URL)
    if redis_url is not None:
        # a "|" would split the chain; percent-encoded, the URL parser decodes it back
        tiers.append(_checked_chain(redis_url.replace("|", "%7C"), ENV_REDIS_URL))
    directory = (_cache_dir(env) / "session-store" / "sessions").as_posix()
    tiers.append(f"diskcache://{quote(directory)}")
    return EnvConfig(" | ".join(tiers), ttl)


# -- read views (JSON-ready dicts) -------------------------------------------------------------
def _method_name(result: DocumentExtractionResult) -> Any:
    method: object = result.extraction_method
    return method.value if isinstance(method, ExtractionMethod) else method


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _content(result: DocumentExtractionResult) -> str:
    try:
        return result.get_all_content()
    except (TypeError, AttributeError):  # a misfit field kept from stored data
        return _text(result.text_content)


def _typed_document(result: DocumentExtractionResult) -> dict[str, Any]:
    """One extraction result as a document entry (the keys of ``get_extraction_summary``)."""
    insights: object = result.insights
    return {
        "document_id": result.document_id,
        "filename": result.filename,
        "extraction_method": _method_name(result),
        "text_length": len(_text(result.text_content)),
        "vision_extractions": len(vision_extractions(result)),
        "has_vision": uses_vision(result),
        "insights": len(insights) if isinstance(insights, list) else 0,
        "quality_score": number(result.quality_score),
        "completeness_score": number(result.completeness_score),
        "processing_time_s": number(result.processing_time_s),
        "processing_cost_usd": number(result.processing_cost_usd),
        "processing_strategy": result.processing_strategy,
        "source": "extraction_results",
        "content": _content(result),
    }


def _legacy_document(index: int, doc: object) -> dict[str, Any]:
    """One legacy processed document as a document entry with the same keys.

    Its scores follow the quality definitions: quality 1.0 if it was processed without error,
    completeness 1.0 if it has content, else 0.0.
    """
    fields: Mapping[str, Any] = doc if isinstance(doc, Mapping) else {}
    name = _text(fields.get("name"))
    content = _text(fields.get("content"))
    metadata = fields.get("metadata")
    error = metadata.get("error") if isinstance(metadata, Mapping) else None
    return {
        "document_id": name or f"document_{index}",
        "filename": name,
        "extraction_method": ExtractionMethod.TEXT_ONLY.value,
        "text_length": len(content),
        "vision_extractions": 0,
        "has_vision": False,
        "insights": 0,
        "quality_score": 1.0 if legacy_document_ok(doc) else 0.0,
        "completeness_score": 1.0 if content.strip() else 0.0,
        "processing_time_s": 0.0,
        "processing_cost_usd": 0.0,
        "processing_strategy": "",
        "source": "processed_documents",
        "content": content,
        "type": fields.get("type"),
        "metadata": metadata if metadata is not None else {},
        "error": error,
    }


def _documents(session: EnhancedSessionData) -> list[dict[str, Any]]:
    results = extraction_results(session)
    if results:
        return [_typed_document(r) for r in results.values()]
    return [_legacy_document(i, d) for i, d in enumerate(legacy_documents(session))]


def _vision_insights(session: EnhancedSessionData) -> list[dict[str, Any]]:
    """Every typed vision extraction, with the document it came from."""
    return [
        {
            "document_id": result.document_id,
            "filename": result.filename,
            "page_number": vision.page_number,
            "content_type": vision.content_type,
            "description": vision.description,
            "extracted_text": vision.extracted_text,
            "data_points": vision.data_points,
            "confidence": number(vision.confidence),
            "model": vision.model,
            "cost_usd": number(vision.cost_usd),
        }
        for result in extraction_results(session).values()
        for vision in vision_extractions(result)
    ]


def _vision_cost(result: DocumentExtractionResult) -> float:
    """The sum of the vision extractions' ``cost_usd``; when that is 0, the processor's
    ``vision_processing_summary["total_estimated_cost"]`` (the plan's key) if it holds one."""
    cost = sum((number(v.cost_usd) for v in vision_extractions(result)), 0.0)
    summary: object = result.vision_processing_summary
    if cost == 0 and isinstance(summary, Mapping):
        cost = max(0.0, number(summary.get("total_estimated_cost")))
    return cost


def _pages_processed(result: DocumentExtractionResult) -> int:
    """Distinct pages with a vision extraction, or the summary's ``pages_analyzed`` if more."""
    pages = {v.page_number for v in vision_extractions(result)}
    summary: object = result.vision_processing_summary
    analyzed = _count(summary.get("pages_analyzed")) if isinstance(summary, Mapping) else 0
    return max(len(pages), analyzed)


def _processing_summary(session: EnhancedSessionData) -> dict[str, Any]:
    """Counts, total time and cost, and methods used, over the session's documents."""
    results = list(extraction_results(session).values())
    methods: dict[str, int] = {}
    for result in results:
        name = str(_method_name(result))
        methods[name] = methods.get(name, 0) + 1
    legacy = [] if results else legacy_documents(session)
    if legacy:
        methods[ExtractionMethod.TEXT_ONLY.value] = len(legacy)
    strategies = {r.processing_strategy for r in results if isinstance(r.processing_strategy, str)}
    return {
        "document_count": len(results) or len(legacy),
        "document_source": (
            "extraction_results" if results else "processed_documents" if legacy else "none"
        ),
        "vision_documents": sum(map(uses_vision, results)),
        "vision_extractions": sum(len(vision_extractions(r)) for r in results),
        "total_processing_time_s": sum((number(r.processing_time_s) for r in results), 0.0),
        "total_processing_cost_usd": sum((number(r.processing_cost_usd) for r in results), 0.0),
        "methods_used": methods,
        "strategies_used": sorted(s for s in strategies if s),
        "processing_metadata": session.processing_metadata,
    }


def _iso(value: object) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


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
            "session_created": _iso(session.created_at),
            "last_accessed": _iso(session.last_accessed),
            "documents": _documents(session),
            "document_summary": session.document_summary,
            "vision_insights": _vision_insights(session),
            "processing_summary": _processing_summary(session),
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
            cost = _vision_cost(result)
            per_document[doc_id] = cost
            pages += _pages_processed(result)
            documents[doc_id] = {
                "filename": result.filename,
                "extraction_method": _method_name(result),
                "vision_extractions": len(visions),
                "pages": sorted({v.page_number for v in visions if isinstance(v.page_number, int)}),
                "insights": result.insights,
                "vision_processing_summary": result.vision_processing_summary,
                "vision_cost_usd": cost,
            }
        insights = _vision_insights(session)
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
