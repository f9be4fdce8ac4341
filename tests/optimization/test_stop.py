"""A running solve stops when its stop event is set (a cancelled background job): every stage returns its best plan
so far, checked, and ``stats["stopped"]`` says so; never set, the event changes nothing."""

from __future__ import annotations

import threading
import time

import pytest

from benchmarks.gen_shop import generate, random_job_shop
from optimization import tabu
from optimization.check import verify
from optimization.heuristics import DispatchStopped, Stop, dispatch, sequence_search, tail_search
from optimization.solver import SolverParams, score, solve
from tests.optimization.helpers import deadline


def _key(s):
    return (s.status, s.makespan, s.lower_bound, sorted((a.job, a.op, a.machine, a.start, a.end, a.setup)
                                                        for a in s.assignments))


@pytest.mark.parametrize("make, objective", [
    (lambda: generate(100, 10, 10, seed=3), "tardiness"),  # 1,000 operations: the dispatch search (tail re-dispatch)
    (lambda: random_job_shop(20, 15, 1), "makespan"),  # CP-SAT's search on the whole model (its first 15 s)
    (lambda: generate(40, 10, 10, seed=2), "makespan"),  # building the model's setup circuits (~1.5 s), then CP-SAT
], ids=["dispatch-search", "cp-sat", "model-build"])
def test_a_stop_set_from_another_thread_ends_a_long_solve_with_a_checked_plan(make, objective):
    problem = make()
    dispatch(problem, "atc")  # the compiled code loaded, as in a server (heuristics.warm): a plan within 0.5 s
    event = threading.Event()
    timer = threading.Timer(0.5, event.set)
    t0 = time.perf_counter()
    timer.start()
    with deadline(30):
        s = solve(problem, SolverParams(time_limit_s=60, workers=2, objective=objective), stop=event)
    wall = time.perf_counter() - t0
    assert wall < 4, wall  # the search itself stops within ~0.5 s of the set (docs: measured per stage)
    assert s.stats["stopped"] is True
    assert s.status == "FEASIBLE" and len(s.assignments) == problem.n_operations
    assert verify(problem, s) == []


def test_a_stop_set_before_the_solve_returns_at_once_without_a_plan():
    problem = generate(100, 10, 10, seed=3)
    event = threading.Event()
    event.set()
    t0 = time.perf_counter()
    s = solve(problem, SolverParams(time_limit_s=60, objective="tardiness"), stop=event)
    assert time.perf_counter() - t0 < 1.0
    assert s.status == "UNKNOWN" and not s.assignments and s.stats["stopped"] is True
    assert [r["type"] for r in s.stats["no_plan_reasons"]] == ["stopped"]


def test_a_stopped_dispatch_raises_and_the_stages_return_their_start_plan():
    p = generate(60, 10, 10, seed=1)  # 600 operations: the compiled dispatching scheme
    start = dispatch(p, "atc")
    stop = Stop(threading.Event())
    stop.event.set()
    with pytest.raises(DispatchStopped):
        dispatch(p, "atc", stop=stop, deadline=time.perf_counter() + 60)  # the scheme polls the event itself
    stages = [{"tardiness": 1.0}]
    assert tail_search(p, start, lambda s: score(p, s, stages), 60.0, workers=2, stages=stages, stop=stop) is start
    assert sequence_search(p, start, stages[0], 60.0, workers=2, stop=stop) is start
    shop = random_job_shop(15, 10, 1)
    inc = dispatch(shop, "mwkr")
    assert tabu.improve(shop, inc, 60.0, workers=2, stop=stop) is inc


def test_a_stop_never_set_changes_nothing():
    event = threading.Event()  # never set
    for problem, params in [
        (random_job_shop(10, 5, 2), SolverParams(time_limit_s=10, workers=1, seed=3)),  # CP-SAT proves it
        (generate(8, 4, 5, seed=1, days=2), SolverParams(time_limit_s=10, workers=1, objective="tardiness")),
    ]:
        a, b = solve(problem, params), solve(problem, params, stop=event)
        assert a.status == "OPTIMAL" and "stopped" not in b.stats
        assert _key(a) == _key(b)
    # the searches with their deterministic budgets (iterations, not seconds), each with the event never set
    p = generate(60, 10, 10, seed=1)
    start = dispatch(p, "atc")
    stages = [{"tardiness": 1.0}]
    for kw in ({}, {"stop": event}):
        runs = [tail_search(p, start, lambda s: score(p, s, stages), 0.0, seed=2, workers=2, max_iters=16,
                            round_iters=4, stages=stages, **kw),
                sequence_search(p, start, stages[0], 60.0, seed=2, workers=2, max_moves=200, **kw),
                tabu.improve(random_job_shop(15, 10, 1), dispatch(random_job_shop(15, 10, 1), "mwkr"), 60.0, seed=2,
                             workers=2, max_iters=2000, **kw)]
        if not kw:
            plain = [_key(s) for s in runs]
    assert [_key(s) for s in runs] == plain
