"""Independent schedule checker: recomputes every rule from the problem, shares no code with the solver."""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass

from optimization.problem import SchedulingProblem
from optimization.solution import CALENDAR_SERVICE, Schedule

KINDS = (
    "missing", "unknown", "eligibility", "duration", "overlap", "setup", "precedence", "release", "calendar",
    "maintenance", "pinned", "peak_power", "horizon",
)


@dataclass(frozen=True)
class Violation:
    kind: str
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def _merge(intervals: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted intervals, merged where they overlap or touch: (starts, ends)."""
    starts: list[int] = []
    ends: list[int] = []
    for a, b in sorted(intervals):
        if ends and a <= ends[-1]:
            ends[-1] = max(ends[-1], b)
        else:
            starts.append(a)
            ends.append(b)
    return starts, ends


def machine_down(problem: SchedulingProblem, schedule: Schedule, machine: str) -> tuple[list[int], list[int]]:
    """The machine's calendar downtimes of every kind and the plan's maintenance windows on it, merged (``_merge``):
    where a setup finds no working time (``_setup_done``)."""
    return _merge([(d.start, d.end) for d in problem.machine(machine).calendar if d.end > d.start]
                  + [(w.start, w.end) for w in schedule.maintenance if w.machine == machine and w.end > w.start])


def work_before_service(problem: SchedulingProblem, assignments, machine: str, start: int) -> list[Violation]:  # noqa: ANN001
    """Operations on ``machine`` that take time, are not pinned or running, and start before its service-first
    maintenance window at ``start`` (``FailureRisk.service_first``)."""
    return [Violation("maintenance", f"machine {machine}: job {a.job} op {a.op} starts at {a.start}, before its "
                                     f"maintenance window at {start} (service_first)")
            for a in assignments if a.machine == machine and a.end > a.start and a.start < start
            and problem.op(a.key).pinned_start is None]


def peak_overlap(intervals: list[tuple[int, int]], lo: float = -math.inf,
                 hi: float = math.inf) -> tuple[int, int | None]:
    """The most of ``intervals`` (start, end) under way at one time within [lo, hi), and the first time it is
    reached (None: none under way). An interval ending at a time is over before one starting then begins."""
    inside = [(a, b) for a, b in intervals if a < hi and lo < b]
    events = sorted([(max(a, lo), 1) for a, _ in inside] + [(min(b, hi), -1) for _, b in inside])
    n = most = 0
    at = None
    for t, step in events:
        n += step
        if n > most:
            most, at = n, t
    return most, at


def earliest_clear(down: tuple[list[int], list[int]], start: int, duration: int) -> int:
    """The earliest time from ``start`` at which ``duration`` fits clear of ``down`` (sorted, disjoint starts and
    ends: ``_merge``), searched by bisection."""
    if duration <= 0:
        return start
    starts, ends = down
    t = start
    i = bisect.bisect_right(ends, t)  # the first interval that ends after t
    while i < len(starts) and starts[i] < t + duration:
        t = max(t, ends[i])
        i += 1
    return t


def _setup_done(down: tuple[list[int], list[int]], end: int, setup: int) -> int:
    """When a setup begun at the earliest at ``end`` is done, in working time: a setup takes the machine (and its
    crew), so it lies in none of ``down`` (the machine's calendar downtimes of every kind and the plan's maintenance
    windows on it, merged: ``_merge``); it may wait before or after them."""
    starts, ends = down
    t = end
    i = bisect.bisect_right(ends, t)
    while i < len(starts) and starts[i] < t + setup:  # the next downtime cuts the stretch: start after it
        t = ends[i]
        i += 1
    return t + setup


def _setup_gap(problem: SchedulingProblem, ops: dict, m: str, p, n, down=((), ())) -> int:  # noqa: ANN001
    """How far ``n`` starts too early for the setup after ``p`` on machine ``m`` (0: in time), the setup in working
    time (``down``: the machine's downtimes, as ``_setup_done`` takes them)."""
    fa, fb = ops.get(p.key, (None, None))[1], ops.get(n.key, (None, None))[1]
    if fa is None or fb is None:
        return 0
    s = problem.setups.time(m, fa.family, fb.family)
    return max(0, (_setup_done(down, p.end, s) if s > 0 else p.end) - n.start)


def _order_instants(lst: list, gap) -> None:  # noqa: ANN001 - gap: (prev, next) -> int
    """Orders, in place, each run of zero-length operations at one instant on a machine (sorted by start and end,
    they tie) so that setups hold where some order lets them: a plan gives times, not the order of operations that
    take no time, and the generators and the local searches list such ties differently, so ordering them by their
    place in the plan reported setups a valid plan does not need. Runs of up to 6 are tried in every order."""
    i = 0
    while i < len(lst):
        j = i
        while j + 1 < len(lst) and lst[j + 1].start == lst[i].start and lst[j + 1].end == lst[i].end == lst[i].start:
            j += 1
        if j > i and j - i < 6:
            before, after = lst[i - 1] if i else None, lst[j + 1] if j + 1 < len(lst) else None

            def cost(order: tuple, before=before, after=after) -> int:  # noqa: ANN001
                chain = [x for x in (before, *order, after) if x is not None]
                return sum(gap(p, n) > 0 for p, n in zip(chain, chain[1:], strict=False))

            lst[i:j + 1] = min(itertools.permutations(lst[i:j + 1]), key=cost)
        i = j + 1


def verify(problem: SchedulingProblem, schedule: Schedule) -> list[Violation]:
    out: list[Violation] = []
    v = out.append
    by_key: dict[tuple[str, str], object] = {}
    for a in schedule.assignments:
        if (a.job, a.op) in by_key:
            v(Violation("unknown", f"job {a.job} op {a.op} assigned twice"))
        by_key[(a.job, a.op)] = a
    ops = {(j.id, o.id): (j, o) for j in problem.jobs for o in j.operations}
    for k in by_key:
        if k not in ops:
            v(Violation("unknown", f"job {k[0]} op {k[1]} is not in the problem"))
    machines = {m.id: m for m in problem.machines}

    for k, (job, op) in ops.items():
        a = by_key.get(k)
        if a is None:
            v(Violation("missing", f"job {k[0]} op {k[1]} not scheduled"))
            continue
        if a.machine not in op.durations:
            v(Violation("eligibility", f"job {k[0]} op {k[1]} on machine {a.machine}, not eligible"))
            continue
        if a.end - a.start != op.durations[a.machine]:
            v(Violation("duration", f"job {k[0]} op {k[1]} on {a.machine} lasts {a.end - a.start}, "
                                    f"needs {op.durations[a.machine]}"))
        if a.start < job.release:
            v(Violation("release", f"job {k[0]} op {k[1]} starts at {a.start} before release {job.release}"))
        if a.start < 0:
            v(Violation("horizon", f"job {k[0]} op {k[1]} starts at negative time {a.start}"))
        if problem.horizon is not None and a.end > problem.horizon:
            v(Violation("horizon", f"job {k[0]} op {k[1]} ends at {a.end} after horizon {problem.horizon}"))
        if op.pinned_machine is not None and a.machine != op.pinned_machine:
            v(Violation("pinned", f"job {k[0]} op {k[1]} moved from pinned machine {op.pinned_machine} to {a.machine}"))
        if op.pinned_start is not None and a.start != op.pinned_start:
            v(Violation("pinned", f"job {k[0]} op {k[1]} starts at {a.start}, pinned at {op.pinned_start}"))
        if a.end > a.start:
            for d in machines[a.machine].calendar:
                if d.kind == "break" and op.can_span_break:
                    continue
                if a.start < d.end and d.start < a.end:
                    kind = "maintenance" if d.kind == "maintenance" else "calendar"
                    v(Violation(kind, f"job {k[0]} op {k[1]} [{a.start},{a.end}) on {a.machine} overlaps "
                                      f"{d.kind} [{d.start},{d.end})"))

    # precedences: routing order and cross-job links
    lags = {(tuple(p.before), tuple(p.after)): p.min_lag for p in problem.precedences}
    for j in problem.jobs:
        for o1, o2 in zip(j.operations, j.operations[1:], strict=False):
            lags.setdefault(((j.id, o1.id), (j.id, o2.id)), 0)
    for (ka, kb), lag in lags.items():
        a, b = by_key.get(ka), by_key.get(kb)
        if a is not None and b is not None and b.start < a.end + lag:
            v(Violation("precedence", f"job {kb[0]} op {kb[1]} starts at {b.start} before job {ka[0]} op {ka[1]} "
                                      f"ends at {a.end} (+lag {lag})"))

    # machines: no overlap, setups between consecutive operations, maintenance windows
    per_machine: dict[str, list] = {}
    for a in by_key.values():
        if a.machine in machines:
            per_machine.setdefault(a.machine, []).append(a)
    for m, lst in per_machine.items():
        lst.sort(key=lambda x: (x.start, x.end))
        down = machine_down(problem, schedule, m)
        _order_instants(lst, lambda p, n, m=m, down=down: _setup_gap(problem, ops, m, p, n, down))
        for p, n in zip(lst, lst[1:], strict=False):
            if n.start < p.end:
                v(Violation("overlap", f"machine {m}: job {p.job} op {p.op} [{p.start},{p.end}) overlaps "
                                       f"job {n.job} op {n.op} [{n.start},{n.end})"))
                continue
            fa = ops.get(p.key, (None, None))[1]
            fb = ops.get(n.key, (None, None))[1]
            if fa is not None and fb is not None:
                s = problem.setups.time(m, fa.family, fb.family)
                if n.start < p.end + s:
                    v(Violation("setup", f"machine {m}: job {n.job} op {n.op} starts at {n.start}, needs setup {s} "
                                         f"after job {p.job} op {p.op} ending at {p.end}"))
                elif s > 0 and n.start < _setup_done(down, p.end, s):
                    v(Violation("setup", f"machine {m}: job {n.job} op {n.op} starts at {n.start}, but its setup {s} "
                                         f"after job {p.job} op {p.op} (ending at {p.end}) finds no working time "
                                         f"before then: downtime or maintenance takes the gap"))
    serviced = set(problem.maintenance_machines()) if problem.risk is not None and problem.risk.service_first \
        else set()
    for w in schedule.maintenance:
        for a in per_machine.get(w.machine, []):
            if a.end == a.start and w.machine in serviced:
                continue  # the machine is down until then, and one that takes no time may sit in a downtime
            if a.start < w.end and w.start < a.end:
                v(Violation("maintenance", f"machine {w.machine}: job {a.job} op {a.op} overlaps maintenance "
                                           f"[{w.start},{w.end})"))
    for m in problem.maintenance_machines():
        ws = [w for w in schedule.maintenance if w.machine == m]
        r = problem.risk
        if not ws:
            v(Violation("maintenance", f"machine {m}: failure risk above threshold but no maintenance window"))
        for w in ws:
            if r is not None and w.end - w.start < r.window_duration:
                v(Violation("maintenance", f"machine {m}: maintenance window shorter than {r.window_duration}"))
            if problem.horizon is not None and w.end > problem.horizon:
                v(Violation("horizon", f"machine {m}: maintenance window ends at {w.end} after horizon "
                                       f"{problem.horizon}"))
            if r is not None and r.deadline is not None and w.end > r.deadline:
                v(Violation("maintenance", f"machine {m}: maintenance window ends at {w.end} after deadline "
                                           f"{r.deadline}"))
        if r is not None and r.service_first and ws:
            out += work_before_service(problem, per_machine.get(m, []), m, min(w.start for w in ws))
    r = problem.risk
    if r is not None and r.crews is not None:
        # the crews: at most `crews` windows under way at once (the plant's own calendar maintenances not counted)
        n, t = peak_overlap([(w.start, w.end) for w in schedule.maintenance
                             if w.end > w.start and w.reason != CALENDAR_SERVICE])
        if n > r.crews:
            v(Violation("maintenance", f"{n} maintenance windows under way at {t}, more than the "
                                       f"{r.crews} crew{'s' if r.crews > 1 else ''} (failure_risk.crews)"))

    # peak power incl. forecast base load
    en = problem.energy
    if en is not None and en.peak_cap_kw is not None:
        events: dict[int, float] = {}
        for a in by_key.values():
            if (a.job, a.op) in ops:
                p = ops[(a.job, a.op)][1].power_kw
                if p > 0 and a.end > a.start:
                    events[a.start] = events.get(a.start, 0.0) + p
                    events[a.end] = events.get(a.end, 0.0) - p
        points = set(events)
        end = max([a.end for a in by_key.values()] + [0])
        # the base load changes only at period bounds within the forecast (its last value holds after it)
        points |= set(range(0, min(end, len(en.base_load_kw) * en.period) + 1, en.period))
        load = 0.0
        for t in sorted(points):
            load += events.get(t, 0.0)
            if load > 1e-9 and load + en.base_at(t) > en.peak_cap_kw + 1e-6:
                v(Violation("peak_power", f"power {load + en.base_at(t):.1f} kW at t={t} exceeds cap "
                                          f"{en.peak_cap_kw} kW"))
                break
    return out
