"""Tabu search for classic job shops (one machine per operation, makespan): the closing phase for big instances.

CP-SAT's search stalls on job shops of 600+ operations (Taillard's 30x20 and up: 5-8 % above the best known plans
in 20 s). A tabu search on the machine sequences moves much further in the same time there, so for those instances
the solver runs CP-SAT first (a plan and a lower bound) and then this search from CP-SAT's plan
(``optimization.solver.solve``; measured in docs/scheduling.md).

The search is a tabu search on the critical path (Nowicki and Smutnicki 1996, with the N6 moves of Balas and
Vazacopoulos 1998, as in Zhang et al. 2007):
- a plan is one sequence per machine; its times are the heads (earliest starts) of the disjunctive graph;
- N6 (the default) moves an operation of a block (operations in a row on one machine) of a critical path to just
  after the block's last operation or just before its first, or the first (last) operation into the block; only
  moves that the heads and tails prove acyclic (no path from the moved operation's job successor to its new
  predecessor, or the mirror), and none to the end of the path's last block or the start of its first, which
  cannot shorten it (swaps of neighbours follow N5's rule). N5 (``neighbourhood="n5"``) swaps only the first two
  or the last two operations of a block.
  On Taillard-like 30x20 shops N6 ended 0.5 % better on average at 20 s (docs/scheduling.md);
- each move is scored by an estimate of the new makespan from the heads and tails of the moved stretch (Taillard's
  for a swap of neighbours: exact for the two operations, a lower bound otherwise); the best move that is not tabu
  is made (a tabu move only when it estimates below the best makespan so far), and putting the moved operation
  back on the other side of the operations it jumped over stays tabu for 8-14 iterations;
- after ``restart_after`` iterations without a new best, the search goes back to the best plan with an empty tabu
  list and a few random moves.

A swap changes the graph only between the two operations' places in the topological order, so the order is repaired
there (Pearce and Kelly) and only the heads after the first and the tails before the second are recomputed; an N6
move is made as swaps of neighbours (each acyclic under the test above), then one update of the times. Pure
Python on lists, on 600 operations: N5 ~8,000-9,000 moves a second, N6 ~5,000 (more moves to score per step).
"""

from __future__ import annotations

import random
import time

from optimization.heuristics import fork_pool
from optimization.problem import SchedulingProblem
from optimization.solution import Assignment, Schedule, evaluate


def supported(problem: SchedulingProblem) -> bool:
    """A classic job shop: one eligible machine per operation, no setups, calendars, pins, maintenance, energy cap
    or precedences across jobs (job release dates are fine)."""
    if problem.precedences or problem.has_setups or problem.risk is not None:
        return False
    if problem.energy is not None and problem.energy.peak_cap_kw is not None:
        return False
    if any(m.calendar for m in problem.machines):
        return False
    return all(len(o.durations) == 1 and o.pinned_machine is None and o.pinned_start is None and not o.started
               for j in problem.jobs for o in j.operations)


class _Graph:
    """The disjunctive graph of a job shop as flat lists; operation i is ``problem.op_keys[i]``."""

    def __init__(self, problem: SchedulingProblem) -> None:
        self.keys = problem.op_keys
        self.mids = [m.id for m in problem.machines]
        mi = {m: k for k, m in enumerate(self.mids)}
        self.p: list[int] = []
        self.mach: list[int] = []
        self.rel: list[int] = []  # release of the job for a first operation, else 0
        self.jp: list[int] = []
        self.js: list[int] = []
        for j in problem.jobs:
            base = len(self.p)
            for k, o in enumerate(j.operations):
                ((m, d),) = o.durations.items()
                self.p.append(d)
                self.mach.append(mi[m])
                self.rel.append(j.release if k == 0 else 0)
                self.jp.append(base + k - 1 if k > 0 else -1)
                self.js.append(base + k + 1 if k + 1 < len(j.operations) else -1)
        self.n = len(self.p)

    def sequences(self, schedule: Schedule) -> list[list[int]]:
        idx = {k: i for i, k in enumerate(self.keys)}
        seqs: list[list[int]] = [[] for _ in self.mids]
        for a in sorted(schedule.assignments, key=lambda a: (a.start, a.end)):
            i = idx[a.key]
            seqs[self.mach[i]].append(i)
        return seqs


