"""Solve a problem and shape the answer the CLI and the API both give: a summary line and a full document
(Gantt rows, maintenance windows, late-job explanations, checker verdict)."""

from __future__ import annotations

import math
import re
import threading
from typing import Any

from optimization.check import verify
from optimization.explain import explain_late_jobs
from optimization.heuristics import _merged_blocks, setup_start_latest
from optimization.problem import MAX_WEIGHT, PlanClock, SchedulingProblem
from optimization.solution import Schedule
from optimization.solver import OBJECTIVES, SolverParams, solve

TERMS = ("tardiness", "makespan", "energy")  # what "weighted" and "lex" combine
MAX_SEED = 2**31 - 1  # CP-SAT's random_seed is an int32
MAX_WORKERS = 256


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


MAX_TIME_LIMIT_S = 7 * 24 * 3600  # a solve longer than a week is a typo (1e308 overflowed the deadline arithmetic)


def has_energy_term(problem: SchedulingProblem) -> bool:
    """Whether the energy cost can differ between plans: a tariff and an operation that draws power."""
    en = problem.energy
    return bool(en is not None and en.prices and any(o.power_kw > 0 for j in problem.jobs for o in j.operations))


def objective_terms(params: SolverParams) -> set[str]:
    """The terms the objective weighs (with a weight > 0)."""
    return {t for st in params.stages() for t, w in st.items() if w > 0}


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
    weights: dict[str, float] | None = None,
    order: list[str] | tuple[str, ...] | None = None,
) -> SolverParams:
    """Checked solver parameters. ``weights`` (objective "weighted": weight per real unit of each term) and
    ``order`` (objective "lex": the terms by priority) replace the defaults of ``SolverParams``."""
    if isinstance(time_limit_s, bool) or not isinstance(time_limit_s, int | float) or \
            not math.isfinite(time_limit_s) or not 0 < time_limit_s <= MAX_TIME_LIMIT_S:
        raise ValueError(f"the time limit must be a number of seconds > 0 and at most {MAX_TIME_LIMIT_S:,} (a week), "
                         f"got {time_limit_s!r}")
    if not _is_int(workers) or not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"workers must be an integer in 1..{MAX_WORKERS}, got {workers!r}")
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in 0..{MAX_SEED}, got {seed!r}")
    if strategy not in ("auto", "full", "lns"):
        raise ValueError(f"strategy must be auto, full or lns, got {strategy!r}")
    objective = objective or default_objective(problem)
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    extra: dict[str, Any] = {}
    if weights is not None:
        if objective != "weighted":
            raise ValueError('weights apply to the objective "weighted" only')
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise ValueError(f"unknown objective term {unknown[0]!r} in weights; use {', '.join(TERMS)}")
        for t, w in weights.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= MAX_WEIGHT:
                raise ValueError(f"weights: {t} must be a finite number in 0..{MAX_WEIGHT:g}, got {w!r}")
        if not any(w > 0 for w in weights.values()):
            raise ValueError("at least one weight must be > 0")
        extra["weights"] = {t: float(w) for t, w in weights.items()}
    if order is not None:
        if objective != "lex":
            raise ValueError('order applies to the objective "lex" only')
        order = tuple(order)
        unknown = sorted(set(order) - set(TERMS))
        if unknown:
            raise ValueError(f"unknown objective term {unknown[0]!r} in order; use {', '.join(TERMS)}")
        if not order or len(set(order)) != len(order):
            raise ValueError("order must list one or more distinct terms")
        extra["order"] = order
    params = SolverParams(
        time_limit_s=time_limit_s, workers=workers, seed=seed, objective=objective, strategy=strategy, **extra
    )
    if objective_terms(params) == {"energy"} and not has_energy_term(problem):
        what = f"objective {objective!r}" + (" weighs only the energy cost and" if objective != "energy" else "")
        raise ValueError(f"{what} needs energy settings: problem.energy.prices (a tariff) and operations with "
                         "power_kw > 0; without them every plan costs the same. Use makespan or tardiness")
    if objective_terms(params) == {"tardiness"} and not any(j.due is not None for j in problem.jobs):
        raise ValueError(f"objective {objective!r} weighs only tardiness and needs due dates: no job has a 'due', so "
                         "every plan is on time. Use makespan, or give the jobs their due dates")
    return params


