"""Run Django's, Starlette's and Flask's own session tests against session-store's integrations.

    .venv/bin/python tools/upstream_tests/run.py            # what .ci/run does

For each framework this fetches its sdist from PyPI at the version pinned below (the version
``requirements-dev.txt`` installs; the script stops if the installed one differs), checks the
sdist's sha256, extracts only the session test files into a temporary directory, adds the shim
files of ``tools/upstream_tests/shims/<suite>/`` (a conftest that points the framework at
session-store; nothing of theirs is edited) and runs them with pytest twice: on ``memory://``
and on a real redis-server started here on a free loopback port (stopped by its pid after).
It prints per suite and store the tests that apply, how many passed, and the tests deselected,
each with the reason. Exit status 0 only if every applicable test passed on both stores and
the counts are the pinned ones (so the README's table stays true); a download that fails is an
error, never a skip.

Sdists are kept in ``$SESSION_STORE_UPSTREAM_CACHE`` (default
``~/.cache/session-store/upstream``) and checked against the pinned sha256 on every run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIMS = HERE / "shims"


@dataclass(frozen=True)
class Suite:
    """One framework's session tests: where to get them, what to run, what does not apply."""

    name: str
    distribution: str  # the installed distribution whose version must match
    version: str
    url: str  # the sdist on PyPI (files.pythonhosted.org), as PyPI's simple index lists it
    sha256: str
    members: tuple[str, ...]  # paths inside the sdist's top directory to extract
    targets: tuple[str, ...]  # pytest arguments: files and node ids to run
    applicable: int  # how many tests must run and pass (the README's table)
    deselected: dict[str, str] = field(default_factory=dict)  # node id -> why it does not apply
    keyword: str | None = None  # pytest -k, to pick the session tests out of a larger file


SUITES = (
    Suite(
        name="Django",
        distribution="Django",
        version="5.2.19",
        url="https://files.pythonhosted.org/packages/02/29/"
        "a487a108caa76430c8b616aa90a6d09cf431306112c14093e6f0a7454e17/django-5.2.19.tar.gz",
        sha256="ad03d8abc51dbff95ebf34b27123cf0c26a3b62db7ba0cd520783686362533d1",
        members=(
            "tests/sessions_tests/__init__.py",
            "tests/sessions_tests/models.py",
            "tests/sessions_tests/tests.py",
        ),
        targets=("test_session_store_engine.py",),
        applicable=65,
    ),
    Suite(
        name="Starlette",
        distribution="starlette",
        version="1.10.0",
        url="https://files.pythonhosted.org/packages/48/bb/"
        "3d8757f21e9a53d9035c9eb039a777047139a16bfdbedfc7a58241c3d914/starlette-1.10.0.tar.gz",
        sha256="b8399098d4c1e3522734f7235dc79b1fc967f96cf139c81e0fa30479e0685f9b",
        members=(
            "tests/__init__.py",
            "tests/conftest.py",
            "tests/types.py",
            "tests/middleware/__init__.py",
            "tests/middleware/test_session.py",
        ),
        targets=("tests/middleware/test_session.py",),
        applicable=0,
        deselected={
            "tests/middleware/test_session.py::test_session_tracks_modification": (
                "a unit test of Starlette's own Session dict class (its modified/accessed "
                "flags), which the middleware replaced here does not use"
            ),
        },
    ),
    Suite(
        name="Flask",
        distribution="Flask",
        version="3.1.3",
        url="https://files.pythonhosted.org/packages/26/00/"
        "35d85dcce6c57fdc871f3867d465d780f302a175ea360f62533f12b27e2b/flask-3.1.3.tar.gz",
        sha256="0ef0e52b8a9cd932855379197dd8f94047b359ca0a78695144304cb45f87c9eb",
        members=("tests/conftest.py", "tests/test_basic.py"),
        targets=("tests/test_basic.py",),
        keyword="session or flash",
        applicable=0,
        deselected={
            "tests/test_basic.py::test_missing_session": (
                "expects the RuntimeError of cookie signing without SECRET_KEY; a server-side "
                "id needs no secret key"
            ),
            "tests/test_basic.py::test_session_secret_key_fallbacks": (
                "rotates the key that signs the cookie; a server-side id is not signed"
            ),
            "tests/test_basic.py::test_session_using_samesite_attribute": (
                "asserts Flask's default of no SameSite; ours is Lax by design"
            ),
            "tests/test_basic.py::test_session_refresh_vary": (
                "refreshes the cookie on a request that never touches the session, which "
                "would cost a store read"
            ),
        },
    ),
)


class UpstreamError(RuntimeError):
    """The upstream tests could not be obtained or run as pinned (fails the run loudly)."""


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "session-store" / "upstream"
    return Path(os.environ.get("SESSION_STORE_UPSTREAM_CACHE", default))


