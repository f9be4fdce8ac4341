"""The original dispatching generator (O(ready) scans per step), kept as the tests' reference: the fast
:func:`optimization.heuristics.dispatch` must give exactly the same plans."""

from __future__ import annotations

import bisect
import math
import time
from dataclasses import dataclass

from optimization.heuristics import INF, RULES
from optimization.problem import SchedulingProblem
from optimization.solution import Assignment, MaintenanceWindow, Schedule, evaluate, with_setups


class _Power:
    """Power in use over time against the peak cap minus the forecast base load, as step functions kept as
    breakpoints (the last segment runs on forever); :meth:`push` scans it segment by segment. The original of
    ``heuristics._Power``, kept here so that the reference does not share the fast scheme's code."""

    def __init__(self, problem: SchedulingProblem) -> None:
        en = problem.energy
        assert en is not None and en.peak_cap_kw is not None
        self.cap = en.peak_cap_kw
        self.p = 0.0
        base = list(en.base_load_kw) or [0.0]
        self.ts = [k * en.period for k in range(len(base))]
        self.use = [0.0] * len(base)
        self.base = base

    def set_op(self, p: float) -> None:
        self.p = p

    def _split(self, t: int) -> int:
        k = bisect.bisect_right(self.ts, t) - 1
        if k >= 0 and self.ts[k] == t:
            return k
        src = max(k, 0)
        self.ts.insert(k + 1, t)
        self.use.insert(k + 1, self.use[src])
        self.base.insert(k + 1, self.base[src])
        return k + 1

    def push(self, t: int, dur: int) -> int:
        """Earliest start >= t where the operation's power fits under the cap for all of ``dur``."""
        if self.p <= 0 or dur <= 0:
            return t
        ts, use, base, p, cap = self.ts, self.use, self.base, self.p, self.cap + 1e-9
        n = len(ts)
        k = max(0, bisect.bisect_right(ts, t) - 1)
        while k < n and ts[k] < t + dur:
            if use[k] + base[k] + p > cap:
                if k + 1 == n:
                    raise ValueError(f"peak power cap too low: an operation of {p:g} kW never fits under "
                                     f"{self.cap:g} kW with the base load after t={ts[k]}")
                t = ts[k + 1]
            k += 1
        return t

    def add(self, t: int, dur: int, p: float) -> None:
        if dur <= 0:
            return
        a = self._split(t)
        b = self._split(t + dur)
        for k in range(a, b):
            self.use[k] += p


@dataclass
class _Entry:
    start: int
    end: int
    family: str | None
    is_op: bool


class _Timeline:
    """Busy entries of one machine, sorted by (start, end) (entries never overlap)."""

    def __init__(self, machine: str, problem: SchedulingProblem) -> None:
        self.m = machine
        self.entries: list[_Entry] = []
        self.starts: list[int] = []
        self.setups = problem.setups
        self.has_setups = problem.has_setups
        mach = problem.machine(machine)
        self.block_all = [(d.start, d.end) for d in mach.blocking(True)]
        self.block_nospan = [(d.start, d.end) for d in mach.blocking(False)]
        self.ends_all = [e for _, e in self.block_all]
        self.ends_nospan = [e for _, e in self.block_nospan]

    def insert(self, e: _Entry) -> None:
        """Sorted by (start, end): a zero-length operation goes before an entry that starts when it does (after it,
        its end hid that entry from the gap search, which takes the previous entry's end as a gap's start)."""
        i = bisect.bisect_right(self.starts, e.start)
        while i > 0 and self.starts[i - 1] == e.start and self.entries[i - 1].end > e.end:
            i -= 1
        self.starts.insert(i, e.start)
        self.entries.insert(i, e)

    def _prev_op(self, g: int) -> _Entry | None:
        for k in range(g - 1, -1, -1):
            if self.entries[k].is_op:
                return self.entries[k]
        return None

    def _next_op(self, g: int) -> _Entry | None:
        for k in range(g, len(self.entries)):
            if self.entries[k].is_op:
                return self.entries[k]
        return None

    def _push_blocks(self, t: int, dur: int, span: bool) -> int:
        blocks, ends = (self.block_all, self.ends_all) if span else (self.block_nospan, self.ends_nospan)
        while True:
            i = bisect.bisect_right(ends, t)
            if i < len(blocks) and blocks[i][0] < t + dur and dur > 0:
                t = blocks[i][1]
                continue
            return t

    def _setup_out(self, g: int, q: _Entry, s: int) -> int | None:
        """The latest end, for what goes into gap ``g``, that leaves the setup ``s`` before operation ``q`` its
        working time (after the maintenance windows in front of ``q``); None when none does; INF without a setup."""
        if s <= 0:
            return INF
        y = q.start - s
        while any(a < y + s and y < b for a, b in self.block_nospan):
            y = max(a for a, b in self.block_nospan if a < y + s and y < b) - s
        qi = next(i for i, e in enumerate(self.entries) if e is q)
        return None if qi > g and y < self.entries[qi - 1].end else y

    def earliest_fit(self, est: int, dur: int, fam: str | None, span: bool, power=None, window: bool = False) -> int:
        """Earliest start >= est of an operation of length ``dur`` in a gap of this machine."""
        n = len(self.entries)
        g = max(0, bisect.bisect_right(self.starts, est) - 1)
        while True:
            prev = self.entries[g - 1] if g > 0 else None
            nxt = self.entries[g] if g < n else None
            lo = est
            if prev is not None:
                lo = max(lo, prev.end)
            hi = nxt.start if nxt is not None else INF
            if dur == 0 and nxt is not None and nxt.end == nxt.start:
                hi -= 1  # at hi it would go after that zero-length operation (insert), not into this gap
            if self.has_setups and window:  # the setup between the operations around it stays possible, after it
                p, q = self._prev_op(g), self._next_op(g)
                if p is not None and q is not None:
                    y = self._setup_out(g, q, self.setups.time(self.m, p.family, q.family))
                    if y is None:
                        g += 1
                        continue
                    hi = min(hi, y)
            if self.has_setups and fam is not None:
                # a setup takes working time: after the entries before the gap, before the next operation (and after
                # the maintenance windows in front of it), in none of the machine's downtimes
                p = self._prev_op(g)
                if p is not None:
                    s = self.setups.time(self.m, p.family, fam)
                    if s > 0:
                        x = prev.end
                        while any(a < x + s and x < b for a, b in self.block_nospan):
                            x = min(b for a, b in self.block_nospan if a < x + s and x < b)
                        lo = max(lo, x + s)
                q = self._next_op(g)
                if q is not None:
                    y = self._setup_out(g, q, self.setups.time(self.m, fam, q.family))
                    if y is None:
                        g += 1
                        continue
                    hi = min(hi, y)
            t = lo
            while True:
                t2 = self._push_blocks(t, dur, span)
                if power is not None:
                    t2 = power.push(t2, dur)
                if t2 == t:
                    break
                t = t2
            if t + dur <= hi:
                return t
            g += 1
            if g > n:  # cannot happen: the last gap is unbounded
                return t


