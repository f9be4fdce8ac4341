"""Why is a job late? Walk back from its last operation along the constraints that fixed each start time.

At each operation the start is explained by what ends exactly there: the job's own previous operation
(precedence), the previous operation on the machine plus its setup (machine busy), a calendar or maintenance
window, the release date, or a pin. The walk follows the machine when another job held it, else the routing; the
machine that carries most of the chain is the bottleneck.
"""

from __future__ import annotations

from typing import Any

from optimization.check import _setup_done, machine_down
from optimization.problem import SchedulingProblem
from optimization.solution import Assignment, Schedule, job_ends

MAX_CHAIN = 200


def _power_users(problem: SchedulingProblem, a: Assignment, powered: list[tuple[Assignment, float]],
                 ) -> dict[str, Any] | None:
    """What the peak power cap holds ``a`` back by: at ``a.start - 1``, the one instant that starting a unit earlier
    adds to its run (the rest it covers already, under the cap), the operations drawing power and the base load,
    when they leave no room for ``a``'s power; else None (the cap is not what holds it there)."""
    en = problem.energy
    if en is None or en.peak_cap_kw is None or a.start <= 0 or a.end <= a.start:  # (no power: no cause)
        return None
    t = a.start - 1
    users = [(b, p) for b, p in powered if b.start <= t < b.end and b.key != a.key]
    base = en.base_at(t)
    load = base + sum(p for _, p in users)
    if load + problem.op(a.key).power_kw <= en.peak_cap_kw + 1e-6:
        return None
    return {"at": t, "load_kw": round(load, 4), "base_load_kw": round(base, 4),
            "operations": [{"job": b.job, "operation": b.op, "machine": b.machine, "power_kw": p}
                           for b, p in sorted(users, key=lambda x: (-x[1], x[0].job, x[0].op))]}


def _binding(problem: SchedulingProblem, schedule: Schedule, a: Assignment, by_key: dict,
             prev_on_machine: dict, powered: list[tuple[Assignment, float]] | None = None,
             ) -> tuple[list[dict[str, Any]], tuple | None]:
    job = problem.job(a.job)
    op = problem.op(a.key)
    reasons: list[dict[str, Any]] = []
    follow_job = follow_machine = None
    idx = [o.id for o in job.operations].index(a.op)
    preds = [((job.id, job.operations[idx - 1].id), 0)] if idx > 0 else []
    preds += [(tuple(p.before), p.min_lag) for p in problem.precedences if tuple(p.after) == a.key]
    for pk, lag in preds:
        pa = by_key.get(pk)
        if pa is not None and pa.end + lag == a.start:
            reasons.append({"type": "precedence", "job": pk[0], "operation": pk[1], "end": pa.end, "lag": lag})
            follow_job = follow_job or pk
    mp = prev_on_machine.get(a.key)
    ready = a.start  # where the machine's own time for this step began: the setup's start where one waited
    if mp is not None:
        setup = problem.setups.time(a.machine, problem.op(mp.key).family, op.family)
        # the setup runs in working time after the step before (check.verify): a downtime or a maintenance window
        # between them puts it after that, and then the step waited for the setup, not for the step before alone
        waited = setup > 0 and mp.end + setup < a.start and \
            _setup_done(machine_down(problem, schedule, a.machine), mp.end, setup) == a.start
        if mp.end + setup == a.start or waited:
            r = {"type": "machine_busy", "machine": a.machine, "job": mp.job, "operation": mp.op, "end": mp.end}
            reasons.append(r)
            if setup:
                reasons.append({"type": "setup", "machine": a.machine, "from_family": problem.op(mp.key).family,
                                "to_family": op.family, "setup": setup})
            follow_machine = mp.key
            if waited:
                ready = a.start - setup
    for d in problem.machine(a.machine).calendar:
        if d.end in (a.start, ready):
            reasons.append({"type": "maintenance" if d.kind == "maintenance" else "calendar", "machine": a.machine,
                            "kind": d.kind, "start": d.start, "end": d.end})
    for w in schedule.maintenance:
        if w.machine == a.machine and w.end in (a.start, ready):
            reasons.append({"type": "maintenance", "machine": a.machine, "start": w.start, "end": w.end,
                            "reason": w.reason})
    if a.start == job.release and job.release > 0:
        reasons.append({"type": "release", "release": job.release})
    if op.pinned_start is not None:
        pin = {"type": "pinned", "machine": op.pinned_machine, "start": op.pinned_start, "started": op.started}
        if op.elapsed:
            pin["started_at"] = op.started_at  # running since before t=0: its remaining part starts at 0
        reasons.append(pin)
    if not reasons:
        en = problem.energy
        held = None
        if en is not None and en.peak_cap_kw is not None and op.power_kw > 0:
            held = _power_users(problem, a, powered if powered is not None else _powered(problem, schedule))
        if held is not None:  # the cap leaves no room one unit earlier: that is what holds it
            reasons.append({"type": "peak_power", "cap_kw": en.peak_cap_kw, **held})
        elif a.start > 0:  # (the cap was named here even where the load left room, and for a start at 0)
            reasons.append({"type": "idle", "note": "could start earlier; not binding"})
    nxt = None
    if follow_machine is not None and follow_machine[0] != a.job:
        nxt = follow_machine
    elif follow_job is not None:
        nxt = follow_job
    elif follow_machine is not None:
        nxt = follow_machine
    return reasons, nxt


