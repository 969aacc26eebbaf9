"""The chain's ordered writes on Redis, as Lua scripts.

**Ordered writes** (:data:`SET_IF_NEWER_SCRIPT`): store a value unless the current one begins with
the same header and carries a version at least as new, compared byte by byte inside Redis, in
one round trip. The chain uses it so that no tier write replaces a newer version with an older one.
**Writes ordered by arrival** (:data:`SET_AFTER_SCRIPT`): always store, after moving the new
value's version past the current one if needed; the chain's arbiter takes new writes this way.
Both read only the current value's first bytes, up to the end of its version (``GETRANGE``), not
the whole value: a session of any size costs the script the same few bytes. The stored format is
the same as the earlier scripts' (which read it whole with ``GET``), and so is every decision, so
processes running either text (each loads its own, by SHA) share keys.
"""

from __future__ import annotations

__all__ = ["SET_AFTER_SCRIPT", "SET_IF_NEWER_SCRIPT"]

# The two scripts' shared parts (assembled below into texts identical to the earlier ones, so
# their SHAs do not change): reading the current value's head, deciding whether the new value's
# version is newer (``newer``, inside ``if <same header> then``, left open for what follows), and
# the write itself.
_ARGUMENTS = """
local new = ARGV[1]
local head, first, last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
"""
_COMPARE = """local current = redis.call('GETRANGE', KEYS[1], '0', last == 16 and '15' or last - 1)
if string.len(current) == last
    and string.sub(current, 1, head) == string.sub(new, 1, head) then
  local newer = false
  for i = first, last do
    local a, b = string.byte(current, i), string.byte(new, i)
    if a ~= b then
      newer = b > a
      break
    end
  end
  if not newer then
"""
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
    + """    return 0
  end
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
    + """    local clock = {}
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
end
"""
    + _WRITE
    + "return string.sub(new, first, last)\n"
)
