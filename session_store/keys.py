"""Key rules: which session keys are valid, and how keys live under a namespace prefix.

Every backend calls :func:`validate_key` and :class:`Namespace` so that a key is accepted or refused
identically everywhere, before any I/O.

**Valid keys** are ``str`` values that are

* non-empty,
* at most :data:`MAX_KEY_BYTES` (1024) bytes once encoded as UTF-8,
* encodable as UTF-8 (no lone surrogates such as ``"\\udc80"``).

Anything else, including glob characters, newlines, ``../``, NUL and non-ASCII text, is a valid
key and round-trips exactly: keys are data, never patterns or paths. Keys are not
Unicode-normalised: ``"é"`` (one code point) and ``"e\\u0301"`` are two different keys.

**Namespaces.** A backend opened with ``prefix="session:"`` stores key ``k`` as
``"session:" + SEPARATOR + k``. :data:`SEPARATOR` (``"\\x1f"``, the ASCII unit separator) may not
occur in a prefix, so the prefix ends exactly where the first separator is. Two stores whose
prefixes overlap, such as ``session:`` and ``session:admin:``, therefore can never read, list or
delete each other's keys: ``session:admin:\\x1fk`` does not start with ``session:\\x1f``.

**Another separator** (``Namespace(prefix, separator=":")``) gives another store's layout: the
data-room plan's ``session:{user_id}`` is prefix ``session`` with separator ``:``. The prefix may
not contain its separator, so it still ends at the first separator, and stores with the *same*
separator never see each other's keys.

**Beside the default layout.** Every key a default-layout store writes holds U+001F (it ends
its prefix), so a namespace with another separator does not own a stored key holding U+001F
after its head: the plan's ``session`` + ``:`` store and a default ``session:`` store (the
default of ``redis://``) share a database without listing, migrating or counting each other's
sessions (``session:\\x1fU2`` is the default store's ``U2``, not the plan store's ``"\\x1fU2"``).
Such a store therefore refuses a key holding U+001F (:class:`InvalidKeyError`, before any
I/O): its stored form would be the default store's key (``session`` + ``:`` with key
``"\x1fU2"`` is ``session:\x1fU2``, the default ``session:`` store's ``U2``), which it could
read, overwrite and delete but never list.
Stores with two *different* non-default separators are not kept apart (prefix ``session`` with
``:`` holds every key of prefix ``session:x`` with ``/``): give them prefixes that do not start
alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from session_store.errors import ConfigurationError, InvalidKeyError

__all__ = [
    "MAX_KEY_BYTES",
    "MAX_PREFIX_BYTES",
    "SEPARATOR",
    "Namespace",
    "batches",
    "storage_heads",
    "validate_key",
    "validate_scan_prefix",
]

#: Longest valid key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
#: Longest valid namespace prefix, in UTF-8 bytes.
MAX_PREFIX_BYTES = 256
#: Ends a namespace prefix inside a stored key; never allowed inside a prefix.
SEPARATOR = "\x1f"


def _utf8_length(text: str) -> int | None:
    """UTF-8 length of ``text``, or ``None`` if it holds a lone surrogate."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def validate_key(key: object, *, backend: str | None = None) -> str:
    """Return ``key`` unchanged if it is a valid session key.

    Raises:
        InvalidKeyError: the key is not a ``str``, is empty, too long, or not encodable as UTF-8.
    """
    if type(key) is not str:
        # str subclasses are refused too: their __eq__/__hash__ could differ from the stored form.
        raise InvalidKeyError(
            f"session keys must be str, got {type(key).__name__}", backend=backend
        )
    if not key:
        raise InvalidKeyError("session keys must not be empty", key=key, backend=backend)
    if len(key) > MAX_KEY_BYTES:  # cheap pre-check: every char is at least one byte
        raise InvalidKeyError(
            f"session keys are at most {MAX_KEY_BYTES} UTF-8 bytes", key=key, backend=backend
        )
    size = len(key) if key.isascii() else _utf8_length(key)
    if size is None:
        raise InvalidKeyError(
            "session keys must be valid Unicode (a lone surrogate cannot be stored)",
            key=key.encode("utf-8", "backslashreplace").decode("ascii", "replace"),
            backend=backend,
        )
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(
            f"session keys are at most {MAX_KEY_BYTES} UTF-8 bytes, this one has {size}",
            key=key,
            backend=backend,
        )
    return key


