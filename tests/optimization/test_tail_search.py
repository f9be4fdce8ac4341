"""Tail re-dispatch (iterated greedy over dispatching) for big plans: fixed prefixes, checker, determinism."""

from __future__ import annotations

import pytest

from benchmarks.gen_shop import generate
from optimization.check import verify
from optimization.heuristics import dispatch, tail_search
from tests.optimization.test_lns_dispatch import _same, _with_pins_and_risk


def _shop(jobs: int = 30, seed: int = 3):
    return generate(jobs, 5, 10, seed=seed, days=4)


def _wt(s) -> float:
    return s.objective["weighted_tardiness"]


def _key(s):
    return sorted((a.job, a.op, a.machine, a.start, a.end) for a in s.assignments)


@pytest.mark.parametrize("pins", [False, True])
def test_dispatch_keeps_a_fixed_prefix(pins):
    p = _with_pins_and_risk(_shop(seed=5)) if pins else _shop(seed=4)
    d = dispatch(p, "atc", atc_k=12, atc_work=0.3)
    cut = sorted(a.start for a in d.assignments)[len(d.assignments) // 2]
    fixed = {a.key: (a.machine, a.start) for a in d.assignments if a.start < cut}
    s = dispatch(p, "atc", atc_k=30, atc_work=0.6, atc_k2=3.0, fixed=fixed, fixed_windows=d.maintenance,
                 job_bias={j.id: 1.0 + 0.1 * (t % 3) for t, j in enumerate(p.jobs)})
    assert verify(p, s) == []
    by = s.by_key()
    assert all((by[k].machine, by[k].start) == v for k, v in fixed.items())
    assert sorted((w.machine, w.start) for w in s.maintenance) == sorted((w.machine, w.start) for w in d.maintenance)
    # everything fixed: the same plan back
    whole = {a.key: (a.machine, a.start) for a in d.assignments}
    assert _same(dispatch(p, "atc", fixed=whole, fixed_windows=d.maintenance), d)


def test_dispatch_default_arguments_unchanged():
    p = _shop(seed=6)
    a = dispatch(p, "atc", atc_k=12, atc_work=0.3)
    b = dispatch(p, "atc", atc_k=12, atc_work=0.3, fixed={}, job_bias=None)
    assert _same(a, b)


@pytest.mark.parametrize("workers", [1, 2])
def test_tail_search_checked_never_worse_and_deterministic(workers):
    p = generate(60, 5, 10, seed=7, days=4, tightness=(0.8, 1.5))  # overloaded: plain ATC leaves late jobs
    start = dispatch(p, "atc")

    def ok(s):
        return not verify(p, s)

    runs = [tail_search(p, start, _wt, time_budget_s=60, seed=3, check=ok, workers=workers, max_iters=24)
            for _ in range(2)]
    for s in runs:
        assert verify(p, s) == []
        assert _wt(s) <= _wt(start)
        assert s.stats["tail_iterations"] == 24
    assert _key(runs[0]) == _key(runs[1])
    assert _wt(runs[0]) < _wt(start)  # 24 re-dispatches improve plain ATC on this plan


def test_tail_search_with_pins_and_maintenance():
    p = _with_pins_and_risk(_shop(30, seed=8))
    start = dispatch(p, "atc")
    assert verify(p, start) == []
    s = tail_search(p, start, _wt, time_budget_s=60, seed=1, check=lambda x: not verify(p, x), workers=1,
                    max_iters=12)
    assert verify(p, s) == []
    assert _wt(s) <= _wt(start)


def test_tail_search_time_budget():
    import time

    p = _shop(30, seed=9)
    start = dispatch(p, "atc")
    t = time.perf_counter()
    s = tail_search(p, start, _wt, time_budget_s=1.0, seed=0, workers=2)
    assert time.perf_counter() - t < 3.0
    assert _wt(s) <= _wt(start) and verify(p, s) == []


def test_solve_small_engine_runs_the_tail_search():
    from optimization.solver import SolverParams, score, solve

    p = generate(60, 5, 10, seed=11, days=4, tightness=(0.8, 1.5))
    params = SolverParams(time_limit_s=4, workers=2, seed=0, objective="tardiness", strategy="lns",
                          lns_engine="small", polish_max_ops=0)
    s = solve(p, params)
    assert verify(p, s) == []
    assert s.stats["tail_iterations"] >= 1
    assert score(p, s, params.stages()) <= tuple(s.stats["dispatch_best"])
    atc = dispatch(p, "atc")
    assert _wt(s) <= _wt(atc)
