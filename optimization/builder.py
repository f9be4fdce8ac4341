"""CP-SAT model of a :class:`SchedulingProblem`, built in named phases: variables, constraints, objective.

Variables live in dicts keyed by ``(job, op)`` and ``(job, op, machine)``; every variable is named so an exported
model reads like the problem. The same builder makes the large-neighbourhood sub-models: with an :class:`LnsSpec`
operations outside the free set keep their machine and their order on it, the free ones are re-decided.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from optimization.problem import OpKey, SchedulingProblem
from optimization.solution import Assignment

TERMS = ("makespan", "tardiness", "energy", "risk")
POWER_SCALE = 10  # 0.1 kW resolution, rounded up (conservative against the cap)
MONEY_SCALE = 100  # cents
CIRCUIT_MAX_OPS = 150  # machines with more candidate operations use pairwise setup disjunctions
# energy objective: entries of the cost-per-start tables, at most, and per second of the solve's time limit (a
# million entries take ~0.5 s to build and CP-SAT ~3 s to load, whatever its time limit)
ENERGY_MAX_ENTRIES = 3_000_000
ENERGY_ENTRIES_PER_S = 250_000
ENERGY_MAX_COST = 2**50  # energy objective: cents of one operation's cost (sums stay far inside int64)
# the most an objective of ours may add up to (int64 ends at ~9.2e18): CP-SAT refuses a model whose objective could
# overflow (MODEL_INVALID, "Possible integer overflow in objective"), so huge weights with many decimals over long
# horizons are scaled down to fit (integer_objective)
OBJECTIVE_LIMIT = 2**60
# rough cost of building the model: seconds per pairwise setup disjunction and per circuit arc (measured ~20 us and
# ~15 us on this machine's cores); a model whose setups alone would take longer than its time limit to build is
# refused up front (ModelTooLarge) instead of being built past the deadline: a 5,000-operation shop with setups took
# 50 s and 2.9 GB to build before a 5-s solve gave up
SETUP_PAIR_S = 20e-6
SETUP_ARC_S = 15e-6


class ModelTooLarge(ValueError):
    """The CP-SAT model of this problem would be too big (or its numbers too large) to build in reasonable time."""


class BuildStopped(ModelTooLarge):
    """The solve was stopped while its CP-SAT model was being built (``stop``)."""


@dataclass
class LnsSpec:
    """Relaxation around an incumbent: ``free`` operations are re-decided, the others keep machine and order."""

    incumbent: dict[OpKey, Assignment]
    free: set[OpKey]
    radius: int = 0  # setups: free ops are only compared with fixed ops within this distance of the incumbent
    fix_times: bool = False  # also keep the start times of the operations outside ``free``


@dataclass
class ModelVars:
    starts: dict[OpKey, cp_model.IntVar] = field(default_factory=dict)
    ends: dict[OpKey, cp_model.IntVar] = field(default_factory=dict)
    intervals: dict[OpKey, cp_model.IntervalVar] = field(default_factory=dict)
    presence: dict[tuple[str, str, str], cp_model.IntVar] = field(default_factory=dict)
    alt_intervals: dict[tuple[str, str, str], cp_model.IntervalVar] = field(default_factory=dict)
    maintenance: dict[str, cp_model.IntVar] = field(default_factory=dict)
    makespan: cp_model.IntVar | None = None
    tardiness: dict[str, cp_model.IntVar] = field(default_factory=dict)
    energy: dict[OpKey, cp_model.IntVar] = field(default_factory=dict)
    # setup sequencing literals, for a complete warm start: (machine, a, b) -> "b right after a" of a circuit (None:
    # the circuit's depot; (machine, None, None): the machine is empty), or "a before b" of a pairwise disjunction
    next_lits: dict[tuple[str, OpKey | None, OpKey | None], cp_model.IntVar] = field(default_factory=dict)
    before_lits: dict[tuple[str, OpKey, OpKey], cp_model.IntVar] = field(default_factory=dict)
    # each objective term as parts (real coefficient, variable >= 0, the variable's upper bound): the term's real
    # value is sum(coefficient * variable); integer_objective makes an integer objective of the stage's terms
    terms: dict[str, list[tuple[float, cp_model.IntVar, int]]] = field(default_factory=dict)
    objective: cp_model.LinearExprT | None = None
    horizon: int = 0
    # False when a weight had to be rounded to an integer coefficient (down, so that a bound stays a bound): an
    # OPTIMAL answer of CP-SAT is then no proof for the real objective
    exact: bool = True


def _name(*parts: object) -> str:
    return "_".join(str(p) for p in parts)


class ModelBuilder:
    def __init__(self, problem: SchedulingProblem, horizon: int, lns: LnsSpec | None = None,
                 energy_max_entries: int = ENERGY_MAX_ENTRIES, deadline: float | None = None,
                 stop: Callable[[], bool] | None = None) -> None:
        self.p = problem
        self.stop = stop  # the solve's stop request (``heuristics.Stop``): read at each deadline check
        self.deadline = deadline  # a time.perf_counter() value: past it the build stops with ModelTooLarge
        self.h = max(1, horizon)
        self.lns = lns
        self.energy_max_entries = energy_max_entries
        self.model = cp_model.CpModel()
        self.v = ModelVars(horizon=self.h)
        self.keys = problem.op_keys
        self.job_of = {k: problem.job(k[0]) for k in self.keys}
        self._heads_tails()

    # ---- helpers ------------------------------------------------------------------------------------------------
    def _tick(self) -> None:
        """The build's checks, every 256 operations' variables, each machine's setups, every 4,096 setup pairs and
        each powered operation's cost table: a model with setup circuits takes seconds (400 operations: ~1.6 s)."""
        if self.stop is not None and self.stop():
            raise BuildStopped("the solve was stopped while its CP-SAT model was built")
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise ModelTooLarge(f"the CP-SAT model of {self.p.n_operations:,} operations could not be built within "
                                "the time limit")

    def _heads_tails(self) -> None:
        """Earliest start (release + job predecessors) and the work left after each op (for tight domains)."""
        self.head: dict[OpKey, int] = {}
        self.tail: dict[OpKey, int] = {}
        for j in self.p.jobs:
            acc = j.release
            for o in j.operations:
                self.head[(j.id, o.id)] = acc
                acc += o.min_duration
            acc = 0
            for o in reversed(j.operations):
                self.tail[(j.id, o.id)] = acc
                acc += o.min_duration

    def machines_of(self, k: OpKey) -> tuple[str, ...]:
        op = self.p.op(k)
        if self.lns is not None and k not in self.lns.free:
            return (self.lns.incumbent[k].machine,)
        return op.machines

    # ---- phase 1: variables -------------------------------------------------------------------------------------
    def add_variables(self) -> None:
        m, v = self.model, self.v
        for n, k in enumerate(self.keys):
            if n % 256 == 0:
                self._tick()
            op = self.p.op(k)
            jid, oid = k
            mach = self.machines_of(k)
            durs = sorted({op.durations[x] for x in mach})
            if op.pinned_start is not None:
                lo = hi = op.pinned_start
            elif self.lns is not None and self.lns.fix_times and k not in self.lns.free:
                lo = hi = self.lns.incumbent[k].start
            else:
                lo = self.head[k]
                hi = max(lo, self.h - self.tail[k] - durs[0])
            start = m.new_int_var(lo, hi, _name("start", jid, oid))
            if len(durs) == 1:
                end = m.new_int_var(lo + durs[0], hi + durs[0], _name("end", jid, oid))
                itv = m.new_interval_var(start, durs[0], end, _name("interval", jid, oid))
            else:
                dur = m.new_int_var_from_domain(cp_model.Domain.from_values(durs), _name("duration", jid, oid))
                end = m.new_int_var(lo + durs[0], hi + durs[-1], _name("end", jid, oid))
                itv = m.new_interval_var(start, dur, end, _name("interval", jid, oid))
            v.starts[k], v.ends[k], v.intervals[k] = start, end, itv
            if len(mach) == 1:
                v.presence[(jid, oid, mach[0])] = m.new_constant(1)
                v.alt_intervals[(jid, oid, mach[0])] = itv
                continue
            lits = []
            for x in mach:
                lit = m.new_bool_var(_name("on", jid, oid, x))
                alt = m.new_optional_fixed_size_interval_var(start, op.durations[x], lit, _name("alt", jid, oid, x))
                v.presence[(jid, oid, x)] = lit
                v.alt_intervals[(jid, oid, x)] = alt
                lits.append(lit)
            m.add_exactly_one(lits)
            m.add(end == start + sum(op.durations[x] * lit for x, lit in zip(mach, lits, strict=True)))
        for mid in self.p.maintenance_machines():
            r = self.p.risk
            assert r is not None
            last = (r.deadline if r.deadline is not None else self.h) - r.window_duration
            v.maintenance[mid] = m.new_int_var(0, max(0, last), _name("maintenance_start", mid))

    def on_machine(self) -> dict[str, list[tuple[OpKey, cp_model.IntervalVar, cp_model.IntVar]]]:
        out: dict[str, list] = {x.id: [] for x in self.p.machines}
        for (jid, oid, x), itv in self.v.alt_intervals.items():
            out[x].append(((jid, oid), itv, self.v.presence[(jid, oid, x)]))
        return out

    # ---- phase 2: constraints -----------------------------------------------------------------------------------
    def add_precedences(self) -> None:
        v = self.v
        for j in self.p.jobs:
            for a, b in zip(j.operations, j.operations[1:], strict=False):
                self.model.add(v.starts[(j.id, b.id)] >= v.ends[(j.id, a.id)])
        for pr in self.p.precedences:
            self.model.add(v.starts[tuple(pr.after)] >= v.ends[tuple(pr.before)] + pr.min_lag)

    def add_machine_capacity(self) -> None:
        """No overlap per machine, with its hard downtimes, breaks (for non-spanning ops) and maintenance."""
        m, v = self.model, self.v
        r = self.p.risk
        windows = []  # every machine's maintenance window: the crews' work
        for mid, items in self.on_machine().items():
            mach = self.p.machine(mid)
            # the downtimes merged where they overlap (Machine.blocking): fixed intervals that overlap each other
            # in one no-overlap made the whole model infeasible
            hard = [m.new_fixed_size_interval_var(d.start, d.end - d.start, _name("down", mid, d.kind, d.start))
                    for d in mach.blocking(True) if d.start < self.h]
            spanning = [itv for k, itv, _ in items if self.p.op(k).can_span_break]
            non_span = [itv for k, itv, _ in items if not self.p.op(k).can_span_break]
            maint = []
            if mid in v.maintenance and r is not None:
                maint = [m.new_fixed_size_interval_var(v.maintenance[mid], r.window_duration,
                                                       _name("maintenance", mid))]
                windows += maint
            every = [m.new_fixed_size_interval_var(d.start, d.end - d.start, _name("off", mid, d.start))
                     for d in mach.blocking(False) if d.start < self.h]  # breaks too
            # an operation that takes no time on this machine may sit inside a downtime (check.verify allows it, as
            # the dispatching does), but CP-SAT's no-overlap refuses a zero-size interval strictly inside another:
            # such operations keep out of the other operations and the maintenance window only. With them in the
            # downtimes' no-overlap the model was stricter than the rules: a plan of makespan 39 was answered
            # OPTIMAL with a lower bound of 58 (the zero-length last operation pushed past a downtime)
            zero = {id(itv) for k, itv, _ in items if self.p.op(k).durations[mid] == 0}
            if zero:
                m.add_no_overlap([itv for _, itv, _ in items] + maint)
                spanning = [itv for itv in spanning if id(itv) not in zero]
                non_span = [itv for itv in non_span if id(itv) not in zero]
            if not spanning:
                m.add_no_overlap(non_span + every + maint)
            else:
                m.add_no_overlap(non_span + spanning + hard + maint)
                if non_span and mach.blocking(False) != mach.blocking(True):  # breaks as well
                    m.add_no_overlap(non_span + every)
        if r is not None and r.crew_limited(list(v.maintenance)):  # at most `crews` windows under way at once
            m.add_cumulative(windows, [1] * len(windows), r.crews)

    def add_pinned(self) -> None:
        for k in self.keys:
            op = self.p.op(k)
            if op.pinned_machine is not None:
                self.model.add(self.v.presence[(k[0], k[1], op.pinned_machine)] == 1)

    def setup_build_s(self) -> float:
        """Estimated seconds to build the full model's setups (circuits up to CIRCUIT_MAX_OPS operations on a
        machine, pairwise disjunctions above)."""
        if not self.p.has_setups or self.lns is not None:
            return 0.0
        count: dict[str, int] = {}
        for k in self.keys:
            for x in self.machines_of(k):
                count[x] = count.get(x, 0) + 1
        return sum(c * c * SETUP_ARC_S if c <= CIRCUIT_MAX_OPS else c * (c - 1) / 2 * SETUP_PAIR_S
                   for c in count.values() if c >= 2)

    def add_setups(self) -> None:
        if not self.p.has_setups:
            return
        if self.deadline is not None and time.perf_counter() + self.setup_build_s() > self.deadline:
            raise ModelTooLarge(f"the setups of {self.p.n_operations:,} operations would take about "
                                f"{self.setup_build_s():.0f} s to build into the CP-SAT model, past the time limit")
        for mid, items in self.on_machine().items():
            self._tick()
            if len(items) < 2:
                continue
            if self.lns is None and len(items) <= CIRCUIT_MAX_OPS:
                self._setup_circuit(mid, items)
            elif self.lns is None:
                self._setup_pairs(mid, items, [(a, b) for i, a in enumerate(items) for b in items[i + 1:]])
            else:
                self._setup_lns(mid, items)

    def _setup(self, mid: str, a: OpKey, b: OpKey) -> int:
        return self.p.setups.time(mid, self.p.op(a).family, self.p.op(b).family)

    def _setup_circuit(self, mid: str, items: list) -> None:
        """Exact sequence-dependent setups: a Hamiltonian path through the present operations of the machine."""
        m, v = self.model, self.v
        arcs = []
        optional = any(not _is_const(m, lit) for _, _, lit in items)
        for i, (ka, _, la) in enumerate(items, start=1):
            first = m.new_bool_var(_name("first", mid, *ka))
            last = m.new_bool_var(_name("last", mid, *ka))
            v.next_lits[(mid, None, ka)] = first
            v.next_lits[(mid, ka, None)] = last
            arcs += [(0, i, first), (i, 0, last)]
            if not _is_const(m, la):
                arcs.append((i, i, ~la))
            for j, (kb, _, lb) in enumerate(items, start=1):
                if i == j:
                    continue
                lit = m.new_bool_var(_name("next", mid, *ka, *kb))
                v.next_lits[(mid, ka, kb)] = lit
                arcs.append((i, j, lit))
                m.add_implication(lit, la)
                m.add_implication(lit, lb)
                m.add(v.starts[kb] >= v.ends[ka] + self._setup(mid, ka, kb)).only_enforce_if(lit)
        if optional:
            empty = m.new_bool_var(_name("empty", mid))
            v.next_lits[(mid, None, None)] = empty
            arcs.append((0, 0, empty))
        m.add_circuit(arcs)

    def _setup_pairs(self, mid: str, items: list, pairs: list) -> None:
        """Pairwise disjunctions with setups (exact for setup matrices with the triangle inequality)."""
        m, v = self.model, self.v
        for n, ((ka, _, la), (kb, _, lb)) in enumerate(pairs):
            if n % 4096 == 0:
                self._tick()
            sab, sba = self._setup(mid, ka, kb), self._setup(mid, kb, ka)
            if sab == 0 and sba == 0:
                continue  # the no-overlap already covers it
            before = m.new_bool_var(_name("before", mid, *ka, *kb))
            v.before_lits[(mid, ka, kb)] = before
            lits = [x for x in (la, lb) if not _is_const(m, x)]
            m.add(v.starts[kb] >= v.ends[ka] + sab).only_enforce_if([before, *lits])
            m.add(v.starts[ka] >= v.ends[kb] + sba).only_enforce_if([~before, *lits])

    def _setup_lns(self, mid: str, items: list) -> None:
        """Setups in a sub-model: fixed ops chained in incumbent order; free ops anchored near their old place."""
        assert self.lns is not None
        m, v, inc = self.model, self.v, self.lns.incumbent
        fixed = sorted((it for it in items if it[0] not in self.lns.free), key=lambda it: inc[it[0]].start)
        free = [it for it in items if it[0] in self.lns.free]
        for (ka, _, _), (kb, _, _) in zip(fixed, fixed[1:], strict=False):
            m.add(v.starts[kb] >= v.ends[ka] + self._setup(mid, ka, kb))
        pairs = [(a, b) for i, a in enumerate(free) for b in free[i + 1:]]
        rad = self.lns.radius
        fstarts = [inc[it[0]].start for it in fixed]
        for f in free:
            kf, _, lf = f
            s0 = inc[kf].start
            lo, hi = s0 - rad, inc[kf].end + rad
            before = [it for it, s in zip(fixed, fstarts, strict=True) if inc[it[0]].end <= lo]
            after = [it for it, s in zip(fixed, fstarts, strict=True) if s >= hi]
            near = [it for it, s in zip(fixed, fstarts, strict=True) if inc[it[0]].end > lo and s < hi]
            enf = [] if _is_const(m, lf) else [lf]
            if before:
                kg = before[-1][0]
                m.add(v.starts[kf] >= v.ends[kg] + self._setup(mid, kg, kf)).only_enforce_if(enf)
            if after:
                kg = after[0][0]
                m.add(v.starts[kg] >= v.ends[kf] + self._setup(mid, kf, kg)).only_enforce_if(enf)
            pairs += [(f, g) for g in near]
        self._setup_pairs(mid, items, pairs)

    def add_lns_order(self) -> None:
        """Operations outside the neighbourhood keep their relative order on their machine."""
        if self.lns is None:
            return
        inc = self.lns.incumbent
        by_m: dict[str, list[OpKey]] = {}
        for k in self.keys:
            if k not in self.lns.free:
                by_m.setdefault(inc[k].machine, []).append(k)
        for lst in by_m.values():
            lst.sort(key=lambda k: (inc[k].start, inc[k].end))
            for a, b in zip(lst, lst[1:], strict=False):
                self.model.add(self.v.starts[b] >= self.v.ends[a])

    def add_power_cap(self) -> None:
        en = self.p.energy
        if en is None or en.peak_cap_kw is None:
            return
        cap = int(math.floor(en.peak_cap_kw * POWER_SCALE))
        itvs, dem = [], []
        for (jid, oid, _x), itv in self.v.alt_intervals.items():
            pw = self.p.op((jid, oid)).power_kw
            if pw > 0:
                itvs.append(itv)
                dem.append(int(math.ceil(pw * POWER_SCALE - 1e-9)))
        if not itvs:
            return
        # the base load as fixed demands: one interval per run of periods with the same load (the last value holds
        # after the forecast ends), so their number follows the forecast, not the horizon
        runs: list[list[int]] = []  # [start, end, demand]
        n_base = len(en.base_load_kw)
        for i in range(n_base):
            p = i * en.period
            if p >= self.h:
                break
            end = self.h if i == n_base - 1 else min(p + en.period, self.h)
            base = min(int(math.ceil(en.base_load_kw[i] * POWER_SCALE - 1e-9)), cap)
            if runs and runs[-1][1] == p and runs[-1][2] == base:
                runs[-1][1] = end
            else:
                runs.append([p, end, base])
        for p, end, base in runs:
            if base > 0:
                itvs.append(self.model.new_fixed_size_interval_var(p, end - p, _name("base", p)))
                dem.append(base)
        self.model.add_cumulative(itvs, dem, cap)

    # ---- phase 3: objective terms -------------------------------------------------------------------------------
    def add_makespan(self) -> None:
        m, v = self.model, self.v
        v.makespan = m.new_int_var(0, self.h, "makespan")
        lasts = [(j.id, j.operations[-1].id) for j in self.p.jobs]
        m.add_max_equality(v.makespan, [v.ends[k] for k in lasts])
        v.terms["makespan"] = [(1.0, v.makespan, self.h)]

    def add_tardiness(self) -> None:
        m, v = self.model, self.v
        terms = []
        for j in self.p.jobs:
            if j.due is None or j.weight == 0:
                continue
            last = v.ends[(j.id, j.operations[-1].id)]
            t = m.new_int_var(0, max(0, self.h - j.due), _name("tardiness", j.id))
            m.add(t >= last - j.due)
            v.tardiness[j.id] = t
            terms.append((j.weight, t, max(0, self.h - j.due)))
        v.terms["tardiness"] = terms

    def add_energy(self) -> None:
        en = self.p.energy
        m, v = self.model, self.v
        if en is None or not en.prices:
            v.terms["energy"] = []
            return
        # exact time-of-use cost: a table of the cost per start time of each operation (and duration), so its size
        # is the sum of the operations' start ranges; too big a model is refused here (ModelTooLarge) instead of
        # building past the time limit
        powered = [k for k in self.keys if self.p.op(k).power_kw > 0]
        length = self.h + max(o.durations[x] for k in self.keys for o in [self.p.op(k)] for x in o.machines)
        size = length
        for k in powered:
            dom = list(self.v.starts[k].proto.domain)
            size += (dom[-1] - dom[0] + 1) * len({self.p.op(k).durations[x] for x in self.machines_of(k)})
        if size > self.energy_max_entries:
            raise ModelTooLarge(f"the energy cost tables would hold {size:,} entries (at most "
                                f"{self.energy_max_entries:,} in this time limit): the plan spans too many time units "
                                "for the exact energy term")
        prefix = [0.0]
        for t in range(length):
            prefix.append(prefix[-1] + en.price_at(t))
        terms = []
        for k in powered:
            self._tick()
            op = self.p.op(k)
            start = v.starts[k]
            dom = list(start.proto.domain)
            lo, hi = dom[0], dom[-1]
            coef = op.power_kw * en.hours_per_unit * MONEY_SCALE
            tables: dict[int, tuple[cp_model.IntVar, int]] = {}
            for x in self.machines_of(k):
                d = op.durations[x]
                if d not in tables:
                    table = [int(round(coef * (prefix[s + d] - prefix[s]))) for s in range(lo, hi + 1)]
                    if max(table) > ENERGY_MAX_COST:
                        raise ModelTooLarge(f"energy cost of operation {k} too large for the model "
                                            f"({max(table):,} cents)")
                    e = m.new_int_var(min(table), max(table), _name("energy", *k, "d", d))
                    idx = m.new_int_var(0, hi - lo, _name("tidx", *k, d))
                    m.add(idx == start - lo)
                    m.add_element(idx, table, e)
                    tables[d] = (e, max(table))
            cost = m.new_int_var(0, max(ub for _, ub in tables.values()), _name("energy", *k))
            for x in self.machines_of(k):
                e = tables[op.durations[x]][0]
                lit = v.presence[(k[0], k[1], x)]
                if _is_const(m, lit):
                    m.add(cost >= e)
                else:
                    m.add(cost >= e).only_enforce_if(lit)
            v.energy[k] = cost
            terms.append((1.0 / MONEY_SCALE, cost, max(ub for _, ub in tables.values())))
        v.terms["energy"] = terms

    def add_risk_penalty(self) -> None:
        r = self.p.risk
        v = self.v
        if r is None or r.policy != "penalty":
            v.terms["risk"] = []
            return
        risky = set(r.risky_machines())
        terms = []
        for (jid, oid, x), lit in v.presence.items():
            if x in risky:
                terms.append((r.penalty_per_unit * r.risks[x] * self.p.op((jid, oid)).durations[x], lit, 1))
        v.terms["risk"] = terms

    def set_objective(self, weights: dict[str, float]) -> float:
        """Minimise sum(weight * term) with integer coefficients (weights are given per real unit); returns the
        factor K of the objective, K * real value (:func:`integer_objective`)."""
        parts = []
        for name, w in weights.items():
            if w == 0:
                continue
            if name not in self.v.terms:
                raise ValueError(f"unknown objective term {name!r}; use {TERMS}")
            parts += [(w * c, var, ub) for c, var, ub in self.v.terms[name]]
        expr, k, exact = integer_objective(parts)
        self.v.exact = self.v.exact and exact
        self.v.objective = expr
        self.model.minimize(expr)
        return k

    # ---- all phases -----------------------------------------------------------------------------------------------
    def build(self, terms: tuple[str, ...]) -> tuple[cp_model.CpModel, ModelVars]:
        self.add_variables()
        self.add_precedences()
        self.add_pinned()
        self.add_machine_capacity()
        self.add_setups()
        self.add_lns_order()
        self.add_power_cap()
        self.add_makespan()
        if "tardiness" in terms:
            self.add_tardiness()
        if "energy" in terms:
            self.add_energy()
        self.add_risk_penalty()
        return self.model, self.v


