"""The web console in a real headless Chromium (Debian's ``chromium``), driven by Playwright's Python package,
against a real ``sfai serve`` on a free loopback port.

Where /usr/bin/chromium or the playwright package is missing these tests skip with the reason printed, except
on CI (``CI`` set), where they fail: ``.ci/run`` installs chromium. Screenshots go to the test's tmp_path and
are copied to ``test-artifacts/console/`` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.db import Database
from tests.serving.helpers import make_tenant

CHROMIUM = "/usr/bin/chromium"
SFAI = str(Path(sys.executable).with_name("sfai"))
SECRET = "test-secret-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
ON_CI = bool(os.environ.get("CI"))


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return None


def _require_browser() -> None:
    problem = _missing()
    if problem:
        if ON_CI:
            pytest.fail(problem + " (CI must provide it: see .ci/run)")
        print(f"\nSKIP: {problem}")
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``sfai serve`` on a temp SFAI_HOME (SQLite) with two tenants: acme (every module) and bravo (two)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.url_db = f"sqlite:///{home / 'sfai.db'}"
        db = Database(self.url_db)
        try:
            self.acme = make_tenant(db, SECRET, "acme", modules=("quality", "maintenance", "energy", "scheduling"))
            self.bravo = make_tenant(db, SECRET, "bravo", modules=("scheduling", "maintenance"), ksic="C22")
        finally:
            db.dispose()
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
        env.update(SFAI_HOME=str(home), SFAI_DATABASE_URL=self.url_db, SFAI_ENVIRONMENT="test", SFAI_SECRET_KEY=SECRET)
        self.log = open(home / "server.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [SFAI, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited early: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("server did not become ready in 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    _require_browser()
    srv = Server(tmp_path_factory.mktemp("console-home"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.base + "/")
    yield pg
    ctx.close()
    assert not errors, errors


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    return path


def sign_in(page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#signin-btn")
    page.wait_for_selector("#app:not([hidden])")


def run_plan(page) -> None:
    page.click("#solve-btn")
    page.wait_for_selector("#gantt g.op")
    page.wait_for_function("!document.getElementById('solve-btn').disabled")


# ------------------------------------------------------------------------------------------------ tests
def test_sign_in_plan_and_explain_a_late_job(page, server, tmp_path):
    assert page.evaluate("document.documentElement.lang") == "ko"  # Korean first
    assert page.inner_text("#signin-btn") == "로그인"
    page.fill("#api-key", "sfai_kbad_key")
    page.click("#signin-btn")
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert page.is_visible("#signin")

    sign_in(page, server.acme.admin)
    assert page.evaluate("sessionStorage.getItem('sfai_key')") == server.acme.admin
    assert "acme" in page.inner_text("#tenant-badge")
    run_plan(page)
    bars = page.locator("#gantt g.op")
    assert bars.count() == 12  # six orders x (mould, trim)
    assert page.locator("#gantt rect.setup").count() >= 1
    assert page.locator("#gantt rect.downtime.maintenance").count() >= 1
    late = page.locator("#gantt g.op.late")
    assert late.count() >= 1
    assert page.inner_text("#sum-status") in ("OPTIMAL", "FEASIBLE")

    job = late.first.get_attribute("data-job")
    late.first.click()
    page.wait_for_selector("#late-explanation")
    text = page.inner_text("#late-explanation")
    assert job in text and "병목" in text  # "bottleneck", in Korean
    assert page.locator("#late-explanation ol.chain li").count() >= 1
    shot(page, tmp_path, "planner-late-job-ko")

    # zoom and pan change the view
    before = page.locator("#gantt g.op rect.body").first.get_attribute("width")
    page.click("#zoom-in")
    assert float(page.locator("#gantt g.op rect.body").first.get_attribute("width")) > float(before)
    page.click("#zoom-fit")

    page.click("#signout-btn")
    assert page.is_visible("#signin")
    assert page.evaluate("sessionStorage.getItem('sfai_key')") is None


def test_drag_pins_an_operation_and_replans(page, server, tmp_path):
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.admin)
    run_plan(page)
    page.click("#keep-copy")

    bar = page.locator('#gantt g.op[data-job="J-1001"][data-op="mould"]')
    start, end = int(bar.get_attribute("data-start")), int(bar.get_attribute("data-end"))
    box = page.locator('#gantt g.op[data-job="J-1001"][data-op="mould"] rect.body').bounding_box()
    scale = box["width"] / (end - start)
    rows = page.locator("#gantt text.machine-label")
    labels = [rows.nth(i).text_content() for i in range(rows.count())]
    target_row = page.locator("#gantt text.machine-label").nth(labels.index("IMM-02")).bounding_box()
    target_start = 300  # after the break on IMM-02: a feasible place for 100 minutes there
    x0, y0 = box["x"] + 5, box["y"] + box["height"] / 2
    x1 = x0 + (target_start - start) * scale
    y1 = target_row["y"] + target_row["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(x0 + (x1 - x0) * k / 10, y0 + (y1 - y0) * k / 10)
    page.mouse.up()

    pinned = page.locator('#gantt g.op[data-job="J-1001"][data-op="mould"][data-pinned="true"]')
    pinned.wait_for()
    page.wait_for_function("!document.getElementById('solve-btn').disabled")
    assert pinned.get_attribute("data-machine") == "IMM-02"
    assert abs(int(pinned.get_attribute("data-start")) - target_start) <= 2
    assert page.locator("#gantt g.op.pinned circle.pin").count() == 1
    assert "J-1001 / mould → IMM-02" in page.inner_text("#pins")

    # the what-if copy is compared side by side with the re-planned current plan
    page.wait_for_selector("#compare-table")
    assert page.locator("#compare-table tbody tr").count() == 6
    assert page.locator("#gantt-copy g.op").count() == 12 and page.locator("#gantt-current g.op").count() == 12
    shot(page, tmp_path, "planner-pinned-whatif-en")

    with page.expect_download() as dl:
        page.click("#export-csv")
    csv = Path(dl.value.path()).read_text()
    assert csv.splitlines()[0] == "machine,job,operation,start,end,setup,late,pinned"
    assert "IMM-02,J-1001,mould" in csv and ",true" in csv
    with page.expect_download() as dl:
        page.click("#export-png")
    png = Path(dl.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    (tmp_path / "gantt.png").write_bytes(png)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "gantt.png", ARTIFACTS / "gantt-export.png")

    # unpinning re-plans without the pin
    page.click('#pins button[data-unpin-job="J-1001"]')
    page.wait_for_selector('#gantt g.op[data-job="J-1001"][data-op="mould"][data-pinned="false"]')


def test_switch_language_is_remembered(page, server):
    sign_in(page, server.acme.admin)
    assert page.inner_text("#tab-planner") == "생산계획"
    page.select_option("#lang-select", "en")
    assert page.inner_text("#tab-planner") == "Planner"
    assert page.evaluate("document.documentElement.lang") == "en"
    page.reload()
    page.wait_for_selector("#app:not([hidden])")  # the key survives a reload of the tab
    assert page.inner_text("#tab-dashboard") == "Factory dashboard"
    page.select_option("#lang-select", "ko")
    assert page.inner_text("#tab-admin") == "관리"


def test_accessibility_labels_buttons_and_keyboard(page, server, tmp_path):
    sign_in(page, server.acme.admin)
    run_plan(page)
    page.click("#tab-admin")
    page.wait_for_selector("#keys-table tbody tr")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')].filter((el) => {
        if (el.type === 'hidden') return false;
        const byFor = el.id && document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
        return !(byFor || el.getAttribute('aria-label') || el.closest('label'));
      }).map((el) => el.id || el.outerHTML.slice(0, 80))""")
    assert unlabelled == []
    # everything clickable is a <button> (links only navigate)
    assert page.evaluate("[...document.querySelectorAll('[onclick], [role=button]:not(g)')].length") == 0
    assert page.locator("[role=status][aria-live=polite]").count() == 1

    # tabs are reachable and switch with the arrow keys
    page.focus("#tab-admin")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("document.activeElement.id") == "tab-dashboard"
    assert page.get_attribute("#tab-dashboard", "aria-selected") == "true"
    assert page.is_visible("#panel-dashboard") and not page.is_visible("#panel-admin")
    page.keyboard.press("Home")
    assert page.evaluate("document.activeElement.id") == "tab-planner"
    # keyboard focus is visible
    page.keyboard.press("Tab")
    style = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert style not in ("none", ""), style
    # a Gantt bar is reachable by keyboard and Enter opens its details
    page.focus("#gantt g.op.late")
    page.keyboard.press("Enter")
    page.wait_for_selector("#late-explanation")
    shot(page, tmp_path, "planner-keyboard")


