"""``pgclaim dashboard`` in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium): the page shows a queue the test made, its numbers
follow the records, admin actions exist only with --allow-actions and work through their
confirmation, and a screenshot is left in tests/artifacts/. Without --allow-actions and
without the admin role the server refuses actions too (plain HTTP)."""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from pgdb import ROOT
from served import PGCLAIM, Served

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


class Board(Served):
    """A ``pgclaim dashboard`` process."""

    def __init__(self, dsn: str, *extra: str) -> None:
        super().__init__("--database", dsn, "dashboard", "--host", "127.0.0.1", "--port", "0",
                         "--refresh", "0.5", "--sample-every", "0.5", *extra,
                         pattern=r"dashboard on (http://127\.0\.0\.1:\d+/)")

    def get(self, path: str = "") -> str:
        with urllib.request.urlopen(self.url + path, timeout=30) as reply:
            return str(reply.read().decode())

    def post(self, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            self.url + "action", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Pgclaim-Token": token})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture
def boards() -> Iterator[list[Board]]:
    started: list[Board] = []
    yield started
    for board in started:
        board.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver; scripts/deps.sh installs them when run as root): "
                    + ", ".join(n for n, p in (("chromium", CHROMIUM),
                                                ("chromedriver", CHROMEDRIVER)) if p is None)
                    + " missing")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Waits until ``check()`` is truthy (a hang bound, not a speed bound)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def text(driver: Any, css: str) -> str:
    """The text of the element at ``css``; empty when it is not there, or was replaced by a
    refresh while it was read (the page replaces its content every half second)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def cell(driver: Any, queue: str, column: str) -> str:
    """The text of ``column`` in the row of ``queue``."""
    return text(driver, f'#queues tr[data-queue="{queue}"] td.{column}')


def click(driver: Any, css: str) -> bool:
    """Clicks the element at ``css``; False when it is not there or a refresh replaced it
    first (then wait() tries again)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    try:
        driver.find_element(By.CSS_SELECTOR, css).click()
    except (NoSuchElementException, StaleElementReferenceException):
        return False
    return True


def test_dashboard_in_chromium(dsn: str, conn: psycopg.Connection[Any], browser: Any,
                               boards: list[Board]) -> None:
    from selenium.webdriver.common.by import By
    conn.execute("select pgclaim.create_queue('dash_q', max_attempts => 1)")
    conn.execute("select pgclaim.enqueue_batch('dash_q', array['1','2','3','4','5']::jsonb[])")
    conn.execute("select pgclaim.register_worker('w-dash')")
    ids = [r[0] for r in conn.execute("select id from pgclaim.claim_batch('dash_q', 'w-dash', 3)")]
    conn.execute("select pgclaim.fail('w-dash', %s, 'handler said <no> & stopped')", [ids[0]])

    read_only = Board(dsn)
    boards.append(read_only)
    browser.get(read_only.url)
    assert "pgclaim" in browser.title
    wait("the queue's row", lambda: (cell(browser, "dash_q", "pending"),
                                     cell(browser, "dash_q", "running"),
                                     cell(browser, "dash_q", "completed")) == ("2", "2", "0"))
    wait("the worker", lambda: "w-dash" in text(browser, "#workers"))
    # the error as written: escaped in the HTML, shown as text
    wait("the failure", lambda: "handler said <no> & stopped" in text(browser, "#failures"))
    assert browser.find_elements(By.CSS_SELECTOR, "button[data-action]") == []

    # The page refreshes by itself: the numbers follow the records.
    conn.execute("select pgclaim.complete('w-dash', %s)", [ids[1:]])
    wait("the completions on the page", lambda: (cell(browser, "dash_q", "completed"),
                                                 cell(browser, "dash_q", "running")) == ("2", "0"))
    wait("a point of the throughput plot", lambda: browser.find_elements(
        By.CSS_SELECTOR, '#throughput polyline[data-metric="completions_total"]'))
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
    # Without --allow-actions the server refuses them whatever is posted.
    assert read_only.post({"action": "pause", "queue": "dash_q"}, "")[0] == 403
    assert read_only.stop() == 0

    admin = Board(dsn, "--allow-actions")
    boards.append(admin)
    browser.get(admin.url)
    token = browser.find_element(By.TAG_NAME, "body").get_attribute("data-token")
    assert admin.post({"action": "pause", "queue": "dash_q"}, "wrong")[0] == 403
    wait("the pause button", lambda: click(browser, 'button[data-action="pause"]'))
    alert = wait("the confirmation", lambda: _alert(browser))
    assert alert.text == "Pause queue dash_q?"
    alert.dismiss()  # no confirmation, no action
    time.sleep(0.2)
    assert conn.execute("select paused from pgclaim.queues where queue = 'dash_q'"
                        ).fetchone() == (False,)
    wait("the pause button", lambda: click(browser, 'button[data-action="pause"]'))
    wait("the confirmation", lambda: _alert(browser)).accept()
    wait("the queue paused", lambda: conn.execute(
        "select paused from pgclaim.queues where queue = 'dash_q'").fetchone() == (True,))
    wait("the page showing it", lambda: cell(browser, "dash_q", "state") == "paused")
    wait("the retry button", lambda: click(browser, 'button[data-action="retry_failed"]'))
    wait("the confirmation", lambda: _alert(browser)).accept()
    wait("the failed record pending again", lambda: conn.execute(
        "select status from pgclaim.records where id = %s", [ids[0]]).fetchone() == ("pending",))
    status, reply = admin.post({"action": "resume", "queue": "dash_q"}, token)
    assert (status, reply["message"]) == (200, "dash_q resumed")
    assert admin.post({"action": "drop", "queue": "dash_q"}, token)[0] == 400


def _alert(driver: Any) -> Any:
    from selenium.common.exceptions import NoAlertPresentException
    try:
        return driver.switch_to.alert
    except NoAlertPresentException:
        return None


def test_actions_need_the_admin_role(dsn: str, conn: psycopg.Connection[Any],
                                     cluster_url: str) -> None:
    login = f"pgclaim_t_dash_{secrets.token_hex(4)}"
    password = secrets.token_hex(8)
    with psycopg.connect(cluster_url, autocommit=True) as su:
        su.execute(f"create role {login} login password '{password}' in role pgclaim_worker")
    try:
        url = re.sub(r"//[^@/]*@", f"//{login}:{password}@", dsn)
        refused = subprocess.run(
            [PGCLAIM, "--database", url, "dashboard", "--port", "0", "--host", "127.0.0.1",
             "--allow-actions"], capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ})
        assert refused.returncode == 2
        assert "[42501]" in refused.stderr and "pgclaim_admin" in refused.stderr
        assert password not in refused.stderr
    finally:
        with psycopg.connect(cluster_url, autocommit=True) as su:
            su.execute(f"drop role {login}")
