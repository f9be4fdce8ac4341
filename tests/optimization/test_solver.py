from __future__ import annotations

import pytest

from optimization.check import verify
from optimization.heuristics import RULES, dispatch
from optimization.io import load
from optimization.solver import SolverParams, solve


@pytest.mark.parametrize("name,optimum", [("ft06", 55), ("ft10", 930)])
def test_classic_instance_proven_optimal(datasets, name, optimum):
    """Found and proven with 2 workers. ft10 takes about 1.5 s on a 2-core machine with the stronger no-overlap
    propagation (10-20 s, often not at all within 20 s, without it)."""
    p = load(datasets / f"jsplib/instances/{name}.txt", "jsplib")
    s = solve(p, SolverParams(time_limit_s=20, workers=2, seed=0))
    assert s.status == "OPTIMAL"
    assert s.makespan == optimum and s.lower_bound == optimum
    assert verify(p, s) == []


def test_makespan_strategy_and_propagation_by_size(datasets):
    """Makespan alone: the whole model up to polish_max_ops (no LNS), strong propagation only on small models."""
    p = load(datasets / "jsplib/instances/la31.txt", "jsplib")  # 30x10: 300 operations
    s = solve(p, SolverParams(time_limit_s=2, workers=2, seed=0, strong_max_ops=100))
    assert s.stats["strategy"] == "full" and s.stats["strong_disjunctive"] is False
    assert s.stats["full_subsolver"] == "no_lp"  # big, 3 jobs per machine: no LP relaxation in the complete search
    assert verify(p, s) == []
    s = solve(p, SolverParams(time_limit_s=2, workers=2, seed=0))
    assert s.stats["strategy"] == "full" and s.stats["strong_disjunctive"] is True
    assert s.stats["full_subsolver"] is None
    # JSPLIB has no due dates: every plan is on time, so the dispatching plan is optimal and no search runs
    s = solve(p, SolverParams(time_limit_s=2, workers=2, seed=0, objective="tardiness"))
    assert s.stats["strategy"] == "dispatch" and s.status == "OPTIMAL" and s.lower_bound == 0
    weighted = dict(objective="weighted", weights={"tardiness": 1.0, "makespan": 0.5})
    s = solve(p, SolverParams(time_limit_s=2, workers=2, seed=0, **weighted))
    assert s.stats["strategy"] == "full"  # under full_max_ops (400) for every objective
    assert s.stats["full_subsolver"] is None
    square = load(datasets / "jsplib/instances/la38.txt", "jsplib")  # 15x15: 1 job per machine
    s = solve(square, SolverParams(time_limit_s=1, workers=2, seed=0, strong_max_ops=100))
    assert s.stats["strong_disjunctive"] is False and s.stats["full_subsolver"] is None
    assert verify(square, s) == []
    s = solve(p, SolverParams(time_limit_s=2, workers=2, seed=0, full_max_ops=100, **weighted))
    assert s.stats["strategy"] == "lns"
    assert verify(p, s) == []


@pytest.mark.parametrize(
    "name,fmt",
    [
        ("jsplib/instances/la01.txt", "jsplib"),
        ("fjsp/brandimarte/mk01.txt", "fjsp"),
        ("fjsp/hurink/edata/la01.txt", "fjsp"),
    ],
)
@pytest.mark.parametrize("rule", RULES)
def test_dispatching_rules_feasible(datasets, name, fmt, rule):
    p = load(datasets / name, fmt)
    s = dispatch(p, rule)
    assert verify(p, s) == []
    assert s.makespan >= p.trivial_lower_bound()


def test_flexible_instance_improves_on_dispatch(datasets):
    p = load(datasets / "fjsp/brandimarte/mk01.txt", "fjsp")
    s = solve(p, SolverParams(time_limit_s=3, seed=1))
    assert verify(p, s) == []
    assert s.makespan <= min(dispatch(p, r).makespan for r in RULES)
    assert s.lower_bound <= 40 <= s.makespan


def test_lns_strategy_returns_checked_plan(datasets):
    p = load(datasets / "jsplib/instances/la21.txt", "jsplib")
    s = solve(p, SolverParams(time_limit_s=3, strategy="lns", seed=2, polish_max_ops=0))
    assert verify(p, s) == []
    assert s.stats["lns_iterations"] >= 1
    assert s.makespan <= dispatch(p, "mwkr").makespan
