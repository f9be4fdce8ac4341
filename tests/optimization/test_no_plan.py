"""Answers without a plan say why (optimization.diagnose), big models are not built past the time limit, and big
plans under a peak power cap get the compiled dispatch search."""

from __future__ import annotations

import dataclasses
import time

import pytest

from benchmarks.gen_shop import generate
from optimization.builder import ModelTooLarge, build_model
from optimization.heuristics import dispatch
from optimization.problem import (
    Downtime,
    EnergySettings,
    FailureRisk,
    Job,
    Machine,
    Operation,
    SchedulingProblem,
)
from optimization.service import make_params, solve_document

TWO = (Machine("M1"), Machine("M2"))


def _one(jid: str, d: int, **op) -> Job:
    return Job(jid, (Operation("a", {"M1": d}, **op),))


def _solve(p: SchedulingProblem, limit: float = 3.0) -> tuple[dict, dict]:
    return solve_document(p, make_params(p, time_limit_s=limit, workers=1))


def test_a_horizon_too_short_is_infeasible_at_once_and_names_the_jobs():
    p = SchedulingProblem(jobs=(_one("J1", 50), Job("J2", (Operation("a", {"M2": 80}),), release=30)), machines=TWO,
                          horizon=100)
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE" and doc["stats"]["method"] == "check"
    (r,) = doc["no_plan_reasons"]
    assert r["type"] == "horizon" and r["jobs"] == ["J2"] and r["needs"] == 110 and "J2" in r["message"]
    # the machine load alone: two jobs of 60 on one machine
    p = SchedulingProblem(jobs=(_one("J1", 60), _one("J2", 60)), machines=TWO, horizon=100)
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE" and [r["type"] for r in doc["no_plan_reasons"]] == ["horizon"]
    assert doc["no_plan_reasons"][0]["needs"] == 120


def test_clashing_pins_are_named():
    pin = dict(pinned_machine="M1")
    p = SchedulingProblem(jobs=(_one("J1", 50, pinned_start=0, **pin), _one("J2", 50, pinned_start=20, **pin)),
                          machines=TWO)
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE"
    assert [r["type"] for r in doc["no_plan_reasons"]] == ["pinned"]
    assert "overlap" in doc["no_plan_reasons"][0]["message"] and "J2" in doc["no_plan_reasons"][0]["message"]
    p = SchedulingProblem(jobs=(_one("J1", 50, pinned_start=0, **pin),),
                          machines=(Machine("M1", (Downtime(10, 20, "holiday"),)),))
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE" and "holiday" in doc["no_plan_reasons"][0]["message"]


def test_a_maintenance_deadline_that_cannot_be_met_is_found_by_relaxing_it():
    """CP-SAT proves it infeasible; solving again without each hard rule tells which ones are in the way."""
    p = SchedulingProblem(jobs=(_one("J1", 50, pinned_machine="M1", pinned_start=0),), machines=TWO,
                          risk=FailureRisk(risks={"M1": 0.9}, threshold=0.5, window_duration=30, deadline=60,
                                           service_first=False))  # the flexible window: the model's own proof
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE" and doc["stats"]["method"] == "cp-sat"
    kinds = {r["type"]: r for r in doc["no_plan_reasons"]}
    assert set(kinds) == {"maintenance_deadline", "pinned"}
    assert kinds["maintenance_deadline"]["makespan"] == 50 and "deadline 60" in kinds["maintenance_deadline"]["message"]


def test_a_peak_cap_against_a_horizon_names_both():
    jobs = (_one("J1", 50, power_kw=60), Job("J2", (Operation("a", {"M2": 50}, power_kw=60),)))
    p = SchedulingProblem(jobs=jobs, machines=TWO, horizon=60,
                          energy=EnergySettings(period=60, prices=(1.0,), peak_cap_kw=100))
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE" and doc["gantt"] == []
    kinds = {r["type"]: r["makespan"] for r in doc["no_plan_reasons"]}
    assert kinds == {"horizon": 100, "peak_power": 50}


def test_a_plan_has_no_reasons():
    line, doc = _solve(SchedulingProblem(jobs=(_one("J1", 5),), machines=TWO))
    assert line["status"] == "OPTIMAL" and doc["no_plan_reasons"] == []


def test_only_the_last_operation_of_a_late_job_is_flagged_late():
    job = Job("J1", (Operation("a", {"M1": 5}), Operation("b", {"M2": 5})), due=7)
    line, doc = _solve(SchedulingProblem(jobs=(job, Job("J2", (Operation("a", {"M2": 1}),), due=9)), machines=TWO))
    assert {(g["job"], g["operation"]): g["late"] for g in doc["gantt"]} == \
        {("J1", "a"): False, ("J1", "b"): True, ("J2", "a"): False}


def test_a_model_too_big_for_the_time_limit_is_refused_before_it_is_built():
    """Before: a 5,000-operation shop with setups took ~50 s and 2.9 GB to build within a 5-s solve."""
    p = generate(500, 10, 50, seed=1)
    t = time.perf_counter()
    with pytest.raises(ModelTooLarge, match="setups of 5,000 operations"):
        build_model(p, 20_000, ("tardiness",), time_limit_s=2.0)
    assert time.perf_counter() - t < 2.0  # refused from the estimate, not after building for the whole limit


