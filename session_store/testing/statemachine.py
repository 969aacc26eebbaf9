"""A Hypothesis state machine that runs random operation sequences against a ``dict`` model."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from session_store.backend import SessionBackend, VersionToken

__all__ = ["make_state_machine"]

# A small key alphabet makes collisions (overwrites, deletes of present keys) common, and
# includes characters that are special to globs, paths and SQL.
_keys = st.text(alphabet="ab*?[]\\/\n:é日\x00\x1f", min_size=1, max_size=4)
_values = st.binary(max_size=64)


def make_state_machine(factory: Callable[[], SessionBackend]) -> type[RuleBasedStateMachine]:
    """A state machine class over backends built by ``factory`` (fresh storage each call).

    Use its ``TestCase`` attribute as a test class in a test module.
    """

    class BackendModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.backend = factory()
            self.model: dict[str, bytes] = {}
            self.tokens: dict[str, VersionToken | None] = {}

        def teardown(self) -> None:
            self.backend.close()

        @rule(key=_keys, value=_values)
        def set(self, key: str, value: bytes) -> None:
            self.backend.set(key, value)
            self.model[key] = value
            self._spend([key])

        @rule(key=_keys)
        def get(self, key: str) -> None:
            assert self.backend.get(key) == self.model.get(key)

        @rule(key=_keys)
        def delete(self, key: str) -> None:
            assert self.backend.delete(key) == (key in self.model)
            self.model.pop(key, None)
            self._spend([key])

        @rule(items=st.dictionaries(_keys, _values, max_size=5))
        def set_many(self, items: dict[str, bytes]) -> None:
            self.backend.set_many(items)
            self.model.update(items)
            self._spend(items)

        @rule(keys=st.lists(_keys, max_size=5))
        def get_many(self, keys: list[str]) -> None:
            expected = {k: self.model[k] for k in keys if k in self.model}
            assert self.backend.get_many(keys) == expected

        @rule(keys=st.lists(_keys, max_size=5, unique=True))
        def delete_many(self, keys: list[str]) -> None:
            assert self.backend.delete_many(keys) == sum(1 for k in keys if k in self.model)
            for key in keys:
                self.model.pop(key, None)
            self._spend(keys)

        @rule(prefix=st.text(alphabet="ab*?[]\\/\n:é日\x00\x1f", max_size=2))
        def scan(self, prefix: str) -> None:
            assert sorted(self.backend.scan(prefix)) == sorted(
                k for k in self.model if k.startswith(prefix)
            )

        @rule(key=_keys)
        def read_versioned(self, key: str) -> None:
            read = self.backend.get_versioned(key)
            if key in self.model:
                assert read is not None and read.value == self.model[key]
                self.tokens[key] = read.token
            else:
                assert read is None
                self.tokens[key] = None

        @precondition(lambda self: bool(self.tokens))
        @rule(data=st.data(), value=_values)
        def set_if(self, data: st.DataObject, value: bytes) -> None:
            key = data.draw(st.sampled_from(sorted(self.tokens)))
            token = self.tokens.pop(key)
            # tokens still held are fresh (every write below drops them): the write must win
            assert self.backend.set_if(key, value, token) is True
            self.model[key] = value

        @precondition(lambda self: bool(self.model))
        @rule(data=st.data(), value=_values)
        def set_if_absent_on_present_key(self, data: st.DataObject, value: bytes) -> None:
            key = data.draw(st.sampled_from(sorted(self.model)))
            assert self.backend.set_if(key, value, None) is False

        def _spend(self, keys: Iterable[str]) -> None:
            for key in keys:
                self.tokens.pop(key, None)

    return BackendModel
