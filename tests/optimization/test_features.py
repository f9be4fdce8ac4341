"""Shop-floor features on small synthetic cases: every solve must respect them and pass the checker."""

from __future__ import annotations

import random
import time

import pytest

from optimization.check import verify
from optimization.heuristics import _Power, dispatch
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
from tests.optimization.helpers import deadline

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


def test_an_operation_above_the_peak_cap_is_refused_up_front():
    """An operation whose power alone (on top of the lowest base load) exceeds the cap can never run: the problem
    is refused, naming it (before: the dispatching generator searched forever, ignoring the time limit)."""
    jobs = (Job("J1", (Operation("a", {"M1": 3}, power_kw=1000),)),)
    with pytest.raises(ValueError, match=r"job 'J1' operation 'a': power_kw 1000 exceeds the energy peak_cap_kw 100"):
        SchedulingProblem(jobs=jobs, machines=(Machine("M1"),), energy=EnergySettings(prices=(1.0,), peak_cap_kw=100))
    low = (Job("J1", (Operation("a", {"M1": 3}, power_kw=10),)),)
    with pytest.raises(ValueError, match="power_kw 10 plus the lowest base load 200 kW exceeds"):
        SchedulingProblem(jobs=low, machines=(Machine("M1"),),
                          energy=EnergySettings(base_load_kw=(200.0,), peak_cap_kw=100))
    running = (Job("J1", (Operation("a", {"M1": 3}, power_kw=1000, started=True, pinned_machine="M1",
                                    pinned_start=0),)),)
    with pytest.raises(ValueError, match="exceeds the energy peak_cap_kw 100, while it is already running"):
        SchedulingProblem(jobs=running, machines=(Machine("M1"),),
                          energy=EnergySettings(prices=(1.0,), peak_cap_kw=100))
    # zero power, or zero duration, draws nothing: fine under any base load
    idle = (Job("J1", (Operation("a", {"M1": 3}), Operation("b", {"M1": 0}, power_kw=500))),)
    p = SchedulingProblem(jobs=idle, machines=(Machine("M1"),),
                          energy=EnergySettings(base_load_kw=(200.0,), peak_cap_kw=100))
    assert _solve(p).makespan == 3


def test_power_cap_search_ends_when_an_operation_never_fits():
    """Under the cap on its own, but the only low-load period is taken by a pinned operation and the base load is
    above the cap after it: the generator gives up (a ValueError, not an endless search) and the solver answers
    INFEASIBLE within its time limit."""
    jobs = (
        Job("J1", (Operation("a", {"M1": 60}, power_kw=40, pinned_machine="M1", pinned_start=0),)),
        Job("J2", (Operation("b", {"M2": 1}, power_kw=40),)),
    )
    en = EnergySettings(period=60, prices=(1.0,), base_load_kw=(50.0, 200.0), peak_cap_kw=100)
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2")), energy=en)
    with deadline(20):
        with pytest.raises(ValueError, match="peak power cap too low"):
            dispatch(p, "mwkr")
        t0 = time.perf_counter()
        s = solve(p, SolverParams(time_limit_s=2, workers=1))
    assert s.status == "INFEASIBLE" and time.perf_counter() - t0 < 5


def test_power_push_is_the_earliest_start_under_the_cap():
    """The step-function power profile gives the earliest start that fits, as a unit-by-unit scan does."""
    rng = random.Random(3)
    for trial in range(200):
        period = rng.randint(1, 7)
        base = tuple(float(rng.choice((0, 10, 30, 60))) for _ in range(rng.randint(0, 5)))
        en = EnergySettings(period=period, base_load_kw=base, peak_cap_kw=100)
        p = SchedulingProblem(jobs=(Job("J", (Operation("a", {"M": 1}),)),), machines=(Machine("M"),), energy=en)
        power, usage = _Power(p), [0.0] * 200
        for _ in range(rng.randint(0, 6)):
            t, d, kw = rng.randint(0, 40), rng.randint(1, 15), float(rng.choice((10, 25, 40)))
            power.add(t, d, kw)
            for u in range(t, t + d):
                usage[u] += kw
        kw, t0, d = float(rng.choice((5, 20, 40, 70))), rng.randint(0, 40), rng.randint(1, 12)
        power.set_op(kw)

        def fits(t: int, usage=usage, en=en, kw=kw, d=d) -> bool:
            return all(usage[u] + en.base_at(u) + kw <= 100 + 1e-9 for u in range(t, t + d))

        want = next((t for t in range(t0, 150) if fits(t)), None)
        if want is None:  # never fits: the base load after the forecast is too high
            with pytest.raises(ValueError):
                power.push(t0, d, None, False)
        else:
            assert power.push(t0, d, None, False) == want, trial


def test_energy_objective_on_a_long_plan_keeps_the_time_limit():
    """The exact energy term is a table per start time: for a plan of ~10**6 time units it would take longer than
    the time limit to build and load, so the solve keeps the dispatching plan and says why."""
    jobs = tuple(Job(f"J{i}", (Operation("a", {f"M{i % 2}": 300_000}, power_kw=10.0),)) for i in range(4))
    en = EnergySettings(period=60, prices=(0.1, 0.3), hours_per_unit=1 / 60)
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M0"), Machine("M1")), energy=en)
    with deadline(60):
        t0 = time.perf_counter()
        s = solve(p, SolverParams(time_limit_s=1, workers=1, objective="energy"))
    assert time.perf_counter() - t0 < 3 and s.status == "FEASIBLE" and verify(p, s) == []
    assert "energy cost tables" in s.stats["model_too_large"]