def fetch(suite: Suite) -> Path:
    """The suite's sdist, downloaded once, its sha256 checked on every run."""
    target = cache_dir() / suite.url.rsplit("/", 1)[1]
    if not target.exists() or _sha256(target) != suite.sha256:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        last_error: Exception | None = None
        for attempt in range(3):
            try:
                with urllib.request.urlopen(suite.url, timeout=60) as response:  # noqa: S310
                    partial.write_bytes(response.read())
                break
            except OSError as error:  # URLError, timeouts, resets
                last_error = error
                time.sleep(2 * (attempt + 1))
        else:
            raise UpstreamError(f"could not download {suite.url}: {last_error}")
        digest = _sha256(partial)
        if digest != suite.sha256:
            partial.unlink()
            raise UpstreamError(
                f"{suite.url}: sha256 {digest}, pinned {suite.sha256}: not the pinned sdist"
            )
        partial.replace(target)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_installed(suite: Suite) -> None:
    """The installed framework must be the pinned one: its tests test that very code."""
    installed = importlib.metadata.version(suite.distribution)
    if installed != suite.version:
        raise UpstreamError(
            f"{suite.distribution} {installed} is installed but the tests are pinned to "
            f"{suite.version}: pin the installed version in tools/upstream_tests/run.py (its "
            "sdist URL and sha256 from https://pypi.org/simple/"
            f"{suite.distribution.lower()}/), run this script, and update README's table"
        )


def extract(suite: Suite, sdist: Path, into: Path) -> None:
    """Only the suite's files, byte for byte, under ``into``; then the shim files beside."""
    top = f"{suite.distribution.lower()}-{suite.version}"
    with tarfile.open(sdist) as archive:
        for member in suite.members:
            info = archive.getmember(f"{top}/{member}")
            source = archive.extractfile(info)
            if source is None:
                raise UpstreamError(f"{sdist.name}: {member} is not a file")
            destination = into / member
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read())
    for shim in sorted((SHIMS / suite.name.lower()).glob("*.py")):
        shutil.copyfile(shim, into / shim.name)
    if suite.name == "Django":  # their package is importable as ``sessions_tests``
        shutil.move(str(into / "tests" / "sessions_tests"), into / "sessions_tests")
    (into / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def ran(self) -> int:
        return len(self.passed) + len(self.failed)


def run_suite(suite: Suite, directory: Path, store_url: str) -> Outcome:
    """pytest over the suite's targets with ``SESSION_STORE_URL=store_url``."""
    report = directory / "report.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", f"--junitxml={report}"]
    command += ["--rootdir", str(directory), "-c", str(directory / "pytest.ini")]
    if suite.keyword:
        command += ["-k", suite.keyword]
    for node in suite.deselected:
        command += ["--deselect", node]
    command += list(suite.targets)
    env = {**os.environ, "SESSION_STORE_URL": store_url}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, check=False
    )
    outcome = Outcome(output=done.stdout + done.stderr)
    if not report.exists():
        raise UpstreamError(f"{suite.name} on {store_url}: pytest wrote no report\n{outcome.output}")
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome.failed.append(name)
        elif case.find("skipped") is not None:
            outcome.skipped.append(name)
        else:
            outcome.passed.append(name)
    return outcome


def check_deselected(suite: Suite, directory: Path) -> None:
    """Each deselected node id must still exist upstream (else the exclusion list is stale)."""
    if not suite.deselected:
        return
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q"]
    command += ["--rootdir", str(directory), "-c", str(directory / "pytest.ini")]
    command += list(suite.deselected)
    env = {**os.environ, "SESSION_STORE_URL": "memory://"}
    done = subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, check=False
    )
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    if done.returncode != 0 or len(collected) != len(suite.deselected):
        raise UpstreamError(
            f"{suite.name}: the deselected tests are not all in {suite.version} (renamed or "
            f"removed upstream?):\n{done.stdout}{done.stderr}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=[s.name.lower() for s in SUITES], action="append")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    suites = [s for s in SUITES if not args.only or s.name.lower() in args.only]

    from session_store_redis.testing import RedisServer  # the suite's own server harness

    problems: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="session-store-upstream-"))
    server = RedisServer().start()
    try:
        print(f"redis-server pid {server.pid} on 127.0.0.1:{server.port}")
        for suite in suites:
            check_installed(suite)
            sdist = fetch(suite)
            print(f"\n{suite.name} {suite.version}: {sdist.name} sha256 {suite.sha256[:16]}... ok")
            for label, url in (("memory://", "memory://"), ("redis", server.url)):
                directory = work / f"{suite.name.lower()}-{label.strip(':/')}"
                extract(suite, sdist, directory)
                if label == "memory://":
                    check_deselected(suite, directory)
                outcome = run_suite(suite, directory, url)
                print(
                    f"  {label:9} applicable {outcome.ran}, passed {len(outcome.passed)}, "
                    f"failed {len(outcome.failed)}, skipped {len(outcome.skipped)}, "
                    f"deselected {len(suite.deselected)}"
                )
                problems += _problems(suite, label, outcome)
            for node, reason in suite.deselected.items():
                print(f"  deselected {node}: {reason}")
    except UpstreamError as error:
        problems.append(str(error))
    finally:
        server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"\nFAILED: {problem}", file=sys.stderr)
    print("\nupstream session tests: " + ("FAILED" if problems else "all applicable passed"))
    return 1 if problems else 0


def _problems(suite: Suite, label: str, outcome: Outcome) -> list[str]:
    where = f"{suite.name} {suite.version} on {label}"
    found = [f"{where}: {name} failed" for name in outcome.failed]
    if outcome.failed:
        found.append(f"{where}: pytest output:\n{outcome.output}")
    if outcome.skipped:
        found.append(f"{where}: skipped (an applicable test must run): {outcome.skipped}")
    if outcome.ran != suite.applicable:
        found.append(f"{where}: {outcome.ran} tests ran, {suite.applicable} pinned as applicable")
    return found


if __name__ == "__main__":
    sys.exit(main())
