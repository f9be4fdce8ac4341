"""Accessibility of the web console (WCAG 2.1 AA): the Gantt chart's contrast, keyboard use and structure, the late
marking beyond colour, focus kept through re-renders, control contrast and errors tied to their fields. Same
browser and server as test_console.py (its fixtures)."""

# ruff: noqa: F811  (the fixtures imported from test_console.py are the tests' arguments)
from __future__ import annotations

import re

from tests.web.test_console import browser, page, run_plan, server, sign_in, wait_js  # noqa: F401

ACTIVE_BAR = ("[document.activeElement.dataset.job, document.activeElement.dataset.machine, "
              "document.activeElement.dataset.op]")
FOCUS_ID = "document.activeElement && (document.activeElement.id || document.activeElement.tagName)"


def _lum(rgb: str) -> float:
    rgb = rgb.strip()
    if rgb.startswith("#"):
        vals = [int(rgb[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        vals = [int(float(v)) for v in re.findall(r"[\d.]+", rgb)[:3]]
    c = [v / 255 for v in vals]
    c = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in c]
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


def contrast(a: str, b: str) -> float:
    la, lb = _lum(a), _lum(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def test_gantt_bar_labels_read_on_every_fill(page, server):
    sign_in(page, server.acme.admin)
    run_plan(page)
    pairs = page.eval_on_selector_all(
        "#gantt g.op", "gs => gs.filter(g => g.querySelector('text')).map(g => "
        "[g.querySelector('rect.body').getAttribute('fill'), g.querySelector('text').getAttribute('fill')])")
    assert len(pairs) >= 6
    for fill, text in pairs:
        assert contrast(fill, text) >= 4.5, (fill, text, contrast(fill, text))
    # the jobs stay told apart by their fills
    fills = page.evaluate("""(() => { const m = {}; for (const g of document.querySelectorAll('#gantt g.op'))
        m[g.dataset.job] = g.querySelector('rect.body').getAttribute('fill'); return Object.values(m); })()""")
    assert len(set(fills)) == len(fills) == 6
    # the palette itself: every colour reaches 4.5:1 with the label colour the chart picks for it
    for fill, text in page.evaluate("PALETTE.map(p => [p, labelColour(p)])"):
        assert contrast(fill, text) >= 4.5, fill


def test_gantt_is_one_tab_stop_with_arrow_keys_names_and_a_table(page, server):
    sign_in(page, server.acme.admin)
    run_plan(page)
    # a group of buttons, not an image (an image's children are presentational), named once
    assert page.get_attribute("#gantt svg", "role") != "img"
    assert page.get_attribute("#gantt svg", "aria-label") is None
    assert page.get_attribute("#gantt", "role") == "group"
    assert page.get_attribute("#gantt", "aria-roledescription") == "간트 차트"
    # one tab stop (a roving tabindex), not one per bar
    stops = page.eval_on_selector_all("#gantt g.op", "gs => gs.map(g => g.getAttribute('tabindex'))")
    assert stops.count("0") == 1 and stops.count("-1") == len(stops) - 1
    # names with units, the machine, and late / pinned in words
    names = page.eval_on_selector_all("#gantt g.op",
                                      "gs => gs.map(g => [g.getAttribute('aria-label'), g.dataset.late])")
    for name, late in names:
        assert re.match(r"^J-\d+ \w+, 설비 [A-Z]+-\d+, -?\d+–\d+분", name), name
        assert ("납기 지연" in name) == (late == "true"), name

    page.focus("#gantt-skip")
    page.keyboard.press("Tab")
    first = page.evaluate(ACTIVE_BAR)
    assert first[0] is not None
    page.keyboard.press("ArrowRight")
    second = page.evaluate(ACTIVE_BAR)
    assert second[1] == first[1] and second[0] != first[0]
    page.keyboard.press("ArrowDown")
    third = page.evaluate("document.activeElement.dataset.machine")
    assert third != first[1] and third is not None
    # the tab stop followed the focus: Tab leaves the chart at once
    stops = page.eval_on_selector_all("#gantt g.op",
                                      "gs => gs.filter(g => g.getAttribute('tabindex') === '0').length")
    assert stops == 1
    page.keyboard.press("Tab")
    assert not page.evaluate("!!document.activeElement.closest('#gantt')")
    # Enter on the bar opens its details
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.dataset.machine") == third
    page.keyboard.press("Enter")
    wait_js(page, "document.querySelector('#details-body b') !== null")

    # a way past the chart, and the plan as a table
    page.focus("#gantt-skip")
    page.keyboard.press("Enter")
    assert page.evaluate(FOCUS_ID) == "gantt-table-toggle"
    assert page.get_attribute("#gantt-table-toggle", "aria-expanded") == "false"
    page.keyboard.press("Enter")
    assert page.get_attribute("#gantt-table-toggle", "aria-expanded") == "true"
    assert page.locator("#gantt-table tbody tr").count() == page.locator("#gantt g.op").count() == 12
    assert page.locator("#gantt-table caption").count() == 1
    late_rows = page.locator("#gantt-table tbody tr td.late-tag:text('예')").count()
    assert late_rows == page.locator("#gantt g.op.late").count()


def test_focus_ring_shows_on_every_bar_keeps_the_late_border_and_pans_into_view(page, server):
    sign_in(page, server.acme.admin)
    run_plan(page)
    late = page.locator("#gantt g.op.late").first
    job, op = late.get_attribute("data-job"), late.get_attribute("data-op")
    page.focus(f'#gantt g.op[data-job="{job}"][data-op="{op}"]')
    focused = f'#gantt g.op[data-job="{job}"][data-op="{op}"]'
    rings = page.eval_on_selector_all(focused + " rect.focus-ring",
                                      "rs => rs.map(r => [getComputedStyle(r).visibility, r.getAttribute('stroke')])")
    # a dark ring and a white one: one of them contrasts with any fill and with the white background
    assert sorted(s for _, s in rings) == ["#14324f", "#ffffff"] and all(v == "visible" for v, _ in rings), rings
    body = page.eval_on_selector(focused + " rect.body",
                                 "r => [getComputedStyle(r).stroke, getComputedStyle(r).strokeWidth]")
    assert body == ["rgb(217, 45, 32)", "3px"], body  # the late border, while focused too
    # unfocused bars show no ring
    assert page.eval_on_selector_all("#gantt g.op:not(:focus) rect.focus-ring",
                                      "rs => rs.every(r => getComputedStyle(r).visibility === 'hidden')")

    # zoomed in, the chart's tab stop (the first bar, at 0) lies off the view: focusing it from the keyboard pans to it
    page.evaluate("document.activeElement.blur()")
    page.evaluate("gantt.clearSelection()")
    for _ in range(3):
        page.click("#zoom-in")
    t0 = page.evaluate("gantt.view().t0")
    assert t0 > 0
    page.focus("#gantt-skip")
    page.keyboard.press("Tab")
    box = page.evaluate("""(() => { const g = document.activeElement; const r = g.querySelector('rect.body');
        return [g.tagName, +r.getAttribute('x'), +r.getAttribute('width'),
                +document.querySelector('#gantt svg').getAttribute('width')]; })()""")
    assert box[0] == "g" and box[1] >= 92 - 0.5 and box[1] + box[2] <= box[3] + 0.5, box
    # arrow keys pan along to the bar they move to; Shift+arrows pan; + and - zoom
    before = page.evaluate("gantt.view()")
    page.keyboard.press("Shift+ArrowRight")
    after = page.evaluate("gantt.view()")
    assert after["t0"] > before["t0"] and after["scale"] == before["scale"]
    page.keyboard.press("-")
    assert page.evaluate("gantt.view().scale") < after["scale"]
    assert page.evaluate("document.activeElement.matches('#gantt g.op')")
    page.keyboard.press("End")
    last = page.evaluate("""(() => { const g = document.activeElement; const r = g.querySelector('rect.body');
        return [+r.getAttribute('x'), +r.getAttribute('width'),
                +document.querySelector('#gantt svg').getAttribute('width')]; })()""")
    assert last[0] >= 92 - 0.5 and last[0] + last[1] <= last[2] + 0.5, last


def test_late_bars_carry_a_mark_beyond_colour_on_a_phone(browser, server):
    ctx = browser.new_context(viewport={"width": 360, "height": 740})
    pg = ctx.new_page()
    try:
        pg.goto(server.base + "/")
        sign_in(pg, server.acme.admin)
        run_plan(pg)
        marks = pg.eval_on_selector_all("#gantt g.op.late", """gs => gs.map(g => {
            const m = g.querySelector('path.late-mark'); const r = g.querySelector('rect.body');
            return m ? [m.getBBox().y + m.getBBox().height <= +r.getAttribute('y') + 0.01,
                        !!g.querySelector('text')] : null; })""")
        assert marks and all(m is not None and m[0] for m in marks), marks
        # at 360 px some late bars are too narrow for their "!" label: the mark is what tells them
        assert any(not has_text for _, has_text in marks)
        assert pg.locator("#gantt g.op:not(.late) path.late-mark").count() == 0
    finally:
        ctx.close()


def test_form_borders_and_the_focus_outline_reach_3_to_1(page, server):
    # the sign-in field's border on the white card
    border = page.eval_on_selector("#api-key", "e => getComputedStyle(e).borderTopColor")
    assert contrast(border, "#ffffff") >= 3, border
    page.focus("#api-key")
    page.keyboard.press("Tab")  # to the sign-in button, from the keyboard: its outline shows
    assert page.evaluate(FOCUS_ID) == "signin-btn"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineColor")
    assert contrast(outline, "#ffffff") >= 3 and contrast(outline, "#f3f5f8") >= 3, outline
    # in the dark header, a light outline
    page.focus("#lang-select")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUS_ID) == "lang-select"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineColor")
    assert contrast(outline, "#14324f") >= 3, outline


def test_focus_is_kept_through_solve_pin_and_cancel(page, server):
    import json

    sign_in(page, server.acme.admin)
    page.wait_for_selector("#gantt .gantt-empty")
    page.focus("#solve-btn")
    page.keyboard.press("Enter")
    page.wait_for_selector("#gantt g.op")
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    assert page.evaluate(FOCUS_ID) == "solve-btn"  # not <body>

    # "pin here" from the details: the re-drawn form's button has the focus again
    page.focus("#gantt g.op")
    page.keyboard.press("Enter")
    page.wait_for_selector("#pin-form")
    start = int(page.get_attribute("#pin-start", "value"))
    page.fill("#pin-start", "-5")  # the console's own message (novalidate), tied to the field
    page.focus("#pin-submit")
    page.keyboard.press("Enter")
    assert page.evaluate(FOCUS_ID) == "pin-start"
    assert page.get_attribute("#pin-start", "aria-invalid") == "true"
    assert page.inner_text("#pin-start-error").strip()
    assert page.get_attribute("#pin-start", "aria-describedby") == "pin-start-error"
    page.fill("#pin-start", str(start + 5))
    page.focus("#pin-submit")
    page.keyboard.press("Enter")
    wait_js(page, "document.getElementById('solve-btn').disabled")
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    wait_js(page, "document.activeElement && document.activeElement.id === 'pin-submit'", 5)

    # a background job cancelled from its line: the line's words get the focus, the button being gone
    state = {"status": "running"}

    def jobs(route) -> None:
        if route.request.method == "DELETE":
            state["status"] = "cancelled"
        route.fulfill(status=200, content_type="application/json", body=json.dumps({
            "job_id": "0123456789abcdef0123456789abcdef", "status": state["status"],
            "created_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:01Z", "finished_at": None,
            "result": None, "error": "cancelled" if state["status"] == "cancelled" else None}))

    page.route("**/v1/scheduling/jobs", lambda route: route.fulfill(status=202, content_type="application/json",
               body=json.dumps({"job_id": "0123456789abcdef0123456789abcdef", "status": "queued",
                                "created_at": "2026-01-01T00:00:00Z", "started_at": None, "finished_at": None,
                                "result": None, "error": None})))
    page.route("**/v1/scheduling/jobs/*", jobs)
    page.fill("#time-limit", "40")
    page.click("#solve-btn")
    page.wait_for_selector('#job-line[data-state="running"]')
    page.focus("#job-cancel")
    page.keyboard.press("Enter")
    page.wait_for_selector('#job-line[data-state="cancelled"]')
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    assert page.evaluate(FOCUS_ID) == "job-text"
    page.unroute("**/v1/scheduling/jobs/*")
    page.unroute("**/v1/scheduling/jobs")


def test_focus_is_kept_through_subscribe_unsubscribe_and_revoke(page, server):
    page.on("dialog", lambda d: d.accept())
    sign_in(page, server.bravo.admin)
    page.click("#tab-admin")
    page.wait_for_selector("#keys-table tbody tr")
    # a key to revoke, and one after it
    for name in ("a11y-1", "a11y-2"):
        page.fill("#key-name", name)
        page.click("#key-create")
        page.wait_for_selector(f'#keys-table td.name:text-is("{name}")')
        wait_js(page, "!document.getElementById('key-create').disabled")
    row = page.locator("#keys-table tr", has=page.locator('td.name:text-is("a11y-1")'))
    key = row.get_attribute("data-key")
    page.focus(f'#keys-table [data-revoke="{key}"]')
    page.keyboard.press("Enter")
    wait_js(page, f"!document.querySelector('#keys-table [data-revoke=\"{key}\"]')")
    wait_js(page, "document.activeElement && document.activeElement !== document.body", 5)
    assert page.evaluate("document.activeElement.matches('#keys-table [data-revoke], #key-name')")

    # subscribe from the keyboard: the button has the focus again once enabled
    page.select_option("#sub-module", "energy")
    page.select_option("#sub-plan", "trial")
    page.focus("#sub-create")
    page.keyboard.press("Enter")
    page.wait_for_selector('#subs-table tr[data-module="energy"] [data-unsub]')
    wait_js(page, "!document.getElementById('sub-create').disabled")
    assert page.evaluate(FOCUS_ID) == "sub-create"
    # unsubscribe: its row's button goes; the focus goes on to the next control, not <body>
    page.focus('#subs-table tr[data-module="energy"] [data-unsub]')
    page.keyboard.press("Enter")
    wait_js(page, "!document.querySelector('#subs-table tr[data-module=\"energy\"] [data-unsub]')")
    wait_js(page, "document.activeElement && document.activeElement !== document.body", 5)
    assert page.evaluate("document.activeElement.matches('#subs-table [data-unsub], #sub-module')")


def test_errors_are_tied_to_their_fields(page, server, tmp_path):
    # a wrong key: the field is marked and described by the reason (and cleared: it was the wrong key)
    page.fill("#api-key", "sfai_kbad_key")
    page.click("#signin-btn")
    wait_js(page, "document.getElementById('api-key').getAttribute('aria-invalid') === 'true'")
    assert page.get_attribute("#api-key", "aria-describedby") == "api-key-error"
    assert "API 키가 올바르지 않거나" in page.inner_text("#api-key-error")
    assert page.input_value("#api-key") == ""
    # a server out of reach: the key typed stays for the next try, and the key is not said to be wrong
    page.route("**/v1/tenant", lambda route: route.abort())
    page.fill("#api-key", server.acme.admin)
    page.click("#signin-btn")
    wait_js(page, "!document.getElementById('api-key-error').hidden && "
                  "!document.getElementById('signin-btn').disabled")
    assert page.input_value("#api-key") == server.acme.admin
    assert page.get_attribute("#api-key", "aria-invalid") is None
    page.unroute("**/v1/tenant")
    page.click("#signin-btn")
    page.wait_for_selector("#app:not([hidden])")
    assert page.input_value("#api-key") == "" and page.is_hidden("#api-key-error")
    page.wait_for_selector("#orders-table tbody tr", state="attached")

    # an upload's problem is under the file input, tied to it, without a binary file's control characters
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"PK\x03\x04\x14\x00\x08\x00\x08\x00\x00\x00!\x00\x07\x1b\x7f" + bytes(range(0, 32)) * 4)
    page.set_input_files("#orders-file", str(garbage))
    page.wait_for_selector("#orders-file-error:not([hidden])")
    assert page.get_attribute("#orders-file", "aria-invalid") == "true"
    assert page.get_attribute("#orders-file", "aria-describedby") == "orders-file-error"
    for where in ("#orders-file-error", "#status"):
        said = page.evaluate(f"document.querySelector('{where}').textContent")
        assert "garbage.json" in said and not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]", said), said
    page.click("#load-sample")
    page.wait_for_selector("#orders-file-error", state="hidden")
    assert page.get_attribute("#orders-file", "aria-invalid") is None

    # the time limit: 0 and 9999 are not silently rewritten
    for typed, used in (("0", "5"), ("9999", "3600")):
        page.fill("#time-limit", typed)
        if typed == "9999":  # a background job: answered here, not run on the test server's one worker
            page.route("**/v1/scheduling/jobs", lambda route: route.fulfill(status=503, body="busy"))
        page.click("#solve-btn")
        wait_js(page, "!document.getElementById('time-limit-note').hidden")
        note = page.inner_text("#time-limit-note")
        assert typed in note and used in note, note
        assert "time-limit-note" in page.get_attribute("#time-limit", "aria-describedby")
        wait_js(page, "!document.getElementById('solve-btn').disabled")
    page.unroute("**/v1/scheduling/jobs")
    page.fill("#time-limit", "3")
    assert page.is_hidden("#time-limit-note")

    # the order form: each field described by its own message
    page.click("#new-plan")
    page.fill("#of-due", "-3")
    page.click("#of-submit")
    page.wait_for_selector("#order-errors:not([hidden])")
    for field in ("#of-job", "#of-due"):
        refs = page.get_attribute(field, "aria-describedby").split()
        texts = [page.inner_text("#" + r) for r in refs]
        assert refs and all(r != "order-errors" for r in refs) and all(texts), (field, refs)
    assert page.get_attribute("#of-job", "aria-describedby") != page.get_attribute("#of-due", "aria-describedby")


