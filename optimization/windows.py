"""Failure-risk maintenance windows that come before a risky machine's work (``FailureRisk.service_first``).

A machine the maintenance module calls likely to fail is serviced before it takes work: its window goes at the
earliest time it fits (around the machine's downtimes other than breaks, around operations already pinned or
running on it, and leaving the setups between those operations their working time), and nothing else starts on it
until the window ends. Every operation on the machine then comes after the window and the window draws no power, so
no later window is better for any objective, and every solver can plan the machine as down until then:
:func:`service_first` gives that problem and the windows. Within the window the machine is down as in a downtime
(an operation that takes no time may sit there, as in a downtime; ``check.verify``).

A maintenance already in the machine's calendar, at least as long as the window and over no later than the window
would be, is taken as the machine's service instead of a second one.

With ``FailureRisk.crews`` fewer than the risky machines, the windows take turns: the riskiest machine's first, each
next one at the earliest time its machine allows where fewer than ``crews`` windows (the calendar maintenances
taken as services included) are under way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from optimization.check import _merge, _setup_done, earliest_clear, peak_overlap
from optimization.problem import Downtime, SchedulingProblem
from optimization.solution import CALENDAR_SERVICE, MaintenanceWindow


@dataclass(frozen=True)
class _Pin:
    start: int
    end: int
    family: str | None
    started: bool = False


AFTER_PINS = "failure risk (after pinned work)"  # a window that the planner's pins put later
AFTER_CREWS = "failure risk (waiting for a crew)"  # a window that the crews' other windows put later


class NoWindow(Exception):
    """No window can be placed first: ``kind`` (``maintenance_deadline`` or ``horizon``), why in words, and as the
    no-plan reason's fields (``machine``, ``needs``: the earliest end, and ``deadline`` or ``horizon``)."""

    def __init__(self, kind: str, message: str, **fields: object) -> None:
        super().__init__(message)
        self.kind, self.message, self.fields = kind, message, fields

    def reason(self) -> dict:
        return {"type": self.kind, "message": self.message, **self.fields}


def _pins(problem: SchedulingProblem) -> dict[str, list[_Pin]]:
    """Each machine's pinned and started operations that take time, within the plan (from 0), by start."""
    out: dict[str, list[_Pin]] = {}
    for j in problem.jobs:
        for o in j.operations:
            if o.pinned_start is None or o.pinned_machine is None:
                continue
            end = o.pinned_start + o.durations[o.pinned_machine]
            if end > max(0, o.pinned_start):
                out.setdefault(o.pinned_machine, []).append(_Pin(max(0, o.pinned_start), end, o.family, o.started))
    return {m: sorted(ps, key=lambda p: (p.start, p.end)) for m, ps in out.items()}


def _with(down: tuple[list[int], list[int]], extra: tuple[int, int]) -> tuple[list[int], list[int]]:
    return _merge(list(zip(*down, strict=True)) + [extra])


def _place(problem: SchedulingProblem, machine, duration: int, pins: list[_Pin], t: int = 0) -> int:  # noqa: ANN001
    """The earliest start from ``t`` of a window of ``duration`` on ``machine``: clear of its downtimes other than
    breaks and of its pinned operations, and leaving each setup between two pinned operations a stretch of working
    time (as ``check.verify`` asks) between them."""
    hard = _merge([(d.start, d.end) for d in machine.blocking(True)] + [(p.start, p.end) for p in pins])
    every = _merge([(d.start, d.end) for d in machine.calendar if d.end > d.start])
    while True:
        t = earliest_clear(hard, t, duration)
        before = [p for p in pins if p.end <= t]
        after = [p for p in pins if p.start >= t + duration]
        if not before or not after:
            return t
        p, n = before[-1], after[0]
        s = problem.setups.time(machine.id, p.family, n.family)
        if s <= 0 or _setup_done(_with(every, (t, t + duration)), p.end, s) <= n.start:
            return t
        # the setup first, then the window (if the window still fits before n; else after n)
        t = max(t + 1, _setup_done(every, p.end, s))


def crewed_start(fits, duration: int, busy: list[tuple[int, int]], crews: int | None, t: int = 0) -> int:  # noqa: ANN001
    """The earliest start from ``t`` that ``fits(t)`` (the machine's earliest start from ``t``) allows and where
    fewer than ``crews`` of the windows ``busy`` are under way over the whole window. A start before the earliest end
    among the windows it meets is no better (every one of them is still under way there), so the search goes on from
    that end."""
    while True:
        t = fits(t)
        if crews is None:
            return t
        met = [(a, b) for a, b in busy if a < t + duration and t < b]
        if peak_overlap(met, t, t + duration)[0] < crews:
            return t
        t = min(b for _, b in met)