def _tou_problem(n_jobs: int = 1, **kw) -> SchedulingProblem:
    """60-min, 100 kW jobs on one machine; prices 1, 1, 0.1 per hour (repeating): the cheap hour is 120..180."""
    jobs = tuple(Job(f"J{i}", (Operation("a", {"M": 60}, power_kw=100.0),), **kw) for i in range(n_jobs))
    en = EnergySettings(period=60, prices=(1.0, 1.0, 0.1), hours_per_unit=1 / 60)
    return SchedulingProblem(jobs=jobs, machines=(Machine("M"),), energy=en)


def test_energy_optimum_after_the_dispatch_horizon():
    """The horizon cut at ~1.3 x the dispatch plan's makespan (79 here) hid the cheap hour: OPTIMAL at cost 100
    with lower bound 100, while the same problem with a far due date started at 120 for cost 10."""
    for kw in ({}, {"due": 1000}):
        s = _solve(_tou_problem(**kw), objective="energy", time_limit_s=5)
        assert s.objective["energy_cost"] == pytest.approx(10.0) and s.assignments[0].start == 120, kw
        assert s.status == "OPTIMAL" and s.lower_bound == pytest.approx(10.0), kw


def test_energy_status_honest_when_the_horizon_may_cut():
    """Three such jobs want three cheap hours (120, 300, 480: cost 30), past the derived horizon (the dispatch
    makespan plus one tariff cycle): no OPTIMAL claim then, and a lower bound valid over all plans."""
    s = _solve(_tou_problem(3), objective="energy", time_limit_s=3)
    if s.objective["energy_cost"] > 30.0 + 1e-6:
        assert s.status == "FEASIBLE"
    assert s.lower_bound is not None and s.lower_bound <= 30.0 + 1e-6
    p = _tou_problem(3)
    p = SchedulingProblem(jobs=p.jobs, machines=p.machines, energy=p.energy, horizon=600)  # the planner's span
    s = _solve(p, objective="energy", time_limit_s=5)
    assert s.status == "OPTIMAL" and s.objective["energy_cost"] == pytest.approx(30.0)


def test_warm_start_of_a_setup_model_is_complete():
    """The hint also sets the setup circuits' arcs, the pairwise setup orders and flexible durations: CP-SAT got
    3 % of a flexible 30x10 setup model hinted, could not complete it and found no plan in 20 s."""
    from optimization.builder import CIRCUIT_MAX_OPS, add_hint, build_model
    from optimization.solver import _horizon

    rng = random.Random(3)
    fams = ("a", "b", "c")
    setups = SetupTimes(matrix={(x, y): 5 + 3 * abs(i - k) for i, x in enumerate(fams) for k, y in enumerate(fams)
                                if x != y})
    for n_jobs in (4, CIRCUIT_MAX_OPS // 2 + 2):  # circuits; pairwise disjunctions past CIRCUIT_MAX_OPS per machine
        k = 2 if n_jobs > 4 else None  # past the circuit limit on both machines
        jobs = tuple(Job(f"J{j}", tuple(Operation(str(o), {m: rng.randint(3, 9) for m in rng.sample(
            ["M0", "M1"], k or rng.randint(1, 2))}, family=rng.choice(fams)) for o in range(2))) for j in range(n_jobs))
        p = SchedulingProblem(jobs=jobs, machines=(Machine("M0"), Machine("M1")), setups=setups)
        stages = [{"makespan": 1.0}]
        plan = dispatch(p, "mwkr")
        model, mv = build_model(p, _horizon(p, plan, stages), ("makespan",))
        add_hint(model, mv, plan.assignments, {})
        proto = model.proto
        hinted = set(proto.solution_hint.vars)
        free = [v.name for i, v in enumerate(proto.variables) if i not in hinted and len(set(v.domain)) > 1]
        assert free == [], free[:5]


def test_a_pin_further_along_a_job_gets_its_earlier_steps_done_in_time():
    """Every dispatching rule placed P's first step behind shorter, more urgent or longer-tailed work on M1, past
    the pin of P's second step, so no rule gave a start plan and the solve answered UNKNOWN ("give more time")
    for a plan that exists (planner audit: 72 operations, still UNKNOWN after 20 s). With P due by its pin for the
    start plan, the rules bring its first step forward."""
    jobs = [Job("P", (Operation("a", {"M1": 45}), Operation("b", {"M2": 10}, pinned_machine="M2", pinned_start=50)))]
    jobs += [Job(f"Q{i}", (Operation("a", {"M1": 10}), Operation("b", {"M3": 100})), due=20) for i in range(5)]
    p = SchedulingProblem(jobs=tuple(jobs), machines=(Machine("M1"), Machine("M2"), Machine("M3")))
    from optimization.solver import _pin_urgent

    for rule in ("spt", "mwkr", "edd", "atc"):
        assert verify(p, dispatch(p, rule)), rule  # each rule alone breaks the pin's precedence
    urgent = _pin_urgent(p)
    assert urgent is not None and urgent.job("P").due == 50
    start = dispatch(urgent, "atc")
    assert verify(p, start) == [] and start.by_key()[("P", "a")].end <= 50
    assert _pin_urgent(SchedulingProblem(jobs=tuple(jobs[1:]), machines=p.machines)) is None  # no such pin
    s = _solve(p, objective="tardiness")
    assert s.status in ("OPTIMAL", "FEASIBLE") and s.by_key()[("P", "a")].end <= 50
