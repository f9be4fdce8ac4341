"""Failure-risk maintenance windows that come before a risky machine's work (``FailureRisk.service_first``).

A machine the maintenance module calls likely to fail is serviced before it takes work: its window goes at the
earliest time it fits (around the machine's downtimes other than breaks, and around operations already pinned or
running on it), and nothing else starts on it until the window ends. Placed so, the window is never worse for any
objective than a later one (it draws no power, and every operation on the machine comes after it), so every
solver plans the machine as if it were down until then: :func:`service_first` gives that problem and the windows.
"""

from __future__ import annotations

from dataclasses import replace

from optimization.problem import Downtime, SchedulingProblem
from optimization.solution import MaintenanceWindow


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def placed_ops(problem: SchedulingProblem) -> dict[str, list[tuple[int, int]]]:
    """Each machine's pinned and started operations as ``(start, end)`` within the plan (from 0)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for j in problem.jobs:
        for o in j.operations:
            if o.pinned_start is None or o.pinned_machine is None:
                continue
            end = o.pinned_start + o.durations[o.pinned_machine]
            out.setdefault(o.pinned_machine, []).append((max(0, o.pinned_start), end))
    return out


def service_first(problem: SchedulingProblem) -> tuple[SchedulingProblem, list[MaintenanceWindow]]:
    """The problem in which each risky machine (``service_first`` windows) is down from 0 to its window's end but
    for its pinned and started operations, with no flexible window left to place; and those windows. The problem
    itself and no windows where there is nothing to place first, or where a window cannot end by the risk's
    ``deadline`` or the plan's ``horizon`` (then no plan has one, and the solver's own model says why)."""
    r = problem.risk
    if r is None or not r.service_first:
        return problem, []
    risky = set(problem.maintenance_machines())
    if not risky:
        return problem, []
    pinned = placed_ops(problem)
    windows: list[MaintenanceWindow] = []
    machines = []
    for mach in problem.machines:
        if mach.id not in risky:
            machines.append(mach)
            continue
        own = _merged(pinned.get(mach.id, []))
        t = 0
        for a, b in _merged([(d.start, d.end) for d in mach.blocking(True)] + own):
            if a >= t + r.window_duration:
                break
            t = max(t, b)
        end = t + r.window_duration
        window = MaintenanceWindow(mach.id, t, end)
        # a maintenance already in the calendar, long enough and over no later: that is the machine's service
        booked = [d for d in mach.calendar if d.kind == "maintenance" and d.end - d.start >= r.window_duration
                  and d.end <= end and not any(a < d.end and d.start < b for a, b in own)]
        if booked:
            d = min(booked, key=lambda d: d.end)
            window = MaintenanceWindow(mach.id, d.start, d.end, reason="failure risk (calendar maintenance)")
            end = d.end
        if (r.deadline is not None and end > r.deadline) or (problem.horizon is not None and end > problem.horizon):
            return problem, []
        # down until the window ends, except where its own pinned or started operations are
        down, at = [], 0
        for a, b in own:
            if a >= end:
                break
            if a > at:
                down.append(Downtime(at, a, "maintenance"))
            at = max(at, b)
        if at < end:
            down.append(Downtime(at, end, "maintenance"))
        machines.append(replace(mach, calendar=mach.calendar + tuple(down)))
        windows.append(window)
    rest = {m: p for m, p in r.risks.items() if m not in risky}
    return replace(problem, machines=tuple(machines), risk=replace(r, risks=rest)), windows
