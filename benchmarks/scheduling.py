"""Scheduling benchmark: gap to the best known bound, SFAI solver vs the plain CP-SAT model of OR-Tools' samples.

The plain model is ``minimal_jobshop_sat.py`` (interval per op, no-overlap per machine, precedence, minimise
makespan) and, for FJSP, ``flexible_job_shop_sat.py`` (optional interval per alternative, exactly one). Both get
the same time limit and workers.

    python benchmarks/scheduling.py --time-limit 20 --workers 2 --instances ft10,la21,mk01
    python benchmarks/scheduling.py --sets jsplib --families la --time-limit 20
    python benchmarks/scheduling.py --shop --shop-time 60 --seed 1   # the 5,000-op generated plan (gen_shop.py)
    python benchmarks/scheduling.py --random 15x15,20x20,30x20,50x15 --random-seeds 1,2   # Taillard-like shops

``--random`` draws job shops the way Taillard's instances are drawn (``gen_shop.random_job_shop``: random machine
order per job, times 1..99) for the size classes the shared sets lack; with no best known value the gap is taken to
the better of the two makespans and CP-SAT's lower bound is printed beside.

``--shop`` prints every dispatching rule (tardiness, makespan, late jobs, seconds, checker violations), then SFAI
with the tardiness objective and a summary table: time to the first feasible plan, the best rule, SFAI's start plan
(ATC variants, the tail re-dispatch search and the sequence local search), SFAI at ``--shop-time``, the improvement
over the best rule, the tail re-dispatches, the sequence search's moves and the LNS iterations.
``--lns-engine`` and ``--search-share`` set ``SolverParams.lns_engine`` / ``dispatch_search_share``;
``--tail-restarts`` and ``--tail-restart-share`` set ``tail_restart_rounds`` / ``tail_restart_share`` (0 restarts: the
search before 2026-12-05); ``--tabu-tenure LO,HI`` sets the tabu phase's ``tabu_tenure`` (8,14: the search before
2026-12-05; instances and ``--random``); ``--solver-seed`` gives the solver a seed other than the plan's ``--seed``:

    python benchmarks/scheduling.py --shop --shop-time 60 --seed 0 --solver-seed 1 --tail-restarts 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from ortools.sat.python import cp_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from optimization.check import verify  # noqa: E402
from optimization.io import load  # noqa: E402
from optimization.problem import SchedulingProblem  # noqa: E402
from optimization.solver import SolverParams, solve  # noqa: E402


def shared() -> Path:
    env = os.environ.get("SFAI_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def plain_model(problem: SchedulingProblem, time_limit: float, workers: int) -> tuple[int | None, float, float]:
    """OR-Tools sample model; returns (makespan, bound, wall)."""
    m = cp_model.CpModel()
    horizon = sum(max(o.durations.values()) for j in problem.jobs for o in j.operations)
    starts, ends, per_machine = {}, {}, {x.id: [] for x in problem.machines}
    for j in problem.jobs:
        for o in j.operations:
            k = (j.id, o.id)
            s = m.new_int_var(0, horizon, f"start_{j.id}_{o.id}")
            e = m.new_int_var(0, horizon, f"end_{j.id}_{o.id}")
            durs = list(o.durations.items())
            if len(durs) == 1:
                per_machine[durs[0][0]].append(m.new_interval_var(s, durs[0][1], e, f"iv_{j.id}_{o.id}"))
            else:
                lits = []
                for x, d in durs:
                    lit = m.new_bool_var(f"p_{j.id}_{o.id}_{x}")
                    ls = m.new_int_var(0, horizon, "")
                    le = m.new_int_var(0, horizon, "")
                    per_machine[x].append(m.new_optional_interval_var(ls, d, le, lit, ""))
                    m.add(s == ls).only_enforce_if(lit)
                    m.add(e == le).only_enforce_if(lit)
                    lits.append(lit)
                m.add_exactly_one(lits)
            starts[k], ends[k] = s, e
    for ivs in per_machine.values():
        m.add_no_overlap(ivs)
    for j in problem.jobs:
        for a, b in zip(j.operations, j.operations[1:], strict=False):
            m.add(starts[(j.id, b.id)] >= ends[(j.id, a.id)])
    mk = m.new_int_var(0, horizon, "makespan")
    m.add_max_equality(mk, [ends[(j.id, j.operations[-1].id)] for j in problem.jobs])
    m.minimize(mk)
    s = cp_model.CpSolver()
    s.parameters.max_time_in_seconds = time_limit
    s.parameters.num_workers = workers
    t = time.perf_counter()
    st = s.solve(m)
    wall = time.perf_counter() - t
    if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return int(s.objective_value), s.best_objective_bound, wall
    return None, s.best_objective_bound, wall


def rows_for(args) -> list[dict]:
    base = shared() / "datasets"
    rows = []
    for ds, fmt in (("jsplib", "jsplib"), ("fjsp", "fjsp")):
        if args.sets and ds not in args.sets.split(","):
            continue
        for r in json.loads((base / ds / "bounds.json").read_text())["instances"]:
            fam = r.get("family") or r.get("set")
            if args.families and fam not in args.families.split(","):
                continue
            if args.instances and r["name"] not in args.instances.split(","):
                continue
            rows.append({**r, "path": base / ds / r["file"], "fmt": fmt, "size": f"{r['jobs']}x{r['machines']}"})
    return rows


def gap(v: int | None, ub: int) -> float | None:
    return None if v is None else 100.0 * (v - ub) / ub


def run_instances(args) -> None:
    rows = rows_for(args)
    print(f"# time limit {args.time_limit}s, {args.workers} workers; gap = (makespan - best known) / best known")
    print("| instance | size | best known | LB | SFAI | SFAI LB | SFAI gap % | SFAI s | plain | plain gap % | ok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    by_class: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        p = load(r["path"], r["fmt"])
        s = solve(p, SolverParams(time_limit_s=args.time_limit, workers=args.workers, seed=args.seed,
                                  tabu_tenure=args.tabu_tenure))
        ok = not verify(p, s)
        pm, _, _ = plain_model(p, args.time_limit, args.workers) if not args.no_plain else (None, 0, 0)
        g, pg = gap(s.makespan, r["upper_bound"]), gap(pm, r["upper_bound"])
        cls = ("fjsp-" + r.get("set", "")) if r["fmt"] == "fjsp" else r["size"]
        if g is not None and pg is not None:
            by_class.setdefault(cls, []).append((g, pg))
        print(f"| {r['name']} | {r['size']} | {r['upper_bound']} | {r['lower_bound']} | {s.makespan} | "
              f"{s.lower_bound} | {g:.2f} | {s.wall_s:.1f} | {pm} | "
              f"{'-' if pg is None else f'{pg:.2f}'} | {ok} |", flush=True)
    print("\n| class | n | SFAI mean gap % | plain mean gap % |\n|---|---|---|---|")
    for cls, v in sorted(by_class.items()):
        print(f"| {cls} | {len(v)} | {sum(a for a, _ in v) / len(v):.2f} | {sum(b for _, b in v) / len(v):.2f} |")


def _random_args(sizes: str, seeds: str) -> tuple[list[tuple[str, tuple[int, int]]], list[int]]:
    """``"20x20,30x20"`` and ``"1,2"`` -> ([("20x20", (20, 20)), ...], [1, 2]); one-line exit on bad input."""
    try:
        out = []
        for size in sizes.split(","):
            n, m = (int(x) for x in size.lower().split("x"))
            if n < 1 or m < 1:
                raise ValueError
            out.append((size, (n, m)))
        return out, [int(x) for x in seeds.split(",")]
    except ValueError:
        sys.exit(f"error: --random takes sizes like 20x20,30x20 and --random-seeds integers like 1,2 "
                 f"(got {sizes!r}, {seeds!r})")


def run_random(args) -> None:
    """Taillard-like job shops per size class: SFAI vs the plain model, gap to the better of the two."""
    from benchmarks.gen_shop import random_job_shop

    sizes, seeds = _random_args(args.random, args.random_seeds)
    print(f"# time limit {args.time_limit}s, {args.workers} workers; gap = (makespan - best of both) / best of both")
    print("| instance | size | SFAI | plain | best LB | SFAI gap % | plain gap % | SFAI above LB % | ok |")
    print("|---|---|---|---|---|---|---|---|---|")
    by_class: dict[str, list[tuple[float, float]]] = {}
    for size, (n, m) in sizes:
        for seed in seeds:
            p = random_job_shop(n, m, seed)
            s = solve(p, SolverParams(time_limit_s=args.time_limit, workers=args.workers, seed=args.seed,
                                      tabu_neighbourhood=args.tabu, tabu_tenure=args.tabu_tenure))
            pm, pb, _ = plain_model(p, args.time_limit, args.workers) if not args.no_plain else (None, None, 0)
            best = min(v for v in (s.makespan, pm) if v is not None)
            lb = max(v for v in (s.lower_bound, pb, p.trivial_lower_bound()) if v is not None)
            g, pg = gap(s.makespan, best), gap(pm, best)
            by_class.setdefault(size, []).append((g, pg if pg is not None else float("nan")))
            print(f"| {p.name} | {size} | {s.makespan} | {pm} | {int(math.ceil(lb))} | {g:.2f} | "
                  f"{'-' if pg is None else f'{pg:.2f}'} | "
                  f"{100.0 * (s.makespan - lb) / lb:.2f} | {not verify(p, s)} |", flush=True)
    print("\n| class | n | SFAI mean gap % | plain mean gap % |\n|---|---|---|---|")
    for cls, v in by_class.items():
        print(f"| {cls} | {len(v)} | {sum(a for a, _ in v) / len(v):.2f} | {sum(b for _, b in v) / len(v):.2f} |")


def run_shop(args) -> None:
    """The generated plan: every dispatching rule, then SFAI (tardiness objective) at ``--shop-time``; one table."""
    from benchmarks.gen_shop import generate
    from optimization.heuristics import RULES, dispatch

    p = generate(args.shop_jobs, 10, args.shop_machines, args.seed)
    cap = ""
    if args.shop_peak_cap is not None:
        from dataclasses import replace

        from optimization.problem import EnergySettings

        # the peak-capped case (the dispatching rules run the Python scheme): a stepped base load under the cap
        p = replace(p, energy=EnergySettings(period=60, prices=(0.1, 0.3), base_load_kw=(50.0, 100.0, 60.0),
                                             peak_cap_kw=args.shop_peak_cap))
        cap = f"; peak cap {args.shop_peak_cap:g} kW over a base load of 50-100 kW"
    load1 = os.getloadavg()[0]
    print(f"# generated plan {p.name}: {len(p.jobs)} jobs, {p.n_operations} ops, {len(p.machines)} machines{cap}; "
          f"{args.workers} workers; load average before the run {load1:.2f} on {os.cpu_count()} CPUs")
    print("| method | weighted tardiness | makespan | late jobs | time s | violations |\n|---|---|---|---|---|---|")
    best_rule, best_name = None, ""
    for rule in RULES:
        t = time.perf_counter()
        d = dispatch(p, rule)
        wt = d.objective["weighted_tardiness"]
        print(f"| dispatch {rule} | {wt:.0f} | {d.makespan} | {d.objective['late_jobs']} | "
              f"{time.perf_counter() - t:.2f} | {len(verify(p, d))} |", flush=True)
        if best_rule is None or wt < best_rule:
            best_rule, best_name = wt, rule
    solver_seed = args.seed if args.solver_seed is None else args.solver_seed
    params = SolverParams(time_limit_s=args.shop_time, workers=args.workers, seed=solver_seed, objective="tardiness",
                          lns_engine=args.lns_engine, dispatch_search_share=args.search_share,
                          tail_restart_rounds=args.tail_restarts, tail_restart_share=args.tail_restart_share)
    s = solve(p, params)
    wt = s.objective["weighted_tardiness"]
    print(f"| SFAI {args.shop_time:.0f}s ({args.lns_engine}) | {wt:.0f} | {s.makespan} | {s.objective['late_jobs']} | "
          f"{s.wall_s:.1f} | {len(verify(p, s))} |")
    imp = 100 * (1 - wt / best_rule) if best_rule else 0.0
    start = (s.stats.get("dispatch_best") or [float("nan")])[0]
    print(f"\n| first feasible s | best rule | best rule tardiness | SFAI start plan (ATC variants, tail search, "
          f"sequence search) "
          f"| SFAI tardiness | improvement % | tail re-dispatches | sequence moves | LNS iterations |\n"
          f"|---|---|---|---|---|---|---|---|---|\n"
          f"| {s.stats.get('first_feasible_s'):.2f} | {best_name} | {best_rule:.0f} | {start:.0f} | {wt:.0f} | "
          f"{imp:.1f} | {s.stats.get('tail_iterations')} ({s.stats.get('tail_improvements')} improving, "
          f"{s.stats.get('tail_workers')} workers) | {s.stats.get('seq_moves')} ({s.stats.get('seq_kept')} kept) | "
          f"{s.stats.get('lns_iterations')} ({s.stats.get('lns_improvements')} improving) |")


def _tenure(text: str) -> tuple[int, int]:
    """``"3,7"`` -> (3, 7), for ``--tabu-tenure``."""
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers LO,HI like 3,7, got {text!r}") from None
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"expected 1 <= LO <= HI, got {text!r}")
    return lo, hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", default="", help="jsplib,fjsp")
    ap.add_argument("--families", default="", help="ft,la,abz,orb,brandimarte,hurink-edata")
    ap.add_argument("--instances", default="", help="comma-separated names, e.g. ft10,la21,mk01,e-la01")
    ap.add_argument("--no-plain", action="store_true")
    ap.add_argument("--shop", action="store_true", help="run the generated 5,000-op plan instead")
    ap.add_argument("--shop-jobs", type=int, default=500)
    ap.add_argument("--shop-time", type=float, default=60.0)
    ap.add_argument("--shop-machines", type=int, default=50)
    ap.add_argument("--shop-peak-cap", type=float, default=None, metavar="KW",
                    help="a peak power cap on the generated plan (e.g. 250 with --shop-jobs 200 --shop-machines 20)")
    ap.add_argument("--lns-engine", default="auto", help="auto|small|whole (SolverParams.lns_engine)")
    ap.add_argument("--solver-seed", type=int, default=None,
                    help="with --shop: the solver's seed (default: --seed, which also draws the plan)")
    ap.add_argument("--tail-restarts", type=int, default=SolverParams.tail_restart_rounds,
                    help="SolverParams.tail_restart_rounds: rounds of independent chains from the start plan")
    ap.add_argument("--tail-restart-share", type=float, default=SolverParams.tail_restart_share,
                    help="SolverParams.tail_restart_share: their share of the dispatch search's time")
    ap.add_argument("--search-share", type=float, default=SolverParams.dispatch_search_share,
                    help="SolverParams.dispatch_search_share: time share of the dispatch (tail re-dispatch) search")
    ap.add_argument("--random", default="", help="size classes of Taillard-like job shops, e.g. 20x20,30x20,50x15")
    ap.add_argument("--random-seeds", default="1,2", help="instance seeds per class (with --random)")
    ap.add_argument("--tabu", default=SolverParams.tabu_neighbourhood, choices=("n5", "n6"),
                    help="SolverParams.tabu_neighbourhood: the tabu phase's moves (with --random)")
    ap.add_argument("--tabu-tenure", type=_tenure, default=SolverParams.tabu_tenure, metavar="LO,HI",
                    help="SolverParams.tabu_tenure: iterations a tabu move stays tabu (8,14: before 2026-12-05)")
    a = ap.parse_args()
    if a.random:
        run_random(a)
    elif a.shop:
        run_shop(a)
    else:
        run_instances(a)


if __name__ == "__main__":
    main()
