"""Run Django's, Starlette's and Flask's own session tests against session-store's integrations.

    .venv/bin/python tools/upstream_tests/run.py            # what .ci/run does

For each framework this fetches its sdist from PyPI at the version pinned below (the version
``requirements-dev.txt`` installs; the script stops if the installed one differs), checks the
sdist's sha256, extracts only the session test files into a temporary directory, adds the shim
files of ``tools/upstream_tests/shims/<suite>/`` (conftests that point the framework at
session-store; nothing of theirs is edited) and runs them with pytest on ``memory://`` and on a
real redis-server started here on a free loopback port (stopped by its pid at the end).

It prints per suite and store how many tests apply and how many passed, and every test left
out with the reason. The exit status is 0 only if every applicable test passed, each left-out
test still exists upstream, and the counts are the pinned ones (those of README's table): a new
or renamed upstream test makes the run fail until it is looked at. A download that fails is an
error, never a skip.

Sdists are kept in ``$SESSION_STORE_UPSTREAM_CACHE`` (default ``~/.cache/session-store/upstream``)
and their sha256 checked on every run. Running these BSD-3-Clause tests needs no notice; they
are downloaded, never committed here.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHIMS = HERE / "shims"
README = HERE.parents[1] / "README.md"
STORES = ("memory", "redis")


@dataclass(frozen=True)
class Variant:
    """Tests that do not apply to the integration's defaults, run again with ``env`` (read by
    the suite's shim) to show that the one difference is that setting."""

    nodes: tuple[str, ...]
    env: dict[str, str]
    reason: str