def dispatch_reference(problem: SchedulingProblem, rule: str = "mwkr", atc_k: float = 2.0, atc_k2: float = 1.0,
                       atc_work: float = 0.0, fixed: dict[tuple[str, str], tuple[str, int]] | None = None,
                       fixed_windows: list[MaintenanceWindow] | None = None,
                       job_bias: dict[str, float] | None = None) -> Schedule:
    """The original (slow, O(ready) scans per step: every ready operation is fitted anew at each step)
    generator; :func:`dispatch` gives the same plan faster. ``atc_k2``, ``atc_work``, ``fixed``, ``fixed_windows``
    and ``job_bias`` as in :func:`optimization.heuristics.dispatch`."""
    if rule not in RULES:
        raise ValueError(f"unknown dispatching rule {rule!r}; use one of {RULES}")
    t0 = time.perf_counter()
    keys = problem.op_keys
    idx = {k: i for i, k in enumerate(keys)}
    ops = [problem.op(k) for k in keys]
    jobs = {j.id: j for j in problem.jobs}
    n = len(keys)
    preds: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for a, b in problem.all_precedence_pairs():
        preds[idx[b]].append((idx[a], 0))
        succs[idx[a]].append(idx[b])
    for p in problem.precedences:
        b = idx[tuple(p.after)]
        preds[b] = [(a, p.min_lag if a == idx[tuple(p.before)] else lag) for a, lag in preds[b]]
    tail = [0] * n
    for j in problem.jobs:
        acc = 0
        for o in reversed(j.operations):
            acc += o.min_duration
            tail[idx[(j.id, o.id)]] = acc
    pbar = max(1.0, sum(o.min_duration for o in ops) / max(1, n))
    sbar = 1.0
    if problem.has_setups:
        vals = [s for s in problem.setups.matrix.values() if s > 0]
        sbar = max(1.0, sum(vals) / len(vals)) if vals else 1.0

    timelines = {m.id: _Timeline(m.id, problem) for m in problem.machines}
    power = _Power(problem) if problem.energy and problem.energy.peak_cap_kw else None

    placed: dict[int, tuple[str, int, int]] = {}
    end_of = [0] * n
    # pinned / started operations first, at their place
    for i, o in enumerate(ops):
        if o.pinned_machine is not None and o.pinned_start is not None:
            d = o.durations[o.pinned_machine]
            timelines[o.pinned_machine].insert(_Entry(o.pinned_start, o.pinned_start + d, o.family, True))
            placed[i] = (o.pinned_machine, o.pinned_start, o.pinned_start + d)
            end_of[i] = o.pinned_start + d
            if power is not None:
                power.add(o.pinned_start, d, o.power_kw)
    for k, (m, st0) in (fixed or {}).items():  # a fixed prefix of an earlier plan, kept as it is
        i = idx[k]
        if i in placed:
            continue
        d = ops[i].durations[m]
        timelines[m].insert(_Entry(st0, st0 + d, ops[i].family, True))
        placed[i] = (m, st0, st0 + d)
        end_of[i] = st0 + d
        if power is not None:
            power.add(st0, d, ops[i].power_kw)
    # maintenance windows from the failure-risk policy: as late as the deadline allows, else at the start
    windows: list[MaintenanceWindow] = []
    if fixed_windows is not None:
        for w in fixed_windows:
            timelines[w.machine].insert(_Entry(w.start, w.end, None, False))
            windows.append(w)
    elif problem.maintenance_machines():
        r = problem.risk
        assert r is not None
        for m in problem.maintenance_machines():
            tl = timelines[m]
            want = max(0, r.deadline - r.window_duration) if r.deadline is not None else 0
            t = tl.earliest_fit(want, r.window_duration, None, True, window=True)
            if r.deadline is not None and t + r.window_duration > r.deadline:
                t = tl.earliest_fit(0, r.window_duration, None, True, window=True)
            tl.insert(_Entry(t, t + r.window_duration, None, False))
            windows.append(MaintenanceWindow(m, t, t + r.window_duration))

    remaining_preds = [sum(1 for a, _ in preds[i] if a not in placed) for i in range(n)]
    ready = {i for i in range(n) if i not in placed and remaining_preds[i] == 0}
    cache: dict[int, tuple[int, int, str]] = {}  # i -> (completion, start, machine)

    def est_of(i: int) -> int:
        e = jobs[keys[i][0]].release
        for a, lag in preds[i]:
            e = max(e, end_of[a] + lag)
        return e

    def fit(i: int) -> tuple[int, int, str]:
        o = ops[i]
        e = est_of(i)
        best = None
        if power is not None:
            power.set_op(o.power_kw)
        for m in o.machines:
            d = o.durations[m]
            t = timelines[m].earliest_fit(e, d, o.family, o.can_span_break, power)
            c = (t + d, t, m)
            if best is None or c < best:
                best = c
        assert best is not None
        return best

    def priority(i: int, start: int, m: str) -> float:
        o = ops[i]
        job = jobs[keys[i][0]]
        d = o.durations[m]
        if rule == "spt":
            return d
        if rule == "mwkr":
            return -tail[i]
        if rule == "edd":
            due = job.due if job.due is not None else INF
            return due - tail[i] * 1e-6
        # ATC with setups (ATCS): weighted shortest processing time scaled by slack and setup urgency
        due = job.due if job.due is not None else 10**12
        slack = max(0.0, due - tail[i] - start)
        setup = 0
        if problem.has_setups:
            q = timelines[m]._prev_op(bisect.bisect_right(timelines[m].starts, start))
            setup = problem.setups.time(m, q.family if q else None, o.family)
        k = atc_k if rule == "atc" else 0.5
        w = max(job.weight, 1e-6)
        p_eff = d if not atc_work else (1.0 - atc_work) * d + atc_work * tail[i]
        if job_bias is not None:
            w *= job_bias.get(job.id, 1.0)
        val = (w / max(p_eff, 1)) * math.exp(-slack / (k * pbar)) * math.exp(-setup / (atc_k2 * sbar))
        return -val

    while ready:
        for i in ready:
            if i not in cache:
                cache[i] = fit(i)
        c_star = min(cache[i][0] for i in ready)
        cands = [i for i in ready if cache[i][1] < c_star or cache[i][0] == c_star]
        best_i = min(cands, key=lambda i: (priority(i, cache[i][1], cache[i][2]), cache[i][0], i))
        comp, start, m = cache.pop(best_i)
        o = ops[best_i]
        timelines[m].insert(_Entry(start, comp, o.family, True))
        if power is not None:
            power.add(start, comp - start, o.power_kw)
            cache.clear()
        else:
            for i in [i for i, v in cache.items() if v[2] == m]:
                del cache[i]
        placed[best_i] = (m, start, comp)
        end_of[best_i] = comp
        ready.discard(best_i)
        for s in succs[best_i]:
            if s in placed:
                continue
            remaining_preds[s] -= 1
            if remaining_preds[s] == 0:
                ready.add(s)
    if len(placed) != n:
        raise ValueError("dispatching could not place every operation (precedence with a pinned operation?)")
    assigns = [Assignment(keys[i][0], keys[i][1], m, s, e) for i, (m, s, e) in placed.items()]
    assigns = with_setups(problem, assigns)
    obj = evaluate(problem, assigns)
    return Schedule(assignments=assigns, status="FEASIBLE", makespan=int(obj["makespan"]),
                    lower_bound=problem.trivial_lower_bound(), objective=obj, wall_s=time.perf_counter() - t0,
                    stats={"method": f"dispatch:{rule}"}, maintenance=windows)
