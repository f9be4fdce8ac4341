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
    PlanClock,
    Precedence,
    SchedulingProblem,
    SetupTimes,
    _show,
    parse_clock_time,
)

FORMATS = ("jsplib", "fjsp", "json")


def load(path: str | Path, fmt: str) -> SchedulingProblem:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    p = Path(path)
    try:
        # utf-8-sig: without the byte-order mark that editors on Windows write (every format, not only JSON)
        text = p.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ValueError(f"{p}: cannot read file ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{p}: not a UTF-8 text file (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    if fmt == "json":
        return parse_json(text, name=p.stem, source=str(p))
    try:
        return TEXT_PARSERS[fmt](text, name=p.stem, source=str(p))
    except ValueError as e:
        other = "fjsp" if fmt == "jsplib" else "jsplib"
        if not _reads_as(other, text):
            raise
        # a JSPLIB file given --format fjsp had got only "la01.txt:6: job 0: line ends early"
        raise ValueError(f"{e} (it reads as a {other} file: --format {other})") from None


def _reads_as(fmt: str, text: str) -> bool:
    try:
        TEXT_PARSERS[fmt](text)
    except ValueError:
        return False
    return True


def _data_lines(text: str) -> list[tuple[int, list[str]]]:
    out = []
    for i, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        out.append((i, s.split()))
    return out


def _no_extra_lines(lines: list[tuple[int, list[str]]], n: int, source: str) -> None:
    """Refuse data lines after the header's ``n`` job lines: a header that counts fewer jobs than the file holds
    (a job added by hand) left the rest out of the plan without a word."""
    if len(lines) - 1 > n:
        raise ValueError(f"{source}:{lines[n + 1][0]}: {len(lines) - 1 - n} more line(s) after the {n} job lines "
                         "the header announces")


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
    _no_extra_lines(lines, n, source)
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
    _no_extra_lines(lines, n, source)
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

class _DuplicateKey(ValueError):
    pass


# the two text formats: a file that fails as one is tried as the other, to say so
TEXT_PARSERS = {"jsplib": parse_jsplib, "fjsp": parse_fjsp}


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object, refused when it names a key twice: ``json`` keeps the last silently, so a job with two
    ``due`` fields, or an operation with a machine listed twice, was planned with whichever came last."""
    out: dict = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(f"invalid JSON: key {k!r} appears twice in one object")
        out[k] = v
    return out


def parse_json(text: str, name: str = "json", source: str = "<string>") -> SchedulingProblem:
    try:
        # a byte-order mark, as editors on Windows write one
        data = json.loads(text.removeprefix("\ufeff"), object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    except _DuplicateKey as e:
        raise ValueError(f"{source}: {e}") from None
    except RecursionError:
        raise ValueError(f"{source}: invalid JSON: nested too deeply") from None
    try:
        return problem_from_dict(data, name=name)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    except (TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"{source}: malformed problem: {type(e).__name__}: {e}") from None


# the fields of the JSON format (docs/scheduling.md); anything else is refused, so a misspelt field is not ignored
PROBLEM_FIELDS = ("name", "clock", "horizon", "machines", "jobs", "precedences", "setups", "energy", "failure_risk")
CLOCK_FIELDS = ("start", "minutes_per_unit")
MACHINE_FIELDS = ("id", "calendar", "maintenance")
DOWNTIME_FIELDS = ("start", "end", "kind")
WINDOW_FIELDS = ("start", "end")
JOB_FIELDS = ("id", "release", "due", "weight", "operations")
OPERATION_FIELDS = ("id", "machines", "family", "power_kw", "can_span_break", "pinned", "started")
PIN_FIELDS = ("machine", "start")
PRECEDENCE_FIELDS = ("before", "after", "min_lag")
SETUP_FIELDS = ("matrix", "per_machine")
ENERGY_FIELDS = ("period", "prices", "base_load_kw", "peak_cap_kw", "hours_per_unit")
RISK_FIELDS = ("risks", "threshold", "policy", "window_duration", "deadline", "penalty_per_unit", "service_first",
               "crews")


def _kind(v: Any) -> str:
    """What a JSON value is, for messages: ``a string ('M1')``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, str):
        return f"a string ({v[:40]!r})"
    if isinstance(v, int | float):
        return f"a number ({v!r})"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _obj(d: Any, where: str, fields: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    """``d`` as an object with only ``fields`` (all of ``required``); the message says where and what."""
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object, got {_kind(d)}")
    for k in d:
        if k not in fields:
            raise ValueError(f"{where}: unknown field {k!r} (allowed: {', '.join(fields)})")
    for k in required:
        if k not in d:
            raise ValueError(f"{where} lacks required field {k!r}")
    return d


def _req(d: dict, key: str, where: str) -> Any:
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object, got {_kind(d)}")
    if key not in d:
        raise ValueError(f"{where} lacks required field {key!r}")
    return d[key]


def _list(v: Any, where: str, what: str = "a list") -> list | tuple:
    if not isinstance(v, list | tuple):
        raise ValueError(f"{where} must be {what}, got {_kind(v)}")
    return v


def _id(v: Any, where: str) -> str:
    """An id: a non-empty string or an integer (kept as its decimal string)."""
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ValueError(f"{where} must be a string or an integer, got {_kind(v)}")
    s = str(v)
    if not s:
        raise ValueError(f"{where} must not be empty")
    return s


def _opt(d: dict, key: str, default: Any) -> Any:
    """An optional field: absent or null gives the default."""
    v = d.get(key)
    return default if v is None else v


def _number(v: Any, where: str) -> float | int:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"{where} must be a number, got {_kind(v)}")
    return v


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"{where} must be true or false, got {_kind(v)}")
    return v