def scaled(w: float, scale: float) -> int:
    """``w * scale`` as an integer: rounded when it is one but for float noise, else rounded down."""
    x = w * scale
    r = round(x)
    return int(r) if abs(x - r) <= 1e-9 * max(1.0, abs(x)) else math.floor(x)


def weight_scale(weights: list[float], most: int = 10**6) -> tuple[int, bool]:
    """The smallest power of ten up to ``most`` that makes every weight an integer, and whether there is one (else
    ``most``: the weights are rounded down there). Weights of 0.001 scaled by 100 became 0 and left the tardiness
    out of the model, which then "proved" a plan optimal that was not."""
    scale = 1
    while True:
        if all(abs(w * scale - scaled(w, scale)) <= 1e-9 * max(1.0, abs(w * scale)) for w in weights):
            return scale, True
        if scale >= most:
            return scale, False
        scale *= 10


def integer_objective(parts: list[tuple[float, cp_model.LinearExprT, int]],
                      limit: int = OBJECTIVE_LIMIT) -> tuple[cp_model.LinearExprT, float, bool]:
    """sum(c * var) over ``parts`` (real coefficient c >= 0, var in 0..ub) as an integer expression K * that sum,
    and K and whether it is exact: K is the power of ten of :func:`weight_scale` (every coefficient whole, if one up to
    10**6 makes them so), lowered while sum(c * K * ub) would pass ``limit``. Then the coefficients lose their
    decimals (or, far below the largest ones, all of it): rounded down, so that a bound stays a bound. Weights of
    123456789.123456789 over a horizon of 10**9 made coefficients that overflowed int64: CP-SAT refused the model
    (MODEL_INVALID) and every full-model and LNS step was lost without a word."""
    parts = [(c, var, ub) for c, var, ub in parts if c]
    k, exact = weight_scale([c for c, _, _ in parts])
    top = sum(c * max(ub, 0) for c, _, ub in parts)
    e = round(math.log10(k))
    while top * 10.0**e > limit:
        e -= 1
        exact = False
    k = 10**e if e >= 0 else 10.0**e
    expr = sum(scaled(c, k) * var for c, var, _ in parts)
    return expr, k, exact


