"""A re-plan on the plan's clock as an MES sends it: orders released before the plan's start, ERP dates without a time
of day, and the no-plan reasons and refusals of a problem whose times were all ISO, on the calendar."""

import copy
import re

import pytest

from optimization.io import problem_from_dict
from optimization.service import make_params, solve_document

START = "2026-12-08T06:40:00+09:00"
REPLAN = {  # 06:40: two operations running since 06:00 and 06:30, an order released at 05:00
    "clock": {"start": START},
    "machines": ["M1", "M2"],
    "jobs": [
        {"id": "WO-1", "operations": [{"id": "cut", "machines": {"M1": 60},
                                       "started": {"machine": "M1", "start": "2026-12-08T06:00:00+09:00"}}]},
        {"id": "WO-2", "operations": [{"id": "cut", "machines": {"M2": 60},
                                       "started": {"machine": "M2", "start": "2026-12-08T06:30:00+09:00"}}]},
        {"id": "WO-3", "release": "2026-12-08T05:00:00+09:00", "due": "2026-12-08T12:00:00+09:00",
         "operations": [{"id": "weld", "machines": {"M1": 30, "M2": 30}}]},
    ],
}


def _replan(**changes):
    return {**copy.deepcopy(REPLAN), **changes}


def _solve(doc):
    p = problem_from_dict(doc)
    return p, solve_document(p, make_params(p, time_limit_s=1, workers=1))[1]


def test_an_order_released_before_the_plans_start_is_released_at_it():
    p, doc = _solve(_replan())
    assert p.jobs[2].release == 0  # 05:00 is 100 minutes before 06:40: released already
    assert [o.started_at for j in p.jobs[:2] for o in j.operations] == [-40, -10]
    assert doc["status"] == "OPTIMAL" and doc["violations"] == 0
    weld = next(r for r in doc["gantt"] if r["job"] == "WO-3")
    assert weld["start"] == 20 and weld["clock"]["start"] == "2026-12-08T07:00:00+09:00"  # after WO-1 on M1
    # a date alone, on a clock without an offset (the plant's local time): the start of that day, released already
    local = _replan(clock={"start": "2026-12-08T06:40:00"})
    for job in local["jobs"]:
        for key in ("release", "due"):
            if key in job:
                job[key] = job[key][:-6]
        for op in job["operations"]:
            if "started" in op:
                op["started"]["start"] = op["started"]["start"][:-6]
    local["jobs"][2]["release"] = "2026-12-08"
    assert problem_from_dict(local).jobs[2].release == 0
    # one after the start counts from it, rounded up as before
    later = _replan()
    later["jobs"][2]["release"] = "2026-12-08T07:00:30+09:00"
    assert problem_from_dict(later).jobs[2].release == 21


def test_a_release_number_below_zero_is_still_refused_saying_where_t0_is():
    numeric = _replan()
    numeric["jobs"][2]["release"] = -100
    with pytest.raises(ValueError, match=re.escape(f"job 'WO-3' release must be >= 0, got -100: t=0 is the plan's "
                                                   f"start, clock.start {START}")):
        problem_from_dict(numeric)
    plain = {"machines": ["M1"], "jobs": [{"id": "A", "release": -1, "operations": [{"machines": {"M1": 3}}]}]}
    with pytest.raises(ValueError, match=r"^job 'A' release must be >= 0$"):  # without a clock: as before
        problem_from_dict(plain)


def test_a_date_alone_is_the_end_of_its_day_for_a_due_a_deadline_and_a_horizon_and_its_start_elsewhere():
    doc = {"clock": {"start": "2026-12-08T06:00:00"}, "horizon": "2026-12-09",
           "machines": [{"id": "M1", "calendar": [{"start": "2026-12-09", "end": "2026-12-10", "kind": "holiday"}]},
                        "M2"],
           "jobs": [{"id": "A", "due": "2026-12-08", "operations": [{"id": "a", "machines": {"M1": 90}}]},
                    {"id": "B", "release": "2026-12-08", "operations": [
                        {"id": "a", "machines": {"M2": 600}, "started": {"machine": "M2", "start": "2026-12-08"}}]},
                    {"id": "C", "release": "2026-12-09", "operations": [
                        {"id": "a", "machines": {"M1": 5}, "pinned": {"machine": "M1", "start": "2026-12-10"}}]}],
           "failure_risk": {"risks": {"M2": 0.9}, "window_duration": 30, "deadline": "2026-12-08",
                            "service_first": False}}
    p = problem_from_dict(doc)
    a, b, c = p.jobs
    assert a.due == 18 * 60  # 24:00 of 8 December, 18 hours after 06:00; it was 00:00 (-360, reported 450 late)
    assert (p.horizon, p.risk.deadline) == (42 * 60, 18 * 60)
    assert b.release == 0 and b.operations[0].started_at == -360  # 00:00 of its day
    assert c.release == 18 * 60 and c.operations[0].pinned_start == 42 * 60
    (holiday,) = p.machines[0].calendar
    assert (holiday.start, holiday.end) == (18 * 60, 42 * 60)  # a calendar's dates are 00:00: [9 Dec, 10 Dec)
    small = {**doc, "horizon": None, "failure_risk": None, "jobs": [doc["jobs"][0]]}
    _, answer = _solve(small)
    assert answer["late_jobs"] == [] and answer["makespan"] == 90


