"""Solve a scheduling problem: dispatching warm start, CP-SAT on the full model, LNS on top of CP-SAT when big.

Every returned schedule has passed :func:`optimization.check.verify`; the best plan found is always returned.
A solve can be stopped from another thread (``solve(..., stop=event)``): every stage then returns its best plan so
far, and the answer is that plan (``stats["stopped"]``), as at the time limit.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ortools.sat.python import cp_model

from optimization.builder import (
    BuildStopped,
    LnsSpec,
    ModelTooLarge,
    ModelVars,
    add_hint,
    build_model,
    integer_objective,
)
from optimization.check import verify, work_before_service
from optimization.diagnose import proofs as diagnose_proofs
from optimization.diagnose import why_no_plan
from optimization.energy_shift import shift as energy_shift
from optimization.heuristics import (
    Checkpoints,
    DispatchStopped,
    Stop,
    as_stop,
    atc_variants,
    best_dispatch,
    cp_solve,
    rules_for,
    sequence_search,
    setups_in_working_time,
    tail_search,
)
from optimization.lns import improve as lns_improve
from optimization.lns import supported as lns_supported
from optimization.lns import terms_supported
from optimization.problem import SchedulingProblem
from optimization.solution import Assignment, MaintenanceWindow, Schedule, evaluate, with_setups
from optimization.tabu import TENURE
from optimization.tabu import improve as tabu_improve
from optimization.tabu import supported as tabu_supported
from optimization.windows import NoWindow, service_first

log = logging.getLogger("sfai.scheduling")
OBJECTIVES = ("makespan", "tardiness", "energy", "weighted", "lex")
PROBE_SHARE = 0.2  # auto under a peak cap: the whole model's first try, before the capped dispatch search
# a background job's checkpoint: called with each better checked plan and its score (solve's on_plan)
OnPlan = Callable[[Schedule, tuple], None]
MAX_URGENT_WEIGHT = 1000.0  # a job with a pin further along it, for the rules' start plan (_pin_urgent)
EVAL_KEY = {"makespan": "makespan", "tardiness": "weighted_tardiness", "energy": "energy_cost", "risk": "risk_penalty"}


@dataclass
class SolverParams:
    time_limit_s: float = 10.0
    workers: int = 2
    seed: int = 0
    log: bool = False
    objective: str = "makespan"  # makespan | tardiness | energy | weighted | lex
    weights: dict[str, float] = field(default_factory=lambda: {"tardiness": 1.0, "makespan": 0.01, "energy": 1.0})
    order: tuple[str, ...] = ("tardiness", "makespan")  # lexicographic priority for objective="lex"
    strategy: str = "auto"  # auto | full | lns
    full_max_ops: int = 400  # auto: the full model alone up to this many operations
    polish_max_ops: int = 2500  # auto: a closing full-model run (bound, proof) up to this many operations
    # ... and up to this many pairwise setup disjunctions (builder.add_setups; ~20 us each to build): a 2,000-op
    # generated plan has ~530,000 and took 10 s to build, past a 10-s time limit
    polish_max_pairs: int = 30_000
    lns_size: int = 60  # initial number of free operations per neighbourhood
    # lns sub-models: "small" = only the freed operations (rest of the plan as constants, see optimization/lns.py),
    # "whole" = the whole model with the others fixed; "auto" = small when supported, above polish_max_ops or with a
    # tardiness objective (loaded 500-2,000-op plans with setups, 10 s: 28-45 % below the ATC plan, where the whole-
    # model LNS and polish ended 0.03-8 % below it; docs/scheduling.md)
    lns_engine: str = "auto"
    # small-sub-model path with a tardiness objective: share of the time for the dispatch search (tail re-dispatch
    # of the incumbent after random cut times with random ATC parameters, heuristics.tail_search; `workers`
    # processes); the small-sub-model LNS gets the rest
    dispatch_search_share: float = 0.8
    # then, on the same path, the compiled sequence local search (heuristics.sequence_search: operations of late jobs
    # moved earlier on their machine or onto another one, the plan re-timed) for this share of the time; the
    # small-sub-model LNS gets what is left. On the 5k-op plan it adds 0.3-0.5 % in ~10 s and then stalls, where the
    # LNS added < 0.1 %
    sequence_search_share: float = 0.12
    # the dispatch search's first tail_restart_rounds rounds (tail_restart_share of its time in all) run new chains
    # from the start plan (each worker one per round), then the rounds go on from the best plan they found. On the
    # 5k-op plan (6 rounds of 4 s, 2 workers: 12 chains) 0.7 % less tardiness on average over 7 paired runs, 6 of 7
    # at least 30 % below the best rule against 4 of 7 (docs/scheduling.md)
    tail_restart_rounds: int = 6
    tail_restart_share: float = 0.5
    # CP-SAT's stronger (costlier) no-overlap propagation (use_strong_propagation_in_disjunctive and
    # use_dynamic_precedence_in_disjunctive). None = auto: on up to strong_max_ops operations. With 2 workers it
    # proves ft10 in ~1.5 s instead of 10-20 s and brings 15x15-20x15 job shops 1-2 % nearer their best known
    # plans in 20 s, but it slows the search on 600+ operations (50x15: 40 % worse); docs/scheduling.md
    strong_disjunctive: bool | None = None
    strong_max_ops: int = 400
    # CP-SAT subsolver for the complete-search thread when 2 workers run (the other thread interleaves CP-SAT's
    # LNS); None = auto: "no_lp" for makespan alone above strong_max_ops when there are at least 2.5 jobs per
    # machine (50x15 and 100x20 job shops end 1-3 % better, 50x15 often proven at the machine-load bound; the LP
    # relaxation only costs time there), else CP-SAT's own choice (30x20: no_lp was 0-3 % worse)
    full_subsolver: str | None = None
    # classic job shops (optimization.tabu.supported) with makespan alone and more than tabu_above_ops operations,
    # strategy auto: CP-SAT on the whole model for the first (1 - share) of the time (a plan and a lower bound), then
    # `workers` tabu-search chains from its plan for the rest. share = tabu_share, or tabu_share_dense with at least
    # 2.5 jobs per machine (50x15, 100x20: CP-SAT's no_lp search often reaches the machine-load bound there and
    # needs the time; those shops first give the tabu search up to 5 % of the time, at most 2 s, from the
    # dispatching plan toward the machine-load bound, which proves 100x20 optimal in under a second). With the
    # compiled search (2026-12-04), 20x15 (abz7-9) ends within 1 % of the best known plans where CP-SAT alone ended
    # 1-3 % above, 20x20 0.4-0.6 % better than CP-SAT alone, 30x20 5-7 % below the plain model and 2.6-2.9 % above
    # the lower bound, 50x15-100x20 at the lower bound (docs/scheduling.md). Up to 250 operations (15x15 and
    # smaller) CP-SAT alone: it proves most of them optimal within the 20 s. 0 turns it off.
    tabu_share: float = 0.75
    tabu_share_dense: float = 0.25
    tabu_above_ops: int = 250
    tabu_above_ops_long: int = 199  # the same for shops with at least two jobs per machine (20x10)
    tabu_neighbourhood: str = "n6"  # "n6": insertions at a block's edges (optimization/tabu.py); "n5": swaps only
    tabu_restart_after: int = 10_000  # iterations without a new best before a chain goes back to its best plan
    tabu_tenure: tuple[int, int] = TENURE  # iterations a move stays tabu (drawn per move; optimization.tabu.TENURE)
    # shops of up to tabu_population_max_ops operations, not dense: each worker runs a population of that many
    # tabu-searched plans (optimization.tabu._evolve) instead of one chain; 0 turns it off. Up to 600 operations
    # since 2026-12-05 (20x20 and 30x20 as well as la26-30 and abz7-9: 0-0.35 % better than the chains in paired
    # runs, never worse by more than 0.2 %; docs/scheduling.md)
    tabu_population: int = 20
    tabu_population_max_ops: int = 600
    # how many workers' populations start from CP-SAT's plan (the others from random plans only; None: all). la29
    # ended at its 1,164 plateau in 3 of 11 runs when both did, 1 of 16 with only the first (docs/scheduling.md)
    tabu_population_start_workers: int | None = 1
    # objectives that weigh the energy cost under a tariff: this share of the time goes to moving operations in time
    # to cheaper periods (optimization.energy_shift; machines and orders kept), half on the dispatching plan before
    # the search and half on the final plan. CP-SAT alone did not improve the dispatching plan of generated 100- and
    # 300-operation shops in 10-30 s (docs/scheduling.md, "Energy objectives")
    energy_shift_share: float = 0.15
    # other objectives, when the problem has a tariff and powered operations: this share of the time goes to the same
    # moves on the final plan with the energy cost as a last stage, so that of plans as good, a cheaper one comes
    # back (loaded generated shops of 1,000 and 5,000 operations: 1-2 % less energy cost, the same tardiness)
    energy_tiebreak_share: float = 0.05
    # an answer without a plan gets its causes (optimization.diagnose); off for diagnose's own relaxed solves, which
    # only ask whether a plan exists
    explain: bool = True

    def stages(self) -> list[dict[str, float]]:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; use one of {OBJECTIVES}")
        if self.objective == "weighted":
            if any(not math.isfinite(w) or w < 0 for w in self.weights.values()):
                raise ValueError(f"weights must be finite numbers >= 0, got {self.weights}")
            return [dict(self.weights)]
        if self.objective == "lex":
            return [{t: 1.0} for t in self.order]
        return [{self.objective: 1.0}]


def score(problem: SchedulingProblem, schedule: Schedule, stages: list[dict[str, float]]) -> tuple[float, ...]:
    obj = schedule.objective or evaluate(problem, schedule.assignments)
    out = []
    for st in stages:
        v = sum(w * obj.get(EVAL_KEY[t], 0.0) for t, w in st.items())
        if problem.risk is not None and problem.risk.policy == "penalty":
            v += obj.get("risk_penalty", 0.0)
        out.append(round(v, 6))
    return tuple(out)


def _terms(stages: list[dict[str, float]]) -> tuple[str, ...]:
    return tuple({t for st in stages for t in st})


def _with_risk(problem: SchedulingProblem, st: dict[str, float]) -> dict[str, float]:
    if problem.risk is not None and problem.risk.policy == "penalty":
        st = {**st, "risk": st.get("risk", 0.0) + 1.0}
    return st


def _stage_expr(mv: ModelVars, st: dict[str, float]) -> tuple[object, float]:
    """Integer objective expression of a stage and the factor K with expr = K * real value. One K for all the
    stage's coefficients (stage weight times job weight, ...): scaling each term's integer expression again
    multiplied coefficients past int64 (which CP-SAT's expressions wrap around without a word) and rounded a term
    with 6 decimals times a stage weight of 0.5 down to nothing."""
    expr, k, exact = integer_objective([(w * c, var, ub) for t, w in st.items() if w for c, var, ub in mv.terms[t]])
    mv.exact = mv.exact and exact  # rounded down: the bound stays a bound, an OPTIMAL is no proof
    return expr, k


def _cp_params(solver: cp_model.CpSolver, params: SolverParams, limit: float, seed: int) -> None:
    solver.parameters.max_time_in_seconds = max(0.05, limit)
    solver.parameters.num_workers = max(1, params.workers)
    solver.parameters.random_seed = seed
    solver.parameters.log_search_progress = params.log
    solver.parameters.use_strong_propagation_in_disjunctive = bool(params.strong_disjunctive)
    solver.parameters.use_dynamic_precedence_in_disjunctive = bool(params.strong_disjunctive)
    if params.full_subsolver and params.workers == 2:
        solver.parameters.subsolvers.append(params.full_subsolver)


def _extract(problem: SchedulingProblem, solver: cp_model.CpSolver, mv: ModelVars) -> tuple[list[Assignment],
                                                                                                 list[MaintenanceWindow]]:
    chosen = {}
    for (jid, oid, x), lit in mv.presence.items():
        if solver.boolean_value(lit) if not isinstance(lit, int) else lit:
            chosen[(jid, oid)] = x
    assigns = []
    for k, s in mv.starts.items():
        st = solver.value(s)
        x = chosen[k]
        assigns.append(Assignment(k[0], k[1], x, st, st + problem.op(k).durations[x]))
    windows = []
    r = problem.risk
    for mid, var in mv.maintenance.items():
        assert r is not None
        st = solver.value(var)
        windows.append(MaintenanceWindow(mid, st, st + r.window_duration))
    return with_setups(problem, assigns), windows


def _make(problem: SchedulingProblem, assigns: list[Assignment], windows: list[MaintenanceWindow], status: str,
          method: str) -> Schedule:
    obj = evaluate(problem, assigns)
    return Schedule(assignments=assigns, status=status, makespan=int(obj["makespan"]), objective=obj,
                    stats={"method": method}, maintenance=windows)


def _horizon(problem: SchedulingProblem, inc: Schedule | None, stages: list[dict[str, float]]) -> int:
    if problem.horizon is not None:
        return problem.horizon
    penalty = problem.risk is not None and problem.risk.policy == "penalty"
    if inc is not None and set(stages[0]) == {"makespan"} and not penalty:
        return inc.makespan or 1
    if inc is not None:
        base = max([inc.makespan or 0] + [j.due or 0 for j in problem.jobs])
        h = int(base * (2.0 if penalty else 1.3)) + 1
    else:
        # room for every operation one after another, after the last release, calendar entry and pin, with the
        # longest setup before each and every lag: a plan fits (pins and setups had been left out, and CP-SAT
        # proved "infeasible" within a horizon too short for the pinned work)
        ops = [o for j in problem.jobs for o in j.operations]
        h = sum(max(o.durations[m] for m in o.machines) for o in ops)
        h += max([j.release for j in problem.jobs]
                 + [d.end for m in problem.machines for d in m.calendar]
                 + [o.pinned_start + o.durations[o.pinned_machine] for o in ops
                    if o.pinned_start is not None and o.pinned_machine is not None])
        if problem.has_setups:
            st = problem.setups
            h += len(ops) * max([0, *st.matrix.values(), *(v for mat in st.per_machine.values() for v in mat.values())])
        h += sum(max(0, p.min_lag) for p in problem.precedences)
        if problem.risk is not None:
            h += problem.risk.window_duration * len(problem.machines)
    en = problem.energy
    if _weighs_energy(problem, stages) and en is not None:
        # a time-of-use tariff can make a later plan cheaper: cover the tariff and base-load data and one more
        # tariff cycle after the incumbent, so the whole plan may move to any phase of the tariff
        h = max(h, max(len(en.prices), len(en.base_load_kw)) * en.period,
                (inc.makespan or 0) + len(en.prices) * en.period if inc is not None else 0)
    return h


def _weighs_energy(problem: SchedulingProblem, stages: list[dict[str, float]]) -> bool:
    return problem.energy is not None and bool(problem.energy.prices) and any(st.get("energy", 0) > 0
                                                                              for st in stages)


def _horizon_may_cut(problem: SchedulingProblem, stages: list[dict[str, float]]) -> bool:
    """Whether the derived horizon may exclude better plans, so that CP-SAT's proof and bound hold only inside it:
    an energy term with a tariff can prefer later plans (a makespan-only first stage keeps every later stage's plan
    within the incumbent's makespan, which the horizon covers)."""
    penalty = problem.risk is not None and problem.risk.policy == "penalty"
    makespan_first = set(stages[0]) == {"makespan"} and not penalty
    return problem.horizon is None and not makespan_first and _weighs_energy(problem, stages)


def _floor(problem: SchedulingProblem, st: dict[str, float]) -> float:
    """A lower bound of a stage's value over all plans, with no horizon: the makespan's trivial bound, each powered
    operation on its fastest machine at the lowest price; tardiness and risk penalty 0."""
    v = 0.0
    if st.get("makespan", 0) > 0:
        v += st["makespan"] * problem.trivial_lower_bound()
    en = problem.energy
    if st.get("energy", 0) > 0 and en is not None and en.prices:
        low = min(en.prices) * en.hours_per_unit
        v += st["energy"] * sum(low * o.power_kw * min(o.durations[m] for m in o.machines)
                                for j in problem.jobs for o in j.operations if o.power_kw > 0)
    return round(v * (1 - 1e-9), 6)


def setup_pairs(problem: SchedulingProblem) -> int:
    """Pairs of operations that may share a machine, over all machines: the size of the full model's setup part."""
    if not problem.has_setups:
        return 0
    k: dict[str, int] = {}
    for j in problem.jobs:
        for o in j.operations:
            for m in o.machines:
                k[m] = k.get(m, 0) + 1
    return sum(c * (c - 1) // 2 for c in k.values())


class _Solutions:
    """``cp_solve``'s ``on_solution`` for a stage of the whole model: keeps the solution whose plan scores best and
    offers each to ``checkpoint`` (where there is one). CP-SAT ranks its solutions by the model's objective, which
    bounds a plan's tardiness from above (a job's end may lie past its last operation's in the model): a later
    solution it calls better can score worse than an earlier one (on a loaded machine, a service-first plan's one
    stage ended on a plan scoring 745 after one scoring 724), so ``best`` is compared with its last. A solution's
    values are read at once (CP-SAT's callback holds them only during the call); its plan is made from them only
    where it is kept or a checkpoint is due."""

    def __init__(self, problem: SchedulingProblem, mv: ModelVars, stages: list[dict[str, float]], expr,  # noqa: ANN001
                 checkpoint: Checkpoints | None) -> None:
        self.problem, self.mv, self.stages, self.expr, self.checkpoint = problem, mv, stages, expr, checkpoint
        self.best: tuple[tuple[float, ...], Schedule, int] | None = None  # (score, plan, the stage's value)

    def __call__(self, found) -> None:  # noqa: ANN001 - CP-SAT's solution callback
        assigns, windows = _extract(self.problem, found, self.mv)
        plan = _make(self.problem, assigns, windows, "FEASIBLE", "cp-sat")
        plan_score = score(self.problem, plan, self.stages)
        if self.best is None or plan_score < self.best[0]:
            self.best = (plan_score, plan, found.value(self.expr))
        if self.checkpoint is not None:
            self.checkpoint(lambda: setups_in_working_time(
                self.problem, _make(self.problem, assigns, windows, "FEASIBLE", "cp-sat")))


# ---- full model ------------------------------------------------------------------------------------------------

def solve_full(problem: SchedulingProblem, params: SolverParams, horizon: int, incumbent: Schedule | None,
               deadline: float, hint: bool = True, notes: dict[str, str] | None = None,
               stop: Stop | None = None, checkpoint: Checkpoints | None = None) -> tuple[Schedule | None, float | None,
                                                                                         bool]:
    """CP-SAT on the whole problem, stage by stage (lexicographic). Returns (plan, bound of stage 1, proven).

    ``hint=False`` keeps ``incumbent`` only as the fallback answer of the first stage instead of a warm start.
    ``notes`` gets ``model_too_large`` when the model was not built (there is no incumbent to note it on).
    ``stop``: once set, CP-SAT's search stops (as at its time limit) and no later stage runs; not built at all when
    set before. ``checkpoint``: offered CP-SAT's solutions as it finds them (:class:`Checkpoints`).
    """
    if stop is not None and stop():
        return incumbent, None, False
    stages = params.stages()
    try:
        model, mv = build_model(problem, horizon, _terms(stages), time_limit_s=deadline - time.perf_counter(),
                                 stop=stop)
    except BuildStopped:
        return incumbent, None, False
    except ModelTooLarge as e:  # the incumbent (if any) stays the answer
        if incumbent is not None:
            incumbent.stats["model_too_large"] = str(e)
        elif notes is not None:
            notes["model_too_large"] = str(e)
        return incumbent, None, False
    best = incumbent
    bound = None
    proven = True
    for i, st in enumerate(stages):
        if stop is not None and stop():
            proven = False
            break
        st = _with_risk(problem, st)
        if i > 0:
            model.clear_objective()
        builder_expr, factor = _stage_expr(mv, st)
        model.minimize(builder_expr)
        model.clear_hints()
        if best is not None and (hint or i > 0):
            add_hint(model, mv, best.assignments, {w.machine: w.start for w in best.maintenance})
        solver = cp_model.CpSolver()
        left = deadline - time.perf_counter()
        _cp_params(solver, params, left / (len(stages) - i), params.seed)
        found = _Solutions(problem, mv, stages, builder_expr, checkpoint)
        status = cp_solve(solver, model, stop, found, checkpoint)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            proven = False
            if status == cp_model.INFEASIBLE and best is None and i == 0:
                return None, None, True  # proven infeasible
            break
        assigns, windows = _extract(problem, solver, mv)
        raw = _make(problem, assigns, windows, "FEASIBLE", "cp-sat")
        kept_value = solver.value(builder_expr)
        last = score(problem, raw, stages)
        if found.best is not None and found.best[0] < last:  # an earlier solution scores better
            _, raw, value = found.best
            raw.stats["cp_sat_last_solution_score"] = list(last)  # the stage's answer before 2026-12-08
            kept_value = max(kept_value, value)
            proven = False
        raw.stats.update(conflicts=solver.num_conflicts, branches=solver.num_branches)
        cand = setups_in_working_time(problem, raw)  # the model keeps a setup's length, not where it lies
        if cand is not None and not verify(problem, cand) and (
                best is None or score(problem, cand, stages) <= score(problem, best, stages)):
            best = cand
        if i == 0:
            bound = solver.best_objective_bound / factor
        if status != cp_model.OPTIMAL or not mv.exact or cand is not raw:
            proven = False
        # lexicographic: keep this stage at its value (the expression's integer value: objective_value is a float,
        # which past 2**53 rounded below the value and made the next stage infeasible), or at the kept plan's
        model.add(builder_expr <= kept_value)
    return best, bound, proven


# ---- large-neighbourhood search ---------------------------------------------------------------------------------

def _neighbourhood(problem: SchedulingProblem, inc: Schedule, size: int, rng: random.Random, kind: str,
                   stages: list[dict[str, float]]) -> set:
    assigns = sorted(inc.assignments, key=lambda a: (a.start, a.end))
    n = len(assigns)
    size = max(2, min(size, n))
    if kind == "window":
        i = rng.randrange(0, max(1, n - size + 1))
        return {a.key for a in assigns[i:i + size]}
    if kind == "machines":
        machines = [m.id for m in problem.machines]
        rng.shuffle(machines)
        per = max(1, n // len(machines))
        picked = set(machines[: max(1, min(len(machines), 2 * size // per))])
        on = [a for a in assigns if a.machine in picked]
        i = rng.randrange(0, max(1, len(on) - size + 1))
        return {a.key for a in on[i:i + size]}
    # jobs: late (or critical) jobs and their time neighbours
    ends: dict[str, int] = {}
    for a in inc.assignments:
        ends[a.job] = max(ends.get(a.job, 0), a.end)
    target = set(stages[0])
    if "tardiness" in target:
        late = [j for j in problem.jobs if j.due is not None and ends[j.id] > j.due]
        pool = late or list(problem.jobs)
        weights = [(j.weight + 1e-3) * max(1, ends[j.id] - (j.due or 0) + 1) for j in pool]
    else:
        pool = list(problem.jobs)
        weights = [ends[j.id] + 1 for j in pool]
    free: set = set()
    tries = 0
    while len(free) < size and tries < 4 * size:
        tries += 1
        j = rng.choices(pool, weights=weights)[0]
        free |= {(j.id, o.id) for o in j.operations}
    return free


def solve_lns(problem: SchedulingProblem, params: SolverParams, horizon: int, incumbent: Schedule,
              deadline: float, stop: Stop | None = None, checkpoint: Checkpoints | None = None) -> Schedule:
    stages = params.stages()
    rng = random.Random(params.seed)
    best = incumbent
    best_score = score(problem, best, stages)
    size = max(4, params.lns_size)
    kinds = ["window", "machines", "jobs"]
    n_ops = problem.n_operations
    pbar = sum(a.end - a.start for a in best.assignments) / max(1, n_ops)
    it = accepted = 0
    while time.perf_counter() < deadline - 0.05:
        if stop is not None and stop():
            break
        if checkpoint is not None:
            checkpoint.tick()  # a better plan offered before, handed on once due
        it += 1
        kind = kinds[it % len(kinds)]
        free = _neighbourhood(problem, best, size, rng, kind, stages)
        fix = n_ops > 2000 or it % 2 == 0
        lns = LnsSpec(incumbent=best.by_key(), free=free, radius=int(4 * pbar), fix_times=fix)
        st = _with_risk(problem, stages[0])
        try:
            model, mv = build_model(problem, horizon, _terms(stages), lns=lns,
                                     time_limit_s=deadline - time.perf_counter(), stop=stop)
        except BuildStopped:
            break
        except ModelTooLarge as e:
            best.stats["model_too_large"] = str(e)
            break
        expr, _ = _stage_expr(mv, st)
        model.minimize(expr)
        add_hint(model, mv, best.assignments, {w.machine: w.start for w in best.maintenance})
        solver = cp_model.CpSolver()
        left = deadline - time.perf_counter()
        sub = min(left, max(0.5, min(3.0, 0.05 * params.time_limit_s + 0.3)))
        _cp_params(solver, params, sub, params.seed + it)
        t_sub = time.perf_counter()
        status = cp_solve(solver, model, stop, checkpoint=checkpoint)
        dt = time.perf_counter() - t_sub
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            assigns, windows = _extract(problem, solver, mv)
            cand = setups_in_working_time(problem, _make(problem, assigns, windows, "FEASIBLE", "lns"))
            sc = score(problem, cand, stages) if cand is not None else None
            if sc is not None and sc <= best_score and (n_ops > 3000 or not verify(problem, cand)):
                if sc < best_score:
                    accepted += 1
                    if checkpoint is not None:
                        checkpoint(lambda plan=cand: plan)
                best, best_score = cand, sc
        # adapt the neighbourhood: grow while sub-problems close fast, shrink when they time out
        if status == cp_model.OPTIMAL and dt < 0.5 * sub:
            size = min(n_ops, int(size * 1.15) + 1)
        elif status != cp_model.OPTIMAL:
            size = max(8, int(size * 0.85))
    best.stats.update(lns_iterations=it, lns_improvements=accepted, lns_final_size=size)
    return best


# ---- entry point ------------------------------------------------------------------------------------------------

def _pin_urgent(problem: SchedulingProblem) -> SchedulingProblem | None:
    """``problem`` with each job that has a pinned step after its first due by that pin's start at the latest and
    weighted heavily, for the dispatching rules' start plan only; None where no job has such a pin."""
    jobs, changed = [], False
    for j in problem.jobs:
        pins = [o.pinned_start for o in j.operations[1:] if o.pinned_start is not None and not o.started]
        if pins:
            due = min(pins) if j.due is None else min(j.due, min(pins))
            jobs.append(replace(j, due=due, weight=MAX_URGENT_WEIGHT))
            changed = True
        else:
            jobs.append(j)
    return replace(problem, jobs=tuple(jobs)) if changed else None


def _no_plan(problem: SchedulingProblem, status: str, stats: dict, notes: dict[str, str], t0: float,
             deadline: float, explain: bool = True, stop: Stop | None = None) -> Schedule:
    """An answer without a plan, with its causes in ``stats["no_plan_reasons"]`` (optimization.diagnose); a solve
    stopped before it had one says so (``stats["stopped"]``, reason ``stopped``)."""
    s = Schedule(assignments=[], status=status, stats=stats)
    if stop is not None and stop():
        s.stats["stopped"] = True
    if explain:
        s.stats["no_plan_reasons"] = why_no_plan(problem, s, deadline, notes, stop=stop)
    s.wall_s = time.perf_counter() - t0
    return s


def checked_start(problem: SchedulingProblem, start: Schedule | None) -> Schedule | None:
    """``start`` (a plan saved earlier: a stopped job's best plan) as a fresh, scored plan where it is still a
    valid plan of ``problem``; None (with a log warning) where it is not."""
    if start is None:
        return None
    try:
        plan = Schedule(assignments=with_setups(problem, list(start.assignments)), status="FEASIBLE",
                        maintenance=list(start.maintenance), stats={"method": "resumed"})
        wrong = verify(problem, plan)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a corrupted plan: names the problem lacks
        wrong = [f"{type(e).__name__}: {e}"]
    if wrong or not plan.assignments:
        log.warning("the saved plan is no plan of this problem (%s): solving from scratch",
                    wrong[0] if wrong else "no operations")
        return None
    plan.objective = evaluate(problem, plan.assignments)
    plan.makespan = int(plan.objective["makespan"])
    return plan


def solve(problem: SchedulingProblem, params: SolverParams | None = None, *,
          stop: threading.Event | None = None, start: Schedule | None = None,
          on_plan: OnPlan | None = None) -> Schedule:
    """The best plan found for ``problem`` within ``params.time_limit_s``, or an answer without a plan that says why.
    A risky machine serviced first (``FailureRisk.service_first``) is planned as down until its window ends, the
    window at the earliest time it fits (``optimization.windows``).

    ``stop``: an event another thread may set (a cancelled job) to end the solve early. Every stage then stops
    within a fraction of a second (CP-SAT's search too) and the answer is the best checked plan found so far, with
    ``stats["stopped"]`` True and the status CP-SAT gives at a time-out (FEASIBLE, or OPTIMAL where proven before;
    UNKNOWN with no plan when none was found yet, ``no_plan_reasons`` of type ``stopped``). An event set before the
    call returns at once without a plan. Never set, it changes nothing: the same plans as without it.

    ``start``: a plan found before (a background job's best plan when its server stopped), checked against
    ``problem`` first (one that no longer fits is ignored with a log warning). The search starts from it (a CP-SAT
    solution hint on the same start, end and machine variables, the LNS' and local searches' incumbent) and the
    answer is never worse than it: where nothing better is found in the time, or nothing at all, it is the answer
    (``stats["resumed_plan_kept"]``).

    ``on_plan(plan, score)``: called with each checked plan better than the one before (the first: the dispatching
    plan), between the stages and, at most every ``heuristics.CHECKPOINT_EVERY_S``, inside the searches (CP-SAT's,
    the LNS, the dispatch search's rounds, a tabu search in this process), so that a background job keeps its
    progress where its process is killed. Where a machine is serviced first, the
    stages' plans are handed with the windows placed first, as plans of ``problem``."""
    params = params or SolverParams()
    halt = as_stop(stop)
    t0 = time.perf_counter()
    start = checked_start(problem, start)
    try:
        inner, windows = service_first(problem)
    except NoWindow as e:
        s = Schedule(assignments=[], status="INFEASIBLE",
                     stats={"method": "check", "n_operations": problem.n_operations})
        if params.explain:
            s.stats["no_plan_reasons"] = [e.reason()]
        s.wall_s = time.perf_counter() - t0
        return s
    if inner is problem:
        return _kept(problem, params, _solve(problem, params, halt, start, on_plan), start)
    outer_start, placed = start, set(windows)
    if start is not None:  # the windows placed first are the inner problem's downtime, not its windows
        start = checked_start(inner, replace(start, maintenance=[w for w in start.maintenance if w not in placed]))
    plan = _solve(inner, replace(params, explain=False), halt, start,
                  _with_windows(problem, params, windows, t0, on_plan) if on_plan is not None else None)
    if outer_start is not None:
        return _kept(problem, params, _service_first_plan(problem, params, plan, windows, t0, halt), outer_start)
    return _service_first_plan(problem, params, plan, windows, t0, halt)


def _with_windows(problem: SchedulingProblem, params: SolverParams, windows: list[MaintenanceWindow], t0: float,
                  on_plan: OnPlan) -> OnPlan:
    """``on_plan`` for the solve of the inner problem of a plan with machines serviced first: each of its plans is
    handed on as a plan of ``problem`` (the windows placed first added), where it is one and better than the last."""
    stages = params.stages()
    said: list[tuple] = []
    quiet = replace(params, explain=False)

    def hand(plan: Schedule, _inner_score: tuple) -> None:
        whole = _service_first_plan(problem, quiet, replace(plan, stats={}, objective={}), windows, t0, None)
        if not whole.assignments or verify(problem, whole):
            return
        whole_score = score(problem, whole, stages)
        if said and whole_score >= said[-1]:
            return
        said.append(whole_score)
        on_plan(whole, whole_score)

    return hand


def _service_first_plan(problem: SchedulingProblem, params: SolverParams, plan: Schedule,
                        windows: list[MaintenanceWindow], t0: float, halt: Stop | None) -> Schedule:
    """The inner problem's ``plan`` (``optimization.windows.service_first``) as a plan of ``problem``: the windows
    placed first added, or an answer without a plan that says why."""
    if not plan.assignments:
        if params.explain:  # why, of the problem as given (the inner one's pins and holes would mislead)
            notes = {k: str(plan.stats[k]) for k in ("dispatch", "model_too_large") if k in plan.stats}
            plan.stats["no_plan_reasons"] = why_no_plan(problem, plan, t0 + params.time_limit_s, notes, stop=halt)
        return plan
    plan.maintenance = sorted(plan.maintenance + windows, key=lambda w: (w.machine, w.start))
    wrong = [v for w in windows for v in work_before_service(problem, plan.assignments, w.machine, w.start)]
    if wrong:  # work in a setup's time between two pins before a window (only where setups skip the triangle rule)
        s = Schedule(assignments=[], status="UNKNOWN", stats={**plan.stats, "method": "service_first"},
                     wall_s=plan.wall_s)
        if params.explain:
            s.stats["no_plan_reasons"] = [{"type": "service_first", "message": (
                f"no plan kept {wrong[0].message.split(':')[0]} free of work before its maintenance window: "
                "move the operations pinned before the window, or give failure_risk.service_first false")}]
        return s
    return plan


def _kept(problem: SchedulingProblem, params: SolverParams, plan: Schedule, start: Schedule | None) -> Schedule:
    """``plan``, or ``start`` where the solve from it ended worse or without a plan (a resumed solve stopped again
    at once, or one whose time left found nothing): a resumed job's answer is never worse than its saved plan."""
    if start is None:
        return plan
    stages = params.stages()
    if plan.assignments and not verify(problem, plan) and score(problem, plan, stages) <= score(problem, start, stages):
        plan.stats["resumed_from"] = list(score(problem, start, stages))
        return plan
    kept = replace(start, stats={**plan.stats, "method": "resumed", "resumed_plan_kept": True,
                                 "resumed_from": list(score(problem, start, stages)),
                                 "score": list(score(problem, start, stages))},
                   wall_s=plan.wall_s)
    kept.stats.pop("no_plan_reasons", None)
    kept.status = "FEASIBLE"
    kept.lower_bound = plan.lower_bound
    return kept


def _solve(problem: SchedulingProblem, params: SolverParams | None = None, stop: Stop | None = None,
           start: Schedule | None = None, on_plan: OnPlan | None = None) -> Schedule:
    params = params or SolverParams()
    t0 = time.perf_counter()

    def halted() -> bool:  # stopped: no further stage starts (the one running returns its best plan so far)
        return stop is not None and stop()

    deadline = t0 + params.time_limit_s
    stages = params.stages()
    final_deadline = deadline
    # moving work in time pays only where prices differ and an operation draws power
    en = problem.energy
    movable = en is not None and len(set(en.prices)) > 1 and any(o.power_kw > 0 for j in problem.jobs
                                                                 for o in j.operations)
    shift_s = params.energy_shift_share * params.time_limit_s if movable and _weighs_energy(problem, stages) else 0.0
    tie_s = params.energy_tiebreak_share * params.time_limit_s if movable and not shift_s else 0.0
    deadline -= shift_s + tie_s  # the search's own deadline; the energy shift gets the rest
    primary = next(iter(stages[0]))
    n_ops = problem.n_operations

    if params.strong_disjunctive is None:
        params = replace(params, strong_disjunctive=n_ops <= params.strong_max_ops)
    # makespan alone: CP-SAT's own search on the whole model beats a warm start from a dispatching rule and the
    # LNS here up to polish_max_ops (Taillard-sized 30x20 .. 100x20 shops; docs/scheduling.md)
    makespan_first = set(stages[0]) == {"makespan"} and not (problem.risk and problem.risk.policy == "penalty")
    pure_makespan = makespan_first and len(stages) == 1
    if params.full_subsolver is None and pure_makespan and n_ops > params.strong_max_ops and \
            len(problem.jobs) >= 2.5 * len(problem.machines):
        params = replace(params, full_subsolver="no_lp")

    def ok(s: Schedule) -> bool:
        return not verify(problem, s)

    said: list[tuple] = []  # the score of the last plan handed to on_plan
    saying = threading.Lock()  # CP-SAT's watcher hands plans too (Checkpoints.tick)

    def report(plan: Schedule | None) -> None:
        """Hands ``plan`` to ``on_plan`` where it is a checked plan better than the last one handed (between the
        stages, and from the searches through ``ticks``: a background job keeps it against a crash of its
        process)."""
        if on_plan is None or plan is None or not plan.assignments:
            return
        with saying:
            plan_score = score(problem, plan, stages)
            if (said and plan_score >= said[-1]) or not ok(plan):
                return
            said.append(plan_score)
            try:
                on_plan(plan, plan_score)
            except Exception:  # noqa: BLE001 - a checkpoint that failed does not fail the solve
                log.warning("a plan's checkpoint failed", exc_info=True)

    ticks = Checkpoints(report) if on_plan is not None else None  # inside the searches, one plan every 2 s at most

    no_dispatch: dict[str, str] = {}  # why no dispatching plan, for an answer without a plan
    if diagnose_proofs(problem):  # no plan can exist (a job past the horizon, clashing pins): say why at once
        return _no_plan(problem, "INFEASIBLE", {"method": "check", "n_operations": n_ops}, no_dispatch, t0, deadline,
                        params.explain, stop)
    if start is not None and not ok(start):  # a plan of the problem as given, not of this one (service first)
        log.warning("the saved plan is no plan of this problem (%s): solving from scratch", verify(problem, start)[0])
        start = None
    heur: Schedule | None
    rule_scores: dict = {}
    if start is not None:
        # resumed: the search goes on from the saved plan (a hint, the incumbent of LNS and tabu); it came from the
        # rules and the searches after them, so the rules (up to a quarter of the time) and the ATC variants below
        # do not run again on the time left
        heur = start
    else:
        try:
            heur, rule_scores = best_dispatch(problem, lambda s: score(problem, s, stages), rules_for(primary),
                                              time_budget_s=0.25 * params.time_limit_s, check=ok, deadline=deadline,
                                              stop=stop)
            if not ok(heur):
                heur = None
        except DispatchStopped:
            heur = None
        except ValueError as e:
            heur = None
            no_dispatch["dispatch"] = str(e)
    urgent = _pin_urgent(problem) if heur is None and not halted() else None
    if urgent is not None:
        # the rules place a job's steps with no regard to a pin further along it, and every plan then broke that
        # pin's precedence: with the job due by its pin (and weighty), due-date rules bring its steps forward
        def real(s: Schedule) -> Schedule:  # scored against the problem as given, not the urgent dues
            s.objective = evaluate(problem, s.assignments)
            return s

        try:
            alt, _ = best_dispatch(urgent, lambda s: score(problem, real(s), stages), ("atc", "edd", "atc_fast"),
                                   time_budget_s=0.1 * params.time_limit_s, check=ok, deadline=deadline, stop=stop)
            if ok(alt):
                heur = real(alt)
                no_dispatch.pop("dispatch", None)
        except ValueError:
            pass
    first_feasible_s = time.perf_counter() - t0 if heur is not None else None
    heur_score = score(problem, heur, stages) if heur is not None else None
    report(heur)
    strategy = params.strategy
    capped_probe = False
    if strategy == "auto":
        big_model = setup_pairs(problem) > params.polish_max_pairs
        full_max = params.polish_max_ops if pure_makespan and not big_model else params.full_max_ops
        strategy = "full" if n_ops <= full_max or heur is None else "lns"
        if strategy == "full" and not pure_makespan and problem.energy is not None and \
                problem.energy.peak_cap_kw is not None and terms_supported(_with_risk(problem, stages[0])):
            # under a peak power cap the whole model, from the dispatching plan, seldom improved on it in the time
            # (108 operations with calendars, 10 s: weighted tardiness 1,940 as dispatched; the capped dispatch
            # search then the model's polish: 809); the lns path runs both (planner's audit, docs/scheduling.md)
            strategy = "lns"
            capped_probe = True
    # a dispatching plan at the trivial bound (most often: no job late) is optimal: no search
    at_floor = len(stages) == 1 and heur_score is not None and heur_score[0] <= _floor(problem, stages[0])
    if at_floor:
        strategy = "dispatch"
    probe: tuple[Schedule | None, float | None, bool] = (None, None, False)
    if capped_probe and not at_floor and not halted():
        # the whole model first, for a fifth of the time: a small plan it proves optimal at once (the console's
        # sample) is answered then, not after the searches below; otherwise its plan, if better, is their start
        probe = solve_full(problem, params, _horizon(problem, heur, stages), heur,
                           t0 + PROBE_SHARE * params.time_limit_s, stop=stop, checkpoint=ticks)
        cand = probe[0]
        if cand is not None and cand is not heur and ok(cand) and score(problem, cand, stages) < heur_score:
            heur, heur_score = cand, score(problem, cand, stages)
        if probe[2] and cand is not None:
            strategy = "full"  # proven: none of the searches below runs
    tail_stats: dict = {}
    small_lns = strategy == "lns" and heur is not None and (
        params.lns_engine == "small" or (params.lns_engine == "auto" and (n_ops > params.polish_max_ops or
                                                                          "tardiness" in stages[0]))) and \
        lns_supported(problem, _with_risk(problem, stages[0]))
    # with a peak power cap the small sub-models and the sequence search (which re-time plans without it) do not
    # run, but the dispatch search does (the compiled scheme keeps the cap since 2026-12-06): it gets their time
    capped = problem.energy is not None and problem.energy.peak_cap_kw is not None
    capped_search = capped and strategy == "lns" and heur is not None and \
        terms_supported(_with_risk(problem, stages[0]))
    if (small_lns or capped_search) and "tardiness" in stages[0] and not halted():
        if start is None:  # big plans: more start plans from ATC variants (look-ahead, remaining work; ~1 s each
            alt, alt_scores = atc_variants(problem, lambda s: score(problem, s, stages),  # on 5k operations)
                                           time_budget_s=0.15 * params.time_limit_s, check=ok, stop=stop)
            rule_scores.update(alt_scores)
            if alt is not None and score(problem, alt, stages) < heur_score:
                heur, heur_score = alt, score(problem, alt, stages)
        if params.dispatch_search_share > 0 and not halted():
            # iterated greedy: re-dispatch the tail of the incumbent after random cut times (heuristics.tail_search)
            share = params.dispatch_search_share + (params.sequence_search_share if capped_search else 0.0)
            budget = min(share * params.time_limit_s,
                         deadline - time.perf_counter() - 0.5 -
                         (0.0 if capped_search else params.sequence_search_share * params.time_limit_s))
            alt = tail_search(problem, heur, lambda s: score(problem, s, stages), budget, seed=params.seed,
                              check=ok, workers=params.workers, stages=stages,
                              restart_rounds=params.tail_restart_rounds,
                              restart_share=params.tail_restart_share, stop=stop, checkpoint=ticks)
            tail_stats = {k: v for k, v in alt.stats.items() if k.startswith("tail_")}
            if score(problem, alt, stages) < heur_score and ok(alt):
                heur, heur_score = alt, score(problem, alt, stages)
        if params.sequence_search_share > 0 and not capped_search and not halted():
            budget = min(params.sequence_search_share * params.time_limit_s, deadline - time.perf_counter() - 0.3)
            if budget > 0.1:
                alt = sequence_search(problem, heur, stages[0], budget, seed=params.seed,
                                      workers=params.workers, check=ok, stop=stop)
                tail_stats.update({k: v for k, v in alt.stats.items() if k.startswith("seq_")})
                if score(problem, alt, stages) < heur_score:
                    heur, heur_score = alt, score(problem, alt, stages)
    report(heur)
    horizon = _horizon(problem, heur, stages)
    if shift_s and heur is not None and not halted():
        alt = energy_shift(problem, heur, stages, horizon, time.perf_counter() + shift_s / 2, stop=stop)
        if alt is not heur and ok(alt) and score(problem, alt, stages) < heur_score:
            heur, heur_score = alt, score(problem, alt, stages)
    best, bound, proven = heur, None, False
    if at_floor:
        proven = True
    elif probe[2] and probe[0] is not None:  # the whole model proved its plan optimal
        best, bound, proven = probe
    elif strategy == "lns" and heur is not None:
        lns_deadline = deadline
        polish = n_ops <= params.polish_max_ops and setup_pairs(problem) <= params.polish_max_pairs
        if polish:
            lns_deadline = t0 + 0.6 * params.time_limit_s
        if small_lns and not halted():
            best = lns_improve(problem, heur, stages[0], lns_deadline, workers=params.workers, seed=params.seed,
                               size=params.lns_size, stop=stop, checkpoint=ticks)
            if not ok(best) or score(problem, best, stages)[0] > score(problem, heur, stages)[0]:
                best = heur
        elif not halted():
            best = solve_lns(problem, params, horizon, heur, lns_deadline, stop=stop, checkpoint=ticks)
        report(best)
        if polish and time.perf_counter() < deadline - 0.2 and not halted():
            cand, bound, proven = solve_full(problem, params, horizon, best, deadline, stop=stop, checkpoint=ticks)
            best = cand if cand is not None else best
    else:
        dense = len(problem.jobs) >= 2.5 * len(problem.machines)
        share = params.tabu_share_dense if dense else params.tabu_share
        above = params.tabu_above_ops_long if len(problem.jobs) >= 2 * len(problem.machines) else params.tabu_above_ops
        use_tabu = params.strategy == "auto" and pure_makespan and share > 0 and n_ops > above and \
            tabu_supported(problem)
        cp_deadline = t0 + (1.0 - share) * params.time_limit_s if use_tabu else deadline
        start, probe_hit = heur, False
        # the tabu search's settings, the same for the probe and the closing phase
        tabu_kw = dict(seed=params.seed, workers=params.workers, neighbourhood=params.tabu_neighbourhood,
                       restart_after=params.tabu_restart_after, tenure=params.tabu_tenure)
        if use_tabu and dense and heur is not None and not halted():
            # the machine-load bound of a dense shop is often its optimum, and from a dispatching plan the tabu
            # search often reaches it in under a second (50x15, 100x20): try that first, for up to 5 % of the time
            lb0 = problem.trivial_lower_bound()
            probe = tabu_improve(problem, heur, min(0.05 * params.time_limit_s, 2.0), target=lb0, stop=stop,
                                 **tabu_kw)
            if probe is not heur and not verify(problem, probe) and probe.makespan < heur.makespan:
                start = probe
                horizon = _horizon(problem, start, stages)
            probe_hit = start.makespan <= lb0
        if probe_hit:
            best, bound, proven = start, float(start.makespan), True
        else:
            # the makespan alone: no warm start (docs/scheduling.md), except with setups, where CP-SAT's search
            # from scratch on the circuits found no plan better than the rule's in 20 s on flexible 30x10 shops
            best, bound, proven = solve_full(problem, params, horizon, start, cp_deadline,
                                             hint=not pure_makespan or problem.has_setups or start is not None,
                                             notes=no_dispatch,
                                             stop=stop, checkpoint=ticks)
        report(best)
        if use_tabu and best is not None and not proven and deadline - time.perf_counter() > 0.2 and not halted():
            floor = max(problem.trivial_lower_bound(), int(math.ceil(bound - 1e-6)) if bound is not None else 0)
            population = params.tabu_population if n_ops <= params.tabu_population_max_ops and not dense else 0
            cand = tabu_improve(problem, best, deadline - time.perf_counter() - 0.1, target=floor,
                                population=population, start_workers=params.tabu_population_start_workers,
                                stop=stop, checkpoint=ticks, **tabu_kw)
            if cand is not best and not verify(problem, cand) and cand.makespan < best.makespan:
                best = cand
            else:
                best.stats.update({k: v for k, v in cand.stats.items() if k.startswith("tabu_")})
        if best is None and heur is None and bound is None and proven:
            return _no_plan(problem, "INFEASIBLE", {"method": "cp-sat", "n_operations": n_ops}, no_dispatch, t0,
                            deadline, params.explain, stop)

    if shift_s and best is not None and not halted():
        alt = energy_shift(problem, best, stages, horizon, final_deadline, stop=stop)
        if alt is not best and ok(alt) and score(problem, alt, stages) < score(problem, best, stages):
            best = alt
    if tie_s and best is not None and not halted():
        tie_stages = [*stages, {"energy": 1.0}]
        alt = energy_shift(problem, best, tie_stages, horizon, final_deadline, stop=stop)
        if alt is not best and ok(alt) and score(problem, alt, tie_stages) < score(problem, best, tie_stages):
            best = alt
    if best is None:
        return _no_plan(problem, "UNKNOWN", {"method": strategy, "n_operations": n_ops, **no_dispatch}, no_dispatch,
                        t0, deadline, params.explain, stop)
    final = score(problem, best, stages)
    lb = None
    if makespan_first:
        lb = max(problem.trivial_lower_bound(), int(math.ceil(bound - 1e-6)) if bound is not None else 0)
    elif bound is not None:
        lb = bound
    else:  # no search bound: the trivial one (tardiness 0, the makespan's, every operation at the lowest price)
        lb = _floor(problem, stages[0])
    if _horizon_may_cut(problem, stages):
        # CP-SAT searched only up to the derived horizon: no proof, and its bound holds only inside it
        proven = False
        if stages[0].get("energy", 0) > 0:
            lb = _floor(problem, stages[0])
    status = "OPTIMAL" if proven or (lb is not None and final[0] <= lb and len(stages) == 1) else "FEASIBLE"
    best.status = status
    best.lower_bound = lb
    best.wall_s = time.perf_counter() - t0
    best.stats.update(
        n_operations=n_ops, strategy=strategy, horizon=horizon, first_feasible_s=first_feasible_s,
        dispatch_scores={k: list(v) if v is not None else None for k, v in rule_scores.items()},
        dispatch_best=list(heur_score or ()),
        score=list(final), objective=params.objective, strong_disjunctive=params.strong_disjunctive,
        full_subsolver=params.full_subsolver, **tail_stats,
    )
    if halted():
        best.stats["stopped"] = True
    return best
