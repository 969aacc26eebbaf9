"""Smoke test of the installed wheels (not the source tree): entry points, py.typed, data, the
LICENSE file in every wheel, the plugin extras and project URLs."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from importlib.metadata import distribution
from importlib.resources import files
from pathlib import Path

import session_store
from session_store import available_backends, open_backend
from session_store.samples import legacy_sessions

assert "site-packages" in str(Path(session_store.__file__)), "not testing the installed wheel"

schemes = available_backends()
for scheme in ("memory", "diskcache", "redis", "rediss", "sqlite"):
    assert scheme in schemes, f"entry point for {scheme!r} missing: {dict(schemes)}"

for package in ("session_store", "session_store_diskcache", "session_store_redis"):
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None, package
    assert (Path(spec.origin).parent / "py.typed").is_file(), f"{package} lacks py.typed"

assert files("session_store.samples").joinpath("legacy_user_sessions.json").is_file()
assert len(legacy_sessions()) >= 4

with tempfile.TemporaryDirectory() as tmp:
    chain = open_backend(f"memory:// | diskcache://{tmp}")
    chain.set("smoke", b"ok", ttl=60)
    assert open_backend(f"diskcache://{tmp}").get("smoke") == b"ok"
    chain.close()

with tempfile.TemporaryDirectory() as tmp:  # the example plugin, built on session_store.plugin
    sqlite = open_backend(f"sqlite://{tmp}/s.db?prefix=smoke:")
    sqlite.set("smoke", b"ok", ttl=60)
    assert open_backend(f"sqlite://{tmp}/s.db?prefix=smoke:").get("smoke") == b"ok"
    sqlite.close()
assert "pytest" not in sys.modules, "a plugin's runtime import must not load the test kit"

# Issue 13, item 10: the MIT license the metadata claims is in every wheel; the core names the
# plugin distributions as extras, and carries its project URLs.
for dist_name in (
    "session-store",
    "session-store-redis",
    "session-store-diskcache",
    "session-store-example",
):
    dist = distribution(dist_name)
    meta = dist.metadata
    assert "MIT" in (meta.get("License-Expression") or meta.get("License") or ""), dist_name
    licenses = [f for f in dist.files or [] if f.name.startswith("LICENSE")]
    assert licenses, f"{dist_name}: no LICENSE file in the wheel"
    text = Path(str(dist.locate_file(licenses[0]))).read_text(encoding="utf-8")
    assert text.startswith("MIT License"), f"{dist_name}: LICENSE is not the MIT license"
    assert meta.get_all("Project-URL"), f"{dist_name}: no project URLs"
core = distribution("session-store").metadata
assert {"redis", "diskcache"} <= set(core.get_all("Provides-Extra") or []), "extras missing"
requires = core.get_all("Requires-Dist") or []
for extra, plugin in (("redis", "session-store-redis"), ("diskcache", "session-store-diskcache")):
    assert any(r.startswith(plugin) and extra in r for r in requires), (extra, requires)

print("wheel smoke test: ok", sorted(schemes))
