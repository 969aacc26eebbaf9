"""Today's script texts against the previous release's (the texts before lua12 cut their
server cost, kept here verbatim), on the same keys of one real redis-server: every decision,
every stored byte, every TTL and every reply are the same, so processes running either text
(each loads its own by SHA) share keys during a rolling upgrade. And the version comparison is
byte order in every position, whatever the bytes (a regression test for the comparison without
``struct``: heads that differ only in a byte's high bit).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from functools import partial

import pytest
import redis

from session_store import stamps
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import (
    CAS_SCRIPT,
    WHOLE_VALUE_MAX,
    FrameToken,
    ValueToken,
    cas_args,
    version_token,
)
from session_store_redis.staged import (
    MOVE_AFTER_SCRIPT,
    MOVE_IF_NEWER_SCRIPT,
    STAGED_CAS_SCRIPT,
    staged_cas_args,
    staged_write,
    staging_key,
)
from session_store_redis.testing import RedisServer

# -- the previous release's texts, verbatim (never edit: SHAS pins each) ------------------------
# A process of that release loads these, each by its own SHA, and keeps running them beside a
# newer one on the same keys; ``benchmarks/server_cost.py`` measures them as ``old-...``.
#: ``staged.MOVE_IF_NEWER_SCRIPT`` before lua12.
MOVE_IF_NEWER_0 = """
local current = redis.pcall('GETRANGE', KEYS[1], 0, 15)
if type(current) == 'table' then
  redis.call('DEL', KEYS[2])
  return current
end
if string.len(current) == 16 then
  local cm, c1, c2, c3 = struct.unpack('>I4I4I4I4', current)
  local nm, n1, n2, n3 = struct.unpack('>I4I4I4I4', ARGV[1])
  if cm == nm and (c1 > n1 or (c1 == n1 and (c2 > n2 or (c2 == n2 and c3 >= n3)))) then
    redis.call('DEL', KEYS[2])
    return 0
  end
end
redis.call('RENAME', KEYS[2], KEYS[1])
return 1
"""

#: ``staged.MOVE_AFTER_SCRIPT`` before lua12.
MOVE_AFTER_0 = """
local current = redis.pcall('GETRANGE', KEYS[1], 0, 15)
if type(current) == 'table' then
  redis.call('DEL', KEYS[2])
  return current
end
local version = string.sub(ARGV[1], 5, 16)
if string.len(current) == 16 then
  local cm, c1, c2, c3 = struct.unpack('>I4I4I4I4', current)
  local nm, n1, n2, n3 = struct.unpack('>I4I4I4I4', ARGV[1])
  if cm == nm and (c1 > n1 or (c1 == n1 and (c2 > n2 or (c2 == n2 and c3 >= n3)))) then
    if c2 == 4294967295 then
      c1, c2 = (c1 + 1) % 4294967296, 0
    else
      c2 = c2 + 1
    end
    local clock = struct.pack('>I4I4', c1, c2)
    redis.call('SETRANGE', KEYS[2], 4, clock)
    version = clock .. string.sub(ARGV[1], 13, 16)
  end
end
redis.call('RENAME', KEYS[2], KEYS[1])
return version
"""

#: ``staged.STAGED_CAS_SCRIPT`` before lua12.
STAGED_CAS_0 = """
local check = ARGV[3]
local ok
if check == '-1' or check == '0' then
  local current = redis.pcall('GET', KEYS[1])
  if type(current) == 'table' then
    redis.call('DEL', KEYS[2])
    return current
  end
  if check == '-1' then
    ok = current == ARGV[1]
  else
    ok = current and redis.sha1hex(current) == ARGV[1]
  end
else
  local tail = redis.pcall('GETRANGE', KEYS[1], ARGV[4], check)
  if type(tail) == 'table' then
    redis.call('DEL', KEYS[2])
    return tail
  end
  ok = tail == ARGV[2] and redis.call('GETRANGE', KEYS[1], '0', ARGV[5]) == ARGV[1]
