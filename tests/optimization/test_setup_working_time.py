"""A setup takes working time on its machine: it lies in no holiday, break, off-shift time or maintenance window.

Before, a setup was only a gap between two operations, and a changeover could fall in a holiday: with a holiday
over [100, 1000), operation B (setup 60 after A, which ended at 100) was planned at 1000, its changeover drawn
inside the holiday, and the checker agreed. A setup may still be done before a downtime and the operation wait."""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

from optimization.check import verify
from optimization.heuristics import RULES, dispatch, setups_in_working_time
from optimization.io import problem_from_dict
from optimization.problem import EnergySettings
from optimization.service import make_params
from optimization.solution import Assignment, MaintenanceWindow, Schedule, evaluate
from optimization.solver import solve
from tests.optimization.reference_dispatch import dispatch_reference
from tests.optimization.test_power_dispatch import _not_the_pins, _random_capped


def _problem(**extra) -> dict:
    return {"horizon": 3000,
            "machines": [{"id": "M1", "calendar": [{"start": 100, "end": 1000, "kind": "holiday"}]}],
            "jobs": [{"id": "A", "operations": [{"id": "o", "machines": {"M1": 100}, "family": "red"}]},
                     {"id": "B", "operations": [{"id": "o", "machines": {"M1": 50}, "family": "blue"}]}],
            "setups": {"matrix": {"red": {"blue": 60}, "blue": {"red": 60}}}, **extra}


def _plan(p, starts: dict[str, int], windows=()) -> Schedule:
    assigns = [Assignment(j, "o", "M1", s, s + p.op((j, "o")).durations["M1"]) for j, s in starts.items()]
    obj = evaluate(p, assigns)
    return Schedule(assignments=assigns, status="FEASIBLE", makespan=int(obj["makespan"]), objective=obj,
                    maintenance=list(windows))


def _starts(s: Schedule) -> dict[str, int]:
    return {a.job: a.start for a in s.assignments}


def test_a_setup_is_not_done_in_a_holiday(engine):
    p = problem_from_dict(_problem())
    inside = verify(p, _plan(p, {"A": 0, "B": 1000}))  # what every scheme planned before
    assert [v.kind for v in inside] == ["setup"] and "finds no working time" in inside[0].message
    assert verify(p, _plan(p, {"A": 0, "B": 1060})) == []
    for rule in RULES:  # whichever goes first, the second waits for the changeover after the holiday
        got = _starts(dispatch(p, rule))
        assert got == _starts(dispatch_reference(p, rule)) and sorted(got.values()) == [0, 1060], rule
    for objective in ("makespan", "tardiness", "weighted"):
        extra = {"jobs": [{**j, "due": 500} for j in _problem()["jobs"]]} if objective != "makespan" else {}
        q = problem_from_dict(_problem(**extra))
        s = solve(q, make_params(q, time_limit_s=2, objective=objective))
        assert verify(q, s) == [] and max(_starts(s).values()) >= 1060, (objective, _starts(s))
        # CP-SAT's model only knows the setup's length: its bound (1050) is no proof of the plan it gives
        assert s.status != "OPTIMAL" or s.lower_bound == s.makespan, (objective, s.status, s.lower_bound)


def test_a_setup_may_be_done_before_a_downtime_and_the_operation_wait(engine):
    """B is released when the holiday ends: its changeover fits in [100, 160) before it, so it starts at 1000."""
    jobs = _problem()["jobs"]
    jobs[0]["operations"][0]["machines"] = {"M1": 30}
    p = problem_from_dict(_problem(jobs=[jobs[0], {**jobs[1], "release": 1000}],
                                   machines=[{"id": "M1", "calendar": [
                                       {"start": 100, "end": 1000, "kind": "holiday"}]}]))
    assert verify(p, _plan(p, {"A": 0, "B": 1000})) == []
    for rule in RULES:
        assert _starts(dispatch(p, rule)) == _starts(dispatch_reference(p, rule)) == {"A": 0, "B": 1000}, rule
    # a break right after A leaves 50 of the 60: the changeover waits for the break's end
    q = problem_from_dict(_problem(machines=[{"id": "M1", "calendar": [
        {"start": 150, "end": 180, "kind": "break"}]}]))
    for rule in RULES:
        got = dispatch(q, rule)
        assert _starts(got) == _starts(dispatch_reference(q, rule)) and verify(q, got) == [], rule
    assert _starts(dispatch(q, "mwkr")) == {"A": 0, "B": 240}  # A first (more work), B after the break


