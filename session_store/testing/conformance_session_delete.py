"""The conformance tests of ``delete_session(key)``, the delete ``SessionStore.delete`` sends:
it removes a key that holds a session and nothing else (an absent key, or a deleted session's
marker: a chain's tombstone, an earlier chain's tombstone stamp, the marker a login's id
rotation leaves on the old id, each left as it is with its expiry). Every backend passes them,
sync (:class:`SessionDeleteConformance`, a base of
:class:`~session_store.testing.conformance.BackendConformance`) and async
(:class:`AsyncSessionDeleteConformance`), whether it implements ``delete_session`` itself or
inherits the protocol's default (read, judge, delete).

The values are :func:`~session_store.testing.conformance_session_touch.touch_session_corpus`'s
(the markers, values one byte away from one, frames, ordinary sessions): a backend that judges
on its server (Redis's script) is held to :func:`~session_store.deleterules.holds_session` on
all of them.
"""

from __future__ import annotations

import pytest

from session_store.aio.backend import AsyncSessionBackend
from session_store.backend import SessionBackend
from session_store.deleterules import holds_session
from session_store.errors import InvalidKeyError
from session_store.testing.conformance_session_touch import STORED, touch_session_corpus

__all__ = ["AsyncSessionDeleteConformance", "SessionDeleteConformance"]


def _check(value: bytes, deleted: bool, now: bytes | None, left: float | None) -> None:
    """What ``delete_session`` of a key holding ``value`` answered (``deleted``), and what the
    key holds after it (``now``, with ``left`` seconds to live)."""
    live = holds_session(value)
    assert deleted is live, f"delete_session of {value!r} said {deleted}"
    if live:
        assert now is None, f"{value!r} (a session) is still there"
    else:
        assert now == value, f"{value!r} (no session) now holds {now!r}"
        assert left is not None and STORED - 60 < left <= STORED, f"{value!r} lives {left} s"


class SessionDeleteConformance:
    """``delete_session`` on a sync backend (module docstring). Expects the ``backend``
    fixture of :class:`~session_store.testing.conformance.BackendConformance`."""

    def test_delete_session_deletes_a_session_only(self, backend: SessionBackend) -> None:
        for n, value in enumerate(touch_session_corpus()):
            key = f"ds{n}"
            backend.set(key, value, ttl=STORED)
            deleted = backend.delete_session(key)
            _check(value, deleted, backend.get(key), backend.ttl(key))
            assert backend.delete_session(key) is False  # nothing left, or the marker again
        assert backend.delete_session("absent") is False

    def test_delete_session_checks_its_key(self, backend: SessionBackend) -> None:
        with pytest.raises(InvalidKeyError):
            backend.delete_session("")


@pytest.mark.anyio
class AsyncSessionDeleteConformance:
    """``delete_session`` on an async backend (as :class:`SessionDeleteConformance`). Expects
    the ``backend`` fixture of
    :class:`~session_store.testing.async_conformance.AsyncBackendConformance`."""

    async def test_delete_session_deletes_a_session_only(
        self, backend: AsyncSessionBackend
    ) -> None:
        for n, value in enumerate(touch_session_corpus()):
            key = f"ds{n}"
            await backend.set(key, value, ttl=STORED)
            deleted = await backend.delete_session(key)
            _check(value, deleted, await backend.get(key), await backend.ttl(key))
        assert await backend.delete_session("absent") is False

    async def test_delete_session_checks_its_key(self, backend: AsyncSessionBackend) -> None:
        with pytest.raises(InvalidKeyError):
            await backend.delete_session("")
