"""Solve a problem and shape the answer the CLI and the API both give: a summary line and a full document
(Gantt rows, maintenance windows, late-job explanations, checker verdict)."""

from __future__ import annotations

from typing import Any

from optimization.check import verify
from optimization.explain import explain_late_jobs
from optimization.problem import SchedulingProblem
from optimization.solver import OBJECTIVES, SolverParams, solve


def default_objective(problem: SchedulingProblem) -> str:
    return "tardiness" if any(j.due is not None for j in problem.jobs) else "makespan"


def make_params(
    problem: SchedulingProblem,
    *,
    time_limit_s: float,
    workers: int = 2,
    seed: int = 0,
    objective: str | None = None,
    strategy: str = "auto",
) -> SolverParams:
    if time_limit_s <= 0:
        raise ValueError("the time limit must be > 0 seconds")
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if strategy not in ("auto", "full", "lns"):
        raise ValueError(f"strategy must be auto, full or lns, got {strategy!r}")
    objective = objective or default_objective(problem)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return SolverParams(time_limit_s=time_limit_s, workers=workers, seed=seed, objective=objective, strategy=strategy)


def solve_document(problem: SchedulingProblem, params: SolverParams) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary line, full document) for a solve of ``problem``."""
    schedule = solve(problem, params)
    violations = verify(problem, schedule) if schedule.assignments else []
    line = {
        "status": schedule.status,
        "makespan": schedule.makespan,
        "lower_bound": schedule.lower_bound,
        "wall_s": round(schedule.wall_s, 3),
        "instance": problem.name,
        "n_jobs": len(problem.jobs),
        "n_machines": len(problem.machines),
        "n_operations": problem.n_operations,
        "objective": params.objective,
        "objective_values": schedule.objective,
        "violations": len(violations),
    }
    doc = {
        **line,
        "stats": schedule.stats,
        "gantt": schedule.to_gantt(problem),
        "maintenance": [vars(w) for w in schedule.maintenance],
        "late_jobs": explain_late_jobs(problem, schedule),
        "violation_messages": [str(v) for v in violations],
    }
    return line, doc
