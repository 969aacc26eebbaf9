"""The chain's Lua scripts as stored formats meet them: the ordered writes read only a value's
head, the compare-and-set compares a bare value whole, and every decision is the one the
previous release's script text makes on the same stored bytes, so processes running either text
(each loads its own by SHA) share keys.

The previous release's texts are kept here verbatim (:data:`OLD_SET_AFTER`, ...): they are what
an older process still runs against the same server during a rolling upgrade.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from session_store import stamps
from session_store_redis import RedisBackend
from session_store_redis import staged as staged_module
from session_store_redis.ordered_scripts import SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT
from session_store_redis.patterns import prefix_pattern
from session_store_redis.scripts import (
    CAS_SCRIPT,
    WHOLE_VALUE_MAX,
    FrameToken,
    ValueToken,
    cas_args,
    is_token,
    version_token,
)
from session_store_redis.staged import (
    MOVE_AFTER_SCRIPT,
    MOVE_AFTER_SHA,
    MOVE_IF_NEWER_SCRIPT,
    MOVE_IF_NEWER_SHA,
    STAGED_CAS_SCRIPT,
    STAGED_CAS_SHA,
    STAGING_SUFFIX,
    staged_cas_args,
    staged_write,
    staging_key,
)
from session_store_redis.testing import RedisServer

#: The previous release's SET_IF_NEWER_SCRIPT (reads the whole value with GET).
OLD_SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
local new = ARGV[1]
local head, first, last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if current and string.len(current) >= last
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

#: The previous release's SET_AFTER_SCRIPT.
OLD_SET_AFTER = """
local current = redis.call('GET', KEYS[1])
local new = ARGV[1]
local head, first, last = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local clock_end = tonumber(ARGV[6])
if current and string.len(current) >= last
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

#: The previous release's CAS_SCRIPT (SHA-1 digest or short frame token).
OLD_CAS = """
local length = tonumber(ARGV[5])
if length == 0 then
  local current = redis.call('GET', KEYS[1])
  if not current or redis.sha1hex(current) ~= ARGV[1] then
    return 0
  end
elseif redis.call('STRLEN', KEYS[1]) ~= length
    or redis.call('GETRANGE', KEYS[1], 0, string.len(ARGV[1]) - 1) ~= ARGV[1]
    or redis.call('GETRANGE', KEYS[1], -string.len(ARGV[4]), -1) ~= ARGV[4] then
  return 0
end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
"""

HEAD, FIRST, LAST, CLOCK_END = len(stamps.MAGIC), stamps.VERSION_START + 1, stamps.VERSION_END, 12


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis_server.client() as opened:
        yield opened


def _version(rng: random.Random) -> bytes:
    # few distinct values per byte, so that equal prefixes and equal versions are common
    clock = bytes(rng.choice((0, 1, 255)) for _ in range(8))
    return clock + bytes(rng.choice((0, 7)) for _ in range(4))


def _stored_cases(rng: random.Random) -> list[bytes | None]:
    """What a key may hold when an ordered write arrives."""
    framed = stamps.frame(b"x" * rng.choice((0, 5, 3000)), _version(rng), rng.choice((None, 9.0)))
    return [
        None,  # absent
        framed,
        stamps.tombstone(_version(rng)),
        framed[: rng.randrange(0, LAST)],  # shorter than a version
        b"a bare payload, written before chains framed " * rng.choice((1, 50)),
        b"\xa7SF\x02" + framed[4:],  # another magic: not comparable
    ]


#: Commands the test itself sends (not called by a script).
_OUTER = {"EVALSHA", "EVAL", "PING", "ECHO"}


def _run(client: redis.Redis, script: str, key: str, *args: bytes | int) -> object:
    return client.eval(script, 1, key, *args)


