"""The dashboard's quality and energy cards and the status line across tab switches. The defect explanation and the
energy forecast are answered by routed fakes shaped as the API answers them (models/defect/predict.py ``_explain``,
the OpenAPI's ``DEFECT_ROWS``): a recent failure rate, a clipped reading, a missing measurement's indicator and the
baseline, which the demo models (no drift prior) do not give. Same browser and server as test_console.py (its
fixtures)."""

# ruff: noqa: F811  (the fixtures imported from test_console.py are the tests' arguments)
from __future__ import annotations

import json
import re

from tests.web.test_console import ARTIFACTS, browser, page, server, sign_in, wait_js  # noqa: F401


def _entry(name: str, contribution: float, change: float, *, kind: str = "measurement", value=None, median=None,
           typical=None, z=None, clipped: bool = False, direction: str = "high", **more) -> dict:
    return {"measurement": name, "kind": kind, "value": value, "median": median, "typical_range": typical, "z": z,
            "clipped": clipped, "direction": direction, **more, "contribution": contribution,
            "probability_change": change}


RATE_HIGH = _entry("recent_failure_rate", 0.812, 0.0412, kind="recent_failure_rate", value=0.19, median=0.065,
                   direction="high", source="history")
F059 = _entry("f059", 0.41, 0.0251, value=3.2, median=1.0, typical=[0.9, 1.1], z=22.0, clipped=True)
# a low value that raises the risk: the arrow is the value's side, the sign the risk's
F033 = _entry("f033", 0.22, 0.0061, value=0.95, median=1.0, typical=[0.8, 1.2], z=-0.25, direction="low")
F010 = _entry("f010", -0.11, -0.0027, kind="missing_indicator", median=12.5, typical=[10, 15], direction="missing")
F021 = _entry("f021", -0.05, -0.0012, value=5.5, median=5.0, typical=[4, 6], z=0.4)
BASE = {"baseline_logit": -3.0196, "baseline_probability": 0.046548}

DEFECT_ANSWER = {"model": "defect", "version": 1, "count": 4, "predictions": [
    {"row_id": "W-1", "defect_probability": 0.085, "defect_predicted": 1, **BASE, "median_wafer_probability": 0.1017,
     "explained_share": 0.9, "top_measurements": "recent_failure_rate:+0.812;f059:+0.410;f033:+0.220;f010:-0.110;"
     "f021:-0.050", "top_measurement_values": [RATE_HIGH, F059, F033, F010, F021], "defect_logit": -2.37,
     "measurements_missing": 1},
    # the rate, sent by the caller and shrunk, is not among the three largest: shown after them all the same
    {"row_id": "W-2", "defect_probability": 0.03, "defect_predicted": 0, **BASE, "median_wafer_probability": 0.044,
     "explained_share": 1.0, "top_measurements": "f001:-0.300;f002:+0.200;other:+0.100;recent_failure_rate:-0.050",
     "top_measurement_values": [
         _entry("f001", -0.3, -0.0081, value=240.5, median=245.0, typical=[230.0, 260.0], z=-0.61, direction="low"),
         _entry("f002", 0.2, 0.0058, value=61.0, median=60.0, typical=[57.5, 62.4], z=0.43),
         _entry("other", 0.1, 0.0028, kind="other", direction="nonlinear"),
         _entry("recent_failure_rate", -0.05, -0.0014, kind="recent_failure_rate", value=0.03, median=0.065,
                direction="low", source="given", sent=0.02)],
     "defect_logit": -3.07, "measurements_missing": 0},
    # an answer from before explanations had their fields: the names only
    {"row_id": "W-3", "defect_probability": 0.02, "defect_predicted": 0, "top_measurements": "f004:-0.338;f003:+0.2"},
    # a measurement not sent whose absence counts (the model's missing indicator); the rate's median wafer is the
    # baseline's (no line under the probability)
    {"row_id": "W-4", "defect_probability": 0.041, "defect_predicted": 0, **BASE, "median_wafer_probability": 0.046548,
     "explained_share": 1.0, "top_measurements": "f010:-0.110;f021:-0.050", "top_measurement_values": [F010, F021],
     "defect_logit": -3.18, "measurements_missing": 1},
]}