end
if ok then
  redis.call('RENAME', KEYS[2], KEYS[1])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
"""

#: ``scripts.CAS_SCRIPT`` before lua12.
CAS_0 = """
local check = ARGV[5]
if check == '-1' then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
  end
elseif check == '0' then
  local current = redis.call('GET', KEYS[1])
  if not current or redis.sha1hex(current) ~= ARGV[1] then
    return 0
  end
elseif redis.call('GETRANGE', KEYS[1], ARGV[6], check) ~= ARGV[4]
    or redis.call('GETRANGE', KEYS[1], '0', ARGV[7]) ~= ARGV[1] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

#: ``ordered_scripts.SET_IF_NEWER_SCRIPT`` before lua12.
SET_IF_NEWER_0 = """
local new = ARGV[1]
local head, first, last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local current = redis.call('GETRANGE', KEYS[1], 0, last - 1)
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
    return 0
  end
end
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], new)
else
  redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
end
return 1
"""

#: ``ordered_scripts.SET_AFTER_SCRIPT`` before lua12.
SET_AFTER_0 = """
local new = ARGV[1]
local head, first, last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local clock_end = tonumber(ARGV[6])
local current = redis.call('GETRANGE', KEYS[1], 0, last - 1)
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
    local clock = {}
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
if ARGV[2] == '0' then
  redis.call('SET', KEYS[1], new)
else
  redis.call('SET', KEYS[1], new, 'PX', ARGV[2])
end
return string.sub(new, first, last)
"""

#: Each text's SHA-1, the name ``EVALSHA`` runs it by in an older process.
SHAS = {
    "MOVE_IF_NEWER_0": "b864bd8b97247f9653a1e4b9067e19362acb1f78",
    "MOVE_AFTER_0": "ae84c86743cc7503b9043498daf7d0cfaa081225",
    "STAGED_CAS_0": "ca472859f0685cdffa6e45186069783814d4749e",
    "CAS_0": "950a4b7432b671655b87db8795b1456857a249d6",
    "SET_IF_NEWER_0": "c0a25a04b1b50af1adb48dd9d4a12900663ba397",
    "SET_AFTER_0": "bcb16f975403bcd85f8db10a009ba6ffded4405c",
}

#: The texts by the variant names of ``benchmarks/server_cost.py``.
BY_VARIANT = {
    "old-after-staged": MOVE_AFTER_0,
    "old-newer-staged": MOVE_IF_NEWER_0,
    "old-cas-staged": STAGED_CAS_0,
    "old-cas-script": CAS_0,
    "old-after-script": SET_AFTER_0,
    "old-newer-script": SET_IF_NEWER_0,
}


def previous_cas_args(token: object, value: bytes, px: int | None) -> list[bytes | str | int]:
    """``ARGV`` of :data:`CAS_0` for a token, as the previous release's ``cas_args`` made it."""
    if type(token) is ValueToken:
        if len(token.value) > WHOLE_VALUE_MAX:
            return [token.digest(), value, px or 0, b"", 0, 0, 0]
        return [token.value, value, px or 0, b"", -1, 0, 0]
    if isinstance(token, FrameToken):
        length, head, tail = token
        return [head, value, px or 0, tail, length, length - len(tail), len(head) - 1]
    return [str(token), value, px or 0, b"", 0, 0, 0]


def previous_staged_cas_args(token: object) -> tuple[bytes | str | int, ...]:
    """``ARGV`` of :data:`STAGED_CAS_0`, as the previous release's ``staged_cas_args``."""
    check = previous_cas_args(token, b"", None)
    return check[0], check[3], check[4], check[5], check[6]


HEAD, FIRST, LAST, CLOCK_END = 4, 5, 16, 12
MAGIC = stamps.MAGIC


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.client() as opened:
        yield opened


def test_the_fixtures_are_the_texts_older_processes_run() -> None:
    for name, sha in SHAS.items():
        assert _sha(globals()[name]) == sha, name


