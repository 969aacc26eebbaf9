"""Issue 13, item 3: decompression bombs. No payload of at most 1 KiB makes a decode allocate
more than the configured limit, measured with ``tracemalloc``.

Three ways a small payload used to cost far more memory than it is worth:

* a stage list the encoder never writes (zstd listed twice: each layer may expand again);
* a zstd frame that declares a huge content size (python-zstandard allocates the declared size
  up front, whatever ``max_output_size`` says);
* a frame that really expands to a lot of tiny JSON values (``[],`` is 3 bytes of text and about
  60 bytes of Python objects once parsed).

The limit here is small (8 MiB) so that the old code's overshoot is cheap to see; the default
(64 MiB) is checked on the declared-size case, which is refused before any allocation.
"""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Iterator

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from session_store import Codec, ZstdStage
from session_store.codec import MAGIC
from session_store.errors import CorruptPayloadError, SessionStoreError

LIMIT = 8 * 1024 * 1024
ENVELOPE = b'{"schema":"dict","version":1,"data":{"a":%s}}'


def _zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=19, write_content_size=True).compress(data)


def _payload(stages: bytes, body: bytes) -> bytes:
    return MAGIC + bytes((1, len(stages))) + stages + body


def _double_zstd() -> bytes:
    inner = _zstd(ENVELOPE % (b'"' + b"a" * (6 * 1024 * 1024) + b'"'))
    return _payload(b"\x01\x01", _zstd(inner))


def _declares_huge(size: int) -> bytes:
    frame = bytearray(_zstd(b"{}"))
    params = zstandard.get_frame_parameters(bytes(frame))
    assert params.content_size == 2
    # rewrite the frame header: single segment, 8-byte content size field
    header = bytes((0x28, 0xB5, 0x2F, 0xFD, 0xE0)) + size.to_bytes(8, "little")
    return _payload(b"\x01", header + bytes(frame[6:]))


def _json_expansion() -> bytes:
    body = ENVELOPE % (b"[" + b"[]," * (LIMIT // 12) + b"[]]")  # a quarter of the limit, as text
    return _payload(b"\x01", _zstd(body))


CRAFTED = {
    "zstd twice": _double_zstd(),
    "declares 100 MiB": _declares_huge(100 * 1024 * 1024),
    "declares 2**40": _declares_huge(2**40),
    "tiny JSON values": _json_expansion(),
}


@pytest.fixture(scope="module")
def traced() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def _peak_of_decode(codec: Codec, data: bytes) -> int:
    """Bytes allocated at the peak of one decode (typed errors are fine: refusing is the point)."""
    base, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    with contextlib.suppress(SessionStoreError):
        codec.decode("k", data)
    _, peak = tracemalloc.get_traced_memory()
    return peak - base


def _limited() -> Codec:
    return Codec(compression=ZstdStage(decode_limit=LIMIT), encryption=None, legacy_schema="dict")


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_bombs_stay_under_the_limit(name: str, traced: None) -> None:
    data = CRAFTED[name]
    assert len(data) <= 1024, len(data)
    assert _peak_of_decode(_limited(), data) <= LIMIT
    with pytest.raises(CorruptPayloadError):
        _limited().decode("k", data)


def test_the_default_limit_refuses_a_huge_declared_size_before_allocating(traced: None) -> None:
    codec = Codec(encryption=None)
    assert codec.compression is not None and codec.compression.decode_limit == 64 * 1024 * 1024
    assert _peak_of_decode(codec, CRAFTED["declares 100 MiB"]) < 1024 * 1024


@pytest.mark.parametrize("stages", [b"\x01\x01", b"\x02\x01", b"\x02\x02", b"\x01\x02\x01"])
def test_stage_lists_the_encoder_never_writes_are_refused(stages: bytes) -> None:
    from session_store import AesGcmStage

    codec = Codec(encryption=AesGcmStage([AesGcmStage.generate_key()]))
    with pytest.raises(CorruptPayloadError, match="never writes"):
        codec.decode("k", _payload(stages, b"x" * 40))


def test_a_legitimate_large_session_still_round_trips() -> None:
    """What the encoder writes, the decoder reads: a body too costly to decompress within the
    limit is stored uncompressed instead (and still loads)."""
    codec = _limited()
    small = {"text": "revenue grew " * 1000}
    assert codec.decode("k", codec.encode("k", small)).obj == small
    big: dict[str, list[list[int]]] = {"rows": [[] for _ in range(LIMIT // 64)]}
    data = codec.encode("k", big)
    assert data[5:6] != b"\x01"  # not compressed: its parse would cost more than the limit
    assert codec.decode("k", data).obj == big


@st.composite
def small_payloads(draw: st.DrawFn) -> bytes:
    """Payloads of at most 1 KiB: zstd frames of generated JSON, under every stage list."""
    unit = draw(st.sampled_from([b"[],", b"{},", b"0,", b'"a",', b"1e1,", b'"\\ud83d\\ude00",']))
    count = draw(st.integers(1, LIMIT // len(unit)))
    body = ENVELOPE % (b"[" + unit * count + b"0]")
    frame = _zstd(body)
    if draw(st.booleans()):
        frame = _zstd(frame)
    stages = draw(st.sampled_from([b"\x01", b"\x01\x01", b"\x01\x01\x01", b""]))
    data = _payload(stages, frame)
    cut = draw(st.integers(0, len(data)))
    return data[: min(1024, cut if draw(st.booleans()) else len(data))]


@settings(max_examples=40, deadline=None)
@given(small_payloads())
def test_no_small_payload_decodes_past_the_limit(data: bytes) -> None:
    tracemalloc.start()
    try:
        assert _peak_of_decode(_limited(), data) <= LIMIT
    finally:
        tracemalloc.stop()
