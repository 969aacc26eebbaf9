"""The example shop (examples/webapp) in a real headless Chromium, on two server processes that
share a real redis-server: log in on one, fill the cart on the other, log out on one, and the
other shows the user logged out.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Without them the
test is skipped locally and fails under CI, so a CI run never passes without the browser.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from session_store_redis.testing import RedisServer

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "webapp" / "app.py"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
#: Set to a path to keep a screenshot of the shop (how docs/webapp.png was made).
SCREENSHOT = os.environ.get("SESSION_STORE_SCREENSHOT")

pytestmark = pytest.mark.slow

if CHROMIUM is None or DRIVER is None:
    if os.environ.get("CI"):
        pytest.fail(
            "chromium and chromium-driver are required (apt-get install -y chromium "
            "chromium-driver)",
            pytrace=False,
        )
    pytest.skip("chromium / chromium-driver not installed", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: The most an app process may take to answer its first request. Readiness is polled (an app
#: that exits fails at once, with its output), so this is only the cap for one that hangs: at
#: load 27 on a 2-core machine a start took over 20 s (importing Flask, redis-py, the store).
START_CAP = 120.0


def wait_until_serving(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = START_CAP
) -> None:
    """Poll until the app at ``url`` answers, it exits (an error with its output), or
    ``timeout`` seconds pass (an error)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the app on {url} exited with {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # polling a port that is not open yet
    raise TimeoutError(f"the app on {url} did not answer in {timeout} s")


@pytest.fixture
def two_servers(
    redis_server: RedisServer, redis_namespace: str, tmp_path: Path
) -> Iterator[tuple[str, str]]:
    env = {**os.environ, "SESSION_STORE_URL": redis_server.url_for(prefix=redis_namespace)}
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"app-{port}.log" for port in ports]
    processes: list[subprocess.Popen[bytes]] = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as output:
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(APP), str(port)],
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        urls = [f"http://127.0.0.1:{port}/" for port in ports]
        for url, process, log in zip(urls, processes, logs, strict=True):
            wait_until_serving(url, process, log)
        yield urls[0], urls[1]
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=900,700",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_one_session_across_two_processes_in_a_real_browser(
    two_servers: tuple[str, str], browser: object
) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.wait import WebDriverWait

    assert isinstance(browser, WebDriver)
    first, second = two_servers
    # While a form post redirects, the document can be swapped between finding an element and
    # reading it: Chromium then answers "Node with given id does not belong to the document"
    # (a plain WebDriverException, not a stale-element one). Reading the text in one script
    # narrows that window, and any WebDriver error while polling only means "not yet": a page
    # that never shows the text still fails, with its source in the message.
    waiting = WebDriverWait(browser, 15, ignored_exceptions=(WebDriverException,))

    def text(element_id: str) -> str | None:
        found = browser.execute_script(
            "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;",
            element_id,
        )
        return None if found is None else str(found).strip()

    def shows(element_id: str, expected: str) -> None:
        """Wait for the page (after a redirect, say) to show ``expected`` in the element."""
        try:
            waiting.until(lambda _: text(element_id) == expected)
        except Exception:
            pytest.fail(f"#{element_id} never showed {expected!r}:\n{browser.page_source}")

    def submit(field: str, value: str, button: str) -> None:
        browser.find_element(By.ID, field).send_keys(value)
        browser.find_element(By.ID, button).click()

    def visit(url: str) -> None:
        browser.get(url)
        shows("port", url.rsplit(":", 1)[1].strip("/"))

    visit(first)
    shows("status", "Not logged in")
    submit("name", "ann", "login")
    shows("status", "Logged in as ann")

    visit(second)
    shows("status", "Logged in as ann")  # the other process knows her
    submit("item", "book", "add")
    shows("cart", "book")
    submit("item", "lamp", "add")
    shows("cart", "book\nlamp")

    visit(first)
    shows("cart", "book\nlamp")
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)
    browser.find_element(By.ID, "logout").click()
    shows("status", "Not logged in")

    visit(second)
    shows("status", "Not logged in")  # logged out everywhere
    shows("cart", "empty")
