"""The web console in a real headless Chromium (Debian's ``chromium``), driven by Playwright's Python package,
against a real ``sfai serve`` on a free loopback port.

Where /usr/bin/chromium or the playwright package is missing these tests skip with the reason printed, except
on CI (``CI`` set), where they fail: ``.ci/run`` installs chromium. Screenshots go to the test's tmp_path and
are copied to ``test-artifacts/console/`` (git-ignored).
"""

from __future__ import annotations

import csv as csv_module
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.db import Database
from serving.settings import Settings
from tests.serving.helpers import bearer, make_tenant

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
    # console errors too, except the browser's own line for an HTTP error answer (which the tests provoke)
    pg.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
          and errors.append(m.text))
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


def wait_js(page, expression: str, timeout: float = 20.0) -> None:
    """Wait until ``expression`` is truthy in the page. Polled from here with ``page.evaluate``, which the
    console's Content-Security-Policy allows; Playwright's ``wait_for_function`` evaluates a string inside the
    page, which that policy (no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:.0f} s: {expression}")
        time.sleep(0.05)


def run_plan(page) -> None:
    page.click("#solve-btn")
    page.wait_for_selector("#gantt g.op")
    wait_js(page, "!document.getElementById('solve-btn').disabled")


def check_pdf(data: bytes) -> tuple[int, int]:
    """A well-formed one-image PDF (header, cross-reference table, image XObject drawn by the page): the image's
    (width, height). A Flate image is decoded and must hold the chart, not a blank page."""
    assert data.startswith(b"%PDF-1.") and data.rstrip().endswith(b"%%EOF")
    start = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", data).group(1))
    head = re.match(rb"xref\n0 (\d+)\n", data[start:])
    assert head, data[start:start + 40]
    table = data[start + head.end():]
    for k in range(1, int(head.group(1))):
        offset = int(table[k * 20:k * 20 + 10])
        assert data[offset:].startswith(f"{k} 0 obj".encode()), k
    assert re.search(rb"/Type /Catalog /Pages 2 0 R", data) and b"/Im0 Do" in data
    img = re.search(rb"/Subtype /Image /Width (\d+) /Height (\d+) .*?/Filter /(\w+) /Length (\d+) >>\nstream\n", data)
    assert img, "no image XObject"
    w, h, length = int(img.group(1)), int(img.group(2)), int(img.group(4))
    stream = data[img.end():img.end() + length]
    assert data[img.end() + length:].startswith(b"\nendstream")
    if img.group(3) == b"FlateDecode":
        pixels = zlib.decompress(stream)
        assert len(pixels) == w * h * 3
        assert sum(1 for b in pixels[::97] if b < 200) > 200  # bars and text, not a white page
    else:
        assert img.group(3) == b"DCTDecode" and stream[:2] == b"\xff\xd8"
    return w, h


def pdf_image(data: bytes) -> tuple[int, int, bytes]:
    """The (width, height, RGB bytes) of a PDF's Flate-compressed image (check_pdf first)."""
    img = re.search(rb"/Subtype /Image /Width (\d+) /Height (\d+) .*?/Filter /FlateDecode /Length (\d+) >>\nstream\n",
                    data)
    assert img, "not a Flate image"
    w, h, length = int(img.group(1)), int(img.group(2)), int(img.group(3))
    return w, h, zlib.decompress(data[img.end():img.end() + length])


def _pixel(pixels: bytes, w: int, x: int, y: int) -> tuple[int, int, int]:
    i = 3 * (y * w + x)
    return pixels[i], pixels[i + 1], pixels[i + 2]


def _near(rgb: tuple[int, int, int], want: tuple[int, int, int], tol: int = 30) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(rgb, want, strict=True))


def _swatch_stripes(pixels: bytes, w: int, h: int, x0: int, colour: tuple[int, int, int]) -> int:
    """Pixels of `colour` inside a PDF legend swatch (36 x 22 px from x0, its top 48 px above the page's foot), its
    border left out: the hatching's stripes, none for a plain fill."""
    return sum(_near(_pixel(pixels, w, x, y), colour) for x in range(x0 + 4, x0 + 32) for y in range(h - 44, h - 30))