def _topological_order(g: _Graph, mprev: list[int], mnext: list[int]) -> list[int]:
    """Kahn's order of the graph of job arcs and the machine arcs ``mprev``/``mnext``; shorter than ``g.n`` when the
    machine sequences hold a cycle."""
    jp, js = g.jp, g.js
    indeg = [(jp[i] >= 0) + (mprev[i] >= 0) for i in range(g.n)]
    order = [i for i in range(g.n) if indeg[i] == 0]
    for i in order:  # the list grows while it is read
        for c in (js[i], mnext[i]):
            if c >= 0:
                indeg[c] -= 1
                if indeg[c] == 0:
                    order.append(c)
    return order


def _search(g: _Graph, seqs: list[list[int]], budget_s: float, seed: int, target: int = 0,
            max_iters: int | None = None, restart_after: int = 10_000,
            tenure: tuple[int, int] = (8, 14), neighbourhood: str = "n5") -> tuple[int, list[list[int]], int]:
    """One tabu-search chain from ``seqs``; returns (best makespan, its sequences, iterations). Stops on the time
    budget (or ``max_iters``: then deterministic for a seed) or when the makespan reaches ``target``."""
    p, mach, rel, jp, js, n = g.p, g.mach, g.rel, g.jp, g.js, g.n
    seqs = [list(s) for s in seqs]
    mp_ = [-1] * n
    ms = [-1] * n
    r = [0] * n
    q = [0] * n

    def link() -> None:
        for s in seqs:
            prev = -1
            for o in s:
                mp_[o] = prev
                if prev >= 0:
                    ms[prev] = o
                prev = o
            if prev >= 0:
                ms[prev] = -1

    order: list[int] = []  # a topological order of the graph, kept up to date through the moves
    pos = [0] * n
    lasts = [i for i in range(n) if js[i] < 0]  # every longest path ends at a job's last operation
    firsts = [i for i in range(n) if jp[i] < 0]

    def heads(lo: int) -> None:
        for k in range(lo, n):
            i = order[k]
            a, b = jp[i], mp_[i]
            x = r[a] + p[a] if a >= 0 else rel[i]
            if b >= 0 and r[b] + p[b] > x:
                x = r[b] + p[b]
            r[i] = x

    def tails(hi: int) -> None:
        for k in range(hi, -1, -1):
            i = order[k]
            a, b = js[i], ms[i]
            x = q[a] + p[a] if a >= 0 else 0
            if b >= 0 and q[b] + p[b] > x:
                x = q[b] + p[b]
            q[i] = x

    def makespan() -> int:
        return max(r[i] + p[i] for i in lasts)

    def heads_tails() -> int:
        """Heads r (earliest starts) and tails q (longest path after the end) from a fresh topological order;
        the makespan, or -1 when the sequences hold a cycle (cannot happen with the moves below)."""
        order[:] = _topological_order(g, mp_, ms)
        if len(order) < n:
            return -1
        for k, i in enumerate(order):
            pos[i] = k
        heads(0)
        tails(n - 1)
        return makespan()

    def repair(u: int, v: int) -> None:
        """Repair the topological order after u -> v became v -> u (Pearce and Kelly: in the span from u to v, the
        ancestors of v go first, then the descendants of u, in the places they held)."""
        lb, ub = pos[u], pos[v]
        fwd, stack = {u}, [u]
        while stack:
            i = stack.pop()
            for a in (js[i], ms[i]):
                if a >= 0 and a not in fwd and pos[a] <= ub:
                    fwd.add(a)
                    stack.append(a)
        back, stack = {v}, [v]
        while stack:
            i = stack.pop()
            for a in (jp[i], mp_[i]):
                if a >= 0 and a not in back and pos[a] >= lb:
                    back.add(a)
                    stack.append(a)
        places = sorted(pos[i] for i in fwd | back)
        for k, i in zip(places, sorted(back, key=pos.__getitem__) + sorted(fwd, key=pos.__getitem__), strict=True):
            order[k] = i
            pos[i] = k

    def moves(cmax: int, rng: random.Random) -> list[tuple[int, int]]:
        """N5 moves on one critical path (random where it branches)."""
        blocks = critical_blocks(cmax, rng)
        out = []
        last = len(blocks) - 1
        for bi, blk in enumerate(blocks):
            if len(blk) < 2:
                continue
            if bi > 0:
                out.append((blk[0], blk[1]))
            if bi < last and (bi == 0 or len(blk) > 2):
                out.append((blk[-2], blk[-1]))
        # two operations of one job in a row on a machine keep their order (swapping them would make a cycle)
        return [(u, v) for u, v in out if js[u] != v]

    def swap(u: int, v: int) -> None:
        s = seqs[mach[u]]
        k = s.index(u)
        s[k], s[k + 1] = v, u
        a, b = mp_[u], ms[v]
        if a >= 0:
            ms[a] = v
        if b >= 0:
            mp_[b] = u
        mp_[v], ms[v], mp_[u], ms[u] = a, u, v, b

    def critical_blocks(cmax: int, rng: random.Random) -> list[list[int]]:
        """The blocks (operations in a row on one machine) of one critical path, random where it branches."""
        # a critical path starts at an operation timed by its release (every tight predecessor chain ends in one):
        # a job's first operation, or with zero durations any operation at its release
        starts = [i for i in firsts if r[i] == rel[i] and r[i] + p[i] + q[i] == cmax] or \
            [i for i in range(n) if r[i] == rel[i] and r[i] + p[i] + q[i] == cmax]
        i = rng.choice(starts)
        blocks: list[list[int]] = [[i]]
        while True:
            e = r[i] + p[i]
            a, b = js[i], ms[i]
            na = a >= 0 and r[a] == e and e + p[a] + q[a] == cmax
            nb = b >= 0 and r[b] == e and e + p[b] + q[b] == cmax
            if na and nb:
                nxt = a if rng.random() < 0.5 else b
            elif na:
                nxt = a
            elif nb:
                nxt = b
            else:
                break
            if nxt == b:
                blocks[-1].append(nxt)
            else:
                blocks.append([nxt])
            i = nxt
        return blocks

    def moves6(cmax: int, rng: random.Random) -> list[tuple[int, int, bool]]:
        """N6 moves (Balas and Vazacopoulos) on one critical path: (x, y, True) moves x to right after y, (x, y,
        False) moves y to right before x, x before y in one block and one of them at the block's edge; only moves
        whose acyclicity the heads and tails guarantee (no path from x's job successor to y, or from x to y's job
        predecessor). Moving into the end of the path's last block (or the start of its first) cannot shorten it."""
        blocks = critical_blocks(cmax, rng)
        out: list[tuple[int, int, bool]] = []
        last = len(blocks) - 1
        for bi, blk in enumerate(blocks):
            k = len(blk) - 1
            if k < 1:
                continue
            # by place in the block: the first operation to before (bi > 0) or after (into the block, or past the
            # last if bi < last) each later one; then each inner operation before the last one (into the block)
            # or after it (bi < last)
            cand = []
            for j in range(1, k + 1):
                if bi > 0:
                    cand.append((blk[0], blk[j], False))
                if j < k or bi < last:
                    cand.append((blk[0], blk[j], True))
            for i in range(1, k):
                cand.append((blk[i], blk[k], False))
                if bi < last:
                    cand.append((blk[i], blk[k], True))
            seen: set[tuple[int, int]] = set()
            for x, y, fwd in cand:
                if ms[x] == y:  # a swap of neighbours, whichever way it is written: N5's rule
                    if (x, y) in seen or js[x] == y or not ((x == blk[0] and bi > 0) or (y == blk[k] and bi < last)):
                        continue
                    seen.add((x, y))
                    out.append((x, y, True))
                    continue
                if fwd:
                    a = js[x]
                    if a >= 0 and (q[a] + p[a] > q[y] + p[y] or a in blk):
                        continue
                else:
                    a = jp[y]
                    if a >= 0 and (r[a] + p[a] > r[x] + p[x] or a in blk):
                        continue
                out.append((x, y, fwd))
        return out

    def segment(x: int, y: int) -> list[int]:
        """The operations after x up to y on their machine (x before y)."""
        seg = []
        i = ms[x]
        while True:
            seg.append(i)
            if i == y:
                return seg
            i = ms[i]

    def estimate6(x: int, y: int, fwd: bool, seg: list[int]) -> int:
        """Makespan estimate of a move (``seg`` = ``segment(x, y)``) from the heads and tails of the moved stretch
        (for a swap of neighbours, Taillard's: exact for the two operations, a lower bound otherwise)."""
        if fwd:  # new order: mp[x], l1 .. lk (= y), x, ms[y]
            seq = seg + [x]
            before, after = mp_[x], ms[y]
        else:  # new order: mp[x], y, x .. lk, ms[y]
            seq = [y, x] + seg[:-1]
            before, after = mp_[x], ms[y]
        t = r[before] + p[before] if before >= 0 else 0
        rr = []
        for i in seq:
            a = jp[i]
            h = r[a] + p[a] if a >= 0 else rel[i]
            t = h if h > t else t
            rr.append(t)
            t += p[i]
        t = q[after] + p[after] if after >= 0 else 0
        best = 0
        for k in range(len(seq) - 1, -1, -1):
            i = seq[k]
            a = js[i]
            tl = q[a] + p[a] if a >= 0 else 0
            t = tl if tl > t else t
            v = rr[k] + p[i] + t
            if v > best:
                best = v
            t += p[i]
        return best

    def insert(x: int, y: int, fwd: bool) -> tuple[list[int], int]:
        """Make an N6 move as swaps of neighbours (each keeps the graph acyclic); the operations x jumped over
        (or that jumped over y's new place) and the new makespan."""
        seg = segment(x, y)
        lo = hi = None
        if fwd:
            pairs = [(x, i) for i in seg]
        else:
            seg = [x] + seg[:-1]
            pairs = [(i, y) for i in reversed(seg)]
        for u, v in pairs:
            lb, ub = pos[u], pos[v]
            swap(u, v)
            repair(u, v)
            lo = lb if lo is None or lb < lo else lo
            hi = ub if hi is None or ub > hi else hi
        heads(lo)
        tails(hi)
        return seg, makespan()

    def candidates(cmax: int) -> list[tuple[int, int, bool]]:
        """This step's moves, as (x, y, forward): N6, or N5's swaps written as forward moves of one place."""
        return moves6(cmax, rng) if n6 else [(u, v, True) for u, v in moves(cmax, rng)]

    rng = random.Random(seed)
    t0 = time.perf_counter()
    link()
    cmax = heads_tails()
    best, best_seqs = cmax, [list(s) for s in seqs]
    tabu: dict[tuple[int, int], int] = {}
    n6 = neighbourhood == "n6" and min(p, default=1) > 0  # its acyclicity test needs positive durations
    it = since = 0
    while best > target:
        if max_iters is not None:
            if it >= max_iters:
                break
        elif (it & 31) == 0 and time.perf_counter() - t0 > budget_s:
            break
        it += 1
        if since >= restart_after:  # back to the best plan, a few random moves, an empty tabu list
            seqs = [list(s) for s in best_seqs]
            link()
            cmax = heads_tails()
            for _ in range(rng.randint(2, 6)):
                mv6 = candidates(cmax)
                if not mv6:
                    break
                cmax = insert(*rng.choice(mv6))[1]
            tabu.clear()
            since = 0
        mv6 = candidates(cmax)
        if not mv6:  # nothing to move on this critical path (one job, or one machine from the start)
            break
        pick = None
        for x, y, fwd in mv6:
            seg = segment(x, y)
            e = estimate6(x, y, fwd, seg)
            if e >= best:  # tabu unless it would beat the best plan: re-creating an order undone lately
                if fwd:
                    hit = any(tabu.get((i, x), -1) >= it for i in seg)
                else:
                    hit = tabu.get((y, x), -1) >= it or any(tabu.get((y, i), -1) >= it for i in seg[:-1])
                if hit:
                    continue
            if pick is None or e < pick[0]:
                pick = (e, x, y, fwd)
        x, y, fwd = rng.choice(mv6) if pick is None else pick[1:]
        seg, cmax = insert(x, y, fwd)
        t_end = it + rng.randint(*tenure)
        for i in seg:  # the jumped-over operations may not go back behind (or before) the moved one for a while
            if fwd:
                tabu[(x, i)] = t_end
            else:
                tabu[(i, y)] = t_end
        if CHECK:
            rr, qq, c2 = list(r), list(q), heads_tails()
            assert (rr, qq, cmax) == (r, q, c2), "incremental heads/tails differ"
        if cmax < best:
            best, best_seqs, since = cmax, [list(s) for s in seqs], 0
        else:
            since += 1
    return best, best_seqs, it