@pytest.mark.parametrize(("field", "value", "sent"), [
    ("due", "2026-12-08", "2026-12-09T00:00:00+09:00"),
    ("release", "2026-12-08", "2026-12-08T00:00:00+09:00"),
    ("horizon", "2026-12-31", "2027-01-01T00:00:00+09:00"),
])
def test_a_date_alone_on_a_clock_with_an_offset_is_refused_saying_what_to_send(field, value, sent):
    doc = _replan()
    if field == "horizon":
        doc["horizon"], doc["jobs"], where = value, doc["jobs"][:2], "horizon"
    else:
        doc["jobs"][2][field], where = value, f"job 'WO-3' {field}"
    with pytest.raises(ValueError) as e:
        problem_from_dict(doc)
    message = str(e.value)
    assert message.startswith(f"{where} {value!r} is a date without a time of day, and clock.start has a UTC offset")
    assert f"send {sent!r}" in message
    assert ("24:00 is not ISO 8601" in message) == (field != "release")


def test_no_plan_reasons_give_the_calendar_time_beside_the_plan_units():
    doc = {"clock": {"start": "2026-12-08T06:00:00+09:00"}, "horizon": "2026-12-08T07:00:00+09:00",
           "machines": ["M1"], "jobs": [{"id": "A", "operations": [{"machines": {"M1": 130}}]}]}
    _, answer = _solve(doc)
    (reason,) = answer["no_plan_reasons"]
    assert reason["message"] == ("job A cannot end by the horizon 60 (2026-12-08T07:00:00+09:00): its release plus "
                                 "its operations on their fastest machines reach t=130 (2026-12-08T08:10:00+09:00)")
    assert (reason["horizon"], reason["needs"]) == (60, 130)
    assert reason["clock"] == {"horizon": "2026-12-08T07:00:00+09:00", "needs": "2026-12-08T08:10:00+09:00"}
    # the maintenance window's reason (placed before the solve) too; a window's length is no time of day
    risky = {**doc, "horizon": None, "failure_risk": {"risks": {"M1": 0.9}, "window_duration": 30,
                                                      "deadline": "2026-12-08T06:40:00+09:00"}}
    risky["jobs"] = [{"id": "A", "operations": [{"machines": {"M1": 30},
                                                  "pinned": {"machine": "M1", "start": "2026-12-08T06:00:00+09:00"}}]}]
    _, answer = _solve(risky)
    (reason,) = answer["no_plan_reasons"]
    assert reason["type"] == "maintenance_deadline"
    assert "window of 30 ends at 60 (2026-12-08T07:00:00+09:00) at the earliest, after the maintenance deadline " \
           "40 (2026-12-08T06:40:00+09:00)" in reason["message"]
    # without a clock, the same reasons as before: plan units only
    plain = {**risky, "clock": None, "failure_risk": {**risky["failure_risk"], "deadline": 40}}
    plain["jobs"] = [{"id": "A", "operations": [{"machines": {"M1": 30}, "pinned": {"machine": "M1", "start": 0}}]}]
    _, answer = _solve(plain)
    (reason,) = answer["no_plan_reasons"]
    assert reason["message"].startswith("machine M1's maintenance window of 30 ends at 60 at the earliest, after the "
                                        "maintenance deadline 40 (its downtimes") and "clock" not in reason


@pytest.mark.parametrize(("change", "message"), [
    ({"failure_risk": {"risks": {"M1": 0.9}, "window_duration": 30, "deadline": "2026-12-08T06:50:00+09:00"}},
     f"maintenance deadline 10 is before a window of 30 can end (on the clock: t=0 is clock.start {START}; "
     "failure_risk.deadline '2026-12-08T06:50:00+09:00' is t=10; a window of 30 from clock.start ends at "
     "2026-12-08T07:10:00+09:00 at the earliest)"),
    ({"horizon": "2026-12-08T06:00:00+09:00"},
     f"horizon must be > 0 (on the clock: t=0 is clock.start {START}; horizon '2026-12-08T06:00:00+09:00' is t=-40)"),
    ({"jobs": [{"id": "J", "release": "2026-12-08T07:00:00+09:00", "operations": [
        {"id": "a", "machines": {"M1": 5}, "pinned": {"machine": "M1", "start": "2026-12-08T06:50:00+09:00"}}]}]},
     "job 'J' operation 'a' is pinned at 10, before the job's release 20 (on the clock: t=0 is clock.start "
     f"{START}; job 'J' release '2026-12-08T07:00:00+09:00' is t=20; job 'J' operation 'a' pinned.start "
     "'2026-12-08T06:50:00+09:00' is t=10)"),
    ({"jobs": [{"id": "J", "operations": [
        {"id": "a", "machines": {"M1": 5}, "pinned": {"machine": "M1", "start": "2026-12-08T06:30:00+09:00"}}]}]},
     "job 'J': operation 'a' is pinned at -10: a pinned operation starts at t >= 0"),
])
def test_a_refusal_of_clock_times_says_them_on_the_calendar(change, message):
    with pytest.raises(ValueError) as e:
        problem_from_dict({**_replan(jobs=REPLAN["jobs"][:2]), **change})  # the work running at 06:40
    assert message in str(e.value)
    assert "(on the clock: t=0 is clock.start" in str(e.value)