def _fulfil(route, body: dict) -> None:
    route.fulfill(status=200, content_type="application/json", body=json.dumps(body))


def _lines(page, row: int) -> list[str]:
    return page.locator(f"#defect-table tbody tr:nth-child({row}) td:nth-child(4) li").all_inner_texts()


def test_quality_card_says_log_odds_points_of_risk_the_rate_and_the_baseline(page, server):
    """A contribution is log-odds, not a change of the percentage beside it ("defect risk +0.11" beside "8.5 %" read
    as points): each line says "log-odds" and the points of risk apart, the value against its typical range with its
    robust z and a clipped mark, the recent failure rate in words against the usual one, the baseline under the
    table."""
    page.route("**/v1/quality/defect/predict", lambda route: _fulfil(route, DEFECT_ANSWER))
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.admin)
    page.click("#tab-dashboard")
    page.wait_for_selector("#defect-table tbody tr")
    card = page.inner_text("#dash-quality")
    assert not re.search(r"defect risk [+−-]", card) and "What moved the risk (from the baseline)" in card

    assert _lines(page, 1) == [
        "recent failure rate 0.19, above the usual 0.065 (this line's recent results); log-odds +0.81 · risk +4.1 pts",
        "f059 ↑ above its typical range (value 3.2; typical range 0.9–1.1, training median 1; robust z +22) "
        "clipped: read at the model's limit; log-odds +0.41 · risk +2.5 pts",
        "f033 ↓ below the median (value 0.95; typical range 0.8–1.2, training median 1; robust z −0.25); "
        "log-odds +0.22 · risk +0.61 pts",
    ]
    first = page.locator("#defect-table tbody tr:nth-child(1)")
    assert first.locator("li[data-kind=recent_failure_rate] [lang=en]").count() == 0  # the rate is said in words
    assert first.locator("li[data-kind=measurement] span[lang=en]").all_inner_texts() == ["f059", "f033"]
    assert first.locator("b.clipped").count() == 1 and first.locator("li[data-measurement=f059] b.clipped").count() == 1
    # the three lines' share of everything that moved the wafer: 0.9 x (0.812 + 0.41 + 0.22) / 1.602
    assert first.locator(".factor-share").inner_text() == \
        "These explain 81% of what moved this wafer from the baseline (in log-odds)."
    prob = first.locator("td:nth-child(2)").inner_text()
    assert prob.strip().startswith("8.5%") and "a median wafer at this line's failure rate: 10.2%" in prob

    # the rate comes after the three largest where it is not among them; a caller's rate as sent; the nonlinear rest
    assert _lines(page, 2) == [
        "f001 ↓ below the median (value 240.5; typical range 230–260, training median 245; robust z −0.61); "
        "log-odds −0.30 · risk −0.81 pts",
        "f002 ↑ above the median (value 61; typical range 57.5–62.4, training median 60; robust z +0.43); "
        "log-odds +0.20 · risk +0.58 pts",
        "other (the model's nonlinear remainder); log-odds +0.10 · risk +0.28 pts",
        "recent failure rate 0.03, below the usual 0.065 (as sent: 0.02); log-odds −0.05 · risk −0.14 pts",
    ]
    assert "a median wafer at this line's failure rate: 4.4%" in page.inner_text("#defect-table tbody tr:nth-child(2)")
    # an answer without the fields: the names, as before
    assert page.inner_text("#defect-table tbody tr:nth-child(3) td:nth-child(4)") == "f004:-0.338, f003:+0.2"
    assert _lines(page, 4) == [
        "f010 – not sent (its absence itself counts; training median 12.5); log-odds −0.11 · risk −0.27 pts",
        "f021 ↑ above the median (value 5.5; typical range 4–6, training median 5; robust z +0.4); "
        "log-odds −0.05 · risk −0.12 pts",
    ]
    assert "median wafer" not in page.inner_text("#defect-table tbody tr:nth-child(4) td:nth-child(2)")

    assert page.inner_text("#defect-baseline") == (
        "Baseline: a median wafer (every measurement at its training median, at the training file's failure rate) "
        "has a defect risk of 4.7% (log-odds −3.02).")
    assert "+0.69 doubles the odds" in page.inner_text("#defect-legend")

    # Korean: the same figures in Korean words, re-rendered by the language switch
    page.select_option("#lang-select", "ko")
    wait_js(page, "document.querySelector('#defect-table li')?.textContent.startsWith('최근 불량률')")
    ko = _lines(page, 1)
    assert ko[0] == "최근 불량률 0.19, 평소 0.065보다 높음 (이 라인의 최근 실적); 로그 오즈 +0.81 · 위험 +4.1%p", ko
    assert ko[1].startswith("f059 ↑ 통상 범위보다 높음 (측정값 3.2; 통상 범위 0.9–1.1, 학습 중앙값 1; 로버스트 z +22) "
                            "클리핑됨: 모델의 한계값으로 읽음; 로그 오즈 +0.41"), ko
    assert "요청에서 보낸 값 0.02" in _lines(page, 2)[3]
    assert "불량 위험은 4.7% (로그 오즈 −3.02)" in page.inner_text("#defect-baseline")
    assert "불량 위험 기여" not in page.inner_text("#dash-quality")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls in its card
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#dash-quality").screenshot(path=str(ARTIFACTS / "dashboard-quality-ko.png"))


