"""The data-room facade: the first host app's session manager plan, over a ``SessionStore``.

* :class:`SessionManager`: ``store_enhanced_session``, ``get_enhanced_session``,
  ``get_comprehensive_analysis_data``, ``get_vision_specific_data``, ``delete_session``,
  ``list_sessions``, ``get_metrics``, and ``from_env`` for the app's environment variables.
* :class:`SessionMetrics`: created and updated sessions counted apart, vision sessions,
  processing cost, average payload size.
* :func:`session_quality`: the plan's quality score, its components defined in
  :mod:`session_store.dataroom.quality`.
"""

from session_store.dataroom.manager import SessionManager
from session_store.dataroom.metrics import SessionMetrics
from session_store.dataroom.quality import session_quality

__all__ = ["SessionManager", "SessionMetrics", "session_quality"]
