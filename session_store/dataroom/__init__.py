"""The data-room facade: the first host app's "enhanced session manager" plan, its names,
shapes and formulas, over a ``SessionStore``.

* :class:`EnhancedSessionManager`: the plan's zero-argument manager, from the environment.
* :class:`SessionManager`: the same facade over a store you configure.
* :class:`SessionMetrics`: the plan's ``session_stats``, created and updated counted apart.
* :func:`session_quality`: the plan's quality assessment
  (:mod:`session_store.dataroom.quality`); the cross-command views and the helpers the plan
  names without a body are defined in :mod:`session_store.dataroom.views`.
* The plan's session classes, re-exported: :class:`EnhancedSessionData`,
  :class:`DocumentExtractionResult`, and :func:`naive_utc` for code that wants the plan's naive
  timestamps.
"""

from session_store.dataroom.manager import EnhancedSessionManager, SessionManager
from session_store.dataroom.metrics import SessionMetrics
from session_store.dataroom.quality import session_quality
from session_store.schema.dataroom import (
    DocumentExtractionResult,
    EnhancedSessionData,
    ExtractionMethod,
    VisionExtraction,
    naive_utc,
)

__all__ = [
    "DocumentExtractionResult",
    "EnhancedSessionData",
    "EnhancedSessionManager",
    "ExtractionMethod",
    "SessionManager",
    "SessionMetrics",
    "VisionExtraction",
    "naive_utc",
    "session_quality",
]
