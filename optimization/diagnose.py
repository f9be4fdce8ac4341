"""Why a solve gave no plan: the causes a planner can act on, for INFEASIBLE and UNKNOWN answers.

INFEASIBLE is CP-SAT's proof that no plan meets every hard rule; it does not say which rules clash. The hard rules a
planner sets are few: the horizon, pinned (or started) operations, the maintenance deadline and the peak power cap.
:func:`why_no_plan` checks what can be read off the problem directly (the horizon against the longest job, pins
against each other, the calendar and the horizon, and against the work that must come before them), then, with
the time left, solves the problem again without each of those rules in turn and reports each one whose removal
gives a plan: the rule that cannot be met as it is.

UNKNOWN means nothing was found within the time limit: the reasons say what stopped the dispatching rules or the
CP-SAT model (a peak cap that an operation never fits under, a model too big to build in the time).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from optimization.check import earliest_clear, verify
from optimization.problem import Job, Operation, OpKey, SchedulingProblem
from optimization.solution import Assignment, Schedule
from optimization.windows import earliest_window

RELAXATION_MAX_S = 2.0  # each relaxed solve's share of the time left, at most this
DIAGNOSE_MIN_S = 1.5  # the relaxed solves' time in all when the search left less (past the solve's time limit)
MAX_LISTED = 50  # jobs or clashes named in one answer
PINS_NAMED = 5  # the pinned operations a relaxation's message names (more: only how many)


def _reason(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, **extra}


def _pinned(problem: SchedulingProblem, pinned_only: bool = False) -> list[tuple[Job, Operation, Assignment]]:
    """The pinned and started operations at their places (``pinned_only``: not those already running)."""
    return [(j, o, Assignment(j.id, o.id, o.pinned_machine, o.pinned_start,
                              o.pinned_start + o.durations[o.pinned_machine]))
            for j in problem.jobs for o in j.operations
            if o.pinned_start is not None and o.pinned_machine is not None and not (pinned_only and o.started)]


def _where(job: Job, op: Operation) -> str:
    return f"job {job.id!r} operation {op.id!r}"


def _placed(op: Operation) -> str:
    """``started (already running) on M1 since t=-30`` / ``pinned on M1 at t=10``: the planner's words."""
    if op.started:
        return f"started (already running) on {op.pinned_machine} since t={op.started_at}"
    return f"pinned on {op.pinned_machine} at t={op.pinned_start}"


def _calendar_clashes(pins: list[tuple[Job, Operation, Assignment]], problem: SchedulingProblem,
                      ) -> list[dict[str, Any]]:
    """A pinned or started operation over a calendar entry it may not overlap, named with what to do about it."""
    out = []
    for job, op, a in pins:
        if a.end <= a.start:
            continue
        for d in problem.machine(a.machine).calendar:
            if (d.kind == "break" and op.can_span_break) or not (a.start < d.end and d.start < a.end):
                continue
            what = f"the {d.kind} [{d.start},{d.end}) on {a.machine}"
            head = f"{_where(job, op)} is {_placed(op)} and runs until t={a.end}, across {what}"
            if op.started and d.kind == "break":
                todo = ("it is given can_span_break false; a running operation runs through a break unless told "
                        "otherwise: leave can_span_break out (or set it true), or, if it does stop for the break, "
                        "give the part left after the break as an operation that is not started")
            elif op.started:
                todo = (f"a running operation cannot stop for it: if {a.machine} works on through it, shorten or "
                        f"remove that {d.kind} in the machine's calendar for this plan; if the operation pauses "
                        f"there, give the part left after the {d.kind} as an operation that is not started")
            else:
                todo = (f"move the pin to end by t={d.start} or to start at t={d.end} or later, or leave its time "
                        "to the planner (no pin)")
                if d.kind == "break":
                    todo += ", or let it run through breaks (can_span_break true)"
            out.append(_reason("pinned", f"{head}: {todo}", job=job.id, operation=op.id, machine=a.machine,
                               start=op.started_at, end=a.end, started=op.started,
                               calendar={"start": d.start, "end": d.end, "kind": d.kind}))
    return out