def _is_const(model: cp_model.CpModel, lit) -> bool:
    if isinstance(lit, int | bool):
        return True
    try:
        dom = lit.proto.domain
    except AttributeError:
        return False
    return len(dom) == 2 and dom[0] == dom[1]


def build_model(problem: SchedulingProblem, horizon: int, terms: tuple[str, ...] = ("makespan",),
                lns: LnsSpec | None = None, time_limit_s: float | None = None,
                stop: Callable[[], bool] | None = None) -> tuple[cp_model.CpModel, ModelVars]:
    """The CP-SAT model; ``time_limit_s`` (the time its solve may take) bounds the size of the energy term and the
    time the build may take (:class:`ModelTooLarge` beyond); ``stop`` true ends the build (:class:`BuildStopped`)."""
    entries = ENERGY_MAX_ENTRIES
    deadline = None
    if time_limit_s is not None:
        entries = min(entries, int(ENERGY_ENTRIES_PER_S * max(time_limit_s, 0.2)))
        deadline = time.perf_counter() + max(time_limit_s, 0.2)
    return ModelBuilder(problem, horizon, lns, entries, deadline, stop).build(terms)


def add_hint(model: cp_model.CpModel, mv: ModelVars, assignments: list[Assignment], maint: dict[str, int]) -> None:
    """Warm start: every start and machine choice of a known plan."""
    alts: dict[OpKey, list[tuple[str, cp_model.IntVar]]] = {}
    for (jid, oid, x), lit in mv.presence.items():
        if not _is_const(model, lit):
            alts.setdefault((jid, oid), []).append((x, lit))
    ends: dict[str, int] = {}
    for a in assignments:
        k = (a.job, a.op)
        if k not in mv.starts:
            continue
        model.add_hint(mv.starts[k], a.start)
        model.add_hint(mv.ends[k], a.end)
        size = mv.intervals[k].size_expr() if k in mv.intervals else None
        if isinstance(size, cp_model.IntVar):  # the chosen machine's duration (a flexible operation's interval)
            model.add_hint(size, a.end - a.start)
        ends[a.job] = max(ends.get(a.job, 0), a.end)
        for x, lit in alts.get(k, ()):
            model.add_hint(lit, x == a.machine)
    if mv.makespan is not None and ends:
        model.add_hint(mv.makespan, max(ends.values()))
    for mid, var in mv.maintenance.items():
        if mid in maint:
            model.add_hint(var, maint[mid])
    if not mv.next_lits and not mv.before_lits:
        return
    # setups: the plan's order on each machine (without it CP-SAT got a hint of a few % of the variables on a
    # flexible shop with setups and found no plan at all in 10 s)
    seq: dict[str, list[OpKey]] = {}
    for a in sorted(assignments, key=lambda a: (a.start, a.end)):
        seq.setdefault(a.machine, []).append(a.key)
    arcs = {(mid, x, y) for mid, ks in seq.items() for x, y in zip([None, *ks], [*ks, None], strict=True)}
    for (mid, x, y), lit in mv.next_lits.items():
        model.add_hint(lit, (mid, x, y) in arcs or (x is None and y is None and not seq.get(mid)))
    pos = {(mid, k): i for mid, ks in seq.items() for i, k in enumerate(ks)}
    for (mid, x, y), lit in mv.before_lits.items():  # free unless both are on the machine
        model.add_hint(lit, (mid, x) in pos and (mid, y) in pos and pos[(mid, x)] < pos[(mid, y)])