def test_ordered_writes_decide_as_the_previous_release_did(
    client: redis.Redis, redis_namespace: str
) -> None:
    """Over every kind of stored value, the new and the old texts of both ordered scripts
    store the same bytes and answer the same, and each handles what the other wrote."""
    rng = random.Random(12)
    for round_ in range(150):
        new = stamps.frame(b"new" * rng.choice((1, 1000)), _version(rng), 30.0)
        for case, held in enumerate(_stored_cases(rng)):
            outcomes: list[tuple[object, ...]] = []
            for text_after, text_newer in (
                (SET_AFTER_SCRIPT, SET_IF_NEWER_SCRIPT),
                (OLD_SET_AFTER, OLD_SET_IF_NEWER),
            ):
                key = f"{redis_namespace}o:{round_}:{case}:{len(outcomes)}"
                if held is not None:
                    client.set(key, held)
                wrote = _run(client, text_newer, key, new, 0, HEAD, FIRST, LAST)
                after_newer = client.get(key)
                if held is not None:
                    client.set(key, held)
                else:
                    client.delete(key)
                version = _run(client, text_after, key, new, 60_000, HEAD, FIRST, LAST, CLOCK_END)
                outcomes.append((wrote, after_newer, version, client.get(key)))
            assert outcomes[0] == outcomes[1], (held, new)


