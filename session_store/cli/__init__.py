"""The ``session-store`` command line (console script ``session-store = session_store.cli:main``).

``demo`` runs the main job on the embedded default; ``get``, ``ls``, ``inspect``, ``delete``,
``copy``, ``migrate`` and ``stats`` look inside a store and move data safely; ``bench`` is the
quick benchmark. See ``docs/cli.md``.
"""

from session_store.cli.app import main
from session_store.cli.demo import default_demo_url

__all__ = ["default_demo_url", "main"]
