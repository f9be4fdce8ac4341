"""optimization.energy_shift: operations moved in time to cheaper tariff periods, machines and orders kept."""

from __future__ import annotations

import dataclasses
import random

import pytest

from benchmarks.gen_shop import generate
from optimization.check import verify
from optimization.energy_shift import shift
from optimization.heuristics import dispatch
from optimization.problem import Downtime, EnergySettings, Job, Machine, Operation, SchedulingProblem
from optimization.service import make_params, solve_document
from optimization.solver import score
from tests.optimization.test_power_dispatch import _random_capped

DAY = (0.08,) * 7 + (0.15,) * 4 + (0.22,) * 6 + (0.15,) * 4 + (0.08,) * 3  # hourly prices, cheap at night


def _shop(**energy) -> SchedulingProblem:
    """Two jobs of two 60-min operations on M1 then M2; the first hour costs 10 times the second."""
    jobs = tuple(Job(f"J{j}", (Operation("a", {"M1": 60}, power_kw=10.0), Operation("b", {"M2": 60}, power_kw=10.0)))
                 for j in (1, 2))
    en = EnergySettings(**{"period": 60, "prices": (1.0, 0.1, 0.1, 0.1), **energy})
    return SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2")), energy=en)


def test_an_operation_moves_out_of_the_dear_hour_and_the_rest_make_room():
    p = _shop()
    s = dispatch(p, "mwkr")  # M1: J?a at 0-60 (price 1.0), the other at 60-120
    assert min(a.start for a in s.assignments) == 0
    out = shift(p, s, [{"energy": 1.0}], horizon=600, deadline=float("inf"))
    assert verify(p, out) == []
    assert min(a.start for a in out.assignments) >= 60  # nothing runs in the dear first hour
    assert out.objective["energy_cost"] == 4.0 and s.objective["energy_cost"] == 13.0
    assert out.stats["method"].endswith("+shift")


def test_the_peak_cap_the_calendar_and_a_tardiness_stage_hold_it_back():
    # a cap that leaves room for one operation at a time in hours 1-3 (a base load of 5 there)
    p = _shop(base_load_kw=(0.0, 5.0, 5.0, 5.0), peak_cap_kw=15.0)
    out = shift(p, dispatch(p, "mwkr"), [{"energy": 1.0}], horizon=600, deadline=float("inf"))
    assert verify(p, out) == []
    # a holiday over the cheap hours on M1: its operations stay out of it
    p = dataclasses.replace(_shop(), machines=(Machine("M1", (Downtime(60, 240, "holiday"),)), Machine("M2")))
    out = shift(p, dispatch(p, "mwkr"), [{"energy": 1.0}], horizon=600, deadline=float("inf"))
    assert verify(p, out) == []
    # due dates first: a job due at 120 may not end later to save energy
    p = dataclasses.replace(_shop(), jobs=tuple(dataclasses.replace(j, due=120 + 60 * k)
                                                for k, j in enumerate(_shop().jobs)))
    s = dispatch(p, "edd")
    out = shift(p, s, [{"tardiness": 1.0}, {"energy": 1.0}], horizon=600, deadline=float("inf"))
    assert verify(p, out) == [] and out.objective["weighted_tardiness"] <= s.objective["weighted_tardiness"]


def test_random_shops_stay_feasible_and_never_get_worse():
    rng = random.Random(5)
    checked = 0
    while checked < 150:
        try:
            p = _random_capped(rng)
        except ValueError:
            continue
        en = dataclasses.replace(p.energy, prices=tuple(rng.choice((0.1, 0.5, 1.0)) for _ in range(rng.randint(1, 5))),
                                 peak_cap_kw=rng.choice((None, p.energy.peak_cap_kw)))
        p = dataclasses.replace(p, energy=en)
        try:
            s = dispatch(p, rng.choice(("atc", "mwkr", "edd")))
        except ValueError:
            continue
        if verify(p, s):
            continue  # a random pin in a holiday: no plan to start from
        checked += 1
        stages = rng.choice(([{"energy": 1.0}], [{"tardiness": 1.0}, {"energy": 1.0}],
                             [{"tardiness": 1.0, "makespan": 0.5, "energy": 2.0}],
                             [{"makespan": 1.0}, {"energy": 1.0}]))
        horizon = max(a.end for a in s.assignments) + rng.choice((0, 50, 500))
        out = shift(p, s, stages, horizon, deadline=float("inf"))
        assert verify(p, out) == [], (checked, stages)
        assert score(p, out, stages) <= score(p, s, stages), (checked, stages)
        assert max(a.end for a in out.assignments) <= horizon


def test_an_energy_objective_moves_work_to_cheap_hours_on_a_generated_shop():
    """Before: CP-SAT alone returned the dispatching plan unchanged (210.6 on this shop in 10 s)."""
    p = generate(10, 10, 5, seed=1)
    p = dataclasses.replace(p, energy=EnergySettings(period=60, prices=DAY))
    line, doc = solve_document(p, make_params(p, time_limit_s=3.0, objective="energy", workers=1))
    edd = dispatch(p, "edd").objective["energy_cost"]
    assert line["violations"] == 0 and line["objective_values"]["energy_cost"] < 0.75 * edd
    # due dates first, then the energy: no job later than the dispatching plan made it
    line, doc = solve_document(p, make_params(p, time_limit_s=3.0, objective="lex", order=["tardiness", "energy"],
                                              workers=1))
    assert line["violations"] == 0 and line["objective_values"]["weighted_tardiness"] == 0
    assert line["objective_values"]["energy_cost"] < 0.95 * edd


def test_a_long_tariff_period_costs_no_memory():
    """The prefix sums were one per time unit of the tariff's cycle: a period of 10**7 took 879 MB and 3.5 s within
    a 2-s solve, 10**9 ran out of memory. They are one per period now."""
    from optimization.energy_shift import _Costs

    p = _shop(prices=(0.1, 0.2, 0.3), period=10**9)
    costs = _Costs(p)
    assert costs.pre.shape == (4,)
    assert costs.cost(10.0, 10**9 - 5, 10) == pytest.approx(10.0 * (5 * 0.1 + 5 * 0.2) / 60)
    out = shift(p, dispatch(p, "mwkr"), [{"energy": 1.0}], horizon=4 * 10**9, deadline=float("inf"))
    assert verify(p, out) == []


def test_equal_prices_leave_no_time_to_the_moves():
    p = _shop(prices=(0.2, 0.2))
    line, doc = solve_document(p, make_params(p, time_limit_s=1.0, objective="energy", workers=1))
    assert line["violations"] == 0 and "shift_passes" not in doc["stats"]