def test_ordered_writes_over_values_the_other_text_wrote(
    client: redis.Redis, redis_namespace: str
) -> None:
    """Old and new processes writing the same key in turns: versions only move forward."""
    key = redis_namespace + "turns"
    rng = random.Random(3)
    seen: list[bytes] = []
    for turn in range(60):
        text = (SET_AFTER_SCRIPT, OLD_SET_AFTER)[turn % 2]
        data = stamps.frame(b"v%d" % turn, _version(rng), None)
        version = _run(client, text, key, data, 0, HEAD, FIRST, LAST, CLOCK_END)
        assert isinstance(version, bytes)
        seen.append(version)
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_the_ordered_writes_read_only_the_head_of_the_value(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The scripts ask Redis for the bytes up to the version's end (``GETRANGE``), never the
    whole value (``GET``): a session's size no longer passes through Lua twice. Seen with
    ``MONITOR``, which lists the commands a script calls. (Failed before: ``GET``.)"""
    backend = RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace))
    data = stamps.frame(b"s" * 5000, stamps.clock.now(), None)
    kw = {"head": HEAD, "start": FIRST - 1, "end": LAST}
    backend.set_after("k", data, 30, clock_end=CLOCK_END, **kw)  # script loaded, key present
    backend.set_if_newer("k", data, 30, **kw)  # the other script loaded (the same version: kept)
    commands: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with redis_server.client() as watcher, watcher.monitor() as monitor:
            ready.set()
            for event in monitor.listen():
                command = str(event["command"])
                commands.append(command)
                if "end-of-test" in command:
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(5)
    with redis_server.client() as pinger:
        while not commands:  # the monitor is attached once it shows a command
            pinger.ping()
        commands.clear()
        later = stamps.frame(b"t" * 5000, stamps.clock.now(), None)
        backend.set_after("k", later, 30, clock_end=CLOCK_END, **kw)
        backend.set_if_newer("k", data, 30, **kw)
        pinger.echo("end-of-test")
    thread.join(5)
    backend.close()
    inner = [c.split()[0].upper() for c in commands if c.split()[0].upper() not in _OUTER]
    assert inner.count("GETRANGE") == 2, commands
    assert "GET" not in inner, commands


# -- compare-and-set: the value token ----------------------------------------------------------
def test_a_bare_value_is_compared_whole_and_equals_its_digest() -> None:
    value = b'{"secret": 1}' * 300
    token = version_token(value)
    assert isinstance(token, ValueToken) and is_token(token)
    assert token == hashlib.sha1(value).hexdigest()  # the earlier releases' form
    assert token == ValueToken(bytes(value)) and token != ValueToken(value + b" ")
    assert hash(token) == hash(ValueToken(bytes(value)))
    assert "secret" not in repr(token) and hashlib.sha1(value).hexdigest() in repr(token)
    assert not is_token(ValueToken(bytearray(value)))  # type: ignore[arg-type]
    framed = stamps.frame(value, stamps.clock.now(), None)
    assert isinstance(version_token(framed), FrameToken)


def test_a_large_value_token_travels_as_its_digest_and_a_small_one_whole() -> None:
    """The expected bytes are sent whole only while they are short: a large session's update
    must not send the session twice."""
    small, large = b"s" * WHOLE_VALUE_MAX, b"l" * (WHOLE_VALUE_MAX + 1)
    assert cas_args(ValueToken(small), b"new", None)[0] == small
    sent = cas_args(ValueToken(large), b"new", None)
    assert sent[0] == hashlib.sha1(large).hexdigest() and sent[-1] == 0


@pytest.mark.parametrize("size", [40, WHOLE_VALUE_MAX + 2000])
def test_value_tokens_match_only_the_same_bytes(
    redis_server: RedisServer, redis_namespace: str, size: int
) -> None:
    """Values alike in length, head and tail: only the very bytes read match (sent whole, or
    as a digest)."""
    with RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace)) as backend:
        base = b"head-" + b"." * size + b"-tail"
        backend.set("k", base)
        read = backend.get_versioned("k")
        assert read is not None and type(read.token) is ValueToken
        middle = len(base) // 2
        backend.set("k", base[:middle] + b"!" + base[middle + 1 :])  # same length, head, tail
        assert backend.set_if("k", b"late", read.token) is False
        backend.set("k", base)  # the same bytes again: the state read is the state replaced
        assert backend.set_if("k", b"next", read.token) is True
        assert backend.set_if("k", b"again", read.token) is False
        backend.delete("k")
        assert backend.set_if("k", b"x", ValueToken(b"")) is False  # absent is not b""
        backend.set("k", b"")
        assert backend.set_if("k", b"x", ValueToken(b"")) is True
        assert backend.get("k") == b"x"


def test_old_and_new_compare_and_set_share_keys(client: redis.Redis, redis_namespace: str) -> None:
    """An old process (digest tokens, the old script) and a new one (value tokens, the new
    script) increment one key in turns: each sees the other's writes as conflicts, never
    overwrites them blindly."""
    key = redis_namespace + "shared"
    client.set(key, b"0")
    old_sha, new_sha = client.script_load(OLD_CAS), client.script_load(CAS_SCRIPT)
    for turn in range(40):
        current = client.get(key)
        assert isinstance(current, bytes)
        nxt = str(int(current) + 1).encode()
        if turn % 2:
            token: object = hashlib.sha1(current).hexdigest()
            sha = old_sha
            stale: object = hashlib.sha1(b"-1").hexdigest()
        else:
            token, sha, stale = ValueToken(current), new_sha, ValueToken(b"-1")
        assert client.evalsha(sha, 1, key, *cas_args(stale, nxt, None)) == 0
        assert client.evalsha(sha, 1, key, *cas_args(token, nxt, None)) == 1
    assert client.get(key) == b"40"
    # the digest a previous release's caller holds still works with the new script
    digest = hashlib.sha1(b"40").hexdigest()
    assert client.evalsha(new_sha, 1, key, *cas_args(digest, b"41", None)) == 1


# -- staged ordered writes: the value never passes through Lua ---------------------------------
def _staged(client: redis.Redis, after: bool, key: str, value: bytes, px: int | None) -> object:
    script, sha = (
        (MOVE_AFTER_SCRIPT, MOVE_AFTER_SHA) if after else (MOVE_IF_NEWER_SCRIPT, MOVE_IF_NEWER_SHA)
    )
    return staged_write(client, script, sha, key, staging_key(key), value, px)


def _staging_left(client: redis.Redis, key: str) -> list[bytes]:
    """The staging keys (one per connection) that :func:`_staged` writes of ``key`` left."""
    base = staging_key(key).decode("utf-8", "surrogateescape")
    pattern = prefix_pattern(base).encode("utf-8", "surrogateescape")
    return [key for key in client.keys(pattern) if isinstance(key, bytes)]


def _ttl_state(client: redis.Redis, key: str) -> str:
    left = client.pttl(key)
    return "absent" if left == -2 else "none" if left == -1 else "some"


def test_staged_writes_decide_as_the_previous_release_did(
    client: redis.Redis, redis_namespace: str
) -> None:
    """Over every kind of stored value (with and without a TTL), the staged writes store the
    same bytes, with the same TTL state, and answer what the previous release's one-script texts
    answer; the staging key never outlives its transaction. Clocks of 0/1/255 bytes make equal
    versions, carries and the clock's wrap-around common."""
    rng = random.Random(17)
    for round_ in range(150):
        new = stamps.frame(b"new" * rng.choice((1, 1000)), _version(rng), 30.0)
        px = rng.choice((0, 60_000))
        for case, held in enumerate(_stored_cases(rng)):
            held_ttl = rng.choice((None, 90_000))
            outcomes: list[tuple[object, ...]] = []
            for staged in (True, False):
                key = f"{redis_namespace}s:{round_}:{case}:{staged}"

                def hold(
                    key: str = key, held: bytes | None = held, held_ttl: int | None = held_ttl
                ) -> None:
                    client.delete(key)
                    if held is not None:
                        client.set(key, held, px=held_ttl)

                hold()
                if staged:
                    wrote = _staged(client, False, key, new, px or None)
                else:
                    wrote = _run(client, OLD_SET_IF_NEWER, key, new, px, HEAD, FIRST, LAST)
                after_newer = (client.get(key), _ttl_state(client, key))
                hold()
                if staged:
                    version = _staged(client, True, key, new, px or None)
                else:
                    version = _run(
                        client, OLD_SET_AFTER, key, new, px, HEAD, FIRST, LAST, CLOCK_END
                    )
                outcomes.append(
                    (wrote, after_newer, version, client.get(key), _ttl_state(client, key))
                )
                assert not _staging_left(client, key)
            assert outcomes[0] == outcomes[1], (held, new, px, held_ttl)


def test_staged_and_one_script_writes_share_a_key(
    client: redis.Redis, redis_namespace: str
) -> None:
    """A process of the previous release (the old text), one running this release's one-script
    text and one staging, writing the same key in turns: versions only move forward."""
    key = redis_namespace + "staged-turns"
    rng = random.Random(5)
    seen: list[bytes] = []
    for turn in range(90):
        data = stamps.frame(b"v%d" % turn, _version(rng), None)
        if turn % 3 == 0:
            version = _staged(client, True, key, data, None)
        else:
            text = (SET_AFTER_SCRIPT, OLD_SET_AFTER)[turn % 3 - 1]
            version = _run(client, text, key, data, 0, HEAD, FIRST, LAST, CLOCK_END)
        assert isinstance(version, bytes)
        seen.append(version)
        stored = client.get(key)
        assert stored is not None and stored[VERSION] == version
        assert stored[stamps.HEADER_SIZE :] == b"v%d" % turn
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


VERSION = slice(stamps.VERSION_START, stamps.VERSION_END)


def test_a_staged_write_over_a_key_of_another_type_fails_and_leaves_no_staging_key(
    client: redis.Redis, redis_namespace: str
) -> None:
    key = redis_namespace + "a-list"
    client.rpush(key, b"x")
    data = stamps.frame(b"v", stamps.clock.now(), None)
    for after in (True, False):
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            _staged(client, after, key, data, 5000)
        assert not _staging_left(client, key)
        assert client.lrange(key, 0, -1) == [b"x"]


def test_a_flushed_script_cache_is_reloaded_within_the_write(
    client: redis.Redis, redis_namespace: str
) -> None:
    key = redis_namespace + "flushed"
    data = stamps.frame(b"v", stamps.clock.now(), None)
    client.script_flush()
    assert _staged(client, True, key, data, None) == data[VERSION]
    client.script_flush()
    assert _staged(client, False, key, data, None) == 0  # the same version: kept
    assert client.get(key) == data and not _staging_left(client, key)


def test_concurrent_staged_writes_through_one_staging_key_never_mix_keys(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """Eight threads, each with its own backend (its own connections), write four keys at
    once through the one staging key of their namespace: every value read back is one written
    to that very key, and each writer's own versions of a key only move forward."""
    keys = [f"k{i}" for i in range(4)]
    failures: list[str] = []
    start = threading.Barrier(8)

    def writer(index: int) -> None:
        backend = RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace))
        last: dict[str, bytes] = {}
        try:
            start.wait()
            for n in range(150):
                key = keys[(index + n) % len(keys)]
                data = stamps.frame(f"{key}/{index}/{n}".encode(), stamps.clock.now(), 30)
                version = backend.set_after(
                    key, data, 30, head=HEAD, start=FIRST - 1, end=LAST, clock_end=CLOCK_END
                )
                if key in last and version <= last[key]:
                    failures.append(f"{key}: {version!r} after {last[key]!r}")
                last[key] = version
                read = backend.get(key)
                if read is None or not read[stamps.HEADER_SIZE :].startswith(key.encode() + b"/"):
                    failures.append(f"{key} holds {read!r}")
        finally:
            backend.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:5]
    with redis_server.client() as check:
        left = list(check.scan_iter(match=b"*" + STAGING_SUFFIX + b"*"))
        assert not left, "a staging key was left"
        assert len(list(check.scan_iter(match=redis_namespace + "*"))) == len(keys)