class Times:
    """A time field as plan units: a number as it is (checked where it is used), or, with the problem's ``clock``,
    an ISO date and time converted to units from its start, rounded the safe way for the field (``floor``: a due
    time, a downtime's start; ``ceil``: a release, a pin, a downtime's end)."""

    def __init__(self, clock: PlanClock | None) -> None:
        self.clock = clock
        self.sent: dict[str, tuple[str, int]] = {}  # where -> (the ISO text sent, its units): for messages

    def __call__(self, value: Any, where: str, rounding: str = "floor", day: str = "start") -> Any:
        """``day``: what a date alone means, its ``start`` (00:00) or its ``end`` (the next day's 00:00)."""
        if self.clock is None or not isinstance(value, str):
            return value
        units = self.clock.units(value, where, rounding, day)
        self.sent[where] = (value, units)
        return units

    def context(self, message: str, *wheres: str, extra: str = "") -> str:
        """``message`` with, where the problem has a clock and any of ``wheres`` was sent as an ISO time, what the
        plan units in it are on the calendar: clock.start, and each such field's text and units."""
        said = [f"{w} {self.sent[w][0]!r} is t={self.sent[w][1]}" for w in wheres if w in self.sent]
        if self.clock is None or not said:
            return message
        return f"{message} (on the clock: t=0 is clock.start {self.clock.at(0)}; {'; '.join(said)}{extra})"


