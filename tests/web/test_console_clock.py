"""The planner's plan start (a clock): set, the problem sent carries ``clock`` and the plan is shown on it (the Gantt
axis as HH:MM with the dates, the bars' names and tooltips, the table view, the details, the summary, the CSV, the
what-if charts, a background job's plan); empty, nothing changes; a half-typed start is said on its field. Same
browser and server as test_console.py (its fixtures)."""

# ruff: noqa: F811  (the fixtures imported from test_console.py are the tests' arguments)
from __future__ import annotations

import csv as csv_module
import io
import json
import re
from datetime import datetime, timedelta
from pathlib import Path

from tests.web.test_console import (  # noqa: F401
    ARTIFACTS,
    browser,
    check_pdf,
    page,
    run_plan,
    server,
    shot,
    sign_in,
    wait_js,
)

START = "2026-12-08T06:00"
HEADER = ("machine,job,operation,start,end,setup,late,pinned,job_late,started,started_at,reason,setup_start,due,"
          "family")


def on_clock(minutes: float, start: str = START) -> str:
    return (datetime.fromisoformat(start) + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M")


def record_solves(page) -> list[dict]:
    """The bodies of the scheduling POSTs the page sends (solve and jobs)."""
    sent: list[dict] = []
    page.on("request", lambda r: r.method == "POST" and "/v1/scheduling/" in r.url
            and sent.append(json.loads(r.post_data)))
    return sent


def bars(page, root: str = "#gantt") -> list[dict]:
    return page.eval_on_selector_all(f"{root} g.op", """gs => gs.map(g => ({job: g.dataset.job, op: g.dataset.op,
        machine: g.dataset.machine, start: Number(g.dataset.start), end: Number(g.dataset.end),
        late: g.dataset.late === 'true', name: g.getAttribute('aria-label'),
        title: g.querySelector('title').textContent}))""")


def test_a_plan_with_a_start_is_shown_on_its_clock(page, server, tmp_path):
    sign_in(page, server.acme.admin)
    page.wait_for_selector("#orders-table tbody tr", state="attached")
    sent = record_solves(page)
    assert page.get_attribute("#plan-start", "type") == "datetime-local"
    assert page.inner_text("label[for=plan-start]") == "계획 시작 (선택)"
    assert "plan-start-help" in page.get_attribute("#plan-start", "aria-describedby")
    page.fill("#plan-start", START)
    page.dispatch_event("#plan-start", "change")
    # the orders' due dates stay minutes, their time on the clock beside them (the input described by it)
    page.click("#orders-details summary")
    due = int(page.input_value("#ot-0-due"))
    assert page.inner_text("#ot-0-due-clock") == on_clock(due)
    assert page.get_attribute("#ot-0-due", "aria-describedby") == "ot-0-due-clock"
    page.fill("#ot-0-due", str(due + 60))
    page.dispatch_event("#ot-0-due", "change")
    assert page.inner_text("#ot-0-due-clock") == on_clock(due + 60)
    page.fill("#ot-0-due", str(due))
    page.dispatch_event("#ot-0-due", "change")

    run_plan(page)
    assert sent[-1]["problem"]["clock"] == {"start": START}  # the unit: the sample's energy settings' (a minute)
    answer = page.evaluate("S.result.clock")
    assert answer["start"] == START + ":00" and answer["minutes_per_unit"] == 1

    # the axis: HH:MM ticks, the date (with the weekday) at the first tick and where the day changes
    ticks = page.eval_on_selector_all("#gantt text.axis-tick", "ts => ts.map(t => t.textContent)")
    assert ticks and all(re.fullmatch(r"\d\d:\d\d", x) for x in ticks), ticks
    assert "06:00" in ticks and "07:00" in ticks
    dates = page.eval_on_selector_all("#gantt text.axis-date", "ts => ts.map(t => t.textContent)")
    assert dates[0] == "12월 8일 (화)", dates
    assert page.text_content("#gantt text.axis-unit") == "날짜·시각"
    # each bar's accessible name and tooltip: its times on the clock, late in words as before
    for b in bars(page):
        start, end = on_clock(b["start"]), on_clock(b["end"])
        end = end[11:] if end[:10] == start[:10] else end
        assert b["name"].startswith(f"{b['job']} {b['op']}, 설비 {b['machine']}, {start}–{end}"), b
        assert ("납기 지연" in b["name"]) == b["late"], b
        assert f"{start}–{end}" in b["title"], b
    # the summary says where the plan starts and ends; so does the status line
    makespan = page.evaluate("S.result.makespan")
    assert page.inner_text("#sum-plan-start") == on_clock(0)
    assert page.inner_text("#sum-plan-end") == on_clock(makespan)
    assert f"({on_clock(makespan)} 종료)" in page.inner_text("#status")

    # the table view: start and end on the clock, the caption naming the start
    page.click("#gantt-table-toggle")
    assert "계획 시작 2026-12-08 06:00" in page.inner_text("#gantt-table caption")
    cells = page.eval_on_selector_all("#gantt-table tbody tr", "rs => rs.map(r => [r.dataset.job, r.dataset.op, "
                                      "r.children[3].textContent, r.children[4].textContent])")
    by_op = {(b["job"], b["op"]): b for b in bars(page)}
    assert len(cells) == len(by_op) == 12
    for job, op, start, end in cells:
        assert (start, end) == (on_clock(by_op[job, op]["start"]), on_clock(by_op[job, op]["end"]))

    # a late job's details: due and end on the clock, the tardiness in minutes
    late = next(b for b in bars(page) if b["late"])
    page.click(f'#gantt g.op[data-job="{late["job"]}"][data-op="{late["op"]}"] rect.body')
    page.wait_for_selector("#late-explanation")
    explained = page.evaluate(f"S.result.late_jobs.find(l => l.job === '{late['job']}')")
    summary = page.inner_text("#late-summary")
    due, end = on_clock(explained["due"]), on_clock(explained["end"])
    assert f"납기 {due}, 완료 {end}: {explained['tardiness']}분 지연" in summary
    assert re.search(r"2026-12-08 \d\d:\d\d–", page.inner_text("#late-explanation ol.chain"))
    # the pin form is in minutes; the minute typed is shown on the clock beside it
    page.fill("#pin-start", "90")
    page.dispatch_event("#pin-start", "input")
    assert page.inner_text("#pin-start-clock") == f"시각: {on_clock(90)}"
    assert "pin-start-clock" in page.get_attribute("#pin-start", "aria-describedby")
    shot(page, tmp_path, "planner-clock-ko")

    # the CSV: the columns as before, then each row's start and end on the clock (ISO 8601, as the API gives them)
    with page.expect_download() as dl:
        page.click("#export-csv")
    text = Path(dl.value.path()).read_bytes().decode("utf-8-sig")
    assert text.splitlines()[0] == HEADER + ",start_time,end_time"
    rows = list(csv_module.DictReader(io.StringIO(text)))
    assert rows and all(r["start_time"] == on_clock(int(r["start"])).replace(" ", "T") + ":00" and
                        r["end_time"] == on_clock(int(r["end"])).replace(" ", "T") + ":00" for r in rows), rows[:2]
    # the PNG and PDF exports: the chart as drawn, its axis on the clock (the PDF's summary says the start and end)
    assert "06:00" in page.evaluate("new XMLSerializer().serializeToString(gantt.svg())")
    with page.expect_download() as dl:
        page.click("#export-png")
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as dl:
        page.click("#export-pdf")
    pdf = Path(dl.value.path()).read_bytes()
    w, h = check_pdf(pdf)
    assert w > 1000 and h > 300
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "gantt-clock-export.pdf").write_bytes(pdf)

    # the what-if copy and the current plan: both on the clock
    page.click("#keep-copy")
    page.wait_for_selector("#compare-table")
    for root in ("#gantt-copy", "#gantt-current"):
        ticks = page.eval_on_selector_all(f"{root} text.axis-tick", "ts => ts.map(t => t.textContent)")
        assert ticks and all(re.fullmatch(r"\d\d:\d\d", x) for x in ticks), (root, ticks)
        assert "2026-12-08" in bars(page, root)[0]["title"]

    # in English: the dates and names follow the language
    page.select_option("#lang-select", "en")
    assert page.eval_on_selector_all("#gantt text.axis-date", "ts => ts.map(t => t.textContent)")[0] == "Tue, Dec 8"
    first = bars(page)[0]
    start = on_clock(first["start"])
    assert first["name"].startswith(f"{first['job']} {first['op']}, machine {first['machine']}, {start}–")
    assert "Operations per machine (plan start 2026-12-08 06:00)" in page.inner_text("#gantt-table caption")

    # remembered like the other settings: a reload keeps the start, and the plan on its clock
    page.reload()
    page.wait_for_selector("#gantt g.op")
    assert page.input_value("#plan-start") == START
    ticks = page.eval_on_selector_all("#gantt text.axis-tick", "ts => ts.map(t => t.textContent)")
    assert ticks and all(re.fullmatch(r"\d\d:\d\d", x) for x in ticks), ticks


