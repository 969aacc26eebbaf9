"""The chain's ordered writes on Redis, as Lua scripts.

**Ordered writes** (:data:`SET_IF_NEWER_SCRIPT`): store a value unless the current one begins with
the same header and carries a version at least as new, compared byte by byte inside Redis, in
one round trip. The chain uses it so that no tier write replaces a newer version with an older one.
**Writes ordered by arrival** (:data:`SET_AFTER_SCRIPT`): always store, after moving the new
value's version past the current one if needed; the chain's arbiter takes new writes this way.
Both read only the current value's first bytes, up to the end of its version (``GETRANGE``), not
the whole value: a session of any size costs the script the same few bytes. The stored format is
the same as the earlier scripts' (which read it whole with ``GET``, then compared with ``struct``
or a loop of ``string.byte`` calls), and so is every decision, so processes running any of these
texts (each loads its own, by SHA) share keys (``tests/standalone/test_script_texts_mixed.py``).
"""

from __future__ import annotations

__all__ = ["HEADS_16", "KEPT_16", "SET_AFTER_SCRIPT", "SET_IF_NEWER_SCRIPT"]

#: Lua: the stored and the new value's first 16 bytes as locals ``c1``..``c16`` and
#: ``n1``..``n16`` (one ``string.byte`` call each; ``current`` is the stored value's head, ARGV[1]
#: the new value or its head).
HEADS_16 = (
    "local "
    + ", ".join(f"c{i}" for i in range(1, 17))
    + " = string.byte(current, 1, 16)\nlocal "
    + ", ".join(f"n{i}" for i in range(1, 17))
    + " = string.byte(ARGV[1], 1, 16)\n"
)


def _at_least(first: int, last: int) -> str:
    """Lua: whether bytes ``c<first>..c<last>`` are at least ``n<first>..n<last>`` in byte
    order (the first byte that differs decides; equal is at least)."""
    text = f"c{last} >= n{last}"
    for i in range(last - 1, first - 1, -1):
        text = f"c{i} > n{i} or c{i} == n{i} and ({text})"
    return text


#: Lua, over :data:`HEADS_16`: whether the stored value has the chain's frame's magic (bytes
#: 1-4) of the new one and a version (bytes 5-16) at least as new, compared byte by byte as
#: numbers. Byte order whatever the server's ``LC_COLLATE``: Lua's ``<`` on strings is
#: ``strcoll``, and Redis sets the collation locale from its environment. Two C calls and a
#: few comparisons: as cheap as the four 32-bit words of ``struct.unpack`` it replaced in the
#: staged scripts, and no loop of ``string.byte`` calls in the one-script texts.
KEPT_16 = "c1 == n1 and c2 == n2 and c3 == n3 and c4 == n4\n    and (" + _at_least(5, 16) + ")"

# The two scripts' shared parts: reading the current value's head (``GETRANGE`` with its offsets
# as text for the chain's layout: a number handed to ``redis.call`` costs Redis 7.0 an
# ``snprintf("%.17g")``, ~2,000 instructions), deciding whether the stored version is at least
# as new (``kept``: at once for the chain's layout, byte by byte for any other), and the write.
_ARGUMENTS = """
local new = ARGV[1]
local head, first, last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
"""
_COMPARE = (
    """local current = redis.call('GETRANGE', KEYS[1], '0', last == 16 and '15' or last - 1)
local kept = false
if string.len(current) == last then
  if head == 4 and first == 5 and last == 16 then
"""
    + HEADS_16.replace("local ", "    local ")
    + "    kept = "
    + KEPT_16.replace("\n    and", "\n        and")
    + """
  elseif string.sub(current, 1, head) == string.sub(new, 1, head) then
    kept = true
    for i = first, last do
      local a, b = string.byte(current, i), string.byte(new, i)
      if a ~= b then
        kept = a > b
        break
      end
    end
  end
end
if kept then
"""
)
_WRITE = """if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], new)
else
  redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
end
"""

#: KEYS[1]: the key. ARGV[1]: the new value. ARGV[2]: TTL in ms, "0" for none. ARGV[3]: length of
#: the header both values must share. ARGV[4], ARGV[5]: 1-based first and last byte of the version.
#: Returns 1 if it wrote, 0 if the current value is at least as new.
SET_IF_NEWER_SCRIPT = (
    _ARGUMENTS
    + _COMPARE
    + """  return 0
end
"""
    + _WRITE
    + "return 1\n"
)

#: KEYS[1]: the key. ARGV[1]: the new value. ARGV[2]: TTL in ms, "0" for none. ARGV[3]: length of
#: the shared header. ARGV[4], ARGV[5]: 1-based first and last byte of the version. ARGV[6]: last
#: byte of its clock. Always writes; if the current value carries a version at least as new, the
#: new value's clock becomes the current one plus one first (new writes ordered by arrival).
#: Returns the version stored.
SET_AFTER_SCRIPT = (
    _ARGUMENTS
    + "local clock_end = tonumber(ARGV[6])\n"
    + _COMPARE
    + """  local clock = {}
  local carry = 1
  for i = clock_end, first, -1 do
    local v = string.byte(current, i) + carry
    if v == 256 then
      v = 0
    else
      carry = 0
    end
    clock[i - first + 1] = string.char(v)
  end
  new = string.sub(new, 1, first - 1) .. table.concat(clock) .. string.sub(new, clock_end + 1)
end
"""
    + _WRITE
    + "return string.sub(new, first, last)\n"
)