def test_a_big_capped_plan_gets_the_dispatch_search():
    """With a peak power cap the dispatching ran in Python (~10 s for 5,000 operations: a 5-s solve had no plan)
    and nothing improved on the ATC plan; the compiled scheme keeps the cap, so the tail search runs too."""
    p = generate(100, 10, 50, seed=2)
    p = dataclasses.replace(p, energy=EnergySettings(period=60, prices=(0.1, 0.2), peak_cap_kw=150.0))
    atc = dispatch(p, "atc").objective["weighted_tardiness"]
    line, doc = _solve(p, limit=4.0)
    assert line["status"] == "FEASIBLE" and line["violations"] == 0
    assert doc["stats"]["tail_iterations"] > 0
    assert line["objective_values"]["weighted_tardiness"] < atc


def test_pins_too_close_for_their_setup_are_no_proof():
    """Without the triangle inequality an operation between two pins can need less setup in all: CP-SAT decides
    (before: INFEASIBLE at once, "needs setup 10", for a plan that exists)."""
    from optimization.problem import SetupTimes

    setups = SetupTimes(matrix={("a", "b"): 10, ("a", "c"): 0, ("c", "b"): 0, ("b", "a"): 0, ("c", "a"): 0,
                                ("b", "c"): 0})
    jobs = (_one("J1", 5, family="a", pinned_machine="M1", pinned_start=0),
            _one("J2", 5, family="b", pinned_machine="M1", pinned_start=8), _one("J3", 3, family="c"))
    line, doc = _solve(SchedulingProblem(jobs=jobs, machines=TWO, setups=setups))
    assert line["status"] == "OPTIMAL" and line["violations"] == 0 and doc["no_plan_reasons"] == []
    assert [(g["job"], g["start"]) for g in doc["gantt"] if g["machine"] == "M1"] == \
        [("J1", 0), ("J3", 5), ("J2", 8)]


def test_the_compiled_capped_dispatch_stops_at_its_deadline():
    """A tight cap on a big plan made one rule run for seconds past a 1-s limit; the compiled scheme now reads the
    clock every 64 placements."""
    from optimization.heuristics import DispatchTimeout

    p = generate(60, 10, 10, seed=1)
    p = dataclasses.replace(p, energy=EnergySettings(period=60, prices=(0.1, 0.3), peak_cap_kw=45.0))
    assert len(dispatch(p, "atc").assignments) == 600
    with pytest.raises(DispatchTimeout, match="did not finish its plan of 600 operations"):
        dispatch(p, "atc", deadline=time.perf_counter() - 1.0)


def test_a_rule_the_checker_refuses_does_not_stop_the_others():
    """best_dispatch compared a refused rule's INF with the others' score tuples (a TypeError)."""
    from optimization.heuristics import best_dispatch

    p = generate(8, 3, 3, seed=2)
    best, scores = best_dispatch(p, lambda s: (s.makespan,), ("mwkr", "spt"),
                                 check=lambda s: s.stats["method"] != "dispatch:mwkr")
    assert scores["mwkr"] is None and scores["spt"] == (best.makespan,)
    assert best.stats["method"] == "dispatch:spt"


def test_an_operation_that_takes_no_time_may_sit_inside_a_downtime_in_the_cp_sat_model_too():
    """The checker and the dispatching let a zero-length operation sit inside a calendar downtime; CP-SAT's
    no-overlap refuses a zero-size interval strictly inside another, so its model was stricter than the rules: a
    random shop's plan of makespan 39 was answered OPTIMAL with a lower bound of 58."""
    from optimization.solver import SolverParams, solve_full

    job = Job("J1", (Operation("a", {"M2": 31}), Operation("b", {"M1": 0})), release=8)
    p = SchedulingProblem(jobs=(job,), machines=(Machine("M1", (Downtime(38, 58, "maintenance"),)), Machine("M2")))
    plan, bound, proven = solve_full(p, SolverParams(time_limit_s=5, workers=1), 100, None, time.perf_counter() + 5)
    assert plan.makespan == 39 and bound == 39 and proven
    assert [(a.op, a.machine, a.start) for a in sorted(plan.assignments, key=lambda a: a.op)] == \
        [("a", "M2", 8), ("b", "M1", 39)]


def test_a_proof_that_took_the_whole_time_still_gets_its_reasons_checked():
    """A search that proved INFEASIBLE at its time limit left the relaxed solves no time: the answer said only
    "no time was left to check whether the horizon is the cause" (planner audit, horizon 1000 at 3 s). They get a
    little time of their own."""
    import time

    from optimization.diagnose import why_no_plan
    from optimization.solution import Schedule

    p = SchedulingProblem(jobs=(_one("J1", 50, pinned_machine="M1", pinned_start=0),), machines=TWO,
                          risk=FailureRisk(risks={"M1": 0.9}, threshold=0.5, window_duration=30, deadline=60,
                                           service_first=False))
    reasons = why_no_plan(p, Schedule([], status="INFEASIBLE"), time.perf_counter() - 1.0)
    kinds = {r["type"]: r for r in reasons}
    assert "unchecked" not in kinds and kinds["maintenance_deadline"]["makespan"] == 50, reasons


