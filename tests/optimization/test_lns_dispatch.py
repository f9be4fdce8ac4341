"""Fast dispatching (same plans as the reference generator) and the small-sub-model LNS on generated shops."""

from __future__ import annotations

import dataclasses
import time

import pytest

from benchmarks.gen_shop import generate
from optimization.check import verify
from optimization.heuristics import RULES, dispatch
from optimization.lns import Shop, _seqs, improve, supported
from optimization.problem import Downtime, EnergySettings, FailureRisk, Job, Machine, Operation, SchedulingProblem
from optimization.solution import Assignment, MaintenanceWindow, Schedule, evaluate
from optimization.solver import SolverParams, score, solve
from tests.optimization.reference_dispatch import dispatch_reference

TARDINESS = {"tardiness": 1.0}


def _shop(jobs: int = 30, seed: int = 3, tightness: tuple[float, float] = (1.5, 4.0)):
    return generate(jobs, 5, 10, seed=seed, days=4, tightness=tightness)


TIGHT = (0.5, 1.2)  # due dates some jobs miss: a plan with no job late is optimal and ends the solve at once


def _with_pins_and_risk(p):
    """Pin the first operation of the first job and add a failure-risk maintenance window."""
    j0 = p.jobs[0]
    o0 = j0.operations[0]
    m0 = o0.machines[0]
    pinned = Operation(o0.id, o0.durations, o0.family, o0.power_kw, o0.can_span_break, m0, j0.release + 5, True)
    jobs = (dataclasses.replace(j0, operations=(pinned, *j0.operations[1:])), *p.jobs[1:])
    risk = FailureRisk(risks={p.machines[1].id: 0.9}, threshold=0.5, window_duration=60, deadline=3000,
                       service_first=False)  # the flexible window, placed by each part of the solver
    return dataclasses.replace(p, jobs=jobs, risk=risk)


def _same(a, b) -> bool:
    key = sorted((x.job, x.op, x.machine, x.start, x.end, x.setup) for x in a.assignments)
    return key == sorted((x.job, x.op, x.machine, x.start, x.end, x.setup) for x in b.assignments) and \
        sorted((w.machine, w.start) for w in a.maintenance) == sorted((w.machine, w.start) for w in b.maintenance)


@pytest.mark.parametrize("rule", RULES)
def test_fast_dispatch_matches_reference(rule, engine):
    for p in (_shop(), _with_pins_and_risk(_shop(seed=5))):
        fast, ref = dispatch(p, rule), dispatch_reference(p, rule)
        assert verify(p, fast) == []
        assert _same(fast, ref)


def test_fast_dispatch_matches_reference_with_power_cap():
    p = _shop(12, seed=7)
    p = dataclasses.replace(p, energy=EnergySettings(period=60, prices=(0.1, 0.3), base_load_kw=(20.0,),
                                                     peak_cap_kw=80.0))
    for rule in ("atc", "mwkr"):
        fast = dispatch(p, rule)
        assert verify(p, fast) == []
        assert _same(fast, dispatch_reference(p, rule))


def test_retime_never_moves_later_and_lns_never_worse():
    p = _shop(40, seed=2)
    d = dispatch(p, "atc")
    shop = Shop(p, d.maintenance)
    bk = d.by_key()
    mach = [bk[k].machine for k in shop.keys]
    start = [bk[k].start for k in shop.keys]
    timed = shop.retime(mach, _seqs(shop, mach, start))
    assert timed is not None and all(t <= s for t, s in zip(timed, start, strict=True))
    assert supported(p, TARDINESS)
    s = improve(p, d, TARDINESS, time.perf_counter() + 3.0, workers=2, seed=1, size=20)
    assert verify(p, s) == []
    assert s.objective["weighted_tardiness"] <= d.objective["weighted_tardiness"]
    assert s.stats["lns_iterations"] >= 1


def test_lns_with_pins_and_maintenance_passes_checker():
    p = _with_pins_and_risk(_shop(30, seed=4))
    d = dispatch(p, "atc")
    assert verify(p, d) == []
    s = improve(p, d, TARDINESS, time.perf_counter() + 2.0, workers=2, seed=3, size=25)
    assert verify(p, s) == []
    assert s.objective["weighted_tardiness"] <= d.objective["weighted_tardiness"]


def test_solve_small_engine_beats_or_equals_dispatch():
    p = _shop(40, seed=6, tightness=TIGHT)
    params = SolverParams(time_limit_s=4, workers=2, seed=0, objective="tardiness", strategy="lns",
                          lns_engine="small", polish_max_ops=0, sequence_search_share=0.0)
    s = solve(p, params)
    assert verify(p, s) == []
    stages = params.stages()
    assert score(p, s, stages) <= tuple(s.stats["dispatch_best"])
    assert s.stats["lns_iterations"] >= 1


def test_power_cap_falls_back_to_whole_model_lns():
    p = dataclasses.replace(_shop(10, seed=8), energy=EnergySettings(peak_cap_kw=500.0))
    assert not supported(p, TARDINESS)