# ------------------------------------------------------------------------------------------------ tests
def test_sign_in_plan_and_explain_a_late_job(page, server, tmp_path):
    assert page.evaluate("document.documentElement.lang") == "ko"  # Korean first
    assert page.inner_text("#signin-btn") == "로그인"
    page.fill("#api-key", "sfai_kbad_key")
    page.click("#signin-btn")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    assert page.is_visible("#signin")
    assert "API 키가 올바르지 않거나" in page.inner_text("#status")  # in Korean, not the API's English message

    sign_in(page, server.acme.admin)
    assert page.evaluate("sessionStorage.getItem('sfai_key')") == server.acme.admin
    assert "acme" in page.inner_text("#tenant-badge")
    run_plan(page)
    bars = page.locator("#gantt g.op")
    assert bars.count() == 12  # six orders x (mould, trim)
    assert page.locator("#gantt rect.setup").count() >= 1
    # each changeover is drawn where the answer says it lies (setup_start: in working time), not just before its
    # bar: the sample's lunch break held one before
    starts = page.eval_on_selector_all("#gantt rect.setup", "els => els.map(e => e.dataset.start)")
    drawn = sorted(int(v) for v in starts)
    said = sorted(page.evaluate("S.result.gantt.filter(r => r.setup > 0).map(r => r.setup_start)"))
    assert drawn == said and all(isinstance(v, int) for v in said)
    assert page.locator("#gantt rect.downtime.maintenance").count() >= 1
    late = page.locator("#gantt g.op.late")
    assert late.count() >= 1
    assert page.get_attribute("#sum-status", "data-status") in ("OPTIMAL", "FEASIBLE")
    assert page.inner_text("#sum-status") in ("최적", "실행 가능 (최적 미확인)")  # in words, not the solver's code
    # the sample plan has a tariff and power: its energy cost and peak are figures
    assert float(page.inner_text('#plan-summary [data-metric="m.peak"]').replace(",", "")) > 0
    assert float(page.inner_text('#plan-summary [data-metric="m.energyCost"]').replace(",", "")) > 0

    job = late.first.get_attribute("data-job")
    late.first.click()
    page.wait_for_selector("#late-explanation")
    text = page.inner_text("#late-explanation")
    assert job in text and "병목" in text  # "bottleneck", in Korean
    assert page.locator("#late-explanation ol.chain li").count() >= 1
    shot(page, tmp_path, "planner-late-job-ko")
    # a late job past the 50 the server explains was said to be on time; it is now said late, with its figures
    page.evaluate("S.result.late_jobs = []")
    late.first.click()
    wait_js(page, "!document.getElementById('late-explanation')")
    said = page.inner_text("#details-body p.late-tag")
    assert said.startswith("이 작업은 납기") and "50건까지만" in said and "지킵니다" not in said, said
    page.evaluate("renderDetails()")

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
    wait_js(page, "!document.getElementById('solve-btn').disabled")
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
    raw = Path(dl.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # a byte-order mark: Excel then reads Korean names as UTF-8
    csv = raw.decode("utf-8-sig")
    assert csv.splitlines()[0] == ("machine,job,operation,start,end,setup,late,pinned,job_late,started,started_at,"
                                   "reason,setup_start,due,family")
    assert "IMM-02,J-1001,mould" in csv and ",true" in csv
    rows = list(csv_module.DictReader(io.StringIO(csv)))
    dues = {str(j["id"]): j.get("due") for j in page.evaluate("S.solved.jobs")}
    assert all(r["due"] == str(dues[r["job"]] if dues[r["job"]] is not None else "") for r in rows if r["job"])
    assert all(r["setup_start"] for r in rows if r["job"] and int(r["setup"]) > 0)
    # a text cell that starts like a formula is kept as text; numbers (a running operation's -10) stay numbers
    cells = page.evaluate("""[csvCell('=HYPERLINK("x")', true), csvCell('@cmd', true), csvCell(-10, false),
                               csvCell('a,b', true), csvCell('주문-1001', true)]""")
    assert cells == ["\"'=HYPERLINK(\"\"x\"\")\"", "'@cmd", "-10", '"a,b"', "주문-1001"], cells
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
    assert "(역할: 관리자)" in page.inner_text("#status") and "역할 관리자" in page.inner_text("#tenant-badge")
    page.select_option("#lang-select", "en")
    assert page.inner_text("#tab-planner") == "Planner"
    # the status line is re-rendered in the new language, not left in the old one until the next message
    assert page.inner_text("#status").startswith("Signed in") and "Administrator" in page.inner_text("#status")
    assert page.get_attribute("#tenant-badge", "data-role") == "admin"
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
    assert "No model yet: train one with sfai train failure." in page.inner_text("#dash-maintenance")
    quality = page.inner_text("#dash-quality")
    assert "not subscribed" in quality and "Subscribing adds" in quality
    assert page.locator("#dash-energy.off").count() == 1
    shot(page, tmp_path, "dashboard-en")

    page.click("#tab-admin")
    page.wait_for_selector("#subs-table tbody tr")
    assert page.locator("#subs-table tbody tr").count() == 2
    # API identifiers in words, the identifier kept in a data- attribute and the tooltip
    cell = page.locator('#subs-table td[data-module="maintenance"]')
    assert cell.inner_text() == "Maintenance" and cell.get_attribute("title") == "maintenance"
    plan = page.locator('#subs-table tr[data-module="maintenance"] td[data-plan]')
    assert plan.inner_text() == "Standard" and plan.get_attribute("data-plan") == "standard"
    assert page.locator('#keys-table td[data-role="mes"]').first.inner_text() == "MES integration"
    assert page.locator('#key-role option[value="scientist"]').inner_text() == "Data scientist"
    page.fill("#key-name", "line-3")
    page.select_option("#key-role", "planner")
    page.click("#key-create")
    page.wait_for_selector("#new-key:not([hidden])")
    new_key = page.input_value("#new-key-value")
    assert new_key.startswith("sfai_")
    row = page.locator("#keys-table tbody tr", has_text="line-3")
    row.wait_for()
    key_id = row.get_attribute("data-key")
    assert row.locator("td[data-role]").inner_text() == "Planner"
    assert httpx.get(server.base + "/v1/tenant", headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
    page.click(f'#keys-table button[data-revoke="{key_id}"]')
    # its revoke button goes (the row stays, its state "Revoked")
    page.wait_for_selector(f'#keys-table tr[data-key="{key_id}"] button[data-revoke]', state="detached")
    assert httpx.get(server.base + "/v1/tenant", headers={"Authorization": f"Bearer {new_key}"}).status_code == 401

    # unsubscribing asks first, like revoking a key
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    page.select_option("#sub-module", "energy")
    page.click("#sub-create")
    page.click('#subs-table button[data-unsub="energy"]')
    page.locator('#subs-table button[data-unsub="energy"]').wait_for(state="detached")
    assert any("Unsubscribe from Energy?" in m for m in dialogs), dialogs
    # the subscriptions in force come first, the ended one below them, greyed; the times say they are UTC (an admin in
    # Korea had read them as local time; tenant-admin audit)
    rows = page.locator("#subs-table tbody tr")
    assert [rows.nth(i).get_attribute("class") for i in range(rows.count())] == [None, None, "ended"]
    assert rows.nth(2).get_attribute("data-module") == "energy"
    heads = page.locator("#subs-table th").all_inner_texts() + page.locator("#keys-table th").all_inner_texts()
    assert {"Starts (UTC)", "Ends (UTC)", "Created (UTC)", "Revoked (UTC)"} <= set(heads), heads

    # the admin calls just made are named as the counts name them (the record's module is null)
    page.select_option("#usage-module", "platform")
    page.click("#usage-apply")
    wait_js(page,
        """() => { const c = [...document.querySelectorAll('#usage-table tbody tr td:nth-child(3)')];
                  return c.length > 0 && c.every(td => td.dataset.module === 'platform'); }"""
    )
    assert set(page.locator("#usage-table tbody tr td:nth-child(3)").all_inner_texts()) == {"Platform (admin, ingest)"}
    assert "Platform (admin, ingest)" in page.inner_text("#usage-summary")
    page.select_option("#usage-module", "maintenance")
    page.click("#usage-apply")
    # the unfiltered rows are on the page already: wait until the filtered answer has replaced them
    wait_js(page,
        """() => { const c = [...document.querySelectorAll('#usage-table tbody tr td:nth-child(3)')];
                  return c.length > 0 && c.every(td => td.dataset.module === 'maintenance'); }"""
    )
    mods = page.locator("#usage-table tbody tr td:nth-child(3)").all_inner_texts()
    assert mods and set(mods) == {"Maintenance"}
    assert "client errors" in page.inner_text("#usage-summary") and "Maintenance" in page.inner_text("#usage-summary")
    with page.expect_download() as dl:
        page.click("#usage-export")
    exported = list(csv_module.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert exported and {r["module"] for r in exported} == {"maintenance"}  # the module filter holds for the export
    assert dl.value.suggested_filename == "sfai-usage-bravo-maintenance.csv"
    page.select_option("#usage-module", "platform")
    with page.expect_download() as dl:
        page.click("#usage-export")
    exported = list(csv_module.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert exported and {r["module"] for r in exported} == {""}
    shot(page, tmp_path, "admin-en")

    # dates the wrong way round: refused in the page, in words, before anything is sent
    asked: list[str] = []
    page.on("request", lambda r: "/v1/usage" in r.url and asked.append(r.url))
    page.fill("#usage-from", "2026-03-01")
    page.fill("#usage-to", "2026-02-01")
    page.click("#usage-apply")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    assert "The end date must be after the start date" in page.inner_text("#status")
    assert page.get_attribute("#usage-to", "aria-invalid") == "true" and page.is_visible("#usage-range-error")
    page.click("#usage-export")
    assert not asked
    page.fill("#usage-to", "2026-03-02")
    page.click("#usage-apply")
    wait_js(page, "!document.getElementById('usage-apply').disabled")
    assert asked and page.get_attribute("#usage-to", "aria-invalid") is None and page.is_hidden("#usage-range-error")

    # revoking the key the console is signed in with (★) says first that it signs out, then signs out cleanly
    own = httpx.post(server.base + "/v1/apikeys", json={"role": "admin", "name": "own"},
                     headers=bearer(server.bravo.admin))
    page.click("#signout-btn")
    sign_in(page, own.json()["api_key"])
    page.click("#tab-admin")
    button = page.locator(f'#keys-table tr.own button[data-own="true"][data-revoke="{own.json()["key_id"]}"]')
    assert "signs you out" in button.inner_text()
    assert page.locator("#keys-table button[data-own]").count() == 1
    dialogs.clear()
    button.click()
    page.wait_for_selector("#signin:not([hidden])")
    assert "the key you are signed in with" in dialogs[-1] and "signs this console out" in dialogs[-1], dialogs
    assert "and signed out" in page.inner_text("#status")
    assert page.get_attribute("#status", "class") == "status"  # a message, not an error
    assert page.evaluate("sessionStorage.getItem('sfai_key')") is None and page.is_hidden("#signout-btn")

    # a non-admin key sees why administration is closed, not an error
    sign_in(page, server.bravo.mes)
    page.click("#tab-admin")
    assert page.is_visible("#admin-denied") and "admin" in page.inner_text("#admin-denied")


@pytest.fixture(scope="module")
def charlie(server):
    """A tenant with every module and the demo models trained for it, as ``sfai demo`` does (models/demo.py's
    ``train_demo_models``, the quick configs tests/models/test_demo_models.py uses: a few seconds)."""
    from models.demo import TrainingUnavailable, train_demo_models

    settings = Settings(home=server.home, database_url=server.url_db, environment="test", secret_key=SECRET)
    db = Database(settings.resolved_database_url)
    try:
        modules = ("quality", "maintenance", "energy", "scheduling")
        keys = make_tenant(db, SECRET, "charlie", modules=modules, ksic="C22")
        try:
            trained = train_demo_models(settings, db, "charlie", progress=False)
        except TrainingUnavailable as e:
            if ON_CI:
                pytest.fail(str(e))
            print(f"\nSKIP: {e}")
            pytest.skip(str(e))
    finally:
        db.dispose()
    assert {m.family for m in trained} == {"failure", "rul", "defect", "energy"}
    return keys


def test_an_empty_plan_started_while_the_sample_loads_stays_empty(page, server):
    """Signing in loads the sample plan; a planner who starts an empty plan before it arrives keeps the empty one."""
    held = []
    # the sample's answer waits until released below
    page.route("**/static/sample-plan.json", lambda route: held.append(route))
    sign_in(page, server.acme.mes)
    page.click("#new-plan")
    wait_js(page, "document.activeElement.id === 'of-job'")
    assert held, "the console did not ask for the sample plan"
    for route in held:
        route.continue_()
    page.unroute("**/static/sample-plan.json")
    page.wait_for_load_state("networkidle")
    assert page.locator("#orders-table tbody tr").count() == 0


def test_solve_clicked_while_the_sample_loads_waits_for_it(page, server):
    """A planner who clicks Solve as soon as the page shows, before the sample plan has come, gets its plan: the
    click waits for the sample (it had said there were no orders and drawn nothing)."""
    held = []
    page.route("**/static/sample-plan.json", lambda route: held.append(route))
    sign_in(page, server.acme.mes)
    page.click("#solve-btn")
    assert held, "the console did not ask for the sample plan"
    assert page.locator("#gantt g.op").count() == 0
    for route in held:
        route.continue_()
    page.unroute("**/static/sample-plan.json")
    page.wait_for_selector("#gantt g.op")
    assert page.get_attribute("#status", "class") == "status"
    assert page.locator("#orders-table tbody tr").count() == len(page.evaluate("S.problem.jobs")) > 0


def test_a_request_file_keeps_its_maintenance_and_energy_links(page, server):
    """A request file (``{"problem", "maintenance", "energy_forecast", ...}``, as the API takes it) loaded in the
    planner kept only its problem: the plan came back without the failure-risk windows and nothing said so
    (planner audit). Its link fields now go with each solve, also after a reload, and the status line says so; a
    file of orders alone sends none."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.admin)
    page.wait_for_selector("#gantt .gantt-empty")
    sent: list[dict] = []

    def forward(route) -> None:  # noqa: ANN001 - what the console sends; solved without the link (no model here)
        body = json.loads(route.request.post_data)
        sent.append(dict(body))
        body.pop("maintenance", None)
        route.continue_(post_data=json.dumps(body))

    page.route("**/v1/scheduling/solve", forward)
    problem = {"name": "linked", "machines": ["M1", "M2"], "jobs": [
        {"id": "J1", "operations": [{"id": "a", "machines": {"M1": 5, "M2": 7}}]}],
        "failure_risk": {"threshold": 0.5}}
    maintenance = {"machines": {"M1": {"Type": "L", "Air temperature [K]": 300.0, "Process temperature [K]": 310.0,
                                       "Rotational speed [rpm]": 1400, "Torque [Nm]": 40.0, "Tool wear [min]": 10}}}
    doc = {"problem": problem, "maintenance": maintenance, "time_limit_s": 2}
    page.set_input_files("#orders-file", {"name": "request.json", "mimeType": "application/json",
                                          "buffer": json.dumps(doc).encode()})
    wait_js(page, "S.problem.name === 'linked'")
    assert page.inner_text("#status") == ("Loaded 1 order, 1 operation, 2 machines. The file's maintenance go with "
                                          "each solve of these orders.")
    run_plan(page)
    assert sent[-1]["maintenance"] == maintenance and "energy_forecast" not in sent[-1]
    # what the tab keeps is read back as link fields only (another key there is not sent)
    page.evaluate("""() => { const d = JSON.parse(sessionStorage.getItem('sfai_plan'));
        d.links.time_limit_s = 3600; d.links.tenant = 'other';
        sessionStorage.setItem('sfai_plan', JSON.stringify(d)); }""")
    page.reload()
    page.wait_for_selector("#app:not([hidden])")
    wait_js(page, "S.problem && S.problem.name === 'linked'")
    run_plan(page)
    assert sent[-1]["maintenance"] == maintenance  # kept with the orders in the tab
    assert sent[-1]["time_limit_s"] != 3600 and "tenant" not in sent[-1]
    page.set_input_files("#orders-file", {"name": "orders.json", "mimeType": "application/json",
                                          "buffer": json.dumps(problem).encode()})
    run_plan(page)
    assert "maintenance" not in sent[-1]


def test_order_entry_form_adds_edits_and_removes_orders(page, server, tmp_path):
    page.on("dialog", lambda d: d.accept())
    sign_in(page, server.acme.mes)
    page.click("#new-plan")  # an empty plan: orders come from the form only
    assert page.is_visible("#of-job") and page.evaluate("document.activeElement.id") == "of-job"
    assert page.locator("#orders-table tbody tr").count() == 0

    # validation, in Korean first: nothing filled in
    page.click("#of-submit")
    errors = page.locator("#order-errors")
    errors.wait_for()
    text = errors.inner_text()
    assert "작업 ID를 입력하세요." in text and "소요 시간은 1 이상의 정수" in text
    assert page.get_attribute("#of-job", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "of-job"  # focus on the first problem
    shot(page, tmp_path, "planner-order-errors-ko")
    page.select_option("#lang-select", "en")  # the messages follow the language
    assert "Enter a job id." in errors.inner_text()

    # an order with two operations; the first can run on either of two machines
    page.fill("#of-job", "PO-1")
    page.fill("#of-due", "100")
    page.fill("#of-weight", "2")
    page.fill("#of-op-0-id", "cut")
    page.fill("#of-op-0-m-0", "SAW-01")
    page.fill("#of-op-0-d-0", "30")
    page.click("#of-op-0-add-alt")
    assert page.evaluate("document.activeElement.id") == "of-op-0-m-1"
    page.fill("#of-op-0-m-1", "SAW-02")
    page.fill("#of-op-0-d-1", "40")
    page.click("#of-add-op")
    page.fill("#of-op-1-id", "weld")
    page.fill("#of-op-1-m-0", "WELD-01")
    page.fill("#of-op-1-d-0", "20")
    page.fill("#of-op-1-power", "12.5")
    page.press("#of-op-1-d-0", "Enter")  # the keyboard submits the form
    row = page.locator('#orders-table tbody tr[data-job="PO-1"]')
    row.wait_for()
    assert "cut (SAW-01:30 / SAW-02:40) → weld (WELD-01:20)" in row.inner_text()
    assert errors.is_hidden() and "Added order PO-1" in page.inner_text("#status")

    # a second order: duplicate id, zero duration and a machine listed twice are refused with clear messages
    page.fill("#of-job", "PO-1")
    page.fill("#of-op-0-id", "cut")
    page.fill("#of-op-0-m-0", "SAW-01")
    page.fill("#of-op-0-d-0", "0")
    page.click("#of-op-0-add-alt")
    page.fill("#of-op-0-m-1", "SAW-01")
    page.fill("#of-op-0-d-1", "25")
    page.click("#of-submit")
    text = errors.inner_text()
    assert "Please fix 3 problems:" in text
    assert "Job PO-1 already exists" in text
    assert "Operation 1, machine SAW-01: the duration must be a whole number of minutes, 1 or more." in text
    assert "Operation 1: machine SAW-01 is listed twice." in text
    page.fill("#of-job", "PO-2")
    page.fill("#of-op-0-d-0", "45")
    page.click('#of-ops button[data-remove-alt="0:1"]')
    page.click("#of-submit")
    page.locator('#orders-table tbody tr[data-job="PO-2"]').wait_for()

    # edit PO-1: the form is filled from the order; drop the second saw and move the due date
    page.click('#orders-table button[aria-label="Edit order PO-1"]')
    assert page.input_value("#of-job") == "PO-1" and page.input_value("#of-op-0-m-1") == "SAW-02"
    assert page.input_value("#of-op-1-power") == "12.5"
    assert page.inner_text("#order-entry-summary") == "Edit order PO-1"
    page.fill("#of-due", "50")
    page.click('#of-ops button[data-remove-alt="0:1"]')
    page.click("#of-submit")
    wait_js(page,
        "document.querySelector('#orders-table tr[data-job=\"PO-1\"]').innerText.includes('cut (SAW-01:30) → weld')")
    assert page.input_value('#orders-table input[data-field="due"][data-job="0"]') == "50"
    assert page.inner_text("#order-entry-summary") == "Add order"

    # remove PO-2 (after a confirmation), then plan what is left
    page.click('#orders-table button[aria-label="Remove order PO-2"]')
    page.locator('#orders-table tbody tr[data-job="PO-2"]').wait_for(state="detached")
    assert page.locator("#orders-table tbody tr").count() == 1
    run_plan(page)
    assert page.locator("#gantt g.op").count() == 2
    labels = page.locator("#gantt text.machine-label").all_text_contents()
    assert {"SAW-01", "WELD-01"} <= set(labels)
    assert page.get_attribute('#gantt g.op[data-job="PO-1"][data-op="weld"]', "data-start") == "30"
    assert page.is_hidden("#plan-stale")
    # orders with no energy settings: no energy cost or peak, not 0
    assert page.inner_text('#plan-summary [data-metric="m.energyCost"]') == "–"
    assert page.inner_text('#plan-summary [data-metric="m.peak"]') == "–"

    # editing the orders after a solve marks the plan on screen as out of date until the next solve
    page.fill('#orders-table input[data-field="due"][data-job="0"]', "10")
    page.press('#orders-table input[data-field="due"][data-job="0"]', "Tab")
    assert page.is_visible("#plan-stale") and "orders have changed" in page.inner_text("#plan-stale")
    assert "stale" in page.get_attribute("#gantt", "class")
    assert float(page.evaluate("getComputedStyle(document.querySelector('#gantt svg')).opacity")) < 1
    shot(page, tmp_path, "planner-stale-en")
    with page.expect_download() as dl:
        page.click("#export-csv")
    assert dl.value.suggested_filename == "sfai-plan-orders-outdated.csv"  # the last solved plan, labelled
    assert "made before the orders changed" in page.inner_text("#status")
    run_plan(page)
    wait_js(page, "document.getElementById('plan-stale').hidden")
    assert "stale" not in page.get_attribute("#gantt", "class")
    shot(page, tmp_path, "planner-order-form-en")


def test_objectives_background_job_and_pdf_export(page, server, tmp_path):
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.mes)
    calls: list[tuple[str, str, dict | None]] = []

    def record(req) -> None:
        if "/v1/scheduling/" in req.url:
            body = json.loads(req.post_data) if req.post_data else None
            calls.append((req.method, req.url.split("/v1/scheduling/")[1], body))

    page.on("request", record)
    values = page.eval_on_selector_all("#objective option", "os => os.map(o => o.value)")
    assert values == ["", "makespan", "tardiness", "energy", "weighted", "lex"]
    assert page.eval_on_selector_all("#objective optgroup", "gs => gs.map(g => g.label)") == [
        "Single objective", "Combined objectives"]

    # a weighted combination, solved synchronously
    assert page.is_hidden("#objective-weights") and page.is_hidden("#objective-order")
    page.select_option("#objective", "weighted")
    assert "weights below" in page.inner_text("#objective-help") and page.is_visible("#objective-weights")
    assert page.is_hidden("#objective-order")
    page.fill("#w-makespan", "-1")  # refused in the page, nothing sent
    page.click("#solve-btn")
    assert "makespan weight must be a number of 0 or more" in page.inner_text("#status").lower()
    assert not [c for c in calls if c[0] == "POST"]
    page.fill("#w-makespan", "0.5")
    page.fill("#time-limit", "2")
    run_plan(page)
    assert calls[-1][:2] == ("POST", "solve")
    assert calls[-1][2]["objective"] == "weighted" and calls[-1][2]["time_limit_s"] == 2
    assert calls[-1][2]["weights"] == {"tardiness": 1, "makespan": 0.5, "energy": 1}
    assert page.get_attribute("#sum-objective", "data-objective") == "weighted"
    assert page.is_hidden("#job-line")

    # lexicographic with a limit over 30 s: a background job, polled until done (the sample proves optimal at once)
    page.select_option("#objective", "lex")
    assert page.is_visible("#objective-order") and page.is_hidden("#objective-weights")
    page.select_option("#lex-3", "energy")
    page.fill("#time-limit", "40")
    page.evaluate("""() => { window.jobTexts = [];
        new MutationObserver(() => window.jobTexts.push(document.getElementById('job-line').dataset.state + ': '
          + document.getElementById('job-text').textContent))
          .observe(document.getElementById('job-line'), {attributes: true, childList: true, subtree: true}); }""")
    calls.clear()
    page.click("#solve-btn")
    # the sample proves optimal at once on an idle machine; on a busy one the job may run to its 40 s limit
    page.wait_for_selector('#job-line[data-state="done"]', timeout=60_000)
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    assert page.get_attribute("#sum-objective", "data-objective") == "lex"
    assert page.locator("#gantt g.op").count() == 12
    posts = [c for c in calls if c[0] == "POST"]
    assert [c[1] for c in posts] == ["jobs"]  # never the synchronous endpoint
    assert posts[0][2]["objective"] == "lex" and posts[0][2]["time_limit_s"] == 40
    assert posts[0][2]["order"] == ["tardiness", "makespan", "energy"]
    job_id = page.get_attribute("#job-line", "data-job")
    polls = [c for c in calls if c[0] == "GET"]
    assert polls and all(c[1] == f"jobs/{job_id}" for c in polls)
    texts = page.evaluate("window.jobTexts")
    progress = r"(queued|running): Job \w{8}: (queued|running) · \d+ s elapsed of a 40 s limit"
    assert any(re.match(progress, x) for x in texts), texts
    assert re.search(r"Job \w{8}: done · took \d+ s", page.inner_text("#job-line"))
    assert page.get_attribute("#job-progress", "value") == "100"
    assert "Plan ready" in page.inner_text("#status")
    shot(page, tmp_path, "planner-lex-job-en")

    # PDF export next to PNG: one page with the chart and the plan summary as an image
    buttons = page.locator("#export-png ~ button").all_inner_texts()
    assert buttons[0] == "Export Gantt PDF"
    with page.expect_download() as dl:
        page.click("#export-pdf")
    assert dl.value.suggested_filename == "sfai-gantt-sample-moulding-line.pdf"
    pdf = Path(dl.value.path()).read_bytes()
    w, h = check_pdf(pdf)
    assert w > 1000 and h > 300
    # the legend's setup and maintenance swatches are hatched as the chart draws them, not plain fills (a plain
    # grey setup swatch read as "break / off")
    _, _, pixels = pdf_image(pdf)
    setup_x = 32  # planReport: 16 px padding at twice the size; the first swatch
    assert _swatch_stripes(pixels, w, h, setup_x, (0x9A, 0xA5, 0xB1)) > 20
    maint_x = next(x for x in range(setup_x + 40, w) if _near(_pixel(pixels, w, x, h - 37), (0xE0, 0x7B, 0x00)))
    assert _swatch_stripes(pixels, w, h, maint_x, (0xE0, 0x7B, 0x00)) > 20
    (tmp_path / "gantt.pdf").write_bytes(pdf)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "gantt.pdf", ARTIFACTS / "gantt-export.pdf")
    assert "Exported sfai-gantt-sample-moulding-line.pdf" in page.inner_text("#status")


def test_dashboard_with_trained_models(page, server, charlie, tmp_path):
    page.select_option("#lang-select", "en")
    sign_in(page, charlie.admin)
    page.click("#tab-dashboard")
    for sel in ("#failure-rank tbody tr", "#rul-rank tbody tr", "#defect-table tbody tr", "#energy-chart"):
        page.wait_for_selector(sel)
    assert page.locator("#dash-cards .warn").count() == 0  # every module has its model

    # maintenance: machines ranked by failure risk (highest first), units by remaining useful life (lowest first)
    maint = page.inner_text("#dash-maintenance")
    assert "Machines ranked by failure risk" in maint and "this tenant's demo data" in maint
    cells = page.locator("#failure-rank tbody td:nth-child(3)").all_inner_texts()
    probs = [float(x.split()[-1].rstrip("%")) for x in cells]
    assert len(probs) == 8 and probs == sorted(probs, reverse=True) and probs[0] > probs[-1]
    modes = page.locator("#failure-rank tbody td:nth-child(4)").all_inner_texts()
    assert len(modes) == 8
    cells = page.locator("#rul-rank tbody td:nth-child(3)").all_inner_texts()
    ruls = [float(x.split()[-1].replace(",", "")) for x in cells]
    assert len(ruls) == 4 and ruls == sorted(ruls)

    # quality: recent defect predictions with probabilities and the measurements behind them
    assert "Defect predictions (samples)" in page.inner_text("#dash-quality")
    rows = page.locator("#defect-table tbody tr")
    assert rows.count() == 8
    assert re.search(r"\d+(\.\d)?%", rows.first.inner_text())
    # each named measurement says whether it was above or below the training median (or outside its typical range),
    # with the value, typical range, median and robust z in the text, then its contribution as what it is, log-odds,
    # and the points of risk it adds apart: "defect risk +0.11" beside "8.5 %" had read as percentage points. The
    # arrow (the value's side) and the sign (the risk's) are said apart (a11y audit); the demo model has no drift
    # prior, so no recent failure rate (test_console_cards.py has one)
    factors = page.locator("#defect-table tbody tr td:nth-child(4) li")
    assert factors.count() >= 8
    num = r"-?[\d.,]+"
    for text in factors.all_inner_texts():
        m = re.fullmatch(r"f\d{3} ([↑↓–=]) (above the median|below the median|above its typical range|below its "
                         rf"typical range|not sent|at the median) \((value {num}; typical range {num}–{num}, training "
                         rf"median {num}; robust z [+−][\d.]+|read as the training median {num})\)"
                         r"( clipped: read at the model's limit)?; log-odds [+−]\d\.\d\d · risk [+−][\d.]+ pts", text)
        assert m, text
        assert {"↑": "above", "↓": "below", "–": "not sent", "=": "at"}[m.group(1)] in m.group(2), text
    assert "defect risk +" not in page.inner_text("#defect-table") and "defect risk −" not in page.inner_text(
        "#defect-table")
    # the baseline the log-odds start from, as the API gives it (the same for every wafer)
    assert re.fullmatch(r"Baseline: a median wafer \(every measurement at its training median, at the training "
                        r"file's failure rate\) has a defect risk of [\d.]+% \(log-odds [+−]\d\.\d\d\)\.",
                        page.inner_text("#defect-baseline"))
    assert page.locator("#defect-table .factor-share").count() == 8
    assert page.locator("#defect-table tbody tr td:nth-child(4) li span[lang=en]").count() == factors.count()
    assert page.locator("#failure-rank tbody td:nth-child(5)[lang=en]").count() == 8  # features: English names
    # the cards are busy while their predictions load, not after
    assert page.locator("#dash-cards [aria-busy]").count() == 0

    # energy: the p10-p90 band, p50 and actuals, and the total kWh and CO2
    assert page.locator("#energy-chart polygon").count() == 1 and page.locator("#energy-chart polyline").count() == 2
    # its kWh ticks are five different figures (not 0, 0, 1, 1, 1), the legend is above the plot, not over the data,
    # and the date and time zone are said
    ticks = page.locator("#energy-chart text.y-tick").all_text_contents()
    assert len(set(ticks)) == 5, ticks
    legend_bottom = page.evaluate("(b => ({y: b.y, height: b.height}))"
                                  "(document.querySelector('#energy-chart .chart-legend').getBBox())")
    band_top = page.evaluate("document.querySelector('#energy-chart polygon').getBBox().y")
    assert legend_bottom["y"] + legend_bottom["height"] <= band_top + 0.5
    assert re.fullmatch(r"time \(KST, Korea Standard Time\), \d{4}-\d\d-\d\d.*",
                        page.text_content("#energy-chart text.x-date"))
    totals = page.inner_text("#energy-totals")
    m = re.search(r"Forecast total ([\d,.]+) kWh \(p50\), CO2 ([\d,.]+) kg", totals)
    assert m, totals
    assert float(m.group(1).replace(",", "")) > 0 and float(m.group(2).replace(",", "")) > 0
    assert "Latest plan in this tab: none yet" in page.inner_text("#dash-scheduling")
    shot(page, tmp_path, "dashboard-models-en")


def test_csv_problems_solve_progress_and_phone_width(page, server, tmp_path):
    """Uploaded CSV mistakes are all listed in the page's language; Excel's BOM and EUC-KR files are read; a plan
    in progress shows its seconds; the solver status is in words; at a phone's width nothing runs off the page."""
    sign_in(page, server.acme.admin)
    # the sample is loaded but not planned: the summary and the chart's box say what to do
    page.wait_for_selector("#gantt .gantt-empty")
    assert "계획 실행" in page.inner_text("#plan-summary")

    # a BOM first, as Excel's "CSV UTF-8" writes; two lines with mistakes (three problems)
    bad = "\ufeffjob,operation,machines,due,weight\nJ-1,mould,IMM-01:90|IMM-02:abc,200,2\nJ-2,mould,IMM-01:80,24o,x\n" \
          "J-3,mould,IMM-01:10|IMM-01:20,100,1\n"  # a machine twice in one operation: which time?
    page.set_input_files("#orders-file", {"name": "orders.csv", "mimeType": "text/csv", "buffer": bad.encode()})
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    text = page.inner_text("#status")
    assert "orders.csv" in text and "2번째 줄" in text and "3번째 줄: due" in text and "3번째 줄: weight" in text
    assert "4번째 줄: 설비 IMM-01 이(가) 한 공정에 두 번 있습니다" in text, text
    assert page.input_value("#orders-file") == ""  # the corrected file can be chosen again
    # EUC-KR, as Korean Excel's plain "CSV" writes
    good = "job,operation,machines,due,weight\nJ-1,mould,IMM-01:90|IMM-02:100,200,2\n주문-2,mould,IMM-01:80,240,1\n"
    page.set_input_files("#orders-file", {"name": "orders.csv", "mimeType": "text/csv", "buffer": good.encode("cp949")})
    wait_js(page, "!document.getElementById('status').classList.contains('error')")
    assert page.evaluate("S.problem.jobs.map((j) => j.id)") == ["J-1", "주문-2"]

    held = []
    page.route("**/v1/scheduling/solve", lambda route: held.append(route))
    page.click("#solve-btn")
    wait_js(page, "document.getElementById('solve-btn').textContent.startsWith('계획 중… 0초 / 5초')")
    assert page.get_attribute("#gantt", "aria-busy") == "true"
    wait_js(page, "document.getElementById('solve-btn').textContent.startsWith('계획 중… 1초')")  # it counts
    held[0].continue_()
    page.wait_for_selector("#gantt g.op")
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    page.unroute("**/v1/scheduling/solve")
    assert page.inner_text("#solve-btn") == "계획 실행" and page.get_attribute("#gantt", "aria-busy") is None
    assert page.inner_text("#sum-status") == "최적" and "계획 완료: 최적" in page.inner_text("#status")

    page.set_viewport_size({"width": 390, "height": 844})
    # the header's language label sits right by its selector, on the same line
    lab, sel = page.locator('label[for="lang-select"]').bounding_box(), page.locator("#lang-select").bounding_box()
    assert abs((lab["y"] + lab["height"] / 2) - (sel["y"] + sel["height"] / 2)) < 4, (lab, sel)
    assert 0 <= sel["x"] - (lab["x"] + lab["width"]) <= 10, (lab, sel)
    page.click("#zoom-fit")
    chart, box = page.locator("#gantt svg").bounding_box(), page.locator("#gantt").bounding_box()
    assert chart["x"] + chart["width"] <= box["x"] + box["width"] + 1  # the whole plan is in view
    shot(page, tmp_path, "planner-phone-ko")
    page.click("#tab-admin")
    page.wait_for_selector("#usage-table tbody tr")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # wide tables scroll in their card
    shot(page, tmp_path, "admin-phone-ko")


STATUS_MAIN = """(() => { const c = document.getElementById('status').cloneNode(true);
    c.querySelectorAll('.status-detail').forEach((d) => d.remove()); return c.textContent.trim(); })()"""
STATUS_DETAIL = "document.querySelector('#status .status-detail [lang=en]')?.textContent ?? null"
ENGLISH = re.compile(r"[A-Za-z]{2,}[\s,.;:']+[A-Za-z]{2,}")  # two English words in a row: a phrase left untranslated


def test_api_refusals_in_the_chosen_language(page, server):
    """Every error code the API sends reads in the chosen language, wholly: what the console can read from the
    server's text (module, roles, limits, fields, a request id) is put in its own words, the server's English text
    kept as the tooltip. Only a reason it cannot word (a plan the solver refuses, an unknown code, a proxy's page)
    follows as a detail set apart and marked as English. A language switch re-renders the status line."""
    def answer(status: int, code: str, message: str, retry: str | None = None, **extra) -> dict:
        headers = {"Retry-After": retry} if retry else {}
        return {"status": status, "headers": headers, "content_type": "application/json",
                "body": json.dumps({"error": {"code": code, "message": message, **extra}})}

    not_sub = "tenant 'acme' is not subscribed to the 'scheduling' module; a tenant admin can subscribe with: ..."
    fields = "time_limit_s: Input should be less than or equal to 30; order: List should have at most 3 items after " \
             "validation, not 4"
    details = [{"loc": ["body", "time_limit_s"], "msg": "Input should be less than or equal to 30",
                "type": "less_than_equal"},
               {"loc": ["body", "order"], "msg": "List should have at most 3 items after validation, not 4",
                "type": "too_long"}]
    problem = "invalid scheduling problem: job 'J-9' has no operations"
    # (answer, the message in Korean, a piece of the tooltip, the detail shown: None where there is none)
    cases = [
        (answer(403, "not_subscribed", not_sub), "생산계획 모듈을 구독하지 않았습니다", not_sub, None),
        (answer(403, "forbidden", "this action needs a key with role 'admin' or 'planner'; this key is 'mes'"),
         "관리자 / 생산계획 담당 역할의 키가 필요합니다. 지금 키의 역할: MES 연동", "this action needs", None),
        (answer(429, "rate_limited", "tenant 'acme' is calling 'scheduling' faster than its standard plan's", "3"),
         "생산계획 호출이 요금제의 초당 호출 한도를 넘었습니다. 3초 후 다시 시도하세요.", "faster than", None),
        (answer(429, "quota_exceeded", "tenant 'acme' has used its 100 'scheduling' calls for this month", "864000"),
         "이번 달 생산계획 호출 한도를 모두 썼습니다", "100 'scheduling' calls", None),
        (answer(429, "too_many_failed_keys", "too many invalid API keys from this address; retry after", "7"),
         "이 주소에서 잘못된 API 키가 너무 많이 사용되었습니다. 7초 후", "invalid API keys", None),
        (answer(503, "database_unavailable", "the metadata database is unreachable or failing; retry shortly", "5"),
         "데이터베이스에 잠시 연결할 수 없습니다. 5초 후 다시 시도하세요.", "metadata database", None),
        (answer(503, "usage_log_unavailable", "the usage log could not be written; the call was not performed", "5"),
         "사용 기록을 남길 수 없어 호출을 실행하지 않았습니다", "usage log", None),
        (answer(422, "invalid_request", fields, details=details),
         "요청 값이 올바르지 않습니다: 시간 제한 (초): 30 이하여야 합니다; "
         "우선순위: 3개까지 넣을 수 있습니다", "time_limit_s", None),
        (answer(422, "invalid_input", "time_limit_s: at most 10 s per synchronous solve on the trial plan; got 20"),
         "체험 요금제의 시간 제한은 최대 10초입니다 (입력: 20초)", "trial plan", None),
        (answer(413, "payload_too_large", "the request body is larger than this server's limit of 10,485,760 bytes"),
         "요청이 서버 한도(10 MB)보다 큽니다", "10,485,760 bytes", None),
        (answer(500, "internal_error", "internal error (request 7f3a-000042)"),
         "서버 내부 오류가 났습니다. 다시 시도해 보고, 계속되면 관리자에게 "
         "요청 ID 7f3a-000042 을(를) 알려 주세요.", "7f3a", None),
        (answer(409, "conflict", "scheduling job 'x' already exists"),
         "요청이 지금 상태와 맞지 않습니다", "already", None),
        (answer(403, "plan_needs_operator", "the 'enterprise' plan is arranged by your SFAI operator; plans you can "
                "choose here: trial, standard"),
         "기업 요금제는 SFAI 운영자가 정합니다. 여기서 고를 수 있는 요금제: 체험, 표준.",
         "arranged by", None),
        # worded, with the operator's terms (the end date) following as the detail
        (answer(409, "managed_by_operator", managed := "the 'energy' subscription was set by the SFAI operator "
                "(enterprise plan, ends 2031-01-01 00:00 UTC); ask your operator to change or renew it"),
         "에너지 구독(기업 요금제)은 SFAI 운영자가 정했습니다", "ask your operator", managed),
        # reasons the console cannot word: its own message, then the server's words as the detail
        (answer(422, "invalid_input", problem), "서버가 이 계획을 받아들이지 않았습니다.", problem, problem),
        (answer(418, "teapot", "I'm a teapot, not a scheduler"),
         "서버가 요청을 거부했습니다 (HTTP 418, 코드 teapot).", "teapot", "I'm a teapot, not a scheduler"),
        ({"status": 502, "content_type": "text/html", "body": "<html><body><h1>502 Bad Gateway</h1></body></html>"},
         "서버 오류가 났습니다 (HTTP 502, 코드 –).", "Bad Gateway", "502 Bad Gateway"),
    ]
    answers = [c[0] for c in cases]
    page.route("**/v1/scheduling/solve", lambda route: route.fulfill(**answers.pop(0)))
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")  # the sample plan is loaded
    for _, text, tooltip, detail in cases:
        page.click("#solve-btn")
        wait_js(page, f"document.getElementById('status').textContent.includes({json.dumps(text)})")
        assert page.get_attribute("#status", "class") == "status error"
        assert tooltip in (page.get_attribute("#status", "title") or ""), tooltip
        main = page.evaluate(STATUS_MAIN)
        assert not ENGLISH.search(main), main  # no English left in the message itself
        assert page.evaluate(STATUS_DETAIL) == detail, text
        if detail:
            assert page.inner_text("#status .status-detail").startswith("서버 메시지 (영문):")
        wait_js(page, "!document.getElementById('solve-btn').disabled")
    page.select_option("#lang-select", "en")
    assert page.evaluate(STATUS_MAIN).startswith("Server error (HTTP 502, code –).")
    assert page.inner_text("#status .status-detail") == "Server's message: 502 Bad Gateway"

    # the real server's validation answer, read from its fields: an objective weight over its limit
    page.unroute("**/v1/scheduling/solve")
    page.select_option("#lang-select", "ko")
    page.select_option("#objective", "weighted")
    page.fill("#w-makespan", "2000000")
    page.click("#solve-btn")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    main = page.evaluate(STATUS_MAIN)
    assert main == ("요청 값이 올바르지 않습니다: 목표별 가중치 (실제 단위당) › 총 완료시간 (makespan): "
                    "1,000,000 이하여야 합니다"), main
    assert page.evaluate(STATUS_DETAIL) is None and "less than or equal" in page.get_attribute("#status", "title")


def test_dashboard_card_marks_an_out_of_date_plan(page, server):
    """The dashboard's scheduling card marks the plan it sums up as out of date, as the planner does, once the
    orders change after its solve; a new solve clears the mark, on the card too while it is on the page."""
    sign_in(page, server.acme.admin)
    run_plan(page)
    page.click("#tab-dashboard")
    page.wait_for_selector("#dash-plan-summary")
    assert "완료시간" in page.inner_text("#dash-plan-summary")
    assert page.locator("#dash-plan-stale").count() == 0

    page.click("#tab-planner")
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    page.fill('#orders-table input[data-field="due"][data-job="0"]', "10")
    page.press('#orders-table input[data-field="due"][data-job="0"]', "Tab")
    assert page.is_visible("#plan-stale")
    page.click("#tab-dashboard")
    page.wait_for_selector("#dash-plan-stale")
    assert "지난 계획" in page.inner_text("#dash-plan-stale")
    assert page.get_attribute("#dash-plan-stale", "class") == "warn"  # the planner's marker
    assert "stale" in page.get_attribute("#dash-scheduling", "class")
    assert float(page.evaluate("getComputedStyle(document.getElementById('dash-plan-summary')).opacity")) < 1
    page.select_option("#lang-select", "en")  # the mark follows the language
    assert "Outdated plan" in page.inner_text("#dash-plan-stale")

    # a solve that ends while the dashboard is shown (as a background job may) redraws the card without the mark
    page.evaluate("solve()")
    page.locator("#dash-plan-stale").wait_for(state="detached")
    assert "stale" not in page.get_attribute("#dash-scheduling", "class")
    assert "Makespan" in page.inner_text("#dash-plan-summary")


def test_csv_with_quoted_fields_as_excel_writes_them(page, server):
    """Orders CSV read as RFC 4180: quoted fields holding commas, doubled quotes and line breaks, CRLF line ends;
    a quote left open is a translated error naming the line it opened on."""
    sign_in(page, server.acme.admin)
    page.wait_for_selector("#gantt .gantt-empty")
    csv = ('job,operation,machines,due,weight,family\r\n'
           '# a comment with a "quote, and a comma\r\n'
           '"Order 12, rush",mould,IMM-01:90|IMM-02:100,200,2,"PP, black"\r\n'
           '"Order 12, rush","trim ""A""",TRIM-01:30,,,\r\n'
           '"Order\r\n13",mould,"IMM-01:80",240,1,PP\r\n'
           'J-14 , mould , IMM-02:60 , 300 , 1 , ABS\r\n')
    page.set_input_files("#orders-file", {"name": "orders.csv", "mimeType": "text/csv", "buffer": csv.encode()})
    wait_js(page, "S.problem.name === 'uploaded-orders'")
    assert page.get_attribute("#status", "class") == "status"
    jobs = page.evaluate("S.problem.jobs")
    assert [j["id"] for j in jobs] == ["Order 12, rush", "Order\n13", "J-14"]
    assert [o["id"] for o in jobs[0]["operations"]] == ["mould", 'trim "A"']
    assert jobs[0]["operations"][0] == {"id": "mould", "machines": {"IMM-01": 90, "IMM-02": 100}, "family": "PP, black"}
    assert jobs[0]["due"] == 200 and jobs[0]["weight"] == 2 and jobs[1]["due"] == 240
    assert page.evaluate("S.problem.machines") == ["IMM-01", "IMM-02", "TRIM-01"]
    assert "Order 12, rush" in page.text_content('#orders-table tr[data-job="Order 12, rush"]')
    run_plan(page)
    assert page.locator('#gantt g.op[data-job="Order 12, rush"]').count() == 2

    # a quote opened on line 3 and never closed: the whole rest of the file would be one field
    bad = 'job,machines\r\nJ-1,M1:5\r\n"J-2,M1:5\r\nJ-3,M1:5\r\n'
    page.set_input_files("#orders-file", {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()})
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    text = page.inner_text("#status")
    assert "bad.csv" in text and "3번째 줄" in text and "닫히지 않았습니다" in text, text
    # text after a closing quote
    bad = 'job,machines\nJ-1,"M1:5"x\n'
    page.set_input_files("#orders-file", {"name": "bad2.csv", "mimeType": "text/csv", "buffer": bad.encode()})
    wait_js(page, "document.getElementById('status').textContent.includes('bad2.csv')")
    assert "2번째 줄" in page.inner_text("#status") and "쉼표 대신 x" in page.inner_text("#status")
    page.select_option("#lang-select", "en")
    assert "line 2: the quoted field \"M1:5\" is followed by x instead of a comma" in page.inner_text("#status")
    assert page.evaluate("S.problem.jobs.length") == 3  # the plan loaded before is kept


def test_operator_managed_subscription_says_so(page, server):
    """A subscription whose terms the operator set says so in the table: the tenant admin may end it, but only the
    operator changes, renews or reopens it."""
    def subs(route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        rows = [{"module": "energy", "plan": "enterprise", "request_quota": None, "starts_at": "2025-01-01T00:00:00",
                 "ends_at": None, "managed_by_operator": True},
                {"module": "scheduling", "plan": "standard", "request_quota": 10000, "starts_at": "2025-01-01T00:00:00",
                 "ends_at": None, "managed_by_operator": False}]
        route.fulfill(status=200, content_type="application/json", body=json.dumps(rows))

    page.route("**/v1/subscriptions", subs)
    sign_in(page, server.acme.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#subs-table tbody tr")
    assert "운영자가 관리" in page.inner_text('#subs-table tr[data-module="energy"] [data-managed]')
    assert page.locator('#subs-table tr[data-module="scheduling"] [data-managed]').count() == 0
    assert page.locator('#subs-table button[data-unsub="energy"]').count() == 1
    assert page.locator('#subs-table button[data-unsub="scheduling"]').count() == 1

    # ending an enterprise subscription warns that the console can only re-subscribe on trial or standard
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.click('#subs-table button[data-unsub="energy"]')
    page.click('#subs-table button[data-unsub="scheduling"]')
    assert len(dialogs) == 2, dialogs
    assert "기업 요금제입니다" in dialogs[0] and "체험·표준 요금제로만 다시 구독" in dialogs[0], dialogs[0]
    assert "운영자" not in dialogs[1] and "구독을 해지할까요?" in dialogs[1]

    # a refused change shows the operator's terms beside the translated reason (they had been dropped)
    def refuse(route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        route.fulfill(status=409, content_type="application/json", body=json.dumps({"error": {
            "code": "managed_by_operator", "message": "the 'energy' subscription was set by the SFAI operator "
            "(trial plan, a quota of 5 calls a month, ended 2026-12-06 22:50 UTC); ask your operator to change or "
            "renew it"}}))

    page.route("**/v1/subscriptions", refuse)
    page.select_option("#sub-module", "energy")
    page.click("#sub-create")
    wait_js(page, "document.getElementById('status').textContent.includes('a quota of 5 calls a month')")
    status = page.inner_text("#status")
    assert "SFAI 운영자가 정했습니다" in status and "ended 2026-12-06 22:50 UTC" in status, status


def test_plan_notes_from_the_server_are_translated(page, server):
    """What the server left out of a plan for want of a partner module (bravo has no energy module; the sample
    plan has tariffs) reads in Korean in the plan summary, not as the server's English note."""
    sign_in(page, server.bravo.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    page.select_option("#objective", "energy")
    run_plan(page)
    notes = page.inner_text("#plan-summary")
    assert "에너지 요금·최대 전력(energy)은(는) 에너지 모듈을 구독하지 않아 계획에 반영하지 않았습니다." in notes, notes
    assert "목표 '에너지 비용'에는 에너지 모듈이 필요해 기본 목표" in notes, notes
    # the planner's own peak cap, left out with the tariff, is said once more in plain words (MES audit)
    assert "피크 한도 140 kW 가 계획에 반영되지 않아" in notes, notes
    assert not ENGLISH.search(notes), notes
    assert page.evaluate("document.title") == "생산계획 – SFAI 콘솔"  # the tab shown, then the console (a11y audit)
    # the tariff was left out: no energy cost or peak to show (the server's 0 would read as measured)
    for metric in ("m.energyCost", "m.peak"):
        assert page.inner_text(f'#plan-summary [data-metric="{metric}"]') == "–", metric
        assert "에너지 설정" in page.get_attribute(f'#plan-summary [data-metric="{metric}"]', "title")


def test_a_misspelt_setup_family_is_pointed_out_beside_the_plan(page, server):
    """A setup matrix whose family is misspelt ('PP-Black' for the operations' 'PP-black') planned no changeover and
    nothing said so (planner audit). The server's notes read in the plan summary, in Korean."""
    sign_in(page, server.acme.admin)
    page.wait_for_selector("#gantt .gantt-empty")
    problem = {"name": "typo", "machines": ["M1"], "jobs": [
        {"id": "A", "operations": [{"id": "a", "machines": {"M1": 10}, "family": "PP-black"}]},
        {"id": "B", "operations": [{"id": "b", "machines": {"M1": 10}, "family": "PP-white"}]}],
        "setups": {"matrix": {"PP-Black": {"PP-white": 30}, "PP-white": {"PP-Black": 30}}}}

    def plan_notes(name: str) -> str:
        problem["name"] = name
        page.set_input_files("#orders-file", {"name": "orders.json", "mimeType": "application/json",
                                              "buffer": json.dumps(problem).encode()})
        wait_js(page, f"S.problem.name === '{name}'")
        run_plan(page)
        return page.inner_text("#plan-notes")

    notes = plan_notes("typo")
    assert "셋업 표에 있는 제품군 PP-Black을(를) 가진 공정이 없어" in notes, notes
    assert "제품군 PP-black에 대한 셋업이 없어" in notes, notes
    assert not ENGLISH.search(notes.replace("PP-Black", "").replace("PP-black", "")), notes
    # an operation marked running at a future time: said, in Korean
    problem["jobs"][1]["operations"][0]["started"] = {"machine": "M1", "start": 50}
    notes = plan_notes("future")
    assert "B/b 은(는) 진행 중으로 표시되었지만 계획 시작(t=0) 뒤인 t=50 에 시작합니다" in notes, notes


def test_a_csv_upload_says_it_holds_orders_only(page, server):
    """A CSV of orders has no setups, calendars or tariffs, and its families then change over in no time; the status
    line did not say so (planner audit). It does, and a JSON problem says nothing of the kind."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")

    def upload(name: str, text: str) -> str:
        page.set_input_files("#orders-file", {"name": name, "mimeType": "text/csv" if name.endswith(".csv") else
                                              "application/json", "buffer": text.encode()})
        # each upload holds another number of orders than the one before
        wait_js(page, f"S.problem.jobs.length === {text.count(chr(10)) - 1 if name.endswith('.csv') else 1}")
        return page.inner_text("#status")

    with_family = upload("a.csv", "job,machines,family\nA,M1:5,PP\nB,M1:5,ABS\n")
    assert with_family == ("Loaded 2 orders, 2 operations, 1 machine. A CSV holds orders only: its families have no "
                           "setup times, so changeovers are planned as taking none. Load a JSON problem file for "
                           "setup times, machine calendars and power tariffs."), with_family
    plain = upload("b.csv", "job,machines\nA,M1:5\nB,M1:5\nC,M1:5\n")
    assert plain.endswith("A CSV holds orders only: load a JSON problem file for setup times, machine calendars "
                          "(holidays, maintenance) and power tariffs."), plain
    one = {"name": "one", "machines": ["M1"], "jobs": [{"id": "A", "operations": [{"id": "o", "machines": {"M1": 5}}]}]}
    assert upload("one.json", json.dumps(one)) == "Loaded 1 order, 1 operation, 1 machine."
    page.select_option("#lang-select", "ko")
    assert "CSV에는 주문만 담깁니다" not in page.inner_text("#status")
    upload("a.csv", "job,machines,family\nA,M1:5,PP\nB,M1:5,ABS\n")
    assert "CSV에는 주문만 담깁니다. 제품군(family)의 셋업 시간이 없어" in page.inner_text("#status")


def test_admin_buttons_wait_for_their_answer(page, server):
    """Creating a key is one request however often the button is pressed: it is disabled (and marked busy) until
    the answer comes."""
    posts: list[str] = []
    held = []
    page.on("request", lambda r: r.method == "POST" and r.url.endswith("/v1/apikeys") and posts.append(r.url))
    page.route("**/v1/apikeys",
               lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    sign_in(page, server.acme.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#keys-table tbody tr")
    page.fill("#key-name", "once")
    page.click("#key-create")
    wait_js(page, "document.getElementById('key-create').disabled")
    assert page.get_attribute("#key-create", "aria-busy") == "true"
    page.press("#key-name", "Enter")  # the form's other way to submit: refused while the first is on its way
    assert len(held) == 1
    held[0].continue_()
    page.wait_for_selector("#new-key:not([hidden])")
    wait_js(page, "!document.getElementById('key-create').disabled")
    assert len(posts) == 1 and page.locator("#keys-table tbody tr", has_text="once").count() == 1


# ------------------------------------------------------------------------------------------------ audit findings
def _touch_page(browser, server):
    """A phone: 390 px wide, touch, with the page fixture's checks for errors (returned with the page)."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True,
                              device_scale_factor=2)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(server.base + "/")
    return ctx, pg, errors


def test_a_finger_swipe_on_a_bar_scrolls_and_a_long_press_drags(browser, server):
    """On a phone a vertical swipe that starts on a Gantt bar scrolls the page (it once pinned the bar where the
    finger ended and re-planned); holding a finger still on a bar first picks it up, and then it drags and pins."""
    ctx, page, errors = _touch_page(browser, server)
    try:
        sign_in(page, server.acme.admin)
        run_plan(page)
        solves: list[str] = []
        page.on("request", lambda r: "/v1/scheduling/solve" in r.url and solves.append(r.url))
        page.locator("#gantt").scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -200)")
        cdp = ctx.new_cdp_session(page)

        def touch(kind: str, x: float = 0, y: float = 0) -> None:
            points = [] if kind == "touchEnd" else [{"x": x, "y": y, "id": 1}]
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

        def centre(job: str, op: str) -> tuple[float, float, dict]:
            box = page.locator(f'#gantt g.op[data-job="{job}"][data-op="{op}"] rect.body').bounding_box()
            return box["x"] + min(10, box["width"] / 2), box["y"] + box["height"] / 2, box

        x, y, _ = centre("J-1001", "mould")
        before = page.evaluate("window.scrollY")
        touch("touchStart", x, y)
        for k in range(1, 13):
            touch("touchMove", x, y - 15 * k)
            time.sleep(0.016)
        touch("touchEnd")
        wait_js(page, f"window.scrollY > {before} + 60")
        time.sleep(0.5)
        assert not solves
        assert page.evaluate("S.problem.jobs.flatMap((j) => j.operations).some((o) => o.pinned)") is False

        # a long press picks the bar up: then the finger drags it, down to the other machine's row (the page does not
        # scroll away under it), and it is pinned where it is let go (at 300, after that row's break and maintenance)
        x, y, box = centre("J-1001", "mould")
        bar = page.locator('#gantt g.op[data-job="J-1001"][data-op="mould"]')
        machine, start = bar.get_attribute("data-machine"), int(bar.get_attribute("data-start"))
        scale = box["width"] / (int(bar.get_attribute("data-end")) - start)
        other = "IMM-02" if machine == "IMM-01" else "IMM-01"
        labels = page.locator("#gantt text.machine-label")
        row = labels.nth(labels.all_text_contents().index(other)).bounding_box()
        x1, y1 = x + (300 - start) * scale, row["y"] + row["height"] / 2
        scrolled = page.evaluate("window.scrollY")
        touch("touchStart", x, y)
        time.sleep(0.6)
        for k in range(1, 6):  # straight down first: a swipe the browser would take as a scroll
            touch("touchMove", x, y + (y1 - y) * k / 5)
            time.sleep(0.016)
        for k in range(1, 6):
            touch("touchMove", x + (x1 - x) * k / 5, y1)
            time.sleep(0.016)
        touch("touchEnd")
        pinned = page.locator('#gantt g.op[data-job="J-1001"][data-op="mould"][data-pinned="true"]')
        pinned.wait_for()
        assert solves and pinned.get_attribute("data-machine") == other
        assert abs(int(pinned.get_attribute("data-start")) - 300) <= 15  # a pixel is about 2 minutes here
        assert page.evaluate("window.scrollY") == scrolled
        assert page.evaluate("window.scrollY") == scrolled
    finally:
        ctx.close()
    assert not errors, errors


def test_sign_out_leaves_nothing_of_the_tenant_for_the_next(page, server):
    """Everything one tenant saw or entered is gone from the page after Sign out: the next tenant signing in on the
    same tab sees none of it (the what-if comparison and its charts once stayed, and a new key's secret)."""
    page.on("dialog", lambda d: d.accept())
    sign_in(page, server.acme.admin)
    run_plan(page)
    page.click("#keep-copy")
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    page.fill('#orders-table input[data-field="due"][data-job="0"]', "150")
    page.press('#orders-table input[data-field="due"][data-job="0"]', "Tab")
    page.locator("#gantt g.op.late").first.click()
    page.wait_for_selector("#pin-form")
    page.click("#pin-submit")  # pinned where it is, and re-planned
    page.wait_for_selector("#pins li[data-pin]")
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    page.wait_for_selector("#compare-table")
    assert page.locator("#gantt-copy g.op").count() == 12 and page.is_visible("#clear-copy")
    page.locator("#order-entry").evaluate("(d) => { d.open = true; }")
    page.fill("#of-job", "ACME-SECRET-ORDER")  # half-entered in the form
    page.select_option("#objective", "lex")
    page.click("#tab-dashboard")
    page.wait_for_selector("#dash-plan-summary")
    page.click("#tab-admin")
    page.wait_for_selector("#usage-table tbody tr")
    page.fill("#key-name", "acme-line-9")
    page.click("#key-create")
    page.wait_for_selector("#new-key:not([hidden])")
    secret = page.input_value("#new-key-value")
    assert secret.startswith("sfai_")

    page.click("#signout-btn")
    gone = """() => ({
      compare: document.querySelectorAll('#compare-table').length,
      small: document.querySelectorAll('#gantt-copy *, #gantt-current *').length,
      gantt: document.querySelectorAll('#gantt svg').length,
      clearCopy: !document.getElementById('clear-copy').hidden,
      comparing: !document.getElementById('compare-gantts').hidden,
      pins: document.querySelectorAll('#pins li[data-pin]').length,
      details: document.querySelectorAll('#late-explanation, #pin-form').length,
      orders: document.querySelectorAll('#orders-table tr').length,
      form: document.getElementById('of-job').value,
      objective: document.getElementById('objective').value,
      secret: document.getElementById('new-key-value').value,
      keyName: document.getElementById('key-name').value,
      cards: document.getElementById('dash-cards').children.length,
      tables: ['subs-table', 'keys-table', 'usage-table'].map((id) => document.getElementById(id).children.length),
      usage: document.getElementById('usage-summary').textContent,
      badge: document.getElementById('tenant-badge').textContent,
      job: !document.getElementById('job-line').hidden,
      stale: !document.getElementById('plan-stale').hidden,
      summary: document.querySelectorAll('#plan-summary .metric').length,
      acme: /acme|ACME/.test(document.body.innerHTML),
    })"""
    assert page.evaluate(gone) == {
        "compare": 0, "small": 0, "gantt": 0, "clearCopy": False, "comparing": False, "pins": 0, "details": 0,
        "orders": 0, "form": "", "objective": "", "secret": "", "keyName": "", "cards": 0, "tables": [0, 0, 0],
        "usage": "", "badge": "", "job": False, "stale": False, "summary": 0, "acme": False}
    assert page.evaluate("sessionStorage.length") == 0  # neither the key nor the plan

    sign_in(page, server.bravo.admin)
    page.wait_for_selector("#gantt .gantt-empty")  # bravo's own start: the sample, not solved
    state = page.evaluate(gone)
    assert state["compare"] == 0 and state["small"] == 0 and not state["clearCopy"] and not state["comparing"]
    assert state["pins"] == 0 and state["details"] == 0 and state["form"] == "" and state["secret"] == ""
    assert not state["acme"] and page.evaluate("S.problem.jobs[0].due") == 200
    assert "아직 실행한 계획이 없습니다" not in page.inner_text("#plan-summary")  # the summary says to run it
    page.click("#tab-admin")
    page.wait_for_selector("#keys-table tbody tr")
    assert secret not in page.content() and page.is_hidden("#new-key")
    assert "acme-line-9" not in page.inner_text("#keys-table")


def test_due_dates_and_weights_in_the_order_table_are_checked(page, server, tmp_path):
    """A due date or weight typed into the order table follows the order form's rules: a refused value is marked
    aria-invalid with the reason (in the chosen language) and not stored; a plan is not run while one is left."""
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    due = '#orders-table input[data-field="due"][data-job="0"]'
    weight = '#orders-table input[data-field="weight"][data-job="0"]'
    stored = "[S.problem.jobs[0].due, S.problem.jobs[0].weight]"
    assert page.evaluate(stored) == [200, 2]
    for value in ("-50", "12.7"):
        page.fill(due, value)
        page.press(due, "Tab")
        assert page.get_attribute(due, "aria-invalid") == "true", value
        described = page.get_attribute(due, "aria-describedby")
        assert page.inner_text(f"#{described}") == "납기는 0 이상의 정수(분)여야 합니다."
        assert "주문 J-1001: 납기는 0 이상의 정수(분)여야 합니다. 값을 바꾸지 않았습니다." in page.inner_text("#status")
        assert page.evaluate(stored) == [200, 2], value
    page.fill(weight, "-3")
    page.press(weight, "Tab")
    assert page.get_attribute(weight, "aria-invalid") == "true" and page.evaluate(stored) == [200, 2]
    shot(page, tmp_path, "planner-order-table-errors-ko")
    page.select_option("#lang-select", "en")  # the marks and reasons stay, in the new language
    assert page.input_value(due) == "12.7" and page.get_attribute(due, "aria-invalid") == "true"
    reason = page.inner_text(f"#{page.get_attribute(weight, 'aria-describedby')}")
    assert reason == "The weight must be a number, 0 or more."

    # no plan while a refused value is left: the first is shown and focused
    posts: list[str] = []
    page.on("request", lambda r: "/v1/scheduling/" in r.url and posts.append(r.url))
    page.click("#solve-btn")
    assert "has a value that was refused" in page.inner_text("#status") and not posts
    assert page.evaluate("document.activeElement.id") == "ot-0-due"

    page.fill(weight, "12.7")  # a weight need not be whole
    page.press(weight, "Tab")
    page.fill(due, "150")
    page.press(due, "Tab")
    assert page.evaluate(stored) == [150, 12.7]
    assert page.get_attribute(due, "aria-invalid") is None and page.get_attribute(weight, "aria-invalid") is None
    assert page.locator("#orders-table .field-error").count() == 0
    page.fill(due, "")  # empty: no due date
    page.press(due, "Tab")
    assert page.evaluate("'due' in S.problem.jobs[0]") is False
    run_plan(page)


def _hold_jobs_running(route) -> None:
    """GET /v1/scheduling/jobs/{id} answered as still running (the real job has finished long since)."""
    job_id = route.request.url.rsplit("/", 1)[1]
    route.fulfill(status=200, content_type="application/json", body=json.dumps({
        "job_id": job_id, "status": "running", "created_at": "2026-01-01T00:00:00Z",
        "started_at": "2026-01-01T00:00:01Z", "finished_at": None, "result": None, "error": None}))


def test_a_background_job_can_be_cancelled_from_the_job_line(page, server):
    """A mistaken long job could not be stopped (planner's audit): the job line's Cancel sends DELETE, the poll sees
    the job cancelled, and the status line says its plan is dropped; the plan before it stays."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    run_plan(page)
    bars = page.locator("#gantt g.op").count()
    state = {"status": "running"}
    deletes: list[str] = []

    def jobs(route) -> None:
        job_id = route.request.url.rsplit("/", 1)[1]
        if route.request.method == "DELETE":
            deletes.append(job_id)
            state["status"] = "cancelled"
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "job_id": job_id, "status": state["status"], "created_at": "2026-01-01T00:00:00Z",
            "started_at": "2026-01-01T00:00:01Z", "finished_at": None, "result": None,
            "error": "cancelled while running: its plan is dropped; the solve already under way ends by its time "
                     "limit, at 2026-01-01T00:00:41Z" if state["status"] == "cancelled" else None}))

    # the job itself is made up too: a real one would hold the test server's one worker for its 40 s
    page.route("**/v1/scheduling/jobs", lambda route: route.fulfill(status=202, content_type="application/json",
                                                                      body=json.dumps({
        "job_id": "0123456789abcdef0123456789abcdef", "status": "queued", "created_at": "2026-01-01T00:00:00Z",
        "started_at": None, "finished_at": None, "result": None, "error": None})))
    page.route("**/v1/scheduling/jobs/*", jobs)
    page.fill("#time-limit", "40")
    page.click("#solve-btn")
    page.wait_for_selector('#job-line[data-state="running"]')
    assert page.is_visible("#job-cancel") and page.inner_text("#job-cancel") == "Cancel job"
    page.click("#job-cancel")
    page.wait_for_selector('#job-line[data-state="cancelled"]')
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    assert deletes == [page.get_attribute("#job-line", "data-job")]
    assert page.is_hidden("#job-cancel")
    assert "cancelled while running: its plan is dropped" in page.inner_text("#status")
    assert "cancelled" in page.inner_text("#job-text")
    assert page.locator("#gantt g.op").count() == bars  # the plan before it stays
    assert json.loads(page.evaluate("sessionStorage.getItem('sfai_plan')"))["job"] is None
    page.unroute("**/v1/scheduling/jobs/*")
    page.unroute("**/v1/scheduling/jobs")


def test_a_reload_keeps_the_planners_work_and_resumes_a_running_job(page, server):
    """The orders, settings and plan survive a reload of the tab, per tenant; a background job that was running is
    polled again after the reload and its plan shown. Sign out forgets them; a storage quota is handled."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    page.fill('#orders-table input[data-field="due"][data-job="0"]', "333")
    page.press('#orders-table input[data-field="due"][data-job="0"]', "Tab")
    page.select_option("#objective", "makespan")
    page.fill("#time-limit", "3")
    run_plan(page)
    page.click("#keep-copy")

    page.reload()
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_selector("#gantt g.op")  # the plan is back, drawn
    assert page.evaluate("S.problem.jobs[0].due") == 333
    assert page.input_value("#objective") == "makespan" and page.input_value("#time-limit") == "3"
    assert page.get_attribute("#sum-objective", "data-objective") == "makespan"
    assert page.is_visible("#clear-copy") and page.locator("#compare-table").count() == 1
    assert "Restored the plan kept in this tab (6 orders)" in page.inner_text("#status")

    # a background job running when the tab is reloaded: polled again afterwards, then its plan shown
    page.fill("#time-limit", "40")
    page.route("**/v1/scheduling/jobs/*", _hold_jobs_running)
    page.click("#solve-btn")
    page.wait_for_selector('#job-line[data-state="running"]')
    job_id = page.get_attribute("#job-line", "data-job")
    assert json.loads(page.evaluate("sessionStorage.getItem('sfai_plan')"))["job"]["id"] == job_id
    polls: list[str] = []
    page.on("request", lambda r: r.url.endswith(f"/v1/scheduling/jobs/{job_id}") and polls.append(r.url))
    page.reload()
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_selector('#job-line[data-state="running"]')
    assert polls and page.get_attribute("#job-line", "data-job") == job_id
    assert "waiting for the background job" in page.inner_text("#status")
    assert page.is_disabled("#solve-btn")
    assert json.loads(page.evaluate("sessionStorage.getItem('sfai_plan')"))["job"]["id"] == job_id  # still kept
    page.unroute("**/v1/scheduling/jobs/*")
    page.wait_for_selector('#job-line[data-state="done"]', timeout=60_000)  # (a busy machine: up to its limit)
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    assert "Plan ready" in page.inner_text("#status") and page.locator("#gantt g.op").count() == 12
    assert json.loads(page.evaluate("sessionStorage.getItem('sfai_plan')"))["job"] is None

    # storage full: the plan is kept without its solved plan (and says so), or not at all
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    page.evaluate("""() => { const set = Storage.prototype.setItem;
        Storage.prototype.setItem = function (k, v) {
          if (k === 'sfai_plan' && (window.noRoom === 'all' || JSON.parse(v).result))
            throw new DOMException('full', 'QuotaExceededError');
          return set.call(this, k, v); }; }""")
    page.fill('#orders-table input[data-field="due"][data-job="1"]', "444")
    page.press('#orders-table input[data-field="due"][data-job="1"]', "Tab")
    assert "the solved plan is too large to keep" in page.inner_text("#plan-unsaved")
    saved = json.loads(page.evaluate("sessionStorage.getItem('sfai_plan')"))
    assert saved["problem"]["jobs"][1]["due"] == 444 and "result" not in saved
    page.evaluate("window.noRoom = 'all'")
    page.fill('#orders-table input[data-field="due"][data-job="1"]', "445")
    page.press('#orders-table input[data-field="due"][data-job="1"]', "Tab")
    assert "too large for the browser's storage" in page.inner_text("#plan-unsaved")
    assert page.evaluate("sessionStorage.getItem('sfai_plan')") is None  # not the older version either
    page.evaluate("window.noRoom = null")
    page.fill('#orders-table input[data-field="due"][data-job="1"]', "446")
    page.press('#orders-table input[data-field="due"][data-job="1"]', "Tab")
    page.reload()
    page.wait_for_selector("#app:not([hidden])")
    page.wait_for_selector("#gantt .gantt-empty")  # the orders, to be planned again
    assert page.evaluate("S.problem.jobs[1].due") == 446

    # Sign out forgets it: the next sign-in (even of the same tenant) starts from the sample
    page.click("#signout-btn")
    assert page.evaluate("sessionStorage.getItem('sfai_plan')") is None
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    assert page.evaluate("[S.problem.jobs[0].due, S.problem.jobs[1].due]") == [200, 240]
    assert page.input_value("#objective") == "" and page.input_value("#time-limit") == "5"


def test_a_key_revoked_mid_session_signs_out_and_the_plan_waits_for_its_tenant(page, server):
    """A key revoked while in use: the next call's 401 signs the console out saying the key is no longer valid (the
    dashboard once said to press Refresh). The plan being worked on comes back with another key of the same
    tenant, and never to another tenant."""
    def new_key(name: str) -> dict:
        r = httpx.post(server.base + "/v1/apikeys", json={"role": "planner", "name": name},
                       headers=bearer(server.acme.admin))
        assert r.status_code == 201, r.text
        return r.json()

    def revoke(key: dict) -> None:
        r = httpx.delete(server.base + f"/v1/apikeys/{key['key_id']}", headers=bearer(server.acme.admin))
        assert r.status_code in (200, 204), r.text

    first = new_key("revoked-mid-session")
    sign_in(page, first["api_key"])
    page.wait_for_selector("#gantt .gantt-empty")
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    page.fill('#orders-table input[data-field="due"][data-job="0"]', "333")
    page.press('#orders-table input[data-field="due"][data-job="0"]', "Tab")
    page.click("#tab-dashboard")
    page.wait_for_selector("#dash-plan-summary")
    # the other cards' calls done first: one still on its way when the key is revoked signs out before the click
    # (as it should), and the click then found no Refresh button (CI, once)
    wait_js(page, "[...document.querySelectorAll('#dash-cards .card:not(.off) .dash-body')]"
                  ".every((b) => !b.textContent.includes(t('dash.loading')))")
    revoke(first)
    page.click("#dash-refresh")
    page.wait_for_selector("#signin:not([hidden])")
    assert "API 키가 더 이상 유효하지 않아" in page.inner_text("#status")
    assert page.get_attribute("#status", "class") == "status error"
    assert page.evaluate("sessionStorage.getItem('sfai_key')") is None
    assert page.evaluate("document.getElementById('dash-cards').children.length") == 0

    sign_in(page, server.acme.mes)  # another key of the same tenant: the plan is back
    wait_js(page, "S.problem && S.problem.jobs[0].due === 333")
    assert "보관된 계획" in page.inner_text("#status")

    second = new_key("revoked-again")
    page.click("#signout-btn")
    sign_in(page, second["api_key"])
    page.wait_for_selector("#gantt .gantt-empty")
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    page.fill('#orders-table input[data-field="due"][data-job="0"]', "444")
    page.press('#orders-table input[data-field="due"][data-job="0"]', "Tab")
    revoke(second)
    page.click("#solve-btn")  # the solve's 401
    page.wait_for_selector("#signin:not([hidden])")
    assert "API 키가 더 이상 유효하지 않아" in page.inner_text("#status")
    sign_in(page, server.bravo.mes)  # another tenant: acme's plan is neither shown nor kept
    page.wait_for_selector("#gantt .gantt-empty")
    assert page.evaluate("S.problem.jobs[0].due") == 200
    assert "444" not in (page.evaluate("sessionStorage.getItem('sfai_plan')") or "")
    assert page.evaluate("JSON.parse(sessionStorage.getItem('sfai_plan')).tenant") == "bravo"


def test_pasted_keys_are_cleaned_and_foreign_characters_refused(page, server):
    """What copying adds to a key (a zero-width space, spaces, smart quotes) is dropped; a key that still holds
    characters no key has (Korean text) is the wrong-key message at once, not "server unreachable"."""
    asked: list[str] = []
    page.on("request", lambda r: "/v1/" in r.url and asked.append(r.url))
    for pasted in (f"\u200b {server.acme.mes}\u200b ", f"\u201c{server.acme.mes}\u201d", f" '{server.acme.mes}'\n"):
        page.evaluate("(v) => { document.getElementById('api-key').value = v; }", pasted)
        page.click("#signin-btn")
        page.wait_for_selector("#app:not([hidden])")
        assert page.evaluate("sessionStorage.getItem('sfai_key')") == server.acme.mes
        page.click("#signout-btn")
    asked.clear()
    page.fill("#api-key", server.acme.mes + "한")
    page.click("#signin-btn")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    status = page.inner_text("#status")
    assert "API 키가 올바르지 않거나" in status and "연결할 수 없습니다" not in status
    assert not asked and page.is_visible("#signin")


def test_long_machine_names_are_cut_to_the_label_column(page, server, tmp_path):
    """A machine name too long for the chart's label column (30 Korean characters) ends in an ellipsis inside the
    column, the whole name in its tooltip; the axis says its unit."""
    long_name = "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허고노"
    assert len(long_name) == 30
    csv = f"job,operation,machines,due\nJ-1,cut,{long_name}:60,100\nJ-2,cut,SAW-01:30,100\n"
    sign_in(page, server.acme.mes)
    page.set_input_files("#orders-file", {"name": "long.csv", "mimeType": "text/csv", "buffer": csv.encode()})
    wait_js(page, "S.problem.name === 'uploaded-orders'")
    run_plan(page)
    label = page.locator(f'#gantt text.machine-label[data-machine="{long_name}"]')
    text = label.text_content()
    assert text.endswith("…") and long_name.startswith(text[:-1]) and len(text) > 2, text
    svg, box = page.locator("#gantt svg").bounding_box(), label.bounding_box()
    assert box["x"] + box["width"] <= svg["x"] + 92, (box, svg)  # inside the 92 px label column
    assert page.locator(f'#gantt g.machine-row[data-machine="{long_name}"] > title').text_content() == long_name
    assert page.locator('#gantt text.machine-label[data-machine="SAW-01"]').text_content() == "SAW-01"
    assert page.text_content("#gantt text.axis-unit") == "시간(분)"
    page.locator("#gantt").screenshot(path=str(tmp_path / "gantt-long-machine-ko.png"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "gantt-long-machine-ko.png", ARTIFACTS / "gantt-long-machine-ko.png")
    page.select_option("#lang-select", "en")
    assert page.text_content("#gantt text.axis-unit") == "time (min)"


def test_an_answer_without_a_plan_shows_the_servers_reasons(page, server):
    """INFEASIBLE and UNKNOWN answers carry ``no_plan_reasons`` (optimization/diagnose.py): the status line shows
    them after the console's own words, instead of only "no plan is possible"."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.mes)
    reason = "job J1 cannot end by the horizon 50: its release plus its operations reach t=60"

    def infeasible(route) -> None:  # noqa: ANN001
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "status": "INFEASIBLE", "makespan": None, "lower_bound": None, "wall_s": 0.01, "gantt": [],
            "maintenance": [], "late_jobs": [], "objective_values": {}, "violations": 0, "stats": {},
            "no_plan_reasons": [{"type": "horizon", "message": reason}], "linked": {}}))

    page.route("**/v1/scheduling/solve", infeasible)
    page.click("#solve-btn")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    text = page.inner_text("#status")
    assert "No plan is possible" in text and reason in text


SAMPLE_PLAN = Path(__file__).resolve().parents[2] / "serving" / "static" / "sample-plan.json"


def _plan_file(name: str, **change) -> dict:
    """The sample plan with `change` made to it, as a file for #orders-file."""
    plan = json.loads(SAMPLE_PLAN.read_text())
    plan.update(change)
    return {"name": f"{name}.json", "mimeType": "application/json", "buffer": json.dumps(plan).encode()}


def _no_plan_answer(status: str, reasons: list[dict]) -> dict:
    return {"status": 200, "content_type": "application/json", "body": json.dumps({
        "status": status, "makespan": None, "lower_bound": None, "wall_s": 0.01, "gantt": [], "maintenance": [],
        "late_jobs": [], "objective_values": {}, "violations": 0, "stats": {}, "no_plan_reasons": reasons,
        "linked": {}})}


def test_a_solve_without_a_plan_says_why_and_no_pin_was_undone(page, server, tmp_path):
    """A solve that gives no plan (here: a horizon shorter than the orders) says so in Korean with the server's
    reasons put in words, does not claim that a pin was undone (none was), and the chart's box says that there is no
    plan for these orders and why, not "run the scheduler"; editing the orders puts "run the scheduler" back."""
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    page.set_input_files("#orders-file", _plan_file("horizon-too-short", horizon=60))
    wait_js(page, "S.problem && S.problem.horizon === 60")
    page.click("#solve-btn")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    status = page.inner_text("#status")
    assert status.startswith("이 조건으로는 계획이 불가능합니다 (불가능)."), status
    assert "고정" not in status and "취소" not in status, status  # no pin was set, none was undone
    assert "원인: 작업 J-1004 은(는) 계획 기간 60 안에 끝날 수 없습니다: 투입 시각에 공정마다 가장 빠른 " \
           "설비의 시간을 더하면 t=155 입니다. 다른 작업 5건도 마찬가지입니다." in status, status
    assert not ENGLISH.search(status), status
    assert "cannot end by the horizon 60" in page.get_attribute("#status", "title")  # the server's words, as tooltip
    box = page.locator("#gantt-noplan")
    assert box.is_visible() and box.get_attribute("data-status") == "INFEASIBLE"
    text = box.inner_text()
    assert "이 조건으로는 계획이 불가능합니다" in text and "계획을 다시 실행하세요" in text, text
    assert "'계획 실행'을 누르면" not in text  # not "run the scheduler to see the chart"
    # the horizon first (other proofs may follow it: an operation without room under the peak cap in 60 units)
    assert page.locator("#no-plan-reasons li").count() >= 1
    assert "작업 J-1004 은(는) 계획 기간 60 안에" in page.locator("#no-plan-reasons li").first.inner_text()
    assert not ENGLISH.search(page.inner_text("#no-plan-reasons")), page.inner_text("#no-plan-reasons")
    assert "계획이 나오지 않았습니다. 상태: 불가능." in page.inner_text("#plan-summary")
    shot(page, tmp_path, "planner-no-plan-ko")

    page.select_option("#lang-select", "en")  # re-rendered in English, the chart's box too
    status = page.inner_text("#status")
    assert status.startswith("No plan is possible under these conditions (Infeasible). Why: Job J-1004 cannot end by "
                             "the horizon 60: its release plus its operations on their fastest machines reach t=155. "
                             "5 more jobs cannot either."), status
    assert "pin" not in status.lower()
    assert "No plan is possible" in page.inner_text("#gantt-noplan")
    assert "Run the scheduler to see" not in page.inner_text("#gantt")

    # the orders change: the reasons were for the old ones, so the box says to run the scheduler again
    page.locator("#orders-details").evaluate("(d) => { d.open = true; }")
    page.fill('#orders-table input[data-field="due"][data-job="0"]', "333")
    page.press('#orders-table input[data-field="due"][data-job="0"]', "Tab")
    page.wait_for_selector("#gantt .gantt-empty:not(.gantt-noplan)")
    assert "Run the scheduler to see" in page.inner_text("#gantt")


def test_a_pin_that_leaves_no_plan_is_undone_and_said_so(page, server):
    """Pinning an operation over another pinned one leaves no plan: the pin is undone, the status line says so (only
    here) with the clash in Korean, and the plan before it stays on the chart."""
    sign_in(page, server.acme.mes)
    run_plan(page)

    def pin(job: str, machine: str, start: int) -> None:
        page.click(f'#gantt g.op[data-job="{job}"][data-op="mould"]')
        page.wait_for_selector("#pin-form")
        page.select_option("#pin-machine", machine)
        page.fill("#pin-start", str(start))
        page.click("#pin-submit")
        wait_js(page, "!document.getElementById('solve-btn').disabled")

    pin("J-1001", "IMM-01", 0)
    page.wait_for_selector('#gantt g.op[data-job="J-1001"][data-op="mould"][data-pinned="true"]')
    assert "방금 한 고정" not in page.inner_text("#status")
    pin("J-1002", "IMM-01", 30)  # over J-1001's mould on IMM-01, 0-90
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    status = page.inner_text("#status")
    assert "방금 한 고정은 취소했습니다." in status, status
    assert "고정된 공정끼리 이미 규칙을 어깁니다: 설비 IMM-01 에서 J-1001/mould (0–90) 와(과) J-1002/mould (30–110) " \
           "이(가) 겹칩니다." in status, status
    assert not ENGLISH.search(status), status
    assert page.locator("#gantt g.op").count() == 12 and page.locator("#gantt-noplan").count() == 0
    assert "J-1002" not in page.inner_text("#pins") and "J-1001 / mould → IMM-01" in page.inner_text("#pins")


def _diagnose_types() -> set[str]:
    """Every reason type optimization/diagnose.py writes: its _reason("...") calls and its relaxations."""
    source = (Path(__file__).resolve().parents[2] / "optimization" / "diagnose.py").read_text()
    return set(re.findall(r'_reason\("(\w+)"', source)) | set(re.findall(r'out\.append\(\("(\w+)"', source))


# (reason as the server writes it, the Korean the console must show; None: shown as the server wrote it, marked)
NO_PLAN_REASONS = [
    ({"type": "horizon", "message": "job J-9 cannot end by the horizon 60: its release plus its operations on their "
      "fastest machines reach t=155 (60 more jobs cannot either)", "jobs": [f"J-{i}" for i in range(50)],
      "needs": 155, "horizon": 60},
     "작업 J-0 은(는) 계획 기간 60 안에 끝날 수 없습니다: 투입 시각에 공정마다 가장 빠른 설비의 시간을 "
     "더하면 t=155 입니다. 다른 작업 60건도 마찬가지입니다."),
    ({"type": "horizon", "message": "the work needs until t=900 at least (the busiest machine or the machines' total "
      "load), past the horizon 600", "needs": 900, "horizon": 600},
     "작업량으로 보아 적어도 t=900 까지 걸려(가장 바쁜 설비 또는 설비 전체의 부하) 계획 기간 600 을(를) 넘습니다."),
    ({"type": "horizon", "message": "without the horizon 600 there is a plan (it ends at t=815)",
      "relaxation": "horizon", "makespan": 815},
     "계획 기간 600 조건을 빼면 계획이 나옵니다 (t=815 에 끝남)."),
    ({"type": "pinned", "message": "without the pinned and started operations' times there is a plan (it ends at "
      "t=505)", "relaxation": "pinned", "makespan": 505},
     "고정·시작된 공정의 시각 조건을 빼면 계획이 나옵니다 (t=505 에 끝남)."),
    # a risky machine's window that cannot end in time (optimization/windows.py, and diagnose's horizon proof)
    ({"type": "horizon", "message": "machine M1's maintenance window of 60 ends at 60 at the earliest, after the "
      "plan's horizon 50", "machine": "M1", "needs": 60, "horizon": 50},
     "M1 의 고장 위험 정비는 빨라도 t=60 에 끝나 계획 기간 50 을(를) 넘습니다."),
    ({"type": "maintenance_deadline", "message": "machine M1's maintenance window of 60 ends at 110 at the earliest, "
      "after the maintenance deadline 100 (its downtimes and pinned operations come first)", "machine": "M1",
      "needs": 110, "deadline": 100},
     "M1 의 고장 위험 정비는 빨라도 t=110 에 끝나 정비 마감 100 을(를) 넘습니다."),
    # the maintenance crews' limit (failure_risk.crews): a window the crews held up, and the relaxation
    ({"type": "maintenance_deadline", "message": "machine M1's maintenance window of 10 ends at 30 at the earliest, "
      "after the maintenance deadline 25 (its downtimes and pinned operations come first, and the crew is on other "
      "machines' windows before then)", "machine": "M1", "needs": 30, "deadline": 25, "crews": 1},
     "M1 의 고장 위험 정비는 빨라도 t=30 에 끝나 정비 마감 25 을(를) 넘습니다. "
     "그 전에는 정비 팀(동시 1개)이 다른 설비를 정비합니다."),
    ({"type": "maintenance_crews", "message": "without the limit of 2 maintenance crews at once there is a plan (it "
      "ends at t=64)", "relaxation": "maintenance_crews", "makespan": 64, "crews": 2},
     "동시 정비 2개 팀 제한 조건을 빼면 계획이 나옵니다 (t=64 에 끝남)."),
    ({"type": "service_first", "message": "without servicing the risky machines before their work (service_first) "
      "there is a plan (it ends at t=105)", "relaxation": "service_first", "makespan": 105, "machines": ["M1"]},
     "위험 설비를 작업 전에 정비하는 규칙(service_first) 조건을 빼면 계획이 나옵니다 (t=105 에 끝남)."),
    ({"type": "maintenance_deadline", "message": "without the maintenance deadline 300 there is a plan (it ends at "
      "t=520)", "relaxation": "maintenance_deadline", "makespan": 520},
     "정비 마감 300 조건을 빼면 계획이 나옵니다 (t=520 에 끝남)."),
    ({"type": "peak_power", "message": "without the peak power cap of 80 kW there is a plan (it ends at t=455)",
      "relaxation": "peak_power", "makespan": 455},
     "최대 전력 한도 80 kW 조건을 빼면 계획이 나옵니다 (t=455 에 끝남)."),
    # a proof: an operation finds no stretch long enough under the cap with the base load (diagnose.py _power_room)
    ({"type": "peak_power", "message": "job 'J-1001' operation 'mould' (35 kW for 90 time units at the least) fits "
      "under the peak power cap of 140 kW nowhere: with the base load, the cap leaves it stretches of at most 60 time "
      "units after the job's release (t=0), and the last base load (40 kW, from t=480 on) leaves it none",
      "job": "J-1001", "operation": "mould", "peak_cap_kw": 140},
     "J-1001/mould (35 kW, 최소 90 시간 단위)은(는) 최대 전력 한도 140 kW 아래 어디에도 들어가지 않습니다: "
     "기본 부하를 더하면 투입 시각(t=0) 뒤로 한도 아래 구간이 길어야 60 시간 단위입니다. "
     "마지막 기본 부하(40 kW, t=480 부터 계속)로는 자리가 없습니다."),
    ({"type": "pinned", "message": "the pinned operations alone break a rule: overlap: machine IMM-01: job J-1001 op "
      "mould [0,90) overlaps job J-1002 op mould [30,110)"},
     "고정된 공정끼리 이미 규칙을 어깁니다: 설비 IMM-01 에서 J-1001/mould (0–90) 와(과) "
     "J-1002/mould (30–110) 이(가) 겹칩니다."),
    ({"type": "pinned", "message": "the pinned or started operations alone break a rule: calendar: job J-1 op mould "
      "[230,320) on IMM-01 overlaps holiday [240,270)"},
     "고정·시작된 공정끼리 이미 규칙을 어깁니다: J-1/mould (230–320) 이(가) IMM-01 의 휴일 (240–270) 와(과) 겹칩니다."),
    ({"type": "pinned", "message": "the pinned operations alone break a rule: maintenance: job J-1 op mould [100,150) "
      "on IMM-02 overlaps maintenance [120,180)"},
     "고정된 공정끼리 이미 규칙을 어깁니다: J-1/mould (100–150) 이(가) IMM-02 의 정비 (120–180) 와(과) 겹칩니다."),
    ({"type": "pinned", "message": "the pinned operations alone break a rule: precedence: job J-1 op trim starts at 50 "
      "before job J-1 op mould ends at 90 (+lag 5)"},
     "고정된 공정끼리 이미 규칙을 어깁니다: J-1/trim 이(가) 50 에 시작해, "
     "앞 공정 J-1/mould 이(가) 끝나는 90 + 5 보다 이릅니다."),
    ({"type": "pinned", "message": "the pinned operations alone break a rule: horizon: job J-1 op trim ends at 700 "
      "after horizon 600"},
     "고정된 공정끼리 이미 규칙을 어깁니다: J-1/trim 이(가) 계획 기간 600 을(를) 넘은 700 에 끝납니다."),
    ({"type": "pinned", "message": "the pinned operations alone break a rule: release: job J-1 op mould starts at 0 "
      "before release 30"},
     "고정된 공정끼리 이미 규칙을 어깁니다: J-1/mould 이(가) 투입 시각 30 전인 0 에 시작합니다."),
    ({"type": "pinned", "message": "the pinned operations alone break a rule: peak_power: power 150.0 kW at t=0 "
      "exceeds cap 140.0 kW"},
     "고정된 공정끼리 이미 규칙을 어깁니다: t=0 의 전력 150.0 kW 가 최대 전력 한도 140.0 kW 를 넘습니다."),
    ({"type": "pinned", "message": "the pinned operations alone break a rule: duration: job J-1 op mould on IMM-01 "
      "lasts 10, needs 90"}, None),
    # a pinned or started operation over a calendar entry, or before the work that must come first, and the pins a
    # relaxation names (optimization/diagnose.py's _calendar_clashes, _early_pins, _pins_named)
    ({"type": "pinned", "message": "job 'A' operation 'a' is pinned on M1 at t=80 and runs until t=130, across the "
      "holiday [100,200) on M1: move the pin to end by t=100 or to start at t=200 or later, or leave its time to the "
      "planner (no pin)", "job": "A", "operation": "a", "machine": "M1",
      "calendar": {"start": 100, "end": 200, "kind": "holiday"}},
     "A/a 은(는) M1 의 t=80 에 고정되어 t=130 까지 이어지므로 휴일 (100–200) 에 걸칩니다. "
     "t=100 까지 끝나게 옮기거나 t=200 이후에 시작하게 고정하거나, 고정을 풀어 계획에 맡기세요."),
    ({"type": "pinned", "message": "job 'A' operation 'a' is pinned on M1 at t=80 and runs until t=130, across the "
      "break [100,120) on M1: move the pin to end by t=100 or to start at t=120 or later, or leave its time to the "
      "planner (no pin), or let it run through breaks (can_span_break true)", "job": "A", "operation": "a",
      "machine": "M1", "calendar": {"start": 100, "end": 120, "kind": "break"}},
     "A/a 은(는) M1 의 t=80 에 고정되어 t=130 까지 이어지므로 휴식 (100–120) 에 걸칩니다. "
     "t=100 까지 끝나게 옮기거나 t=120 이후에 시작하게 고정하거나, 고정을 풀어 계획에 맡기세요. "
     "또는 휴식을 넘겨 이어서 하게(can_span_break=true) 하세요."),
    ({"type": "pinned", "message": "job 'A' operation 'a' is started (already running) on M1 since t=-10 and runs "
      "until t=40, across the holiday [10,200) on M1: a running operation cannot stop for it: if M1 works on through "
      "it, shorten or remove that holiday in the machine's calendar for this plan; if the operation pauses there, "
      "give the part left after the holiday as an operation that is not started", "job": "A", "operation": "a",
      "machine": "M1", "calendar": {"start": 10, "end": 200, "kind": "holiday"}},
     "A/a 은(는) M1 에서 t=-10 부터 진행 중이고 t=40 까지 이어지므로 휴일 (10–200) 에 걸칩니다. "
     "진행 중인 공정은 멈출 수 없습니다. M1 이(가) 그동안에도 일한다면 이 계획에서 그 휴일 을(를) 줄이거나 빼고, "
     "공정이 그때 멈춘다면 휴일 뒤에 남은 부분을 시작하지 않은 공정으로 넣으세요."),
    ({"type": "pinned", "message": "job 'A' operation 'a' is started (already running) on M1 since t=-10 and runs "
      "until t=40, across the break [10,20) on M1: it is given can_span_break false; a running operation runs "
      "through a break unless told otherwise: leave can_span_break out (or set it true), or, if it does stop for "
      "the break, give the part left after the break as an operation that is not started", "job": "A",
      "operation": "a", "machine": "M1", "calendar": {"start": 10, "end": 20, "kind": "break"}},
     "A/a 은(는) M1 에서 t=-10 부터 진행 중이고 t=40 까지 이어지므로 휴식 (10–20) 에 걸칩니다. "
     "이 공정에는 can_span_break=false 가 주어졌지만, 진행 중인 공정은 따로 정하지 않으면 휴식을 넘겨 이어집니다. "
     "can_span_break 를 빼거나 true 로 하고, 정말 휴식에 멈춘다면 휴식 뒤에 남은 부분을 "
     "시작하지 않은 공정으로 넣으세요."),
    ({"type": "pinned", "message": "job 'A' operation 'b' is pinned on M2 at t=30, but it cannot start before t=60: "
      "job 'A' is released at t=10, then operation 'a' takes 50. Pin it at t=60 or later, or leave its time to the "
      "planner (no pin)", "job": "A", "operation": "b", "start": 30, "earliest": 60},
     "A/b 은(는) t=30 에 고정되어 있지만, 그 앞에 해야 할 작업 때문에 t=60 전에는 시작할 수 없습니다. "
     "t=60 이후로 고정하거나 고정을 풀어 계획에 맡기세요. 앞선 작업: 작업 A 투입 t=10 → A/a 50분."),
    ({"type": "pinned", "message": "job 'A' operation 'b' is started (already running) on M2 since t=-5, but the "
      "work that must come before it cannot end before t=50: job 'A' is released at t=0, then operation 'a' takes "
      "50. If that work is done, leave it out of the plan (or give it as started where it is still running); "
      "otherwise this operation cannot be running yet", "job": "A", "operation": "b", "start": 0, "earliest": 50},
     "A/b 은(는) 진행 중으로 되어 있지만, 그 앞에 해야 할 작업이 t=50 전에는 끝날 수 없습니다. 그 작업이 끝났다면 "
     "계획에서 빼고(아직 진행 중이면 시작됨으로 넣고), 아니라면 이 공정은 아직 진행 중일 수 없습니다. "
     "앞선 작업: 작업 A 투입 t=0 → A/a 50분."),
    ({"type": "pinned", "message": "job 'C' operation 'c' is pinned on M3 at t=5, but it cannot start before t=95: "
      "job 'B' operation 'x' is pinned on M1 at t=0, then job 'B' operation 'y' takes 40 (on its fastest machine), "
      "then a lag of 5; operation 'z' takes 50. Pin it at t=95 or later, or leave its time to the planner (no pin)",
      "job": "C", "operation": "c", "start": 5, "earliest": 95},
     "C/c 은(는) t=5 에 고정되어 있지만, 그 앞에 해야 할 작업 때문에 t=95 전에는 시작할 수 없습니다. "
     "t=95 이후로 고정하거나 고정을 풀어 계획에 맡기세요. "
     "앞선 작업: B/x: t=0, M1 에 고정 → B/y 40분 (가장 빠른 설비에서), 이어서 대기 5분 → C/z 50분."),
    ({"type": "pinned", "message": "without the pinned and started operations' times (job 'A' operation 'a' pinned "
      "on M1 at t=80; job 'B' operation 'b' started (already running) on M2 since t=-10) there is a plan (it ends "
      "at t=130)", "relaxation": "pinned", "makespan": 130},
     "고정·시작된 공정의 시각(A/a: t=80, M1 에 고정; B/b: t=-10 부터 M2 에서 진행 중) 조건을 빼면 계획이 나옵니다 "
     "(t=130 에 끝남)."),
    ({"type": "pinned", "message": "without the 7 pinned operations' times there is a plan (it ends at t=400)",
      "relaxation": "pinned", "makespan": 400},
     "고정·시작된 공정 7개의 시각 조건을 빼면 계획이 나옵니다 (t=400 에 끝남)."),
    ({"type": "unchecked", "message": "no time was left to check whether the pinned operation's time (job 'A' "
      "operation 'a' pinned on M1 at t=80) is the cause"},
     "시간이 모자라 고정·시작된 공정의 시각(A/a: t=80, M1 에 고정) 조건이 원인인지 확인하지 못했습니다."),
    ({"type": "unchecked", "message": "no time was left to check whether the horizon 600 is the cause"},
     "시간이 모자라 계획 기간 600 조건이 원인인지 확인하지 못했습니다."),
    ({"type": "unchecked", "message": "no time was left to check whether the pinned and started operations' times is "
      "the cause"},
     "시간이 모자라 고정·시작된 공정의 시각 조건이 원인인지 확인하지 못했습니다."),
    ({"type": "unchecked", "message": "no time was left to check whether the maintenance deadline 300 is the cause"},
     "시간이 모자라 정비 마감 300 조건이 원인인지 확인하지 못했습니다."),
    ({"type": "unchecked", "message": "no time was left to check whether the peak power cap of 80 kW is the cause"},
     "시간이 모자라 최대 전력 한도 80 kW 조건이 원인인지 확인하지 못했습니다."),
    ({"type": "unchecked", "message": "the solve was stopped before it checked whether the horizon 600 is the cause"},
     "계산이 중단되어 계획 기간 600 조건이 원인인지 확인하지 못했습니다."),
    ({"type": "dispatch", "message": "the dispatching rules found no plan: no dispatching rule produced a plan"},
     "디스패칭 규칙으로 계획을 만들지 못했습니다: 어느 규칙도 계획을 내지 못했습니다."),
    ({"type": "dispatch", "message": "the dispatching rules found no plan: dispatching rule 'atc' did not finish its "
      "plan of 5000 operations within the time limit"},
     "디스패칭 규칙으로 계획을 만들지 못했습니다: 공정 5000개의 계획을 시간 제한 안에 끝내지 못했습니다."),
    ({"type": "dispatch", "message": "the dispatching rules found no plan: peak power cap too low: an operation of "
      "35 kW never fits under 60 kW with the base load after t=480"},
     "디스패칭 규칙으로 계획을 만들지 못했습니다: 최대 전력 한도가 너무 낮습니다. "
     "35 kW 공정이 t=480 이후 기본 부하와 함께 60 kW 아래에 들어가지 않습니다."),
    ({"type": "dispatch", "message": "the dispatching rules found no plan: dispatching could not place every "
      "operation (precedence with a pinned operation?)"},
     "디스패칭 규칙으로 계획을 만들지 못했습니다: 모든 공정을 배치하지 못했습니다 "
     "(고정된 공정과의 선후 관계 때문일 수 있습니다)."),
    ({"type": "dispatch", "message": "the dispatching rules found no plan: a reason added later"}, None),
    ({"type": "model_too_large", "message": "the CP-SAT model of 12,000 operations could not be built within the "
      "time limit"},
     "공정 12,000개의 CP-SAT 모델을 시간 제한 안에 만들지 못했습니다."),
    ({"type": "model_too_large", "message": "the setups of 12,000 operations would take about 40 s to build into "
      "the CP-SAT model, past the time limit"},
     "공정 12,000개의 셋업을 CP-SAT 모델에 넣는 데 약 40초가 걸려 시간 제한을 넘습니다."),
    ({"type": "model_too_large", "message": "the energy cost tables would hold 9,000,000 entries (at most 2,000,000 "
      "in this time limit): the plan spans too many time units for the exact energy term"},
     "에너지 비용 표가 9,000,000개 항목이 되어(이 시간 제한에서는 최대 2,000,000개) "
     "정확한 에너지 비용을 모델에 넣을 수 없습니다. 계획이 너무 많은 시간 단위에 걸칩니다."),
    ({"type": "model_too_large", "message": "energy cost of operation ('J-1', 'mould') too large for the model "
      "(3,000,000,000 cents)"},
     "공정 ('J-1', 'mould') 의 에너지 비용이 모델에 넣기에 너무 큽니다."),
    ({"type": "model_too_large", "message": "a limit added later"}, None),
    ({"type": "time_limit", "message": "no plan was found within the time limit; give the solve more time "
      "(time_limit_s), or run it as a background job"},
     "시간 제한 안에 계획을 찾지 못했습니다. 시간 제한을 늘리세요 (30초보다 길면 백그라운드 작업으로 실행합니다)."),
    ({"type": "combination", "message": "no single rule (horizon, pins, maintenance deadline, peak power cap) "
      "explains it alone: several of them together leave no plan"},
     "한 가지 규칙(계획 기간, 고정, 정비 마감, 최대 전력 한도)만으로는 설명되지 않습니다. "
     "여러 규칙이 함께 계획을 막습니다."),
    ({"type": "stopped", "message": "the solve was stopped (e.g. its job was cancelled) before it found a plan"},
     "계획을 찾기 전에 계산이 중단되었습니다 (예: 백그라운드 작업 취소)."),
    ({"type": "combination", "message": "the problem's rules leave no plan"},
     "이 문제의 규칙으로는 계획이 나오지 않습니다."),
    ({"type": "brand_new", "message": "a reason of a type this console does not know"}, None),
]


def test_every_no_plan_reason_reads_in_korean(page, server):
    """Every reason type optimization/diagnose.py writes is put in Korean from its fields (the values a message alone
    carries read off it); a type the console does not know, or a detail of the solver's it cannot word, is shown
    as the server wrote it, marked "(영문)" as the API's untranslated messages are."""
    assert _diagnose_types() <= {r["type"] for r, _ in NO_PLAN_REASONS}, _diagnose_types()
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    page.route("**/v1/scheduling/solve", lambda route: route.fulfill(**_no_plan_answer(
        "INFEASIBLE", [r for r, _ in NO_PLAN_REASONS])))
    page.click("#solve-btn")
    page.wait_for_selector("#no-plan-reasons")
    items = page.locator("#no-plan-reasons li")
    assert items.count() == len(NO_PLAN_REASONS)
    for i, (reason, korean) in enumerate(NO_PLAN_REASONS):
        li = items.nth(i)
        text = li.inner_text().strip()
        assert li.get_attribute("title") == reason["message"]
        marked = li.locator(".reason-en [lang=en]")
        if korean is not None:
            assert text == korean, (reason["type"], text)
            assert not ENGLISH.search(text) and marked.count() == 0, text
        else:  # the server's English, marked as such; a known type keeps its Korean part
            assert "서버 메시지 (영문):" in text, text
            assert marked.count() == 1 and marked.inner_text() in reason["message"], text
            assert not ENGLISH.search(text.split("서버 메시지 (영문):")[0]), text
    status = page.inner_text("#status")
    assert status.startswith("이 조건으로는 계획이 불가능합니다 (불가능). 원인: 작업 J-0 은(는)"), status
    assert "최대 전력 한도 80 kW 조건을 빼면 계획이 나옵니다" in status and "서버 메시지 (영문):" in status
    assert "방금 한 고정" not in status

    # no plan within the time limit (UNKNOWN) is said as such, not as "impossible"
    page.unroute("**/v1/scheduling/solve")
    time_limit = next(r for r, _ in NO_PLAN_REASONS if r["type"] == "time_limit")
    page.route("**/v1/scheduling/solve", lambda route: route.fulfill(**_no_plan_answer("UNKNOWN", [time_limit])))
    page.click("#solve-btn")
    wait_js(page, "document.getElementById('gantt-noplan')?.dataset.status === 'UNKNOWN'")
    status = page.inner_text("#status")
    assert status.startswith("시간 제한 안에 계획을 찾지 못했습니다. 원인: 시간 제한 안에 계획을 찾지 "
                             "못했습니다. 시간 제한을 늘리세요"), status
    assert "불가능" not in status
    assert "상태: 미확정 (시간 안에 계획 없음)." in page.inner_text("#plan-summary")


def _diagnosed(doc: dict, seconds: float) -> list[dict]:
    """What optimization/diagnose.py answers now for `doc` without a plan (its relaxed solves given `seconds`)."""
    from optimization.diagnose import why_no_plan
    from optimization.io import problem_from_dict
    from optimization.solution import Schedule

    return why_no_plan(problem_from_dict(doc), Schedule(assignments=[], status="INFEASIBLE"),
                       time.perf_counter() + seconds, min_s=0.0)


def test_the_reasons_the_server_writes_now_read_in_korean(page, server):
    """The reasons optimization/diagnose.py writes today (not copies of its messages, which may drift) for pins that
    clash, a pin over a holiday or before the work that must come first, a short horizon, rules whose removal gives a
    plan and rules left unchecked: each one in Korean, none left in English."""
    sample = json.loads(SAMPLE_PLAN.read_text())

    def changed(**change) -> dict:
        doc = json.loads(json.dumps(sample))
        doc.update(change)
        return doc

    pins = changed()
    pins["jobs"][0]["operations"][0]["pinned"] = {"machine": "IMM-01", "start": 0}
    pins["jobs"][1]["operations"][0]["pinned"] = {"machine": "IMM-01", "start": 30}
    capped = changed(horizon=600, energy={**sample["energy"], "peak_cap_kw": 80})
    capped_pin = json.loads(json.dumps(capped))
    capped_pin["jobs"][0]["operations"][0]["pinned"] = {"machine": "IMM-01", "start": 0}
    reasons = [
        *_diagnosed(pins, 5),
        *_diagnosed({"machines": [{"id": "M1", "calendar": [{"start": 100, "end": 200, "kind": "holiday"}]}],
                     "jobs": [{"id": "A", "operations": [{"id": "a", "machines": {"M1": 50},
                                                          "pinned": {"machine": "M1", "start": 80}}]}]}, 5),
        *_diagnosed({"machines": ["M1", "M2"], "jobs": [{"id": "A", "release": 10, "operations": [
            {"id": "a", "machines": {"M1": 50}}, {"id": "b", "machines": {"M2": 10},
                                                  "pinned": {"machine": "M2", "start": 30}}]}]}, 5),
        *_diagnosed({"machines": ["M1", {"id": "T1", "calendar": [{"start": 0, "end": 360, "kind": "shift"}]}, "P1"],
                     "jobs": [{"id": "J", "operations": [  # a step the machine's downtime makes end later
                         {"id": "mould", "machines": {"M1": 75}}, {"id": "trim", "machines": {"T1": 39}},
                         {"id": "pack", "machines": {"P1": 20}, "pinned": {"machine": "P1", "start": 374}}]}]}, 5),
        *_diagnosed(changed(horizon=60), 5),
        *_diagnosed(capped, 8),  # without the horizon, without the peak cap: a plan
        *_diagnosed(capped_pin, 0),  # no time left: each rule unchecked
    ]
    assert {r["type"] for r in reasons} >= {"pinned", "horizon", "peak_power", "unchecked"}, reasons
    sign_in(page, server.acme.mes)
    page.wait_for_selector("#gantt .gantt-empty")
    page.route("**/v1/scheduling/solve", lambda route: route.fulfill(**_no_plan_answer("INFEASIBLE", reasons)))
    page.click("#solve-btn")
    page.wait_for_selector("#no-plan-reasons")
    texts = page.locator("#no-plan-reasons li").all_inner_texts()
    assert len(texts) == len(reasons)
    for reason, text in zip(reasons, texts, strict=True):
        assert "(영문)" not in text and not ENGLISH.search(text), (reason["message"], text)


def test_a_longer_plan_is_fitted_and_a_zoom_kept_while_the_plan_fits(page, server):
    """A re-plan keeps the chart's zoom while the new plan still fits the view (or the view shows only part of it),
    and fits the chart again when the new plan ends past the view, so that no bar lies off-screen unseen."""
    sign_in(page, server.acme.mes)
    page.fill("#time-limit", "3")
    run_plan(page)
    view = "gantt.view().scale"
    page.click("#zoom-out")  # the whole plan in view, with room to spare: a re-plan that fits keeps this zoom
    zoomed = page.evaluate(view)
    run_plan(page)
    assert page.evaluate(view) == zoomed
    page.click("#zoom-fit")
    page.click("#zoom-in")  # part of the plan in view: the planner zoomed in on purpose, and it is kept
    zoomed = page.evaluate(view)
    run_plan(page)
    assert page.evaluate(view) == zoomed
    page.click("#zoom-fit")
    fitted = page.evaluate(view)

    def later(route) -> None:  # noqa: ANN001 - the same plan 600 minutes later: it ends past the fitted view
        answer = route.fetch()
        doc = answer.json()
        for row in doc["gantt"]:
            row["start"] += 600
            row["end"] += 600
        doc["makespan"] += 600
        route.fulfill(response=answer, json=doc)

    page.route("**/v1/scheduling/solve", later)
    run_plan(page)
    assert page.evaluate(view) < fitted
    off = page.evaluate("""() => { const svg = document.querySelector('#gantt svg');
        const w = Number(svg.getAttribute('width'));
        const right = (r) => Number(r.getAttribute('x')) + Number(r.getAttribute('width'));
        return [...svg.querySelectorAll('g.op rect.body')].filter((r) => right(r) > w).length; }""")
    assert off == 0


def test_csv_export_marks_every_operation_of_a_late_job_as_the_chart_does(page, server):
    """The chart marks every operation of a late job; the CSV's `job_late` column says the same for every row, while
    `late` keeps the server's meaning (the job's last operation, where it ends late)."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.mes)
    run_plan(page)
    bars = page.eval_on_selector_all("#gantt g.op", "gs => gs.map(g => [g.dataset.job, g.dataset.op, g.dataset.late])")
    late_jobs = {job for job, _, late in bars if late == "true"}
    assert late_jobs
    with page.expect_download() as dl:
        page.click("#export-csv")
    rows = list(csv_module.DictReader(io.StringIO(Path(dl.value.path()).read_text(encoding="utf-8-sig"))))
    ops = [r for r in rows if r["job"]]
    assert len(ops) == len(bars)
    chart = {(job, op): late for job, op, late in bars}
    for r in ops:
        assert r["job_late"] == chart[(r["job"], r["operation"])], r  # as the chart shows it
        assert r["job_late"] == ("true" if r["job"] in late_jobs else "false"), r
    for job in late_jobs:
        mine = [r for r in ops if r["job"] == job]
        assert len(mine) == 2 and all(r["job_late"] == "true" for r in mine)
        assert [r["late"] for r in mine].count("true") == 1  # the server's: its last operation only
    assert all(r["job_late"] == "false" for r in rows if not r["job"])  # maintenance windows
    assert all(r["reason"] == "failure risk" for r in rows if not r["job"])  # why each window is there
    started = {(j["id"], o["id"]) for j in page.evaluate("S.solved.jobs") for o in j["operations"] if o.get("started")}
    assert all(r["started"] == ("true" if (r["job"], r["operation"]) in started else "false") for r in ops)


def test_counts_in_messages_are_singular_or_plural(page, server):
    """'Loaded 1 order, 1 operation, 1 machine.', not '1 orders, ... 1 machines'; Korean counts read as Korean."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.mes)
    one = {"name": "one", "machines": ["M1"], "jobs": [{"id": "A", "operations": [{"id": "o", "machines": {"M1": 5}}]}]}
    one_file = {"name": "one.json", "mimeType": "application/json", "buffer": json.dumps(one).encode()}
    page.set_input_files("#orders-file", one_file)
    wait_js(page, "document.getElementById('status').textContent.startsWith('Loaded')")
    assert page.inner_text("#status") == "Loaded 1 order, 1 operation, 1 machine."
    page.click("#load-sample")
    wait_js(page, "document.getElementById('status').textContent.includes('6 orders')")
    assert page.inner_text("#status") == "Loaded 6 orders, 12 operations, 3 machines."
    page.select_option("#lang-select", "ko")
    assert page.inner_text("#status") == "주문 6건, 공정 12개, 설비 3대를 불러왔습니다."
    page.set_input_files("#orders-file", one_file)
    wait_js(page, "document.getElementById('status').textContent.includes('1건')")
    assert page.inner_text("#status") == "주문 1건, 공정 1개, 설비 1대를 불러왔습니다."
    page.select_option("#lang-select", "en")
    run_plan(page)
    assert page.inner_text("#status").endswith(", 0 late jobs.")


# ------------------------------------------------------------------------------------------------ tenant-admin audit
ADMIN_TABLES = ("subs-table", "keys-table", "usage-table")

# every word (and every button) of the admin tables that the browser broke over more than one line ("모/듈")
SPLIT_WORDS = """(ids) => {
  const lines = (r) => new Set([...r.getClientRects()].filter((x) => x.width > 0).map((x) => Math.round(x.top))).size;
  const bad = [];
  for (const id of ids) {
    const table = document.getElementById(id);
    const walker = document.createTreeWalker(table, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      for (const m of n.data.matchAll(/\\S+/g)) {
        const r = document.createRange();
        r.setStart(n, m.index);
        r.setEnd(n, m.index + m[0].length);
        if (lines(r) > 1) bad.push(id + ': ' + m[0]);
      }
    }
    for (const b of table.querySelectorAll('button')) {
      const r = document.createRange();
      r.selectNodeContents(b);
      if (lines(r) > 1) bad.push(id + ' button: ' + b.textContent);
    }
  }
  return bad;
}"""


def test_subscribe_form_offers_only_what_the_console_can_subscribe(page, server):
    """The server refuses the platform module and the enterprise plan (the operator's): the form does not offer
    them. The usage log's filter still has the platform calls."""
    sign_in(page, server.acme.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#subs-table tbody tr")
    values = "(id) => [...document.querySelectorAll('#' + id + ' option')].map((o) => o.value)"
    assert page.evaluate(values, "sub-module") == ["quality", "maintenance", "energy", "scheduling"]
    assert page.evaluate(values, "sub-plan") == ["trial", "standard"]
    assert page.input_value("#sub-plan") == "standard"
    assert "platform" in page.evaluate(values, "usage-module")


def test_admin_tables_in_korean_on_a_phone_scroll_instead_of_breaking_words(page, server, tmp_path):
    """At 390 px, in Korean, the admin tables keep their words and buttons whole ("모듈", not "모/듈"; no column of
    single characters for a button) and scroll sideways inside their card; the page is not much taller than in
    English. The buttons read in Korean order ("에너지 구독 해지", "KEY 폐기"), the welcome has no stray particle."""
    for _ in range(5):  # five rows for the usage log, whatever ran before
        assert httpx.get(server.base + "/v1/tenant", headers=bearer(server.acme.admin)).status_code == 200
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, server.acme.admin)
    status = page.inner_text("#status")
    assert status.startswith("acme에 로그인했습니다 (역할: 관리자)"), status  # no " 로 " after the name
    page.click("#tab-admin")
    for id_ in ADMIN_TABLES:
        page.wait_for_selector(f"#{id_} tbody tr")
    page.fill("#usage-limit", "5")
    page.click("#usage-apply")
    wait_js(page, "document.querySelectorAll('#usage-table tbody tr').length === 5")

    assert page.evaluate(SPLIT_WORDS, list(ADMIN_TABLES)) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the page does not widen ...
    for id_ in ADMIN_TABLES:  # ... each table scrolls in its own box, within its card
        box = page.evaluate(f"(() => {{ const b = document.getElementById('{id_}').parentElement;"
                            " return [b.className, b.scrollWidth, b.clientWidth, getComputedStyle(b).overflowX]; })()")
        assert box[0] == "table-scroll" and box[3] == "auto", (id_, box)
    subs = page.evaluate("(() => { const b = document.getElementById('subs-table').parentElement;"
                         " return b.scrollWidth > b.clientWidth; })()")
    assert subs, "the subscriptions table fits 390 px only by squeezing its columns"
    assert page.evaluate("getComputedStyle(document.querySelector('#subs-table th')).wordBreak") == "keep-all"

    # natural Korean order: the object first, then the verb; the own key's note says what revoking it does
    assert page.inner_text('#subs-table button[data-unsub="energy"]') == "에너지 구독 해지"
    other = page.locator("#keys-table button[data-revoke]:not([data-own])").first
    assert other.inner_text() == other.get_attribute("data-revoke") + " 폐기"
    own = page.inner_text("#keys-table button[data-own]")
    assert own == f"{server.acme.admin_key_id} 폐기 (폐기하면 로그아웃)", own
    shot(page, tmp_path, "admin-phone-ko-tables")

    # Korean is not much taller than English (it was 7,647 px against 4,447)
    ko_height = page.evaluate("document.documentElement.scrollHeight")
    page.select_option("#lang-select", "en")
    wait_js(page, "document.querySelector('#usage-table th:nth-child(2)')?.textContent === 'Time (UTC)'")
    wait_js(page, "document.querySelectorAll('#usage-table tbody tr').length === 5")
    assert page.evaluate(SPLIT_WORDS, list(ADMIN_TABLES)) == []
    assert page.inner_text('#subs-table button[data-unsub="energy"]') == "Unsubscribe Energy"
    en_height = page.evaluate("document.documentElement.scrollHeight")
    assert ko_height <= en_height * 1.15, (ko_height, en_height)


def test_usage_log_pages_back_and_filters_by_key_name(page, server):
    """The usage table showed at most 1,000 of the newest calls with no way further back, and keys by id only
    (tenant-admin audit). "Older records" appends the next page (the API's before_seq) with the same filters; each
    row names its key; the key filter keeps one key's calls."""
    made = httpx.post(server.base + "/v1/apikeys", json={"role": "mes", "name": "line-7"},
                      headers=bearer(server.acme.admin)).json()  # a key of this test's own: the others' calls vary
    mes_id = made["key_id"]
    for _ in range(4):
        assert httpx.get(server.base + "/v1/maintenance/status", headers=bearer(made["api_key"])).status_code == 200
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#usage-table tbody tr")
    wait_js(page, f"[...document.querySelectorAll('#usage-key option')].some((o) => o.value === '{mes_id}')")
    page.fill("#usage-limit", "3")
    page.click("#usage-apply")
    wait_js(page, "document.querySelectorAll('#usage-table tbody tr').length === 3")
    assert page.is_visible("#usage-more") and page.inner_text("#usage-more") == "Older records"
    page.click("#usage-more")
    wait_js(page, "document.querySelectorAll('#usage-table tbody tr').length === 6")
    seqs = [int(x) for x in page.locator("#usage-table tbody tr td:nth-child(1)").all_inner_texts()]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == 6, seqs  # older, none twice
    # a filter changed in the form without Apply: the next older page keeps the filters of the rows on screen
    page.select_option("#usage-key", mes_id)
    with page.expect_response(lambda r: "/v1/usage?" in r.url and "before_seq" in r.url) as older:
        page.click("#usage-more")
    assert "key_id" not in older.value.url and "limit=3" in older.value.url, older.value.url
    page.select_option("#usage-key", "")
    assert page.inner_text("#usage-table th:nth-child(7)") == "API key"

    page.select_option("#usage-key", mes_id)
    page.fill("#usage-limit", "1000")
    page.click("#usage-apply")
    wait_js(page, "document.querySelectorAll('#usage-table tbody tr').length === 4")
    assert set(page.locator("#usage-table tbody tr td:nth-child(7)").all_inner_texts()) == {f"line-7 {mes_id}"}
    assert page.is_hidden("#usage-more")  # four calls, one page
    assert "4 calls" in page.inner_text("#usage-summary"), page.inner_text("#usage-summary")


def test_a_good_usage_load_clears_the_date_error_and_the_dates_are_utc(page, server):
    """Dates the wrong way round are refused on the status line; once corrected, the next good load clears that
    line too (not only the message under the form). The date pickers say that they are UTC days."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#usage-table tbody tr")
    assert page.inner_text('label[for="usage-from"]') == "From (UTC)"
    assert page.inner_text('label[for="usage-to"]') == "To (UTC, exclusive)"
    assert page.inner_text("#usage-table th:nth-child(2)") == "Time (UTC)"

    page.fill("#usage-from", "2026-12-06")
    page.fill("#usage-to", "2026-12-06")
    page.click("#usage-apply")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    assert "The end date must be after the start date" in page.inner_text("#status")
    page.fill("#usage-to", "2026-12-07")
    with page.expect_response(lambda r: "/v1/usage?" in r.url and "to=2026-12-07" in r.url) as answer:
        page.click("#usage-apply")
    assert answer.value.ok
    wait_js(page, "!document.getElementById('usage-apply').disabled")
    assert page.is_hidden("#usage-range-error")
    assert page.get_attribute("#status", "class") == "status" and page.inner_text("#status") == ""

    # a message that took the error's place since is not cleared by a later load
    page.fill("#usage-to", "2026-12-06")
    page.click("#usage-apply")
    wait_js(page, "document.getElementById('status').classList.contains('error')")
    page.select_option("#lang-select", "ko")
    assert "종료일" in page.inner_text("#status")
    assert page.inner_text('label[for="usage-from"]') == "시작일 (UTC)"
    assert page.inner_text('label[for="usage-to"]') == "종료일 (UTC, 미포함)"
    page.fill("#usage-to", "2026-12-07")
    with page.expect_download():
        page.click("#usage-export")
    wait_js(page, "!document.getElementById('status').classList.contains('error')")
    exported = page.inner_text("#status")
    assert exported.startswith("sfai-usage-acme") or "sfai-usage-acme" in exported, exported
    with page.expect_response(lambda r: "/v1/usage?" in r.url):
        page.click("#usage-apply")
    wait_js(page, "!document.getElementById('usage-apply').disabled")
    assert page.inner_text("#status") == exported
