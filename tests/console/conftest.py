"""The web console in headless Chromium: Debian's ``chromium`` driven through its
``chromedriver`` by Selenium, against the tests' server. Nothing is downloaded: the driver's
path is given, and Selenium Manager is told to stay offline. Without Chromium these tests
fail and say what to install (``make test`` installs it)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests._server import ServerProcess
from tests.conftest import new_key

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "console"
KEY_STORAGE = "stratus.console.key"
WAIT = 20.0  # the longest any condition is waited for, in seconds


def _chromium_options() -> webdriver.ChromeOptions:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"the console tests need Chromium and its WebDriver, and {missing} is "
                    "missing: install them with `apt-get install -y chromium chromium-driver` "
                    "(`make test` does it when they are missing)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,860", "--force-device-scale-factor=1",
                "--disable-extensions", "--no-first-run", "--lang=en-US"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def usd(value: float) -> str:
    """An amount as the console writes it: cents, or six decimals under a cent."""
    digits = 6 if value and abs(value) < 0.01 else 2
    return ("\N{MINUS SIGN}$" if value < 0 else "$") + f"{abs(value):.{digits}f}"


class Console:
    """One browser on the console of one server."""

    def __init__(self, driver: webdriver.Chrome, server: ServerProcess) -> None:
        self.driver = driver
        self.server = server

    # -- finding and waiting ---------------------------------------------------------------
    def wait(self, condition: Callable[[webdriver.Chrome], Any], what: str) -> Any:
        try:
            return WebDriverWait(self.driver, WAIT, poll_frequency=0.05,
                                 ignored_exceptions=(StaleElementReferenceException,)
                                 ).until(condition)
        except TimeoutException:
            self.shot(f"failed-{re.sub(r'[^a-z0-9]+', '-', what.lower())[:60]}")
            raise AssertionError(f"the console never showed {what}; the page says:\n"
                                 f"{self.driver.find_element(By.TAG_NAME, 'main').text}"
                                 ) from None

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def shown(self, css: str) -> WebElement:
        """The element, once it is on the page and visible."""
        def visible(driver: webdriver.Chrome) -> WebElement | bool:
            found = driver.find_elements(By.CSS_SELECTOR, css)
            return found[0] if found and found[0].is_displayed() else False
        return self.wait(visible, css)

    def text_of(self, css: str, predicate: Callable[[str], bool], what: str) -> str:
        """The element's text, once ``predicate`` holds for it."""
        def holds(driver: webdriver.Chrome) -> str | bool:
            found = driver.find_elements(By.CSS_SELECTOR, css)
            text = found[0].text if found else None
            return text if text is not None and predicate(text) else False
        return self.wait(holds, what)

    # -- doing -----------------------------------------------------------------------------
    def open(self, path: str = "/") -> None:
        self.driver.get(self.server.url + path)

    def go(self, page: str) -> None:
        """Follow the navigation link to ``page`` and wait for that page to be drawn."""
        self.shown(f"#nav a[data-page='{page}']").click()
        self.wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-page") == page,
                  f"the {page} page")

    def type(self, css: str, text: str) -> None:
        field = self.shown(css)
        field.clear()
        field.send_keys(text)

    def choose(self, css: str, value: str) -> None:
        Select(self.shown(css)).select_by_value(value)

    def sign_in(self, key: str) -> None:
        self.open("/")
        self.type("#api-key", key)
        self.find("#sign-in").click()
        self.shown("#nav")
        self.wait(lambda d: d.find_element(By.ID, "main").get_attribute("data-page")
                  == "playground" and d.find_elements(By.ID, "run"), "the playground")

    def stored_key(self) -> str | None:
        return self.driver.execute_script(
            "return window.sessionStorage.getItem(arguments[0]);", KEY_STORAGE)

    def shot(self, name: str) -> Path:
        """A screenshot of the whole page (not only the window) under ``artifacts/console``."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        size = self.driver.get_window_size()
        height = self.driver.execute_script("return document.documentElement.scrollHeight;")
        self.driver.set_window_size(size["width"], max(size["height"], height + 140))
        try:
            self.driver.save_screenshot(str(path))
        finally:
            self.driver.set_window_size(size["width"], size["height"])
        return path

    def errors(self) -> list[str]:
        """Script errors the page logged (failed API calls, which the page shows, aside)."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"
                and "Failed to load resource" not in entry["message"]]


@pytest.fixture
def console(server: ServerProcess) -> Iterator[Console]:
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or driver
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)),
                              options=_chromium_options())
    try:
        page = Console(driver, server)
        yield page
        errors = page.errors()
    finally:
        driver.quit()
    assert errors == [], f"the console logged script errors: {errors}"


@pytest.fixture
def user_key(api: httpx.Client) -> str:
    """A key (not an admin's) of a fresh account: its history holds only this test's work."""
    return new_key(api, f"console-{time.monotonic_ns()}")
