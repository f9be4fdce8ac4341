"""Tail re-dispatch (iterated greedy over dispatching) for big plans: fixed prefixes, checker, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.gen_shop import generate
from optimization.check import verify
from optimization.heuristics import array_scorer, dispatch, tables, tail_search
from optimization.problem import FailureRisk
from optimization.solver import score
from tests.optimization.test_lns_dispatch import _same, _with_pins_and_risk


def _shop(jobs: int = 30, seed: int = 3):
    return generate(jobs, 5, 10, seed=seed, days=4)


def _wt(s) -> float:
    return s.objective["weighted_tardiness"]


def _windows(s):
    return sorted((w.machine, w.start) for w in s.maintenance)


def _key(s):
    return sorted((a.job, a.op, a.machine, a.start, a.end) for a in s.assignments)


@pytest.mark.parametrize("pins", [False, True])
def test_dispatch_keeps_a_fixed_prefix(pins, engine):
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


def test_restart_rounds_run_independent_chains_from_the_start_plan():
    """The first ``restart_rounds`` rounds each run a new chain from the start plan (not from the best plan so far):
    with two such rounds the result is the better of two chains run alone from the start plan."""
    from optimization.heuristics import INF, _chain

    p = generate(60, 5, 10, seed=7, days=4, tightness=(0.8, 1.5))
    start = dispatch(p, "atc")
    par = (12.0, 0.3, 1.0)
    seeds = [3 * 1_000_003 + r * 101 for r in range(2)]  # tail_search's seeds for rounds 0 and 1 (one worker)
    alone = [_chain(p, start, _wt, None, par, sd, INF, 8, None, 0.0) for sd in seeds]
    assert all(_wt(c[0]) < _wt(start) for c in alone)
    fresh = tail_search(p, start, _wt, 60, seed=3, workers=1, max_iters=16, restart_rounds=2)
    assert _key(fresh) == _key(min((c[0] for c in alone), key=_wt))
    assert fresh.stats["tail_rounds"] == 2
    # without restarts the second round goes on from the first round's best plan
    on = _chain(p, alone[0][0], _wt, None, alone[0][1], seeds[1], INF, 8, None, 0.0)[0]
    chained = tail_search(p, start, _wt, 60, seed=3, workers=1, max_iters=16)
    assert _key(chained) == _key(on)
    assert _key(on) != _key(alone[1][0])
    assert verify(p, fresh) == [] and verify(p, chained) == []


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
    assert s.stats["seq_moves"] >= 1  # then the sequence local search
    assert score(p, s, params.stages()) <= tuple(s.stats["dispatch_best"])
    atc = dispatch(p, "atc")
    assert _wt(s) <= _wt(atc)


def _arrays(p, s):
    tb = tables(p)
    mach = np.empty(tb.n, np.int64)
    start = np.empty(tb.n, np.int64)
    for a in s.assignments:
        mach[tb.idx[a.key]], start[tb.idx[a.key]] = tb.mpos[a.machine], a.start
    return mach, start


@pytest.mark.parametrize("stages", [[{"tardiness": 1.0}], [{"tardiness": 1.0, "makespan": 0.01}],
                                    [{"tardiness": 1.0}, {"makespan": 1.0}], [{"makespan": 1.0, "energy": 0.0}]])
def test_array_scores_equal_the_solver_scores(stages):
    import dataclasses

    p = generate(40, 5, 10, seed=12, days=4, tightness=(0.8, 1.5))
    penalty = dataclasses.replace(p, risk=FailureRisk(risks={p.machines[2].id: 0.8, p.machines[5].id: 0.65},
                                                      threshold=0.5, policy="penalty", penalty_per_unit=0.37))
    for q in (p, penalty):
        fast = array_scorer(q, stages)
        for rule in ("atc", "mwkr", "spt"):
            s = dispatch(q, rule)
            assert fast(*_arrays(q, s)) == score(q, s, stages)
    assert array_scorer(p, [{"tardiness": 1.0, "energy": 0.5}]) is None  # energy: the Schedule chain


@pytest.mark.parametrize("risk,workers", [(False, 1), (True, 1), (False, 2)])
def test_compiled_chains_make_the_same_moves(risk, workers):
    """The array chain (compiled scheme, array scores, ``stages`` given; in threads) takes the same random moves as
    the Schedule chain (in forked processes), so it finds the same plans, only faster."""
    p = generate(60, 5, 10, seed=7, days=4, tightness=(0.8, 1.5))
    if risk:
        p = _with_pins_and_risk(p)
    start = dispatch(p, "atc")
    stages = [{"tardiness": 1.0}]

    def sc(s):
        return score(p, s, stages)

    def ok(s):
        return not verify(p, s)

    a = tail_search(p, start, sc, 60, seed=3, check=ok, workers=workers, max_iters=40)
    b = tail_search(p, start, sc, 60, seed=3, check=ok, workers=workers, max_iters=40, stages=stages)
    assert b.stats["tail_workers"] == workers
    assert verify(p, b) == []
    assert _key(a) == _key(b)
    assert sc(b) < sc(start)
    assert b.stats["tail_improvements"] == a.stats["tail_improvements"] >= 1
    assert _windows(b) == _windows(start)


def test_sequence_search_retimes_never_later_and_improves():
    from optimization.heuristics import _LocalState, sequence_search

    p = generate(60, 5, 10, seed=7, days=4, tightness=(0.8, 1.5))
    start = dispatch(p, "atc")
    st = _LocalState(p, start, {"tardiness": 1.0})
    compact = st.schedule(p, "re-timed")
    assert verify(p, compact) == []
    before = start.by_key()
    assert all(a.start <= before[a.key].start and a.machine == before[a.key].machine for a in compact.assignments)

    def ok(s):
        return not verify(p, s)

    runs = [sequence_search(p, start, {"tardiness": 1.0}, 60, seed=2, workers=1, check=ok, max_moves=300)
            for _ in range(2)]
    assert verify(p, runs[0]) == []
    assert _key(runs[0]) == _key(runs[1])  # deterministic with max_moves
    assert _wt(runs[0]) < _wt(compact) <= _wt(start)
    assert runs[0].stats["seq_moves"] == 300 and runs[0].stats["seq_kept"] >= 1


@pytest.mark.parametrize("workers", [1, 2])
def test_sequence_search_keeps_pins_windows_and_risk_penalty(workers):
    import dataclasses

    from optimization.heuristics import sequence_search

    p = _with_pins_and_risk(generate(60, 5, 10, seed=9, days=4, tightness=(0.8, 1.5)))
    start = dispatch(p, "atc")
    s = sequence_search(p, start, {"tardiness": 1.0}, 1.0, seed=1, workers=workers, check=lambda x: not verify(p, x))
    assert verify(p, s) == [] and _wt(s) <= _wt(start)
    pinned = [(j.id, o.id) for j in p.jobs for o in j.operations if o.pinned_start is not None]
    assert pinned and all(s.by_key()[k].start == start.by_key()[k].start for k in pinned)
    assert _windows(s) == _windows(start)
    # a penalty on a busy machine: the search's objective includes it, and the solver's score never gets worse
    q = dataclasses.replace(p, risk=FailureRisk(risks={p.machines[0].id: 0.9}, threshold=0.5, policy="penalty",
                                                penalty_per_unit=5.0))
    stages = [{"tardiness": 1.0}]
    d = dispatch(q, "atc")
    s = sequence_search(q, d, stages[0], 1.0, seed=1, workers=workers, check=lambda x: not verify(q, x))
    assert verify(q, s) == [] and score(q, s, stages) <= score(q, d, stages)


def test_tardiness_plans_above_the_full_model_take_the_small_engine():
    """500 operations with setups and a tardiness objective: the tail and sequence searches run (the whole-model LNS
    barely moved such plans) and no full-model polish is built (its setup disjunctions are too many)."""
    from optimization.solver import SolverParams, setup_pairs, solve

    p = generate(50, 10, 5, seed=3)
    assert setup_pairs(p) > SolverParams.polish_max_pairs
    assert setup_pairs(generate(50, 10, 5, seed=3, families=1)) == 0  # one family: no setups
    s = solve(p, SolverParams(time_limit_s=3, workers=2, objective="tardiness"))
    assert verify(p, s) == []
    assert s.stats["strategy"] == "lns" and s.stats["tail_iterations"] >= 1 and s.stats["seq_moves"] >= 1
    assert s.lower_bound == 0  # no polish: only the trivial bound
    assert _wt(s) < _wt(dispatch(p, "atc"))