def test_quality_card_fields_are_the_ones_the_api_documents(page, server):
    """The fields the card reads are in the defect answer's OpenAPI schema (serving/schemas/quality.py): a renamed
    field would leave the card silently without it."""
    spec = json.loads(page.evaluate("fetch('/openapi.json').then((r) => r.text())"))
    op = spec["paths"]["/v1/quality/defect/predict"]["post"]
    rows = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["predictions"]["items"]
    row_fields = set(rows["properties"])
    assert {"defect_probability", "top_measurements", "top_measurement_values", "baseline_logit",
            "baseline_probability", "median_wafer_probability", "explained_share"} <= row_fields
    entry = set(rows["properties"]["top_measurement_values"]["items"]["properties"])
    assert {"measurement", "kind", "value", "median", "typical_range", "z", "clipped", "direction", "contribution",
            "probability_change"} <= entry
    kinds = set(rows["properties"]["top_measurement_values"]["items"]["properties"]["kind"]["enum"])
    assert kinds == {"measurement", "missing_indicator", "recent_failure_rate", "other", "saturation"}
    source = page.evaluate("fetch('/static/console.js').then((r) => r.text())")
    for field in ("baseline_probability", "median_wafer_probability", "explained_share", "probability_change",
                  "typical_range", "clipped", "recent_failure_rate", "missing_indicator", "saturation"):
        assert field in source, field


def _energy_forecast(origin: str = "2026-12-08T00:00:00") -> dict:
    day = origin[:10]
    preds = [{"origin": origin, "timestamp": f"{day}T{i // 4:02d}:{i % 4 * 15:02d}:00", "p10": 20 + i % 7,
              "p50": 30 + i % 7, "p90": 40 + i % 7, "co2_p50": 0.012} for i in range(96)]
    return {"model": "energy", "version": 1, "count": len(preds), "predictions": preds}


def _samples_with_actuals(route, actuals: list[dict], source: str, entity: str | None = None) -> None:
    answer = route.fetch().json()
    answer["samples"]["energy"].update(actuals=actuals, source=source, entity=entity)
    _fulfil(route, answer)