def test_without_a_start_nothing_changes(page, server):
    sign_in(page, server.acme.admin)
    page.wait_for_selector("#orders-table tbody tr", state="attached")
    sent = record_solves(page)
    assert page.input_value("#plan-start") == ""
    run_plan(page)
    assert "clock" not in sent[-1]["problem"]
    assert page.evaluate("S.result.clock") is None
    ticks = page.eval_on_selector_all("#gantt text.axis-tick", "ts => ts.map(t => t.textContent)")
    assert ticks and all(re.fullmatch(r"\d+", x) for x in ticks), ticks
    assert page.locator("#gantt text.axis-date").count() == 0
    assert page.text_content("#gantt text.axis-unit") == "시간(분)"
    for b in bars(page):
        assert b["name"].startswith(f"{b['job']} {b['op']}, 설비 {b['machine']}, {b['start']}–{b['end']}분"), b
    assert page.locator("#sum-plan-start, #sum-plan-end, .clock-hint").count() == 0
    page.click("#gantt-table-toggle")
    assert page.inner_text("#gantt-table caption") == "설비별 공정 일정 (분, 계획 시작 기준)"
    assert re.fullmatch(r"\d+", page.inner_text("#gantt-table tbody tr td.num >> nth=0"))
    with page.expect_download() as dl:
        page.click("#export-csv")
    assert Path(dl.value.path()).read_bytes().decode("utf-8-sig").splitlines()[0] == HEADER


