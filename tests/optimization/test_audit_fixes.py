"""Fixes from an audit of the planner's API: the peak while the plan runs, operations started before t=0, started
operations through breaks, pins before the work that must come first, and clearer messages."""

from __future__ import annotations

import dataclasses
import random

import pytest

from optimization.check import verify
from optimization.diagnose import _pins_named, proofs
from optimization.explain import explain_late_jobs
from optimization.io import problem_from_dict, problem_to_dict
from optimization.problem import EnergySettings, Job, Machine, Operation, Precedence, SchedulingProblem
from optimization.service import make_params, solve_document
from optimization.solution import Assignment, Schedule, evaluate


def _solve(doc: dict, objective: str = "makespan", limit: float = 3.0) -> dict:
    p = problem_from_dict(doc)
    return solve_document(p, make_params(p, time_limit_s=limit, workers=1, objective=objective))[1]


def _job(jid: str, *ops: dict, **extra) -> dict:
    return {"id": jid, "operations": list(ops), **extra}


# 1. peak_kw ---------------------------------------------------------------------------------------------------------
TWO_UNDER_A_CAP = {
    "machines": ["M1", "M2"],
    "jobs": [_job("A", {"machines": {"M1": 50}, "power_kw": 40}, due=100),
             _job("B", {"machines": {"M2": 50}, "power_kw": 40}, due=100)],
    "energy": {"period": 60, "base_load_kw": [50, 50, 50, 150, 50], "peak_cap_kw": 100, "hours_per_unit": 0.016667},
}


def test_peak_kw_is_the_peak_while_the_plan_runs():
    """Before: peak_kw was 150, the base load at t=180-240, after a plan that ends at 100 (the checker, rightly,
    counts only [0, makespan)). The forecast's own peak is base_load_peak_kw."""
    doc = _solve(TWO_UNDER_A_CAP)
    assert (doc["status"], doc["makespan"], doc["violations"]) == ("OPTIMAL", 100, 0)
    assert doc["objective_values"]["peak_kw"] == 90.0  # one 40-kW operation at a time on 50 kW of base load
    assert doc["objective_values"]["base_load_peak_kw"] == 150.0
    p = problem_from_dict(TWO_UNDER_A_CAP)
    # the base load counts while the plan runs, even where no operation draws power
    late = [Assignment("A", "0", "M1", 0, 50), Assignment("B", "0", "M2", 190, 240)]
    assert evaluate(p, late)["peak_kw"] == 190.0
    assert evaluate(p, [Assignment("A", "0", "M1", 0, 50), Assignment("B", "0", "M2", 0, 50)])["peak_kw"] == 130.0
    # without a base load there is no base_load_peak_kw (the keys stay as they were)
    plain = dataclasses.replace(p, energy=dataclasses.replace(p.energy, base_load_kw=()))
    assert "base_load_peak_kw" not in evaluate(plain, late) and evaluate(plain, late)["peak_kw"] == 40.0


# 2. started before t=0 ----------------------------------------------------------------------------------------------
RUNNING = {"machines": ["M1"], "jobs": [_job("A", {"id": "a", "machines": {"M1": 50},
                                                   "started": {"machine": "M1", "start": -30}},
                                        {"id": "b", "machines": {"M1": 10}})]}


def test_an_operation_started_before_time_zero_is_planned_as_its_remaining_part():
    """Before: 422 "operation '0' pinned_start must be >= 0" for the normal case of an operation running now."""
    doc = _solve(RUNNING)
    assert (doc["status"], doc["makespan"], doc["violations"]) == ("OPTIMAL", 30, 0)
    rows = {g["operation"]: g for g in doc["gantt"]}
    assert rows["a"] == {"machine": "M1", "job": "A", "operation": "a", "start": 0, "end": 20, "setup": 0,
                         "late": False, "started_at": -30}
    assert (rows["b"]["start"], rows["b"]["end"]) == (20, 30) and "started_at" not in rows["b"]
    p = problem_from_dict(RUNNING)
    op = p.op(("A", "a"))
    assert (op.pinned_start, op.durations["M1"], op.elapsed, op.started_at) == (0, 20, 30, -30)
    assert verify(p, Schedule([Assignment("A", "a", "M1", 0, 20), Assignment("A", "b", "M1", 20, 30)])) == []
    # written back as given
    assert problem_to_dict(p)["jobs"][0]["operations"][0]["started"] == {"machine": "M1", "start": -30}
    assert problem_to_dict(p)["jobs"][0]["operations"][0]["machines"] == {"M1": 50}
    assert problem_from_dict(problem_to_dict(p)).op(("A", "a")) == op


