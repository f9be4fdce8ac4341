"""A plant's maintenance crews (``FailureRisk.crews``): at most that many failure-risk windows at once. Without the
limit every risky machine was serviced at t=0, three machines by a plant with one crew."""

from __future__ import annotations

import pytest

from optimization.check import peak_overlap, verify
from optimization.heuristics import dispatch
from optimization.io import problem_from_dict, problem_to_dict
from optimization.problem import Downtime, FailureRisk, Job, Machine, Operation, SchedulingProblem
from optimization.service import make_params, solve_document
from optimization.solution import MaintenanceWindow, Schedule
from optimization.solver import SolverParams, solve
from optimization.windows import AFTER_CREWS, NoWindow, service_first

FAST = SolverParams(time_limit_s=3, workers=2, seed=0)
RISKS = {"M1": 0.6, "M2": 0.9, "M3": 0.75, "M4": 0.1}


def _shop(risk: FailureRisk, *, calendar: dict[str, tuple[Downtime, ...]] | None = None) -> SchedulingProblem:
    machines = tuple(Machine(m, calendar=(calendar or {}).get(m, ())) for m in ("M1", "M2", "M3", "M4"))
    jobs = tuple(Job(f"J{i}", (Operation("a", {m: 8 for m in ("M1", "M2", "M3", "M4")}),
                                Operation("b", {"M1": 4, "M2": 4, "M3": 4})), due=30) for i in range(6))
    return SchedulingProblem(jobs=jobs, machines=machines, risk=risk)


def _windows(s: Schedule) -> list[tuple[str, int, int]]:
    return sorted((w.machine, w.start, w.end) for w in s.maintenance)


def test_one_crew_services_the_riskiest_machine_first_and_the_others_in_turn():
    p = _shop(FailureRisk(RISKS, window_duration=10, crews=1))
    _, windows = service_first(p)
    assert [(w.machine, w.start, w.end, w.reason) for w in windows] == [
        ("M1", 20, 30, AFTER_CREWS), ("M2", 0, 10, "failure risk"), ("M3", 10, 20, AFTER_CREWS)]
    s = solve(p, FAST)
    assert verify(p, s) == [] and _windows(s) == [("M1", 20, 30), ("M2", 0, 10), ("M3", 10, 20)]
    # two crews: the two riskiest at once, the third when one is free; no limit: all three at 0, as before
    two = service_first(_shop(FailureRisk(RISKS, window_duration=10, crews=2)))[1]
    assert sorted((w.machine, w.start) for w in two) == [("M1", 10), ("M2", 0), ("M3", 0)]
    free = service_first(_shop(FailureRisk(RISKS, window_duration=10)))[1]
    assert sorted((w.machine, w.start, w.reason) for w in free) == [
        ("M1", 0, "failure risk"), ("M2", 0, "failure risk"), ("M3", 0, "failure risk")]
    # as many crews as windows: the same as no limit
    assert service_first(_shop(FailureRisk(RISKS, window_duration=10, crews=3)))[1] == free


def test_a_crew_waits_for_a_machine_that_is_down_and_the_next_window_takes_the_gap():
    # M2 (the riskiest) is on holiday 0-15: its window goes at 15; M3 takes the crew at 0 meanwhile
    p = _shop(FailureRisk(RISKS, window_duration=10, crews=1), calendar={"M2": (Downtime(0, 15, "holiday"),)})
    _, windows = service_first(p)
    got = {w.machine: (w.start, w.end) for w in windows}
    assert got["M2"] == (15, 25) and got["M3"] == (0, 10) and got["M1"] == (25, 35)
    s = solve(p, FAST)
    assert verify(p, s) == []


@pytest.mark.parametrize("how", ["cp-sat", "dispatch"])
def test_flexible_windows_keep_to_the_crews(how):
    p = _shop(FailureRisk(RISKS, window_duration=10, crews=1, service_first=False, deadline=60))
    s = dispatch(p) if how == "dispatch" else solve(p, FAST)
    assert s.assignments and verify(p, s) == [], verify(p, s)
    spans = [(w.start, w.end) for w in s.maintenance]
    assert len(spans) == 3 and peak_overlap(spans)[0] == 1, spans


