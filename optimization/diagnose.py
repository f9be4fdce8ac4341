"""Why a solve gave no plan: the causes a planner can act on, for INFEASIBLE and UNKNOWN answers.

INFEASIBLE is CP-SAT's proof that no plan meets every hard rule; it does not say which rules clash. The hard rules a
planner sets are few: the horizon, pinned (or started) operations, the maintenance deadline and the peak power cap.
:func:`why_no_plan` checks what can be read off the problem directly (the horizon against the longest job, pins
against each other, the calendar and the horizon), then, with the time left, solves the problem again without each
of those rules in turn and reports each one whose removal gives a plan: the rule that cannot be met as it is.

UNKNOWN means nothing was found within the time limit: the reasons say what stopped the dispatching rules or the
CP-SAT model (a peak cap that an operation never fits under, a model too big to build in the time).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from optimization.check import verify
from optimization.problem import SchedulingProblem
from optimization.solution import Assignment, Schedule

RELAXATION_MAX_S = 2.0  # each relaxed solve's share of the time left, at most this
MAX_LISTED = 50  # jobs or clashes named in one answer


def _reason(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, **extra}


def _pin_clashes(problem: SchedulingProblem) -> list[dict[str, Any]]:
    """What the pinned operations alone break: overlaps, calendars, setups, precedences among pins, the horizon."""
    pins = []
    for j in problem.jobs:
        for o in j.operations:
            if o.pinned_start is not None and o.pinned_machine is not None:
                pins.append(Assignment(j.id, o.id, o.pinned_machine, o.pinned_start,
                                       o.pinned_start + o.durations[o.pinned_machine]))
    if not pins:
        return []
    what = "pinned or started" if any(o.started for j in problem.jobs for o in j.operations) else "pinned"
    out = []
    for v in verify(problem, Schedule(assignments=pins)):
        if v.kind == "missing" or (v.kind == "maintenance" and "no maintenance window" in v.message):
            continue  # the other operations and the windows are not placed here
        if v.kind == "setup":
            # two pins too close for the setup between them are no proof: without the triangle inequality an
            # operation placed between them can need less setup in all (CP-SAT decides)
            continue
        out.append(_reason("pinned", f"the {what} operations alone break a rule: {v}"))
        if len(out) == MAX_LISTED:
            break
    return out


def proofs(problem: SchedulingProblem) -> list[dict[str, Any]]:
    """Causes that prove, without a search, that no plan exists: a job that cannot end by the horizon, or pinned
    operations that break a rule among themselves (overlap, calendar, precedence, peak power, horizon; not a
    setup, see :func:`_pin_clashes`)."""
    return _horizon_checks(problem) + _pin_clashes(problem)


def _horizon_checks(problem: SchedulingProblem) -> list[dict[str, Any]]:
    h = problem.horizon
    if h is None:
        return []
    need = {j.id: j.release + sum(o.min_duration for o in j.operations) for j in problem.jobs}
    late = sorted((j for j in need if need[j] > h), key=lambda j: -need[j])
    if late:
        worst = late[0]
        more = f" ({len(late) - 1} more jobs cannot either)" if len(late) > 1 else ""
        return [_reason("horizon", f"job {worst} cannot end by the horizon {h}: its release plus its operations on "
                                   f"their fastest machines reach t={need[worst]}{more}",
                        jobs=late[:MAX_LISTED], needs=need[worst], horizon=h)]
    lb = problem.trivial_lower_bound()
    if lb > h:
        return [_reason("horizon", f"the work needs until t={lb} at least (the busiest machine or the machines' "
                                   f"total load), past the horizon {h}", needs=lb, horizon=h)]
    return []


def _relaxations(problem: SchedulingProblem) -> list[tuple[str, str, SchedulingProblem]]:
    """(type, what is dropped, the problem without that rule) for each hard rule the problem sets."""
    out = []
    if problem.horizon is not None:
        out.append(("horizon", f"the horizon {problem.horizon}", dataclasses.replace(problem, horizon=None)))
    if any(o.pinned_start is not None for j in problem.jobs for o in j.operations):
        jobs = tuple(dataclasses.replace(j, operations=tuple(
            dataclasses.replace(o, pinned_machine=None, pinned_start=None, started=False) for o in j.operations))
            for j in problem.jobs)
        out.append(("pinned", "the pinned and started operations' times", dataclasses.replace(problem, jobs=jobs)))
    r = problem.risk
    if r is not None and r.policy == "window" and r.deadline is not None and problem.maintenance_machines():
        out.append(("maintenance_deadline", f"the maintenance deadline {r.deadline}",
                    dataclasses.replace(problem, risk=dataclasses.replace(r, deadline=None))))
    en = problem.energy
    if en is not None and en.peak_cap_kw is not None:
        out.append(("peak_power", f"the peak power cap of {en.peak_cap_kw:g} kW",
                    dataclasses.replace(problem, energy=dataclasses.replace(en, peak_cap_kw=None))))
    return out


def why_no_plan(problem: SchedulingProblem, schedule: Schedule, deadline: float,
                notes: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The causes of an answer without a plan (``schedule.status`` INFEASIBLE or UNKNOWN), each a dict with a
    ``type`` and a ``message``. ``notes``: what the solve itself ran into (``dispatch``: why the dispatching rules
    gave no plan; ``model_too_large``: why the CP-SAT model was not built). Relaxed solves run only until
    ``deadline`` (a ``time.perf_counter()`` value)."""
    from optimization.solver import SolverParams, solve  # the solver calls this module

    notes = notes or {}
    out: list[dict[str, Any]] = []
    if notes.get("dispatch"):
        out.append(_reason("dispatch", f"the dispatching rules found no plan: {notes['dispatch']}"))
    if notes.get("model_too_large"):
        out.append(_reason("model_too_large", notes["model_too_large"]))
    out += proofs(problem)
    if schedule.status != "INFEASIBLE":
        out.append(_reason("time_limit", "no plan was found within the time limit; give the solve more time "
                                         "(time_limit_s), or run it as a background job"))
        return out
    relax = _relaxations(problem)
    found = {r["type"] for r in out}
    for kind, what, relaxed in relax:
        if kind in found:
            continue  # already explained by the direct checks
        left = deadline - time.perf_counter()
        if left < 0.1:
            out.append(_reason("unchecked", f"no time was left to check whether {what} is the cause"))
            continue
        try:
            s = solve(relaxed, SolverParams(time_limit_s=min(RELAXATION_MAX_S, left), objective="makespan",
                                            workers=1, explain=False))
        except ValueError:  # the relaxed problem is not a valid one (cannot happen for these); say nothing of it
            continue
        if s.assignments:
            out.append(_reason(kind, f"without {what} there is a plan (it ends at t={s.makespan})",
                               relaxation=kind, makespan=s.makespan))
    if not out:
        out.append(_reason("combination", "no single rule (horizon, pins, maintenance deadline, peak power cap) "
                                          "explains it alone: several of them together leave no plan"
                           if relax else "the problem's rules leave no plan"))
    return out