@pytest.mark.parametrize(("op", "needles"), [
    ({"started": {"machine": "M1", "start": -50}}, ("operation 'a' is started at -50", "it is finished",
                                                     "leave it out of the plan")),
    ({"started": {"machine": "M1", "start": -80}}, ("it is finished",)),
    ({"pinned": {"machine": "M1", "start": -5}}, ("operation 'a' is pinned at -5", "'started', not 'pinned'")),
    ({"pinned": {"machine": "M1", "start": "x"}}, ("operation 'a' pinned.start must be an integer",)),
    ({"started": {"machine": "M1", "start": 2.5}}, ("operation 'a' started.start must be an integer",)),
    ({"started": {"machine": "M2", "start": -5}}, ("operation 'a' is started on machine 'M2', which is not one",)),
])
def test_refused_pins_speak_the_planners_words(op, needles):
    doc = {"machines": ["M1", "M2"], "jobs": [_job("A", {"id": "a", "machines": {"M1": 50}, **op})]}
    with pytest.raises(ValueError) as e:
        problem_from_dict(doc)
    for needle in needles:
        assert needle in str(e.value)
    assert "pinned_start" not in str(e.value) and "pinned_machine" not in str(e.value)


def test_a_running_operation_before_its_jobs_release_names_its_real_start():
    doc = {"machines": ["M1"], "jobs": [_job("A", {"id": "a", "machines": {"M1": 50},
                                                   "started": {"machine": "M1", "start": -30}}, release=5)]}
    with pytest.raises(ValueError, match="operation 'a' is started at -30, before the job's release 5"):
        problem_from_dict(doc)


# 3. started operations and the calendar ------------------------------------------------------------------------------
def _running_through(kind: str, **op) -> dict:
    return {"machines": [{"id": "M1", "calendar": [{"start": 60, "end": 90, "kind": kind}]}],
            "jobs": [_job("A", {"id": "a", "machines": {"M1": 50}, "started": {"machine": "M1", "start": 40}, **op})]}


def test_a_started_operation_runs_through_a_break():
    """Before: INFEASIBLE, "the pinned or started operations alone break a rule: calendar: ... overlaps break"."""
    doc = _solve(_running_through("break"))
    assert (doc["status"], doc["makespan"], doc["violations"]) == ("OPTIMAL", 90, 0)
    assert problem_from_dict(_running_through("break")).op(("A", "a")).can_span_break is True
    # the planner's explicit false holds, and the reason says what to do
    doc = _solve(_running_through("break", can_span_break=False))
    assert doc["status"] == "INFEASIBLE" and doc["stats"]["method"] == "check"
    (r,) = doc["no_plan_reasons"]
    assert (r["type"], r["job"], r["operation"]) == ("pinned", "A", "a")
    assert "job 'A' operation 'a' is started (already running)" in r["message"]
    assert "break [60,90)" in r["message"] and "can_span_break" in r["message"]
    # an operation that is not started keeps the old default (no spanning)
    assert problem_from_dict({"machines": ["M1"], "jobs": [_job("A", {"machines": {"M1": 5}})]}).op(
        ("A", "0")).can_span_break is False
    # and the JSON round trip keeps each default
    for case in (_running_through("break"), _running_through("break", can_span_break=False)):
        p = problem_from_dict(case)
        assert problem_from_dict(problem_to_dict(p)).op(("A", "a")).can_span_break == p.op(("A", "a")).can_span_break


@pytest.mark.parametrize("kind", ["holiday", "shift", "maintenance"])
def test_a_started_operation_over_a_holiday_is_refused_naming_it_and_what_to_do(kind):
    doc = _solve(_running_through(kind))
    assert doc["status"] == "INFEASIBLE" and doc["stats"]["method"] == "check"
    (r,) = doc["no_plan_reasons"]
    assert (r["type"], r["job"], r["operation"], r["calendar"]["kind"]) == ("pinned", "A", "a", kind)
    assert f"job 'A' operation 'a' is started (already running) on M1 since t=40 and runs until t=90, across the " \
           f"{kind} [60,90)" in r["message"]
    assert f"shorten or remove that {kind}" in r["message"] and "not started" in r["message"]