def test_a_setup_is_not_done_in_a_maintenance_window():
    p = problem_from_dict(_problem(machines=["M1"]))
    window = MaintenanceWindow("M1", 110, 170)
    kept = _plan(p, {"A": 0, "B": 170}, [window])  # 60 of setup fit in [100, 170) only with the window
    assert [v.kind for v in verify(p, kept)] == ["setup"]
    assert verify(p, _plan(p, {"A": 0, "B": 230}, [window])) == []
    assert verify(p, _plan(p, {"A": 0, "B": 160})) == []  # no window: the setup fits in [100, 160)


def test_cp_sat_plans_are_moved_to_keep_the_rule_and_pins_stay():
    p = problem_from_dict(_problem())
    cp_plan = _plan(p, {"A": 0, "B": 1000})
    fixed = setups_in_working_time(p, cp_plan)
    assert _starts(fixed) == {"A": 0, "B": 1060} and verify(p, fixed) == [] and fixed.stats["setups_moved"] == 1
    ok = _plan(p, {"A": 0, "B": 1100})  # later than it needs: kept where the plan put it
    assert setups_in_working_time(p, ok) is ok
    doc = _problem()
    doc["jobs"][1]["operations"][0]["pinned"] = {"machine": "M1", "start": 1000}
    pinned = problem_from_dict(doc)
    assert setups_in_working_time(pinned, _plan(pinned, {"A": 0, "B": 1000})) is None


def test_random_shops_keep_setups_in_working_time_under_every_objective():
    """Small shops with breaks, holidays, setups, pins, windows, a peak cap and a tariff: every scheme's plan (the
    dispatching rules, CP-SAT with its plans moved, the energy moves, the LNS) keeps setups out of downtime."""
    rng = random.Random(5)
    checked = 0
    while checked < 40:
        try:
            p = _random_capped(rng)
        except ValueError:
            continue
        if not p.has_setups:
            continue
        checked += 1
        prices = tuple(rng.choice((0.1, 0.2, 0.5)) for _ in range(4))
        p = dataclasses.replace(p, energy=dataclasses.replace(p.energy, prices=prices) if p.energy
                                else EnergySettings(period=10, prices=prices))
        objective = rng.choice(("makespan", "tardiness", "energy", "weighted"))
        if objective == "tardiness" and not any(j.due is not None for j in p.jobs):
            objective = "makespan"
        try:
            params = make_params(p, time_limit_s=0.4, objective=objective, workers=1)
        except ValueError:
            continue
        s = solve(p, params)
        if s.assignments:
            assert _not_the_pins(p, s) == [], (checked, objective)


def test_the_answer_says_where_each_setup_lies():
    """The Gantt rows' ``setup_start``: the console drew every setup right before its operation, so a setup done
    before a holiday (the operation released after it) was drawn inside the holiday."""
    from optimization.service import solve_document

    jobs = _problem()["jobs"]
    jobs[0]["operations"][0]["machines"] = {"M1": 30}
    doc = _problem(jobs=[jobs[0], {**jobs[1], "release": 1000},
                         {"id": "C", "release": 1000, "operations": [{"id": "o", "machines": {"M1": 50},
                                                                      "family": "red"}]}])
    p = problem_from_dict(doc)
    line, out = solve_document(p, make_params(p, time_limit_s=1))
    assert line["violations"] == 0 and line["makespan"] == 1160
    rows = {r["job"]: r for r in out["gantt"]}
    assert "setup_start" not in rows["A"]
    for r in rows.values():
        if r["setup"]:
            assert r["setup_start"] + r["setup"] <= r["start"]
            assert not (r["setup_start"] < 1000 and 100 < r["setup_start"] + r["setup"])  # not in the holiday
    first = min((r for r in rows.values() if r["setup"]), key=lambda r: r["start"])
    assert first["start"] == 1000 and first["setup_start"] == 40  # done before the holiday, as late as it can be
    assert rows["A"]["end"] <= first["setup_start"]