def _high_bit_heads(rng: random.Random) -> Iterator[tuple[bytes, bytes]]:
    """(stored head, new head) pairs equal but for one byte, where one has the high bit set and
    the other not (0x00/0x80, 0x7f/0xff, ...), in every position, both ways round."""
    for position in range(16):
        for low in (0x00, 0x01, 0x7F, rng.randrange(0x80)):
            base = bytearray(MAGIC + rng.randbytes(12))
            stored, new = bytearray(base), bytearray(base)
            stored[position], new[position] = low, low | 0x80
            yield bytes(stored), bytes(new)
            yield bytes(new), bytes(stored)


def _version(rng: random.Random) -> bytes:
    # few distinct values per byte, so that equal prefixes, equal versions, carries and the
    # clock's wrap-around are common
    return bytes(rng.choice((0, 1, 127, 128, 255)) for _ in range(12))


def _cases(rng: random.Random, new: bytes) -> list[bytes | None]:
    """What a key may hold when a write of ``new`` arrives."""
    framed = stamps.frame(b"x" * rng.choice((0, 5, 3000)), _version(rng), rng.choice((None, 9.0)))
    flipped = bytearray(new)
    flipped[rng.randrange(16)] ^= 0x80
    return [
        None,  # absent
        framed,
        new,  # the same version
        bytes(flipped) + b"held",  # one high bit apart
        stamps.tombstone(_version(rng)),
        framed[: rng.randrange(0, 16)],  # shorter than a head
        b"a bare payload, written before chains framed " * rng.choice((1, 50)),
        b"\xa7SF\x02" + framed[4:],  # another magic: not comparable
    ]


#: A key of another type (a list) instead of a string.
_A_LIST = b"\0a list"


def _hold(client: redis.Redis, key: str, held: bytes | None, ttl: int | None) -> None:
    client.delete(key)
    if held is _A_LIST:
        client.rpush(key, b"x")
    elif held is not None:
        client.set(key, held, px=ttl)


def _state(client: redis.Redis, key: str) -> tuple[object, ...]:
    """What ``key`` holds, whether it has a TTL, and the staging keys left beside it."""
    left = client.pttl(key)
    pattern = prefix_pattern(staging_key(key).decode("utf-8", "surrogateescape"))
    staging = client.keys(pattern.encode("utf-8", "surrogateescape"))
    value = client.lrange(key, 0, -1) if client.type(key) == b"list" else client.get(key)
    return value, "absent" if left == -2 else "none" if left == -1 else "some", staging


def _outcome(write: Callable[[], object]) -> object:
    try:
        return write()
    except redis.ResponseError as exc:  # the same kind of error either way
        return f"error {str(exc).split()[0]}"


def _staged(client: redis.Redis, text: str, key: str, value: bytes, px: int | None) -> object:
    return staged_write(client, text, _sha(text), key, staging_key(key), value, px)


def _one_script(client: redis.Redis, text: str, key: str, *args: bytes | int) -> object:
    return client.eval(text, 1, key, *args)


#: (name, today's text, the previous text, how one write of a value runs: staged or one-script)
ORDERED = [
    ("staged set_if_newer", MOVE_IF_NEWER_SCRIPT, MOVE_IF_NEWER_0, "staged"),
    ("staged set_after", MOVE_AFTER_SCRIPT, MOVE_AFTER_0, "staged"),
    ("set_if_newer", SET_IF_NEWER_SCRIPT, SET_IF_NEWER_0, "newer"),
    ("set_after", SET_AFTER_SCRIPT, SET_AFTER_0, "after"),
]


def _write(
    client: redis.Redis, how: str, text: str, key: str, new: bytes, px: int, layout: tuple[int, ...]
) -> object:
    if how == "staged":
        return _outcome(partial(_staged, client, text, key, new, px or None))
    args: tuple[bytes | int, ...] = (new, px, *(layout if how == "after" else layout[:3]))
    return _outcome(partial(_one_script, client, text, key, *args))


