"""Turn a literal key prefix into a half-open range ``[prefix, upper_bound(prefix))``.

SQLite compares TEXT with the BINARY collation, byte by byte over UTF-8, and UTF-8 byte order is
code point order, which is also how Python compares ``str``. So the stored keys starting with
``prefix`` are exactly those ``k`` with ``prefix <= k < upper_bound(prefix)``: a range an index
answers directly, with no pattern (``LIKE``, ``GLOB``) that could misread ``%``, ``_``, ``*`` or
``?`` and no string function (``substr``, ``length``) that could stop at a NUL.
"""

from __future__ import annotations

__all__ = ["upper_bound"]

_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def upper_bound(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``.

    Trailing U+10FFFF characters cannot be incremented, so they are dropped and the character
    before them is incremented instead, skipping the surrogate block (no valid key holds one).

    Raises:
        ValueError: ``prefix`` is empty or only U+10FFFF characters, so no such bound exists.
            A namespaced key always holds the separator U+001F, so a store never asks for one.
    """
    stem = prefix.rstrip(chr(_MAX_CODE_POINT))
    if not stem:
        raise ValueError("every string starts with this prefix: there is no upper bound")
    following = ord(stem[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return stem[:-1] + chr(following)
