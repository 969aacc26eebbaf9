"""The conformance tests about more than one call: compare-and-set, lost races, namespaces over
shared storage, threads sharing a backend, and the life cycle. A base of
:class:`~session_store.testing.conformance.BackendConformance`, which provides the
``backend`` and ``backend_factory`` fixtures these tests use."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from session_store.backend import SessionBackend

__all__ = ["BackendFactory", "CompareAndSetConformance"]

BackendFactory = Callable[..., SessionBackend]


def _alike(middle: bytes) -> bytes:
    """A 4 KiB value whose only difference from another ``_alike`` is its middle byte."""
    return b"h" * 2048 + middle + b"t" * 2047


class CompareAndSetConformance:
    """Tests that need two calls or two views of one store (see the module docstring)."""

    shares_storage: bool = True

    # -- compare-and-set -----------------------------------------------------------------------
    def test_set_if_absent(self, backend: SessionBackend) -> None:
        assert backend.get_versioned("k") is None
        assert backend.set_if("k", b"first", None) is True
        assert backend.set_if("k", b"second", None) is False
        assert backend.get("k") == b"first"

    def test_set_if_matching_token(self, backend: SessionBackend) -> None:
        backend.set("k", b"one")
        read = backend.get_versioned("k")
        assert read is not None and read.value == b"one"
        assert backend.set_if("k", b"two", read.token, ttl=60) is True
        assert backend.get("k") == b"two"
        left = backend.ttl("k")
        assert left is not None and 0 < left <= 60
        # the old token is spent
        assert backend.set_if("k", b"three", read.token) is False
        assert backend.get("k") == b"two"

    def test_set_if_lost_race(self, backend_factory: BackendFactory) -> None:
        mine, theirs = backend_factory(), backend_factory()
        try:
            mine.set("k", b"base")
            read = mine.get_versioned("k")
            assert read is not None
            target = theirs if self.shares_storage else mine
            target.set("k", b"theirs")
            assert mine.set_if("k", b"mine", read.token) is False
            assert mine.get("k") == b"theirs"
        finally:
            mine.close()
            theirs.close()

    def test_set_if_after_delete(self, backend: SessionBackend) -> None:
        backend.set("k", b"v")
        read = backend.get_versioned("k")
        assert read is not None
        backend.delete("k")
        assert backend.set_if("k", b"late", read.token) is False
        assert backend.get("k") is None

    def test_set_if_same_bytes_rewritten_between(self, backend: SessionBackend) -> None:
        """A token may be a digest of the value: a rewrite of the same bytes then still matches,
        which is safe for read-modify-write (the state read is the state replaced)."""
        backend.set("k", b"v")
        read = backend.get_versioned("k")
        assert read is not None
        backend.set("k", b"changed")
        backend.set("k", b"changed2")
        assert backend.set_if("k", b"mine", read.token) is False

    def test_token_for_names_only_the_bytes_it_was_given(self, backend: SessionBackend) -> None:
        """A backend that predicts tokens from bytes (:meth:`SessionBackend.token_for`) must
        predict one that matches while the key holds those bytes, and only then; a backend that
        cannot tell returns ``None`` and a store reads before every compare-and-set."""
        backend.set("k", b"one")
        predicted = backend.token_for(b"one")
        if predicted is None:
            assert backend.token_for(b"two") is None
            return
        other = backend.token_for(b"two")
        assert other is not None and other != predicted
        assert backend.set_if("k", b"never", other) is False
        assert backend.set_if("k", b"two", predicted) is True
        assert backend.set_if("k", b"three", predicted) is False  # spent: "two" is stored now
        assert backend.set_if("k", b"three", backend.token_for(b"two")) is True
        assert backend.get("k") == b"three"
        backend.delete("k")
        assert backend.set_if("k", b"late", backend.token_for(b"three")) is False
        assert backend.get("k") is None
        # values alike in length, head and tail, unlike only in the middle (a token that names
        # less than the whole value would match both)
        near, far = _alike(b"A"), _alike(b"B")
        backend.set("k", near)
        assert backend.set_if("k", b"never", backend.token_for(far)) is False
        assert backend.set_if("k", far, backend.token_for(near)) is True
        assert backend.get("k") == far

    # -- namespaces ----------------------------------------------------------------------------
    def test_overlapping_namespaces_are_isolated(self, backend_factory: BackendFactory) -> None:
        outer, inner = backend_factory(prefix="session:"), backend_factory(prefix="session:admin:")
        try:
            outer.set("admin:x", b"outer")
            outer.set("x", b"outer-x")
            inner.set("x", b"inner")
            inner.set("*", b"inner-star")
            assert outer.get("admin:x") == b"outer"
            assert outer.get("x") == b"outer-x"
            assert inner.get("x") == b"inner"
            assert inner.get("admin:x") is None
            assert outer.get("*") is None
            assert sorted(outer.scan()) == ["admin:x", "x"]
            assert sorted(inner.scan()) == ["*", "x"]
            assert list(outer.scan("admin:")) == ["admin:x"]
            assert outer.delete_many(["*", "x"]) == 1
            assert inner.get("x") == b"inner"
            assert inner.get("*") == b"inner-star"
            assert inner.delete("admin:x") is False
            assert outer.get("admin:x") == b"outer"
        finally:
            outer.close()
            inner.close()

    def test_same_prefix_shares_data(self, backend_factory: BackendFactory) -> None:
        if not self.shares_storage:
            pytest.skip("process-local store: each instance is its own storage")
        first, second = backend_factory(prefix="app:"), backend_factory(prefix="app:")
        try:
            first.set("k", b"v")
            assert second.get("k") == b"v"
        finally:
            first.close()
            second.close()

    # -- counters, threads, life cycle ---------------------------------------------------------
    def test_counters_count_hits_and_misses(self, backend: SessionBackend) -> None:
        before = backend.counters.as_dict()
        backend.set("k", b"v")
        backend.get("k")
        backend.get("absent")
        after = backend.counters.as_dict()
        assert after["hits"] >= before["hits"] + 1
        assert after["misses"] >= before["misses"] + 1

    def test_threads_share_one_backend(self, backend: SessionBackend) -> None:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(40):
                    key = f"t{n}:{i}"
                    backend.set(key, key.encode())
                    assert backend.get(key) == key.encode()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(list(backend.scan("t"))) == 8 * 40

    def test_close_is_idempotent_and_context_manager(self, backend_factory: BackendFactory) -> None:
        with backend_factory() as backend:
            backend.set("k", b"v")
        backend.close()
        backend.close()

    def test_describe_and_repr_are_strings(self, backend: SessionBackend) -> None:
        assert isinstance(backend.describe(), str) and backend.describe()
        assert backend.describe() in repr(backend)
