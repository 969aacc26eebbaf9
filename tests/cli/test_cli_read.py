"""get, ls, inspect, delete and stats through the real console script, on real backends."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from session_store import SessionStore, open_backend
from session_store.codec import AesGcmStage, Codec
from session_store.samples import legacy_sessions
from session_store.schema import EnhancedSessionData
from session_store.schema.builtin import DATAROOM
from session_store.stamps import session_bytes
from session_store_redis.testing import RedisServer

Run = Callable[..., subprocess.CompletedProcess[str]]
ErrorLine = Callable[[subprocess.CompletedProcess[str]], str]
SAMPLES = legacy_sessions()


@pytest.fixture
def disk(tmp_path: Path) -> str:
    """A diskcache store holding the sample sessions (typed), a legacy one and a corrupt one."""
    url = f"diskcache://{tmp_path / 'disk'}"
    with SessionStore(url, EnhancedSessionData, ttl=3600) as store:
        for user_id, data in SAMPLES.items():
            store.save(user_id, store.codec.decode(user_id, orjson.dumps(data)).obj)
        store.backend.set("legacy", orjson.dumps(SAMPLES["U071780854"]))  # the old app's bytes
        store.backend.set("corrupt", b"\xa7SS\x01\x00{not json")
    return url


def _copy(source: str, target: str) -> None:
    with open_backend(source) as src, open_backend(target) as dst:
        for key in src.scan():
            dst.set(key, src.get(key) or b"")


def test_get_prints_the_decoded_session(cli: Run, disk: str) -> None:
    result = cli("get", disk, "U071780854")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["user_id"] == "U071780854"
    assert data["processed_documents"] == SAMPLES["U071780854"]["processed_documents"]
    text = cli("inspect", disk, "U071780854").stdout
    assert (
        "schema:         dataroom" in text
        and f"version:        {DATAROOM.version} (current)" in text
    )

    scripted = cli("get", "--json", disk, "legacy")
    assert scripted.returncode == 0, scripted.stderr
    envelope = json.loads(scripted.stdout)
    assert len(scripted.stdout.strip().splitlines()) == 1
    assert (envelope["schema"], envelope["stored_version"], envelope["version"]) == (
        "dataroom",
        0,
        DATAROOM.version,
    )
    assert envelope["data"]["processed_documents"] == SAMPLES["U071780854"]["processed_documents"]


def test_url_from_the_environment(cli: Run, disk: str) -> None:
    result = cli("get", "U080651318", env={"SESSION_STORE_URL": disk})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["user_id"] == "U080651318"
    listed = cli("ls", env={"SESSION_STORE_URL": disk})
    assert listed.stdout.split() == sorted([*SAMPLES, "legacy", "corrupt"])


def test_missing_key_corrupt_payload_and_bad_urls_fail_in_one_line(
    cli: Run, disk: str, error_line: ErrorLine
) -> None:
    missing = cli("get", disk, "nobody")
    assert missing.returncode == 3
    assert "no session under key 'nobody'" in error_line(missing)

    corrupt = cli("get", disk, "corrupt")
    assert corrupt.returncode == 1
    assert "CorruptPayloadError" in error_line(corrupt) or "JSON" in error_line(corrupt)

    inspected = cli("inspect", disk, "corrupt")
    assert inspected.returncode == 1
    assert "format:" in inspected.stdout  # what could be read is still shown
    error_line(inspected)

    unknown = cli("ls", "nosuch://x?password=hunter2")
    assert unknown.returncode == 1
    assert "hunter2" not in error_line(unknown) + unknown.stdout

    nothing = cli("ls")
    assert nothing.returncode == 2
    assert "SESSION_STORE_URL" in error_line(nothing)

    deleted = cli("delete", disk, "nobody")
    assert deleted.returncode == 3
    error_line(deleted)


def test_ls_lists_sorted_with_prefix_and_long_form(cli: Run, disk: str) -> None:
    result = cli("ls", disk, "--prefix", "U0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == sorted(SAMPLES)
    long_form = json.loads(cli("ls", disk, "-l", "--json", "--limit", "2").stdout)
    assert [row["key"] for row in long_form] == sorted([*SAMPLES, "corrupt", "legacy"])[:2]
    assert all(row["size"] > 0 and 3500 < row["ttl"] <= 3600 for row in long_form)
    table = cli("ls", disk, "--long")
    assert "ttl left" in table.stdout and "U063826716" in table.stdout


def test_inspect_shows_schema_version_size_ttl_stages(cli: Run, disk: str) -> None:
    result = cli("inspect", "--json", disk, "legacy")
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout)
    assert facts["format"].startswith("legacy")
    assert (facts["schema"], facts["stored_version"], facts["current_version"]) == (
        "dataroom",
        0,
        DATAROOM.version,
    )
    assert facts["up_to_date"] is False and facts["ttl"] is None and facts["expires"] is False
    typed = json.loads(cli("inspect", "--json", disk, "U071780854").stdout)
    assert typed["stages"] == ["zstd"] and typed["up_to_date"] is True
    assert 3500 < typed["ttl"] <= 3600


def test_inspect_of_an_encrypted_payload_without_and_with_the_key(cli: Run, tmp_path: Path) -> None:
    key = AesGcmStage.generate_key()
    url = f"diskcache://{tmp_path / 'enc'}"
    codec = Codec(encryption=AesGcmStage([key]))
    with SessionStore(url, dict, codec=codec) as store:
        store.save("secret-session", {"card": "4111"})
    blind = cli("inspect", "--json", url, "secret-session")
    assert blind.returncode == 1, blind.stderr  # not decoded; what could be read is shown
    facts = json.loads(blind.stdout)
    assert facts["stages"] == ["aes-gcm"] and facts["schema"] is None
    assert facts["key_id"] == AesGcmStage([key]).key_ids[0]
    assert "SESSION_STORE_KEYS" in facts["note"]
    seen = cli("get", url, "secret-session", env={"SESSION_STORE_KEYS": key})
    assert json.loads(seen.stdout) == {"card": "4111"}
    assert key not in seen.stdout + seen.stderr


def test_inspect_says_which_tiers_hold_a_key(
    cli: Run, tmp_path: Path, redis_url: str, disk: str
) -> None:
    chain = f"memory:// | {redis_url} | {disk}"
    backend = open_backend(redis_url)
    backend.set("only-in-redis", orjson.dumps({"a": 1}), 100)
    backend.close()
    facts = json.loads(cli("inspect", "--json", chain, "U080651318").stdout)
    assert [t["holds"] for t in facts["tiers"]] == [False, False, True]
    in_redis = json.loads(cli("inspect", "--json", chain, "only-in-redis").stdout)
    assert [t["holds"] for t in in_redis["tiers"]] == [False, True, False]
    assert 0 < in_redis["ttl"] <= 100
    assert cli("get", chain, "U080651318").returncode == 0
    with open_backend(redis_url) as redis_tier:
        assert redis_tier.get("U080651318") is None  # reading promoted nothing


def test_delete_removes_from_every_tier(cli: Run, disk: str, redis_url: str) -> None:
    chain = f"{redis_url} | {disk}"
    _copy(disk, redis_url)
    result = cli("delete", chain, "U095822412")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deleted U095822412"
    for url in (redis_url, disk):
        with open_backend(url) as backend:
            stored = backend.get("U095822412")  # absent, or the chain's tombstone
            assert stored is None or session_bytes(stored) is None


def test_stats_reports_per_tier_counters_and_latency(cli: Run, disk: str, redis_url: str) -> None:
    chain = f"memory:// | {redis_url} | {disk}"
    result = cli("stats", "--json", chain, "--sample", "3")
    assert result.returncode == 0, result.stderr
    snap = json.loads(result.stdout)
    memory, redis_tier, disk_tier = snap["tiers"]
    assert (memory["keys"], redis_tier["keys"], disk_tier["keys"]) == (0, 0, len(SAMPLES) + 2)
    assert disk_tier["counters"]["hits"] == 6  # 3 gets + a get_many of 3
    assert memory["counters"]["misses"] == 6
    latency = disk_tier["latency"]["get"]
    assert latency["count"] == 3 and 0 < latency["p50"] <= latency["p99"]
    assert snap["chain"] == {**snap["chain"], "fallbacks": 0, "promotions": 0}


def test_a_server_that_is_down(
    cli: Run,
    disk: str,
    redis_server_factory: Callable[..., RedisServer],
    error_line: ErrorLine,
) -> None:
    server = redis_server_factory(password="s3cr3t-pw")
    url = server.url_for(prefix="down:", retries="0")
    server.stop()
    alone = cli("get", url, "U080651318")
    assert alone.returncode == 1
    line = error_line(alone)
    assert "unavailable" in line and "s3cr3t-pw" not in line
    chained = cli("get", f"{url} | {disk}", "U080651318")  # the disk tier still answers
    assert chained.returncode == 4, chained.stderr  # ... but the exit status says one was down
    assert json.loads(chained.stdout)["user_id"] == "U080651318"
    accepted = cli("--allow-degraded", "get", f"{url} | {disk}", "U080651318")
    assert accepted.returncode == 0, accepted.stderr
    stats = cli("--allow-degraded", "stats", f"memory:// | {url} | {disk}")
    assert stats.returncode == 0, stats.stderr
    assert "DOWN" in stats.stdout
    assert "s3cr3t-pw" not in stats.stdout + stats.stderr + chained.stderr


def test_passwords_are_masked_everywhere(
    cli: Run, disk: str, redis_server_factory: Callable[..., RedisServer], error_line: ErrorLine
) -> None:
    server = redis_server_factory(password="pa55-w0rd")
    url = server.url_for(prefix="masked:")
    outputs = [
        cli("copy", disk, url),
        cli("inspect", url, "U071780854"),
        cli("stats", url),
    ]
    for result in outputs:
        assert result.returncode == 0, result.stderr
        assert "pa55-w0rd" not in result.stdout + result.stderr
        assert "redis://:***@" in result.stdout
    assert "get p50" in outputs[2].stdout  # the stats table
    wrong = cli("ls", url.replace("pa55-w0rd", "wr0ng-pa55"))
    assert wrong.returncode == 1
    assert "wr0ng-pa55" not in error_line(wrong)


def test_get_reports_timestamps_a_legacy_session_never_had_as_absent(
    cli: Run, tmp_path: Path
) -> None:
    """A legacy session stored without any timestamp shows ``created_at`` / ``last_accessed``
    as null, not as the moment it was read (the schema migration fills in "now" for the typed
    object; that is not what is stored). A legacy session that carries one keeps it."""
    url = f"diskcache://{tmp_path / 'legacy'}"
    with open_backend(url) as backend:
        backend.set("bare", orjson.dumps({"processed_documents": [{"name": "a.pdf"}]}))
        backend.set("dated", orjson.dumps({"analysis_timestamp": "2024-01-02T03:04:05"}))
    for args in (("get", url, "bare"), ("get", "--json", url, "bare")):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        shown = json.loads(result.stdout)
        data = shown["data"] if "--json" in args else shown
        assert data["created_at"] is None and data["last_accessed"] is None, data
        assert data["processed_documents"] == [{"name": "a.pdf"}]
    dated = json.loads(cli("get", "--json", url, "dated").stdout)["data"]
    assert dated["created_at"] == dated["last_accessed"] == "2024-01-02T03:04:05+00:00"