@pytest.mark.parametrize(("name", "text", "old", "how"), ORDERED, ids=[o[0] for o in ORDERED])
def test_ordered_writes_decide_as_the_previous_texts(
    client: redis.Redis, redis_namespace: str, name: str, text: str, old: str, how: str
) -> None:
    """From the same stored value (every kind, with and without a TTL, a key of another type
    too), today's text and the previous one store the same bytes with the same TTL, answer the
    same, and leave no staging key."""
    rng = random.Random(name)
    layout = (HEAD, FIRST, LAST, CLOCK_END)
    for round_ in range(60):
        new = stamps.frame(b"new" * rng.choice((1, 1000)), _version(rng), 30.0)
        px = rng.choice((0, 60_000))
        for case, held in enumerate([*_cases(rng, new), _A_LIST]):
            held_ttl = rng.choice((None, 90_000))
            outcomes = []
            for which, script in (("new", text), ("old", old)):
                key = f"{redis_namespace}{round_}:{case}:{which}"
                _hold(client, key, held, held_ttl)
                reply = _write(client, how, script, key, new, px, layout)
                state = _state(client, key)
                outcomes.append((reply, state))
            assert outcomes[0] == outcomes[1], (name, held, new, px, held_ttl)


@pytest.mark.parametrize("layout", [(0, 1, 8, 4), (2, 3, 10, 6), (4, 5, 16, 12), (6, 9, 12, 10)])
def test_one_script_writes_decide_as_the_previous_texts_in_any_layout(
    client: redis.Redis, redis_namespace: str, layout: tuple[int, int, int, int]
) -> None:
    """The one-script texts take the layout as arguments: any layout, not only the chain's,
    gets the previous texts' decisions (the offsets they ask ``GETRANGE`` for are the same)."""
    rng = random.Random(str(layout))
    for round_ in range(40):
        new = rng.randbytes(rng.choice((3, 12, 40)))
        for case in range(6):
            held = rng.choice((None, new, rng.randbytes(rng.choice((0, 5, 12, 40)))))
            if held is not None and rng.random() < 0.5:  # share a head, so versions compare
                held = new[: layout[0]] + held[layout[0] :]
            outcomes = []
            for which, (after, newer) in (
                ("new", (SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT)),
                ("old", (SET_AFTER_0, SET_IF_NEWER_0)),
            ):
                key = f"{redis_namespace}{round_}:{case}:{which}"
                _hold(client, key, held, None)
                wrote = _write(client, "newer", newer, key, new, 0, layout)
                first = _state(client, key)
                _hold(client, key, held, None)
                version = _write(client, "after", after, key, new, 0, layout)
                outcomes.append((wrote, first, version, _state(client, key)))
            assert outcomes[0] == outcomes[1], (layout, held, new)


@pytest.mark.parametrize(("name", "text", "old", "how"), ORDERED, ids=[o[0] for o in ORDERED])
def test_versions_compare_in_byte_order_in_every_position(
    client: redis.Redis, redis_namespace: str, name: str, text: str, old: str, how: str
) -> None:
    """Heads equal but for one byte's high bit, in each of the 16 positions, both ways round:
    the stored value is kept exactly when Python's byte order (unsigned, position by position)
    says it has the same magic and a version at least as new; the previous text agrees.
    (Seen failing with a comparison of signed bytes in the version, and with the magic's bytes
    left out.)"""
    rng = random.Random(7)
    layout = (HEAD, FIRST, LAST, CLOCK_END)
    for number, (stored_head, new_head) in enumerate(_high_bit_heads(rng)):
        held, new = stored_head + b"held", new_head + b"new"
        kept = held[:4] == new[:4] and held[4:16] >= new[4:16]
        outcomes = []
        for which, script in (("new", text), ("old", old)):
            key = f"{redis_namespace}{number}:{which}"
            _hold(client, key, held, None)
            reply = _write(client, how, script, key, new, 0, layout)
            outcomes.append((reply, _state(client, key)))
            stored = client.get(key)
            assert isinstance(stored, bytes)
            if "after" not in name and script is text:
                if kept:
                    assert stored == held and reply == 0, (stored_head, new_head)
                else:
                    assert stored == new and reply == 1, (stored_head, new_head)
            elif script is text:  # set_after: always lands; the clock moves past a kept one
                assert stored[16:] == b"new"
                assert (stored[:16] == new_head) is not kept, (stored_head, new_head)
                assert not kept or stored[4:16] > held[4:16]
        assert outcomes[0] == outcomes[1], (stored_head, new_head)


