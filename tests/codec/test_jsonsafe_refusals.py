"""The codec's strict JSON check (``session_store/codec/jsonsafe.py``).

The guarantee under attack: a value that is not storable is refused with a typed, clear
:class:`SerializationError` before any write, and anything accepted reads back as an equal value.

Tests that record a break began as ``xfail(strict=True)`` reproducers (2026-11-30), each seen
failing for the reason its docstring gives; their markers were removed as the fixes landed.
"""

from __future__ import annotations

import enum
import math
import subprocess
import sys
import textwrap
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, jsonsafe
from session_store.errors import SerializationError
from session_store.schema import EnhancedSessionData, SchemaInfo, register_schema

#: Seconds a refusal may take in the child process. A correct refusal of these inputs takes
#: milliseconds; the bound only keeps a hang from hanging the suite.
_BOUND = 15.0

_SAVE_IN_A_CHILD = textwrap.dedent(
    """
    import sys
    from session_store import MemoryBackend, SessionStore
    from session_store.errors import SerializationError

    kind = sys.argv[1]
    if kind == "list-cycle":
        value = {"items": []}
        value["items"].append(value["items"])
    elif kind == "dict-cycle":
        value = {}
        value["self"] = value
    else:  # a deep but finite nesting of lists
        inner = []
        for _ in range(200_000):
            inner = [inner]
        value = {"deep": inner}
    store = SessionStore(MemoryBackend(), dict)
    try:
        store.save("k", value)
    except SerializationError as exc:
        print("refused:", exc.message[:200])
        sys.exit(0)
    print("accepted")
    sys.exit(1)
    """
)


def _save_in_a_child(kind: str) -> subprocess.CompletedProcess[str] | None:
    """Run ``SessionStore.save`` of the hostile value in a child; ``None`` if it did not end
    within the bound (it was killed)."""
    try:
        return subprocess.run(
            [sys.executable, "-c", _SAVE_IN_A_CHILD, kind],
            capture_output=True,
            text=True,
            timeout=_BOUND,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["list-cycle", "dict-cycle"])
def test_a_cyclic_value_is_refused_not_walked_forever(kind: str) -> None:
    """Guarantee: bad input gets a typed error, nothing is written.

    Input: ``{"items": [<that very list>]}`` (or ``d = {}; d["self"] = d``) saved into a dict
    store. What happens: orjson refuses it (recursion limit), then ``dumps`` runs the exact walk
    :func:`jsonsafe.check_storable` to name the culprit; the walk keeps no set of visited
    containers, so it pushes the same list again and again with an ever longer path: the save
    never returns (killed after the bound), burning a CPU and growing memory. A request whose
    session holds such a value hangs its worker.
    """
    done = _save_in_a_child(kind)
    assert done is not None, f"save() of a {kind} did not return within {_BOUND:g} s"
    assert done.returncode == 0 and "refused" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_a_very_deep_value_is_refused_promptly() -> None:
    """Guarantee: bad input gets a typed error (and a request is not held hostage by it).

    Input: 200,000 nested lists (a few MB of JSON an attacker can post to an app that stores
    what it is sent). What happens: orjson refuses it at once (depth over 254), then the exact
    walk builds ``[*path, i]`` for every level, so the work is quadratic in the depth
    (measured here: 30,000 levels take 1.5 s, 100,000 more than 20 s): the save does not
    return within the bound.
    """
    done = _save_in_a_child("deep")
    assert done is not None, f"save() of a 200,000-deep list did not return within {_BOUND:g} s"
    assert done.returncode == 0 and "refused" in done.stdout, done.stdout + done.stderr


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def test_a_too_deep_value_is_refused_with_a_reason() -> None:
    """Guarantee (jsonsafe's docstring): what is not storable is a ``SerializationError``
    naming where it is.

    Input: a dict of plain ``str`` keys and an ``int`` leaf, nested 300 levels deep (every
    part of it storable by the documented rules, which state no depth limit). What happens:
    orjson refuses it (its recursion limit is 254), the exact walk finds nothing wrong, and
    ``dumps`` raises ``SerializationError("value is not storable as JSON")``: the caller is
    not told that depth is the problem, nor at which path the limit was passed.
    """
    with pytest.raises(SerializationError) as caught:
        jsonsafe.dumps(_nested(300))
    message = caught.value.message.lower()
    assert "deep" in message or "nest" in message or "depth" in message, message