def test_a_pin_over_a_break_says_how_to_move_it():
    doc = {"machines": [{"id": "M1", "calendar": [{"start": 20, "end": 30, "kind": "break"}]}],
           "jobs": [_job("A", {"id": "a", "machines": {"M1": 50}, "pinned": {"machine": "M1", "start": 0}})]}
    (r,) = _solve(doc)["no_plan_reasons"]
    assert "job 'A' operation 'a' is pinned on M1 at t=0" in r["message"]
    assert "end by t=20 or to start at t=30 or later" in r["message"] and "can_span_break true" in r["message"]


# 4. pins before the work that must come first ------------------------------------------------------------------------
def _pinned_after(pin: dict, **b) -> dict:
    return {"machines": ["M1", "M2"], "jobs": [_job("A", {"id": "a", "machines": {"M1": 50}},
                                                    {"id": "b", "machines": {"M2": 50}, **pin, **b})]}


def test_a_pin_before_its_jobs_earlier_work_can_end_is_named_at_once():
    """Before: only "without the pinned and started operations' times there is a plan (it ends at t=100)"."""
    doc = _solve(_pinned_after({"pinned": {"machine": "M2", "start": 10}}))
    assert doc["status"] == "INFEASIBLE" and doc["stats"]["method"] == "check"
    (r,) = doc["no_plan_reasons"]
    assert (r["type"], r["job"], r["operation"], r["start"], r["earliest"]) == ("pinned", "A", "b", 10, 50)
    assert r["message"].startswith("job 'A' operation 'b' is pinned on M2 at t=10, but it cannot start before t=50: "
                                   "job 'A' is released at t=0, then operation 'a' takes 50")
    # started at 0: the work before it is not in the past
    (r,) = _solve(_pinned_after({"started": {"machine": "M2", "start": 0}}))["no_plan_reasons"]
    assert (r["job"], r["operation"], r["earliest"]) == ("A", "b", 50)
    assert "started (already running) on M2 since t=0" in r["message"] and "leave it out of the plan" in r["message"]
    # a pin in time is no proof
    assert proofs(problem_from_dict(_pinned_after({"pinned": {"machine": "M2", "start": 50}}))) == []


def test_the_earliest_start_follows_releases_alternatives_and_lags_across_jobs():
    doc = {"machines": ["M1", "M2"],
           "jobs": [_job("A", {"id": "a", "machines": {"M1": 50, "M2": 40}}, release=5),
                    _job("B", {"id": "b", "machines": {"M2": 50}, "pinned": {"machine": "M2", "start": 54}})],
           "precedences": [{"before": ["A", "a"], "after": ["B", "b"], "min_lag": 10}]}
    (r,) = proofs(problem_from_dict(doc))
    assert (r["job"], r["operation"], r["earliest"]) == ("B", "b", 55)
    assert "job 'A' is released at t=5, then job 'A' operation 'a' takes 40 (on its fastest machine), then a lag " \
           "of 10" in r["message"]
    doc["jobs"][1]["operations"][0]["pinned"]["start"] = 55
    assert proofs(problem_from_dict(doc)) == []
    # from a pin through unpinned work: the pin's time counts, not the release
    chain = {"machines": ["M1"], "jobs": [_job("A", {"id": "a", "machines": {"M1": 10},
                                                      "pinned": {"machine": "M1", "start": 20}},
                                               {"id": "b", "machines": {"M1": 5}},
                                               {"id": "c", "machines": {"M1": 5}, "pinned": {"machine": "M1",
                                                                                               "start": 34}})]}
    (r,) = proofs(problem_from_dict(chain))
    assert (r["operation"], r["earliest"]) == ("c", 35)
    assert "job 'A' operation 'a' is pinned on M1 at t=20, then operation 'a' takes 10; operation 'b' takes 5" \
        in r["message"]


def test_pins_taken_from_a_feasible_plan_are_never_refused():
    """The new proof holds: pins copied from a checked plan (with releases, alternatives, calendars, cross-job lags)
    give no reason."""
    from benchmarks.gen_shop import generate
    from optimization.heuristics import dispatch

    base = generate(12, 4, 10, seed=3)
    precs = tuple(Precedence((base.jobs[i].id, base.jobs[i].operations[-1].id),
                             (base.jobs[i + 1].id, base.jobs[i + 1].operations[0].id), 7) for i in range(0, 10, 3))
    p = dataclasses.replace(base, precedences=precs)
    plan = dispatch(p, "atc")
    assert verify(p, plan) == []
    at = plan.by_key()
    rng = random.Random(5)
    jobs = []
    for j in p.jobs:
        ops = []
        for o in j.operations:
            a = at[(j.id, o.id)]
            if rng.random() < 0.5:
                o = dataclasses.replace(o, pinned_machine=a.machine, pinned_start=a.start)
            ops.append(o)
        jobs.append(dataclasses.replace(j, operations=tuple(ops)))
    pinned = dataclasses.replace(p, jobs=tuple(jobs))
    assert sum(o.pinned_start is not None for j in pinned.jobs for o in j.operations) > 10
    assert proofs(pinned) == []