def test_dashboard_cards_are_busy_while_they_load(page, server):
    held = []
    page.route("**/v1/console/samples", lambda route: held.append(route))
    sign_in(page, server.bravo.admin)  # maintenance (no model yet) and scheduling
    page.click("#tab-dashboard")
    wait_js(page, "document.getElementById('dash-cards').getAttribute('aria-busy') === 'true'")
    deadline = 50
    while not held and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    held[0].continue_()
    page.wait_for_selector("#dash-maintenance .warn")  # no model: said, and the card no longer busy
    assert page.get_attribute("#dash-cards", "aria-busy") is None
    assert page.get_attribute("#dash-maintenance", "aria-busy") is None
    page.unroute("**/v1/console/samples")


def test_skip_link_and_page_title_follow_the_language_and_tab(page, server):
    assert page.inner_text(".skip") == "본문으로 건너뛰기" and page.evaluate("document.title") == "SFAI 콘솔"
    sign_in(page, server.bravo.mes)
    assert page.evaluate("document.title") == "생산계획 – SFAI 콘솔"
    page.click("#tab-dashboard")
    assert page.evaluate("document.title") == "공장 대시보드 – SFAI 콘솔"
    page.select_option("#lang-select", "en")
    assert page.evaluate("document.title") == "Factory dashboard – SFAI console"
    assert page.text_content(".skip") == "Skip to content"