def place_setups(problem: SchedulingProblem, schedule: Schedule, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds ``setup_start`` to each Gantt row with a setup: where the changeover lies, the latest stretch of working
    time before its operation (no downtime, no maintenance window; ``heuristics.setup_start_latest``). Mostly
    ``start - setup``; before a downtime when the operation waits behind it (a setup may be done before a holiday and
    the operation start after it)."""
    if not any(r["setup"] for r in rows):
        return rows
    ptr, bs, be = (a.tolist() for a in _merged_blocks(problem, list(schedule.maintenance), False))
    pos = {m.id: k for k, m in enumerate(problem.machines)}
    for r in rows:
        if r["setup"] and r["job"] is not None:
            k = pos[r["machine"]]
            lo, hi = ptr[k], ptr[k + 1]
            r["setup_start"] = setup_start_latest(bs[lo:hi], be[lo:hi], r["start"], r["setup"])
    return rows


def solve_document(problem: SchedulingProblem, params: SolverParams, *, stop: threading.Event | None = None,
                   start: Schedule | None = None, on_plan=None) -> tuple[dict[str, Any], dict[str, Any]]:  # noqa: ANN001
    """(summary line, full document) for a solve of ``problem``; ``stop`` set: the solve ends within about half a
    second with its best plan so far (``stats.stopped``). ``start``: a plan to go on from; ``on_plan``: called
    with each better plan between the stages (both: ``solver.solve``)."""
    schedule = solve(problem, params, stop=stop, start=start, on_plan=on_plan)
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
        "gantt": place_setups(problem, schedule, schedule.to_gantt(problem)),
        "maintenance": [vars(w) for w in schedule.maintenance],
        "late_jobs": explain_late_jobs(problem, schedule),
        "violation_messages": [str(v) for v in violations],
        "no_plan_reasons": schedule.stats.pop("no_plan_reasons", []),
        "notes": problem.notes(),
    }
    doc["clock"] = None  # without a clock: times are plan units only
    if problem.clock is not None:
        with_clock_times(problem.clock, doc)
    return line, doc


def with_clock_times(clock: PlanClock, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with the plan's times on the calendar: ``clock`` (its start, unit and the plan's end), and beside the
    integer times of each Gantt row, maintenance window and late job, a ``clock`` object of the same times as ISO
    8601 (the clock's UTC offset, or none: the plant's local time)."""
    def times(row: dict[str, Any], keys: tuple[str, ...]) -> None:
        row["clock"] = {k: clock.at(row[k]) for k in keys if isinstance(row.get(k), int | float)}

    doc["clock"] = {**clock.to_dict(),
                    "plan_end": clock.at(doc["makespan"]) if doc.get("makespan") is not None else None}
    for row in doc.get("gantt", ()):
        times(row, ("start", "end", "setup_start", "started_at"))
    for window in doc.get("maintenance", ()):
        times(window, ("start", "end"))
    for late in doc.get("late_jobs", ()):
        times(late, ("due", "end"))
    for reason in doc.get("no_plan_reasons", ()):
        on_clock_reason(clock, reason)
    return doc


# plan times in a no-plan reason's message ("t=130", "the horizon 60", "the maintenance deadline 10", "ends at 45",
# a calendar entry "[30,60)"); durations ("a window of 30", "takes 40") are not times and are left alone
_PLAN_TIME = re.compile(r"(?<![\w=])(t=|horizon |deadline |ends at )(-?\d+)(?![\d.])|\[(-?\d+),\s?(-?\d+)\)")
REASON_TIMES = ("needs", "horizon", "deadline", "start", "end", "earliest", "makespan")


def on_clock_reason(clock: PlanClock, reason: dict[str, Any]) -> dict[str, Any]:
    """A no-plan reason of a problem with a clock: each plan time in its ``message`` followed by the same time on
    the calendar (``t=130 (2026-12-08T08:10:00+09:00)``; the units stay), and a ``clock`` object of its time
    fields (``needs``, ``horizon``, ``deadline``, ...) as ISO 8601, as a Gantt row has."""
    def iso(match: re.Match) -> str:
        if match.group(2) is not None:
            at = clock.at(int(match.group(2)))
            return f"{match.group(0)} ({at})" if at else match.group(0)
        start, end = clock.at(int(match.group(3))), clock.at(int(match.group(4)))
        return f"{match.group(0)} ({start} to {end})" if start and end else match.group(0)

    if isinstance(reason.get("message"), str):
        reason["message"] = _PLAN_TIME.sub(iso, reason["message"])
    times = {k: clock.at(reason[k]) for k in REASON_TIMES if _is_int(reason.get(k))}
    if times:
        reason["clock"] = times
    return reason