def _schedule(problem: SchedulingProblem, g: _Graph, seqs: list[list[int]], neighbourhood: str = "n6") -> Schedule:
    """The semi-active plan of ``seqs``: every operation at its head, in a topological order (Kahn)."""
    n = g.n
    mprev = [-1] * n
    mnext = [-1] * n
    for s in seqs:
        for a, b in zip(s, s[1:], strict=False):
            mprev[b], mnext[a] = a, b
    order = _topological_order(g, mprev, mnext)
    if len(order) < n:
        raise ValueError("tabu search produced cyclic machine sequences")
    start = [0] * n
    for i in order:
        a, b = g.jp[i], mprev[i]
        x = start[a] + g.p[a] if a >= 0 else g.rel[i]
        if b >= 0:
            x = max(x, start[b] + g.p[b])
        start[i] = x
    assigns = [Assignment(k[0], k[1], g.mids[g.mach[i]], start[i], start[i] + g.p[i]) for i, k in enumerate(g.keys)]
    obj = evaluate(problem, assigns)
    return Schedule(assignments=assigns, status="FEASIBLE", makespan=int(obj["makespan"]), objective=obj,
                    stats={"method": f"tabu-{neighbourhood}"})


_STATE: dict = {}
CHECK = False


def _chain(args):
    seqs, seed, budget, target, max_iters, neighbourhood = args
    return _search(_STATE["g"], seqs, budget, seed, target, max_iters, neighbourhood=neighbourhood)


