"""Dispatching rules: fast feasible plans, the warm start of CP-SAT and the baseline to beat.

A serial generation scheme with insertion: at each step the ready operations (all predecessors placed) that can
start before the earliest possible completion (Giffler-Thompson active schedules) compete by a priority rule; the
winner goes into the earliest gap of its best machine that respects setups, calendars, maintenance and the peak
power cap.
"""

from __future__ import annotations

import bisect
import math
import mmap
import threading
import time
from collections.abc import Callable

import numpy as np

from optimization import _dispatch_core as _core
from optimization.problem import SchedulingProblem
from optimization.solution import Assignment, MaintenanceWindow, Schedule, evaluate, with_setups
from optimization.windows import crewed_start

RULES = ("mwkr", "spt", "edd", "atc", "atc_fast")
INF = float("inf")


class DispatchTimeout(ValueError):
    """A dispatch ran past its deadline (the Python scheme, which runs with a peak power cap: ~1 s for 2,000
    operations since 2026-12-06, 10-100 s before, but a pathological plan may still take long): no plan from it."""


class DispatchStopped(DispatchTimeout):
    """The solve was stopped (:class:`Stop`) before a dispatch finished its plan, or before any rule had one."""


# ---- stopping a solve ---------------------------------------------------------------------------------------------

