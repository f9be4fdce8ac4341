"""Large-neighbourhood search with small CP-SAT sub-models (for big plans).

Each iteration frees a few dozen to a few hundred operations (a time window over all machines, a time window on a
group of machines that share operations, or the operations around late jobs). The CP-SAT sub-model holds only the
freed operations: the rest of the incumbent stays as constants -- the fixed operations of each machine cut its time
line into gaps, a freed operation picks one gap on one eligible machine and pays the setups to the fixed neighbours
of that gap (an emptied gap whose two fixed neighbours need a longer setup between them must receive an operation
again); calendars and maintenance windows are fixed intervals; fixed job predecessors give release bounds. Fixed
successors are either hard deadlines (``hard`` moves) or may be pushed later (``relaxed`` moves: the sub-model
charges the job the delay). The plan is then re-timed by :func:`Shop.retime` (every operation as early as its job,
its machine predecessor with the setup, and the calendar allow, keeping each machine's sequence), scored exactly,
and kept when it is not worse. A move that does not pay off is simply dropped, so the search never gets worse
than its start.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from dataclasses import dataclass
from functools import partial

from ortools.sat.python import cp_model

from optimization.builder import OBJECTIVE_LIMIT, integer_objective
from optimization.heuristics import Checkpoints, Stop, as_stop, cp_solve, setup_end
from optimization.problem import SchedulingProblem
from optimization.solution import Assignment, MaintenanceWindow, Schedule, evaluate, with_setups

INF = 1 << 60


def supported(problem: SchedulingProblem, stage: dict[str, float]) -> bool:
    """The small sub-models handle tardiness and makespan (with a risk penalty) without a peak power cap."""
    if problem.energy is not None and problem.energy.peak_cap_kw is not None:
        return False
    return terms_supported(stage)


def terms_supported(stage: dict[str, float]) -> bool:
    """Whether a stage weighs only tardiness, makespan and the risk penalty (what the small sub-models and the
    compiled dispatch search score)."""
    return all(t in ("tardiness", "makespan", "risk") for t, w in stage.items() if w)


class Shop:
    """Index arrays of a problem for fast re-timing and scoring."""

    def __init__(self, problem: SchedulingProblem, maintenance: list[MaintenanceWindow]) -> None:
        p = problem
        self.p = p
        self.keys = p.op_keys
        idx = {k: i for i, k in enumerate(self.keys)}
        self.idx = idx
        n = self.n = len(self.keys)
        self.ops = [p.op(k) for k in self.keys]
        jobs = list(p.jobs)
        jpos = {j.id: t for t, j in enumerate(jobs)}
        self.jobs = jobs
        self.job = [jpos[k[0]] for k in self.keys]
        self.release = [jobs[self.job[i]].release for i in range(n)]
        self.preds: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        self.succs: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for j in jobs:
            for a, b in zip(j.operations, j.operations[1:], strict=False):
                ia, ib = idx[(j.id, a.id)], idx[(j.id, b.id)]
                self.preds[ib].append((ia, 0))
                self.succs[ia].append((ib, 0))
        for pr in p.precedences:
            ia, ib = idx[tuple(pr.before)], idx[tuple(pr.after)]
            self.preds[ib].append((ia, pr.min_lag))
            self.succs[ia].append((ib, pr.min_lag))
        self.last = [idx[(j.id, j.operations[-1].id)] for j in jobs]
        self.due = [j.due for j in jobs]
        self.weight = [j.weight for j in jobs]
        fams = sorted({o.family for o in self.ops if o.family is not None})
        fidx = {f: i for i, f in enumerate(fams)}
        self.fam = [fidx[o.family] if o.family is not None else -1 for o in self.ops]
        self.has_setups = p.has_setups
        self.setup_rows = {m.id: [[p.setups.time(m.id, a, b) for b in fams] for a in fams] for m in p.machines}
        maint: dict[str, list[tuple[int, int]]] = {}
        for w in maintenance:
            maint.setdefault(w.machine, []).append((w.start, w.end))
        self.maintenance = list(maintenance)
        # blocks an op may not overlap: (all downtimes but breaks) / (all downtimes), plus maintenance windows;
        # merged where they overlap or touch, as Machine.blocking merges the calendar: a maintenance window may lie
        # over a break, and overlapping fixed intervals in one no-overlap made every sub-model there infeasible
        self.blocks: dict[tuple[str, bool], list[tuple[int, int]]] = {}
        for m in p.machines:
            for span in (True, False):
                bl: list[tuple[int, int]] = []
                for a, b in sorted([(d.start, d.end) for d in m.blocking(span)] + maint.get(m.id, [])):
                    if bl and a <= bl[-1][1]:
                        bl[-1] = (bl[-1][0], max(bl[-1][1], b))
                    else:
                        bl.append((a, b))
                self.blocks[(m.id, span)] = bl
        self.block_ends = {k: [e for _, e in v] for k, v in self.blocks.items()}
        self.block_starts = {k: [b for b, _ in v] for k, v in self.blocks.items()}
        self.windows = {m: sorted(v) for m, v in maint.items()}
        self.pinned = [o.pinned_start is not None for o in self.ops]
        self.span = [o.can_span_break for o in self.ops]
        risk = p.risk
        self.risk_rate: dict[str, float] = {}
        if risk is not None and risk.policy == "penalty":
            self.risk_rate = {m: risk.penalty_per_unit * risk.risks[m] for m in risk.risky_machines()}

    def setup(self, m: str, a: int, b: int) -> int:
        fa, fb = self.fam[a], self.fam[b]
        if fa < 0 or fb < 0:
            return 0
        return self.setup_rows[m][fa][fb]

    def push(self, m: str, span: bool, t: int, d: int) -> int:
        """Earliest start >= t of length d that overlaps no block of machine m. A zero-length operation overlaps
        nothing and may lie in a calendar downtime, but not inside a maintenance window (``check.verify``; the
        dispatching's gap search keeps it out too): re-timed into one, it made the plan fail the checker."""
        if d <= 0:
            for a, b in self.windows.get(m, ()):  # sorted by start
                if a < t < b:
                    t = b
            return t
        bl, ends = self.blocks[(m, span)], self.block_ends[(m, span)]
        nb = len(bl)
        while True:
            i = bisect.bisect_right(ends, t)
            if i < nb and bl[i][0] < t + d:
                t = bl[i][1]
                continue
            return t

    def retime(self, mach: list[str], seqs: dict[str, list[int]]) -> list[int] | None:
        """Semi-active timing of fixed machine sequences; None when the sequences form a cycle or break a pin."""
        n = self.n
        mprev = [-1] * n
        mnext = [-1] * n
        for lst in seqs.values():
            for a, b in zip(lst, lst[1:], strict=False):
                mprev[b] = a
                mnext[a] = b
        indeg = [len(self.preds[i]) + (mprev[i] >= 0) for i in range(n)]
        stack = [i for i in range(n) if indeg[i] == 0]
        start = [0] * n
        end = [0] * n
        done = 0
        ops, preds, succs, release = self.ops, self.preds, self.succs, self.release
        while stack:
            i = stack.pop()
            done += 1
            m = mach[i]
            d = ops[i].durations[m]
            t = release[i]
            for a, lag in preds[i]:
                v = end[a] + lag
                if v > t:
                    t = v
            q = mprev[i]
            if q >= 0:
                su = self.setup(m, q, i)
                # the setup in working time: in no downtime (breaks too) and no maintenance window
                v = end[q]
                if su > 0:
                    v = setup_end(self.block_starts[(m, False)], self.block_ends[(m, False)], v, su)
                if v > t:
                    t = v
            t = self.push(m, self.span[i], t, d)
            ps = ops[i].pinned_start
            if ps is not None:
                if t > ps:
                    return None
                t = ps
            start[i] = t
            end[i] = t + d
            for b, _ in succs[i]:
                indeg[b] -= 1
                if indeg[b] == 0:
                    stack.append(b)
            b = mnext[i]
            if b >= 0:
                indeg[b] -= 1
                if indeg[b] == 0:
                    stack.append(b)
        return start if done == n else None

    def objective(self, mach: list[str], start: list[int], stage: dict[str, float]) -> float:
        val = 0.0
        ends = [start[i] + self.ops[i].durations[mach[i]] for i in self.last]
        if stage.get("tardiness"):
            wt = 0.0
            for t, c in enumerate(ends):
                due = self.due[t]
                if due is not None and c > due:
                    wt += self.weight[t] * (c - due)
            val += stage["tardiness"] * round(wt, 4)
        if stage.get("makespan"):
            # the makespan counts every job's last operation (as evaluate does)
            val += stage["makespan"] * max(start[i] + self.ops[i].durations[mach[i]] for i in range(self.n))
        if self.risk_rate:
            val += round(sum(self.risk_rate.get(mach[i], 0.0) * self.ops[i].durations[mach[i]]
                             for i in range(self.n)), 4)
        return round(val, 6)

    def schedule(self, mach: list[str], start: list[int], method: str) -> Schedule:
        assigns = [Assignment(k[0], k[1], mach[i], start[i], start[i] + self.ops[i].durations[mach[i]])
                   for i, k in enumerate(self.keys)]
        assigns = with_setups(self.p, assigns)
        obj = evaluate(self.p, assigns)
        return Schedule(assignments=assigns, status="FEASIBLE", makespan=int(obj["makespan"]), objective=obj,
                        stats={"method": method}, maintenance=list(self.maintenance))


@dataclass
class _State:
    mach: list[str]
    start: list[int]
    seqs: dict[str, list[int]]
    value: float


def _seqs(shop: Shop, mach: list[str], start: list[int]) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {m.id: [] for m in shop.p.machines}
    for i in range(shop.n):
        seqs[mach[i]].append(i)
    for lst in seqs.values():
        lst.sort(key=lambda i: (start[i], start[i] + shop.ops[i].durations[mach[i]]))
    return seqs


# ---- neighbourhoods ---------------------------------------------------------------------------------------------

class _Neighbourhoods:
    def __init__(self, shop: Shop, rng: random.Random) -> None:
        self.shop = shop
        self.rng = rng
        # machines that share operations (a work centre): the union of eligible machines of the ops on a machine
        group: dict[str, set[str]] = {m.id: {m.id} for m in shop.p.machines}
        for o in shop.ops:
            for x in o.machines:
                group[x].update(o.machines)
        self.group = {m: sorted(g) for m, g in group.items()}

    def _anchor(self, st: _State) -> int:
        """An operation of a late job (weighted by weighted tardiness), else a random one."""
        shop, rng = self.shop, self.rng
        late, wts = [], []
        for t, i in enumerate(shop.last):
            due = shop.due[t]
            c = st.start[i] + shop.ops[i].durations[st.mach[i]]
            if due is not None and c > due:
                late.append(t)
                wts.append((shop.weight[t] + 1e-3) * (c - due))
        if not late or rng.random() < 0.1:
            return rng.randrange(shop.n)
        t = rng.choices(late, weights=wts)[0]
        return rng.choice(self._by_job[t])

    def pick(self, st: _State, kind: str, size: int) -> set[int]:
        shop, rng = self.shop, self.rng
        if not hasattr(self, "_by_job"):
            self._by_job: list[list[int]] = [[] for _ in shop.jobs]
            for i in range(shop.n):
                self._by_job[shop.job[i]].append(i)
        a = self._anchor(st)
        t0 = st.start[a] - int(rng.random() * 4 * (shop.ops[a].min_duration + 1))
        if kind == "window":
            pool = range(shop.n)
        elif kind == "centre":
            pool = [i for m in self.group[st.mach[a]] for i in st.seqs[m]]
        else:  # jobs: the anchor's job and the operations near its operations on their machines
            free: set[int] = set()
            jobs = [shop.job[a]]
            while len(free) < size and len(jobs) < 20:
                for i in self._by_job[jobs[-1]]:
                    if shop.pinned[i]:
                        continue
                    free.add(i)
                    seq = st.seqs[st.mach[i]]
                    pos = seq.index(i)
                    for q in seq[max(0, pos - 3):pos + 4]:
                        if not shop.pinned[q]:
                            free.add(q)
                jobs.append(shop.job[self._anchor(st)])
            return free
        cands = sorted((st.start[i], i) for i in pool if st.start[i] >= t0 and not shop.pinned[i])
        return {i for _, i in cands[:size]}


# ---- the sub-model ----------------------------------------------------------------------------------------------

def _sub_model(shop: Shop, st: _State, free: set[int], stage: dict[str, float], hard: bool):
    """CP-SAT model over the free operations only. Returns (model, starts, machine literals, hint) or None."""
    m = cp_model.CpModel()
    start, mach, ops = st.start, st.mach, shop.ops
    flist = sorted(free, key=lambda i: start[i])
    f_lo = min(start[i] for i in flist)
    f_hi = max(start[i] + ops[i].durations[mach[i]] for i in flist)
    reach = f_hi + (f_hi - f_lo) + 60  # how far right a free op may move
    back = f_lo - (f_hi - f_lo) - 60  # how far left we look for gaps
    fixed_seq = {x: [i for i in lst if i not in free] for x, lst in st.seqs.items()}
    fixed_starts = {x: [start[i] for i in lst] for x, lst in fixed_seq.items()}
    s_var, e_var, lits_of, on = {}, {}, {}, {}
    dom: dict[int, tuple[int, int]] = {}
    gap_lits: dict[tuple[str, int], list] = {}
    hint: list[tuple[object, int]] = []
    for i in flist:
        o = ops[i]
        lb = shop.release[i]
        for a, lag in shop.preds[i]:
            if a not in free:
                lb = max(lb, start[a] + ops[a].durations[mach[a]] + lag)
        ub_end = INF
        if hard:
            for b, lag in shop.succs[i]:
                if b not in free:
                    ub_end = min(ub_end, start[b] - lag)
        dmin = min(o.durations[x] for x in o.machines)
        hi = max(start[i], min(reach, ub_end - dmin))
        s = m.new_int_var(lb, hi, f"s{i}")
        s_var[i] = s
        dom[i] = (lb, hi)
        hint.append((s, start[i]))
        lits = []
        ends = []
        for x in o.machines:
            d = o.durations[x]
            fs, fq = fixed_starts[x], fixed_seq[x]
            # gaps g = (fq[g-1], fq[g]) intersecting [max(lb, back), hi + d]
            g_first = max(0, bisect.bisect_right(fs, max(lb, back)) - 1)
            g_last = bisect.bisect_right(fs, hi + d)
            inc_g = bisect.bisect_right(fs, start[i]) if mach[i] == x else -1
            x_lits = []
            for g in range(g_first, min(g_last, len(fq)) + 1):
                a = fq[g - 1] if g > 0 else -1
                b = fq[g] if g < len(fq) else -1
                glo = start[a] + ops[a].durations[mach[a]] + shop.setup(x, a, i) if a >= 0 else 0
                ghi = start[b] - shop.setup(x, i, b) if b >= 0 else INF
                if g != inc_g and (min(ghi, hi + d) - max(glo, lb) < d):
                    continue
                lit = m.new_bool_var(f"g{i}_{x}_{g}")
                if glo > lb:
                    m.add(s >= glo).only_enforce_if(lit)
                if ghi < INF:
                    m.add(s + d <= ghi).only_enforce_if(lit)
                x_lits.append(lit)
                gap_lits.setdefault((x, g), []).append(lit)
                hint.append((lit, int(g == inc_g)))
            if not x_lits:
                continue
            if len(x_lits) == 1:
                p = x_lits[0]
            else:
                p = m.new_bool_var(f"on{i}_{x}")
                m.add(p == sum(x_lits))
                hint.append((p, int(mach[i] == x)))
            on[(i, x)] = (p, m.new_optional_fixed_size_interval_var(s, d, p, f"itv{i}_{x}"))
            lits.append(p)
            ends.append((d, p))
        if not lits:
            return None
        m.add_exactly_one(lits)
        lits_of[i] = [(x, on[(i, x)][0]) for x in o.machines if (i, x) in on]
        e = m.new_int_var(lb, hi + max(d for d, _ in ends), f"e{i}")
        m.add(e == s + sum(d * p for d, p in ends))
        e_var[i] = e
        if ub_end < INF:
            m.add(e <= ub_end)
    # emptied gaps whose fixed neighbours need more setup between them than they have
    for x, fq in fixed_seq.items():
        for g in range(1, len(fq)):
            a, b = fq[g - 1], fq[g]
            if start[b] - (start[a] + ops[a].durations[mach[a]]) < shop.setup(x, a, b):
                lits = gap_lits.get((x, g))
                if not lits:
                    return None
                m.add_bool_or(lits)
    # machines: calendars, free-free no overlap and setups
    per_x: dict[str, list[int]] = {}
    for (i, x) in on:
        per_x.setdefault(x, []).append(i)
    lo_t = min(lo for lo, _ in dom.values())
    hi_t = max(hi for _, hi in dom.values()) + max(max(o.durations.values()) for o in (ops[i] for i in flist))
    for x, items in per_x.items():
        blocks = {}
        for span in (True, False):
            blocks[span] = [m.new_fixed_size_interval_var(a, b - a, "") for a, b in shop.blocks[(x, span)]
                            if b > lo_t and a < hi_t]
        spanning = [on[(i, x)][1] for i in items if shop.span[i]]
        non_span = [on[(i, x)][1] for i in items if not shop.span[i]]
        if not spanning:
            m.add_no_overlap(non_span + blocks[False])
        else:
            m.add_no_overlap(non_span + spanning + blocks[True])
            brk = [(a, b) for a, b in shop.blocks[(x, False)] if (a, b) not in set(shop.blocks[(x, True)])
                   and b > lo_t and a < hi_t]
            if brk and non_span:
                m.add_no_overlap(non_span + [m.new_fixed_size_interval_var(a, b - a, "") for a, b in brk])
        if shop.has_setups:
            for u in range(len(items)):
                for v in range(u + 1, len(items)):
                    i, j = items[u], items[v]
                    sij, sji = shop.setup(x, i, j), shop.setup(x, j, i)
                    if sij == 0 and sji == 0:
                        continue
                    di, dj = ops[i].durations[x], ops[j].durations[x]
                    if dom[i][1] + di + sij <= dom[j][0]:
                        continue  # i always fits before j
                    if dom[j][1] + dj + sji <= dom[i][0]:
                        continue
                    bef = m.new_bool_var("")
                    pi, pj = on[(i, x)][0], on[(j, x)][0]
                    m.add(s_var[j] >= s_var[i] + di + sij).only_enforce_if([bef, pi, pj])
                    m.add(s_var[i] >= s_var[j] + dj + sji).only_enforce_if([~bef, pi, pj])
                    if mach[i] == x and mach[j] == x:
                        hint.append((bef, int(start[i] < start[j] or (start[i] == start[j] and i < j))))
    # precedences between free ops
    for i in flist:
        for a, lag in shop.preds[i]:
            if a in free:
                m.add(s_var[i] >= e_var[a] + lag)
    # objective: job completions (free last op, or the old completion plus the delay pushed onto a fixed successor)
    touched = sorted({shop.job[i] for i in flist})
    free_of_job: dict[int, list[int]] = {}
    for i in flist:
        free_of_job.setdefault(shop.job[i], []).append(i)
    # the latest completion of a touched job: a free last operation ends by reach + its duration, a fixed one moves
    # by at most reach (times may pass 10**9, the bound these variables had: such sub-models were infeasible)
    top = reach + max(start[i] + ops[i].durations[mach[i]] for i in range(shop.n)) + \
        max(max(ops[i].durations.values()) for i in flist)
    tw, mw = stage.get("tardiness", 0.0), stage.get("makespan", 0.0)
    parts, comp = [], {}
    for t in touched:
        li = shop.last[t]
        c_old = start[li] + ops[li].durations[mach[li]]
        if li in free:
            comp[t] = e_var[li]
        else:
            delays = []
            for i in free_of_job[t]:
                for b, lag in shop.succs[i]:
                    if b not in free:
                        delays.append(e_var[i] + lag - start[b])
                        delays.append(e_var[i] - start[i] - ops[i].durations[mach[i]])
            if delays:
                # the rest of the job moves with its first fixed successor (optimistic when it moves earlier;
                # the re-timing decides)
                dv = m.new_int_var(-reach, reach, "")
                m.add_max_equality(dv, delays)
                comp[t] = c_old + dv
            else:
                comp[t] = c_old
        due = shop.due[t]
        if due is not None and shop.weight[t] > 0 and tw:
            tv = m.new_int_var(0, max(0, top - due), "")
            m.add(tv >= comp[t] - due)
            parts.append((tw * shop.weight[t], tv, max(0, top - due)))
    if mw:
        others = [start[shop.last[t]] + ops[shop.last[t]].durations[mach[shop.last[t]]]
                  for t in range(len(shop.jobs)) if t not in set(touched)]
        mk = m.new_int_var(max(others, default=0), top, "mk")
        m.add_max_equality(mk, [comp[t] if not isinstance(comp[t], int) else m.new_constant(comp[t])
                                for t in touched] + [m.new_constant(max(others, default=0))])
        parts.append((mw, mk, top))
    parts += [(shop.risk_rate[x] * ops[i].durations[x], on[(i, x)][0], 1) for (i, x) in on if x in shop.risk_rate]
    # integer coefficients: 1000 * K * the real objective (K as the full model's, integer_objective: the touched
    # jobs' weights whole, and all of it inside int64 with the secondary goal added), so that it comes first
    primary, _, _ = integer_objective(parts, OBJECTIVE_LIMIT // 1000)
    obj = 1000 * primary + sum(e_var.values())  # secondary: keep the freed operations early
    m.minimize(obj)
    for var, val in hint:
        m.add_hint(var, val)
    return m, s_var, lits_of


def improve(problem: SchedulingProblem, incumbent: Schedule, stage: dict[str, float], deadline: float,
            workers: int = 2, seed: int = 0, size: int = 60, log=None, sub_limit: float = 0.5,
            max_size: int = 400, hard_share: float = 0.85, stop: Stop | threading.Event | None = None,
            checkpoint: Checkpoints | None = None) -> Schedule:
    """Run the small-sub-model LNS until ``deadline``; returns a plan never worse than ``incumbent`` on ``stage``.
    ``stop`` (``heuristics.Stop``, or an event): once set, the sub-solve running stops (``heuristics.cp_solve``) and
    the plan so far comes back. ``checkpoint``: offered each better plan (``heuristics.Checkpoints``: it builds the
    plan only when one is due)."""
    stop = as_stop(stop)
    shop = Shop(problem, incumbent.maintenance)
    by_key = incumbent.by_key()
    mach = [by_key[k].machine for k in shop.keys]
    start0 = [by_key[k].start for k in shop.keys]
    seqs = _seqs(shop, mach, start0)
    start = shop.retime(mach, seqs) or start0  # compaction (never later)
    st = _State(mach, start, _seqs(shop, mach, start), shop.objective(mach, start, stage))
    first_value = shop.objective(mach, start0, stage)
    if st.value > first_value:
        start = start0
        st = _State(mach, start0, seqs, first_value)
    rng = random.Random(seed)
    nb = _Neighbourhoods(shop, rng)
    kinds = ["window", "window", "window", "jobs", "window", "centre"]
    sizes = dict.fromkeys(kinds, max(8, size))
    gains = dict.fromkeys(kinds, 0.0)
    it = accepted = built_none = 0
    t_build = t_solve = 0.0
    while time.perf_counter() < deadline - 0.1:
        if stop is not None and stop():
            break
        if checkpoint is not None:
            checkpoint.tick()  # a better plan offered before, handed on once due
        it += 1
        kind = kinds[it % len(kinds)]
        hard = rng.random() < hard_share
        size = sizes[kind]
        free = nb.pick(st, kind, size)
        if len(free) < 2:
            continue
        tb = time.perf_counter()
        built = _sub_model(shop, st, free, stage, hard)
        t_build += time.perf_counter() - tb
        if built is None:
            built_none += 1
            continue
        model, s_var, lits_of = built
        solver = cp_model.CpSolver()
        left = deadline - time.perf_counter()
        limit = min(left - 0.05, sub_limit)
        if limit <= 0.05:
            break
        solver.parameters.max_time_in_seconds = limit
        solver.parameters.num_workers = max(1, workers)
        solver.parameters.random_seed = seed + it
        ts = time.perf_counter()
        status = cp_solve(solver, model, stop, checkpoint=checkpoint)
        dt = time.perf_counter() - ts
        t_solve += dt
        if status == cp_model.OPTIMAL and dt < 0.3 * limit:
            sizes[kind] = min(shop.n, max_size, int(size * 1.15) + 1)
        elif status != cp_model.OPTIMAL:
            sizes[kind] = max(8, int(size * 0.85))
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            continue
        new_mach = list(st.mach)
        new_start = list(st.start)
        for i, s in s_var.items():
            new_start[i] = solver.value(s)
            for x, lit in lits_of[i]:
                if solver.boolean_value(lit):
                    new_mach[i] = x
        seqs = {x: list(lst) for x, lst in st.seqs.items()}
        touched_m = {st.mach[i] for i in free} | {new_mach[i] for i in free}
        for x in touched_m:
            lst = [i for i in seqs[x] if i not in free] + [i for i in free if new_mach[i] == x]
            lst.sort(key=lambda i: (new_start[i], new_start[i] + shop.ops[i].durations[new_mach[i]], i))
            seqs[x] = lst
        timed = shop.retime(new_mach, seqs)
        if timed is None:
            continue
        val = shop.objective(new_mach, timed, stage)
        if log is not None:
            raw = shop.objective(new_mach, new_start, stage)
            log(f"  candidate {val} (sub-model plan {raw}, obj {solver.objective_value:.0f}, "
                f"moved {sum(new_start[i] != st.start[i] or new_mach[i] != st.mach[i] for i in free)})")
        if val <= st.value:
            if val < st.value:
                accepted += 1
                gains[kind] += st.value - val
                gains["hard" if hard else "relaxed"] = gains.get("hard" if hard else "relaxed", 0.0) + st.value - val
            st = _State(new_mach, timed, seqs, val)
            if checkpoint is not None:
                checkpoint(partial(shop.schedule, st.mach, st.start, "lns-sub"))
        if log is not None:
            log(f"it {it} {kind} hard={hard} free={len(free)} status={solver.status_name(status)} "
                f"dt={dt:.2f} value={st.value}")
    out = shop.schedule(st.mach, st.start, "lns-sub")
    out.stats.update(lns_iterations=it, lns_improvements=accepted, lns_final_size=sizes,
                     lns_gain_by_kind={k: round(v, 2) for k, v in gains.items()},
                     lns_build_s=round(t_build, 2), lns_solve_s=round(t_solve, 2), lns_skipped=built_none)
    return out