def test_a_maintenance_window_leaves_the_setup_between_pins_its_working_time(engine):
    """The failure-risk window was placed after the pins without regard to setups: it took [10, 15) between P1
    (ends 10) and P2 (pinned at 20), the only working time for their setup of 10, so every rule's plan failed the
    checker and the solve answered INFEASIBLE (review). The window now goes after P2."""
    doc = {"machines": ["M1"],
           "jobs": [{"id": "P1", "operations": [{"id": "o", "machines": {"M1": 10}, "family": "A",
                                                 "pinned": {"machine": "M1", "start": 0}}]},
                    {"id": "P2", "operations": [{"id": "o", "machines": {"M1": 10}, "family": "B",
                                                 "pinned": {"machine": "M1", "start": 20}}]}],
           "setups": {"matrix": {"A": {"B": 10}, "B": {"A": 10}}},
           "failure_risk": {"risks": {"M1": 0.9}, "threshold": 0.5, "window_duration": 5, "policy": "window",
                            "service_first": False}}
    p = problem_from_dict(doc)
    for rule in RULES:
        s = dispatch(p, rule)
        assert verify(p, s) == [] and [(w.start, w.end) for w in s.maintenance] == [(30, 35)], rule
        assert [(w.start, w.end) for w in dispatch_reference(p, rule).maintenance] == [(30, 35)], rule
    s = solve(p, make_params(p, time_limit_s=2))
    assert s.status == "OPTIMAL" and s.makespan == 30 and verify(p, s) == []
    # serviced first (the default), the window keeps out of the setup's time too: it had taken [10, 15), and the
    # solve found no plan (review)
    doc["failure_risk"].pop("service_first")
    first = problem_from_dict(doc)
    s = solve(first, make_params(first, time_limit_s=2))
    assert s.status == "OPTIMAL" and verify(first, s) == [] and [(w.start, w.end) for w in s.maintenance] == [(30, 35)]


def test_without_a_start_plan_the_horizon_holds_the_pinned_work_and_the_setups():
    """CP-SAT's horizon when no dispatching rule gave a plan left out where the pins end and the setups: a pin at
    t=1,000 and 50 time units of other work made a horizon of 50+ (review: INFEASIBLE for a problem with a plan)."""
    from optimization.solver import _horizon

    doc = _problem()
    del doc["horizon"]
    doc["jobs"][0]["operations"][0]["pinned"] = {"machine": "M1", "start": 2000}
    p = problem_from_dict(doc)
    h = _horizon(p, None, [{"makespan": 1.0}])
    assert h >= 2000 + 100 + 50 + 2 * 60  # the pin's end, the other work, a setup before each
    assert verify(p, _plan(p, {"A": 2000, "B": 2160})) == [] and 2210 <= h


def test_a_misspelt_setup_family_is_pointed_out(tmp_path):
    """A setup matrix naming 'Red' for the operations' 'red' planned no changeover, and nothing said so (planner
    audit): the answer's notes name both sides, the CLI prints them on stderr, and a matrix that matches says
    nothing. A per-machine matrix counts as naming its families."""
    doc = _problem()
    doc["setups"] = {"matrix": {"Red": {"blue": 60}, "blue": {"Red": 60}}}
    p = problem_from_dict(doc)
    notes = p.notes()
    assert [(n["type"], n["families"]) for n in notes] == [("setup_family_unused", ["Red"]),
                                                          ("setup_family_missing", ["red"])]
    assert "'Red', which no operation has" in notes[0]["message"]
    assert problem_from_dict(_problem()).notes() == []
    per = _problem()
    per["setups"] = {"matrix": {"blue": {"green": 5}}, "per_machine": {"M1": {"red": {"blue": 60}}}}
    assert [(n["type"], n["families"]) for n in problem_from_dict(per).notes()] == [("setup_family_unused",
                                                                                    ["green"])]
    assert problem_from_dict({**_problem(), "setups": {"matrix": {"red": {"blue": 0}}}}).notes() == []  # no setups
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    r = subprocess.run([str(Path(sys.executable).with_name("sfai")), "schedule", "solve", str(f), "--time-limit", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "OPTIMAL", r.stderr
    assert r.stderr.splitlines() == [f"note: {n['message']}" for n in notes]


def test_an_operation_marked_running_in_the_future_is_pointed_out():
    """An operation "already running" at t=50 while another job ran there 0-40 was planned with no word (planner's
    audit): started work began at or before t=0. The answer's notes say so and point to a pin."""
    doc = _problem()
    doc["jobs"][0]["operations"][0]["started"] = {"machine": "M1", "start": 50}
    notes = problem_from_dict(doc).notes()
    assert [n["type"] for n in notes] == ["started_in_future"]
    assert notes[0]["operations"] == [{"job": doc["jobs"][0]["id"], "operation": doc["jobs"][0]["operations"][0]["id"],
                                       "start": 50}]
    assert "is marked started (already running) but starts at t=50" in notes[0]["message"]
    assert "pin it instead" in notes[0]["message"]
    doc["jobs"][0]["operations"][0]["started"] = {"machine": "M1", "start": 0}
    assert problem_from_dict(doc).notes() == []  # running since the plan's start: nothing to say
