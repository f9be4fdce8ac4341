"""Schedules as plain data (no OR-Tools import) and the metrics every part of the engine shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from optimization.problem import OpKey, SchedulingProblem

STATUSES = ("OPTIMAL", "FEASIBLE", "INFEASIBLE", "UNKNOWN", "MODEL_INVALID")


@dataclass(frozen=True)
class Assignment:
    job: str
    op: str
    machine: str
    start: int
    end: int
    setup: int = 0  # setup time right before ``start`` on ``machine``

    @property
    def key(self) -> OpKey:
        return (self.job, self.op)


CALENDAR_SERVICE = "failure risk (calendar maintenance)"  # a maintenance in the machine's calendar taken as its window


@dataclass(frozen=True)
class MaintenanceWindow:
    machine: str
    start: int
    end: int
    reason: str = "failure risk"


@dataclass
class Schedule:
    assignments: list[Assignment]
    status: str = "UNKNOWN"
    makespan: int | None = None
    lower_bound: int | None = None
    objective: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)
    maintenance: list[MaintenanceWindow] = field(default_factory=list)

    def by_key(self) -> dict[OpKey, Assignment]:
        return {a.key: a for a in self.assignments}

    def to_gantt(self, problem: SchedulingProblem | None = None) -> list[dict[str, Any]]:
        """Gantt-ready rows sorted by machine then start; ``late`` is True for the last operation of a late job.

        A started operation that began before t=0 is planned as its remaining part: its row runs from 0 (``start``
        and ``end`` are the plan's, as ``check.verify`` checks them) and adds ``started_at``, its real start (< 0).
        """
        last_late: set[OpKey] = set()  # the last operation (its routing's) of each late job
        began: dict[OpKey, int] = {}  # started before t=0: the real start
        if problem is not None:
            ends = job_ends(self.assignments)
            last_late = {(j.id, j.operations[-1].id) for j in problem.jobs
                         if j.due is not None and ends.get(j.id, 0) > j.due}
            began = {(j.id, o.id): o.started_at for j in problem.jobs for o in j.operations
                     if o.started and o.elapsed and o.started_at is not None}
        rows = []
        for a in self.assignments:
            row = {
                "machine": a.machine,
                "job": a.job,
                "operation": a.op,
                "start": a.start,
                "end": a.end,
                "setup": a.setup,
                "late": a.key in last_late,
            }
            if a.key in began:
                row["started_at"] = began[a.key]
            rows.append(row)
        risks = dict(problem.risk.risks) if problem is not None and problem.risk is not None else {}
        rows += [
            {"machine": w.machine, "job": None, "operation": "maintenance", "start": w.start, "end": w.end,
             "setup": 0, "late": False, "reason": w.reason,
             **({"risk": risks[w.machine]} if w.machine in risks else {})}
            for w in self.maintenance
        ]
        rows.sort(key=lambda r: (r["machine"], r["start"], r["end"]))
        return rows

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "makespan": self.makespan,
            "lower_bound": self.lower_bound,
            "wall_s": round(self.wall_s, 3),
            "objective": self.objective,
        }


def job_ends(assignments: list[Assignment]) -> dict[str, int]:
    ends: dict[str, int] = {}
    for a in assignments:
        ends[a.job] = max(ends.get(a.job, 0), a.end)
    return ends


def with_setups(problem: SchedulingProblem, assignments: list[Assignment]) -> list[Assignment]:
    """Recompute each assignment's ``setup`` from its machine predecessor."""
    by_machine: dict[str, list[Assignment]] = {}
    for a in assignments:
        by_machine.setdefault(a.machine, []).append(a)
    out = []
    for m, lst in by_machine.items():
        lst.sort(key=lambda a: (a.start, a.end))
        prev = None
        for a in lst:
            s = 0
            if prev is not None:
                s = problem.setups.time(m, problem.op(prev.key).family, problem.op(a.key).family)
            out.append(Assignment(a.job, a.op, a.machine, a.start, a.end, s))
            prev = a
    return out


def energy_profile(problem: SchedulingProblem, assignments: list[Assignment]) -> tuple[float, float]:
    """(energy cost, peak power incl. base load) of a plan; zeros without energy settings. The peak is the
    highest load while the plan runs, over ``[0, makespan)`` (as ``check.verify`` counts it against the cap): the
    base load forecast after the plan's end is not the plan's (:func:`base_load_peak` gives the forecast's own)."""
    en = problem.energy
    if en is None:
        return 0.0, 0.0
    events: dict[int, float] = {}
    cost = 0.0
    for a in assignments:
        p = problem.op(a.key).power_kw
        if p <= 0 or a.end <= a.start:
            continue
        events[a.start] = events.get(a.start, 0.0) + p
        events[a.end] = events.get(a.end, 0.0) - p
        t = a.start if en.prices else a.end  # no tariff: no cost
        cycle = en.period * len(en.prices)
        while t < a.end:  # walk tariff periods (whole cycles of the tariff at once)
            if cycle and t % cycle == 0 and a.end - t >= cycle:
                n = (a.end - t) // cycle
                cost += n * sum(pr * p * en.period * en.hours_per_unit for pr in en.prices)
                t += n * cycle
                continue
            nxt = min(a.end, (t // en.period + 1) * en.period)
            cost += en.price_at(t) * p * (nxt - t) * en.hours_per_unit
            t = nxt
    # peak: the op load is piecewise constant between events; the base load between period bounds of the forecast
    # (its last value holds after it)
    end = max((a.end for a in assignments), default=0)
    points = {t for t in events if t < end}
    if en.base_load_kw:
        points |= set(range(0, min(end, len(en.base_load_kw) * en.period), en.period))
    load = 0.0
    peak = 0.0
    for t in sorted(points):  # the events' power changes at or after ``end`` are all decreases: not needed
        load += events.get(t, 0.0)
        peak = max(peak, load + en.base_at(t))
    return round(cost, 4), round(peak, 4)


def base_load_peak(problem: SchedulingProblem) -> float:
    """The highest forecast base load of the problem's energy settings, at any time (also after the plan)."""
    en = problem.energy
    return round(max(en.base_load_kw), 4) if en is not None and en.base_load_kw else 0.0


def evaluate(problem: SchedulingProblem, assignments: list[Assignment]) -> dict[str, float]:
    """All objective values of a plan (whatever was optimised)."""
    ends = job_ends(assignments)
    makespan = max(ends.values()) if ends else 0
    wt = 0.0
    tt = 0
    late = 0
    for j in problem.jobs:
        if j.due is not None and j.id in ends and ends[j.id] > j.due:
            tard = ends[j.id] - j.due
            tt += tard
            wt += j.weight * tard
            late += 1
    cost, peak = energy_profile(problem, assignments)
    out = {
        "makespan": makespan,
        "weighted_tardiness": round(wt, 4),
        "total_tardiness": tt,
        "late_jobs": late,
        "energy_cost": cost,
        "peak_kw": peak,
    }
    if problem.energy is not None and problem.energy.base_load_kw:
        out["base_load_peak_kw"] = base_load_peak(problem)
    if problem.risk is not None and problem.risk.policy == "penalty":
        out["risk_penalty"] = round(risk_penalty(problem, assignments), 4)
    return out


def risk_penalty(problem: SchedulingProblem, assignments: list[Assignment]) -> float:
    r = problem.risk
    if r is None or r.policy != "penalty":
        return 0.0
    risky = {m: r.risks[m] for m in r.risky_machines()}
    return sum(r.penalty_per_unit * risky[a.machine] * (a.end - a.start) for a in assignments if a.machine in risky)