def clock_of(data: dict) -> PlanClock | None:
    """The problem's ``clock``, its unit reconciled with ``energy.hours_per_unit`` (one is the other's; both given
    must agree, else a plan's energy cost and its clock times would count time differently)."""
    if data.get("clock") is None:
        return None
    c = _obj(data["clock"], "clock", CLOCK_FIELDS, ("start",))
    start = parse_clock_time(c["start"], "clock.start")
    energy = data.get("energy") if isinstance(data.get("energy"), dict) else {}
    hours = energy.get("hours_per_unit")
    minutes = c.get("minutes_per_unit")
    if minutes is None:
        minutes = hours * 60 if isinstance(hours, int | float) and not isinstance(hours, bool) and hours > 0 else 1
        seconds = round(minutes * 60)
        if seconds >= 1 and abs(minutes * 60 - seconds) <= 1e-4 * seconds:
            minutes = seconds / 60  # 0.016667 h, a minute as the docs write it, is a minute on the clock
    clock = PlanClock(start=start, minutes_per_unit=minutes)
    if isinstance(hours, int | float) and not isinstance(hours, bool) and hours > 0 and \
            abs(hours * 60 - clock.minutes_per_unit) > 1e-3 * clock.minutes_per_unit:
        raise ValueError(f"clock.minutes_per_unit ({clock.minutes_per_unit:g}) and energy.hours_per_unit ({hours:g}, "
                         f"{hours * 60:g} minutes) disagree: they are the same time unit; give one of them")
    return clock


def _downtimes(entries: Any, where: str, fields: tuple[str, ...], kind: str | None, when: Times) -> list[Downtime]:
    out = []
    for n, c in enumerate(_list(entries, where)):
        at = f"{where}[{n}]"
        _obj(c, at, fields, ("start", "end"))
        try:
            out.append(Downtime(start=when(c["start"], f"{at}.start"), end=when(c["end"], f"{at}.end", "ceil"),
                                kind=kind or _opt(c, "kind", "break")))
        except ValueError as e:
            raise ValueError(f"{at}: {e}") from None
    return out


