"""Shop-floor features on small synthetic cases: every solve must respect them and pass the checker."""

from __future__ import annotations

from optimization.check import verify
from optimization.problem import (
    Downtime,
    EnergySettings,
    FailureRisk,
    Job,
    Machine,
    Operation,
    Precedence,
    SchedulingProblem,
    SetupTimes,
)
from optimization.solver import SolverParams, solve

FAST = SolverParams(time_limit_s=3, workers=2, seed=0)


def _solve(p: SchedulingProblem, **kw):
    params = SolverParams(**{**FAST.__dict__, **kw})
    s = solve(p, params)
    assert verify(p, s) == [], verify(p, s)
    return s


def test_sequence_dependent_setups_are_paid():
    ops = [("a", "X"), ("b", "Y"), ("c", "X"), ("d", "Y")]
    jobs = tuple(Job(f"J{i}", (Operation(o, {"M": 5}, family=f),)) for i, (o, f) in enumerate(ops))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M"),), setups=SetupTimes({("X", "Y"): 10, ("Y", "X"): 10}))
    s = _solve(p)
    # best: group the families -> one setup of 10
    assert s.makespan == 30 and s.status == "OPTIMAL"
    assert sum(a.setup for a in s.assignments) == 10


def test_calendar_breaks_and_spanning():
    cal = (Downtime(4, 6, "break"), Downtime(10, 20, "holiday"))
    jobs = (Job("J1", (Operation("a", {"M": 5}),)), Job("J2", (Operation("b", {"M": 5}, can_span_break=True),)))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M", cal),))
    s = _solve(p)
    by = s.by_key()
    # a may not cross the break [4,6); b may, but nothing crosses the holiday [10,20)
    # b runs through the break at [0,5); a fits neither [0,4) nor [6,10) and must wait for the holiday to end
    assert by[("J2", "b")].start == 0
    assert by[("J1", "a")].start == 20 and s.makespan == 25


def test_pinned_operations_are_kept_and_cross_precedence():
    jobs = (
        Job("J1", (Operation("a", {"M1": 4, "M2": 4}, pinned_machine="M2", pinned_start=3, started=True),)),
        Job("J2", (Operation("b", {"M1": 2, "M2": 1}),)),
        Job("J3", (Operation("c", {"M1": 3}),)),
    )
    p = SchedulingProblem(
        jobs=jobs, machines=(Machine("M1"), Machine("M2")), precedences=(Precedence(("J1", "a"), ("J3", "c"), 2),)
    )
    s = _solve(p)
    by = s.by_key()
    assert (by[("J1", "a")].machine, by[("J1", "a")].start) == ("M2", 3)
    assert by[("J3", "c")].start >= 9


def test_failure_risk_window_and_penalty():
    jobs = tuple(Job(f"J{i}", (Operation("a", {"M1": 5, "M2": 6}),)) for i in range(3))
    risk = FailureRisk({"M1": 0.9, "M2": 0.1}, threshold=0.5, window_duration=4, deadline=20)
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2")), risk=risk)
    s = _solve(p)
    assert [w.machine for w in s.maintenance] == ["M1"] and s.maintenance[0].end <= 20
    pen = SchedulingProblem(
        jobs=jobs,
        machines=(Machine("M1"), Machine("M2")),
        risk=FailureRisk({"M1": 0.9}, threshold=0.5, policy="penalty", penalty_per_unit=100),
    )
    s2 = _solve(pen)
    assert all(a.machine == "M2" for a in s2.assignments)  # the risky machine is avoided


def test_energy_cost_and_peak_cap():
    # cheap tariff in the second period; two 30 kW ops under a 45 kW cap cannot overlap
    jobs = tuple(Job(f"J{i}", (Operation("a", {f"M{i}": 10}, power_kw=30.0),), due=100) for i in range(2))
    en = EnergySettings(period=20, prices=(1.0, 0.1, 1.0, 1.0, 1.0), peak_cap_kw=45, hours_per_unit=1.0)
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M0"), Machine("M1")), energy=en, horizon=100)
    s = _solve(p, objective="energy")
    starts = sorted(a.start for a in s.assignments)
    assert starts[0] >= 20 and starts[1] >= starts[0] + 10 and max(a.end for a in s.assignments) <= 40
    assert s.objective["energy_cost"] == 60.0 and s.objective["peak_kw"] <= 45
    base = EnergySettings(period=20, prices=(1.0,), base_load_kw=(20.0, 0.0), peak_cap_kw=45, hours_per_unit=1.0)
    p2 = SchedulingProblem(jobs=jobs, machines=(Machine("M0"), Machine("M1")), energy=base)
    s2 = _solve(p2, objective="makespan")
    assert all(a.start >= 20 for a in s2.assignments) or s2.makespan >= 20


def test_tardiness_and_lexicographic():
    jobs = (
        Job("J1", (Operation("a", {"M": 4}),), due=4, weight=1),
        Job("J2", (Operation("b", {"M": 2}),), due=2, weight=5),
    )
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M"),))
    s = _solve(p, objective="tardiness")
    assert s.objective["weighted_tardiness"] == 2.0
    s = _solve(p, objective="lex", order=("tardiness", "makespan"))
    assert s.objective["weighted_tardiness"] == 2.0 and s.makespan == 6
