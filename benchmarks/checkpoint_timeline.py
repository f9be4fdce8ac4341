"""What a background job's checkpoint holds when its process is killed mid-solve: the plan handed to ``on_plan``
last before the kill (what the job's heartbeat writes and a takeover resumes from), with the checkpoints inside the
searches (``heuristics.Checkpoints``, one plan every ``CHECKPOINT_EVERY_S``) against between the stages only (as
before 2026-12-07 evening), and the final objective of the same solve without any checkpoint (their cost).

For each problem, three solves of ``T`` seconds: no ``on_plan``; ``on_plan`` between the stages only; ``on_plan``
inside the searches too. Prints the first-stage objective of the checkpoint at 25, 50, 70 and 90 % of ``T`` (a
kill then, ignoring the heartbeat's own delay), and each solve's final objective. The searches run in one process,
as in ``sfai serve`` (``--forked``: as in a CLI solve, whose chains fork and hand their plans at their ends).

    .venv/bin/python benchmarks/checkpoint_timeline.py --time-limit 20 --seeds 1 2
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path, and benchmarks/serving.py would hide the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import optimization.heuristics as heuristics  # noqa: E402
from benchmarks.gen_shop import generate, random_job_shop  # noqa: E402
from optimization.solver import SolverParams, score, solve  # noqa: E402

SHARES = (0.25, 0.5, 0.7, 0.9)


def _timeline(problem, params: SolverParams, every_s: float | None):  # noqa: ANN001, ANN202
    """(final first-stage objective, [(seconds, objective) of each plan handed]) of one solve."""
    seen: list[tuple[float, float]] = []
    t0 = time.perf_counter()
    on_plan = None
    if every_s is not None:
        heuristics.CHECKPOINT_EVERY_S = every_s
        on_plan = lambda plan, sc: seen.append((time.perf_counter() - t0, sc[0]))  # noqa: E731
    try:
        s = solve(problem, params, on_plan=on_plan)
    finally:
        heuristics.CHECKPOINT_EVERY_S = 2.0
    return score(problem, s, params.stages())[0], seen


def _at(seen: list[tuple[float, float]], t: float) -> str:
    held = [v for at, v in seen if at <= t]
    return f"{held[-1]:,.0f}" if held else "none"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--forked", action="store_true",
                    help="let the searches fork their chains (a CLI solve); by default a thread is kept alive so that "
                         "they run as in the serving process that runs background jobs, in one process")
    a = ap.parse_args(argv)
    if not a.forked:  # optimization.heuristics.fork_pool forks only in a process with one thread
        threading.Thread(target=threading.Event().wait, daemon=True).start()
    T = a.time_limit
    print(f"| problem | ops | checkpoints | at {' | at '.join(f'{int(s * 100)} %' for s in SHARES)} | final |")
    print("|---|---|---|" + "---|" * len(SHARES) + "---|")
    for seed in a.seeds:
        cases = [
            (f"job shop 30x20 (makespan), seed {seed}", random_job_shop(30, 20, seed=seed), "makespan"),
            (f"flexible shop 200x10, 30 machines (tardiness), seed {seed}",
             generate(jobs=200, ops=10, machines=30, seed=seed), "tardiness"),
        ]
        for name, problem, objective in cases:
            params = SolverParams(time_limit_s=T, workers=a.workers, seed=0, objective=objective)
            none, _ = _timeline(problem, params, None)
            for label, every in (("between stages", math.inf), ("inside searches", 2.0)):
                final, seen = _timeline(problem, params, every)
                cells = " | ".join(_at(seen, s * T) for s in SHARES)
                print(f"| {name} | {problem.n_operations:,} | {label} | {cells} | {final:,.0f} |", flush=True)
            print(f"| {name} | {problem.n_operations:,} | none (no on_plan) |" + " |" * len(SHARES) +
                  f" {none:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
