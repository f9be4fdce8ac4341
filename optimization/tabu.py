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
  back on the other side of the operations it jumped over stays tabu for ``TENURE`` (3-7) iterations;
- after ``restart_after`` iterations without a new best, the search goes back to the best plan with an empty tabu
  list and a few random moves;
- ties between the best moves are broken at random.

On shops of up to 600 operations (``SolverParams.tabu_population_max_ops``) each worker runs a population of plans
instead of one chain (``_evolve``, a memetic search after Cheng, Peng and Lue 2016): one chain on la29 returns to
the same plateau in most runs, and the population keeps plans that differ (measured in docs/scheduling.md). The
solver puts CP-SAT's plan into the first worker's population only (``SolverParams.tabu_population_start_workers``):
on la29 that plan lies on the plateau, and populations that all held it often all ended there.

A swap changes the graph only between the two operations' places in the topological order, so the order is repaired
there (Pearce and Kelly) and only the heads after the first and the tails before the second are recomputed; an N6
move is made as swaps of neighbours (each acyclic under the test above), then one update of the times.

The iterations run compiled by numba (``optimization._tabu_core``, flat int64 arrays) in slices of ~10-20 ms, the
clock read between them: on 600 operations ~190,000 N6 moves a second (the pure-Python version of 2026-12-04 made
~5,000). The first call in a process loads the compiled code from numba's cache (``warm``; ``make install`` fills
the cache, a cold compile takes ~8 s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from optimization import _tabu_core as core
from optimization.heuristics import Checkpoints, Stop, as_stop, fork_pool, pool_map
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
    """The disjunctive graph of a job shop as flat int64 arrays; operation i is ``problem.op_keys[i]``."""

    def __init__(self, problem: SchedulingProblem) -> None:
        self.keys = problem.op_keys
        self.mids = [m.id for m in problem.machines]
        mi = {m: k for k, m in enumerate(self.mids)}
        p, mach, rel, jp, js = [], [], [], [], []
        for j in problem.jobs:
            base = len(p)
            for k, o in enumerate(j.operations):
                ((m, d),) = o.durations.items()
                p.append(d)
                mach.append(mi[m])
                rel.append(j.release if k == 0 else 0)  # the job's release for its first operation, else 0
                jp.append(base + k - 1 if k > 0 else -1)
                js.append(base + k + 1 if k + 1 < len(j.operations) else -1)
        self.n = n = len(p)
        self.p, self.mach, self.rel, self.jp, self.js = (np.asarray(v, dtype=np.int64).reshape(n)
                                                         for v in (p, mach, rel, jp, js))
        self.lasts = np.flatnonzero(self.js < 0).astype(np.int64)  # every longest path ends at a job's last op
        self.firsts = np.flatnonzero(self.jp < 0).astype(np.int64)
        self.job = np.cumsum(self.jp < 0) - 1  # an operation's job index
        # an operation's index among its machine's operations (the tabu matrix is n x the most on one machine)
        self.mrank = np.zeros(n, dtype=np.int64)
        count = [0] * len(self.mids)
        for i in range(n):
            self.mrank[i] = count[mach[i]]
            count[mach[i]] += 1
        self.per_machine = max(count, default=1)

    def sequences(self, schedule: Schedule) -> list[list[int]]:
        idx = {k: i for i, k in enumerate(self.keys)}
        seqs: list[list[int]] = [[] for _ in self.mids]
        for a in sorted(schedule.assignments, key=lambda a: (a.start, a.end)):
            i = idx[a.key]
            seqs[self.mach[i]].append(i)
        return seqs

    def links(self, seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Machine predecessor and successor of every operation (-1: none)."""
        mp = np.full(self.n, -1, dtype=np.int64)
        ms = np.full(self.n, -1, dtype=np.int64)
        for s in seqs:
            for a, b in zip(s, s[1:], strict=False):
                ms[a], mp[b] = b, a
        return mp, ms

    def unlink(self, mp: np.ndarray, ms: np.ndarray) -> list[list[int]]:
        """The machine sequences of the links."""
        seqs: list[list[int]] = [[] for _ in self.mids]
        for i in np.flatnonzero(mp < 0):
            s = seqs[self.mach[i]]
            while i >= 0:
                s.append(int(i))
                i = ms[i]
        return seqs

    def times(self, mp: np.ndarray, ms: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(makespan, heads, tails, topological order, places in it); makespan -1 when the links hold a cycle."""
        n = self.n
        r, q, order, pos, work = (np.zeros(n, dtype=np.int64) for _ in range(5))
        cmax = core.heads_tails(self.p, self.rel, self.jp, self.js, self.lasts, mp, ms, r, q, order, pos, work)
        return int(cmax), r, q, order, pos


# iterations for which a move stays tabu, drawn per move from this range. 3-7 since 2026-12-05 (8-14 before): in
# the population (``_evolve``) on 20x10-20x20 shops it ends nearer the best known plans, e.g. la29 at 1,153-1,160
# over 12 seeds (mean 1,154.3) against 1,154-1,164 (1,160.3), and never worse on eight generated shops that are not
# benchmark instances (docs/scheduling.md)
TENURE = (3, 7)


def _search(g: _Graph, seqs: list[list[int]], budget_s: float, seed: int, target: int = 0,
            max_iters: int | None = None, restart_after: int = 10_000,
            tenure: tuple[int, int] = TENURE, neighbourhood: str = "n5",
            deadline: float | None = None, stop: Stop | None = None,
            offer: Offer | None = None) -> tuple[int, list[list[int]], int]:
    """One tabu-search chain from ``seqs``; returns (best makespan, its sequences, iterations). Stops on the time
    budget (or ``max_iters``: then deterministic for a seed, unless the clock passes ``deadline`` first), when the
    makespan reaches ``target``, or once ``stop`` is set. The iterations run compiled
    (``optimization._tabu_core.run``) in slices of ~10-20 ms; the clock and ``stop`` are read between slices, and
    ``offer`` (a search in the solve's own process with a checkpoint: :func:`improve`) gets the best plan after a
    slice that improved it (a function giving its sequences, from copies of its links)."""
    n = g.n
    mp, ms = g.links(seqs)
    cmax, r, q, order, pos = g.times(mp, ms)
    if cmax < 0:
        raise ValueError("tabu search: the start plan's machine sequences hold a cycle")
    st = np.zeros(6, dtype=np.int64)
    st[core.CMAX] = st[core.BEST] = cmax
    best_mp, best_ms = mp.copy(), ms.copy()
    tabu = np.full((n, g.per_machine), -1, dtype=np.int64)
    # work arrays of the compiled loop: marks and buffers of the order repair, the critical path and its blocks, the
    # moved stretch, the estimate's sequence and heads, Kahn's in-degrees; the candidate moves (at most 4 per op)
    markf, markb, bufa, bufb, places, path, bstart, seg, seq, rr, work = (np.zeros(n + 2, dtype=np.int64)
                                                                          for _ in range(11))
    cx, cy = (np.zeros(4 * n + 4, dtype=np.int64) for _ in range(2))
    cf = np.zeros(4 * n + 4, dtype=np.bool_)
    r2, q2, order2, pos2 = (np.zeros(n, dtype=np.int64) for _ in range(4))
    n6 = neighbourhood == "n6" and int(g.p.min(initial=1)) > 0  # its acyclicity test needs positive durations
    core.seed(seed)
    t0 = time.perf_counter()
    chunk = 32
    offered = cmax
    while True:
        if max_iters is not None:
            k = min(chunk, max_iters - int(st[core.IT]))
            if k <= 0 or (deadline is not None and time.perf_counter() > deadline):
                break
        else:
            if time.perf_counter() - t0 > budget_s:
                break
            k = chunk
        if stop is not None and stop():
            break
        ts = time.perf_counter()
        core.run(k, target, restart_after, tenure[0], tenure[1], n6, CHECK,
                 g.p, g.rel, g.jp, g.js, g.lasts, g.firsts, g.mrank, mp, ms, r, q, order, pos, best_mp, best_ms,
                 tabu, st, markf, markb, bufa, bufb, places, path, bstart, cx, cy, cf, seg, seq, rr, r2, q2, order2,
                 pos2, work)
        if st[core.DONE] == 3:
            raise AssertionError("incremental heads/tails differ")
        if offer is not None and st[core.BEST] < offered:
            offered = int(st[core.BEST])
            offer(partial(g.unlink, best_mp.copy(), best_ms.copy()))
        if st[core.DONE]:
            break
        el = time.perf_counter() - ts
        if el < 0.01 and chunk < 1 << 16:  # slices of ~10-20 ms: the time budget is kept within a slice
            chunk *= 2
        elif el > 0.04 and chunk > 1:
            chunk //= 2
    return int(st[core.BEST]), g.unlink(best_mp, best_ms), int(st[core.IT])


def _schedule(problem: SchedulingProblem, g: _Graph, seqs: list[list[int]], neighbourhood: str = "n6") -> Schedule:
    """The semi-active plan of ``seqs``: every operation at its head."""
    cmax, start, _, _, _ = g.times(*g.links(seqs))
    if cmax < 0:
        raise ValueError("tabu search produced cyclic machine sequences")
    assigns = [Assignment(k[0], k[1], g.mids[g.mach[i]], int(start[i]), int(start[i] + g.p[i]))
               for i, k in enumerate(g.keys)]
    obj = evaluate(problem, assigns)
    return Schedule(assignments=assigns, status="FEASIBLE", makespan=int(obj["makespan"]), objective=obj,
                    stats={"method": f"tabu-{neighbourhood}"})


_STATE: dict = {}
# a search's hand-over of its better plan to the solve's checkpoint: called with a function giving its sequences
Offer = Callable[[Callable[[], list[list[int]]]], None]
CHECK = False
_WARM: list[bool] = []


def warm() -> None:
    """Compile the inner loop (``optimization._tabu_core``), or load it from numba's cache, on a tiny shop: once per
    process, before chains are forked (so they inherit it). ``make install`` runs it once to fill the cache; a cold
    compile takes ~8 s."""
    if _WARM:
        return
    from optimization.io import parse_jsplib

    p = parse_jsplib("3 2\n0 3 1 2\n1 4 0 1\n0 2 1 3", name="warm-up")
    g = _Graph(p)
    seqs = [[i for i in range(g.n) if g.mach[i] == m] for m in range(len(g.mids))]
    _search(g, seqs, 1.0, 0, max_iters=5, neighbourhood="n6")
    _WARM.append(True)


def _chain(args):
    return _run(_STATE["g"], *args, stop=_STATE.get("stop"))


def _run(g: _Graph, seqs, seed, budget, target, max_iters, neighbourhood, restart_after, tenure, population,
         child_iters, with_start=True, stop: Stop | None = None,
         offer: Offer | None = None) -> tuple[int, list[list[int]], int, int]:
    """One worker's search: a chain, or a population of ``population`` plans (``_evolve``; ``max_iters`` then counts
    its children); (best makespan, its sequences, tabu iterations, children). ``offer``: see :func:`_search`."""
    if population:
        return _evolve(g, seqs, budget, seed, target, population, child_iters, tenure, neighbourhood, max_iters,
                       with_start, stop, offer)
    return (*_search(g, seqs, budget, seed, target, max_iters, restart_after, tenure, neighbourhood, stop=stop,
                     offer=offer), 0)


def _keyed(g: _Graph, key: np.ndarray) -> list[list[int]]:
    """Machine sequences in the order of ``key`` (ties by operation index). A key that rises along every job (a
    plan's start times, or random increments summed along each job) never gives a cycle: every arc of the graph
    then goes up in the order (key, index)."""
    order = np.lexsort((np.arange(g.n), key))
    order = order[np.argsort(g.mach[order], kind="stable")]
    cuts = np.cumsum(np.bincount(g.mach, minlength=len(g.mids)))[:-1]
    return [part.tolist() for part in np.split(order, cuts)]


def _random_key(g: _Graph, rng: np.random.Generator) -> np.ndarray:
    """Random increments summed along each job: sort keys of a random plan (``_keyed``)."""
    inc = rng.random(g.n) + 0.01
    key = np.cumsum(inc)
    return key - (key[g.firsts] - inc[g.firsts])[g.job]


def _places(g: _Graph, seqs: list[list[int]]) -> np.ndarray:
    """Each operation's place on its machine: two plans differ by the operations whose places differ."""
    place = np.zeros(g.n, dtype=np.int64)
    for s in seqs:
        place[s] = np.arange(len(s))
    return place


def _evolve(g: _Graph, start: list[list[int]], budget_s: float, seed: int, target: int = 0, pop_size: int = 20,
            child_iters: int = 12_500, tenure: tuple[int, int] = TENURE, neighbourhood: str = "n6",
            max_children: int | None = None, with_start: bool = True,
            stop: Stop | None = None, offer: Offer | None = None) -> tuple[int, list[list[int]], int, int]:
    """A population of tabu-searched plans (a memetic search, after Cheng, Peng and Lue 2016); returns (best
    makespan, its sequences, tabu iterations, children).

    The population starts from ``start`` (unless ``with_start`` is false) and from random plans (random increments
    summed along each job as sort keys), each improved by ``child_iters`` tabu iterations. A child takes, job by job
    at random, the start times of one of two random parents as sort keys (acyclic by construction) and is improved
    the same way. It replaces its nearest member when that one is closer than a fifth of the operations and not
    better, else the worst member if it is not worse: plans that differ keep the population apart, where one chain
    returns to the same plateau (la29: 1,164 in most 20-s chains). Stops on the budget (or after ``max_children``:
    then deterministic for a seed), at ``target`` or once ``stop`` is set (a plan's search then ends at its next
    slice: the first plan, searched that far, is the best when the stop comes before it ends)."""
    t0 = time.perf_counter()
    deadline = None if max_children is not None else t0 + budget_s
    rng = np.random.default_rng(seed)
    n_jobs = len(g.firsts)
    dmin = max(1, g.n // 5)
    pop: list[tuple[int, list[list[int]], np.ndarray, np.ndarray]] = []  # makespan, sequences, places, heads
    iters = children = 0
    best: tuple[int, list[list[int]]] | None = None

    def improved(seqs: list[list[int]]) -> tuple[int, list[list[int]], np.ndarray, np.ndarray]:
        nonlocal iters, best
        cmax, sq, it = _search(g, seqs, budget_s, int(rng.integers(1 << 31)), target, child_iters, 1 << 62, tenure,
                               neighbourhood, deadline, stop)
        iters += it
        if best is None or cmax < best[0]:
            best = (cmax, sq)
            if offer is not None:
                offer(lambda kept=[list(m) for m in sq]: kept)
        return cmax, sq, _places(g, sq), g.times(*g.links(sq))[1]

    def out_of_time() -> bool:
        if best is not None and best[0] <= target:
            return True
        if stop is not None and stop():
            return True
        if max_children is not None:
            return children >= max_children
        return time.perf_counter() > deadline

    pop.append(improved(start if with_start else _keyed(g, _random_key(g, rng))))
    while len(pop) < pop_size and not out_of_time():
        pop.append(improved(_keyed(g, _random_key(g, rng))))
        children += 1
    while len(pop) > 1 and not out_of_time():
        a, b = rng.choice(len(pop), 2, replace=False)
        key = np.where((rng.random(n_jobs) < 0.5)[g.job], pop[a][3], pop[b][3])
        child = improved(_keyed(g, key))
        children += 1
        dist = np.array([np.count_nonzero(child[2] != m[2]) for m in pop])
        near = int(dist.argmin())
        if dist[near] < dmin:
            if dist[near] > 0 and child[0] <= pop[near][0]:
                pop[near] = child
        else:
            worst = max(range(len(pop)), key=lambda i: pop[i][0])
            if child[0] <= pop[worst][0]:
                pop[worst] = child
    return best[0], best[1], iters, children


def improve(problem: SchedulingProblem, incumbent: Schedule, time_budget_s: float, seed: int = 0, workers: int = 1,
            target: int = 0, max_iters: int | None = None, round_s: float | None = None,
            neighbourhood: str = "n6", restart_after: int = 10_000, tenure: tuple[int, int] = TENURE,
            population: int = 0, child_iters: int = 12_500, start_workers: int | None = None,
            stop: Stop | threading.Event | None = None, checkpoint: Checkpoints | None = None) -> Schedule:
    """Tabu search from ``incumbent``; ``workers`` chains (forked processes when possible, different seeds), the
    best plan back. Never worse than ``incumbent``; stops early at ``target`` (a lower bound). ``round_s``: the
    chains run in rounds of that many seconds, each round from the best plan of the last one (None: one round).
    ``population`` > 1: each worker runs a population of that many plans instead of a chain (``_evolve``, children of
    ``child_iters`` tabu iterations; ``max_iters`` then counts children), in one round. ``start_workers``: how many
    of the workers' populations include ``incumbent`` (None: all); the others start from random plans only, so that
    the workers do not all drift to the start plan's plateau. ``stop`` (``heuristics.Stop``, or an event): once set,
    every chain (also in a forked process) ends at its next slice and the best plan so far comes back.
    ``checkpoint`` (``heuristics.Checkpoints``): offered the best plan as a chain run in this process finds it (where
    the chains cannot fork, as in the serving process that runs background jobs); forked chains hand theirs at the
    end."""
    if neighbourhood not in ("n5", "n6"):
        raise ValueError(f"unknown tabu neighbourhood {neighbourhood!r}; use n5 or n6")
    stop = as_stop(stop)
    t0 = time.perf_counter()  # the budget includes loading the compiled code (warm)
    warm()
    g = _Graph(problem)
    best_seqs = g.sequences(incumbent)
    best_ms = None
    n_chains = max(1, workers)
    iters = rounds = children = 0
    population = population if population > 1 else 0
    pool = fork_pool(n_chains, _STATE.update, ({"g": g, "stop": stop},))
    try:
        while True:
            left = time_budget_s - (time.perf_counter() - t0)
            if rounds and (max_iters is not None or population or left < 0.05 or best_ms <= target):
                break
            if stop is not None and stop():
                break
            budget = left if round_s is None or max_iters is not None or population else min(round_s, left)
            jobs = [(best_seqs, seed * 7919 + rounds * 101 + w, budget, target, max_iters, neighbourhood, restart_after,
                     tenure, population, child_iters, start_workers is None or w < start_workers)
                    for w in range(n_chains)]
            outs = None
            if pool is not None:
                try:
                    outs = pool_map(pool, _chain, jobs, stop)
                except Exception:  # a broken worker: go on in this process
                    pool.terminate()
                    pool = None
            if outs is None:
                offer = None
                if checkpoint is not None:
                    def offer(seqs_of: Callable[[], list[list[int]]]) -> None:
                        checkpoint(lambda: _schedule(problem, g, seqs_of(), neighbourhood))
                outs = [_run(g, *jobs[0], stop=stop, offer=offer)]
                n_chains = 1
            rounds += 1
            iters += sum(o[2] for o in outs)
            children += sum(o[3] for o in outs)
            ms, sq, _, _ = min(outs, key=lambda o: o[0])
            if best_ms is None or ms < best_ms:
                best_ms, best_seqs = ms, sq
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    stats = {"tabu_iterations": iters, "tabu_chains": n_chains, "tabu_rounds": rounds}
    if population:
        stats.update(tabu_population=population, tabu_children=children)
    if best_ms is None or (incumbent.makespan is not None and best_ms >= incumbent.makespan):
        incumbent.stats.update(stats)
        return incumbent
    s = _schedule(problem, g, best_seqs, neighbourhood)
    s.stats.update(stats)
    return s
