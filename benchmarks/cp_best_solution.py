"""How often CP-SAT's last solution of a stage scores worse than an earlier one, and by how much.

CP-SAT ranks its solutions by the model's objective, which bounds a plan's tardiness from above; the solver keeps the
solution whose plan scores best (``optimization.solver._Solutions``). Before 2026-12-08 it kept the last one. Each
row is one solve: its answer's score, and where an earlier solution was kept, the last one's score (before, the answer
was that or the plan CP-SAT started from, whichever scored better).

    .venv/bin/python benchmarks/cp_best_solution.py --time-limit 3 --seeds 1 2 3 4 5 --workers 1
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.gen_shop import generate  # noqa: E402
from optimization.problem import FailureRisk, Job, Machine, Operation, SchedulingProblem  # noqa: E402
from optimization.solver import SolverParams, score, solve  # noqa: E402

SHAPES = {  # name: (jobs, operations per job, machines); due dates tight (0.6-1.4 times a job's work)
    "small 12x4x4": (12, 4, 4),
    "mid 25x4x6": (25, 4, 6),
    "flexible 40x5x10": (40, 5, 10),
}


def two_routes(seed: int) -> SchedulingProblem:
    """Jobs of two operations, each on a fast machine M1 or a slower one (tests/optimization/test_checkpoints.py's
    plan, 10-14 jobs, due at 30-50 by the seed)."""
    n, due = 10 + seed % 5, 30 + 5 * (seed % 5)
    jobs = tuple(Job(f"J{i}", (Operation("a", {"M1": 10, "M2": 25}), Operation("b", {"M1": 5, "M3": 8})), due=due)
                 for i in range(n))
    return SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2"), Machine("M3")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=3.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    rows, kept, gain = [], 0, 0.0
    for name, (jobs, ops, machines) in {"two routes": (0, 0, 0), **SHAPES}.items():
        for seed in args.seeds:
            base = two_routes(seed) if name == "two routes" else generate(
                jobs=jobs, ops=ops, machines=machines, seed=seed, days=1, tightness=(0.6, 1.4))
            first = base.machines[0].id
            for risk in ("none", "service first"):
                problem = base if risk == "none" else replace(
                    base, risk=FailureRisk({first: 0.8}, window_duration=60))
                params = SolverParams(time_limit_s=args.time_limit, workers=args.workers, seed=0,
                                      objective="tardiness")
                s = solve(problem, params)
                got = score(problem, s, params.stages())[0] if s.assignments else None
                last = s.stats.get("cp_sat_last_solution_score")
                if last is not None:
                    kept += 1
                    gain += last[0] - got
                rows.append((name, seed, risk, got, last[0] if last else "", s.stats.get("method", "")))
                said = f" (CP-SAT's last solution: {last[0]})" if last else ""
                print(f"  {name} seed {seed} {risk}: {got}{said}", file=sys.stderr)
    print("\n| plan | seed | failure risk | weighted tardiness | CP-SAT's last solution | method |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(f"\n{kept} of {len(rows)} solves kept an earlier CP-SAT solution; weighted tardiness {gain:,.1f} lower in "
          "all than that solution's")


if __name__ == "__main__":
    main()
