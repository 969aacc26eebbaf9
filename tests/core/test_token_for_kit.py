"""The conformance kit's ``token_for`` test
(``CompareAndSetConformance.test_token_for_names_only_the_bytes_it_was_given``).

``SessionBackend.token_for`` must "never return a token that could match other bytes in a way a
read of value would not": a store now compare-and-sets against it *without reading*, so a token
that names several values lets an ``update`` built on an old copy overwrite a newer one. The
kit's test is what a third-party backend author runs to know their override is safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest

from session_store import SessionStore
from session_store.backend import Versioned, VersionToken
from session_store.testing.conformance_cas import CompareAndSetConformance
from session_store_diskcache import DiskcacheBackend
from session_store_diskcache.versioned import version_token


class _Short(NamedTuple):
    length: int
    head: bytes
    tail: bytes


def _short(value: bytes) -> _Short:
    """A token of the length and the first and last 8 bytes (as a framed value's short token
    in Redis, but for every value): it names every value of that length, head and tail."""
    return _Short(len(value), value[:8], value[-8:])


class ShortTokenBackend(DiskcacheBackend):
    """A real diskcache backend whose tokens are :func:`_short`. Its ``set_if`` is atomic: the
    comparison is made on the bytes the parent's digest compare-and-set then writes over."""

    def get_versioned(self, key: str) -> Versioned | None:
        value = self.get(key)
        return None if value is None else Versioned(value, _short(value))

    def token_for(self, value: bytes) -> VersionToken | None:
        return _short(value)

    def set_if(
        self, key: str, value: bytes, token: VersionToken | None, ttl: float | None = None
    ) -> bool:
        if token is None:
            return super().set_if(key, value, None, ttl)
        current = self.get(key)
        if current is None or _short(current) != token:
            return False
        return super().set_if(key, value, version_token(current), ttl)


def test_a_short_token_backend_loses_an_update(tmp_path: Path) -> None:
    """What the kit must catch: with such tokens, a store's update built on an old copy
    overwrites a newer value of the same length, head and tail."""
    backend = ShortTokenBackend(str(tmp_path / "short"))
    mine: SessionStore[dict[str, Any]] = SessionStore(backend, dict, access_interval=None)
    theirs: SessionStore[dict[str, Any]] = SessionStore(backend, dict, access_interval=None)
    try:
        mine.save("k", {"n": 10, "pad": "x"})
        theirs.update("k", lambda s: {"n": 11, "pad": "x"})  # same length, head and tail
        result = mine.update("k", lambda s: {"n": (s or {"n": 0})["n"] + 5, "pad": "x"})
        assert result == {"n": 15, "pad": "x"}  # built on the old 10: theirs (11) is lost
        assert theirs.load("k") == {"n": 15, "pad": "x"}
    finally:
        backend.close()


def test_the_kit_refuses_a_backend_whose_tokens_name_other_bytes(tmp_path: Path) -> None:
    """Guarantee: the conformance kit's ``token_for`` test fails a backend whose predicted
    token could match other bytes. Input: :class:`ShortTokenBackend` (a real diskcache, an
    atomic compare-and-set, tokens of length + first 8 + last 8 bytes), which loses an update
    (the test above). What happened: the kit's test passes, since ``b"one"``, ``b"two"`` and
    ``b"three"`` are shorter than head and tail together, so the short token is the whole
    value."""
    backend = ShortTokenBackend(str(tmp_path / "short"))
    try:
        with pytest.raises(AssertionError):
            CompareAndSetConformance().test_token_for_names_only_the_bytes_it_was_given(backend)
    finally:
        backend.close()
