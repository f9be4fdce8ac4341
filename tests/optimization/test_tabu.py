"""Tabu search for classic job shops (optimization/tabu.py) and its place in the solver."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from benchmarks.gen_shop import generate, random_job_shop
from optimization.check import verify
from optimization.heuristics import dispatch
from optimization.problem import Downtime, Precedence
from optimization.solution import evaluate
from optimization.solver import SolverParams, solve
from optimization.tabu import improve, supported


def _key(s):
    return sorted((a.job, a.op, a.machine, a.start, a.end) for a in s.assignments)


def test_supported_only_for_classic_job_shops():
    p = random_job_shop(6, 4, 1)
    assert supported(p)
    assert not supported(generate(10, 3, 5, seed=1, days=2))  # flexible, setups, calendars
    m0 = dataclasses.replace(p.machines[0], calendar=(Downtime(10, 20, "break"),))
    assert not supported(dataclasses.replace(p, machines=(m0, *p.machines[1:])))
    j0, j1 = p.jobs[0], p.jobs[1]
    pre = Precedence(before=(j0.id, j0.operations[0].id), after=(j1.id, j1.operations[0].id))
    assert not supported(dataclasses.replace(p, precedences=(pre,)))
    o0 = j0.operations[0]
    pinned = dataclasses.replace(o0, pinned_machine=o0.machines[0], pinned_start=0)
    jobs = (dataclasses.replace(j0, operations=(pinned, *j0.operations[1:])), *p.jobs[1:])
    assert not supported(dataclasses.replace(p, jobs=jobs))


@pytest.mark.parametrize("neighbourhood", ["n6", "n5"])
def test_improves_a_dispatching_plan_checked_and_deterministic(neighbourhood):
    p = random_job_shop(15, 10, 3)
    start = dispatch(p, "mwkr")
    runs = [improve(p, start, time_budget_s=60, seed=2, max_iters=3000, neighbourhood=neighbourhood)
            for _ in range(2)]
    for s in runs:
        assert verify(p, s) == []
        assert s.makespan == evaluate(p, s.assignments)["makespan"]
        assert s.stats["tabu_iterations"] == 3000
    assert _key(runs[0]) == _key(runs[1])
    assert runs[0].makespan < 0.95 * start.makespan  # MWKR leaves a lot to gain on a 15x10 shop
    assert runs[0].stats["method"] == f"tabu-{neighbourhood}"


def test_job_releases_are_respected():
    p = random_job_shop(10, 5, 6)
    jobs = tuple(dataclasses.replace(j, release=37 * i) for i, j in enumerate(p.jobs))
    p = dataclasses.replace(p, jobs=jobs)
    start = dispatch(p, "mwkr")
    s = improve(p, start, time_budget_s=60, seed=0, max_iters=2000)
    assert verify(p, s) == []
    assert s.makespan < start.makespan  # a new plan, timed by the search (842 -> 752 here)
    first = {j.id: min(a.start for a in s.assignments if a.job == j.id) for j in p.jobs}
    assert all(first[j.id] >= j.release for j in p.jobs)


def test_stops_at_the_target_and_never_returns_worse():
    p = random_job_shop(40, 4, 5)  # many jobs on few machines: the machine-load bound is reachable
    lb = p.trivial_lower_bound()
    start = dispatch(p, "spt")
    assert start.makespan > lb
    s = improve(p, start, time_budget_s=60, seed=0, target=lb, max_iters=200_000)
    assert s.makespan == lb and verify(p, s) == []
    assert s.stats["tabu_iterations"] < 200_000  # stopped at the bound, not at the iteration limit
    # already at the target: the incumbent itself comes back
    again = improve(p, s, time_budget_s=60, seed=0, target=lb, max_iters=10)
    assert again is s


def test_two_chains_in_processes_and_one_in_a_thread():
    p = random_job_shop(12, 6, 6)
    start = dispatch(p, "mwkr")
    two = improve(p, start, time_budget_s=60, seed=1, workers=2, max_iters=500)
    assert verify(p, two) == [] and two.makespan <= start.makespan
    assert two.stats["tabu_chains"] == 2
    out = {}
    t = threading.Thread(target=lambda: out.update(s=improve(p, start, 60, seed=1, workers=2, max_iters=500)))
    t.start()
    t.join()
    assert out["s"].stats["tabu_chains"] == 1  # no fork from a threaded server: one chain in this process
    assert verify(p, out["s"]) == []


def test_solver_runs_cp_sat_then_the_tabu_search_on_big_job_shops():
    p = random_job_shop(35, 20, 1)  # 700 operations: chains, no population
    s = solve(p, SolverParams(time_limit_s=5, workers=2))
    assert verify(p, s) == []
    assert s.stats["tabu_iterations"] > 0 and "tabu_population" not in s.stats
    assert s.lower_bound is not None and s.lower_bound <= s.makespan
    p = random_job_shop(30, 20, 1)  # 600 operations (Taillard's 30x20): a population
    s = solve(p, SolverParams(time_limit_s=4, workers=2))
    assert verify(p, s) == [] and s.stats["tabu_population"] == 20 and s.stats["tabu_children"] > 0
    off = solve(random_job_shop(30, 20, 1), SolverParams(time_limit_s=1, workers=2, tabu_share=0))
    assert "tabu_iterations" not in off.stats


def test_the_tabu_phase_starts_above_250_operations_or_200_with_two_jobs_per_machine():
    mid = random_job_shop(20, 15, 4)  # 300 operations, the size of abz7-9: CP-SAT first, then the tabu search
    s = solve(mid, SolverParams(time_limit_s=2, workers=2))
    assert verify(mid, s) == [] and s.stats["tabu_iterations"] > 0
    assert s.stats["tabu_population"] == 20 and s.stats["tabu_children"] > 0  # a population per worker
    small = random_job_shop(15, 15, 4)  # 225 operations: CP-SAT alone (it proves most such shops optimal)
    s = solve(small, SolverParams(time_limit_s=1, workers=2))
    assert verify(small, s) == [] and "tabu_iterations" not in s.stats
    long = random_job_shop(20, 10, 4)  # 200 operations, two jobs per machine (la26-30): the tabu phase too
    s = solve(long, SolverParams(time_limit_s=2, workers=2))
    assert verify(long, s) == []
    assert s.status == "OPTIMAL" or s.stats["tabu_population"] == 20


def test_sort_keys_that_rise_along_jobs_give_acyclic_plans():
    import numpy as np

    from optimization.tabu import _Graph, _keyed, _random_key

    p = random_job_shop(12, 6, 9)
    g = _Graph(p)
    rng = np.random.default_rng(0)
    heads = []
    for rule in ("mwkr", "spt"):
        plan = dispatch(p, rule)
        heads.append(g.times(*g.links(g.sequences(plan)))[1])  # its start times
    for _ in range(50):
        key = _random_key(g, rng)
        assert all(key[i] < key[g.js[i]] for i in range(g.n) if g.js[i] >= 0)  # rises along every job
        cross = np.where((rng.random(len(p.jobs)) < 0.5)[g.job], heads[0], heads[1])
        for k in (key, cross):
            seqs = _keyed(g, k)
            assert sorted(i for s in seqs for i in s) == list(range(g.n))
            assert all(g.mach[i] == m for m, s in enumerate(seqs) for i in s)
            assert g.times(*g.links(seqs))[0] > 0  # -1 would mean a cycle


def test_population_search_is_checked_deterministic_and_improves():
    p = random_job_shop(15, 10, 3)
    start = dispatch(p, "mwkr")
    runs = [improve(p, start, time_budget_s=60, seed=4, max_iters=16, population=6, child_iters=400)
            for _ in range(2)]
    for s in runs:
        assert verify(p, s) == []
        assert s.makespan == evaluate(p, s.assignments)["makespan"]
        assert s.stats["tabu_children"] == 16 and s.stats["tabu_population"] == 6
    assert _key(runs[0]) == _key(runs[1])
    assert runs[0].makespan < 0.95 * start.makespan
    # two workers: a population each; at the machine-load bound it stops there
    q = random_job_shop(40, 4, 5)
    lb = q.trivial_lower_bound()
    s = improve(q, dispatch(q, "spt"), time_budget_s=60, seed=0, workers=2, target=lb, population=6)
    assert s.makespan == lb and verify(q, s) == [] and s.stats["tabu_chains"] == 2


def test_a_population_without_the_start_plan_begins_from_random_plans():
    from optimization.tabu import _evolve, _Graph

    p = random_job_shop(10, 10, 2)
    good = solve(p, SolverParams(time_limit_s=5, workers=1))
    g = _Graph(p)
    start = g.sequences(good)
    # one member, one tabu iteration: the start plan itself, or a random plan far above it
    with_start = _evolve(g, start, 60, seed=1, pop_size=1, child_iters=1, max_children=0)
    without = _evolve(g, start, 60, seed=1, pop_size=1, child_iters=1, max_children=0, with_start=False)
    assert with_start[0] <= good.makespan < 0.9 * without[0]
    # two workers, only the first population holding the start plan (as the solver runs them by default)
    s = improve(p, dispatch(p, "mwkr"), time_budget_s=60, seed=3, workers=2, max_iters=8, population=4,
                child_iters=300, start_workers=1)
    assert verify(p, s) == [] and s.stats["tabu_children"] > 0


@pytest.mark.parametrize("neighbourhood", ["n6", "n5"])
def test_incremental_heads_and_tails_equal_a_full_recomputation(monkeypatch, neighbourhood):
    import optimization.tabu as tabu

    # after every move: compare with Kahn's order and a full pass (a cycle would make Kahn's order short). N6
    # insertions run as several swaps of neighbours, each repaired in the order, and one update of the times.
    monkeypatch.setattr(tabu, "CHECK", True)
    for jobs, machines, seed in ((10, 5, 1), (20, 10, 2), (8, 8, 3)):
        p = random_job_shop(jobs, machines, seed)
        p = dataclasses.replace(p, jobs=tuple(dataclasses.replace(j, release=11 * i) for i, j in enumerate(p.jobs)))
        start = dispatch(p, "mwkr")
        s = improve(p, start, time_budget_s=60, seed=seed, max_iters=1500, neighbourhood=neighbourhood)
        assert verify(p, s) == [] and s.makespan < start.makespan


def test_rounds_restart_every_chain_from_the_best_plan():
    p = random_job_shop(20, 10, 8)
    start = dispatch(p, "mwkr")
    s = improve(p, start, time_budget_s=1.5, seed=0, workers=2, round_s=0.4)
    assert verify(p, s) == [] and s.makespan < start.makespan
    assert s.stats["tabu_rounds"] >= 2


def test_dense_shops_try_the_tabu_search_at_the_machine_load_bound_first():
    p = random_job_shop(100, 5, 2)  # 500 operations, 20 jobs per machine: the machine-load bound is the optimum
    s = solve(p, SolverParams(time_limit_s=30, workers=2))
    assert verify(p, s) == []
    assert s.status == "OPTIMAL" and s.makespan == s.lower_bound == p.trivial_lower_bound()
    assert s.stats["method"] == "tabu-n6" and s.stats["tabu_iterations"] > 0  # no CP-SAT run was needed


def test_the_tenure_is_a_solver_parameter_and_shapes_the_search(monkeypatch):
    import optimization.solver as solver_mod

    seen = []
    real = solver_mod.tabu_improve

    def spy(*args, **kwargs):
        seen.append(kwargs["tenure"])
        return real(*args, **kwargs)

    monkeypatch.setattr(solver_mod, "tabu_improve", spy)
    p = random_job_shop(20, 15, 4)  # 300 operations: CP-SAT, then the tabu phase
    s = solve(p, SolverParams(time_limit_s=2, workers=2, tabu_tenure=(2, 4)))
    assert verify(p, s) == [] and seen == [(2, 4)]
    assert SolverParams().tabu_tenure == (3, 7)
    # one chain, a fixed number of iterations: deterministic for a tenure, and another tenure walks elsewhere
    start = dispatch(p, "mwkr")
    runs = [improve(p, start, time_budget_s=60, seed=1, max_iters=3000, tenure=t) for t in ((3, 7), (3, 7), (8, 14))]
    assert all(verify(p, r) == [] and r.makespan < start.makespan for r in runs)
    assert _key(runs[0]) == _key(runs[1]) and _key(runs[0]) != _key(runs[2])