def test_an_extra_key_named_like_a_field_does_not_replace_the_field() -> None:
    """Guarantee: what is accepted reads back equal ("nothing dropped, nothing coerced").

    Input: ``EnhancedSessionData("alice", extra={"user_id": "mallory"})``, saved (accepted:
    no error). What happens: the converter's generated ``unstructure`` builds the fields, then
    ``out.update(extra)``; the stored JSON has ``"user_id": "mallory"``, and every load
    returns ``user_id == "mallory"`` with ``extra == {}``: the session changed owner. (The
    schema's own ``to_dict`` uses ``setdefault`` for ``extra`` and keeps the field.) Either a
    round trip or a ``SerializationError`` passes this test.
    """
    backend = MemoryBackend()
    writer = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None))
    try:
        writer.save("alice", EnhancedSessionData("alice", extra={"user_id": "mallory"}))
    except SerializationError:
        return  # refusing the clash is a fix too: nothing silent
    reader = SessionStore(backend, EnhancedSessionData, codec=Codec(encryption=None))
    loaded = reader.load("alice")
    assert loaded is not None
    assert (loaded.user_id, loaded.extra) == ("alice", {"user_id": "mallory"})


def test_a_lone_surrogate_is_refused_with_where_it_is() -> None:
    """Guarantee (jsonsafe's docstring): a value that is not storable is a
    ``SerializationError`` naming where it is.

    Input: ``{"profile": {"name": "\\ud800"}}``, which is what Python's ``json.loads`` makes
    of a request body holding the escape ``"\\ud800"`` (an app storing posted text). What
    happens: orjson refuses it (not UTF-8), the exact walk accepts every ``str``, and
    ``dumps`` raises ``SerializationError("value is not storable as JSON")``: no path, no
    reason, for a 500 a client can trigger at will.
    """
    with pytest.raises(SerializationError) as caught:
        jsonsafe.dumps({"profile": {"name": "\ud800"}})
    message = caught.value.message
    assert "['profile']['name']" in message or "surrogate" in message, message


class Corner(enum.Enum):
    """An Enum whose values are tuples (a plain Python idiom)."""

    ORIGIN = (0, 0)
    FAR = (1, 1)


@attrs.define
class Drawing:
    """A schema with ``extra``: the converter's generated hooks."""

    user_id: str
    corner: Corner = Corner.ORIGIN
    extra: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class Sketch:
    """A schema without ``extra``: cattrs' own hooks."""

    user_id: str
    corner: Corner = Corner.ORIGIN


@pytest.mark.parametrize("cls", [Drawing, Sketch], ids=["with-extra", "without-extra"])
def test_an_enum_with_tuple_values_round_trips_or_is_refused(cls: type[Any]) -> None:
    """Guarantee: what ``save`` accepts reads back equal; bad input is refused before any
    write and loses nothing.

    Input: a session whose ``corner: Corner`` field holds ``Corner.FAR`` (value ``(1, 1)``).
    What happens: ``save`` accepts it (the enum hook writes ``member.value``, a tuple, which
    the strict check allows as an array); on load ``Corner([1, 1])`` raises ValueError. With
    ``extra`` (the generated hooks) the misfit is kept: ``corner == [1, 1]``, a list, not the
    member. Without it (cattrs' hooks) the load raises ``CorruptPayloadError``: the session
    just saved can never be read again.
    """
    register_schema(SchemaInfo(f"adversarial-{cls.__name__.lower()}", cls, 1))
    backend = MemoryBackend()
    writer = SessionStore(backend, cls, codec=Codec(encryption=None))
    try:
        writer.save("u", cls("u", Corner.FAR))
    except SerializationError:
        return  # refusing it before the write is a fix too
    loaded = SessionStore(backend, cls, codec=Codec(encryption=None)).load("u")
    assert loaded is not None and loaded.corner is Corner.FAR


@attrs.define
class Scores:
    """``dict[int, str]``: cattrs' orjson converter writes the int keys as text."""

    user_id: str
    by_level: dict[int, str] = attrs.Factory(dict)
    extra: dict[str, Any] = attrs.Factory(dict)


@attrs.define
class PlainScores:
    user_id: str
    by_level: dict[int, str] = attrs.Factory(dict)


@pytest.mark.parametrize("cls", [Scores, PlainScores], ids=["with-extra", "without-extra"])
def test_a_dict_with_int_keys_round_trips_or_is_refused(cls: type[Any]) -> None:
    """Guarantee: what ``save`` accepts reads back equal; bad input loses nothing.

    Input: a session whose ``by_level: dict[int, str]`` field holds ``{1: "gold"}``. What
    happens: ``save`` accepts it (the preconf converter unstructures the key to ``"1"``); on
    load the session converter's strict ``int`` hook refuses ``"1"`` (no ``int("1")``). With
    ``extra`` the misfit is kept: ``by_level == {"1": "gold"}`` (``by_level[1]`` is a
    KeyError). Without it the load raises ``CorruptPayloadError``: the session just saved can
    never be read again.
    """
    register_schema(SchemaInfo(f"adversarial-{cls.__name__.lower()}", cls, 1))
    backend = MemoryBackend()
    writer = SessionStore(backend, cls, codec=Codec(encryption=None))
    try:
        writer.save("u", cls("u", {1: "gold"}))
    except SerializationError:
        return  # refusing it before the write is a fix too
    loaded = SessionStore(backend, cls, codec=Codec(encryption=None)).load("u")
    assert loaded is not None and loaded.by_level == {1: "gold"}