def problem_from_dict(data: dict, name: str = "problem") -> SchedulingProblem:
    """Build a problem from the SFAI JSON document (see docs/scheduling.md). Unknown fields, ids that are not
    strings or integers and values of the wrong type are refused with a message that says where they are."""
    if not isinstance(data, dict):
        raise ValueError(f"top level must be a JSON object, got {_kind(data)}")
    _obj(data, "problem", PROBLEM_FIELDS, ("machines", "jobs"))
    clock = clock_of(data)
    when = Times(clock)
    machines = []
    for i, m in enumerate(_list(data["machines"], "problem.machines", "a list of machine ids or objects")):
        if isinstance(m, str | int) and not isinstance(m, bool):
            machines.append(Machine(id=_id(m, f"machines[{i}]")))
            continue
        if not isinstance(m, dict):
            raise ValueError(f"machines[{i}] must be a machine id (string) or an object, got {_kind(m)}")
        _obj(m, f"machines[{i}]", MACHINE_FIELDS, ("id",))
        mid = _id(m["id"], f"machines[{i}].id")
        cal = _downtimes(_opt(m, "calendar", []), f"machine {mid!r} calendar", DOWNTIME_FIELDS, None, when)
        cal += _downtimes(_opt(m, "maintenance", []), f"machine {mid!r} maintenance", WINDOW_FIELDS, "maintenance",
                          when)
        machines.append(Machine(id=mid, calendar=tuple(cal)))
    jobs = []
    for i, j in enumerate(_list(data["jobs"], "problem.jobs")):
        _obj(j, f"jobs[{i}]", JOB_FIELDS, ("id", "operations"))
        jid = _id(j["id"], f"jobs[{i}].id")
        ops = []
        pins: list[str] = []  # the operations' pin fields (for messages)
        for k, o in enumerate(_list(j["operations"], f"job {jid!r} operations")):
            _obj(o, f"job {jid!r} operations[{k}]", OPERATION_FIELDS, ("machines",))
            oid = _id(o["id"], f"job {jid!r} operations[{k}].id") if o.get("id") is not None else str(k)
            where = f"job {jid!r} operation {oid!r}"
            durs = o["machines"]
            if not isinstance(durs, dict):
                raise ValueError(f"{where}: 'machines' must map machine id -> duration, got {_kind(durs)}")
            family = o.get("family")
            if family is not None:
                family = _id(family, f"{where} family")
            pin, started = o.get("pinned"), o.get("started")
            for key in ("pinned", "started"):
                if o.get(key) is not None:
                    _obj(o[key], f"{where} {key}", PIN_FIELDS, PIN_FIELDS)
            if pin is not None and started is not None:
                # one place or the other: the pin won and the operation counted as started there
                raise ValueError(f"{where} has both 'pinned' and 'started': give one (started: already running)")
            pin = pin or started
            # checked here, outside the ``try`` below: these messages already say "job ... operation ..."
            power_kw = _number(_opt(o, "power_kw", 0.0), f"{where} power_kw")
            span = o.get("can_span_break")  # absent: true for a started (running) operation, else false
            if span is not None:
                span = _bool(span, f"{where} can_span_break")
            pin_machine = _id(pin["machine"], f"{where} {'started' if started else 'pinned'}.machine") if pin else None
            pin_at = f"{where} {'started' if started else 'pinned'}.start"
            pins.append(pin_at)
            try:
                ops.append(Operation(
                    id=oid,
                    durations={str(mm): d for mm, d in durs.items()},
                    family=family,
                    power_kw=power_kw,
                    can_span_break=span,
                    pinned_machine=pin_machine,
                    pinned_start=when(pin["start"], pin_at, "floor" if started else "ceil") if pin else None,
                    started=bool(started),
                ))
            except ValueError as e:  # Operation's own messages name the operation, not its job
                raise ValueError(when.context(f"job {jid!r}: {e}", pin_at)) from None
        release = _release(j, jid, when)
        try:
            jobs.append(Job(id=jid, operations=tuple(ops), release=release,
                            due=when(j.get("due"), f"job {jid!r} due", day="end"),
                            weight=_number(_opt(j, "weight", 1.0), f"job {jid!r} weight")))
        except ValueError as e:
            if "release" not in str(e) or (said := when.context(str(e), f"job {jid!r} release", *pins)) == str(e):
                raise
            raise ValueError(said) from None
    setups = SetupTimes()
    if data.get("setups") is not None:
        s = _obj(data["setups"], "setups", SETUP_FIELDS)
        per = _opt(s, "per_machine", {})
        if not isinstance(per, dict):
            raise ValueError(f"setups.per_machine must be an object machine -> matrix, got {_kind(per)}")
        setups = SetupTimes(
            matrix=_setup_matrix(_opt(s, "matrix", {}), "setups.matrix"),
            per_machine={str(m): _setup_matrix(v, f"setups.per_machine.{m}") for m, v in per.items()},
        )
    precs = []
    for i, p in enumerate(_list(_opt(data, "precedences", []), "problem.precedences")):
        _obj(p, f"precedences[{i}]", PRECEDENCE_FIELDS, ("before", "after"))
        ends = []
        for key in ("before", "after"):
            ref = p[key]
            if not isinstance(ref, list | tuple) or len(ref) != 2:
                raise ValueError(f"precedences[{i}].{key} must be a list [job id, operation id], got {_kind(ref)}")
            ends.append((_id(ref[0], f"precedences[{i}].{key}[0]"), _id(ref[1], f"precedences[{i}].{key}[1]")))
        precs.append(Precedence(before=ends[0], after=ends[1], min_lag=_opt(p, "min_lag", 0)))
    energy = None
    if data.get("energy") is not None:
        e = _obj(data["energy"], "energy", ENERGY_FIELDS)
        hours = _opt(e, "hours_per_unit", clock.minutes_per_unit / 60 if clock else 1.0 / 60.0)
        energy = EnergySettings(period=_opt(e, "period", 60),
                                prices=tuple(_list(_opt(e, "prices", []), "energy.prices", "a list of numbers")),
                                base_load_kw=tuple(_list(_opt(e, "base_load_kw", []), "energy.base_load_kw",
                                                         "a list of numbers")),
                                peak_cap_kw=e.get("peak_cap_kw"),
                                hours_per_unit=hours)
    risk = None
    if data.get("failure_risk") is not None:
        r = _obj(data["failure_risk"], "failure_risk", RISK_FIELDS)
        risks = _opt(r, "risks", {})
        if not isinstance(risks, dict):
            raise ValueError(f"failure_risk.risks must be an object machine -> probability, got {_kind(risks)}")
        try:
            risk = FailureRisk(risks={str(k): _number(v, f"failure_risk.risks.{k}") for k, v in risks.items()},
                               threshold=_opt(r, "threshold", 0.5), policy=_opt(r, "policy", "window"),
                               window_duration=_opt(r, "window_duration", 60),
                               deadline=when(r.get("deadline"), "failure_risk.deadline", day="end"),
                               penalty_per_unit=_opt(r, "penalty_per_unit", 1.0),
                               service_first=_bool(_opt(r, "service_first", True), "failure_risk.service_first"),
                               crews=r.get("crews"))
        except ValueError as e:
            window = _opt(r, "window_duration", 60)
            end = clock.at(window) if clock is not None and "before a window" in str(e) else None
            said = when.context(str(e), "failure_risk.deadline", extra=(
                f"; a window of {window} from clock.start ends at {end} at the earliest" if end else ""))
            if "deadline" not in str(e) or said == str(e):
                raise
            raise ValueError(said) from None
    pname = data.get("name")
    if pname is None:
        pname = name
    elif isinstance(pname, bool) or not isinstance(pname, str | int):
        raise ValueError(f"problem.name must be a string, got {_kind(pname)}")
    horizon = when(data.get("horizon"), "horizon", day="end")
    try:
        return SchedulingProblem(jobs=tuple(jobs), machines=tuple(machines), name=str(pname),
                                 setups=setups, precedences=tuple(precs), energy=energy, risk=risk,
                                 horizon=horizon, clock=clock)
    except ValueError as e:
        if "horizon" not in str(e) or (said := when.context(str(e), "horizon")) == str(e):
            raise
        raise ValueError(said) from None


