"""The plan's clock: a problem may say where its time 0 lies on the calendar (``clock``), send its times as ISO dates
and times, and get each row's times back on the clock."""

import json
import re

import pytest

from optimization.io import problem_from_dict, problem_to_dict
from optimization.service import make_params, solve_document

PROBLEM = {
    "clock": {"start": "2026-12-08T06:00:00+09:00"},
    "machines": [{"id": "M1", "calendar": [{"start": "2026-12-08T12:00:30+09:00", "end": "2026-12-08T12:59:30+09:00",
                                            "kind": "holiday"}]}, "M2"],
    "jobs": [
        {"id": "J1", "due": "2026-12-08T09:59:59+09:00", "release": "2026-12-08T06:00:30+09:00",
         "operations": [{"id": "a", "machines": {"M1": 300}}, {"id": "b", "machines": {"M2": 60}}]},
        {"id": "J2", "due": 200, "operations": [
            {"id": "a", "machines": {"M2": 30}, "pinned": {"machine": "M2", "start": "2026-12-08T06:10:10+09:00"}}]},
        {"id": "J3", "operations": [
            {"id": "a", "machines": {"M1": 40}, "started": {"machine": "M1", "start": "2026-12-08T05:50:50+09:00"}}]},
    ],
}


def _problem(**changes):
    return problem_from_dict({**json.loads(json.dumps(PROBLEM)), **changes})


def test_iso_times_become_plan_units_rounded_the_safe_way():
    """A due time rounds down (never later than asked), a release and a pin up (never earlier), a running
    operation's start down (the remaining part counted longer), a downtime outwards (it covers the whole of it)."""
    p = _problem()
    j1, j2, j3 = p.jobs
    assert (j1.due, j1.release) == (239, 1)
    assert j2.due == 200 and j2.operations[0].pinned_start == 11
    assert j3.operations[0].started_at == -10  # 05:50:50 floors to 05:50
    (holiday,) = p.machines[0].calendar
    assert (holiday.start, holiday.end) == (360, 420)
    assert p.clock.minutes_per_unit == 1
    # a clock of 15-minute units
    q = _problem(clock={"start": "2026-12-08T06:00+09:00", "minutes_per_unit": 15}, horizon="2026-12-09T06:00+09:00")
    assert q.horizon == 96 and q.jobs[0].due == 15 and q.jobs[0].release == 1


def test_the_answer_gives_each_row_its_clock_times():
    p = _problem()
    _, doc = solve_document(p, make_params(p, time_limit_s=2))
    assert doc["clock"]["start"] == "2026-12-08T06:00:00+09:00"
    assert doc["clock"]["plan_end"] == f"2026-12-08T{6 + doc['makespan'] // 60:02d}:{doc['makespan'] % 60:02d}:00+09:00"
    for row in doc["gantt"]:
        for key in ("start", "end"):
            h, m = divmod(360 + row[key], 60)
            assert row["clock"][key] == f"2026-12-08T{h:02d}:{m:02d}:00+09:00", row
    running = next(r for r in doc["gantt"] if r["job"] == "J3")
    assert running["clock"]["started_at"] == "2026-12-08T05:50:00+09:00"
    (late,) = doc["late_jobs"]
    assert late["job"] == "J1" and late["clock"]["due"] == "2026-12-08T09:59:00+09:00"
    # a plan without a clock is as before: no clock anywhere
    plain = problem_from_dict({k: v for k, v in problem_to_dict(p).items() if k != "clock"})
    _, doc = solve_document(plain, make_params(plain, time_limit_s=2))
    assert doc["clock"] is None and not any("clock" in r for r in doc["gantt"])


def test_the_clock_survives_a_round_trip_and_sets_the_energy_unit():
    p = _problem(clock={"start": "2026-12-08T06:00+09:00", "minutes_per_unit": 15},
                 energy={"prices": [1.0], "period": 4})
    assert p.energy.hours_per_unit == 0.25  # the clock's unit: an hour is 4 units, and the energy cost counts so
    again = problem_from_dict(json.loads(json.dumps(problem_to_dict(p))))
    assert again.clock == p.clock and again.jobs == p.jobs and again.energy == p.energy


@pytest.mark.parametrize(("change", "message"), [
    ({"clock": {"start": "2026-12-08T06:00"}}, "has a UTC offset and clock.start has none"),
    ({"clock": {"start": "tomorrow"}}, "clock.start must be an ISO 8601 date and time"),
    # an offset after a date alone: Python reads its "+" or "-" as the time separator (09:00 local)
    ({"jobs": [{"id": "J1", "due": "2026-12-08+09:00", "operations": [{"machines": {"M1": 3}}]}]},
     "job 'J1' due must be an ISO 8601 date and time"),
    ({"jobs": [{"id": "J1", "due": "2026-12-08Z", "operations": [{"machines": {"M1": 3}}]}]},
     "job 'J1' due must be an ISO 8601 date and time"),
    ({"clock": {"start": "2026-02-30T06:00+09:00"}}, "clock.start is not a real date and time"),
    ({"clock": {"start": "2026-12-08T06:00+09:00", "minutes_per_unit": 0}}, "clock.minutes_per_unit must be"),
    ({"clock": {"start": "2026-12-08T06:00+09:00", "minutes_per_unit": True}}, "clock.minutes_per_unit must be"),
    ({"clock": {"start": "2026-12-08T06:00+09:00", "unit": "h"}}, "clock: unknown field 'unit'"),
    ({"clock": {"start": "2026-12-08T06:00+09:00", "minutes_per_unit": 1}, "energy": {"hours_per_unit": 1}},
     "clock.minutes_per_unit (1) and energy.hours_per_unit (1, 60 minutes) disagree"),
    ({"clock": None}, "give the problem a \"clock\""),
    ({"clock": {"start": "2026-12-08T06:00+09:00"}, "horizon": "5000-01-01T00:00+09:00"}, "beyond +-"),
])
def test_a_bad_clock_or_time_is_refused_naming_it(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _problem(**change)


def test_hours_per_unit_of_a_minute_as_the_docs_round_it_agrees_with_the_clock():
    p = _problem(energy={"hours_per_unit": 0.016667, "prices": [1.0]})
    assert p.clock.minutes_per_unit == 1 and p.energy.hours_per_unit == 0.016667
    assert _problem(clock={"start": "2026-12-08T06:00+09:00"}, energy={"hours_per_unit": 0.25}).clock \
        .minutes_per_unit == 15
