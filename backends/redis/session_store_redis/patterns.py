"""Redis glob patterns built from literal text, for ``SCAN MATCH``.

Redis matches ``SCAN``'s ``MATCH`` argument with its own glob dialect (``stringmatchlen``), where
``*``, ``?``, ``[``, ``]`` and ``\\`` are special and a backslash makes the next character literal.
Everything else, newlines and multi-byte UTF-8 included, matches itself byte for byte.
"""

from __future__ import annotations

__all__ = ["GLOB_SPECIAL", "escape_glob", "prefix_pattern"]

#: Characters with a meaning in a Redis glob pattern.
GLOB_SPECIAL = frozenset("*?[]\\")

_ESCAPES = str.maketrans({char: "\\" + char for char in GLOB_SPECIAL})


def escape_glob(text: str) -> str:
    """``text`` as a pattern that matches exactly ``text``."""
    return text.translate(_ESCAPES)


def prefix_pattern(prefix: str) -> str:
    """A pattern matching every key that starts with the literal ``prefix``."""
    return escape_glob(prefix) + "*"