def _release(job: dict, jid: str, when: Times) -> Any:
    """A job's release in plan units. An ISO time before clock.start is 0: the order is released already (a re-plan
    from 06:40 of an order released at 05:00). A number below 0 stays an error; with a clock its message says
    where t=0 lies."""
    raw = _opt(job, "release", 0)
    release = when(raw, f"job {jid!r} release", "ceil")
    if isinstance(raw, str) and when.clock is not None:
        return max(release, 0)
    if when.clock is not None and isinstance(release, int | float) and not isinstance(release, bool) and release < 0:
        raise ValueError(f"job {jid!r} release must be >= 0, got {_show(raw)}: t=0 is the plan's start, clock.start "
                         f"{when.clock.at(0)}; give 0 for an order released already, or its release as an ISO time "
                         "(one before clock.start counts as released: 0)")
    return release


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
            durations = dict(o.durations)
            if o.started and o.elapsed and o.pinned_machine is not None:
                durations[o.pinned_machine] += o.elapsed  # begun before t=0: its whole duration, its real start
            od: dict[str, Any] = {"id": o.id, "machines": durations}
            if o.family is not None:
                od["family"] = o.family
            if o.power_kw:
                od["power_kw"] = o.power_kw
            if bool(o.can_span_break) != bool(o.started):  # the default: true for a started operation only
                od["can_span_break"] = bool(o.can_span_break)
            if o.pinned_machine is not None and o.pinned_start is not None:
                od["started" if o.started else "pinned"] = {"machine": o.pinned_machine,
                                                            "start": o.started_at if o.started else o.pinned_start}
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
                             "penalty_per_unit": r.penalty_per_unit, "service_first": r.service_first,
                             "crews": r.crews}
    if problem.horizon is not None:
        d["horizon"] = problem.horizon
    if problem.clock is not None:
        d["clock"] = problem.clock.to_dict()
    return d