def test_a_deadline_the_crews_cannot_meet_says_so():
    p = _shop(FailureRisk(RISKS, window_duration=10, crews=1, deadline=25))
    with pytest.raises(NoWindow) as e:
        service_first(p)
    assert e.value.kind == "maintenance_deadline" and e.value.fields == {
        "machine": "M1", "needs": 30, "deadline": 25, "crews": 1}
    assert "the crew is on other machines' windows before then" in e.value.message
    line, doc = solve_document(p, make_params(p, time_limit_s=3, workers=1))
    assert line["status"] == "INFEASIBLE" and doc["no_plan_reasons"][0]["crews"] == 1
    # flexible windows: solving again without the limit tells that the crews are the cause
    flex = _shop(FailureRisk(RISKS, window_duration=10, crews=1, deadline=25, service_first=False))
    line, doc = solve_document(flex, make_params(flex, time_limit_s=3, workers=1))
    kinds = {r["type"]: r for r in doc["no_plan_reasons"]}
    assert line["status"] == "INFEASIBLE" and kinds["maintenance_crews"]["crews"] == 1, doc["no_plan_reasons"]
    assert kinds["maintenance_crews"]["makespan"] is not None
    assert "without the limit of 1 maintenance crew at once there is a plan" in kinds["maintenance_crews"]["message"]


def test_verify_counts_the_windows_under_way_and_not_the_plants_own_calendar():
    p = _shop(FailureRisk(RISKS, window_duration=10, crews=1, service_first=False))
    s = dispatch(p)
    assert verify(p, s) == []
    overlapping = Schedule(assignments=s.assignments, maintenance=[
        MaintenanceWindow("M1", 100, 110), MaintenanceWindow("M2", 105, 115), MaintenanceWindow("M3", 200, 210)])
    found = [v for v in verify(p, overlapping) if "crew" in v.message]
    assert len(found) == 1 and "2 maintenance windows under way at 105, more than the 1 crew" in found[0].message
    booked = Schedule(assignments=s.assignments, maintenance=[
        MaintenanceWindow("M1", 100, 110), MaintenanceWindow("M2", 105, 115, reason="failure risk (calendar "
                                                                                       "maintenance)"),
        MaintenanceWindow("M3", 200, 210)])
    assert [v for v in verify(p, booked) if "crew" in v.message] == []


def test_crews_are_read_written_and_checked():
    p = _shop(FailureRisk(RISKS, window_duration=10, crews=2))
    d = problem_to_dict(p)
    assert d["failure_risk"]["crews"] == 2 and problem_from_dict(d).risk.crews == 2
    for bad in (0, -1, 1.5, "2", True, 10**6):
        d["failure_risk"]["crews"] = bad
        with pytest.raises(ValueError, match="crews"):
            problem_from_dict(d)
    d["failure_risk"]["crews"] = None
    assert problem_from_dict(d).risk.crews is None


def test_a_big_plan_and_any_plan_after_it_keep_to_the_crews_when_dispatched():
    """The compiled dispatching scheme (plans of 500 operations or more, and every plan once its code is loaded in
    the process: a serving process after any big plan) placed new windows without the crews' limit, so every such
    dispatch broke it and failed its check. A crew-limited plan whose windows are placed anew takes the Python
    scheme."""
    from dataclasses import replace

    from benchmarks.gen_shop import generate

    base = generate(jobs=60, ops=10, machines=12, seed=1, days=2)  # 600 operations: the compiled scheme's size
    risky = {m.id: 0.8 for m in base.machines[:4]}
    big = replace(base, risk=FailureRisk(risky, window_duration=60, crews=1, service_first=False))
    s = dispatch(big)
    assert s.assignments and verify(big, s) == [], verify(big, s)
    spans = [(w.start, w.end) for w in s.maintenance]
    assert len(spans) == 4 and peak_overlap(spans)[0] == 1, spans
    small = _shop(FailureRisk(RISKS, window_duration=10, crews=1, service_first=False))  # after the big one
    assert verify(small, dispatch(small)) == []
    from optimization import heuristics

    plain = replace(base, risk=None)  # without a crew limit: still the compiled scheme
    assert verify(plain, dispatch(plain)) == [] and any(p is plain for p, _ in heuristics._TABLES)
    assert not any(p is big for p, _ in heuristics._TABLES)
