"""``session_store.unchecked.checked``: a write's public method built from its unchecked form.

The public method checks the key, the value and the TTL (wherever the TTL stands, by position
or by name) before it calls the unchecked form, which it looks up on the instance, so that a
subclass's override is the one that runs; a coroutine function stays one.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from session_store.errors import InvalidKeyError, InvalidTTLError, SerializationError
from session_store.unchecked import checked


class Recorder:
    """Two writes of the two shapes the backends have: TTL third, and TTL after a token."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def describe(self) -> str:
        return "recorder://"

    def _put(self, key: str, value: bytes, ttl: float | None, *, head: int = 0) -> str:
        """Store ``value`` (the docstring the public method shows)."""
        self.calls.append(("put", key, value, ttl, head))
        return "done"

    put = checked(_put)

    def _put_if(self, key: str, value: bytes, token: object, ttl: float | None = None) -> bool:
        self.calls.append(("put_if", key, value, token, ttl))
        return True

    put_if = checked(_put_if)

    async def _aput(self, key: str, value: bytes, ttl: float | None) -> str:
        self.calls.append(("aput", key, value, ttl))
        return "awaited"

    aput = checked(_aput)


def test_the_checked_arguments_reach_the_unchecked_form() -> None:
    r = Recorder()
    assert r.put("k", bytearray(b"v"), 1.0001, head=3) == "done"  # type: ignore[arg-type]
    assert r.put("k", b"v", ttl=None) == "done"
    assert r.put_if("k", memoryview(b"v"), "tok", 2) is True  # type: ignore[arg-type]
    assert r.put_if("k", b"v", None, ttl=0.0004) is True
    assert r.put_if("k", b"v", "tok") is True
    assert r.calls == [
        ("put", "k", b"v", 1.001, 3),  # normalize_ttl rounds up to whole milliseconds
        ("put", "k", b"v", None, 0),
        ("put_if", "k", b"v", "tok", 2),
        ("put_if", "k", b"v", None, 0.001),
        ("put_if", "k", b"v", "tok", None),
    ]
    assert all(type(call[2]) is bytes for call in r.calls)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("", b"v", None), {}, InvalidKeyError),
        ((b"k", b"v", None), {}, InvalidKeyError),
        (("k", "text", None), {}, SerializationError),
        (("k", b"v", -1), {}, InvalidTTLError),
        (("k", b"v"), {"ttl": float("nan")}, InvalidTTLError),
    ],
)
def test_a_bad_argument_is_refused_before_the_unchecked_form_runs(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    r = Recorder()
    with pytest.raises(error) as raised:
        r.put(*args, **kwargs)
    with pytest.raises(error):
        r.put_if(args[0], args[1], "tok", *args[2:], **kwargs)
    assert r.calls == []
    if error is not InvalidTTLError:  # a TTL's rules are not the backend's: none is named
        assert getattr(raised.value, "backend", None) == "recorder://"


def test_a_subclass_override_of_the_unchecked_form_is_obeyed() -> None:
    class Refusing(Recorder):
        def _put(self, key: str, value: bytes, ttl: float | None, *, head: int = 0) -> str:
            return "overridden"

    assert Refusing().put("k", b"v", None) == "overridden"


def test_a_coroutine_function_stays_one_and_checks_when_awaited() -> None:
    r = Recorder()
    assert inspect.iscoroutinefunction(Recorder.aput)
    assert asyncio.run(r.aput("k", b"v", 5)) == "awaited"
    pending = r.aput("", b"v", 5)  # nothing checked yet: an async def method's behaviour
    with pytest.raises(InvalidKeyError):
        asyncio.run(pending)
    assert r.calls == [("aput", "k", b"v", 5)]


def test_the_public_method_is_named_and_documented_as_the_unchecked_one() -> None:
    assert Recorder.put.__name__ == "put"
    assert Recorder.put.__qualname__ == "Recorder.put"
    assert Recorder.put.__doc__ == "Store ``value`` (the docstring the public method shows)."
    assert inspect.signature(Recorder.put) == inspect.signature(Recorder._put)