class Stop:
    """A solve's stop request, as its stages read it: ``event`` (a ``threading.Event``) is set from another thread,
    e.g. when a background job is cancelled, and every stage then returns its best plan so far.

    ``stop()`` is true once the event is set, and then also sets ``flag`` (one int64 in memory shared with the
    chains' forked processes, which do not see the event), so whoever polls the event first stops the rest: the
    compiled dispatching scheme reads the flag every 64 placements (``_dispatch_core.run``), the searches call
    ``stop()`` between their compiled slices (tabu search ~10-20 ms, sequence search 50 moves, one re-dispatch), and
    a caller waiting on chains or on CP-SAT reads the event every ``POLL_S`` (:func:`pool_map`, :func:`cp_solve`). A
    compiled dispatch on the solve's own thread, with nobody else to read the event, reads it itself with its clock
    (through ``token``)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event
        self.flag = np.frombuffer(mmap.mmap(-1, 8), dtype=np.int64)  # anonymous shared memory, inherited by forks
        self.token = _core.watch(self)

    def __call__(self) -> bool:
        if self.flag[0]:
            return True
        if self.event.is_set():
            self.flag[0] = 1
            return True
        return False


POLL_S = 0.02  # how often a caller waiting on chains or on CP-SAT reads the stop request
# inside a search, its better plans are built, checked and handed on at most this often (a background job writes its
# checkpoint at its heartbeat, every 10 s by default; a search finds better plans many times a second)
CHECKPOINT_EVERY_S = 2.0


class Checkpoints:
    """A search's better plans on their way to ``report`` (the solve's: it checks and scores a plan and hands it to
    the background job where it is better than the last one handed), at most one every ``every_s``. A search offers
    a function that builds its plan (``checkpoint(build)``); the latest one offered is built when a checkpoint is due,
    at that offer or at a later ``tick()`` (each LNS iteration and dispatch-search round, and every ``POLL_S`` while
    CP-SAT runs), so a search
    that finds a better plan and then nothing more for a while still hands it on within ``every_s``. So a job's
    checkpoint follows the search inside a stage, at a cost of milliseconds every ``every_s``. Thread-safe (CP-SAT
    offers from its own thread)."""

    def __init__(self, report: Callable[[Schedule | None], None], every_s: float | None = None) -> None:
        self.report = report
        self.every_s = CHECKPOINT_EVERY_S if every_s is None else every_s
        self.next_at = time.perf_counter() + self.every_s
        self.pending: Callable[[], Schedule | None] | None = None
        self.lock = threading.Lock()

    def __call__(self, build: Callable[[], Schedule | None]) -> None:
        with self.lock:
            self.pending = build
        self.tick()

    def tick(self) -> None:
        with self.lock:
            now = time.perf_counter()
            if self.pending is None or now < self.next_at:
                return
            build, self.pending, self.next_at = self.pending, None, now + self.every_s
            self.report(build())


def as_stop(stop: Stop | threading.Event | None) -> Stop | None:
    """``stop`` as a :class:`Stop` (a bare event is wrapped), or None."""
    if stop is None or isinstance(stop, Stop):
        return stop
    return Stop(stop)


def cp_solve(solver, model, stop: Stop | None, on_solution=None,  # noqa: ANN001 - cp_model objects
             checkpoint: Checkpoints | None = None) -> int:
    """``solver.solve(model)``; with ``stop``, a thread watches the request while CP-SAT runs and stops its search
    when it is set (CP-SAT then answers as at its time limit: FEASIBLE with its best solution, or UNKNOWN). Not
    started at all once set (UNKNOWN). The watcher lives only during the solve, so the chains' forks (which need
    the process to run one thread) are not affected. ``on_solution``: called with CP-SAT's solution callback (its
    ``value``, ``boolean_value``) at each solution found, from CP-SAT's thread. ``checkpoint``: the watcher ticks it
    (a plan offered before is handed on once due)."""
    from ortools.sat.python import cp_model

    callback = _SolutionCallback(on_solution) if on_solution is not None else None
    if stop is None and checkpoint is None:
        return solver.solve(model, callback)
    if stop is not None and stop():
        return cp_model.UNKNOWN
    done = threading.Event()

    def watch() -> None:
        while not done.wait(POLL_S):
            if stop is not None and stop():
                solver.stop_search()
                return
            if checkpoint is not None:
                checkpoint.tick()

    th = threading.Thread(target=watch, name="sfai-cp-sat-stop", daemon=True)
    th.start()
    try:
        return solver.solve(model, callback)
    finally:
        done.set()
        th.join()


def _SolutionCallback(on_solution: Callable):  # noqa: ANN202, N802 - a CpSolverSolutionCallback, made on demand
    from ortools.sat.python import cp_model

    class SolutionCallback(cp_model.CpSolverSolutionCallback):
        def on_solution_callback(self) -> None:
            try:
                on_solution(self)
            except Exception:  # noqa: BLE001 - an observer's failure does not end CP-SAT's search
                import logging

                logging.getLogger("sfai.scheduling").warning("a solution callback failed", exc_info=True)

    return SolutionCallback()


def pool_map(pool, fn, jobs: list, stop: Stop | None) -> list:  # noqa: ANN001 - a multiprocessing pool, a function
    """``pool.map(fn, jobs)``; with ``stop``, waited on in steps of ``POLL_S``, reading the request in between (a
    set request sets the flag the forked chains read, and they return their best plans)."""
    if stop is None:
        return pool.map(fn, jobs)
    res = pool.map_async(fn, jobs)
    while not res.ready():
        res.wait(POLL_S)
        stop()
    return res.get()


def threads_map(pool, fn, jobs: list, stop: Stop | None) -> list:  # noqa: ANN001 - a ThreadPoolExecutor, a function
    """``list(pool.map(fn, jobs))`` for a thread pool; with ``stop``, waited on in steps of ``POLL_S``, reading the
    request in between (for chains inside a compiled call that reads only the flag)."""
    if stop is None:
        return list(pool.map(fn, jobs))
    from concurrent.futures import wait

    futs = [pool.submit(fn, j) for j in jobs]
    while wait(futs, POLL_S).not_done:
        stop()
    return [f.result() for f in futs]


class _Power:
    """Power in use over time against the peak cap minus the forecast base load.

    Both are step functions kept as breakpoints (``ts``: sorted segment starts from 0, the last segment runs on
    forever with the last base load and no operation), so the size follows the number of operations and base-load
    periods, not the length of the plan, and :meth:`push` ends: past the last breakpoint an operation either fits
    or never does (a ``ValueError``)."""

    def __init__(self, problem: SchedulingProblem, horizon: int = 0) -> None:
        en = problem.energy
        assert en is not None and en.peak_cap_kw is not None
        self.en = en
        self.cap = en.peak_cap_kw
        self.p = 0.0
        base = list(en.base_load_kw) or [0.0]
        self.ts = [k * en.period for k in range(len(base))]
        self.use = [0.0] * len(base)  # power of the placed operations per segment
        self.base = base  # base load per segment
        self.load = [u + b for u, b in zip(self.use, base, strict=True)]  # use + base per segment

    def set_op(self, p: float) -> None:
        self.p = p

    def _split(self, t: int) -> int:
        """Index of the segment starting at ``t`` (split there when needed)."""
        k = bisect.bisect_right(self.ts, t) - 1
        if k >= 0 and self.ts[k] == t:
            return k
        src = max(k, 0)  # before 0 (times are >= 0 in a plan): the first segment's values
        self.ts.insert(k + 1, t)
        self.use.insert(k + 1, self.use[src])
        self.base.insert(k + 1, self.base[src])
        self.load.insert(k + 1, self.load[src])
        return k + 1

    def push(self, t: int, dur: int, tl: object, span: bool, limit: float = INF) -> int:
        """Earliest start >= t where the operation's power fits under the cap for all of ``dur``; or, as soon as
        that start is known to end past ``limit`` (the end of the gap searched), some later start that ends past
        it too (the gap has no room: the search goes on in the next gap, not through the rest of the profile)."""
        if self.p <= 0 or dur <= 0:
            return t
        ts, load, p, cap = self.ts, self.load, self.p, self.cap + 1e-9
        n = len(ts)
        k = max(0, bisect.bisect_right(ts, t) - 1)
        end = t + dur
        if end > limit:
            return t
        while k < n and ts[k] < end:
            if load[k] + p > cap:
                if k + 1 == n:
                    raise ValueError(f"peak power cap too low: an operation of {p:g} kW never fits under "
                                     f"{self.cap:g} kW with the base load after t={ts[k]}")
                t = ts[k + 1]
                end = t + dur
                if end > limit:
                    return t
            k += 1
        return t

    def add(self, t: int, dur: int, p: float) -> None:
        if dur <= 0:
            return
        a = self._split(t)
        b = self._split(t + dur)
        use, base, load = self.use, self.base, self.load
        for k in range(a, b):
            use[k] += p
            load[k] = use[k] + base[k]


def setup_end(starts: list[int], ends: list[int], after: int, setup: int) -> int:
    """When a setup of ``setup`` time units begun at the earliest at ``after`` ends, in working time: the first
    stretch of that length that overlaps none of the blocks ``starts``/``ends`` (sorted, disjoint). A setup takes
    the machine and its crew, so it is not done in a holiday, a break, off shift or a maintenance window."""
    t = after
    while True:
        i = bisect.bisect_right(ends, t)
        if i < len(starts) and starts[i] < t + setup:
            t = ends[i]
            continue
        return t + setup


def setup_start_latest(starts: list[int], ends: list[int], before: int, setup: int) -> int:
    """The latest start of a setup that must end by ``before``, in working time (blocks as ``setup_end`` takes)."""
    t = before - setup
    while True:
        i = bisect.bisect_left(starts, t + setup) - 1
        if i >= 0 and ends[i] > t:
            t = starts[i] - setup
            continue
        return t


class _FastTimeline:
    """Busy entries of one machine as parallel sorted lists; families as small ints (-1: none, -2: not an op)."""

    __slots__ = ("st", "en", "fm", "S", "ba", "bn", "ea", "enn", "snn")

    def __init__(self, mach, setup_rows: list[list[int]] | None) -> None:
        self.st: list[int] = []
        self.en: list[int] = []
        self.fm: list[int] = []
        self.S = setup_rows  # S[a][b]: setup from family a to family b on this machine (None: no setups)
        self.ba = [(d.start, d.end) for d in mach.blocking(True)]
        self.bn = [(d.start, d.end) for d in mach.blocking(False)]
        self.ea = [e for _, e in self.ba]
        self.enn = [e for _, e in self.bn]
        self.snn = [b for b, _ in self.bn]

    def insert(self, s: int, e: int, f: int) -> None:
        """Entry [s, e), kept sorted by (start, end): a zero-length operation goes before an entry that starts when
        it does (after it, it hid that entry from the gap search; ``_dispatch_core._insert``)."""
        i = bisect.bisect_right(self.st, s)
        st, en = self.st, self.en
        while i > 0 and st[i - 1] == s and en[i - 1] > e:
            i -= 1
        self.st.insert(i, s)
        self.en.insert(i, e)
        self.fm.insert(i, f)

    def prev_family(self, start: int) -> int:
        """Family of the last operation entry starting at or before ``start`` (-1 when none)."""
        fm = self.fm
        k = bisect.bisect_right(self.st, start) - 1
        while k >= 0 and fm[k] == -2:
            k -= 1
        return fm[k] if k >= 0 else -1

    def earliest_fit(self, est: int, dur: int, f: int, span: bool, power=None) -> int:
        st, en, fm, S = self.st, self.en, self.fm, self.S
        n = len(st)
        blocks, ends = (self.ba, self.ea) if span else (self.bn, self.enn)
        nb = len(blocks)
        g = bisect.bisect_right(st, est) - 1
        if g < 0:
            g = 0
        use_setups = S is not None and f >= 0
        window = S is not None and f == -2  # a maintenance window (``_dispatch_core._fit``)
        while True:
            lo = est
            if g > 0 and en[g - 1] > lo:
                lo = en[g - 1]
            if g < n:
                hi = st[g]
                if dur == 0 and en[g] == hi:
                    hi -= 1  # at hi it would go after that zero-length operation (insert), not into this gap
                if hi - lo < dur:  # too short even before setups and calendars
                    g += 1
                    continue
            else:
                hi = INF
            if window:  # the setup between the operations around it stays possible, after it
                k = g - 1
                while k >= 0 and fm[k] == -2:
                    k -= 1
                k2 = g
                while k2 < n and fm[k2] == -2:
                    k2 += 1
                if k >= 0 and k2 < n and fm[k] >= 0 and fm[k2] >= 0 and S[fm[k]][fm[k2]] > 0:
                    su = S[fm[k]][fm[k2]]
                    v = setup_start_latest(self.snn, self.enn, st[k2], su)
                    if k2 > g and v < en[k2 - 1]:
                        g += 1
                        continue
                    if v < hi:
                        hi = v
            if use_setups:  # setups in working time (``_dispatch_core._fit``)
                k = g - 1
                while k >= 0 and fm[k] == -2:
                    k -= 1
                if k >= 0 and fm[k] >= 0:
                    su = S[fm[k]][f]
                    if su > 0:
                        v = setup_end(self.snn, self.enn, en[g - 1], su)
                        if v > lo:
                            lo = v
                k = g
                while k < n and fm[k] == -2:
                    k += 1
                if k < n and fm[k] >= 0:
                    su = S[f][fm[k]]
                    if su > 0:
                        v = setup_start_latest(self.snn, self.enn, st[k], su)
                        if k > g and v < en[k - 1]:
                            g += 1
                            continue
                        if v < hi:
                            hi = v
            t = lo
            if lo + dur <= hi:
                pushed = False
                while True:
                    t2 = t
                    if dur > 0:
                        while True:
                            i = bisect.bisect_right(ends, t2)
                            if i < nb and blocks[i][0] < t2 + dur:
                                t2 = blocks[i][1]
                                continue
                            break
                    # a start the power search gave back fits under the cap (or ends past hi): search again only
                    # when the calendar moved it
                    if power is not None and not (pushed and t2 == t):
                        t2 = power.push(t2, dur, self, span, hi)
                        pushed = True
                    if t2 == t:
                        break
                    t = t2
                if t + dur <= hi:
                    return t
            g += 1
            if g > n:  # cannot happen: the last gap is unbounded
                return t


_STATIC: list[tuple[SchedulingProblem, tuple]] = []


def _cached(cache: list, problem: SchedulingProblem, build):
    """``build(problem)``, kept for the last 4 problems (the tail search re-dispatches one problem thousands of
    times)."""
    for p, data in cache:
        if p is problem:
            return data
    data = build(problem)
    cache.insert(0, (problem, data))
    del cache[4:]
    return data


def _static(problem: SchedulingProblem) -> tuple:
    """Index tables of a problem that every dispatch needs (cached for the last few problems)."""
    return _cached(_STATIC, problem, _build_static)


def _build_static(problem: SchedulingProblem) -> tuple:
    keys = problem.op_keys
    idx = {k: i for i, k in enumerate(keys)}
    ops = [problem.op(k) for k in keys]
    jobs = {j.id: j for j in problem.jobs}
    job_of = [jobs[k[0]] for k in keys]
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
    has_setups = problem.has_setups
    sbar = 1.0
    if has_setups:
        vals = [s for s in problem.setups.matrix.values() if s > 0]
        sbar = max(1.0, sum(vals) / len(vals)) if vals else 1.0
    fams = sorted({o.family for o in ops if o.family is not None})
    fidx = {f: i for i, f in enumerate(fams)}
    fam = [fidx[o.family] if o.family is not None else -1 for o in ops]

    setup_rows = {m.id: ([[problem.setups.time(m.id, a, b) for b in fams] for a in fams] if has_setups else None)
                  for m in problem.machines}
    horizon_guess = sum(max(o.durations.values()) for o in ops) + max(j.release for j in problem.jobs) + 1
    data = (keys, idx, ops, job_of, n, preds, succs, tail, pbar, has_setups, sbar, fams, fam, setup_rows,
            horizon_guess, problem.trivial_lower_bound())
    return data


# the generation scheme compiled with numba (optimization/_dispatch_core.py; same plans, a peak power cap included
# since 2026-12-06); False runs the Python scheme below (tests compare both). Below _COMPILED_MIN_OPS operations the
# Python scheme runs until the compiled one is loaded (by a bigger plan, a tail search or ``warm``): loading it from
# numba's cache takes ~0.3 s once per process, when ft10's rules take ~5 ms in Python
_COMPILED = True
_COMPILED_MIN_OPS = 500


def _compiled(problem: SchedulingProblem, n: int) -> bool:
    return _COMPILED and (n >= _COMPILED_MIN_OPS or bool(_core.run.signatures))
_TABLES: list[tuple[SchedulingProblem, _core.Tables]] = []


def _crew_limited_windows(problem: SchedulingProblem) -> bool:
    """Whether a dispatch places maintenance windows that fewer crews than windows must share."""
    risky = problem.maintenance_machines()
    return bool(risky) and problem.risk is not None and problem.risk.crew_limited(risky)


def tables(problem: SchedulingProblem) -> _core.Tables:
    """The compiled scheme's arrays of a problem (cached for the last few problems, like ``_static``)."""
    return _cached(_TABLES, problem, lambda p: _core.Tables(p, _static(p)))


