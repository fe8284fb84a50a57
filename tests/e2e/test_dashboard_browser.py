"""The dashboard in a real browser: `whistleloop up --demo` as an operator runs it, headless Chromium
(Debian's, driven by Playwright) on every page, in Chinese and in English, with a screenshot of each
page saved to docs/screenshots/ (the README shows them).

Locally a missing /usr/bin/chromium skips this module with the reason; with CI=true it fails.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.nats.server import free_port
from tests.e2e.test_up import start_up

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(
    os.environ.get("WL_SCREENSHOTS_DIR", Path(__file__).parents[2] / "docs" / "screenshots")
)
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Streamlit is ready when its script has run and its socket is up (NOTES.md), not when a container exists.
READY = (
    '[data-testid="stApp"][data-test-script-state="notRunning"]'
    '[data-test-connection-state="CONNECTED"]'
)
ERROR = '[data-testid="stException"]'
#: Pages that show one case once one is picked: the picker's label, and a button to press then.
CASE_PICKERS = {
    "cases": ("查看案件", None),
    "audit": ("最近的案件", "向网关校验此案件"),
}
#: (url path, file stem, its title in Chinese, in English)
PAGES = [
    ("", "command_centre", "指挥中心", "Command centre"),
    ("departments", "departments", "部门响应", "Department response"),
    ("linkage", "linkage", "街乡–部门–社区联动", "Street–department–community linkage"),
    ("cases", "cases", "案件", "Cases"),
    ("audit", "audit", "审计", "Audit"),
]

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            "CI needs /usr/bin/chromium (Debian's chromium): .ci/run installs it as root"
        )
    pytest.skip(
        "no /usr/bin/chromium: apt-get install chromium fonts-noto-cjk", allow_module_level=True
    )

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`whistleloop up --demo` with its dashboard's URL, once it serves pages."""
    tmp = tmp_path_factory.mktemp("browser")
    gateway_port, dashboard_port = free_port(), free_port()
    process, _ = start_up(tmp, "--demo", gateway_port=gateway_port, dashboard_port=dashboard_port)
    try:
        _wait_for(f"http://127.0.0.1:{gateway_port}/readyz", process)
        _wait_for(f"http://127.0.0.1:{dashboard_port}/_stcore/health", process)
        yield f"http://127.0.0.1:{dashboard_port}"
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.communicate(timeout=60)
        if process.poll() is None:
            process.kill()


def _wait_for(url: str, process: subprocess.Popen[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"whistleloop up ended: {process.stderr.read() if process.stderr else ''}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError(f"{url} never answered")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1800}, locale="zh-CN")
    opened = context.new_page()
    yield opened
    context.close()


def settled(page: Page) -> None:
    """Waits for the rerun an action started to finish: right after a click the app may still
    report the previous run as done, so give the rerun a moment to begin first."""
    page.wait_for_timeout(1500)
    page.wait_for_selector(READY, timeout=60_000)


def open_page(page: Page, url: str, title: str) -> None:
    page.goto(url)
    page.wait_for_selector(READY, timeout=60_000)
    page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
    page.wait_for_selector(READY, timeout=60_000)


def pick_first_case(page: Page, label: str, button: str | None) -> None:
    """Opens the page's first case (and presses its button), as an inspector would."""
    page.get_by_role("combobox", name=label).first.click()
    page.get_by_role("option").first.click()
    settled(page)
    if button is not None:
        page.get_by_role("button", name=button).click()
        settled(page)


def test_every_page_renders_in_chinese_without_errors(system: str, page: Page) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for path, stem, title_zh, _ in PAGES:
        open_page(page, f"{system}/{path}", title_zh)
        if stem in CASE_PICKERS:
            pick_first_case(page, *CASE_PICKERS[stem])
        assert page.locator(ERROR).count() == 0, f"{stem}: {page.locator(ERROR).first.inner_text()}"
        page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"), full_page=True)


def test_the_language_toggle_switches_every_page_to_english(system: str, page: Page) -> None:
    open_page(page, system, PAGES[0][2])
    page.get_by_text("English", exact=True).click()
    for path, stem, _, title_en in PAGES:
        if path:
            page.get_by_role("link", name=title_en).click()
        page.get_by_role("heading", name=title_en).first.wait_for(timeout=30_000)
        page.wait_for_selector(READY, timeout=60_000)
        assert page.locator(ERROR).count() == 0, stem
        page.screenshot(path=str(SCREENSHOTS / f"{stem}-en.png"), full_page=True)


def test_a_new_event_shows_on_the_command_centre_without_a_reload(system: str, page: Page) -> None:
    open_page(page, system, PAGES[0][2])
    metrics = page.locator('[data-testid="stMetricValue"]')
    metrics.first.wait_for(timeout=30_000)
    before = metrics.all_inner_texts()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    deadline = time.monotonic() + 60
    while metrics.all_inner_texts() == before:
        assert time.monotonic() < deadline, f"the counts never moved: {before}"
        page.wait_for_timeout(500)
    assert navigations == [], "the page was reloaded"
