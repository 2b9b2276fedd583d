"""The chat page (examples/chat) in a real browser: headless Chromium driven by selenium.

Two browser sessions join one room; what one types reaches the other over
WebSocket, and with WebSocket unavailable the page falls back to long
polling. Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run``
installs them): without them these tests fail when ``CI`` is set and are
skipped otherwise.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_examples import Start, cogen_web, start  # noqa: F401 (the fixture)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 20


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"browser tests need {', '.join(missing)} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[Callable[..., Any]]:
    """A factory of headless Chromium sessions (selenium WebDriver); all quit at teardown."""
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers: list[Any] = []
    dirs: list[str] = []

    def make(block_websocket: bool = False) -> Any:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        profile = tempfile.mkdtemp(prefix="cogen-chromium-")
        dirs.append(profile)
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        drivers.append(driver)
        driver.set_page_load_timeout(WAIT)
        if block_websocket:
            # as an old proxy that drops upgrades would: no WebSocket can open
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
                window.WebSocket = class extends EventTarget {
                  constructor() { super(); this.readyState = 3;
                    setTimeout(() => this.onclose && this.onclose({code: 1006}), 10); }
                  send() {} close() {}
                };"""})
        return driver

    yield make
    for driver in drivers:
        try:
            driver.quit()
        except Exception:  # noqa: BLE001 - teardown of a browser that already died
            pass
    for profile in dirs:
        shutil.rmtree(profile, ignore_errors=True)


def join(driver: Any, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.CSS_SELECTOR, "#join button").click()
    WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "send")))


def say(driver: Any, text: str) -> None:
    from selenium.webdriver.common.by import By
    box = driver.find_element(By.ID, "text")
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def wait_for_text(driver: Any, element_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, WAIT).until(ec.text_to_be_present_in_element((By.ID, element_id), text))


@pytest.mark.timeout(90)
def test_two_browsers_chat_over_websocket(start: Start, browser: Callable[..., Any]) -> None:
    chat = start(*cogen_web("examples.chat.app:application"))
    url = f"http://{chat.host}:{chat.port}/"
    alice, bob = browser(), browser()
    join(alice, url, "alice")
    join(bob, url, "bob")
    wait_for_text(alice, "status", "(WebSocket)")
    wait_for_text(bob, "status", "(WebSocket)")
    say(alice, "hello from a real browser")
    wait_for_text(bob, "log", "alice: hello from a real browser")
    say(bob, "and back")
    wait_for_text(alice, "log", "bob: and back")


@pytest.mark.timeout(90)
def test_the_page_falls_back_to_long_polling(start: Start, browser: Callable[..., Any]) -> None:
    chat = start(*cogen_web("examples.chat.app:application"), env={"CHAT_POLL_TIMEOUT": "2"})
    url = f"http://{chat.host}:{chat.port}/"
    poller, socketed = browser(block_websocket=True), browser()
    join(poller, url, "poller")
    join(socketed, url, "socketed")
    wait_for_text(socketed, "status", "(WebSocket)")
    say(socketed, "to the poller")
    wait_for_text(poller, "log", "socketed: to the poller")
    assert "WebSocket" not in poller.find_element("id", "status").text
    say(poller, "to the socket")
    wait_for_text(socketed, "log", "poller: to the socket")


@pytest.mark.timeout(120)
def test_browsers_on_different_workers_chat_through_the_broker(start: Start,
                                                               browser: Callable[..., Any]) -> None:
    import re

    from tests.redis._server import RedisServer, require_redis_server

    require_redis_server()
    redis = RedisServer(Path(tempfile.mkdtemp(prefix="cogen-redis-"))).start()
    try:
        chat = start(*cogen_web("examples.chat.app:application", "--workers", "3", "--broker", redis.url))
        chat.wait_for(re.compile(r"3 workers serving"))
        url = f"http://{chat.host}:{chat.port}/"
        people = [browser() for _ in range(3)]
        for n, driver in enumerate(people):
            join(driver, url, f"p{n}")
        for n, driver in enumerate(people):
            say(driver, f"hello from p{n}")
        for driver in people:
            for n in range(3):
                wait_for_text(driver, "log", f"p{n}: hello from p{n}")
    finally:
        redis.stop()