# The controls shown that are smaller than a finger's 44 x 44 CSS px (WCAG 2.5.5): those of hidden tabs, closed
# details and the off-screen skip links are not shown
SMALL_TARGETS = """[...document.querySelectorAll('button, input, select, summary, a[href], [role=tab], textarea')]
    .filter((el) => { const r = el.getBoundingClientRect();
      return el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden' && r.right > 0
        && r.width > 0; })
    .map((el) => { const r = el.getBoundingClientRect();
      return [el.id || `${el.tagName}.${el.className}:${el.textContent.trim().slice(0, 24)}`, r.width, r.height]; })
    .filter(([, w, h]) => w < 43.5 || h < 43.5)"""

# Each Gantt bar's target: its hit area (rect.hit) and whether a tap just above and just below its body, at its centre,
# lands on it; per machine, the targets in time order (to see that none overlaps the next)
BAR_TARGETS = """[...document.querySelectorAll('#gantt g.op')].map((g) => {
    const body = g.querySelector('rect.body').getBoundingClientRect();
    const hit = g.querySelector('rect.hit')?.getBoundingClientRect();
    const cx = body.x + body.width / 2;
    const on = (y) => document.elementFromPoint(cx, y)?.closest('g.op') === g;
    const svg = g.ownerSVGElement;
    const box = svg.getBoundingClientRect();
    const labelW = +svg.querySelector(':scope > rect[fill="#f7f9fb"]').getAttribute('width');
    return { machine: g.dataset.machine, job: g.dataset.job, op: g.dataset.op, body: body.height,
      x: [body.left, body.right],
      hit: hit ? [hit.left, hit.right, hit.height] : null, above: on(body.top - 3), below: on(body.bottom + 3),
      plot: [box.left + labelW, box.right] };
  })"""