def _powered(problem: SchedulingProblem, schedule: Schedule) -> list[tuple[Assignment, float]]:
    """The plan's operations that draw power, with their power."""
    out = []
    for b in schedule.assignments:
        p = problem.op(b.key).power_kw
        if p > 0 and b.end > b.start:
            out.append((b, p))
    return out


def explain_late_jobs(problem: SchedulingProblem, schedule: Schedule, limit: int = 50) -> list[dict[str, Any]]:
    """For each late job (most weighted tardiness first, at most ``limit``): the critical chain and its causes.
    ``blocking_operations``: the other jobs' operations on the chain, and those whose power kept a step under the
    peak power cap from starting earlier."""
    by_key = schedule.by_key()
    powered = _powered(problem, schedule) if problem.energy is not None and \
        problem.energy.peak_cap_kw is not None else []
    prev_on_machine: dict = {}
    per_m: dict[str, list[Assignment]] = {}
    for a in schedule.assignments:
        per_m.setdefault(a.machine, []).append(a)
    for lst in per_m.values():
        lst.sort(key=lambda x: (x.start, x.end))
        for p, n in zip(lst, lst[1:], strict=False):
            prev_on_machine[n.key] = p
    ends = job_ends(schedule.assignments)
    late = [j for j in problem.jobs if j.due is not None and ends.get(j.id, 0) > j.due]
    late.sort(key=lambda j: -j.weight * (ends[j.id] - (j.due or 0)))
    out = []
    for job in late[:limit]:
        chain = []
        k: tuple | None = (job.id, job.operations[-1].id)
        seen = set()
        while k is not None and k not in seen and len(chain) < MAX_CHAIN:
            seen.add(k)
            a = by_key[k]
            reasons, nxt = _binding(problem, schedule, a, by_key, prev_on_machine, powered)
            chain.append({"job": a.job, "operation": a.op, "machine": a.machine, "start": a.start, "end": a.end,
                          "setup": a.setup, "binding": reasons})
            k = nxt
        chain.reverse()
        load: dict[str, int] = {}
        counts: dict[str, int] = {}
        for step in chain:
            load[step["machine"]] = load.get(step["machine"], 0) + step["end"] - step["start"]
            for r in step["binding"]:
                counts[r["type"]] = counts.get(r["type"], 0) + 1
        bottleneck = max(load, key=lambda m: load[m]) if load else None
        blockers = sorted({(s["job"], s["operation"]) for s in chain if s["job"] != job.id} |
                          {(u["job"], u["operation"]) for s in chain for r in s["binding"]
                           if r["type"] == "peak_power" for u in r.get("operations", ()) if u["job"] != job.id})
        out.append({
            "job": job.id,
            "due": job.due,
            "end": ends[job.id],
            "tardiness": ends[job.id] - (job.due or 0),
            "weight": job.weight,
            "bottleneck_machine": bottleneck,
            "binding_constraints": counts,
            "blocking_operations": [{"job": j, "operation": o} for j, o in blockers[:20]],
            "critical_chain": chain,
        })
    return out