def test_the_relaxed_pins_are_named_when_they_are_few():
    """CP-SAT proves it (the pin leaves no room for X before the horizon): the relaxation names the pin."""
    doc = {"horizon": 100, "machines": ["M1"],
           "jobs": [_job("P", {"id": "p", "machines": {"M1": 20}, "pinned": {"machine": "M1", "start": 40}}),
                    _job("X", {"id": "x", "machines": {"M1": 50}})]}
    out = _solve(doc)
    assert out["status"] == "INFEASIBLE" and out["stats"]["method"] == "cp-sat"
    kinds = {r["type"]: r["message"] for r in out["no_plan_reasons"]}
    assert kinds["pinned"] == ("without the pinned operation's time (job 'P' operation 'p' pinned on M1 at t=40) "
                               "there is a plan (it ends at t=70)")
    # the same in fields, for a console or an MES to word without reading the English: the relaxed rule's value
    by_type = {r["type"]: r for r in out["no_plan_reasons"]}
    assert by_type["pinned"]["pins"] == [{"job": "P", "operation": "p", "machine": "M1", "start": 40,
                                          "started": False}] and by_type["pinned"]["pin_count"] == 1
    assert by_type["horizon"]["horizon"] == 100 and by_type["horizon"]["relaxation"] == "horizon"
    many = SchedulingProblem(jobs=tuple(Job(f"J{i}", (Operation("a", {"M1": 1}, pinned_machine="M1",
                                                                pinned_start=i),)) for i in range(6)),
                             machines=(Machine("M1"),))
    assert _pins_named(many) == "the 6 pinned operations' times"


# 5. messages and explanations ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "message"), [
    ({"can_span_break": "x"}, "job 'A' operation '0' can_span_break must be true or false, got a string ('x')"),
    ({"power_kw": "5"}, "job 'A' operation '0' power_kw must be a number, got a string ('5')"),
    ({"pinned": {"machine": [1], "start": 0}}, "job 'A' operation '0' pinned.machine must be a string or an integer"),
])
def test_operation_errors_name_the_job_once(op, message):
    """Before: "job 'A': job 'A' operation '0' can_span_break must be true or false"."""
    with pytest.raises(ValueError) as e:
        problem_from_dict({"machines": ["M1"], "jobs": [_job("A", {"machines": {"M1": 5}, **op})]})
    assert str(e.value).startswith(message) and str(e.value).count("job 'A'") == 1


def test_a_job_late_for_the_peak_cap_names_the_operations_using_the_power():
    """Before: binding peak_power with blocking_operations []."""
    p = SchedulingProblem(
        jobs=(Job("X", (Operation("x", {"M1": 50}, power_kw=60),), due=100),
              Job("L", (Operation("l", {"M2": 10}, power_kw=60),), due=10),
              Job("Q", (Operation("q", {"M3": 60}),))),
        machines=(Machine("M1"), Machine("M2"), Machine("M3")),
        energy=EnergySettings(period=60, base_load_kw=(10,), peak_cap_kw=100))
    plan = Schedule([Assignment("X", "x", "M1", 0, 50), Assignment("L", "l", "M2", 50, 60),
                     Assignment("Q", "q", "M3", 0, 60)])
    assert verify(p, plan) == []
    (late,) = explain_late_jobs(p, plan)
    assert late["job"] == "L" and late["blocking_operations"] == [{"job": "X", "operation": "x"}]
    (step,) = late["critical_chain"]
    (r,) = step["binding"]
    assert r == {"type": "peak_power", "cap_kw": 100, "at": 49, "load_kw": 70.0, "base_load_kw": 10.0,
                 "operations": [{"job": "X", "operation": "x", "machine": "M1", "power_kw": 60.0}]}
    # where the cap leaves room one unit earlier, it is not named: the step could start earlier (the cap had been
    # named without a load, and the console said the step was held by it; planner audit)
    roomy = dataclasses.replace(p, energy=EnergySettings(period=60, base_load_kw=(10,), peak_cap_kw=200))
    (late,) = explain_late_jobs(roomy, plan)
    assert late["blocking_operations"] == [] and late["critical_chain"][0]["binding"] == [
        {"type": "idle", "note": "could start earlier; not binding"}]