def test_a_half_typed_start_is_said_on_its_field(page, server):
    sign_in(page, server.acme.admin)
    page.wait_for_selector("#orders-table tbody tr", state="attached")
    sent = record_solves(page)
    page.click("#plan-start")
    page.keyboard.type("12")  # one part of the date: the browser's value stays empty (badInput)
    page.click("#solve-btn")
    assert page.evaluate("document.activeElement.id") == "plan-start"
    assert page.get_attribute("#plan-start", "aria-invalid") == "true"
    said = "계획 시작에 날짜와 시각을 모두 입력하세요"
    assert said in page.inner_text("#plan-start-error") and said in page.inner_text("#status")
    assert "plan-start-error" in page.get_attribute("#plan-start", "aria-describedby")
    assert not sent  # nothing was sent
    page.select_option("#lang-select", "en")
    assert "Enter the plan start as a whole date and time" in page.inner_text("#plan-start-error")
    page.click("#plan-start-clear")  # cleared: no error, planned without a clock
    assert page.get_attribute("#plan-start", "aria-invalid") is None and page.is_hidden("#plan-start-error")
    assert page.evaluate("document.activeElement.id") == "plan-start"
    run_plan(page)
    assert "clock" not in sent[-1]["problem"]


def test_a_file_with_a_clock_and_a_background_job(page, server, tmp_path):
    """A problem file with a clock (and times as ISO dates): its times read as minutes, its start as the plan
    start; a solve over 30 s (a background job) shows its plan on the clock too."""
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.admin)
    page.wait_for_selector("#orders-table tbody tr", state="attached")
    sent = record_solves(page)
    problem = {
        "name": "night-shift", "clock": {"start": "2026-12-08T22:00:00+09:00", "minutes_per_unit": 1},
        "machines": [{"id": "M1", "calendar": [{"start": "2026-12-09T00:00:00+09:00",
                                                "end": "2026-12-09T00:30:00+09:00", "kind": "break"}]}, "M2"],
        "jobs": [{"id": "A", "due": "2026-12-08T23:30:00+09:00", "operations": [{"id": "cut", "machines": {"M1": 60}},
                                                                               {"id": "weld", "machines": {"M2": 90}}]},
                 {"id": "B", "release": "2026-12-08T22:15:00+09:00",
                  "operations": [{"id": "cut", "machines": {"M1": 70}}]}],
    }
    page.set_input_files("#orders-file", {"name": "night.json", "mimeType": "application/json",
                                          "buffer": json.dumps(problem).encode()})
    wait_js(page, "document.getElementById('plan-start').value === '2026-12-08T22:00'")
    assert "The file's start, 2026-12-08 22:00, is now the plan start." in page.inner_text("#status")
    times = page.evaluate("[S.problem.jobs[0].due, S.problem.jobs[1].release, S.problem.machines[0].calendar[0].end]")
    assert times == [90, 15, 150]  # a due date rounded down, a release and a downtime's end up: whole minutes here
    page.click("#orders-details summary")
    assert page.inner_text("#ot-0-due-clock") == "2026-12-08 23:30"

    page.fill("#time-limit", "40")
    page.click("#solve-btn")
    page.wait_for_selector('#job-line[data-state="done"]')
    page.wait_for_selector("#gantt g.op")
    wait_js(page, "!document.getElementById('solve-btn').disabled")
    # the file's offset is kept (the field holds none): a "...Z" clock had been sent as the plant's own time
    assert sent[-1]["problem"]["clock"] == {"start": "2026-12-08T22:00+09:00", "minutes_per_unit": 1}
    assert sent[-1]["problem"]["jobs"][0]["due"] == 90
    dates = page.eval_on_selector_all("#gantt text.axis-date", "ts => ts.map(t => t.textContent)")
    assert dates[:2] == ["Tue, Dec 8", "Wed, Dec 9"], dates  # the day changes on the axis
    assert page.locator("#gantt line.day-line").count() >= 1
    first = bars(page)[0]
    assert "2026-12-08 22:" in first["name"] or "2026-12-09 0" in first["name"], first
    shot(page, tmp_path, "planner-clock-job-en")