def validate_scan_prefix(prefix: object, *, backend: str | None = None) -> str:
    """Return a ``scan`` prefix if valid: any ``str`` (empty allowed) a key could start with.

    Raises:
        InvalidKeyError: not a ``str``, longer than a key can be, or not encodable as UTF-8.
    """
    if type(prefix) is not str:
        raise InvalidKeyError(
            f"scan prefixes must be str, got {type(prefix).__name__}", backend=backend
        )
    if prefix:
        validate_key(prefix, backend=backend)
    return prefix


class Namespace:
    """Maps session keys to stored keys under one prefix, and back.

    Args:
        prefix: text every stored key starts with; may be empty, may not contain the separator.
        separator: what ends the prefix (default :data:`SEPARATOR`, U+001F).

    Raises:
        ConfigurationError: the prefix contains the separator, is too long or is not valid Unicode.
    """

    __slots__ = ("_foreign", "_head", "_head_len", "prefix", "separator")

    def __init__(self, prefix: str = "", separator: str = SEPARATOR) -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix must be str, got {type(prefix).__name__}")
        if not isinstance(separator, str) or not separator:
            raise ConfigurationError(f"separator must be a non-empty str, got {separator!r}")
        if _utf8_length(separator) is None or len(separator) > 8:
            raise ConfigurationError("separator must be valid Unicode, at most 8 characters")
        if separator in prefix:
            raise ConfigurationError(
                f"prefix must not contain its separator {separator.encode('unicode_escape')!r}"
            )
        size = _utf8_length(prefix)
        if size is None:
            raise ConfigurationError("prefix must be valid Unicode")
        if size > MAX_PREFIX_BYTES:
            raise ConfigurationError(f"prefix is at most {MAX_PREFIX_BYTES} UTF-8 bytes")
        self.prefix = prefix
        self.separator = separator
        self._head = prefix + separator
        self._head_len = len(self._head)
        # what marks another layout's key under this head (see the module docstring)
        self._foreign = SEPARATOR if separator != SEPARATOR else None

    def encode(self, key: str) -> str:
        """The stored form of an already validated key.

        Raises:
            InvalidKeyError: the namespace has another separator than U+001F and ``key`` holds
                U+001F: its stored form would be a default-layout key (``session`` + ``:``
                with key ``"\x1fU2"`` is ``session:\x1fU2``, the default ``session:`` store's
                ``U2``), so such a key could read, overwrite and delete another store's
                session, and could never be listed as this store's.
        """
        if self._foreign is not None and self._foreign in key:
            raise InvalidKeyError(
                "a key of a namespace whose separator is not U+001F may not hold U+001F "
                "(it would be a key of the default layout's store)",
                key=key,
            )
        return self._head + key

    def decode(self, stored: str) -> str | None:
        """The session key of a stored key, or ``None`` if it belongs to another namespace:
        it does not start with this prefix and separator, or (for a separator other than
        U+001F) it is a default-layout key, holding U+001F after them."""
        if not stored.startswith(self._head):
            return None
        key = stored[self._head_len :]
        if self._foreign is not None and self._foreign in key:
            return None
        return key

    def scan_head(self, prefix: str = "") -> str:
        """The literal start every stored key matching ``scan(prefix)`` has."""
        return self._head + prefix

    def __repr__(self) -> str:
        if self.separator == SEPARATOR:
            return f"Namespace({self.prefix!r})"
        return f"Namespace({self.prefix!r}, separator={self.separator!r})"


def storage_heads(backend: object) -> tuple[str, ...]:
    """What every stored key of ``backend`` begins with (its prefix and separator), as the heads
    encryption binds (:meth:`session_store.codec.Codec.bound_to`): one for a backend with a
    :class:`Namespace` (its ``namespace``), none for one without (``memory://``: nothing else
    shares it), the distinct heads of a chain's tiers (``tiers``; a tier without one, the near
    cache, adds none), and a wrapped sync backend's (``sync``: an async view of it)."""
    namespace = getattr(backend, "namespace", None)
    if isinstance(namespace, Namespace):
        return (namespace.scan_head(),)
    tiers = getattr(backend, "tiers", None)
    if isinstance(tiers, tuple | list):
        return tuple(dict.fromkeys(head for tier in tiers for head in storage_heads(tier)))
    wrapped = getattr(backend, "sync", None)
    return () if wrapped is None or wrapped is backend else storage_heads(wrapped)


def batches(keys: Iterable[str], size: int) -> Iterator[list[str]]:
    """``keys`` in lists of ``size`` (the last one shorter), lazily: a listing read one batch
    (one ``get_many``) at a time, so a caller that stops early reads no further."""
    chunk: list[str] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
