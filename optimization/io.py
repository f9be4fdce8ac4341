"""Readers for job-shop (OR-Library / JSPLIB), flexible job-shop (.fjs and the shared variant) and SFAI JSON.

Every parse error is a ``ValueError`` that names the file and, where it applies, the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optimization.problem import (
    Downtime,
    EnergySettings,
    FailureRisk,
    Job,
    Machine,
    Operation,
    Precedence,
    SchedulingProblem,
    SetupTimes,
)

FORMATS = ("jsplib", "fjsp", "json")


def load(path: str | Path, fmt: str) -> SchedulingProblem:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ValueError(f"{p}: cannot read file ({e.strerror or e})") from None
    if fmt == "jsplib":
        return parse_jsplib(text, name=p.stem, source=str(p))
    if fmt == "fjsp":
        return parse_fjsp(text, name=p.stem, source=str(p))
    return parse_json(text, name=p.stem, source=str(p))


def _data_lines(text: str) -> list[tuple[int, list[str]]]:
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        out.append((i, s.split()))
    return out


def _ints(tokens: list[str], source: str, lineno: int) -> list[int]:
    try:
        return [int(t) for t in tokens]
    except ValueError:
        bad = next(t for t in tokens if not t.lstrip("-").isdigit())
        raise ValueError(f"{source}:{lineno}: expected integers, found {bad!r}") from None


def parse_jsplib(text: str, name: str = "jsplib", source: str = "<string>") -> SchedulingProblem:
    """OR-Library job shop: ``n m`` then one line per job of ``machine time`` pairs, machines from 0."""
    lines = _data_lines(text)
    if not lines:
        raise ValueError(f"{source}: empty file, expected a header line 'n_jobs n_machines'")
    ln, head = lines[0]
    hv = _ints(head, source, ln)
    if len(hv) != 2 or hv[0] <= 0 or hv[1] <= 0:
        raise ValueError(f"{source}:{ln}: header must be two positive integers 'n_jobs n_machines'")
    n, m = hv
    if len(lines) - 1 < n:
        raise ValueError(f"{source}:{lines[-1][0]}: expected {n} job lines, found {len(lines) - 1}")
    jobs = []
    for j in range(n):
        ln, toks = lines[1 + j]
        vals = _ints(toks, source, ln)
        if len(vals) % 2 or not vals:
            raise ValueError(f"{source}:{ln}: job {j} needs pairs 'machine time', found {len(vals)} numbers")
        ops = []
        for k in range(0, len(vals), 2):
            mach, dur = vals[k], vals[k + 1]
            if not 0 <= mach < m:
                raise ValueError(f"{source}:{ln}: job {j} operation {k // 2}: machine {mach} outside 0..{m - 1}")
            if dur < 0:
                raise ValueError(f"{source}:{ln}: job {j} operation {k // 2}: negative time {dur}")
            ops.append(Operation(id=str(k // 2), durations={str(mach): dur}))
        jobs.append(Job(id=str(j), operations=tuple(ops)))
    machines = tuple(Machine(id=str(i)) for i in range(m))
    return SchedulingProblem(jobs=tuple(jobs), machines=machines, name=name)


def parse_fjsp(text: str, name: str = "fjsp", source: str = "<string>") -> SchedulingProblem:
    """Flexible job shop. Header ``n m`` (shared set, machines from 0) or classic ``.fjs`` ``n m avg`` (from 1).

    Each job line: number of operations, then per operation ``k`` and ``k`` pairs ``machine time``.
    """
    lines = _data_lines(text)
    if not lines:
        raise ValueError(f"{source}: empty file, expected a header line 'n_jobs n_machines [avg]'")
    ln, head = lines[0]
    if len(head) not in (2, 3):
        raise ValueError(f"{source}:{ln}: header must be 'n_jobs n_machines' or 'n_jobs n_machines avg'")
    hv = _ints(head[:2], source, ln)
    if len(head) == 3:
        try:
            float(head[2])
        except ValueError:
            raise ValueError(f"{source}:{ln}: average machines per operation {head[2]!r} is not a number") from None
    n, m = hv
    if n <= 0 or m <= 0:
        raise ValueError(f"{source}:{ln}: header numbers must be positive")
    if len(lines) - 1 < n:
        raise ValueError(f"{source}:{lines[-1][0]}: expected {n} job lines, found {len(lines) - 1}")
    raw_jobs = []
    for j in range(n):
        ln, toks = lines[1 + j]
        vals = _ints(toks, source, ln)
        pos = 0

        def take(what: str, ln: int = ln, vals: list[int] = vals, j: int = j) -> int:
            nonlocal pos
            if pos >= len(vals):
                raise ValueError(f"{source}:{ln}: job {j}: line ends early, expected {what}")
            pos += 1
            return vals[pos - 1]

        n_ops = take("the number of operations")
        ops = []
        for o in range(n_ops):
            k = take(f"operation {o} machine count")
            if k <= 0:
                raise ValueError(f"{source}:{ln}: job {j} operation {o}: machine count must be > 0")
            alts = [(take(f"operation {o} machine"), take(f"operation {o} time")) for _ in range(k)]
            ops.append(alts)
        if pos != len(vals):
            raise ValueError(f"{source}:{ln}: job {j}: {len(vals) - pos} extra numbers after the last operation")
        raw_jobs.append((ln, ops))
    # machine numbering: classic .fjs (3-field header) counts from 1; the shared variant from 0.
    all_m = [mm for _, ops in raw_jobs for alts in ops for mm, _ in alts]
    base = 1 if len(head) == 3 else 0
    if base == 0 and all_m and min(all_m) >= 1 and max(all_m) == m:
        base = 1  # a 2-field header file that numbers machines from 1
    jobs = []
    for j, (ln, ops) in enumerate(raw_jobs):
        out_ops = []
        for o, alts in enumerate(ops):
            durs: dict[str, int] = {}
            for mm, d in alts:
                if not base <= mm < m + base:
                    raise ValueError(f"{source}:{ln}: job {j} operation {o}: machine {mm} outside "
                                     f"{base}..{m - 1 + base}")
                if d < 0:
                    raise ValueError(f"{source}:{ln}: job {j} operation {o}: negative time {d}")
                key = str(mm - base)
                durs[key] = min(d, durs.get(key, d))
            out_ops.append(Operation(id=str(o), durations=durs))
        jobs.append(Job(id=str(j), operations=tuple(out_ops)))
    machines = tuple(Machine(id=str(i)) for i in range(m))
    return SchedulingProblem(jobs=tuple(jobs), machines=machines, name=name)


# ---- JSON ------------------------------------------------------------------------------------------------------

def parse_json(text: str, name: str = "json", source: str = "<string>") -> SchedulingProblem:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    try:
        return problem_from_dict(data, name=name)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    except (TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"{source}: malformed problem: {type(e).__name__}: {e}") from None


def _req(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object")
    if key not in d:
        raise ValueError(f"{where} lacks required field {key!r}")
    return d[key]


def problem_from_dict(data: dict, name: str = "problem") -> SchedulingProblem:
    """Build a problem from the SFAI JSON document (see docs/scheduling.md)."""
    if not isinstance(data, dict):
        raise ValueError("top level must be a JSON object")
    machines = []
    for i, m in enumerate(_req(data, "machines", "problem")):
        if isinstance(m, str):
            machines.append(Machine(id=m))
            continue
        mid = str(_req(m, "id", f"machines[{i}]"))
        cal = []
        for c in m.get("calendar", []):
            try:
                cal.append(Downtime(start=c["start"], end=c["end"], kind=c.get("kind", "break")))
            except (KeyError, TypeError):
                raise ValueError(f"machine {mid!r}: calendar entries need 'start' and 'end'") from None
            except ValueError as e:
                raise ValueError(f"machine {mid!r}: {e}") from None
        for w in m.get("maintenance", []):
            cal.append(Downtime(start=w["start"], end=w["end"], kind="maintenance"))
        machines.append(Machine(id=mid, calendar=tuple(cal)))
    jobs = []
    for i, j in enumerate(_req(data, "jobs", "problem")):
        jid = str(_req(j, "id", f"jobs[{i}]"))
        ops = []
        for k, o in enumerate(_req(j, "operations", f"job {jid!r}")):
            oid = str(o.get("id", k)) if isinstance(o, dict) else str(k)
            durs = _req(o, "machines", f"job {jid!r} operation {oid!r}")
            if not isinstance(durs, dict):
                raise ValueError(f"job {jid!r} operation {oid!r}: 'machines' must map machine id -> duration")
            pin = o.get("pinned") or o.get("started")
            try:
                ops.append(Operation(
                    id=oid,
                    durations={str(mm): d for mm, d in durs.items()},
                    family=o.get("family"),
                    power_kw=float(o.get("power_kw", 0.0)),
                    can_span_break=bool(o.get("can_span_break", False)),
                    pinned_machine=str(pin["machine"]) if pin else None,
                    pinned_start=pin["start"] if pin else None,
                    started=bool(o.get("started")),
                ))
            except ValueError as e:
                raise ValueError(f"job {jid!r}: {e}") from None
        jobs.append(Job(id=jid, operations=tuple(ops), release=j.get("release", 0), due=j.get("due"),
                        weight=float(j.get("weight", 1.0))))
    setups = SetupTimes()
    if "setups" in data:
        s = data["setups"]
        setups = SetupTimes(
            matrix=_setup_matrix(s.get("matrix", {}), "setups.matrix"),
            per_machine={str(m): _setup_matrix(v, f"setups.per_machine.{m}") for m, v in
                         s.get("per_machine", {}).items()},
        )
    precs = tuple(
        Precedence(before=(str(p["before"][0]), str(p["before"][1])), after=(str(p["after"][0]), str(p["after"][1])),
                   min_lag=p.get("min_lag", 0))
        for p in data.get("precedences", [])
    )
    energy = None
    if "energy" in data:
        e = data["energy"]
        energy = EnergySettings(period=e.get("period", 60), prices=tuple(e.get("prices", ())),
                                base_load_kw=tuple(e.get("base_load_kw", ())), peak_cap_kw=e.get("peak_cap_kw"),
                                hours_per_unit=e.get("hours_per_unit", 1.0 / 60.0))
    risk = None
    if "failure_risk" in data:
        r = data["failure_risk"]
        risk = FailureRisk(risks={str(k): float(v) for k, v in r.get("risks", {}).items()},
                           threshold=r.get("threshold", 0.5), policy=r.get("policy", "window"),
                           window_duration=r.get("window_duration", 60), deadline=r.get("deadline"),
                           penalty_per_unit=r.get("penalty_per_unit", 1.0))
    return SchedulingProblem(jobs=tuple(jobs), machines=tuple(machines), name=str(data.get("name", name)),
                             setups=setups, precedences=precs, energy=energy, risk=risk,
                             horizon=data.get("horizon"))


def _setup_matrix(d: dict, where: str) -> dict[tuple[str, str], int]:
    """``{"A": {"B": 5}}`` means 5 units of setup from family A to family B."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object of objects")
    out = {}
    for a, row in d.items():
        if not isinstance(row, dict):
            raise ValueError(f"{where}.{a} must be an object family -> setup time")
        for b, s in row.items():
            out[(str(a), str(b))] = s
    return out