def improve(problem: SchedulingProblem, incumbent: Schedule, time_budget_s: float, seed: int = 0, workers: int = 1,
            target: int = 0, max_iters: int | None = None, round_s: float | None = None,
            neighbourhood: str = "n6") -> Schedule:
    """Tabu search from ``incumbent``; ``workers`` chains (forked processes when possible, different seeds), the
    best plan back. Never worse than ``incumbent``; stops early at ``target`` (a lower bound). ``round_s``: the
    chains run in rounds of that many seconds, each round from the best plan of the last one (None: one round)."""
    if neighbourhood not in ("n5", "n6"):
        raise ValueError(f"unknown tabu neighbourhood {neighbourhood!r}; use n5 or n6")
    g = _Graph(problem)
    best_seqs = g.sequences(incumbent)
    best_ms = None
    n_chains = max(1, workers)
    t0 = time.perf_counter()
    iters = rounds = 0
    pool = fork_pool(n_chains, _STATE.update, ({"g": g},))
    try:
        while True:
            left = time_budget_s - (time.perf_counter() - t0)
            if rounds and (max_iters is not None or left < 0.05 or best_ms <= target):
                break
            budget = left if round_s is None or max_iters is not None else min(round_s, left)
            jobs = [(best_seqs, seed * 7919 + rounds * 101 + w, budget, target, max_iters, neighbourhood)
                    for w in range(n_chains)]
            outs = None
            if pool is not None:
                try:
                    outs = pool.map(_chain, jobs)
                except Exception:  # a broken worker: go on in this process
                    pool.terminate()
                    pool = None
            if outs is None:
                outs = [_search(g, best_seqs, budget, jobs[0][1], target, max_iters, neighbourhood=neighbourhood)]
                n_chains = 1
            rounds += 1
            iters += sum(o[2] for o in outs)
            ms, sq, _ = min(outs, key=lambda o: o[0])
            if best_ms is None or ms < best_ms:
                best_ms, best_seqs = ms, sq
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    stats = {"tabu_iterations": iters, "tabu_chains": n_chains, "tabu_rounds": rounds}
    if incumbent.makespan is not None and best_ms >= incumbent.makespan:
        incumbent.stats.update(stats)
        return incumbent
    s = _schedule(problem, g, best_seqs, neighbourhood)
    s.stats.update(stats)
    return s
