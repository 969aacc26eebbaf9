"""``import session_store`` and ``import session_store.aio`` are lazy: the protocol, the registry
and the memory backend (sync and async) work without the codec, its optional dependencies or the
attrs schema, and every public name still resolves (the data-room ones with a
DeprecationWarning). Timings live in benchmarks/bench_import.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest

import session_store
import session_store.aio
import session_store.dataroom

#: Modules that only the codec, the schema or the store need.
HEAVY = (
    "cryptography",
    "zstandard",
    "orjson",
    "cattrs",
    "session_store.schema",
    "session_store.codec",
)


def _loaded_after(code: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [m for m in json.loads(out) if any(m == h or m.startswith(h + ".") for h in HEAVY)]


def test_import_loads_no_codec_or_schema() -> None:
    assert _loaded_after("import session_store") == []


def test_protocol_registry_and_memory_work_without_them() -> None:
    code = (
        "import session_store\n"
        "from session_store import SessionBackend, MemoryBackend, open_backend, NO_EXPIRY\n"
        "from session_store.plugin import BackendBase, Params\n"
        "backend = open_backend('memory://?max_entries=10')\n"
        "backend.set('k', b'v', ttl=60)\n"
        "assert backend.get('k') == b'v' and isinstance(backend, SessionBackend)"
    )
    assert _loaded_after(code) == []


def test_every_public_name_resolves() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in session_store.__all__:
            assert getattr(session_store, name) is not None, name
    assert set(session_store.__all__) <= set(dir(session_store))


def test_unknown_name_is_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        session_store.no_such_name  # noqa: B018


@pytest.mark.parametrize("name", session_store.dataroom.__all__)
def test_data_room_names_moved_with_a_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"session_store.dataroom import {name}"):
        old = getattr(session_store, name)
    assert old is getattr(session_store.dataroom, name)


def test_generic_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from session_store import SessionStore, open_backend

    assert SessionStore is not None and open_backend is not None


def test_aio_import_loads_no_codec_or_schema() -> None:
    assert _loaded_after("import session_store.aio") == []


def test_async_protocol_registry_and_memory_work_without_them() -> None:
    code = (
        "import asyncio\n"
        "from session_store.aio import AsyncSessionBackend, ThreadedBackend, open_async_backend\n"
        "async def main():\n"
        "    backend = open_async_backend('memory://?max_entries=10')\n"
        "    await backend.set('k', b'v', ttl=60)\n"
        "    assert await backend.get('k') == b'v' and isinstance(backend, AsyncSessionBackend)\n"
        "    await backend.aclose()\n"
        "asyncio.run(main())"
    )
    assert _loaded_after(code) == []


def test_the_async_store_loads_the_codec_when_used() -> None:
    loaded = _loaded_after("from session_store.aio import AsyncSessionStore")
    assert "session_store.codec" in loaded  # the check above can see the codec load


def test_every_aio_name_resolves() -> None:
    for name in session_store.aio.__all__:
        assert getattr(session_store.aio, name) is not None, name
    assert set(session_store.aio.__all__) <= set(dir(session_store.aio))
    with pytest.raises(AttributeError, match="no_such_name"):
        session_store.aio.no_such_name  # noqa: B018