def _pin_clashes(problem: SchedulingProblem) -> list[dict[str, Any]]:
    """What the pinned operations alone break: overlaps, calendars, setups, precedences among pins, the horizon."""
    pins = _pinned(problem)
    if not pins:
        return []
    what = "pinned or started" if any(o.started for j in problem.jobs for o in j.operations) else "pinned"
    out = _calendar_clashes(pins, problem)[:MAX_LISTED]
    for v in verify(problem, Schedule(assignments=[a for _, _, a in pins])):
        if len(out) >= MAX_LISTED:
            break
        if v.kind == "missing" or v.kind in ("calendar", "maintenance"):
            # the other operations and the windows are not placed here; the calendar: _calendar_clashes
            continue
        if v.kind == "setup":
            # two pins too close for the setup between them are no proof: without the triangle inequality an
            # operation placed between them can need less setup in all (CP-SAT decides)
            continue
        out.append(_reason("pinned", f"the {what} operations alone break a rule: {v}", violation=v.kind))
    return out


def _early_pins(problem: SchedulingProblem) -> list[dict[str, Any]]:
    """Pinned or started operations placed before the work that must come first can end: the earliest start of
    each operation (its job's release, then the job's earlier operations and the cross-job precedences with their
    lags, each on its fastest machine after that machine's downtimes, a pinned one from its pin), ignoring the
    other work on the machines. A pin before its
    operation's earliest start is a proof that no plan exists. Two pins too close for the precedence between them
    are left to :func:`_pin_clashes` (the checker names them)."""
    keys = problem.op_keys
    if not any(problem.op(k).pinned_start is not None for k in keys):
        return []
    preds: dict[OpKey, list[tuple[OpKey, int]]] = {k: [] for k in keys}
    succs: dict[OpKey, list[OpKey]] = {k: [] for k in keys}
    for j in problem.jobs:
        for a, b in zip(j.operations, j.operations[1:], strict=False):
            preds[(j.id, b.id)].append(((j.id, a.id), 0))
            succs[(j.id, a.id)].append((j.id, b.id))
    for p in problem.precedences:
        preds[tuple(p.after)].append((tuple(p.before), p.min_lag))
        succs[tuple(p.before)].append(tuple(p.after))
    indeg = {k: len(v) for k, v in preds.items()}
    order = [k for k in keys if not indeg[k]]
    for k in order:  # Kahn's order (the problem is acyclic: checked when it was built)
        for s in succs[k]:
            indeg[s] -= 1
            if not indeg[s]:
                order.append(s)
    head: dict[OpKey, int] = {}
    via: dict[OpKey, tuple[OpKey, int] | None] = {}
    ends: dict[OpKey, int] = {}  # each operation's earliest end, its machines' downtimes counted
    blocks: dict[tuple[str, bool], tuple[list[int], list[int]]] = {}  # _fit's per machine
    late: dict[OpKey, int] = {}  # those that the downtimes make end later than their shortest duration would
    out = []
    for k in order:
        job, op = problem.job(k[0]), problem.op(k)
        h, why = job.release, None
        for pk, lag in preds[k]:
            t = ends[pk] + lag
            if t > h:
                h, why = t, (pk, lag)
        head[k], via[k] = h, why
        if op.pinned_start is not None:
            ends[k] = op.pinned_start + (op.durations[op.pinned_machine] if op.pinned_machine is not None
                                         else op.min_duration)
        else:  # on each machine after its downtimes (a trim shop off until 360 cannot trim before then)
            ends[k] = min(_fit(blocks, problem.machine(m), h, d, op.can_span_break) + d
                          for m, d in op.durations.items())
            if ends[k] > h + op.min_duration:
                late[k] = ends[k]
        if op.pinned_start is None or op.pinned_start >= h:
            continue
        if why is not None and problem.op(why[0]).pinned_start is not None:
            continue  # pin against pin: the checker's precedence message (_pin_clashes)
        if len(out) < MAX_LISTED:
            out.append(_reason("pinned", _early_message(problem, k, h, via, late), job=job.id, operation=op.id,
                               machine=op.pinned_machine, start=op.pinned_start, earliest=h, started=op.started))
    return out


