"""Compression defaults (issue 17): a faster level, readable both ways, safe across threads."""

from __future__ import annotations

import threading
from typing import Any

from session_store.codec import Codec, ZstdStage


def _codec(**stage: Any) -> Codec:
    return Codec(encryption=None, compression=ZstdStage(**stage))


def test_default_level_is_the_fast_one() -> None:
    assert ZstdStage().level == 1
    assert Codec(encryption=None).compression is not None  # compression stays on by default


def test_payloads_read_back_whatever_level_wrote_them() -> None:
    data = {"text": "revenue churn runway " * 400}
    for writer, reader in [(1, 3), (3, 1), (1, 19), (19, 1)]:
        payload = _codec(level=writer).encode("k", data)
        assert _codec(level=reader).inspect(payload).stages == ("zstd",)
        assert _codec(level=reader).decode("k", payload).obj == data
    plain = Codec(encryption=None, compression=None).encode("k", data)
    assert _codec().decode("k", plain).obj == data  # uncompressed payloads read too


def test_fast_levels_write_standard_frames_that_every_level_and_the_old_reader_read() -> None:
    """Negative ("fast") levels (issue 17): fewer CPU cycles for more bytes; the header and
    frame are the same as level 1's, so the default codec, and the previous release's reader
    (which only ever accepted levels 1..22 for writing) read them."""
    import pytest
    import zstandard

    from session_store.codec.stages import FASTEST_LEVEL
    from session_store.errors import ConfigurationError

    data = {"text": " ".join(f"revenue {i} churn runway" for i in range(600))}
    default = Codec(encryption=None)
    for level in (-1, -5, -50, FASTEST_LEVEL):
        payload = _codec(level=level).encode("k", data)
        assert payload[:6] == b"\xa7SS\x01\x01\x01"  # format 1, one stage: zstd
        assert default.decode("k", payload).obj == data
        # a plain zstd frame: what the old reader hands to ZstdDecompressor, undone as it is
        assert zstandard.ZstdDecompressor().decompress(payload[6:]).startswith(b'{"schema"')
    assert len(_codec(level=-50).encode("k", data)) > len(_codec(level=1).encode("k", data))
    for bad in (0, 23, FASTEST_LEVEL - 1):
        with pytest.raises(ConfigurationError, match="level"):
            ZstdStage(level=bad)


def test_changing_the_level_takes_effect() -> None:
    stage = ZstdStage(threshold=0)
    data = {"text": "a b c d e f g " * 2000}
    fast = Codec(encryption=None, compression=stage).encode("k", data)
    stage.level = 19
    small = Codec(encryption=None, compression=stage).encode("k", data)
    assert len(small) <= len(fast)
    assert Codec(encryption=None).decode("k", small).obj == data


def test_one_stage_shared_by_threads_compresses_correctly() -> None:
    codec = _codec(threshold=0)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                data = {"n": n, "i": i, "text": f"thread {n} item {i} " * 50}
                assert codec.decode("k", codec.encode("k", data)).obj == data
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_the_reused_decompressor_reads_a_good_payload_after_a_corrupt_one() -> None:
    # One decompressor per thread is reused: a payload it failed on must not poison the next.
    import pytest

    from session_store.codec.format import parse_header
    from session_store.errors import CorruptPayloadError

    codec = _codec()
    data = {"text": "revenue churn runway " * 400}
    payload = codec.encode("k", data)
    offset = parse_header(payload).payload_offset
    corrupt = payload[: offset + 20] + bytes(16) + payload[offset + 36 :]
    truncated = payload[:-7]
    for bad in (corrupt, truncated):
        with pytest.raises(CorruptPayloadError):
            codec.decode("k", bad)
        assert codec.decode("k", payload).obj == data