def _fixed_arrays(tb: _core.Tables, fixed: dict[tuple[str, str], tuple[str, int]] | None) -> tuple:
    if not fixed:
        return None, None, None
    fix_m = np.full(tb.n, -1, np.int64)
    fix_s = np.zeros(tb.n, np.int64)
    order = np.empty(len(fixed), np.int64)
    for r, (k, (m, st0)) in enumerate(fixed.items()):
        i = tb.idx[k]
        fix_m[i], fix_s[i], order[r] = tb.mpos[m], st0, i
    return fix_m, fix_s, order


def _window_arrays(tb: _core.Tables, windows: list[MaintenanceWindow]) -> tuple:
    """Maintenance windows as the compiled scheme's (machine index, start, end) arrays."""
    return tuple(np.array(v, np.int64) for v in ([tb.mpos[w.machine] for w in windows], [w.start for w in windows],
                                                 [w.end for w in windows]))


def _plan_arrays(tb: _core.Tables, plan: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """A plan as (machine index, start) per operation."""
    mach = np.empty(tb.n, np.int64)
    start = np.empty(tb.n, np.int64)
    for a in plan.assignments:
        i = tb.idx[a.key]
        mach[i], start[i] = tb.mpos[a.machine], a.start
    return mach, start


def _plan(problem: SchedulingProblem, tb: _core.Tables, out_m, out_s, order, wins, method: str, setup_fields: bool,
          t0: float) -> Schedule:
    """A Schedule from the compiled scheme's arrays (assignments in placement order)."""
    keys, mids, dur = tb.keys, tb.mids, tb.dur
    ms, ss = out_m.tolist(), out_s.tolist()
    assigns = []
    for i in order.tolist():
        m, s = ms[i], ss[i]
        assigns.append(Assignment(keys[i][0], keys[i][1], mids[m], s, s + dur[(i, m)]))
    if setup_fields:
        assigns = with_setups(problem, assigns)
    obj = evaluate(problem, assigns)
    windows = [MaintenanceWindow(mids[m], s, e) for m, s, e in wins]
    return Schedule(assignments=assigns, status="FEASIBLE", makespan=int(obj["makespan"]),
                    lower_bound=_static(problem)[-1], objective=obj, wall_s=time.perf_counter() - t0,
                    stats={"method": method}, maintenance=windows)


def dispatch(problem: SchedulingProblem, rule: str = "mwkr", atc_k: float = 2.0, atc_k2: float = 1.0,
             atc_work: float = 0.0, fixed: dict[tuple[str, str], tuple[str, int]] | None = None,
             fixed_windows: list[MaintenanceWindow] | None = None, job_bias: dict[str, float] | None = None,
             setup_fields: bool = True, deadline: float | None = None,
             stop: Stop | threading.Event | None = None) -> Schedule:
    """One dispatching-rule plan (always complete; check it with :func:`optimization.check.verify`).

    Same plan as the original generator (tests/optimization/reference_dispatch.py: same candidates, priorities
    and tie-breaks), computed with per-machine sorted lists, integer family/setup tables, priorities cached with
    each operation's best fit (they only change when its machine's timeline changes), its fit on each eligible
    machine cached with that timeline's version (only the changed machines are searched again) and the per-step
    selection vectorised over all operations. With a peak power cap (the Python scheme) a fit is also searched again
    when the new operation's power pushed it over the cap (:func:`_power_stale`; the reference refits every ready
    operation at each step, tests/optimization/test_power_dispatch.py).

    Tail re-dispatch (:func:`tail_search`): ``fixed`` maps operations to (machine, start) kept as they are (a prefix
    of an earlier plan, closed under predecessors); ``fixed_windows`` are that plan's maintenance windows (placed
    anew when None); ``job_bias`` multiplies a job's weight in the ATC priority; ``setup_fields=False`` leaves
    ``Assignment.setup`` at 0 (the objective does not need it; fill it with ``solution.with_setups``).
    ``deadline`` (a ``time.perf_counter()`` value): past it the Python scheme stops with :class:`DispatchTimeout`.
    ``stop`` (:class:`Stop`): once set, either scheme stops within 64 placements with :class:`DispatchStopped`.
    """
    if rule not in RULES:
        raise ValueError(f"unknown dispatching rule {rule!r}; use one of {RULES}")
    stop = as_stop(stop)
    t0 = time.perf_counter()
    (keys, idx, ops, job_of, n, preds, succs, tail, pbar, has_setups, sbar, fams, fam, setup_rows, horizon_guess,
     lower_bound) = _static(problem)
    # the compiled scheme places new maintenance windows without the crews' limit: a crew-limited plan whose windows
    # are placed here takes the Python scheme (before, every plan dispatched once the compiled code was loaded in the
    # process, or of 500 operations or more, broke the limit, and failed its check)
    if _compiled(problem, n) and (fixed_windows is not None or not _crew_limited_windows(problem)):
        tb = tables(problem)
        fix = _fixed_arrays(tb, fixed)
        wins = _window_arrays(tb, fixed_windows) if fixed_windows is not None else None
        bias = None
        if job_bias is not None:
            bias = np.array([job_bias.get(j.id, 1.0) for j in tb.jobs], np.float64)
        out_m, out_s, order, new_wins = tb.run(rule, atc_k, atc_k2, atc_work, *fix, windows=wins, bias=bias,
                                               deadline=deadline, stop=stop)
        return _plan(problem, tb, out_m, out_s, order, new_wins, f"dispatch:{rule}", setup_fields, t0)

    timelines: dict[str, _FastTimeline] = {}
    for mach in problem.machines:
        timelines[mach.id] = _FastTimeline(mach, setup_rows[mach.id])
    power = _Power(problem, min(horizon_guess, 2_000_000)) if problem.energy and problem.energy.peak_cap_kw else None

    placed: dict[int, tuple[str, int, int]] = {}
    end_of = [0] * n
    for i, o in enumerate(ops):
        if o.pinned_machine is not None and o.pinned_start is not None:
            d = o.durations[o.pinned_machine]
            timelines[o.pinned_machine].insert(o.pinned_start, o.pinned_start + d, fam[i])
            placed[i] = (o.pinned_machine, o.pinned_start, o.pinned_start + d)
            end_of[i] = o.pinned_start + d
            if power is not None:
                power.add(o.pinned_start, d, o.power_kw)
    if fixed:
        # a fixed prefix of an earlier plan (closed under predecessors): kept as it is, the rest is dispatched
        for k, (m, st0) in fixed.items():
            i = idx[k]
            if i in placed:
                continue
            d = ops[i].durations[m]
            timelines[m].insert(st0, st0 + d, fam[i])
            placed[i] = (m, st0, st0 + d)
            end_of[i] = st0 + d
            if power is not None:
                power.add(st0, d, ops[i].power_kw)
    windows: list[MaintenanceWindow] = []
    if fixed_windows is not None:
        for w in fixed_windows:
            timelines[w.machine].insert(w.start, w.end, -2)
            windows.append(w)
    elif problem.maintenance_machines():
        r = problem.risk
        assert r is not None
        if power is not None:
            power.set_op(0.0)
        risky = problem.maintenance_machines()
        crews = r.crews if r.crew_limited(risky) else None
        busy: list[tuple[int, int]] = []  # the windows placed so far: the crews' work (the riskiest machine first)
        for m in r.service_order(risky) if crews is not None else risky:
            tl = timelines[m]

            def fits(t: int, tl=tl) -> int:  # noqa: ANN001
                return tl.earliest_fit(t, r.window_duration, -2, True)

            want = max(0, r.deadline - r.window_duration) if r.deadline is not None else 0
            t = crewed_start(fits, r.window_duration, busy, crews, want)
            if r.deadline is not None and t + r.window_duration > r.deadline:
                t = crewed_start(fits, r.window_duration, busy, crews)
            tl.insert(t, t + r.window_duration, -2)
            busy.append((t, t + r.window_duration))
            windows.append(MaintenanceWindow(m, t, t + r.window_duration))

    k_atc = atc_k if rule == "atc" else 0.5
    m_ids = [m.id for m in problem.machines]
    dur_on = [[(m, o.durations[m]) for m in o.machines] for o in ops]
    pw = [o.power_kw for o in ops]

    # each ready operation's earliest fit per eligible machine, with the version of that machine's timeline it was
    # computed on: a refresh recomputes only the machines that changed since (an operation's ready time is fixed
    # once it is ready). With a peak power cap a placement also raises the power in use over its interval, which
    # only removes feasible starts: a fit whose interval misses the new operation's stays exact, and one that
    # overlaps it is searched again from its old start (version -2), not from the ready time (docs/scheduling.md).
    version = dict.fromkeys(m_ids, 0)
    fits: dict[int, list[list]] = {}

    def fit(i: int) -> tuple[int, int, str]:
        o = ops[i]
        if power is not None:
            power.set_op(o.power_kw)
        cached = fits.get(i)
        if cached is None:
            e = job_of[i].release
            for a, lag in preds[i]:
                v = end_of[a] + lag
                if v > e:
                    e = v
            cached = [[m, d, -1, 0, e] for m, d in dur_on[i]]
            fits[i] = cached
        best = None
        fi, span = fam[i], o.can_span_break
        for entry in cached:
            m, d, ver, t, e = entry
            if ver != version[m]:
                t = timelines[m].earliest_fit(t if ver == -2 else e, d, fi, span, power)
                entry[2], entry[3] = version[m], t
            c = (t + d, t, m)
            if best is None or c < best:
                best = c
        assert best is not None
        return best

    def priority(i: int, start: int, m: str) -> float:
        d = ops[i].durations[m]
        if rule == "spt":
            return d
        if rule == "mwkr":
            return -tail[i]
        job = job_of[i]
        if rule == "edd":
            due = job.due if job.due is not None else INF
            return due - tail[i] * 1e-6
        due = job.due if job.due is not None else 10**12
        slack = max(0.0, due - tail[i] - start)
        setup = 0
        if has_setups:
            tl = timelines[m]
            q = tl.prev_family(start)
            setup = tl.S[q][fam[i]] if q >= 0 and fam[i] >= 0 else 0
        w = max(job.weight, 1e-6)
        # atc_work > 0 (start-plan variants only): the processing time is blended with the work left in the job
        p_eff = d if not atc_work else (1.0 - atc_work) * d + atc_work * tail[i]
        if job_bias is not None:
            w *= job_bias.get(job.id, 1.0)
        val = (w / max(p_eff, 1)) * math.exp(-slack / (k_atc * pbar)) * math.exp(-setup / (atc_k2 * sbar))
        return -val

    comp_a = np.full(n, np.inf)
    start_a = np.full(n, np.inf)
    prio_a = np.full(n, np.inf)
    mach_of: dict[int, str] = {}
    on_machine: dict[str, set[int]] = {m: set() for m in m_ids}

    def refresh(i: int) -> None:
        c, s, m = fit(i)
        old = mach_of.get(i)
        if old is not None and old != m:
            on_machine[old].discard(i)
        mach_of[i] = m
        on_machine[m].add(i)
        comp_a[i], start_a[i], prio_a[i] = c, s, priority(i, s, m)

    remaining_preds = [sum(1 for a, _ in preds[i] if a not in placed) for i in range(n)]
    ready = {i for i in range(n) if i not in placed and remaining_preds[i] == 0}
    for i in sorted(ready):
        refresh(i)
    while ready:
        if deadline is not None and time.perf_counter() > deadline:
            raise DispatchTimeout(f"dispatching rule {rule!r} placed {len(placed)} of {n} operations within the "
                                  "time limit")
        if stop is not None and (len(placed) & 63) == 0 and stop():
            raise DispatchStopped(f"the solve was stopped before dispatching rule {rule!r} finished its plan")
        c_star = comp_a.min()
        cand = np.flatnonzero((start_a < c_star) | (comp_a == c_star))
        if len(cand) > 1:
            pv = prio_a[cand]
            cand = cand[pv == pv.min()]
            if len(cand) > 1:
                cv = comp_a[cand]
                cand = cand[cv == cv.min()]
        best_i = int(cand[0])
        comp, start, m = int(comp_a[best_i]), int(start_a[best_i]), mach_of.pop(best_i)
        on_machine[m].discard(best_i)
        comp_a[best_i] = start_a[best_i] = prio_a[best_i] = np.inf
        o = ops[best_i]
        timelines[m].insert(start, comp, fam[best_i])
        version[m] += 1
        fits.pop(best_i, None)
        placed[best_i] = (m, start, comp)
        end_of[best_i] = comp
        ready.discard(best_i)
        if power is not None:
            power.add(start, comp - start, o.power_kw)
            stale = _power_stale(ready, fits, m, start, comp, o.power_kw, pw, power)
        else:
            stale = sorted(on_machine[m])
        for s in succs[best_i]:
            if s in placed:
                continue
            remaining_preds[s] -= 1
            if remaining_preds[s] == 0:
                ready.add(s)
                stale.append(s)
        for i in stale:
            refresh(i)
    if len(placed) != n:
        raise ValueError("dispatching could not place every operation (precedence with a pinned operation?)")
    assigns = [Assignment(keys[i][0], keys[i][1], m, s, e) for i, (m, s, e) in placed.items()]
    if setup_fields:
        assigns = with_setups(problem, assigns)
    obj = evaluate(problem, assigns)
    return Schedule(assignments=assigns, status="FEASIBLE", makespan=int(obj["makespan"]),
                    lower_bound=lower_bound, objective=obj, wall_s=time.perf_counter() - t0,
                    stats={"method": f"dispatch:{rule}"}, maintenance=windows)


def _power_stale(ready: set[int], fits: dict[int, list[list]], m: str, s: int, e: int, p: float,
                 pw: list[float], power: _Power) -> list[int]:
    """The ready operations whose fits must be refreshed after an operation of power ``p`` went onto machine ``m``
    at [s, e) (a peak power cap; ``power`` already holds it): those eligible on ``m`` (its timeline changed) and
    those with a fit (of nonzero power and length) that now exceeds the cap somewhere in [s, e), which is marked -2:
    searched again from its old start. More power in use only removes feasible starts, so every other fit is still
    the earliest (tests/optimization/test_power_dispatch.py compares the plans with the reference generator, which
    refits every ready operation at each step)."""
    out = []
    hot = p > 0 and e > s
    if hot:
        ts, load, cap = power.ts, power.load, power.cap + 1e-9
        a = bisect.bisect_right(ts, s) - 1
        b = bisect.bisect_left(ts, e, a)
        top = max(load[a:b])  # the highest load in [s, e) now
    for i in sorted(ready):
        pi = pw[i]
        if not (hot and pi > 0 and top + pi > cap):  # fits under the cap wherever the load rose
            for entry in fits[i]:
                if entry[0] == m:
                    out.append(i)
                    break
            continue
        hit = False
        for entry in fits[i]:
            if entry[0] == m:
                hit = True
            elif entry[1] > 0 and entry[3] < e and entry[3] + entry[1] > s:
                # the fit's interval overlaps [s, e): is it still under the cap where the load rose?
                lo, hi = max(s, entry[3]), min(e, entry[3] + entry[1])
                k = bisect.bisect_right(ts, lo, a, b) - 1
                while k < b and ts[k] < hi:
                    if load[k] + pi > cap:
                        entry[2] = -2
                        hit = True
                        break
                    k += 1
        if hit:
            out.append(i)
    return out


def rules_for(objective: str) -> tuple[str, ...]:
    if objective == "makespan":
        return ("mwkr", "spt", "atc_fast")
    return ("atc", "edd", "atc_fast", "mwkr")


def best_dispatch(problem: SchedulingProblem, score, rules: tuple[str, ...] = RULES,
                  time_budget_s: float = INF, check=None, deadline: float | None = None,
                  stop: Stop | threading.Event | None = None) -> tuple[Schedule, dict[str, float]]:
    """Run several rules; return the plan with the smallest ``score(schedule)`` and each rule's score.

    ``check(schedule) -> bool`` filters infeasible plans (pinned work can defeat a greedy rule). No rule runs past
    ``deadline`` (the solve's: a ``time.perf_counter()`` value), nor once ``stop`` is set (the best plan so far
    comes back; :class:`DispatchStopped` when there is none yet).
    """
    stop = as_stop(stop)
    t0 = time.perf_counter()
    best: Schedule | None = None
    best_score = INF
    scores: dict[str, float] = {}
    for rule in rules:
        if stop is not None and stop():
            if best is None:
                raise DispatchStopped("the solve was stopped before a dispatching rule had a plan")
            break
        try:
            s = dispatch(problem, rule, deadline=deadline, stop=stop)
        except DispatchTimeout:
            if best is None:
                raise
            break
        except ValueError:
            continue
        ok = check(s) if check is not None else True
        if not ok:  # kept only while no rule has a plan the checker passes (the caller checks it again)
            scores[rule] = None
            if best is None:
                best = s
            continue
        sc = scores[rule] = score(s)
        if best_score is INF or sc < best_score:
            best, best_score = s, sc
        if time.perf_counter() - t0 > time_budget_s:
            break
    if best is None:
        raise ValueError("no dispatching rule produced a plan")
    return best, scores


# (look-ahead k, share of the job's remaining work in the processing time): measured on gen_shop plans
ATC_VARIANTS = ((12.0, 0.3), (20.0, 0.6), (20.0, 0.3), (12.0, 0.6), (8.0, 0.3), (30.0, 0.3), (12.0, 0.15),
                (5.0, 1.0), (40.0, 0.5), (3.0, 0.5))


def atc_variants(problem: SchedulingProblem, score, variants: tuple[tuple[float, float], ...] = ATC_VARIANTS,
                 time_budget_s: float = INF, check=None,
                 stop: Stop | threading.Event | None = None) -> tuple[Schedule | None, dict[str, float]]:
    """ATC with other look-ahead parameters and the job's remaining work blended into the processing time (for
    overloaded shops, where every slack is zero and plain ATC degenerates to a myopic w/p); extra start plans for
    big plans, best by ``score``. Stops when ``time_budget_s`` is spent or ``stop`` is set."""
    stop = as_stop(stop)
    t0 = time.perf_counter()
    best: Schedule | None = None
    best_score = INF
    scores: dict[str, float] = {}
    for k, aw in variants:
        if time.perf_counter() - t0 > time_budget_s or (stop is not None and stop()):
            break
        try:  # a variant still running when the budget is spent stops (DispatchTimeout is a ValueError)
            s = dispatch(problem, "atc", atc_k=k, atc_work=aw, deadline=t0 + time_budget_s, stop=stop)
        except ValueError:
            continue
        sc = score(s)
        name = f"atc(k={k:g},work={aw:g})"
        if (best is None or sc < best_score) and (check is None or check(s)):
            best, best_score = s, sc
            s.stats["method"] = f"dispatch:{name}"
        scores[name] = sc
    return best, scores


def atc_search(problem: SchedulingProblem, score, time_budget_s: float, seed: int = 0, start: tuple = (12.0, 0.3, 1.0),
               check=None) -> tuple[Schedule | None, dict[str, float]]:
    """Random search over the ATC variant parameters (look-ahead k, remaining-work share, setup scale k2): half the
    samples anywhere in the box, half around the best so far. Deterministic for a seed; stops on the budget."""
    import random

    rng = random.Random(seed)
    t0 = time.perf_counter()
    best: Schedule | None = None
    best_score = INF
    best_par = start
    scores: dict[str, float] = {}
    per = None
    while True:
        used = time.perf_counter() - t0
        if used + (per or 0.0) > time_budget_s:
            break
        if best is None or rng.random() < 0.5:
            par = (math.exp(rng.uniform(math.log(5), math.log(60))), rng.uniform(0.1, 1.0),
                   math.exp(rng.uniform(math.log(0.5), math.log(3))))
        else:
            k, aw, k2 = best_par
            par = (k * math.exp(rng.gauss(0, 0.3)), min(1.0, max(0.0, aw + rng.gauss(0, 0.15))),
                   k2 * math.exp(rng.gauss(0, 0.3)))
        ts = time.perf_counter()
        try:
            s = dispatch(problem, "atc", atc_k=par[0], atc_work=par[1], atc_k2=par[2])
        except ValueError:
            continue
        per = time.perf_counter() - ts
        sc = score(s)
        name = f"atc(k={par[0]:.3g},work={par[1]:.2g},k2={par[2]:.2g})"
        scores[name] = sc
        if (best is None or sc < best_score) and (check is None or check(s)):
            best, best_score, best_par = s, sc, par
            s.stats["method"] = f"dispatch:{name}"
    return best, scores


# ---- iterated re-dispatch of the tail (big plans) -----------------------------------------------------------------

def _random_par(rng, best_par: tuple[float, float, float]) -> tuple[float, float, float]:
    """ATC parameters (look-ahead k, remaining-work share, setup scale k2): half anywhere, half around the best."""
    if rng.random() < 0.5:
        return (math.exp(rng.uniform(math.log(5), math.log(60))), rng.uniform(0.1, 1.0),
                math.exp(rng.uniform(math.log(0.5), math.log(10))))
    k, aw, k2 = best_par
    return (k * math.exp(rng.gauss(0, 0.3)), min(1.0, max(0.0, aw + rng.gauss(0, 0.15))),
            k2 * math.exp(rng.gauss(0, 0.3)))


def _draw(rng, cur_par: tuple[float, float, float], cut_range: tuple[float, float],
          n_jobs: int) -> tuple[float, tuple[float, float, float], list[float] | None]:
    """One tail re-dispatch's random choices (both chains draw them here, in this order): the cut's quantile, the ATC
    parameters and, every other time, per-job weight factors."""
    u = rng.uniform(*cut_range)
    q = _random_par(rng, cur_par)
    factors = None
    if rng.random() < 0.5:
        sg = rng.choice((0.05, 0.1, 0.2))
        factors = [math.exp(rng.gauss(0, sg)) for _ in range(n_jobs)]
    return u, q, factors


def _within(sc, ref, tau: float) -> bool:
    """Threshold acceptance: ``sc`` better than ``ref`` or at most ``tau`` (relative) worse on the first term."""
    if sc < ref:
        return True
    a, b = (sc[0], ref[0]) if isinstance(sc, tuple) else (sc, ref)
    return tau > 0 and a <= b * (1 + tau)


def _tail_chain(problem: SchedulingProblem, incumbent: Schedule, score, par: tuple[float, float, float], seed: int,
                time_budget_s: float, max_iters: int | None, check=None, cut_range: tuple[float, float] = (0.2, 0.9),
                tau: float = 0.0, stop: Stop | None = None) -> tuple[Schedule, tuple[float, float, float], int, int]:
    """One chain of tail re-dispatches from ``incumbent``: keep every operation that starts before a random cut
    time (a quantile of the start times in ``cut_range``; measured on gen_shop plans: cuts before the 20% quantile
    almost never pay off), dispatch the rest by ATC with random parameters (and, every other time, small random
    per-job weight factors), keep the plan when it scores strictly better (``tau`` > 0: also when at most ``tau``
    worse, threshold accepting; 0.002 was not better on gen_shop plans: +0.3 points on seed 0, -1.2 on seed 1).
    Returns (best, its parameters, iterations, improvements); deterministic for a seed when ``max_iters`` bounds
    it. Stops early once ``stop`` is set."""
    import random

    rng = random.Random(seed)
    t0 = time.perf_counter()
    best, best_score, best_par = incumbent, score(incumbent), par
    cur, cur_score, cur_par = best, best_score, par
    starts = sorted(a.start for a in cur.assignments)
    it = acc = 0
    per = 0.0
    while True:
        if max_iters is not None and it >= max_iters:
            break
        if max_iters is None and time.perf_counter() - t0 + per > time_budget_s:
            break
        if stop is not None and stop():
            break
        it += 1
        u, q, factors = _draw(rng, cur_par, cut_range, len(problem.jobs))
        cut = starts[int(u * len(starts))]
        fixed = {a.key: (a.machine, a.start) for a in cur.assignments if a.start < cut}
        bias = None if factors is None else {j.id: f for j, f in zip(problem.jobs, factors, strict=True)}
        ts = time.perf_counter()
        try:
            s = dispatch(problem, "atc", atc_k=q[0], atc_work=q[1], atc_k2=q[2], fixed=fixed,
                         fixed_windows=cur.maintenance, job_bias=bias, setup_fields=False, stop=stop)
        except ValueError:
            continue
        per = max(per * 0.8, time.perf_counter() - ts)
        sc = score(s)
        if sc == cur_score or not _within(sc, cur_score, tau):
            continue
        s.assignments = with_setups(problem, s.assignments)
        if check is not None and not check(s):
            continue
        cur, cur_score, cur_par = s, sc, q
        starts = sorted(a.start for a in cur.assignments)
        s.stats["method"] = f"dispatch:atc-tail(k={q[0]:.3g},work={q[1]:.2g},k2={q[2]:.2g})"
        if sc < best_score:
            best, best_score, best_par = s, sc, q
            acc += 1
    return best, best_par, it, acc


def array_scorer(problem: SchedulingProblem, stages: list[dict[str, float]]):
    """``solver.score`` of a plan given as (machine index, start) arrays of the compiled scheme, for stages over
    tardiness, makespan and the risk penalty; None for other terms (energy). Sums in the order ``evaluate`` does."""
    if any(w and t not in ("tardiness", "makespan", "risk") for st in stages for t, w in st.items()):
        return None
    tb = tables(problem)
    n, M = tb.n, len(tb.mids)
    dur = np.zeros((n, M), np.int64)
    for (i, m), d in tb.dur.items():
        dur[i, m] = d
    rows = np.arange(n)
    first = tb.job_first[:-1]
    due = tb.due.astype(np.int64)
    weights = [j.weight for j in tb.jobs]
    rate = tb.risk_rate
    penalty = problem.risk is not None and problem.risk.policy == "penalty"

    def score(mach: np.ndarray, start: np.ndarray) -> tuple[float, ...]:
        d = dur[rows, mach]
        end = start + d
        comp = np.maximum.reduceat(end, first)
        late = np.flatnonzero(tb.has_due & (comp > due))
        wt = 0.0
        for t, c in zip(late.tolist(), (comp[late] - due[late]).tolist(), strict=True):
            wt += weights[t] * c
        vals = {"tardiness": round(wt, 4), "makespan": int(end.max()) if n else 0, "risk": 0.0}
        risk = 0.0
        if penalty:
            rk = rate[mach]
            for v, x in zip(rk.tolist(), d.tolist(), strict=True):
                if v:
                    risk += v * x
            vals["risk"] = risk = round(risk, 4)
        return tuple(round(sum(w * vals[t] for t, w in st.items() if w) + risk, 6) for st in stages)

    return score


def _tail_chain_compiled(problem: SchedulingProblem, incumbent: Schedule, fast_score, par: tuple[float, float, float],
                         seed: int, time_budget_s: float, max_iters: int | None, check=None,
                         cut_range: tuple[float, float] = (0.2, 0.9), tau: float = 0.0,
                         stop: Stop | None = None) -> tuple[Schedule, tuple[float, float, float], int, int]:
    """:func:`_tail_chain` on the compiled scheme: the plans stay arrays, scored by ``fast_score``
    (:func:`array_scorer`); the same random choices, so the same moves as the Python chain. Only the chain's best
    plan becomes a Schedule and goes through ``check`` (the incumbent comes back when it fails)."""
    import random

    t0 = time.perf_counter()
    tb = tables(problem)
    rng = random.Random(seed)
    n = tb.n
    cur_m, cur_s = _plan_arrays(tb, incumbent)
    wins = _window_arrays(tb, incumbent.maintenance)
    cur_score, cur_par = fast_score(cur_m, cur_s), par
    best = None
    best_score, best_par = cur_score, par
    starts = np.sort(cur_s)
    it = acc = 0
    per = 0.0
    while True:
        if max_iters is not None and it >= max_iters:
            break
        if max_iters is None and time.perf_counter() - t0 + per > time_budget_s:
            break
        if stop is not None and stop():
            break
        it += 1
        u, q, factors = _draw(rng, cur_par, cut_range, len(tb.jobs))
        cut = starts[int(u * n)]
        mask = cur_s < cut
        bias = None if factors is None else np.array(factors)
        ts = time.perf_counter()
        try:
            out_m, out_s, order, _ = tb.run("atc", q[0], q[2], q[1], np.where(mask, cur_m, -1), cur_s,
                                            np.flatnonzero(mask), windows=wins, bias=bias, stop=stop)
        except ValueError:
            continue
        per = max(per * 0.8, time.perf_counter() - ts)
        sc = fast_score(out_m, out_s)
        if sc == cur_score or not _within(sc, cur_score, tau):
            continue
        cur_m, cur_s, cur_score, cur_par = out_m, out_s, sc, q
        starts = np.sort(cur_s)
        if sc < best_score:
            best, best_score, best_par = (out_m, out_s, order), sc, q
            acc += 1
    if best is None:
        return incumbent, par, it, 0
    out = _plan(problem, tb, *best, [(int(m), int(s), int(e)) for m, s, e in zip(*wins, strict=True)],
                f"dispatch:atc-tail(k={best_par[0]:.3g},work={best_par[1]:.2g},k2={best_par[2]:.2g})", True, t0)
    if check is not None and not check(out):
        return incumbent, par, it, 0
    return out, best_par, it, acc


def fork_pool(processes: int, initializer=None, initargs: tuple = ()):
    """A pool of ``processes`` forked workers for the search chains, or None where forking is not safe or possible:
    one process asked for, no ``fork`` start method, or other threads running (e.g. inside the HTTP server, where a
    fork would copy locks held by other threads). Callers then run one chain in this process."""
    import multiprocessing as mp
    import threading

    if processes < 2 or threading.active_count() != 1 or "fork" not in mp.get_all_start_methods():
        return None
    try:
        return mp.get_context("fork").Pool(processes, initializer=initializer, initargs=initargs)
    except OSError:
        return None


_POOL_STATE: dict = {}


def _pool_init(problem, score, check, fast_score=None, stop=None) -> None:
    _POOL_STATE.update(problem=problem, score=score, check=check, fast_score=fast_score, stop=stop)


def _pool_chain(args):
    inc, par, seed, budget, iters, tau = args
    st = _POOL_STATE
    return _chain(st["problem"], inc, st["score"], st["fast_score"], par, seed, budget, iters, st["check"], tau,
                  st["stop"])


def _chain(problem, inc, score, fast_score, par, seed, budget, iters, check, tau, stop=None):
    if fast_score is not None:
        return _tail_chain_compiled(problem, inc, fast_score, par, seed, budget, iters, check, tau=tau, stop=stop)
    return _tail_chain(problem, inc, score, par, seed, budget, iters, check, tau=tau, stop=stop)


def _chain_args(args):
    return _chain(*args)


def tail_search(problem: SchedulingProblem, incumbent: Schedule, score, time_budget_s: float, seed: int = 0,
                check=None, workers: int = 1, start_par: tuple[float, float, float] = (12.0, 0.3, 1.0),
                round_s: float = 6.0, max_iters: int | None = None, round_iters: int = 8,
                tau: float = 0.0, stages: list[dict[str, float]] | None = None, restart_rounds: int = 0,
                restart_share: float = 0.5, stop: Stop | threading.Event | None = None,
                checkpoint: Checkpoints | None = None) -> Schedule:
    """Iterated greedy over dispatching: re-dispatch the tail of the incumbent after a random cut time with random
    ATC parameters and keep improvements (:func:`_tail_chain`). It replaces the full-plan parameter search of
    :func:`atc_search` for big plans: a cut keeps the good beginning of the plan while the rest is re-planned, so
    gains add up (cuts start at the 20% quantile; earlier ones almost never paid off).

    With ``workers`` > 1 (and the ``fork`` start method, no other threads), as many processes run independent chains
    for ``round_s`` seconds each round, starting from the best plan of the last round. ``max_iters`` (total
    iterations, in rounds of ``round_iters`` per worker) replaces the time budget and makes it deterministic for a
    seed. Never returns a plan scoring worse than ``incumbent``.

    ``stages`` (the solver's objective stages, which ``score`` evaluates): the chains run on the compiled scheme
    (:func:`_tail_chain_compiled`, ~15 times as many moves on 5,000 operations) when the problem has no peak power
    cap and the stages only use tardiness, makespan and the risk penalty.

    ``restart_rounds``: the first rounds run each worker's chain from ``incumbent`` again (new seeds), not from the
    best plan so far, for ``restart_share`` of the budget in all; then the rounds go on from the best plan they
    found. A chain finds most of its gain in its first seconds and then stalls at a local optimum that depends on
    its first big steps, so the best of several short chains beats one long chain (docs/scheduling.md).

    ``stop`` (:class:`Stop`, or an event): once set, the chains end their re-dispatch (a compiled one within 64
    placements) and the best plan so far comes back. ``checkpoint``: offered the best plan after each round that
    improved it (:class:`Checkpoints`)."""
    stop = as_stop(stop)
    t0 = time.perf_counter()
    restart_s = restart_share * time_budget_s / max(1, restart_rounds)
    best, best_par = incumbent, start_par
    best_score = score(best)
    its = accs = rounds = 0
    workers = max(1, workers)
    fast = None
    if stages is not None and _COMPILED:
        fast = array_scorer(problem, stages)  # builds the tables and loads the compiled code before any fork
        if fast is not None:
            try:
                tables(problem).run("atc", 2.0, 1.0, 0.0, stop=stop)
            except DispatchStopped:
                pass
    threads = pool = None
    if fast is not None and workers > 1:
        # the compiled generator releases the GIL: the chains run in threads (also inside the HTTP server)
        from concurrent.futures import ThreadPoolExecutor

        threads = ThreadPoolExecutor(workers)
        n_par = workers
    else:
        pool = fork_pool(workers, _pool_init, (problem, score, check, fast, stop))
        n_par = workers if pool is not None else 1
    try:
        while True:
            if checkpoint is not None:
                checkpoint.tick()  # a better plan of an earlier round, handed on once due
            left = time_budget_s - (time.perf_counter() - t0)
            fresh = rounds < restart_rounds  # independent chains from the start plan
            if max_iters is not None:
                if its >= max_iters:
                    break
                iters = min(round_iters, max(1, (max_iters - its) // n_par))
                budget = INF
            else:
                if left < 0.3:
                    break
                iters, budget = None, min(restart_s if fresh else round_s, left)
            if stop is not None and stop():
                break
            seeds = [seed * 1_000_003 + rounds * 101 + w for w in range(n_par)]
            src, src_par = (incumbent, start_par) if fresh else (best, best_par)
            outs = None
            if threads is not None:
                if stop is None:
                    outs = list(threads.map(_chain, *zip(*[(problem, src, score, fast, src_par, sd, budget, iters,
                                                            check, tau) for sd in seeds], strict=True)))
                else:
                    outs = threads_map(threads, _chain_args, [(problem, src, score, fast, src_par, sd, budget, iters,
                                                               check, tau, stop) for sd in seeds], stop)
            elif pool is not None:
                try:
                    outs = pool_map(pool, _pool_chain, [(src, src_par, sd, budget, iters, tau) for sd in seeds], stop)
                except Exception:  # a broken worker: go on in this process
                    pool.terminate()
                    pool.join()
                    pool, n_par = None, 1
            if outs is None:
                outs = [_chain(problem, src, score, fast, src_par, seeds[0], budget, iters, check, tau, stop)]
            rounds += 1
            for s, par, it, acc in outs:
                its += it
                accs += acc
                sc = score(s)
                if sc < best_score:
                    best, best_score, best_par = s, sc, par
                    if checkpoint is not None:
                        checkpoint(lambda plan=best: plan)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if threads is not None:
            threads.shutdown()
    best.stats.update(tail_iterations=its, tail_improvements=accs, tail_rounds=rounds, tail_workers=n_par)
    return best


def warm() -> None:
    """Load the scheduling module's compiled loops (this dispatching scheme and the sequence search,
    ``optimization._dispatch_core``, and the job-shop tabu search, ``optimization.tabu``) from numba's cache, or
    compile them (~20 s) when it is empty.
    ``make install`` and the serving image run it once, so a plan never waits for the compiler."""
    from dataclasses import replace

    from optimization.problem import Downtime, EnergySettings, Job, Machine, Operation, SetupTimes
    from optimization.tabu import warm as warm_tabu

    machines = tuple(Machine(m, (Downtime(30, 40, "break"),)) for m in ("A", "B"))
    jobs = tuple(Job(f"J{j}", (Operation("0", {"A": 7, "B": 9}, family=f"F{j}"),
                               Operation("1", {"B": 5}, family=f"F{j}", can_span_break=True)), due=20)
                 for j in range(3))
    p = SchedulingProblem(jobs=jobs, machines=machines, setups=SetupTimes(matrix={("F0", "F1"): 2, ("F1", "F0"): 3}))
    sequence_search(p, dispatch(p, "atc"), {"tardiness": 1.0}, 1.0, max_moves=5)
    # the same under a peak power cap: the capped scheme's own loops (a plant's first capped plan had compiled them
    # inside its request, 23 s for a 15 s limit, with no time left to search: planner's audit)
    capped = replace(p, jobs=tuple(replace(j, operations=tuple(replace(o, power_kw=10.0) for o in j.operations))
                                   for j in jobs),
                     energy=EnergySettings(period=60, prices=(1.0,), base_load_kw=(5.0,), peak_cap_kw=25.0))
    start = dispatch(capped, "atc")
    tail_search(capped, start, lambda s: (s.objective["weighted_tardiness"],), 0.0, max_iters=2, round_iters=2,
                stages=[{"tardiness": 1.0}])
    warm_tabu()


# ---- sequence local search (big plans) -----------------------------------------------------------------------------

def _merged_blocks(problem: SchedulingProblem, windows: list[MaintenanceWindow], span: bool | None):
    """Per machine: calendar blocks (all, or all but breaks; None: none) and maintenance windows, merged into
    disjoint sorted intervals (CSR arrays), for the compiled re-timing."""
    ptr, bs, be = [0], [], []
    by_m: dict[str, list[tuple[int, int]]] = {}
    for w in windows:
        by_m.setdefault(w.machine, []).append((w.start, w.end))
    for mach in problem.machines:
        cal = [] if span is None else [(d.start, d.end) for d in mach.blocking(span)]
        iv = sorted(cal + by_m.get(mach.id, []))
        out: list[list[int]] = []
        for a, b in iv:
            if out and a <= out[-1][1]:
                out[-1][1] = max(out[-1][1], b)
            else:
                out.append([a, b])
        bs.extend(a for a, _ in out)
        be.extend(b for _, b in out)
        ptr.append(len(bs))
    return np.array(ptr, np.int64), np.array(bs, np.int64), np.array(be, np.int64)


class _LocalState:
    """A plan as the compiled local search's arrays (machine, linked machine sequences, times)."""

    def __init__(self, problem: SchedulingProblem, plan: Schedule, stage: dict[str, float]) -> None:
        tb = self.tb = tables(problem)
        n, M = tb.n, len(tb.mids)
        self.mach, start = _plan_arrays(tb, plan)
        self.dur = np.array([tb.dur[(i, m)] for i, m in enumerate(self.mach.tolist())], np.int64)
        self.mprev = np.full(n, -1, np.int64)
        self.mnext = np.full(n, -1, np.int64)
        self.mfirst = np.full(M, -1, np.int64)
        self.mlast = np.full(M, -1, np.int64)
        for m in range(M):
            seq = np.flatnonzero(self.mach == m)
            seq = seq[np.lexsort((start[seq] + self.dur[seq], start[seq]))]
            if len(seq):
                self.mfirst[m], self.mlast[m] = seq[0], seq[-1]
                self.mprev[seq[1:]] = seq[:-1]
                self.mnext[seq[:-1]] = seq[1:]
        self.windows = list(plan.maintenance)
        self.ba = _merged_blocks(problem, self.windows, True)
        self.bn = _merged_blocks(problem, self.windows, False)
        self.wn = _merged_blocks(problem, self.windows, None)  # a zero-length operation may not lie inside one
        self.pinned = tb.pin_m >= 0
        self.job_first = tb.job_first
        self.rate = (1.0 + stage.get("risk", 0.0)) * tb.risk_rate
        self.w_t, self.w_mk = float(stage.get("tardiness", 0.0)), float(stage.get("makespan", 0.0))
        self.start = np.zeros(n, np.int64)
        self.end = np.zeros(n, np.int64)
        self.work = (np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64),
                     np.zeros(len(tb.jobs)))
        self.ok = self._retime()
        self.value = self._value() if self.ok else INF

    def _retime(self) -> bool:
        tb = self.tb
        return bool(_core._retime(tb.n, self.mach, self.mprev, self.mnext, self.dur, tb.release, tb.pr_ptr, tb.pr_a,
                                  tb.pr_lag, tb.sc_ptr, tb.sc_b, tb.fam, tb.S, tb.use_setups, tb.span, *self.ba,
                                  *self.bn, *self.wn, self.pinned, tb.pin_s, self.start, self.end, self.work[2],
                                  self.work[3]))

    def _value(self) -> float:
        tb = self.tb
        return float(_core._value(tb.n, self.end, self.mach, self.dur, self.job_first, tb.due, tb.has_due, tb.weight,
                                  self.w_t, self.w_mk, self.rate, self.work[4]))

    def copy(self) -> _LocalState:
        out = object.__new__(_LocalState)
        out.__dict__.update(self.__dict__)
        for k in ("mach", "dur", "mprev", "mnext", "mfirst", "mlast", "start", "end"):
            setattr(out, k, getattr(self, k).copy())
        out.work = tuple(w.copy() for w in self.work)
        return out

    def run(self, n_moves: int, depth: int) -> int:
        tb = self.tb
        self.value, kept = _core.local_run(
            n_moves, depth, self.mach, self.mprev, self.mnext, self.mfirst, self.mlast, self.dur, self.start,
            self.end, tb.el_ptr, tb.el_m, tb.el_d, tb.release, tb.pr_ptr, tb.pr_a, tb.pr_lag, tb.sc_ptr, tb.sc_b,
            tb.fam, tb.S, tb.use_setups, tb.span, *self.ba, *self.bn, *self.wn, self.pinned, tb.pin_s, tb.job,
            self.job_first, tb.due, tb.has_due, tb.weight, self.w_t, self.w_mk, self.rate, self.value, *self.work)
        return int(kept)

    def schedule(self, problem: SchedulingProblem, method: str) -> Schedule:
        return _plan(problem, self.tb, self.mach, self.start, np.arange(self.tb.n),
                     [(self.tb.mpos[w.machine], w.start, w.end) for w in self.windows], method, True,
                     time.perf_counter())


def setups_in_working_time(problem: SchedulingProblem, plan: Schedule) -> Schedule | None:
    """``plan`` with each operation whose setup would fall in a downtime or a maintenance window moved later, to
    where the setup finds working time before it (``setup_end``), and the operations after it as far as that
    takes them: machines, orders and every other start kept (``_core._retime`` from the plan's own starts).

    CP-SAT's model asks only for the setup's length between two operations (an exact model of where it lies would
    need an interval per possible predecessor); this makes its plans keep the rule the dispatching keeps and
    ``check.verify`` checks. ``plan`` itself when nothing moves; None when a pinned operation would have to, or the
    machine orders and the precedences form a cycle."""
    if not problem.has_setups or not plan.assignments:
        return plan
    tb = tables(problem)
    n, M = tb.n, len(tb.mids)
    mach, start = _plan_arrays(tb, plan)
    dur = np.array([tb.dur[(i, m)] for i, m in enumerate(mach.tolist())], np.int64)
    mprev = np.full(n, -1, np.int64)
    mnext = np.full(n, -1, np.int64)
    for m in range(M):
        seq = np.flatnonzero(mach == m)
        seq = seq[np.lexsort((start[seq] + dur[seq], start[seq]))]
        mprev[seq[1:]] = seq[:-1]
        mnext[seq[:-1]] = seq[1:]
    windows = list(plan.maintenance)
    ba, bn, wn = (_merged_blocks(problem, windows, True), _merged_blocks(problem, windows, False),
                  _merged_blocks(problem, windows, None))
    new_start, new_end = np.zeros(n, np.int64), np.zeros(n, np.int64)
    if not _core._retime(n, mach, mprev, mnext, dur, np.maximum(tb.release, start), tb.pr_ptr, tb.pr_a, tb.pr_lag,
                         tb.sc_ptr, tb.sc_b, tb.fam, tb.S, tb.use_setups, tb.span, *ba, *bn, *wn, tb.pin_m >= 0,
                         tb.pin_s, new_start, new_end, np.zeros(n, np.int64), np.zeros(n, np.int64)):
        return None
    if np.array_equal(new_start, start):
        return plan
    out = _plan(problem, tb, mach, new_start, np.arange(n), [(tb.mpos[w.machine], w.start, w.end) for w in windows],
                str(plan.stats.get("method", "plan")), True, time.perf_counter())
    out.status, out.lower_bound = plan.status, plan.lower_bound
    out.stats.update({k: v for k, v in plan.stats.items() if k != "method"})
    out.stats["setups_moved"] = int(np.count_nonzero(new_start != start))
    return out


def sequence_search(problem: SchedulingProblem, incumbent: Schedule, stage: dict[str, float], time_budget_s: float,
                    seed: int = 0, workers: int = 1, check=None, depth: int = 3, round_s: float = 2.0,
                    max_moves: int | None = None, stop: Stop | threading.Event | None = None) -> Schedule:
    """Local search on the machine sequences of a big plan (compiled: ``_dispatch_core.local_run``): moves operations
    of late jobs earlier on their machine or onto another eligible machine, re-times the plan and keeps the best move
    that lowers the objective of ``stage`` (tardiness, makespan, risk penalty). ``workers`` chains run in threads
    (the compiled loop releases the GIL) for ``round_s`` seconds a round, each round from the best plan of the last.
    ``max_moves`` (per chain) replaces the time budget and makes it deterministic. The result goes through
    ``check``; never returns a plan worse on ``stage`` than ``incumbent``'s re-timed plan, or than ``incumbent``.
    ``stop`` (:class:`Stop`, or an event): once set, the chains end after their current 50 moves (~40 ms on 5,000
    operations) and the best plan so far comes back."""
    from concurrent.futures import ThreadPoolExecutor

    from optimization._tabu_core import seed as seed_rng

    stop = as_stop(stop)
    t0 = time.perf_counter()
    base = _LocalState(problem, incumbent, stage)
    if not base.ok or not base.tb.n:
        return incumbent
    best = base
    moves = kept = rounds = 0
    workers = max(1, workers)

    def chain(args):
        st, sd, budget, n_max = args
        seed_rng(sd)
        t = time.perf_counter()
        k = it = 0
        while (n_max is None and time.perf_counter() - t < budget) or (n_max is not None and it < n_max):
            if stop is not None and stop():
                break
            step = 50 if n_max is None else min(50, n_max - it)
            k += st.run(step, depth)
            it += step
        return st, it, k

    with ThreadPoolExecutor(workers) as pool:
        while True:
            left = time_budget_s - (time.perf_counter() - t0)
            if max_moves is None and left < 0.05:
                break
            if max_moves is not None and moves >= max_moves * workers:
                break
            if stop is not None and stop():
                break
            n_max = None if max_moves is None else max_moves
            args = [(best.copy(), seed * 1_000_003 + rounds * 101 + w, min(round_s, left), n_max)
                    for w in range(workers)]
            outs = list(pool.map(chain, args))
            rounds += 1
            for st, it, k in outs:
                moves += it
                kept += k
                if st.value < best.value:
                    best = st
    out = best.schedule(problem, "sequence-search")
    if best is base or (check is not None and not check(out)):
        out = incumbent
    out.stats.update(seq_moves=moves, seq_kept=kept, seq_rounds=rounds)
    return out