def _fit(cache: dict, machine, start: int, duration: int, span: bool) -> int:  # noqa: ANN001 - problem.Machine
    """The earliest start from ``start`` of ``duration`` on ``machine`` clear of its downtimes (breaks spanned where
    ``span``), other work ignored: a bound no plan beats. ``cache`` keeps each machine's downtimes as sorted starts
    and ends (merged: ``Machine.blocking``), searched by bisection: a year's calendar walked from its first
    downtime for each of 10,000 operations took a second of every solve."""
    key = (machine.id, span)
    if key not in cache:
        down = machine.blocking(span)
        cache[key] = ([d.start for d in down], [d.end for d in down])
    return earliest_clear(cache[key], start, duration)


def _early_message(problem: SchedulingProblem, key: OpKey, earliest: int,
                   via: dict[OpKey, tuple[OpKey, int] | None], late: dict[OpKey, int] | None = None) -> str:
    """Why ``key`` cannot start before ``earliest``: the chain of work before it, from a release or a pin."""
    job, op = problem.job(key[0]), problem.op(key)
    chain: list[tuple[OpKey, int]] = []
    k = key
    while via[k] is not None:
        pk, lag = via[k]  # type: ignore[misc]
        chain.append((pk, lag))
        if problem.op(pk).pinned_start is not None:
            break
        k = pk
    chain.reverse()
    first = chain[0][0] if chain else key
    fo = problem.op(first)
    if fo.pinned_start is not None and first != key:
        fj = problem.job(first[0])
        origin = f"{_where(fj, fo)} is {_placed(fo)}"
    else:
        origin = f"job {first[0]!r} is released at t={problem.job(first[0]).release}"
    steps = []
    for pk, lag in chain:
        po = problem.op(pk)
        name = f"operation {pk[1]!r}" if pk[0] == key[0] else f"job {pk[0]!r} operation {pk[1]!r}"
        took = f"{name} takes {po.min_duration}" + (" (on its fastest machine)" if len(po.machines) > 1 else "")
        if late and pk in late:
            took += f", ending at t={late[pk]} after its machines' downtimes"
        steps.append(took + (f", then a lag of {lag}" if lag else ""))
    if len(steps) > 6:
        steps = [*steps[:2], f"... ({len(steps) - 4} more)", *steps[-2:]]
    if op.started:
        late = f"the work that must come before it cannot end before t={earliest}"
        todo = ("If that work is done, leave it out of the plan (or give it as started where it is still running); "
                "otherwise this operation cannot be running yet")
    else:
        late = f"it cannot start before t={earliest}"
        todo = f"Pin it at t={earliest} or later, or leave its time to the planner (no pin)"
    return f"{_where(job, op)} is {_placed(op)}, but {late}: {origin}, then {'; '.join(steps)}. {todo}"


def proofs(problem: SchedulingProblem) -> list[dict[str, Any]]:
    """Causes that prove, without a search, that no plan exists: a job that cannot end by the horizon, pinned
    operations that break a rule among themselves (overlap, calendar, precedence, peak power, horizon; not a
    setup, see :func:`_pin_clashes`), or a pin before the work that must come first can end
    (:func:`_early_pins`)."""
    return _horizon_checks(problem) + _pin_clashes(problem) + _early_pins(problem) + _power_room(problem)