def problem_to_dict(problem: SchedulingProblem) -> dict:
    """Inverse of :func:`problem_from_dict` (used by the generator and tests)."""
    def mat(m):
        out: dict[str, dict[str, int]] = {}
        for (a, b), s in m.items():
            out.setdefault(a, {})[b] = s
        return out

    d: dict[str, Any] = {
        "name": problem.name,
        "machines": [{"id": m.id, "calendar": [{"start": c.start, "end": c.end, "kind": c.kind} for c in m.calendar]}
                     for m in problem.machines],
        "jobs": [],
    }
    for j in problem.jobs:
        ops = []
        for o in j.operations:
            od: dict[str, Any] = {"id": o.id, "machines": dict(o.durations)}
            if o.family is not None:
                od["family"] = o.family
            if o.power_kw:
                od["power_kw"] = o.power_kw
            if o.can_span_break:
                od["can_span_break"] = True
            if o.pinned_machine is not None and o.pinned_start is not None:
                od["started" if o.started else "pinned"] = {"machine": o.pinned_machine, "start": o.pinned_start}
            ops.append(od)
        jd: dict[str, Any] = {"id": j.id, "operations": ops, "release": j.release, "weight": j.weight}
        if j.due is not None:
            jd["due"] = j.due
        d["jobs"].append(jd)
    if not problem.setups.empty:
        d["setups"] = {"matrix": mat(problem.setups.matrix),
                       "per_machine": {m: mat(v) for m, v in problem.setups.per_machine.items()}}
    if problem.precedences:
        d["precedences"] = [{"before": list(p.before), "after": list(p.after), "min_lag": p.min_lag}
                            for p in problem.precedences]
    if problem.energy is not None:
        e = problem.energy
        d["energy"] = {"period": e.period, "prices": list(e.prices), "base_load_kw": list(e.base_load_kw),
                       "peak_cap_kw": e.peak_cap_kw, "hours_per_unit": e.hours_per_unit}
    if problem.risk is not None:
        r = problem.risk
        d["failure_risk"] = {"risks": dict(r.risks), "threshold": r.threshold, "policy": r.policy,
                             "window_duration": r.window_duration, "deadline": r.deadline,
                             "penalty_per_unit": r.penalty_per_unit}
    if problem.horizon is not None:
        d["horizon"] = problem.horizon
    return d