@attrs.define
class Reading:
    """A schema without ``extra`` (cattrs' own hooks) with plain leaf fields."""

    user_id: str
    score: float = 0.0
    count: int = 0
    label: str = ""


@pytest.mark.parametrize(
    ("field", "value"), [("score", True), ("count", 1.0), ("label", 5)], ids=str
)
def test_a_misfit_leaf_in_a_schema_without_extra_is_refused_or_kept(field: str, value: Any) -> None:
    """Guarantee: bad input gets a clear, typed error and loses nothing; what is accepted
    reads back.

    Input: ``Reading`` (``score: float``, ``count: int``, ``label: str``, no ``extra``)
    with ``score=True`` / ``count=1.0`` / ``label=5`` (attrs does not check annotations, so
    the app can build it). What happens: ``save`` writes it (cattrs' unstructure copies the
    value, the strict JSON check finds plain JSON); ``load`` runs the session converter's
    strict leaf hooks, which refuse it, and raises ``CorruptPayloadError``: the session just
    saved is unreadable. (A schema with ``extra`` keeps such a misfit as stored.)
    """
    register_schema(SchemaInfo("adversarial-reading", Reading, 1))
    backend = MemoryBackend()
    writer = SessionStore(backend, Reading, codec=Codec(encryption=None))
    try:
        writer.save("u", Reading("u", **{field: value}))
    except SerializationError:
        return  # refusing it before the write is a fix too
    loaded = SessionStore(backend, Reading, codec=Codec(encryption=None)).load("u")
    assert loaded is not None and getattr(loaded, field) == value


class Shade(enum.Enum):
    DARK = "dark"


@attrs.define
class Theme:
    user_id: str
    shade: Shade | str = "auto"
    extra: dict[str, Any] = attrs.Factory(dict)


def test_an_enum_in_an_enum_or_str_union_round_trips_or_is_refused() -> None:
    """Guarantee: no silent conversion (an ``Enum`` outside a field that declares it is
    refused; inside one it reads back as the member).

    Input: ``Theme(shade=Shade.DARK)`` with ``shade: Shade | str``. What happens: the enum
    hook writes ``"dark"``; on load the union hook tries ``str`` first (or cannot tell) and
    the field holds the plain text ``"dark"``: ``loaded.shade is Shade.DARK`` is false.
    """
    register_schema(SchemaInfo("adversarial-theme", Theme, 1))
    backend = MemoryBackend()
    try:
        SessionStore(backend, Theme, codec=Codec(encryption=None)).save("u", Theme("u", Shade.DARK))
    except SerializationError:
        return
    loaded = SessionStore(backend, Theme, codec=Codec(encryption=None)).load("u")
    assert loaded is not None and loaded.shade is Shade.DARK


# -- what held ----------------------------------------------------------------------------------
def _normal(value: Any) -> Any:
    """``value`` as JSON reads it back: tuples become lists (documented)."""
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down, and the same sign of zero."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(st.characters(codec=None), max_size=8)  # lone surrogates included
    | st.sampled_from(["\x7f\xff", "\U0010ffff", "null", "NaN", "\x00", "\ud800"])
    | st.binary(max_size=3)
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3) | st.integers(0, 3), inner, max_size=4)
        | st.frozensets(st.integers(0, 3), max_size=2)
    ),
    max_leaves=20,
)


# Twice the profile's examples: 300 under CI=true (the ``ci`` profile), 50 in a local run.
@settings(max_examples=2 * settings().max_examples, deadline=None)
@given(_VALUES)
def test_held_accepted_values_read_back_equal_and_of_the_same_types(value: Any) -> None:
    """Held: across NaN/infinity/-0.0, ints past 64 bits, lone surrogates, bytes, sets, int
    keys and the byte patterns the NaN scan looks for, ``dumps`` either raises
    ``SerializationError`` or writes what reads back equal, type for type (tuples as lists)."""
    try:
        written = jsonsafe.dumps(value)
    except SerializationError:
        return
    assert _same(jsonsafe.loads(written), _normal(value))


def test_held_a_refused_save_writes_nothing() -> None:
    """Held: a refused value leaves the stored session as it was."""
    store: SessionStore[dict[str, Any]] = SessionStore(MemoryBackend(), dict)
    store.save("k", {"n": 1})
    with pytest.raises(SerializationError):
        store.save("k", {"n": math.nan})
    assert store.load("k") == {"n": 1}