def test_a_pin_before_its_work_can_end_counts_the_machines_downtimes():
    """Packing pinned at 374 after a trim on machines off until 360: the early-pin proof left the downtimes out
    (the trim "could" end at 114), found nothing, and the relaxations blamed every pin and running operation
    (planner audit). It now counts them: the trim ends at 399 at the earliest, and the answer says so at once."""
    job = Job("J", (Operation("mould", {"M1": 75}), Operation("trim", {"T1": 39, "T2": 35}),
                    Operation("pack", {"P1": 20}, pinned_machine="P1", pinned_start=374)))
    off = (Downtime(0, 360, "shift"),)
    p = SchedulingProblem(jobs=(job,), machines=(Machine("M1"), Machine("T1", off), Machine("T2", off), Machine("P1")))
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE"
    (r,) = doc["no_plan_reasons"]
    assert (r["type"], r["earliest"], r["start"]) == ("pinned", 395, 374), r
    assert "operation 'trim' takes 35 (on its fastest machine), ending at t=395 after its machines' downtimes" in \
        r["message"]


def test_a_pin_without_a_machine_still_starts_the_chain():
    """A step pinned at a time without naming its machine (the Python API allows it): the early-pin proof had
    dropped it while counting downtimes, and found nothing (review)."""
    from optimization.diagnose import _early_pins

    job = Job("J", (Operation("a", {"M1": 5, "M2": 5}, pinned_start=100), Operation("b", {"M3": 10}),
                    Operation("c", {"M4": 5}, pinned_start=105)))
    p = SchedulingProblem(jobs=(job,), machines=tuple(Machine(m) for m in ("M1", "M2", "M3", "M4")))
    assert [(r["operation"], r["earliest"]) for r in _early_pins(p)] == [("c", 115)]


def test_the_pins_relaxation_drops_the_pins_not_the_running_work():
    """A pin that leaves no plan was reported as "without the pinned and started operations' times (J-01 running
    ..., J-11 ...) there is a plan": the running operations cannot move, and naming them sent the planner after
    work under way (planner audit). The relaxation drops the planner's pins alone where there are any."""
    running = Job("R", (Operation("r", {"M1": 30}, pinned_machine="M1", pinned_start=0, started=True),))
    pinned = Job("P", (Operation("b", {"M1": 10}, pinned_machine="M1", pinned_start=45),))
    rest = Job("Q", (Operation("q", {"M1": 25}),))  # fits in no gap before the horizon: 30-45 and 55-70
    p = SchedulingProblem(jobs=(running, pinned, rest), machines=TWO, horizon=70)
    line, doc = _solve(p)
    assert line["status"] == "INFEASIBLE"
    (r,) = [r for r in doc["no_plan_reasons"] if r["type"] == "pinned"]
    assert r["pin_count"] == 1 and [x["job"] for x in r["pins"]] == ["P"], r
    assert r["message"].startswith("without the pinned operation's time (job 'P' operation 'b' pinned on M1"), r


def test_auto_searches_a_capped_plan_with_the_capped_dispatch_search_then_the_model():
    """Under a peak power cap the whole CP-SAT model, warm-started from the dispatching plan, had returned that plan
    unimproved (108 operations, 10 s: weighted tardiness 1,940; the lns path 809; planner's audit). ``auto`` now takes
    the lns path there (the compiled capped search, then the model's polish); without a cap it keeps the model."""
    p = generate(jobs=12, ops=4, machines=6, seed=3, days=3, tightness=(0.8, 1.5))
    capped = dataclasses.replace(p, energy=EnergySettings(period=60, prices=(1.0,), peak_cap_kw=90.0))
    line, doc = solve_document(capped, make_params(capped, time_limit_s=3, workers=1, objective="tardiness"))
    # the searches ran, unless the whole model's first fifth of the time proved its plan optimal
    assert doc["stats"]["strategy"] == "lns" or line["status"] == "OPTIMAL", doc["stats"]
    assert line["violations"] == 0
    small = dataclasses.replace(capped, jobs=capped.jobs[:3])  # proven at once: answered then, not at the limit
    line, doc = solve_document(small, make_params(small, time_limit_s=10, workers=1, objective="tardiness"))
    assert line["status"] == "OPTIMAL" and doc["stats"]["strategy"] == "full" and line["wall_s"] < 5, line
    line, doc = solve_document(p, make_params(p, time_limit_s=3, workers=1, objective="tardiness"))
    assert doc["stats"]["strategy"] == "full", doc["stats"]
    # the makespan alone keeps the model's own search, capped or not
    line, doc = solve_document(capped, make_params(capped, time_limit_s=2, workers=1, objective="makespan"))
    assert doc["stats"]["strategy"] == "full", doc["stats"]