@dataclass(frozen=True)
class Suite:
    """One framework's session tests: where to get them, what to run, what does not apply."""

    name: str
    distribution: str  # the installed distribution, whose version must be ``version``
    version: str
    url: str  # the sdist, as https://pypi.org/simple/<name>/ lists it
    sha256: str
    members: tuple[str, ...]  # paths inside the sdist's top directory to extract
    targets: tuple[str, ...]  # pytest arguments: files and node ids
    applicable: dict[str, int]  # store -> how many tests must run and pass (README's table)
    keyword: str | None = None  # pytest -k: the session tests of a larger file
    deselected: dict[str, str] = field(default_factory=dict)  # node id -> why not applicable
    not_on_redis: tuple[str, str] | None = None  # (pytest -k expression, why) on Redis only
    variant: Variant | None = None


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
        applicable={"memory": 75, "redis": 75},
        deselected={
            "test_session_store_engine.py::SessionMiddlewareTests::test_empty_session_saved": (
                "reads the row back through Django's database model (Session.objects), not "
                "through the configured engine"
            ),
            "test_session_store_engine.py::SessionMiddlewareTests::"
            "test_session_update_error_redirect": (
                "builds Django's database engine (DatabaseSession) itself instead of the "
                "configured one"
            ),
        },
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
        applicable={"memory": 26, "redis": 13},
        deselected={
            "tests/middleware/test_session.py::test_session_tracks_modification": (
                "a unit test of Starlette's own Session dict class, which the middleware "
                "under test here does not use"
            ),
        },
        not_on_redis=(
            "not trio",
            "the trio runs: the async Redis backend is redis.asyncio, which needs an asyncio "
            "event loop (on memory:// the trio runs pass)",
        ),
        variant=Variant(
            nodes=("tests/middleware/test_session.py::test_set_cookie_only_on_modification",),
            env={"SESSION_STORE_UPSTREAM_SLIDING": "0"},
            reason=(
                "Starlette 1.x sends no Set-Cookie on a request that only reads the session; "
                "ours by default (sliding=True) restarts the TTL with touch and re-sends the "
                "cookie so its Max-Age slides too. Run again with sliding=False"
            ),
        ),
    ),
    Suite(
        name="Flask",
        distribution="Flask",
        version="3.1.3",
        url="https://files.pythonhosted.org/packages/26/00/"
        "35d85dcce6c57fdc871f3867d465d780f302a175ea360f62533f12b27e2b/flask-3.1.3.tar.gz",
        sha256="0ef0e52b8a9cd932855379197dd8f94047b359ca0a78695144304cb45f87c9eb",
        members=(
            "tests/conftest.py",
            "tests/test_basic.py",
            "tests/test_testing.py",
            "tests/test_helpers.py",
        ),
        targets=(
            "tests/test_basic.py",
            "tests/test_testing.py",
            "tests/test_helpers.py::TestStreaming::test_stream_keeps_session",
        ),
        keyword="session or flash",
        applicable={"memory": 16, "redis": 16},
        deselected={
            "tests/test_basic.py::test_missing_session": (
                "expects the RuntimeError of cookie signing without SECRET_KEY; a server-side "
                "id needs no secret key"
            ),
            "tests/test_testing.py::test_session_transactions_no_null_sessions": (
                "expects Flask's null session (no SECRET_KEY); a server-side id needs no secret key"
            ),
            "tests/test_basic.py::test_session_secret_key_fallbacks": (
                "rotates the key that signs the cookie; a server-side id is not signed"
            ),
            "tests/test_basic.py::test_session_using_samesite_attribute": (
                "asserts that SESSION_COOKIE_SAMESITE=None (Flask's default) sends no SameSite; "
                'ours makes None Lax by design (set "None" to send none)'
            ),
            "tests/test_basic.py::test_session_refresh_vary": (
                "expects a permanent session's cookie refreshed (and Vary: Cookie) on a request "
                "that never uses the session; ours neither reads nor writes the store then"
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
    if target.exists() and _sha256(target.read_bytes()) == suite.sha256:
        return target
    last_error: Exception | None = None
    for attempt in range(3):
        try:
            with urllib.request.urlopen(suite.url, timeout=60) as response:  # noqa: S310
                data = response.read()
            break
        except OSError as error:  # URLError, timeouts, resets: retried, then fatal
            last_error = error
            if attempt < 2:
                time.sleep(2 * (attempt + 1))
    else:
        raise UpstreamError(f"could not download {suite.url}: {last_error}")
    digest = _sha256(data)
    if digest != suite.sha256:
        raise UpstreamError(f"{suite.url}: sha256 {digest}, pinned {suite.sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_installed(suite: Suite) -> None:
    """The installed framework must be the pinned one: its tests test that very code."""
    installed = importlib.metadata.version(suite.distribution)
    if installed != suite.version:
        raise UpstreamError(
            f"{suite.distribution} {installed} is installed but its tests are pinned to "
            f"{suite.version}: pin {installed} in tools/upstream_tests/run.py (the sdist's URL "
            f"and sha256 from https://pypi.org/simple/{suite.distribution.lower()}/), run "
            "this script and update the counts here and in README's table"
        )


def extract(suite: Suite, sdist: Path, into: Path) -> None:
    """Only the suite's files, byte for byte, under ``into``; the shim files beside them."""
    top = f"{suite.distribution.lower()}-{suite.version}"
    with tarfile.open(sdist) as archive:
        for member in suite.members:
            source = archive.extractfile(f"{top}/{member}")
            if source is None:
                raise UpstreamError(f"{sdist.name}: {member} is not a file")
            destination = into / member
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read())
    for shim in sorted((SHIMS / suite.name.lower()).glob("*.py")):
        shutil.copyfile(shim, into / shim.name)
    if suite.name == "Django":  # Django's runner imports the package as ``sessions_tests``
        shutil.move(into / "tests" / "sessions_tests", into / "sessions_tests")
    (into / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")


@dataclass
class Outcome:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0

    @property
    def ran(self) -> int:
        return len(self.passed) + len(self.failed)


def pytest(directory: Path, arguments: list[str], env: dict[str, str]) -> Outcome:
    """pytest in ``directory`` (its own ini file, not the repository's), results from JUnit XML."""
    report = directory / f"report-{time.monotonic_ns()}.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", f"--junitxml={report}"]
    command += ["--rootdir", str(directory), "-c", str(directory / "pytest.ini"), *arguments]
    started = time.monotonic()
    full_env = {**os.environ, **env}
    full_env.pop("PYTHONPATH", None)
    done = subprocess.run(  # noqa: S603 - this interpreter's pytest, our own arguments
        command, cwd=directory, env=full_env, capture_output=True, text=True, check=False
    )
    outcome = Outcome(output=done.stdout + done.stderr, seconds=time.monotonic() - started)
    if not report.exists():
        raise UpstreamError(f"pytest {arguments} wrote no report:\n{outcome.output}")
    for case in ET.parse(report).getroot().iter("testcase"):  # noqa: S314 - pytest's own
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            outcome.failed.append(name)
        elif case.find("skipped") is not None:
            outcome.skipped.append(name)
        else:
            outcome.passed.append(name)
    return outcome


def main_run(suite: Suite, directory: Path, store: str, url: str) -> Outcome:
    arguments = []
    keywords = [f"({suite.keyword})"] if suite.keyword else []
    if store == "redis" and suite.not_on_redis:
        keywords.append(f"({suite.not_on_redis[0]})")
    if keywords:
        arguments += ["-k", " and ".join(keywords)]
    excluded = [*suite.deselected, *(suite.variant.nodes if suite.variant else ())]
    for node in excluded:
        arguments += ["--deselect", node]
    return pytest(directory, [*arguments, *suite.targets], {"SESSION_STORE_URL": url})


def variant_run(suite: Suite, directory: Path, store: str, url: str) -> Outcome | None:
    if suite.variant is None:
        return None
    arguments = ["-k", suite.not_on_redis[0]] if store == "redis" and suite.not_on_redis else []
    env = {"SESSION_STORE_URL": url, **suite.variant.env}
    return pytest(directory, [*arguments, *suite.variant.nodes], env)


def check_deselected(suite: Suite, directory: Path) -> None:
    """Each deselected node id must still exist upstream (else the exclusion list is stale)."""
    if not suite.deselected:
        return
    listed = [*suite.deselected]
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-c", "pytest.ini"]
    done = subprocess.run(  # noqa: S603 - this interpreter's pytest, our own arguments
        [*command, "--rootdir", str(directory), *listed],
        cwd=directory,
        env={**os.environ, "SESSION_STORE_URL": "memory://"},
        capture_output=True,
        text=True,
        check=False,
    )
    found = {line.split("[")[0] for line in done.stdout.splitlines() if "::" in line}
    if done.returncode != 0 or found != set(listed):
        raise UpstreamError(
            f"{suite.name} {suite.version}: not every deselected test exists (renamed or "
            f"removed upstream?): {sorted(set(listed) - found)}\n{done.stdout}{done.stderr}"
        )


def report(suite: Suite, store: str, main: Outcome, variant: Outcome | None) -> list[str]:
    """Print the suite's lines for one store; return what is wrong."""
    where = f"{suite.name} {suite.version} on {store}"
    print(
        f"  {store:6} applicable {main.ran}, passed {len(main.passed)}, failed "
        f"{len(main.failed)}, skipped {len(main.skipped)} ({main.seconds:.1f} s)"
    )
    problems = [f"{where}: {name} failed" for name in main.failed]
    if main.skipped:
        problems.append(f"{where}: skipped (an applicable test must run): {main.skipped}")
    if main.ran != suite.applicable[store]:
        problems.append(f"{where}: {main.ran} tests ran, {suite.applicable[store]} pinned")
    if variant is not None:
        assert suite.variant is not None
        settings = ", ".join(f"{k}={v}" for k, v in suite.variant.env.items())
        print(f"  {store:6} with {settings}: {len(variant.passed)} of {variant.ran} passed")
        problems += [f"{where} with {settings}: {name} failed" for name in variant.failed]
        if not variant.ran:
            problems.append(f"{where} with {settings}: no test ran")
    if problems and (main.failed or (variant and variant.failed)):
        failing = main.output + (variant.output if variant else "")
        problems.append(f"{where}: pytest output:\n{failing}")
    return problems


def check_readme(suites: list[Suite]) -> list[str]:
    """README's table must show each suite's pinned version and counts (its row begins
    ``| <name> <version> ``, its counts cell is ``| <memory> / <redis> of <total> |``)."""
    rows = [line for line in README.read_text(encoding="utf-8").splitlines() if line[:2] == "| "]
    problems = []
    for suite in suites:
        row = next((r for r in rows if r.startswith(f"| {suite.name} {suite.version} ")), None)
        counts = f"| {suite.applicable['memory']} / {suite.applicable['redis']} of "
        if row is None or counts not in row:
            problems.append(
                f"README.md: no table row '| {suite.name} {suite.version} ...' with "
                f"'{counts}...': the table no longer says what this script checks"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", choices=[s.name.lower() for s in SUITES], action="append")
    parser.add_argument("--jobs", type=int, default=2, help="pytest runs at once (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    suites = [s for s in SUITES if not args.only or s.name.lower() in args.only]

    from session_store_redis.testing import RedisServer  # the test suite's own harness

    problems = check_readme(suites)
    work = Path(tempfile.mkdtemp(prefix="session-store-upstream-"))
    server = RedisServer().start()
    urls = {"memory": "memory://", "redis": server.url}
    try:
        print(f"redis-server pid {server.pid} on 127.0.0.1:{server.port}")
        prepared = []
        for suite in suites:
            check_installed(suite)
            sdist = fetch(suite)
            directory = work / suite.name.lower()
            extract(suite, sdist, directory)
            prepared.append((suite, directory))
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            checks = [pool.submit(check_deselected, s, d) for s, d in prepared]
            runs = {
                (s.name, store): (
                    pool.submit(main_run, s, d, store, urls[store]),
                    pool.submit(variant_run, s, d, store, urls[store]),
                )
                for s, d in prepared
                for store in STORES
            }
            for check in checks:
                check.result()
            for suite, _ in prepared:
                print(f"\n{suite.name} {suite.version} (sdist sha256 {suite.sha256[:12]}...)")
                for store in STORES:
                    main_future, variant_future = runs[suite.name, store]
                    problems += report(suite, store, main_future.result(), variant_future.result())
                for node, reason in suite.deselected.items():
                    print(f"  not applicable: {node}: {reason}")
                if suite.not_on_redis:
                    print(f"  not applicable on Redis: {suite.not_on_redis[1]}")
                if suite.variant:
                    nodes = ", ".join(suite.variant.nodes)
                    print(f"  not applicable to the defaults: {nodes}: {suite.variant.reason}")
    except UpstreamError as error:
        problems.append(str(error))
    finally:
        server.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for problem in problems:
        print(f"\nFAILED: {problem}")
    print("\nupstream session tests: " + ("FAILED" if problems else "every applicable test passed"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
