"""Hostile input for the conformance kits: keys that look dangerous to some store but are valid,
values that are never keys, and scan prefixes that are pattern characters somewhere."""

from __future__ import annotations

from session_store.keys import MAX_KEY_BYTES

__all__ = ["HOSTILE_KEYS", "HOSTILE_PREFIXES", "INVALID_KEYS"]

#: Keys that look dangerous to some store but are valid and must round-trip exactly.
HOSTILE_KEYS = (
    "*",
    "?",
    "[ab]",
    "a*b?c[d]e",
    "\\",
    "\\*",
    "line\nbreak",
    "tab\there",
    "../../x",
    "/etc/passwd",
    "%2F%00",
    "日本語キー",
    "e\u0301",  # not normalised: distinct from the next key
    "\u00e9",
    "emoji 🙂",
    "session:other",
    "{hash}tag",
    "' OR 1=1 --",
    "\x00",
    "nul\x00byte",
    "sep\x1fkey",
    "\x1f",
    "x" * MAX_KEY_BYTES,
    "é" * (MAX_KEY_BYTES // 2),
)

#: Values that are never keys; every operation refuses them with InvalidKeyError before I/O.
INVALID_KEYS: tuple[object, ...] = (
    "",
    "x" * (MAX_KEY_BYTES + 1),
    "é" * (MAX_KEY_BYTES // 2 + 1),
    "x" * 10_000,
    "lone \udc80 surrogate",
    b"bytes-key",
    None,
    42,
)

#: A closed class (``[a]``, ``[!a]``, ``[^a]``) is what catches a scan that globs the prefix
#: unescaped: a glob reads it as one character, so the keys that really begin with it are missed.
HOSTILE_PREFIXES = (
    "*",
    "?",
    "[",
    "[a",
    "[a]",
    "[!a]",
    "[^a]",
    "\\",
    "\n",
    "日",
    "%",
    "_",
    "\x00",
    "\x1f",
)
