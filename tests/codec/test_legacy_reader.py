"""The legacy reader (``legacyjson.loads_legacy``) against Python's own ``json``, which wrote the
legacy sessions, and the data-room schema's unknown timestamps through every codec form.

* Whatever ``json.dumps`` wrote, ``loads_legacy`` reads the same value, except that each NaN and
  infinity is ``None``, and it reports exactly those, by path (property test).
* A typed session whose ``created_at`` / ``last_accessed`` is unknown (``None``) round-trips
  through every stage combination and through the version-1 downgrade.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from session_store.codec import AesGcmStage, Codec, jsonsafe, legacyjson
from session_store.codec.stages import ZstdStage
from session_store.schema.dataroom import EnhancedSessionData

KEYS = st.text(max_size=6)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()  # NaN and both infinities included
    | st.text(max_size=8)
)
DOCUMENTS = st.dictionaries(
    KEYS,
    st.recursive(
        LEAVES,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=20,
    ),
    max_size=6,
)


def _non_finite(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The paths of every NaN and infinity in ``value`` (recursive: the oracle)."""
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, (*path, i))]
    return []


def _nulled(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulled(v) for v in value]
    return value


@given(DOCUMENTS)
def test_the_legacy_reader_is_pythons_json_with_non_finite_floats_as_none(
    document: dict[str, Any],
) -> None:
    written = json.dumps(document).encode()  # what the first app stored
    before = legacyjson.LEGACY_COUNTERS.as_dict()
    read = legacyjson.loads_legacy(written, key="k")
    after = legacyjson.LEGACY_COUNTERS.as_dict()
    expected = _nulled(json.loads(written))
    assert read == expected
    jsonsafe.check_storable(read)  # whatever it read, the codec can store
    paths = _non_finite(json.loads(written))
    assert after["non_finite_floats"] - before["non_finite_floats"] == len(paths)
    assert after["sessions_with_non_finite"] - before["sessions_with_non_finite"] == bool(paths)
    _, replaced = legacyjson.replace_non_finite(json.loads(written))
    assert sorted(map(repr, (tuple(p) for p, _ in replaced))) == sorted(map(repr, paths))


def test_the_warning_names_each_path_once_per_payload(caplog: pytest.LogCaptureFixture) -> None:
    raw = b'{"a": [1, NaN, {"b": -Infinity}], "c": Infinity, "d": "NaN"}'
    with caplog.at_level(logging.WARNING, logger="session_store.codec.legacyjson"):
        assert legacyjson.loads_legacy(raw, key="U9") == {
            "a": [1, None, {"b": None}],
            "c": None,
            "d": "NaN",  # text is text
        }
    (record,) = caplog.records
    message = record.getMessage()
    assert message.startswith("legacy session 'U9': 3 non-finite float(s) read as None")
    for shown in ("['a'][1] was nan", "['a'][2]['b'] was -inf", "['c'] was inf"):
        assert shown in message


def test_a_bare_non_finite_legacy_value_is_none() -> None:
    assert legacyjson.replace_non_finite(math.nan)[0] is None
    assert legacyjson.loads_legacy(b"NaN", key="k") is None


KEY = AesGcmStage.generate_key()


@pytest.mark.parametrize(
    "codec",
    [
        Codec(compression=None, encryption=None),
        Codec(compression=ZstdStage(threshold=0), encryption=None),
        Codec(compression=ZstdStage(threshold=0), encryption=AesGcmStage([KEY])),
        Codec(encryption=None, write_versions={"dataroom": 1}),
    ],
    ids=["plain", "zstd", "zstd+aes", "written-as-v1"],
)
def test_unknown_times_round_trip_through_every_codec_form(codec: Codec) -> None:
    session = EnhancedSessionData("U1", created_at=None, last_accessed=None)
    session.extra["analysis_result"] = {"score": None}
    payload = codec.encode("U1", session)
    assert codec.decode("U1", payload).obj == session