def test_the_staged_ordered_writes_send_the_value_outside_the_script(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The backend's ordered writes of the chain's frames are staged: seen with ``MONITOR``,
    the script's arguments are the key names and 16 bytes, the value travels with a plain
    ``SET`` of the staging key, and the script ``RENAME``-s it (no ``SET`` inside Lua).
    (Failed before staging: the 5,000-byte value was an argument of ``EVALSHA``.)"""
    backend = RedisBackend.from_url(redis_server.url_for(prefix=redis_namespace))
    data = stamps.frame(b"s" * 5000, stamps.clock.now(), None)
    kw = {"head": HEAD, "start": FIRST - 1, "end": LAST}
    backend.set_after("k", data, 30, clock_end=CLOCK_END, **kw)  # script loaded, key present
    backend.set_if_newer("k", data, 30, **kw)  # the other script loaded (the same version: kept)
    commands: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with redis_server.client() as watcher, watcher.monitor() as monitor:
            ready.set()
            for event in monitor.listen():
                command = str(event["command"])
                commands.append(command)
                if "end-of-test" in command:
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(5)
    with redis_server.client() as pinger:
        while not commands:
            pinger.ping()
        commands.clear()
        later = stamps.frame(b"t" * 5000, stamps.clock.now(), None)
        backend.set_after("k", later, 30, clock_end=CLOCK_END, **kw)
        backend.set_if_newer("k", later, 30, **kw)  # the same version: kept, staged copy dropped
        pinger.echo("end-of-test")
    thread.join(5)
    backend.close()
    scripts = [c for c in commands if c.split()[0].upper() in ("EVALSHA", "EVAL")]
    assert len(scripts) == 2 and all(len(c) < 300 for c in scripts), commands
    names = [c.split()[0].upper() for c in commands]
    assert names.count("SET") == 2 and "RENAME" in names and "DEL" in names, names
    assert names.count("MULTI") == 2, names


def test_the_staged_compare_and_set_decides_as_the_one_script_text_does(
    client: redis.Redis, redis_namespace: str
) -> None:
    """Every kind of stored value against every kind of token (the frame's, a whole value's,
    a digest, a stale one): the staged compare-and-set answers and stores what the one-script
    text (:data:`CAS_SCRIPT`, itself checked against the previous release's above) does, the TTL
    state included, and leaves no staging key."""
    rng = random.Random(29)
    for round_ in range(60):
        new = rng.choice((b"", b"n", b"new" * 1000))
        px = rng.choice((None, 60_000))
        for case, held in enumerate(_stored_cases(rng)):
            tokens: list[object] = [ValueToken(b"-1"), hashlib.sha1(b"-1").hexdigest()]
            if held is not None:
                tokens += [version_token(held), hashlib.sha1(held).hexdigest()]
            for number, token in enumerate(tokens):
                outcomes = []
                for staged in (True, False):
                    key = f"{redis_namespace}c:{round_}:{case}:{number}:{staged}"
                    if held is not None:
                        client.set(key, held, px=rng.choice((None, 90_000)) if staged else None)
                        client.persist(key)
                    if staged:
                        args = staged_cas_args(token)
                        run = STAGED_CAS_SCRIPT, STAGED_CAS_SHA, key, staging_key(key), new, px
                        reply = staged_write(client, *run, args)
                    else:
                        reply = client.eval(CAS_SCRIPT, 1, key, *cas_args(token, new, px))
                    outcomes.append((reply, client.get(key), _ttl_state(client, key)))
                    assert not _staging_left(client, key)
                assert outcomes[0] == outcomes[1], (held, token, new, px)


@pytest.mark.parametrize("px", [None, 3_600_000, 1])
@pytest.mark.parametrize("kind", ["after", "cas", "eval"])
def test_the_staged_transaction_is_packed_as_redis_py_packs_it(px: int | None, kind: str) -> None:
    """The staged writes pack their ``MULTI``/``EXEC`` by hand (cheaper) for a UTF-8 client:
    the bytes are the ones redis-py's own ``pack_commands`` makes, non-ASCII keys included, with
    and without a TTL, for the ordered writes' ``ARGV``, the compare-and-set's (bytes, text,
    numbers), and ``EVAL`` with the script's text."""
    from session_store_redis.staged_pack import pack_staged

    value = bytes(range(256)) * 11
    staging = staging_key("ns\x1f")
    stored = "ns\x1fkey é ✓"
    argv: tuple[bytes | str | int, ...] = (value[:16],)
    verb, script = "EVALSHA", MOVE_AFTER_SHA
    if kind == "cas":
        argv = (b"\x00expected", "d1a2", -1)
    elif kind == "eval":
        verb, script = "EVAL", MOVE_AFTER_SCRIPT + "-- é"
    staged = ("SET", staging, value) if not px else ("SET", staging, value, "PX", px)
    commands = (staged, (verb, script, 2, stored, staging, *argv))
    connection: Any = redis.Connection()  # type: ignore[no-untyped-call]
    expected = b"".join(connection.pack_commands([("MULTI",), *commands, ("EXEC",)]))
    assert pack_staged(staging, value, px, (verb, script, stored, argv)) == expected


def test_a_staged_write_whose_reply_is_lost_drops_its_connection(tmp_path: Path) -> None:
    """A server that stops answering mid-write (SIGSTOP, past the socket timeout): the write
    fails as unavailable, is not retried, and its connection is not put back half-read, so
    the next write on the resumed server gets its own reply, not the lost one's."""
    from session_store.errors import BackendError

    with RedisServer(directory=tmp_path) as server:
        assert server.pid is not None
        backend = RedisBackend.from_url(server.url_for(prefix="lost:", socket_timeout="0.3"))
        kw = {"head": HEAD, "start": FIRST - 1, "end": LAST, "clock_end": CLOCK_END}
        first = stamps.frame(b"first", stamps.clock.now(), None)
        assert backend.set_after("k", first, 30, **kw) == first[VERSION]
        os.kill(server.pid, signal.SIGSTOP)
        try:
            lost = stamps.frame(b"lost", stamps.clock.now(), None)
            with pytest.raises(BackendError):
                backend.set_after("k", lost, 30, **kw)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        # the lost write ran once the server resumed (its reply was never read)
        assert backend.get("k") == lost
        later = stamps.frame(b"later", stamps.clock.now(), None)
        assert backend.set_after("other", later, 30, **kw) == later[VERSION]
        assert backend.set_if_newer("k", first, 30, head=HEAD, start=FIRST - 1, end=LAST) is False
        assert backend.get("k") == lost and backend.get("other") == later
        backend.close()


def test_the_staging_key_is_no_invalidation_a_near_cache_hears_of(
    redis_server: RedisServer, redis_namespace: str
) -> None:
    """The staging key lives under the namespace's head, so Redis reports its changes to the
    chains' streams beside each staged write's key; the stream drops it, so a chain counts
    (and fences) one invalidation per save, not two. Two sentinel writes order the check:
    every message sent before the second one has arrived once it has. (Counted 2 per save
    before the stream learnt the staging key's name.)"""
    from session_store import TieredBackend, open_backend

    url = redis_server.url_for(prefix=redis_namespace)
    writer, reader = (open_backend(f"memory:// | {url}") for _ in range(2))
    try:
        assert isinstance(reader, TieredBackend) and isinstance(writer, TieredBackend)
        deadline = time.monotonic() + 10
        while not (reader.coherent and writer.coherent):
            assert time.monotonic() < deadline, "the streams did not connect"
            time.sleep(0.01)
        seen = reader.counters.get("invalidations")
        for n in range(5):
            writer.set(f"k{n}", b"v", 30)
        for sentinel, expected in (("sentinel-1", 6), ("sentinel-2", 7)):
            writer.set(sentinel, b"s", 30)
            while reader.counters.get("invalidations") - seen < expected:
                assert time.monotonic() < deadline + 20, "the invalidations did not arrive"
                time.sleep(0.005)
        assert reader.counters.get("invalidations") - seen == 7
    finally:
        writer.close()
        reader.close()


@pytest.mark.parametrize("denied", ["multi", "rename"])
def test_a_server_whose_acl_refuses_staging_gets_the_one_script_writes(
    tmp_path: Path, denied: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A user whose ACL lacks a staged write's command (``MULTI``: refused when queued;
    ``RENAME``: refused inside the script) still writes: the backend falls back to the
    one-script texts for good, says so once, and every write lands as it would have.
    (Before the fallback, each write failed with ``NOPERM``.)"""
    with RedisServer(directory=tmp_path) as server:
        with server.client() as admin:
            admin.execute_command(
                "ACL", "SETUSER", "limited", "on", ">secret", "~*", "&*", "+@all", f"-{denied}"
            )
        url = f"redis://limited:secret@127.0.0.1:{server.port}/0?prefix=acl:"
        backend = RedisBackend.from_url(url)
        kw = {"head": HEAD, "start": FIRST - 1, "end": LAST}
        try:
            first = stamps.frame(b"first", stamps.clock.now(), None)
            assert backend.set_after("k", first, 30, clock_end=CLOCK_END, **kw) == first[VERSION]
            assert backend.get("k") == first
            older = stamps.frame(b"older", b"\x00" * 12, None)
            assert backend.set_if_newer("k", older, 30, **kw) is False
            later = stamps.frame(b"later", stamps.clock.now(), None)
            assert backend.set_if_newer("k", later, 30, **kw) is True
            read = backend.get_versioned("k")
            assert read is not None and read.value == later
            assert backend.set_if("k", b"bare", read.token, 30) is True
            assert backend.get("k") == b"bare"
        finally:
            backend.close()
        refusals = [r for r in caplog.records if "refused a staged write" in r.getMessage()]
        assert len(refusals) == 1


def test_a_write_that_is_not_staged_does_not_stop_staging(tmp_path: Path) -> None:
    """Writes the staged path does not take (another frame layout, a value shorter than a
    head, the switch off) go through the one-script texts, and the next chain write is staged
    again: only a refusal by the server turns staging off. (Failed once: any unstaged write
    turned it off for good, with a false ACL warning.)"""
    with RedisServer(directory=tmp_path) as server:
        backend = RedisBackend.from_url(server.url_for(prefix="mix:"))
        kw = {"start": FIRST - 1, "end": LAST, "clock_end": CLOCK_END}
        with server.client() as admin:

            def renames() -> int:
                stats = admin.info("commandstats").get("cmdstat_rename", {"calls": 0})
                return int(stats["calls"])

            try:
                data = stamps.frame(b"v", stamps.clock.now(), None)
                backend.set_after("k", data, 30, head=HEAD - 1, **kw)  # another layout
                backend.set_if_newer("short", b"tiny", 30, head=HEAD, start=FIRST - 1, end=LAST)
                staged_module.STAGED_WRITES = False
                backend.set_after(
                    "k", stamps.frame(b"w", stamps.clock.now(), None), 30, head=HEAD, **kw
                )
            finally:
                staged_module.STAGED_WRITES = True
            assert renames() == 0
            later = stamps.frame(b"x", stamps.clock.now(), None)
            assert backend.set_after("k", later, 30, head=HEAD, **kw) == later[VERSION]
            assert renames() == 1
        backend.close()