def test_energy_legend_names_only_what_is_drawn(page, server):
    """A meter's next day, forecast by its id, has no actuals: neither the line nor "actual" in the legend or the
    heading (the legend had said "actual" over nothing). With actuals for part of the day, both are there."""
    page.route("**/v1/energy/forecast", lambda route: _fulfil(route, _energy_forecast()))
    page.route("**/v1/console/samples", lambda route: _samples_with_actuals(route, [], "store", "M-7"))
    page.select_option("#lang-select", "en")
    sign_in(page, server.acme.admin)
    page.click("#tab-dashboard")
    page.wait_for_selector("#energy-chart")
    assert page.locator("#energy-chart polyline").count() == 1  # p50 alone
    assert page.locator("#energy-chart polyline.actual, #energy-chart [data-series=actual]").count() == 0
    legend = page.text_content("#energy-chart .chart-legend")
    assert "actual" not in legend.lower() and "p50 forecast" in legend, legend
    heading = page.inner_text("#dash-energy h3")
    assert "against actuals" not in heading and "no actual readings" in heading, heading
    assert "actuals" not in page.get_attribute("#energy-chart", "aria-label")
    assert "M-7" in page.inner_text("#dash-energy")  # which meter

    # Korean, and then a sample with actuals for the morning: the line and its legend entry are back
    page.select_option("#lang-select", "ko")
    wait_js(page, "!!document.querySelector('#energy-chart')")
    assert "실제" not in page.text_content("#energy-chart .chart-legend")
    page.unroute("**/v1/console/samples")
    actuals = [{"timestamp": f"2026-12-08T{i // 4:02d}:{i % 4 * 15:02d}:00", "kwh": 28.0 + i % 5} for i in range(40)]
    page.route("**/v1/console/samples", lambda route: _samples_with_actuals(route, actuals, "builtin"))
    page.evaluate("S.samples = null")  # fetched again on the next load
    page.click("#dash-refresh")
    page.wait_for_selector("#energy-chart polyline.actual", state="attached")
    assert page.text_content("#energy-chart [data-series=actual]") == "실제"
    assert "실제값" in page.inner_text("#dash-energy h3")


STATUS = "document.getElementById('status')"


def test_status_line_is_cleared_on_a_tab_switch(page, server):
    """A message of the planner (a file refused, the sample loaded) no longer stays on the dashboard or the admin
    tab: a tab switch empties the line, which stays the page's live region for the next message; an answer of a
    tab left behind (a dashboard still loading) is not put on the next tab's line."""
    sign_in(page, server.acme.admin)
    page.click("#load-sample")
    wait_js(page, f"{STATUS}.textContent.includes('주문 6건')")
    page.click("#tab-dashboard")
    assert page.inner_text("#status") == ""
    assert page.evaluate(f"[{STATUS}.getAttribute('role'), {STATUS}.getAttribute('aria-live'), {STATUS}.title,"
                         f" {STATUS}.classList.contains('error')]") == ["status", "polite", "", False]

    # an error of the planner, then the admin tab from the keyboard (the tab pattern's arrow keys)
    page.click("#tab-planner")
    page.set_input_files("#orders-file", {"name": "bad.csv", "mimeType": "text/csv", "buffer": b"job,oops\nJ-1,x\n"})
    wait_js(page, f"{STATUS}.classList.contains('error')")
    page.focus("#tab-planner")
    page.keyboard.press("End")
    page.wait_for_selector("#panel-admin:not([hidden])")
    assert page.inner_text("#status") == "" and not page.evaluate(f"{STATUS}.classList.contains('error')")

    # a message said on the admin tab shows there (the same live region), and goes with the next switch: a language
    # switch does not bring it back
    page.fill("#usage-from", "2026-12-07")
    page.fill("#usage-to", "2026-12-06")
    page.click("#usage-apply")
    wait_js(page, f"{STATUS}.classList.contains('error')")
    assert page.inner_text("#status") != ""
    page.click("#tab-planner")
    assert page.inner_text("#status") == ""
    page.select_option("#lang-select", "en")
    assert page.inner_text("#status") == ""

    # staying on the same tab keeps the line: a click on the tab shown is no switch
    page.click("#load-sample")
    wait_js(page, f"{STATUS}.textContent.includes('6 orders')")
    page.click("#tab-planner")
    assert "6 orders" in page.inner_text("#status")

    # the dashboard's answer that comes back after the user went back to the planner is not said there
    held = []
    page.evaluate("S.samples = null")
    page.route("**/v1/console/samples", lambda route: held.append(route))
    page.click("#tab-dashboard")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(100)
    assert held
    page.click("#tab-planner")
    held[0].fulfill(status=503, content_type="application/json",
                    body=json.dumps({"error": {"code": "unavailable", "message": "try later"}}))
    wait_js(page, "!!document.querySelector('#dash-quality .warn')")  # the card says it, on its own tab
    assert page.inner_text("#status") == ""
    assert re.search(r"unavailable|사용할 수 없", page.inner_text("#dash-quality"), re.I)
