"""How much memory decoding a payload may take, against decompression bombs (issue 13).

A few hundred bytes of zstd can expand to gigabytes, and even a modest decompressed body can
cost far more once parsed: ``[],`` is 3 bytes of JSON and about 60 bytes of Python objects.
So a compressed payload is held to a budget, :data:`DEFAULT_DECODE_LIMIT` (64 MiB) unless
configured (``ZstdStage(decode_limit=...)``):

* the zstd frame must declare its content size (the encoder always writes it) and may declare
  at most ``decode_limit // BYTE_COST`` bytes; nothing is allocated for a frame that declares
  more;
* the decompressed body's parse cost, estimated by :func:`parse_cost` without parsing, must fit
  the budget too, or it is refused before ``orjson`` sees it.

Both refusals are :class:`~session_store.errors.CorruptPayloadError`. The encoder holds itself to
the same rule: a body whose parse would cost more than the budget is stored uncompressed, so a
store never writes a compressed payload it would refuse to read. An uncompressed payload costs
what it is stored as (no amplification beyond :func:`parse_cost` of its own bytes).
"""

from __future__ import annotations

__all__ = ["BYTE_COST", "DEFAULT_DECODE_LIMIT", "VALUE_COST", "parse_cost", "within_budget"]

#: The memory budget of decoding one compressed payload, by default: 64 MiB.
DEFAULT_DECODE_LIMIT = 64 * 1024 * 1024
#: Bytes of memory ``orjson.loads`` may take per byte of text (measured: 13 for plain ASCII
#: text, 16 for a string holding one astral character, which makes every character 4 bytes).
BYTE_COST = 16
#: Bytes per JSON value on top of that (measured: up to about 300 for a dict entry with its key,
#: or a 20-digit integer).
VALUE_COST = 320


#: Every byte but the three :func:`parse_cost` counts (``bytes.translate`` deletes these).
_NOT_COUNTED = bytes(b for b in range(256) if b not in b",[{")


def parse_cost(body: bytes) -> int:
    """An upper bound of the memory parsing ``body`` as JSON takes, computed without parsing.

    Every value but the first of a container follows a comma, and every container opens with a
    bracket, so commas plus brackets bound the number of values (commas inside strings only
    make the bound looser). They are counted in one pass, as what is left once every other
    byte is deleted: 2.6x cheaper than three ``bytes.count`` (measured, 600 KB body: 205 µs
    against 536; what a large session's compressed ``save`` and cold ``load`` each pay).
    """
    values = len(body.translate(None, _NOT_COUNTED)) + 1
    return BYTE_COST * len(body) + VALUE_COST * values


def within_budget(body: bytes, limit: int) -> bool:
    """Whether ``parse_cost(body) <= limit``, without counting when the answer is certain.

    A body of ``n`` bytes holds at most ``n + 1`` values by :func:`parse_cost`'s own count
    (commas and brackets are bytes), so a body with ``BYTE_COST * n + VALUE_COST * (n + 1)``
    within the limit fits whatever it holds: a 60 KB session under the default 64 MiB budget
    is accepted without three scans of its bytes (issue 17: they were a fifth of a decode).
    The answer is always the same as the exact comparison's.
    """
    n = len(body)
    if BYTE_COST * n + VALUE_COST * (n + 1) <= limit:
        return True
    return parse_cost(body) <= limit