def test_dashboard_and_administration(page, server, tmp_path):
    page.on("dialog", lambda d: d.accept())
    page.select_option("#lang-select", "en")
    sign_in(page, server.bravo.admin)  # subscribed to scheduling and maintenance, no trained model
    page.click("#tab-dashboard")
    page.wait_for_selector("#dash-maintenance .warn")
    assert "No model yet" in page.inner_text("#dash-maintenance")
    quality = page.inner_text("#dash-quality")
    assert "not subscribed" in quality and "Subscribing adds" in quality
    assert page.locator("#dash-energy.off").count() == 1
    shot(page, tmp_path, "dashboard-en")

    page.click("#tab-admin")
    page.wait_for_selector("#subs-table tbody tr")
    assert page.locator("#subs-table tbody tr").count() == 2
    page.fill("#key-name", "line-3")
    page.select_option("#key-role", "planner")
    page.click("#key-create")
    page.wait_for_selector("#new-key:not([hidden])")
    new_key = page.input_value("#new-key-value")
    assert new_key.startswith("sfai_")
    row = page.locator("#keys-table tbody tr", has_text="line-3")
    row.wait_for()
    key_id = row.get_attribute("data-key")
    assert httpx.get(server.base + "/v1/tenant", headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
    page.click(f'#keys-table button[data-revoke="{key_id}"]')
    page.wait_for_selector(f'#keys-table tr[data-key="{key_id}"] >> text=Revoke', state="detached")
    assert httpx.get(server.base + "/v1/tenant", headers={"Authorization": f"Bearer {new_key}"}).status_code == 401

    page.select_option("#usage-module", "maintenance")
    page.click("#usage-apply")
    # the unfiltered rows are on the page already: wait until the filtered answer has replaced them
    page.wait_for_function(
        """() => { const c = [...document.querySelectorAll('#usage-table tbody tr td:nth-child(3)')];
                  return c.length > 0 && c.every(td => td.innerText.trim() === 'maintenance'); }"""
    )
    mods = page.locator("#usage-table tbody tr td:nth-child(3)").all_inner_texts()
    assert mods and set(mods) == {"maintenance"}
    with page.expect_download() as dl:
        page.click("#usage-export")
    assert Path(dl.value.path()).read_text().splitlines()[0].startswith("seq,")
    shot(page, tmp_path, "admin-en")

    # a non-admin key sees why administration is closed, not an error
    page.click("#signout-btn")
    sign_in(page, server.bravo.mes)
    page.click("#tab-admin")
    assert page.is_visible("#admin-denied") and "admin" in page.inner_text("#admin-denied")
