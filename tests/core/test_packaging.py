"""Issue 13, item 10: what pip sees. The wheels themselves are checked by .ci/smoke.py (CI
builds every wheel and installs them in a fresh environment); here, the source of that metadata.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECTS = {
    "session-store": ROOT,
    "session-store-redis": ROOT / "backends" / "redis",
    "session-store-diskcache": ROOT / "backends" / "diskcache",
    "session-store-example": ROOT / "examples" / "session_store_example",
}


def _project(root: Path) -> dict[str, object]:
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    assert isinstance(project, dict)
    return project


def test_the_core_offers_an_extra_per_plugin() -> None:
    extras = _project(ROOT)["optional-dependencies"]
    assert isinstance(extras, dict)
    assert any(req.startswith("session-store-redis") for req in extras["redis"])
    assert any(req.startswith("session-store-diskcache") for req in extras["diskcache"])


@pytest.mark.parametrize("name", sorted(PROJECTS))
def test_every_distribution_ships_the_mit_license_it_claims(name: str) -> None:
    root = PROJECTS[name]
    project = _project(root)
    assert project["name"] == name
    assert project["license"] == "MIT"
    assert project.get("license-files") == ["LICENSE"]
    text = (root / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    urls = project.get("urls")
    assert isinstance(urls, dict) and {"Homepage", "Source", "Issues"} <= set(urls)


def test_the_readme_says_how_to_install_from_a_clone() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install "session-store[redis]"' in readme
    assert "pip install -e . -e ./backends/redis -e ./backends/diskcache" in readme
