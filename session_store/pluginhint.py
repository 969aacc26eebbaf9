"""What to install for a backend whose plugin is missing, in the way that fits how
session-store itself was installed.

From a checkout of the repository (``pip install -e .``) the plugins are directories of it,
``backends/<name>``, installed by path: their distribution name alone would make pip fetch a
release from the package index, not the checkout's code. From the package index they are
extras of ``session-store`` (``pip install "session-store[redis]"``). The registry puts
:func:`plugin_install_hint` in its "no backend is installed for scheme ..." error.
"""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Literal

__all__ = ["plugin_install_hint"]


#: The core distribution, whose extras name the plugins (``session-store[redis]``).
_CORE = "session-store"
_PLUGIN_PREFIX = "session-store-"


def _checkout_root() -> Path:
    """Where a checkout of the repository would be, if session-store runs from one (an
    editable install): the directory above the ``session_store`` package."""
    return Path(__file__).resolve().parent.parent


def _checkout_plugin(distribution: str, root: Path) -> Path | None:
    """The directory of ``distribution`` in the checkout at ``root``: ``backends/<name>``
    whose ``pyproject.toml`` names it; ``None`` if there is none (not a checkout, or not of it)."""
    directory = root / "backends" / distribution.removeprefix(_PLUGIN_PREFIX)
    try:
        project = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    name = project.get("project", {}).get("name")
    return directory if name == distribution else None


def _shown_path(path: Path) -> str:
    """``path`` as a command line would name it: relative (``./backends/redis``) when it is
    under the current directory, else absolute."""
    try:
        relative = path.resolve().relative_to(Path.cwd().resolve())
    except (OSError, ValueError):
        return str(path)
    return f"./{relative.as_posix()}"


def _pip() -> str:
    """How to run the pip of the Python running this: the virtual environment's own (whatever
    ``PATH`` finds first), or plain ``pip`` outside one."""
    if sys.prefix == sys.base_prefix:
        return "pip"
    executable = Path(sys.executable)
    try:
        shown = executable.relative_to(Path.cwd()).as_posix()
    except ValueError:
        shown = str(executable)
    return f"{shown} -m pip"


def _core_extras() -> frozenset[str]:
    try:
        return frozenset(metadata.metadata(_CORE).get_all("Provides-Extra") or ())
    except metadata.PackageNotFoundError:
        return frozenset()


def plugin_install_hint(
    distribution: str, *, checkout: Path | Literal["detect"] | None = "detect"
) -> str:
    """The command that installs the plugin ``distribution`` (``session-store-redis``), for
    the error raised when a URL names a scheme whose plugin is missing.

    From a checkout of the repository (session-store installed with ``pip install -e .``), the
    plugin is its directory, ``pip install -e ./backends/redis``: the name alone would fetch a
    release from the package index, not this checkout's code. Otherwise it is the extra of
    ``session-store`` (``pip install "session-store[redis]"``), or the distribution's name.
    pip is the running Python's (``.venv/bin/python -m pip`` in a virtual environment).

    Args:
        distribution: the plugin's distribution name.
        checkout: the repository root to look in (default: where this package was loaded
            from); ``None``: not a checkout.
    """
    root = _checkout_root() if checkout == "detect" else checkout
    directory = None if root is None else _checkout_plugin(distribution, root)
    if directory is not None:
        return f"{_pip()} install -e {_shown_path(directory)} (from this checkout)"
    extra = distribution.removeprefix(_PLUGIN_PREFIX)
    if distribution.startswith(_PLUGIN_PREFIX) and extra in _core_extras():
        return f'{_pip()} install "{_CORE}[{extra}]"'
    return f"{_pip()} install {distribution}"