def earliest_window(problem: SchedulingProblem, machine_id: str) -> int:
    """The earliest start of ``machine_id``'s failure-risk window (as :func:`service_first` places it)."""
    r = problem.risk
    assert r is not None
    return _place(problem, problem.machine(machine_id), r.window_duration, _pins(problem).get(machine_id, []))


def service_first(problem: SchedulingProblem) -> tuple[SchedulingProblem, list[MaintenanceWindow]]:
    """The problem in which each risky machine (``service_first`` windows) is down from 0 to its window's end except
    where its pinned and started operations are and where the setups between them run, with no flexible window left
    to place; and those windows. The problem itself and no windows where there is nothing to place first.
    :class:`NoWindow` where a window cannot end by the risk's ``deadline`` or by the plan's ``horizon``."""
    r = problem.risk
    if r is None or not r.service_first:
        return problem, []
    risky = set(problem.maintenance_machines())
    if not risky:
        return problem, []
    pinned = _pins(problem)
    # the windows' turns: with fewer crews than windows the riskiest machine's first (without a limit the order
    # changes nothing)
    crews = r.crews if r.crew_limited(sorted(risky)) else None
    order = r.service_order(sorted(risky)) if crews is not None else [m.id for m in problem.machines if m.id in risky]
    placed: dict[str, MaintenanceWindow] = {}
    busy: list[tuple[int, int]] = []  # the windows placed so far: the crews' work
    for mid in order:
        mach = problem.machine(mid)
        pins = pinned.get(mach.id, [])

        def fits(t: int, pins: list[_Pin] = pins, mach=mach) -> int:  # noqa: ANN001
            return _place(problem, mach, r.window_duration, pins, t)

        t = crewed_start(fits, r.window_duration, busy, crews)
        end = t + r.window_duration
        window = MaintenanceWindow(mach.id, t, end)
        if any(not p.started for p in pins) and t > crewed_start(
                lambda t, mach=mach, started=[p for p in pins if p.started]: _place(problem, mach, r.window_duration,
                                                                                     started, t),
                r.window_duration, busy, crews):
            # the planner's pins hold the machine where the window would otherwise go (running work cannot move)
            window = replace(window, reason=AFTER_PINS)
        elif crews is not None and t > fits(0):
            window = replace(window, reason=AFTER_CREWS)  # the crews are on the riskier machines' windows then
        # a maintenance already in the calendar, long enough and over no later: that is the machine's service
        booked = [d for d in mach.calendar if d.kind == "maintenance" and d.end - d.start >= r.window_duration
                  and d.end <= end and not any(p.start < d.end and d.start < p.end for p in pins)]
        if booked:
            d = min(booked, key=lambda d: d.end)
            window = MaintenanceWindow(mach.id, d.start, d.end, reason=CALENDAR_SERVICE)
            end = d.end
        waits = (f", and {'the crew is' if crews == 1 else f'all {crews} crews are'} on other machines' windows "
                 "before then") if window.reason == AFTER_CREWS else ""
        crewed = {"crews": crews} if waits else {}  # the crews were busy: the answer's field says how many
        if r.deadline is not None and end > r.deadline:
            raise NoWindow("maintenance_deadline", f"machine {mach.id}'s maintenance window of {r.window_duration} "
                                                   f"ends at {end} at the earliest, after the maintenance deadline "
                                                   f"{r.deadline} (its downtimes and pinned operations come first"
                                                   f"{waits})",
                           machine=mach.id, needs=end, deadline=r.deadline, **crewed)
        if problem.horizon is not None and end > problem.horizon:
            raise NoWindow("horizon", f"machine {mach.id}'s maintenance window of {r.window_duration} ends at {end} "
                                      f"at the earliest, after the plan's horizon {problem.horizon}{waits}",
                           machine=mach.id, needs=end, horizon=problem.horizon, **crewed)
        placed[mid] = window
        busy.append((window.start, window.end))
    windows: list[MaintenanceWindow] = []
    machines = []
    for mach in problem.machines:
        if mach.id not in risky:
            machines.append(mach)
            continue
        pins = pinned.get(mach.id, [])
        window = placed[mach.id]
        end = window.end
        # working time kept before the window's end: its pinned operations and the setups between them
        every = _merge([(d.start, d.end) for d in mach.calendar if d.end > d.start] + [(window.start, end)])
        kept = [(p.start, p.end) for p in pins if p.start < end]
        for p, n in zip(pins, pins[1:], strict=False):
            s = problem.setups.time(mach.id, p.family, n.family)
            if s > 0 and p.end < end:
                done = _setup_done(every, p.end, s)
                kept.append((done - s, done))
        down, at = [], 0
        for a, b in zip(*_merge(kept), strict=True):
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
