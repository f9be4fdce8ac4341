"""A background job's checkpoints follow the search inside its stages (``solve(..., on_plan=)``): a process killed in
the middle of a long CP-SAT or LNS stage had kept only the plan from before that stage. Every plan handed on is a
checked plan of the problem as given (with the windows of machines serviced first), each better than the last."""

from __future__ import annotations

import random
import time

import pytest

from optimization.check import verify
from optimization.heuristics import CHECKPOINT_EVERY_S, Checkpoints
from optimization.io import problem_from_dict
from optimization.problem import FailureRisk, Job, Machine, Operation, SchedulingProblem
from optimization.solver import SolverParams, score, solve


def _job_shop(jobs: int = 30, machines: int = 15, seed: int = 3) -> SchedulingProblem:
    rng = random.Random(seed)
    ms = [f"M{i}" for i in range(machines)]
    return problem_from_dict({"machines": ms, "jobs": [
        {"id": f"J{j}", "operations": [{"machines": {m: rng.randint(5, 60)}} for m in rng.sample(ms, machines)]}
        for j in range(jobs)]})


def _handed(problem: SchedulingProblem, params: SolverParams) -> tuple[list[tuple[float, str, tuple]], float]:
    """Solves ``problem``; returns each plan handed to on_plan (seconds after the start, the stage that made it, its
    score), checking each against the problem, and the solve's own time."""
    seen = []
    t0 = time.perf_counter()

    def on_plan(plan, plan_score) -> None:  # noqa: ANN001
        assert verify(problem, plan) == []
        assert plan_score == score(problem, plan, params.stages())
        seen.append((time.perf_counter() - t0, plan.stats.get("method"), plan_score))

    s = solve(problem, params, on_plan=on_plan)
    assert verify(problem, s) == []
    scores = [sc for _, _, sc in seen]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)  # each better than the last
    assert score(problem, s, params.stages()) <= scores[-1]
    return seen, time.perf_counter() - t0


def test_cp_sat_hands_on_its_solutions_while_it_searches():
    """The whole model (makespan, 450 operations): its solutions are handed on while CP-SAT runs, not only at the
    stage's end (before: the dispatching plan, then nothing until the time limit)."""
    seen, took = _handed(_job_shop(), SolverParams(time_limit_s=10, workers=2, seed=0, strategy="full"))
    inside = [t for t, method, _ in seen if method == "cp-sat" and 0.5 < t < took - 0.5]
    assert inside, seen
    # at most one every CHECKPOINT_EVERY_S inside the stage
    assert all(b - a >= CHECKPOINT_EVERY_S - 0.05 for a, b in zip(inside, inside[1:], strict=False)), seen


def test_the_small_lns_hands_on_its_plans_while_it_searches():
    from benchmarks.gen_shop import generate

    problem = generate(jobs=100, ops=8, machines=12, seed=1, days=2)  # 800 operations, 33 jobs late
    params = SolverParams(time_limit_s=10, workers=1, seed=0, objective="tardiness", strategy="lns",
                          lns_engine="small", dispatch_search_share=0.05, sequence_search_share=0.0)
    seen, _ = _handed(problem, params)
    assert sum(method == "lns-sub" for _, method, _ in seen) >= 2, seen  # before: one, at the stage's end


def test_a_plan_with_a_machine_serviced_first_hands_on_plans_with_its_window():
    """Before, such a solve handed nothing on (its stages plan the problem without the window)."""
    jobs = tuple(Job(f"J{i}", (Operation("a", {"M1": 10, "M2": 25}), Operation("b", {"M1": 5, "M3": 8})), due=40)
                 for i in range(12))
    problem = SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2"), Machine("M3")),
                                risk=FailureRisk({"M1": 0.8, "M2": 0.1}, window_duration=60))
    params = SolverParams(time_limit_s=3, workers=1, seed=0, objective="tardiness")
    seen = []
    s = solve(problem, params, on_plan=lambda plan, sc: seen.append((plan, sc)))
    assert seen
    for plan, sc in seen:
        assert verify(problem, plan) == [] and sc == score(problem, plan, params.stages())
        assert [(w.machine, w.start, w.end) for w in plan.maintenance] == [("M1", 0, 60)]
    assert [(w.machine, w.start) for w in s.maintenance] == [("M1", 0)]
    assert score(problem, s, params.stages()) <= seen[-1][1]