def _power_room(problem: SchedulingProblem) -> list[dict[str, Any]]:
    """An operation that draws power needs a stretch of its shortest duration where the base load leaves it room
    under the peak cap (``base_at(t) + power_kw <= peak_cap_kw``), after its job's release (the horizon aside: the
    horizon's own check names it).
    The base load holds per energy period and its last value for every time after, so where that last value leaves
    no room and no earlier stretch is long enough, no plan exists however long the solve runs (an energy manager's
    plan answered UNKNOWN, "give the solve more time"). The first such operation is named."""
    en = problem.energy
    if en is None or en.peak_cap_kw is None or not en.base_load_kw:
        return []
    period, loads = en.period, en.base_load_kw
    end = len(loads) * period  # the last value stands from here on
    for job in problem.jobs:
        for op in job.operations:
            d = op.min_duration
            if op.power_kw <= 0 or d <= 0 or op.pinned_start is not None:
                continue  # pins: their own checks (_pin_clashes)
            fits = [kw + op.power_kw <= en.peak_cap_kw + 1e-9 for kw in loads]
            if fits[-1]:
                continue  # the time after the last period has room, as long as needed (a horizon: its own check)
            longest, run_start = 0, None
            for i, ok in enumerate(fits):
                lo, hi = max(i * period, job.release), (i + 1) * period
                if ok and hi > lo:
                    run_start = lo if run_start is None else run_start
                    longest = max(longest, hi - run_start)
                else:
                    run_start = None
                if longest >= d:
                    break
            if longest >= d:
                continue
            room = f"stretches of at most {longest} time units" if longest else "no stretch at all"
            return [_reason("peak_power", f"job {job.id!r} operation {op.id!r} ({op.power_kw:g} kW for {d} time "
                                          f"units at the least) fits under the peak power cap of {en.peak_cap_kw:g} "
                                          f"kW nowhere: with the base load, the cap leaves it {room} after the job's "
                                          f"release (t={job.release}), and the last base load ({loads[-1]:g} kW, "
                                          f"from t={end} on) leaves it none",
                            job=job.id, operation=op.id, peak_cap_kw=en.peak_cap_kw)]
    return []


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
    r = problem.risk
    for m in problem.maintenance_machines():  # a window, wherever it goes, ends at this at the earliest
        assert r is not None
        end = earliest_window(problem, m) + r.window_duration
        if end > h:
            return [_reason("horizon", f"machine {m}'s maintenance window of {r.window_duration} ends at {end} at the "
                                       f"earliest, after the plan's horizon {h}", machine=m, needs=end, horizon=h)]
    return []


def _relaxations(problem: SchedulingProblem) -> list[tuple[str, str, SchedulingProblem, dict[str, Any]]]:
    """(type, what is dropped, the problem without that rule, the rule's value as fields of the reason) for each
    hard rule the problem sets."""
    out = []
    if problem.horizon is not None:
        out.append(("horizon", f"the horizon {problem.horizon}", dataclasses.replace(problem, horizon=None),
                    {"horizon": problem.horizon}))
    if any(o.pinned_start is not None for j in problem.jobs for o in j.operations):
        # the pins the planner set; the operations already running only where there are none (they cannot move:
        # naming them beside the pins had sent planners after work that is under way)
        movable = any(o.pinned_start is not None and not o.started for j in problem.jobs for o in j.operations)
        jobs = tuple(dataclasses.replace(j, operations=tuple(
            dataclasses.replace(o, pinned_machine=None, pinned_start=None, started=False)
            if not (movable and o.started) else o for o in j.operations))
            for j in problem.jobs)
        pins = _pinned(problem, movable)
        listed = [{"job": j.id, "operation": o.id, "machine": o.pinned_machine, "start": o.started_at,
                   "started": o.started} for j, o, _ in pins[:PINS_NAMED]]
        out.append(("pinned", _pins_named(problem, pinned_only=movable), dataclasses.replace(problem, jobs=jobs),
                    {"pins": listed, "pin_count": len(pins)}))
    r = problem.risk
    if r is not None and r.policy == "window" and r.service_first and problem.maintenance_machines():
        out.append(("service_first", "servicing the risky machines before their work (service_first)",
                    dataclasses.replace(problem, risk=dataclasses.replace(r, service_first=False)),
                    {"machines": problem.maintenance_machines()}))
    if r is not None and r.policy == "window" and r.crew_limited(problem.maintenance_machines()):
        crews = f"{r.crews} maintenance crew{'s' if r.crews > 1 else ''}"
        out.append(("maintenance_crews", f"the limit of {crews} at once",
                    dataclasses.replace(problem, risk=dataclasses.replace(r, crews=None)), {"crews": r.crews}))
    if r is not None and r.policy == "window" and r.deadline is not None and problem.maintenance_machines():
        out.append(("maintenance_deadline", f"the maintenance deadline {r.deadline}",
                    dataclasses.replace(problem, risk=dataclasses.replace(r, deadline=None)), {"deadline": r.deadline}))
    en = problem.energy
    if en is not None and en.peak_cap_kw is not None:
        out.append(("peak_power", f"the peak power cap of {en.peak_cap_kw:g} kW",
                    dataclasses.replace(problem, energy=dataclasses.replace(en, peak_cap_kw=None)),
                    {"peak_cap_kw": en.peak_cap_kw}))
    return out