def test_atc_variants_and_search_return_checked_plans():
    from optimization.heuristics import atc_search, atc_variants

    p = _shop(30, seed=9)

    def sc(s):
        return s.objective["weighted_tardiness"]

    def ok(s):
        return not verify(p, s)

    best, scores = atc_variants(p, sc, check=ok)
    assert best is not None and ok(best) and sc(best) == min(scores.values())
    found, scores2 = atc_search(p, sc, time_budget_s=0.5, seed=1, check=ok)
    assert found is not None and ok(found) and len(scores2) >= 1
    assert sc(found) == min(scores2.values())


def test_small_plans_keep_the_full_model_path():
    """``auto`` below full_max_ops never runs the ATC-variant search nor the small-sub-model LNS."""
    p = _shop(20, seed=10, tightness=TIGHT)
    s = solve(p, SolverParams(time_limit_s=2, workers=2, objective="tardiness"))
    assert s.stats["dispatch_best"][0] > 0 and s.stats["strategy"] == "full"
    assert not any(k.startswith("atc(") for k in s.stats["dispatch_scores"])
    assert verify(p, s) == []


def _one_machine_plan(weights, calendar=(), risk=None, maintenance=(), at=0):
    """Job A (10 units, due at+10) placed after job B (2 units, due at+12), both released at ``at``: A is 2 units
    late; A first is on time.
    Keeping operations early (the sub-models' secondary goal) prefers B first."""
    jobs = (Job("A", (Operation("a", {"M1": 10}),), release=at, due=at + 10, weight=weights[0]),
            Job("B", (Operation("b", {"M1": 2}),), release=at, due=at + 12, weight=weights[1]))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1", calendar),), risk=risk)
    plan = [Assignment("B", "b", "M1", at, at + 2), Assignment("A", "a", "M1", at + 2, at + 12)]
    return p, Schedule(plan, objective=evaluate(p, plan), maintenance=list(maintenance))


def test_lns_sub_models_keep_small_weights():
    """Before: the sub-models scaled fractional weights by 100, so 0.002 and 0.001 became 0, the tardiness left
    the sub-model, and the LNS kept the late plan (its moves only kept the operations early)."""
    for weights in ((0.002, 0.001), (2, 1)):
        p, d = _one_machine_plan(weights)
        assert verify(p, d) == [] and d.objective["weighted_tardiness"] == 2 * weights[0]
        s = improve(p, d, TARDINESS, time.perf_counter() + 1.0, workers=1, seed=0, size=8)
        assert verify(p, s) == []
        assert s.objective["weighted_tardiness"] == 0, (weights, s.assignments)


def test_lns_with_a_maintenance_window_over_a_break():
    """A maintenance window may overlap a break (the dispatching places it so); the sub-models' fixed blocks on
    that machine overlapped each other, every sub-model was infeasible and the late plan stayed. Now the blocks
    are merged (as ``Machine.blocking`` merges the calendar)."""
    risk = FailureRisk(risks={"M1": 0.9}, threshold=0.5, window_duration=15, deadline=33, service_first=False)
    p, d = _one_machine_plan((1, 1), calendar=(Downtime(20, 30, "break"),), risk=risk,
                             maintenance=(MaintenanceWindow("M1", 18, 33),))
    assert verify(p, d) == [] and d.objective["weighted_tardiness"] == 2
    s = improve(p, d, TARDINESS, time.perf_counter() + 1.0, workers=1, seed=0, size=8)
    assert verify(p, s) == [] and s.objective["weighted_tardiness"] == 0, s.assignments


def test_lns_sub_models_with_huge_weights_near_the_end_of_time():
    """Before: 1000 * (weight * 10**6) times a tardiness of up to 10**9 overflowed int64: every sub-model was invalid
    (MODEL_INVALID) and the late plan stayed. And completions past 10**9 (a release at 10**9 plus the work) were
    beyond the sub-models' bound of 10**9: the makespan sub-models were infeasible. Now the coefficients are scaled
    down to fit and the bounds follow the plan."""
    w = 999999.123456789
    p, d = _one_machine_plan((w, w), at=10**9 - 12)
    assert d.objective["weighted_tardiness"] == pytest.approx(2 * w)
    for stage in (TARDINESS, {"tardiness": 1.0, "makespan": 0.5}):
        s = improve(p, d, stage, time.perf_counter() + 1.0, workers=1, seed=0, size=8)
        assert verify(p, s) == [] and s.objective["weighted_tardiness"] == 0, (stage, s.assignments)
    # both on M1 from 10**9: A moves to M2
    t0 = 10**9
    jobs = (Job("A", (Operation("a", {"M1": 10, "M2": 10}),), release=t0),
            Job("B", (Operation("b", {"M1": 2}),), release=t0))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2")))
    plan = [Assignment("B", "b", "M1", t0, t0 + 2), Assignment("A", "a", "M1", t0 + 2, t0 + 12)]
    s = improve(p, Schedule(plan, objective=evaluate(p, plan)), {"makespan": 1.0}, time.perf_counter() + 1.0,
                workers=1, seed=0, size=8)
    assert verify(p, s) == [] and s.makespan == t0 + 10, s.assignments
