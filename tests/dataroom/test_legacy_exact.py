"""Two kinds of value the first app's Python ``json`` wrote and the strict codec cannot hold,
read from legacy (headerless) sessions through the public stores.

* **An integer beyond 64 bits** (a 128-bit document id: ``uuid.int``; a 20-digit id past
  ``2**64``) loads **exactly**: orjson read it as a float, so the id came back rounded, and the
  next save stored the wrong number for good. The exact int is the app's data; the strict
  format cannot write it, so a save is refused with ``SerializationError`` naming where, and
  nothing is written: the stored bytes keep the exact id (nothing lost). The load warns and
  counts it, so an operator learns of it before the first refused save.
* **A lone surrogate** (``"\\ud800"``: half of a UTF-16 pair, e.g. an emoji cut in two) is no
  character: no UTF-8 writer can store it, so such a session loaded and then refused every
  save. It is read as U+FFFD, the Unicode replacement character (the text was already damaged),
  with one warning naming the key and path, and counted, as NaN is read as ``None``: the session
  can be changed and saved.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store import MemoryBackend, SessionMapping, SessionStore
from session_store.codec import Codec, jsonsafe, legacyjson
from session_store.errors import CorruptPayloadError, SerializationError
from session_store.samples import legacy_sessions
from session_store.schema.dataroom import EnhancedSessionData

USER = "U063826716"
BIG_IDS = (
    98765432109876543210,  # 20 digits, past 2**64
    0xF3A1_6C2E_9B0D_4E7F_8A5C_1D2E_3F40_5B6C,  # a uuid4().int
    -9223372036854775809,  # one below the smallest 64-bit int
)
EDGE_IDS = (2**64 - 1, -(2**63), 12345678901234567890)  # 64-bit: orjson reads these exactly


def _codec() -> Codec:
    return Codec(encryption=None)


def _with(**extra: Any) -> bytes:
    session: dict[str, Any] = legacy_sessions()[USER]
    session.update(extra)
    return json.dumps(session).encode()  # what the first app stored


def test_a_legacy_int_beyond_64_bits_loads_exactly() -> None:
    raw = json.dumps({"ids": [*BIG_IDS, *EDGE_IDS], "n": 3, "x": 1.5, "e": 1e22}).encode()
    read = legacyjson.loads_legacy(raw, key="k")
    assert read == {"ids": [*BIG_IDS, *EDGE_IDS], "n": 3, "x": 1.5, "e": 1e22}
    assert all(type(i) is int for i in read["ids"])  # not a float that rounds the id
    assert type(read["e"]) is float  # a float stays a float


def test_a_legacy_session_keeps_its_big_id_exactly_through_a_store() -> None:
    backend = MemoryBackend()
    raw = _with(document_id=BIG_IDS[1])
    backend.set(USER, raw)
    store = SessionStore(backend, EnhancedSessionData, codec=_codec())
    session = store.load(USER)
    assert session is not None
    assert session.extra["document_id"] == BIG_IDS[1]
    assert type(session.extra["document_id"]) is int
    session.market_research_data = {"tam": "EUR 2bn"}
    with pytest.raises(SerializationError, match=r"\['document_id'\].*64 bits"):
        store.save(USER, session)  # the strict format cannot hold it: refused, never rounded
    assert backend.get(USER) == raw  # nothing written: the exact id is still stored
    session.extra["document_id"] = str(session.extra["document_id"])  # what the app may do
    store.save(USER, session)
    again = store.load(USER)
    assert again is not None and again.extra["document_id"] == str(BIG_IDS[1])


def test_a_big_legacy_int_is_reported_at_load(caplog: pytest.LogCaptureFixture) -> None:
    before = legacyjson.LEGACY_COUNTERS.as_dict()
    raw = json.dumps({"a": {"id": BIG_IDS[0]}, "b": [BIG_IDS[2]], "c": 2**64 - 1}).encode()
    with caplog.at_level(logging.WARNING, logger="session_store.codec.legacyjson"):
        legacyjson.loads_legacy(raw, key="U7")
    (record,) = caplog.records
    message = record.getMessage()
    assert "'U7'" in message and "2 int(s) beyond 64 bits" in message
    assert "['a']['id']" in message and "['b'][0]" in message and "['c']" not in message
    after = legacyjson.LEGACY_COUNTERS.as_dict()
    assert after["ints_beyond_64_bits"] - before["ints_beyond_64_bits"] == 2
    assert (
        after["sessions_with_ints_beyond_64_bits"] - before["sessions_with_ints_beyond_64_bits"]
        == 1
    )


def test_digits_in_text_are_only_text() -> None:
    """A long run of digits inside a string is not a number: read as it is."""
    raw = b'{"phone": "00331234567890123456789", "n": 1}'
    assert legacyjson.loads_legacy(raw, key="k") == {"phone": "00331234567890123456789", "n": 1}


LONE = {"title": "Q3 deck \ud83d", "notes": ["ok", "\udc00 cut"], "\ud800key": 1}


def test_a_lone_surrogate_reads_as_the_replacement_character() -> None:
    raw = json.dumps(LONE).encode()
    assert b"\\ud83d" in raw  # what Python's json writes for a lone surrogate
    read = legacyjson.loads_legacy(raw, key="k")
    assert read == {"title": "Q3 deck \ufffd", "notes": ["ok", "\ufffd cut"], "\ufffdkey": 1}
    jsonsafe.check_storable(read)  # whatever it read, the codec can store
    pair = json.dumps({"t": "\U0001f600"}).encode()  # a whole pair, escaped: one character
    assert legacyjson.loads_legacy(pair, key="k") == {"t": "\U0001f600"}


def test_a_legacy_session_with_a_lone_surrogate_can_be_changed_and_saved() -> None:
    backend = MemoryBackend()
    backend.set(USER, _with(drive_link="https://drive.example/\ud83d"))
    store = SessionStore(backend, EnhancedSessionData, codec=_codec())
    session = store.load(USER)
    assert session is not None
    assert session.extra["drive_link"] == "https://drive.example/\ufffd"
    session.market_research_data = {"tam": "EUR 2bn"}
    store.save(USER, session)  # raised SerializationError before the fix: every save did
    again = store.load(USER)
    assert again is not None and again.market_research_data == {"tam": "EUR 2bn"}
    user_sessions = SessionMapping(SessionStore(backend, codec=_codec()))
    backend.set("U2", _with(note="\udfff"))
    user_sessions["U2"]["seen"] = True  # the dict drop-in too
    assert user_sessions["U2"]["note"] == "\ufffd"


def test_a_lone_surrogate_is_reported_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    before = legacyjson.LEGACY_COUNTERS.as_dict()
    with caplog.at_level(logging.WARNING, logger="session_store.codec.legacyjson"):
        legacyjson.loads_legacy(json.dumps(LONE).encode(), key="U8")
    (record,) = caplog.records
    message = record.getMessage()
    assert "'U8'" in message and "3 string(s) with a lone surrogate" in message
    assert "['title']" in message and "['notes'][1]" in message and "the key" in message
    after = legacyjson.LEGACY_COUNTERS.as_dict()
    assert after["lone_surrogates"] - before["lone_surrogates"] == 3
    assert after["sessions_with_lone_surrogates"] - before["sessions_with_lone_surrogates"] == 1


def test_two_keys_made_equal_by_the_replacement_are_refused_not_merged() -> None:
    """``{"\\ud800": 1, "\\ufffd": 2}``: reading the first as U+FFFD would drop one value."""
    raw = b'{"\\ud800": 1, "\\ufffd": 2}'
    with pytest.raises(CorruptPayloadError, match="lone surrogate"):
        legacyjson.loads_legacy(raw, key="k")


def test_strict_json_with_a_lone_surrogate_stays_corrupt() -> None:
    """Only the legacy reader repairs: the codec never writes a lone surrogate."""
    with pytest.raises(CorruptPayloadError):
        jsonsafe.loads(b'{"schema": "dict", "version": 1, "data": {"a": "\\ud800"}}')


WIDE_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()  # of any size
    | st.floats()
    | st.text(st.characters(codec=None, categories=("L", "N", "Cs")), max_size=6)  # surrogates
)
WIDE = st.recursive(
    WIDE_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)


def _expected(value: Any) -> Any:
    """The oracle: what the legacy reader gives for ``value`` (recursive)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expected(v) for v in value]
    return value


@given(WIDE)
def test_the_legacy_reader_keeps_every_int_and_repairs_only_what_cannot_be_stored(
    document: Any,
) -> None:
    written = json.dumps(document).encode()  # what the first app stored
    read = legacyjson.loads_legacy(written, key="k")
    expected = _expected(json.loads(written))
    assert read == expected
    assert repr(read) == repr(expected)  # an int stays an int: 10**30 == 1e30 is False anyway
    if not any(isinstance(i, int) and not -(2**63) <= i < 2**64 for i in _leaves(expected)):
        jsonsafe.check_storable(read)  # what it read, the codec can store


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]
