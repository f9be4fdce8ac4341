"""A background job stopped by a graceful server stop at 70 % of its time limit: resumed from its saved plan for the
time left, against solved again from scratch with its whole limit (what happened before migration 0018).

For each problem: the solve without a stop (the reference), the solve stopped at ``stop_share * T`` (its best plan
saved as ``serving.scheduling.SavedPlan`` and read back, as the job's column is), then the job's next solve either
resumed (``solve_prepared(..., resume=saved)`` for ``time_left(T, spent)``) or from scratch (``T``). Prints a table
of the final objective and the job's total wall time (the stopped solve's included).

    .venv/bin/python benchmarks/resume_after_stop.py --time-limit 30
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

# run as a script, this file's folder comes first on sys.path, and benchmarks/serving.py would hide the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.gen_shop import generate, random_job_shop  # noqa: E402
from optimization.service import make_params, solve_document  # noqa: E402
from serving.scheduling import SavedPlan, solve_prepared, time_left  # noqa: E402


def _objective(doc: dict) -> float:
    return doc["stats"]["score"][0]


def run(name: str, problem, objective: str, limit: float, stop_share: float, workers: int) -> dict:  # noqa: ANN001
    params = make_params(problem, time_limit_s=limit, workers=workers, objective=objective)
    t0 = time.perf_counter()
    reference = solve_prepared(problem, params, {})
    reference_s = time.perf_counter() - t0

    stop = threading.Event()
    timer = threading.Timer(stop_share * limit, stop.set)
    t0 = time.perf_counter()
    timer.start()
    _, stopped = solve_document(problem, params, stop=stop)
    spent = time.perf_counter() - t0
    timer.cancel()
    saved = SavedPlan.from_doc({**stopped, "objective": params.objective}, time_limit_s=limit, spent_s=spent,
                               cpu_s=0.0, stops=1)
    assert saved is not None, "the stopped solve had no plan"
    saved = SavedPlan.from_json(saved.to_json())  # as the next process reads it from the job's column

    left = time_left(limit, spent)
    t0 = time.perf_counter()
    resumed = solve_prepared(problem, replace(params, time_limit_s=left), {}, resume=saved)
    resumed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scratch = solve_prepared(problem, params, {})
    scratch_s = time.perf_counter() - t0
    assert resumed["violations"] == 0 and _objective(resumed) <= saved.score[0]
    return {"problem": name, "ops": problem.n_operations, "objective": objective, "T": limit,
            "no_stop": _objective(reference), "no_stop_s": reference_s, "saved": saved.score[0], "stopped_s": spent,
            "resumed": _objective(resumed), "resumed_total_s": spent + resumed_s,
            "scratch": _objective(scratch), "scratch_total_s": spent + scratch_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--stop-share", type=float, default=0.7)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1], help="problem seeds (a row per problem and seed)")
    args = ap.parse_args()
    cases = []
    for seed in args.seeds:
        cases += [
            (f"flexible shop with setups, gen_shop 200x10 on 30 machines, seed {seed}",
             generate(jobs=200, ops=10, machines=30, seed=seed, tightness=(1.0, 2.0)), "tardiness"),
            (f"job shop 30x20, random_job_shop seed {seed}", random_job_shop(30, 20, seed), "makespan"),
        ]
    rows = [run(name, p, obj, args.time_limit, args.stop_share, args.workers) for name, p, obj in cases]
    head = ("problem", "ops", "objective", "T s", "no stop", "saved at 0.7T", "resumed", "resumed total s",
            "from scratch", "scratch total s")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for r in rows:
        print(" | ".join(str(x) for x in (
            r["problem"], f"{r['ops']:,}", r["objective"], f"{r['T']:g}", f"{r['no_stop']:,.0f}",
            f"{r['saved']:,.0f} ({r['stopped_s']:.1f} s)", f"{r['resumed']:,.0f}", f"{r['resumed_total_s']:.1f}",
            f"{r['scratch']:,.0f}", f"{r['scratch_total_s']:.1f}")))


if __name__ == "__main__":
    main()