def test_checkpoints_build_the_latest_plan_once_one_is_due():
    handed = []
    built = []

    def build(n: int):  # noqa: ANN202
        def make() -> int:
            built.append(n)
            return n
        return make

    ticks = Checkpoints(handed.append, every_s=0.2)
    ticks(build(1))
    ticks(build(2))  # not due: neither is built
    assert handed == [] and built == []
    time.sleep(0.25)
    ticks.tick()  # due: the latest offered, built once
    ticks.tick()
    assert handed == [2] and built == [2]
    ticks(build(3))  # the next only after another every_s
    assert handed == [2]
    time.sleep(0.25)
    ticks(build(4))
    assert handed == [2, 4] and built == [2, 4]


@pytest.mark.parametrize("strategy", ["full", "lns"])
def test_without_on_plan_nothing_is_built(strategy, monkeypatch):
    """A solve that no job watches (the CLI, a synchronous call) builds no checkpoint plan."""
    import optimization.heuristics as heuristics

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a checkpoint was made")

    monkeypatch.setattr(heuristics.Checkpoints, "__init__", boom)
    s = solve(_job_shop(10, 5), SolverParams(time_limit_s=1, workers=1, seed=0, strategy=strategy))
    assert verify(_job_shop(10, 5), s) == []


def test_the_dispatch_search_offers_its_better_plan_after_each_round():
    """The tail re-dispatch (most of a big tardiness plan's time) offers its best plan after each round that improved
    it; before, its plan was handed on only once it ended."""
    from benchmarks.gen_shop import generate
    from optimization.heuristics import best_dispatch, rules_for, tail_search

    problem = generate(jobs=100, ops=8, machines=12, seed=1, days=2)
    params = SolverParams(objective="tardiness")
    stages = params.stages()
    start, _ = best_dispatch(problem, lambda s: score(problem, s, stages), rules_for("tardiness"))
    handed = []
    ticks = Checkpoints(handed.append, every_s=0.0)
    best = tail_search(problem, start, lambda s: score(problem, s, stages), 0.0, seed=0, workers=1,
                       max_iters=200, round_iters=20, stages=stages, checkpoint=ticks)
    scores = [score(problem, plan, stages) for plan in handed]
    assert len(handed) >= 2 and scores == sorted(scores, reverse=True), scores
    assert scores[0] < score(problem, start, stages) and scores[-1] == score(problem, best, stages)


@pytest.mark.parametrize("population", [0, 6])
def test_a_tabu_search_in_the_solves_own_process_offers_its_better_plans(population):
    """In the serving process (no forked chains) the tabu search, most of a makespan job shop's time, offers its best
    plan as it finds it, as a chain or as a population; before, only its end result was handed on."""
    from optimization.heuristics import best_dispatch, rules_for
    from optimization.tabu import improve

    problem = _job_shop()
    params = SolverParams(objective="makespan")
    stages = params.stages()
    start, _ = best_dispatch(problem, lambda s: score(problem, s, stages), rules_for("makespan"))
    handed = []
    best = improve(problem, start, 2.0, seed=0, workers=1, population=population, child_iters=2_000,
                   checkpoint=Checkpoints(handed.append, every_s=0.0))
    makespans = [plan.makespan for plan in handed]
    assert len(handed) >= 2 and makespans == sorted(makespans, reverse=True), makespans
    assert all(verify(problem, plan) == [] for plan in handed)
    assert makespans[0] < start.makespan and makespans[-1] == best.makespan


def test_the_answer_is_never_worse_than_a_plan_the_whole_model_found(monkeypatch):
    """CP-SAT ranks its solutions by the model's objective, which bounds tardiness from above: its last solution of a
    stage could score worse than an earlier one, and the solve answered the last one or its start (741 on the plan
    below, seed 2, after a plan of 724 had been found and handed on). Now the best-scoring solution is kept. Every
    plan found is handed on here (a checkpoint every 0 s); the answer is at least as good as each."""
    from dataclasses import replace

    from benchmarks.cp_best_solution import two_routes
    from optimization import heuristics

    monkeypatch.setattr(heuristics, "CHECKPOINT_EVERY_S", 0.0)
    params = SolverParams(time_limit_s=3, workers=1, seed=0, objective="tardiness")
    for seed in (2, 4):
        problem = replace(two_routes(seed), risk=FailureRisk({"M1": 0.8}, window_duration=60))
        seen = []
        s = solve(problem, params, on_plan=lambda plan, sc: seen.append(sc))  # noqa: B023 - called within the loop
        assert seen and not verify(problem, s)
        assert score(problem, s, params.stages()) <= min(seen), (seed, score(problem, s, params.stages()), seen)