def _pins_named(problem: SchedulingProblem, most: int = PINS_NAMED, pinned_only: bool = False) -> str:
    """"the pinned and started operations' times", naming them when they are few (``pinned_only``: the pinned)."""
    pins = _pinned(problem, pinned_only)
    what = "pinned and started" if any(o.started for _, o, _ in pins) else "pinned"
    if len(pins) > most:
        return f"the {len(pins)} {what} operations' times"
    named = "; ".join(f"{_where(j, o)} {_placed(o)}" for j, o, _ in pins)
    return f"the {what} operations' times ({named})" if len(pins) > 1 else f"the {what} operation's time ({named})"


def why_no_plan(problem: SchedulingProblem, schedule: Schedule, deadline: float,
                notes: dict[str, str] | None = None, min_s: float = DIAGNOSE_MIN_S,
                stop=None) -> list[dict[str, Any]]:  # noqa: ANN001 - a heuristics.Stop or a threading.Event
    """The causes of an answer without a plan (``schedule.status`` INFEASIBLE or UNKNOWN), each a dict with a
    ``type`` and a ``message``. ``notes``: what the solve itself ran into (``dispatch``: why the dispatching rules
    gave no plan; ``model_too_large``: why the CP-SAT model was not built). Relaxed solves run only until
    ``deadline`` (a ``time.perf_counter()`` value), or for ``min_s`` seconds in all where that leaves less, and not
    once ``stop`` is set: a solve stopped before it had a plan says so (``stopped``) instead of running out of time.
    """
    from optimization.heuristics import as_stop
    from optimization.solver import SolverParams, solve  # the solver calls this module

    stop = as_stop(stop)
    notes = notes or {}
    out: list[dict[str, Any]] = []
    if stop is not None and stop() and schedule.status != "INFEASIBLE":
        out += proofs(problem)
        out.append(_reason("stopped", "the solve was stopped (e.g. its job was cancelled) before it found a plan"))
        return out
    if notes.get("dispatch"):
        out.append(_reason("dispatch", f"the dispatching rules found no plan: {notes['dispatch']}"))
    if notes.get("model_too_large"):
        out.append(_reason("model_too_large", notes["model_too_large"]))
    proven = proofs(problem)
    out += proven
    if schedule.status != "INFEASIBLE":
        if not proven:  # a proof says more time would not help
            out.append(_reason("time_limit", "no plan was found within the time limit; give the solve more time "
                                             "(time_limit_s), or run it as a background job"))
        return out
    relax = _relaxations(problem)
    found = {r["type"] for r in out}
    # a search that ran to its time limit before proving INFEASIBLE left the checks nothing: they get a little more
    # (the answer then comes up to DIAGNOSE_MIN_S after the limit), not only "no time was left to check"
    deadline = max(deadline, time.perf_counter() + min_s)
    for kind, what, relaxed, rule in relax:
        if kind in found:
            continue  # already explained by the direct checks
        left = deadline - time.perf_counter()
        stopped = stop is not None and stop()
        if left < 0.1 or stopped:
            why = "the solve was stopped before it checked" if stopped else "no time was left to check"
            out.append(_reason("unchecked", f"{why} whether {what} is the cause", relaxation=kind, **rule))
            continue
        try:
            s = solve(relaxed, SolverParams(time_limit_s=min(RELAXATION_MAX_S, left), objective="makespan",
                                            workers=1, explain=False), stop=stop)
        except ValueError:  # the relaxed problem is not a valid one (cannot happen for these); say nothing of it
            continue
        if s.assignments:
            out.append(_reason(kind, f"without {what} there is a plan (it ends at t={s.makespan})",
                               relaxation=kind, makespan=s.makespan, **rule))
    if not out:
        out.append(_reason("combination", "no single rule (horizon, pins, maintenance deadline, peak power cap) "
                                          "explains it alone: several of them together leave no plan"
                           if relax else "the problem's rules leave no plan"))
    return out