def test_old_and_new_texts_write_one_key_in_turns(
    client: redis.Redis, redis_namespace: str
) -> None:
    """Processes running the previous texts and today's (staged and one-script) write the same
    key in turns: every write lands and the versions stored only move forward."""
    key = redis_namespace + "turns"
    rng = random.Random(12)

    def staged(text: str, data: bytes) -> object:
        return _staged(client, text, key, data, None)

    def one_script(text: str, data: bytes) -> object:
        return _one_script(client, text, key, data, 0, *_LAYOUT)

    writers = [
        partial(staged, MOVE_AFTER_SCRIPT),
        partial(staged, MOVE_AFTER_0),
        partial(one_script, SET_AFTER_SCRIPT),
        partial(one_script, SET_AFTER_0),
    ]
    seen: list[bytes] = []
    for turn in range(120):
        data = stamps.frame(b"v%d" % turn, _version(rng), None)
        version = writers[rng.randrange(len(writers))](data)
        assert isinstance(version, bytes)
        seen.append(version)
        stored = client.get(key)
        assert stored is not None and stored[4:16] == version
        assert stored[stamps.HEADER_SIZE :] == b"v%d" % turn
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


_LAYOUT = (HEAD, FIRST, LAST, CLOCK_END)


@pytest.mark.parametrize("size", [40, 3000])
def test_compare_and_set_decides_as_the_previous_texts(
    client: redis.Redis, redis_namespace: str, size: int
) -> None:
    """Staged and one-script compare-and-set, today's and the previous texts, from the same
    stored value against tokens of it, of a value alike in length, head and tail, and of an
    older version: the same replies, bytes and TTLs."""
    rng = random.Random(size)
    for round_ in range(25):
        current = stamps.frame(rng.randbytes(size), _version(rng), 30.0)
        middle = len(current) // 2
        alike = current[:middle] + bytes([current[middle] ^ 1]) + current[middle + 1 :]
        older = stamps.frame(rng.randbytes(size), _version(rng), 30.0)
        bare = rng.randbytes(size)
        for case, (held, token_of) in enumerate(
            [
                (current, current),
                (alike, current),
                (older, current),
                (None, current),
                (bare, bare),
                (_A_LIST, current),
                (_A_LIST, bare),
            ]
        ):
            token = version_token(token_of)
            new = stamps.frame(b"next", _version(rng), 30.0)
            px = rng.choice((None, 60_000))
            outcomes = []
            for which, texts, make_args, make_staged_args in (
                ("new", (STAGED_CAS_SCRIPT, CAS_SCRIPT), cas_args, staged_cas_args),
                ("old", _OLD_CAS, previous_cas_args, previous_staged_cas_args),
            ):
                for staged_text, one_text in ((texts[0], None), (None, texts[1])):
                    key = f"{redis_namespace}{round_}:{case}:{which}:{staged_text is None}"
                    _hold(client, key, held, 90_000)
                    run: Callable[[], object]
                    if staged_text is not None:
                        argv = make_staged_args(token)
                        sha = _sha(staged_text)
                        stage = staging_key(key)
                        run = partial(
                            staged_write, client, staged_text, sha, key, stage, new, px, argv
                        )
                    else:
                        assert one_text is not None
                        run = partial(client.eval, one_text, 1, key, *make_args(token, new, px))
                    reply = _outcome(run)
                    outcomes.append((staged_text is None, reply, _state(client, key)))
            assert outcomes[:2] == outcomes[2:], (held, token_of)
            assert outcomes[0][1:] == outcomes[1][1:]


_OLD_CAS = (STAGED_CAS_0, CAS_0)