def test_controls_and_gantt_bars_are_44_px_targets_on_a_phone(page, server):
    """At 360 px every button, field, selector, tab and disclosure is at least 44 x 44 px, on the sign-in page, the
    planner (order table and form open, a bar's details with the pin form), the dashboard and administration; the
    Gantt's rows and bars are taller and each bar takes a tap within 44 px of height (and of width where the free
    time beside it allows, never over its neighbour's). The desktop layout is as it was."""
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate(SMALL_TARGETS) == []
    sign_in(page, server.acme.admin)
    run_plan(page)
    page.click("#orders-details summary")
    page.click("#order-entry summary")
    page.locator('#gantt g.op[data-job="J-1001"][data-op="mould"] rect.body').click()
    page.wait_for_selector("#pin-form")
    assert page.evaluate(SMALL_TARGETS) == []

    page.locator("#gantt").scroll_into_view_if_needed()
    bars = page.evaluate(BAR_TARGETS)
    assert len(bars) >= 10
    for bar in bars:
        assert bar["body"] >= 35.5 and bar["hit"] and bar["hit"][2] >= 43.5, bar  # 24 px bars before
        assert bar["above"] and bar["below"], bar  # a tap 3 px off the bar's body is still the bar's
    narrow = [b for b in bars if b["hit"][1] - b["hit"][0] < 43.5]
    for machine in {b["machine"] for b in bars}:
        row = sorted((b for b in bars if b["machine"] == machine), key=lambda b: b["hit"][0])
        for a, b in zip(row, row[1:], strict=False):
            assert a["hit"][1] <= b["hit"][0] + 0.5, (a, b)  # no two targets overlap
        for k, b in enumerate(row):  # narrower than 44 px only where there is no more room: at least half of the
            if b in narrow:        # free time to each neighbouring bar is its (the planner zooms in for more)
                left = max(b["plot"][0], (row[k - 1]["x"][1] + b["x"][0]) / 2) if k else b["plot"][0]
                right = min(b["plot"][1], (b["x"][1] + row[k + 1]["x"][0]) / 2) if k + 1 < len(row) else b["plot"][1]
                assert b["hit"][1] - b["hit"][0] >= min(43.5, right - left - 0.5), [(r["x"], r["hit"]) for r in row]
    # bars narrower than 44 px (at 360 px the plan's 30-minute trims are 12 px) are widened by their targets
    thin = [b for b in bars if b["x"][1] - b["x"][0] < 43.5]
    assert thin and any(b["hit"][1] - b["hit"][0] >= 43.5 for b in thin), thin

    page.click("#tab-dashboard")
    page.wait_for_selector("#dash-quality .dash-body :is(table, .warn)")
    page.wait_for_selector("#dash-goto-planner")
    assert page.evaluate(SMALL_TARGETS) == []
    page.click("#tab-admin")
    for id_ in ("subs-table", "keys-table", "usage-table"):
        page.wait_for_selector(f"#{id_} tbody tr")
    assert page.evaluate(SMALL_TARGETS) == []

    # the desktop: bars of 24 px without hit areas, the controls their own size
    page.click("#tab-planner")
    page.set_viewport_size({"width": 1280, "height": 900})
    wait_js(page, "document.querySelector('#gantt rect.body').getBBox().height === 24")
    assert page.locator("#gantt rect.hit").count() == 0
    assert page.evaluate("document.getElementById('solve-btn').getBoundingClientRect().height") < 40
    assert page.evaluate(SMALL_TARGETS)  # small controls are fine with a mouse: the rule is the phone's
