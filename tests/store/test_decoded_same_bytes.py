"""A save that writes the very bytes the near cache already holds for the key (a session saved
unchanged: a web request that loads, reads and saves) keeps the cache's entry, so the loads
after it go on as warm hits (a copy of the master, no parse) instead of starting over from the
body; isolation holds as for any hit (issue 17)."""

from __future__ import annotations

from typing import Any

from session_store import MemoryBackend, SessionStore
from session_store.codec import Codec, ZstdStage


class CountingCodec(Codec):
    """Counts the bodies it parses (every ``load`` that is not a copy of a master)."""

    parses = 0

    def from_plain(self, *args: Any, **kwargs: Any) -> Any:
        CountingCodec.parses += 1
        return super().from_plain(*args, **kwargs)


def _session() -> dict[str, Any]:
    return {"user": "u1", "cart": [{"sku": f"s{i}", "n": i} for i in range(50)], "x": 1.5}


def _store(backend: Any) -> SessionStore[dict[str, Any]]:
    codec = CountingCodec(encryption=None, compression=ZstdStage.read_only(), legacy_schema="dict")
    return SessionStore(backend, dict, codec=codec)


def _saves_and_loads(store: SessionStore[dict[str, Any]], rounds: int) -> list[dict[str, Any]]:
    session = _session()
    loaded = []
    CountingCodec.parses = 0
    for _ in range(rounds):
        store.save("k", session)
        got = store.load("k")
        assert got == _session()
        loaded.append(got)
    return loaded


def test_saving_the_same_bytes_keeps_the_warm_entry() -> None:
    """Five save + load of an unchanged session: two parses (the entry's first two hits, then
    its master), not five."""
    loaded = _saves_and_loads(_store(MemoryBackend()), 5)
    assert CountingCodec.parses == 2
    assert len({id(s) for s in loaded}) == 5


def test_saving_the_same_bytes_over_redis_keeps_the_warm_entry(redis_url: str) -> None:
    with _store(redis_url) as store:
        _saves_and_loads(store, 5)
        assert CountingCodec.parses == 2


def test_what_a_caller_does_to_its_copy_reaches_no_other_load() -> None:
    store = _store(MemoryBackend())
    for got in _saves_and_loads(store, 4):
        got["cart"][0]["n"] = 99
        got["cart"].clear()
        got["user"] = "mallory"
    assert store.load("k") == _session()


def test_a_changed_session_is_parsed_from_its_new_bytes() -> None:
    store = _store(MemoryBackend())
    session = _session()
    _saves_and_loads(store, 3)
    session["cart"][0]["n"] = 7  # the caller's own object, changed after the saves
    store.save("k", session)
    assert store.load("k") == session
    session["cart"][0]["n"] = 8
    assert store.load("k")["cart"][0]["n"] == 7  # type: ignore[index]
