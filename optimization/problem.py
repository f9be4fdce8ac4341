"""The scheduling problem as frozen, validated data. No solver imports here.

Time is integral (any unit: minutes, seconds); every interval is half-open ``[start, end)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

DOWNTIME_KINDS = ("break", "shift", "holiday", "maintenance")
OpKey = tuple[str, str]  # (job id, operation id)

# Bounds of the numbers a problem may hold. Time values (durations, dates, setups, lags, periods) stay within
# +-MAX_TIME, so sums over a whole plan (horizons, 10**6 operations) stay far inside int64 and CP-SAT's domains.
MAX_TIME = 10**9
MAX_WEIGHT = 1e6  # job weights, objective weights, risk penalty per unit
MAX_CREWS = 10_000  # maintenance crews working at once (failure_risk.crews)
MAX_POWER_KW = 1e9  # operation power, base load, peak cap
MAX_PRICE = 1e6  # energy price per kWh
MAX_HOURS_PER_UNIT = 1e4
MAX_MINUTES_PER_UNIT = 7 * 24 * 60  # a clock's unit: at most a week
MIN_MINUTES_PER_UNIT = 1e-3  # and at least 0.06 s


def _show(value: object) -> str:
    """``repr(value)``, shortened for messages (a fuzzer's 400-digit number)."""
    r = repr(value)
    return r if len(r) <= 40 else f"{r[:20]}...({len(r)} characters)"


def _int(value: object, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an integer (not a bool); with ``lo``/``hi``, also within that range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {_show(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{what} must be an integer in {lo if lo is not None else '...'}.."
                         f"{hi if hi is not None else '...'}, got {_show(value)}")
    return value


_CLOCK_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}")  # a date or a clock time, as an MES writes a due time


def _time(value: object, what: str, lo: int = -MAX_TIME) -> int:
    """A time value (integer within +-MAX_TIME, or from ``lo``). A date or clock time given as text is refused
    saying how times are counted (an MES sent its due times as ISO dates and read only "must be an integer")."""
    _no_clock_text(value, what)
    return _int(value, what, lo, MAX_TIME)


def _no_clock_text(value: object, what: str) -> None:
    if isinstance(value, str) and _CLOCK_TEXT.search(value):
        raise ValueError(f"{what} must be an integer, got {_show(value)}: times are whole numbers of the plan's time "
                         "unit counted from the plan's start (t=0), e.g. minutes after it; give the "
                         "problem a \"clock\" (its start on the calendar) to send dates and times, or convert them "
                         "before sending")


def _num(value: object, what: str, lo: float, hi: float) -> float:
    """A finite real number (not a bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {_show(value)}")
    v = float(value) if not isinstance(value, int) or abs(value) <= 2**63 else math.inf
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{what} must be a finite number in {lo:g}..{hi:g}, got {_show(value)}")
    return v


def _freeze(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


# a date, or a date and time with or without an offset (an offset after a date alone, "2026-12-08+09:00", is refused:
# Python reads its "+" as the time separator, 09:00 local)
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?")
ROUNDINGS = ("floor", "ceil")
DATE_ALONE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_clock_time(value: object, what: str) -> datetime:
    """An ISO 8601 date or date and time (``2026-12-08``, ``2026-12-08T06:00``, ``2026-12-08T06:00:00+09:00``,
    ``...Z``), with or without a UTC offset; anything else is refused naming ``what``."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or len(text) > 40 or not ISO_TIME.fullmatch(text):
        raise ValueError(f"{what} must be an ISO 8601 date and time (2026-12-08T06:00:00+09:00), got {_show(value)}")
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise ValueError(f"{what} is not a real date and time: {_show(value)}") from None


@dataclass(frozen=True)
class PlanClock:
    """Where the plan's time 0 lies on the calendar, and how long one time unit is. With it, the problem's times may
    be sent as ISO dates and times (converted to units here), and the answer gives each row's times on the clock.
    ``start`` with a UTC offset makes the plan's clock that offset's; without one, it is the plant's local time and
    the times sent must have none either."""

    start: datetime
    minutes_per_unit: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.start, datetime):
            raise ValueError(f"clock.start must be a date and time, got {_show(self.start)}")
        _num(self.minutes_per_unit, "clock.minutes_per_unit", MIN_MINUTES_PER_UNIT, MAX_MINUTES_PER_UNIT)

    @property
    def unit(self) -> timedelta:
        return timedelta(minutes=float(self.minutes_per_unit))

    def units(self, value: object, what: str, rounding: str = "floor", day: str = "start") -> int:
        """``value`` (an ISO date and time) as plan units from ``start``, rounded down (``floor``: a due time never
        later than asked) or up (``ceil``: a release never earlier). A date alone (``2026-12-08``) is that day's
        00:00 (``day="start"``: a release, a pin, a downtime) or its end, the next day's 00:00 (``day="end"``: a
        due, a deadline, a horizon: ERP due dates mean "by the end of that day"); it has no UTC offset, so with a
        ``start`` that has one it is refused, saying which time to send."""
        at = parse_clock_time(value, what)
        if isinstance(value, str) and DATE_ALONE.fullmatch(value.strip()):
            if day == "end":
                try:
                    at += timedelta(days=1)
                except OverflowError:
                    raise ValueError(f"{what} {_show(value)}: the end of that day is past the calendar's end") from None
            if self.start.tzinfo is not None:
                meant = at.replace(tzinfo=self.start.tzinfo).isoformat()
                reading = "the end of that day" if day == "end" else "the start of that day"
                raise ValueError(f"{what} {_show(value)} is a date without a time of day, and clock.start has a UTC "
                                 f"offset ({self.start.isoformat()}): send a date and time with its offset; here a "
                                 f"date alone means {reading}, so send {meant!r}"
                                 + (" (24:00 is not ISO 8601: the end of a day is the next day's 00:00)"
                                    if day == "end" else ""))
        if (at.tzinfo is None) != (self.start.tzinfo is None):
            has, lacks = ("it", "clock.start") if at.tzinfo is not None else ("clock.start", "it")
            raise ValueError(f"{what} {_show(value)}: {has} has a UTC offset and {lacks} has none; give both one "
                             "(2026-12-08T06:00:00+09:00), or neither (the plant's local time)")
        units = (at - self.start) / self.unit
        out = math.floor(units + 1e-9) if rounding == "floor" else math.ceil(units - 1e-9)
        if abs(out) > MAX_TIME:
            raise ValueError(f"{what} {_show(value)} is {out:,} time units from clock.start, beyond +-{MAX_TIME:,}")
        return out

    def at(self, t: float) -> str | None:
        """Time ``t`` of the plan on the clock (ISO 8601, seconds; milliseconds where a unit is finer), or None past
        the calendar's end (year 9999)."""
        try:
            when = self.start + t * self.unit
        except OverflowError:
            return None
        return when.isoformat(timespec="seconds" if when.microsecond == 0 else "milliseconds")

    def to_dict(self) -> dict:
        return {"start": self.at(0), "minutes_per_unit": self.minutes_per_unit}


@dataclass(frozen=True)
class Downtime:
    """A period when a machine cannot process. ``kind='break'`` may be spanned by operations that allow it."""

    start: int
    end: int
    kind: str = "break"

    def __post_init__(self) -> None:
        _time(self.start, "downtime start")
        _time(self.end, "downtime end")
        if self.end <= self.start:
            raise ValueError(f"downtime [{self.start}, {self.end}) must have end > start")
        if self.kind not in DOWNTIME_KINDS:
            raise ValueError(f"downtime kind {self.kind!r} not one of {DOWNTIME_KINDS}")


@dataclass(frozen=True)
class Machine:
    id: str
    calendar: tuple[Downtime, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("machine id must be a non-empty string")
        object.__setattr__(self, "calendar", tuple(sorted(self.calendar, key=lambda d: (d.start, d.end))))

    def blocking(self, can_span_break: bool) -> tuple[Downtime, ...]:
        """Downtimes an operation may not overlap: all, or all but breaks when it may span a break; sorted, with
        overlapping or touching ones merged (a break within a holiday, a shift listed twice). CP-SAT's no-overlap
        and the dispatching schemes' bisections need them disjoint: overlapping ones made the model infeasible."""
        key = "_blocking_span" if can_span_break else "_blocking_all"
        merged = self.__dict__.get(key)
        if merged is None:
            out: list[Downtime] = []
            for d in self.calendar:  # sorted by start
                if can_span_break and d.kind == "break":
                    continue
                if out and d.start <= out[-1].end:
                    last = out[-1]
                    if d.end > last.end:
                        out[-1] = Downtime(last.start, d.end, d.kind if last.kind == "break" else last.kind)
                else:
                    out.append(d)
            merged = tuple(out)
            object.__setattr__(self, key, merged)
        return merged


@dataclass(frozen=True)
class Operation:
    """One step of a routing. ``durations`` maps each eligible machine to its processing time.

    ``pinned_machine``/``pinned_start``: the operation's fixed place (the JSON ``pinned``, or ``started`` with
    ``started=True``: already running). A started operation may have begun before the plan's time 0 (a negative
    start): only its remaining part is planned, from 0 on its machine, so its ``durations`` entry for that machine
    becomes the remaining ``start + duration``, ``pinned_start`` 0, and ``elapsed`` the time it had already run
    (``started_at`` gives the real start back). ``can_span_break`` left as ``None`` is true for a started operation
    (a running operation runs through a break) and false otherwise.
    """

    id: str
    durations: Mapping[str, int]
    family: str | None = None
    power_kw: float = 0.0
    can_span_break: bool | None = None
    pinned_machine: str | None = None
    pinned_start: int | None = None
    started: bool = False
    elapsed: int = 0  # a started operation's time already run before t=0 (not part of ``durations``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "durations", _freeze(self.durations))
        if not self.id:
            raise ValueError("operation id must be a non-empty string")
        if not self.durations:
            raise ValueError(f"operation {self.id!r} has no eligible machine")
        for m, d in self.durations.items():
            _int(d, f"operation {self.id!r} duration on machine {m!r}")
            if d < 0:
                raise ValueError(f"operation {self.id!r} has negative duration {d} on machine {m!r}")
            _time(d, f"operation {self.id!r} duration on machine {m!r}", 0)
        object.__setattr__(self, "power_kw", _num(self.power_kw, f"operation {self.id!r} power_kw", 0.0,
                                                  MAX_POWER_KW))
        if self.can_span_break is None:  # not given: a running operation runs through a break
            object.__setattr__(self, "can_span_break", bool(self.started))
        what = "started" if self.started else "pinned"
        if self.pinned_machine is not None and self.pinned_machine not in self.durations:
            raise ValueError(f"operation {self.id!r} is {what} on machine {self.pinned_machine!r}, which is not one "
                             "of its machines")
        _time(_int(self.elapsed, f"operation {self.id!r} elapsed"), f"operation {self.id!r} elapsed", 0)
        if self.pinned_start is not None:
            _time(self.pinned_start, f"operation {self.id!r} {what}.start")
            if self.pinned_start < 0 and not self.started:
                raise ValueError(f"operation {self.id!r} is pinned at {self.pinned_start}: a pinned operation starts "
                                 "at t >= 0 (the plan's start); one already running is 'started', not 'pinned'")
        if self.started and (self.pinned_start is None or self.pinned_machine is None):
            raise ValueError(f"operation {self.id!r} is started but lacks its machine and start")
        if self.started and self.pinned_start < 0:  # type: ignore[operator]
            self._plan_remaining_part()

    def _plan_remaining_part(self) -> None:
        """A started operation that began before t=0: plan what is left of it, from 0 on its machine."""
        m, start = self.pinned_machine, self.pinned_start
        full = self.durations[m]  # type: ignore[index]
        left = start + full  # type: ignore[operator]
        if left <= 0:
            raise ValueError(f"operation {self.id!r} is started at {start} on machine {m!r} and lasts {full}: it "
                             f"ended at t={left} (the plan starts at 0), so it is finished; leave it out of the plan")
        object.__setattr__(self, "durations", _freeze({**self.durations, m: left}))
        object.__setattr__(self, "elapsed", self.elapsed - start)  # type: ignore[operator]
        object.__setattr__(self, "pinned_start", 0)

    @property
    def started_at(self) -> int | None:
        """The real start of a pinned or started operation (before 0 for one that was running at t=0)."""
        return None if self.pinned_start is None else self.pinned_start - self.elapsed

    @property
    def machines(self) -> tuple[str, ...]:
        if self.pinned_machine is not None:
            return (self.pinned_machine,)
        return tuple(self.durations)

    @property
    def min_duration(self) -> int:
        return min(self.durations[m] for m in self.machines)


@dataclass(frozen=True)
class Job:
    id: str
    operations: tuple[Operation, ...]
    release: int = 0
    due: int | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", tuple(self.operations))
        if not self.id:
            raise ValueError("job id must be a non-empty string")
        if not self.operations:
            raise ValueError(f"job {self.id!r} has no operations")
        _no_clock_text(self.release, f"job {self.id!r} release")
        _int(self.release, f"job {self.id!r} release")
        if self.release < 0:
            raise ValueError(f"job {self.id!r} release must be >= 0")
        _time(self.release, f"job {self.id!r} release", 0)
        if self.due is not None:
            _time(self.due, f"job {self.id!r} due")
        object.__setattr__(self, "weight", _num(self.weight, f"job {self.id!r} weight", 0.0, MAX_WEIGHT))
        seen: set[str] = set()
        for op in self.operations:
            if op.id in seen:
                raise ValueError(f"job {self.id!r} has duplicate operation id {op.id!r}")
            seen.add(op.id)
            if op.pinned_start is not None and op.pinned_start < self.release:
                raise ValueError(f"job {self.id!r} operation {op.id!r} is {'started' if op.started else 'pinned'} "
                                 f"at {op.started_at}, before the job's release {self.release}")


@dataclass(frozen=True)
class Precedence:
    """``after`` may start only ``min_lag`` time units after ``before`` ends (across jobs)."""

    before: OpKey
    after: OpKey
    min_lag: int = 0


def _few(names: list, most: int = 8) -> str:
    """``'a', 'b' and 'c'``, the first ``most`` of them and how many more."""
    shown = [repr(n) for n in names[:most]] + ([f"{len(names) - most} more"] if len(names) > most else [])
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


@dataclass(frozen=True)
class SetupTimes:
    """Sequence-dependent setup time between product families; per-machine entries override the global ones.

    The setup is needed on the machine between two consecutive operations of families (a, b); the same family or
    a family missing from the matrix needs none.
    """

    matrix: Mapping[tuple[str, str], int] = field(default_factory=dict)
    per_machine: Mapping[str, Mapping[tuple[str, str], int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "matrix", _freeze(self.matrix))
        object.__setattr__(self, "per_machine", _freeze({m: _freeze(v) for m, v in self.per_machine.items()}))
        for (a, b), s in self.matrix.items():
            _int(s, f"setup {a!r}->{b!r}")
            if s < 0:
                raise ValueError(f"setup {a!r}->{b!r} must be >= 0")
            _time(s, f"setup {a!r}->{b!r}", 0)
        for m, mat in self.per_machine.items():
            for (a, b), s in mat.items():
                _int(s, f"setup {a!r}->{b!r} on machine {m!r}")
                if s < 0:
                    raise ValueError(f"setup {a!r}->{b!r} on machine {m!r} must be >= 0")
                _time(s, f"setup {a!r}->{b!r} on machine {m!r}", 0)

    def time(self, machine: str, a: str | None, b: str | None) -> int:
        if a is None or b is None or a == b:
            return 0
        mat = self.per_machine.get(machine)
        if mat is not None and (a, b) in mat:
            return mat[(a, b)]
        return self.matrix.get((a, b), 0)

    @property
    def empty(self) -> bool:
        return not any(self.matrix.values()) and not any(any(v.values()) for v in self.per_machine.values())


@dataclass(frozen=True)
class EnergySettings:
    """Time-of-use tariff (price per kWh, one per period, repeating), forecast base load per period and peak cap."""

    period: int = 60
    prices: tuple[float, ...] = ()
    base_load_kw: tuple[float, ...] = ()
    peak_cap_kw: float | None = None
    hours_per_unit: float = 1.0 / 60.0

    def __post_init__(self) -> None:
        if any(not isinstance(p, bool) and isinstance(p, int | float) and p < 0 for p in self.prices):
            raise ValueError("energy prices must be >= 0")
        object.__setattr__(self, "prices", tuple(_num(p, f"energy prices[{i}]", 0.0, MAX_PRICE)
                                                 for i, p in enumerate(self.prices)))
        object.__setattr__(self, "base_load_kw", tuple(_num(p, f"energy base_load_kw[{i}]", 0.0, MAX_POWER_KW)
                                                       for i, p in enumerate(self.base_load_kw)))
        if _int(self.period, "energy period") <= 0:
            raise ValueError("energy period must be > 0")
        _time(self.period, "energy period", 1)
        if not isinstance(self.hours_per_unit, bool) and isinstance(self.hours_per_unit, int | float) and \
                self.hours_per_unit <= 0:
            raise ValueError("energy hours_per_unit must be > 0")
        _num(self.hours_per_unit, "energy hours_per_unit", 1e-9, MAX_HOURS_PER_UNIT)
        if self.peak_cap_kw is not None:
            if not isinstance(self.peak_cap_kw, bool) and isinstance(self.peak_cap_kw, int | float) and \
                    self.peak_cap_kw <= 0:
                raise ValueError("energy peak_cap_kw must be > 0")
            _num(self.peak_cap_kw, "energy peak_cap_kw", 1e-6, MAX_POWER_KW)

    def price_at(self, t: int) -> float:
        if not self.prices:
            return 0.0
        return self.prices[(t // self.period) % len(self.prices)]

    def base_at(self, t: int) -> float:
        if not self.base_load_kw:
            return 0.0
        idx = t // self.period
        return self.base_load_kw[idx] if idx < len(self.base_load_kw) else self.base_load_kw[-1]


@dataclass(frozen=True)
class FailureRisk:
    """Machine failure probabilities over the plan horizon (from the maintenance module).

    Machines at or above ``threshold`` get a maintenance window of ``window_duration`` that must end by
    ``deadline`` (policy ``window``), or a cost of ``penalty_per_unit * risk`` per unit of work on them (``penalty``).
    ``service_first`` (the default): the window comes before the machine's work, at the earliest time it fits; only
    operations pinned or running on the machine may come before it (``optimization.windows``). False: the window
    goes wherever it costs the objective least, which can be after the work.
    ``crews``: how many windows the plant's maintenance crews can work at once (None: no limit, one crew per
    machine). With fewer crews than risky machines the windows take turns, the riskiest machine first.
    """

    risks: Mapping[str, float] = field(default_factory=dict)
    threshold: float = 0.5
    policy: str = "window"
    window_duration: int = 60
    deadline: int | None = None
    penalty_per_unit: float = 1.0
    service_first: bool = True
    crews: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "risks", _freeze(self.risks))
        if self.crews is not None:
            _int(self.crews, "failure_risk crews (maintenance crews working at once)", 1, MAX_CREWS)
        if not isinstance(self.service_first, bool):
            raise ValueError(f"failure_risk service_first must be true or false, got {self.service_first!r}")
        for m, p in self.risks.items():
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
                raise ValueError(f"failure risk of machine {m!r} must be in [0, 1], got {p}")
        _num(self.threshold, "failure_risk threshold", 0.0, 1.0)
        if self.policy not in ("window", "penalty"):
            raise ValueError(f"failure risk policy must be 'window' or 'penalty', got {self.policy!r}")
        if _int(self.window_duration, "maintenance window_duration") <= 0:
            raise ValueError("maintenance window_duration must be > 0")
        _time(self.window_duration, "maintenance window_duration", 1)
        if self.deadline is not None:
            _time(self.deadline, "maintenance deadline")
            if self.deadline < self.window_duration:
                raise ValueError(f"maintenance deadline {self.deadline} is before a window of "
                                 f"{self.window_duration} can end")
        _num(self.penalty_per_unit, "failure_risk penalty_per_unit", 0.0, MAX_WEIGHT)

    def risky_machines(self) -> list[str]:
        return sorted(m for m, p in self.risks.items() if p >= self.threshold)

    def service_order(self, machines: list[str]) -> list[str]:
        """``machines`` in the order their windows take the crews: the riskiest first (ties by id)."""
        return sorted(machines, key=lambda m: (-self.risks.get(m, 0.0), m))

    def crew_limited(self, machines: list[str]) -> bool:
        """Whether the crews are fewer than the windows of ``machines`` (else the limit changes nothing)."""
        return self.crews is not None and self.crews < len(machines)


@dataclass(frozen=True)
class SchedulingProblem:
    jobs: tuple[Job, ...]
    machines: tuple[Machine, ...]
    name: str = "problem"
    setups: SetupTimes = field(default_factory=SetupTimes)
    precedences: tuple[Precedence, ...] = ()
    energy: EnergySettings | None = None
    risk: FailureRisk | None = None
    horizon: int | None = None
    clock: PlanClock | None = None  # time 0 on the calendar (the answer's clock times); the solver ignores it

    def __post_init__(self) -> None:
        object.__setattr__(self, "jobs", tuple(self.jobs))
        object.__setattr__(self, "machines", tuple(self.machines))
        object.__setattr__(self, "precedences", tuple(self.precedences))
        self._validate()

    # ---- validation -------------------------------------------------------------------------------------------
    def _validate(self) -> None:
        if not self.jobs:
            raise ValueError(f"problem {self.name!r} has no jobs")
        if not self.machines:
            raise ValueError(f"problem {self.name!r} has no machines")
        mids = [m.id for m in self.machines]
        if len(set(mids)) != len(mids):
            dup = sorted({m for m in mids if mids.count(m) > 1})
            raise ValueError(f"duplicate machine id(s): {dup}")
        jids = [j.id for j in self.jobs]
        if len(set(jids)) != len(jids):
            dup = sorted({j for j in jids if jids.count(j) > 1})
            raise ValueError(f"duplicate job id(s): {dup}")
        mset = set(mids)
        for job in self.jobs:
            for op in job.operations:
                for m in op.durations:
                    if m not in mset:
                        raise ValueError(f"job {job.id!r} operation {op.id!r}: unknown machine {m!r}")
        for m in self.setups.per_machine:
            if m not in mset:
                raise ValueError(f"setup matrix for unknown machine {m!r}")
        keys = set(self.op_keys)
        for p in self.precedences:
            for k in (p.before, p.after):
                if tuple(k) not in keys:
                    raise ValueError(f"precedence refers to unknown operation job={k[0]!r} op={k[1]!r}")
            _time(p.min_lag, "precedence min_lag")
        if self.risk is not None:
            for m in self.risk.risks:
                if m not in mset:
                    raise ValueError(f"failure risk for unknown machine {m!r}")
        if self.horizon is not None and _int(self.horizon, "horizon") <= 0:
            raise ValueError("horizon must be > 0")
        if self.horizon is not None:
            _time(self.horizon, "horizon", 1)
        self._check_power()
        self._check_acyclic()

    def _check_power(self) -> None:
        """An operation whose power alone, on top of the lowest base load, exceeds the peak cap can never run."""
        en = self.energy
        if en is None or en.peak_cap_kw is None:
            return
        low = min(en.base_load_kw, default=0.0)
        for job in self.jobs:
            for op in job.operations:
                if op.power_kw > 0 and op.min_duration > 0 and (0.0 + low) + op.power_kw > en.peak_cap_kw + 1e-9:
                    extra = f" plus the lowest base load {low:g} kW" if low else ""
                    why = (
                        "while it is already running: no plan can keep the cap (raise it for this plan)"
                        if op.started
                        else "so it can never be scheduled"
                    )
                    raise ValueError(
                        f"job {job.id!r} operation {op.id!r}: power_kw {op.power_kw:g}{extra} exceeds the energy "
                        f"peak_cap_kw {en.peak_cap_kw:g}, {why}")

    def _check_acyclic(self) -> None:
        if not self.precedences:
            return
        succ: dict[OpKey, list[OpKey]] = {k: [] for k in self.op_keys}
        indeg = dict.fromkeys(self.op_keys, 0)
        for a, b in self.all_precedence_pairs():
            succ[a].append(b)
            indeg[b] += 1
        stack = [k for k, d in indeg.items() if d == 0]
        seen = 0
        while stack:
            k = stack.pop()
            seen += 1
            for s in succ[k]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    stack.append(s)
        if seen != len(indeg):
            cyc = sorted(k for k, d in indeg.items() if d > 0)[:5]
            raise ValueError(f"precedences contain a cycle through operations {cyc}")

    # ---- lookups ----------------------------------------------------------------------------------------------
    @property
    def op_keys(self) -> list[OpKey]:
        return [(j.id, o.id) for j in self.jobs for o in j.operations]

    @property
    def n_operations(self) -> int:
        return sum(len(j.operations) for j in self.jobs)

    def job(self, job_id: str) -> Job:
        return self._job_index()[job_id]

    def op(self, key: OpKey) -> Operation:
        return self._op_index()[key]

    def machine(self, machine_id: str) -> Machine:
        return self._machine_index()[machine_id]

    def _job_index(self) -> dict[str, Job]:
        idx = self.__dict__.get("_jobs_by_id")
        if idx is None:
            idx = {j.id: j for j in self.jobs}
            object.__setattr__(self, "_jobs_by_id", idx)
        return idx

    def _op_index(self) -> dict[OpKey, Operation]:
        idx = self.__dict__.get("_ops_by_key")
        if idx is None:
            idx = {(j.id, o.id): o for j in self.jobs for o in j.operations}
            object.__setattr__(self, "_ops_by_key", idx)
        return idx

    def _machine_index(self) -> dict[str, Machine]:
        idx = self.__dict__.get("_machines_by_id")
        if idx is None:
            idx = {m.id: m for m in self.machines}
            object.__setattr__(self, "_machines_by_id", idx)
        return idx

    def all_precedence_pairs(self) -> list[tuple[OpKey, OpKey]]:
        """Routing order within each job, then the cross-job precedences (lag ignored here)."""
        pairs = []
        for j in self.jobs:
            for a, b in zip(j.operations, j.operations[1:], strict=False):
                pairs.append(((j.id, a.id), (j.id, b.id)))
        pairs.extend((tuple(p.before), tuple(p.after)) for p in self.precedences)
        return pairs

    @property
    def is_flexible(self) -> bool:
        return any(len(o.machines) > 1 for j in self.jobs for o in j.operations)

    @property
    def has_setups(self) -> bool:
        return not self.setups.empty and any(o.family for j in self.jobs for o in j.operations)

    def notes(self) -> list[dict[str, object]]:
        """What the problem holds that is valid but likely a slip, for the planner to see beside the plan: families
        that the setup matrices name but no operation has (a misspelt family never gets its setup), and, where the
        matrices hold setups, the operations' families that none of them names (changeovers to and from those take
        no time). Each a ``type``, the ``families`` and a ``message``. Also operations marked started (already
        running) at a time after the plan's start (``started_in_future``, with ``operations``): running work began
        at or before t=0, so such a mark is likely a pin meant, or a clock mix-up; it is planned where it says."""
        out: list[dict[str, object]] = []
        later = [(j.id, o.id, o.started_at) for j in self.jobs for o in j.operations
                 if o.started and o.started_at is not None and o.started_at > 0]
        if later:
            (jid, oid, at), more = later[0], len(later) - 1
            out.append({"type": "started_in_future",
                        "operations": [{"job": j, "operation": o, "start": t} for j, o, t in later[:20]],
                        "message": (f"job {jid!r} operation {oid!r} is marked started (already running) but starts at "
                                    f"t={at}, after the plan's start (t=0){f' ({more} more)' if more else ''}: "
                                    "running work began at or before t=0; to fix a future start, pin it instead")})
        en = self.energy
        over = [i for i, kw in enumerate(en.base_load_kw) if kw > en.peak_cap_kw] \
            if en is not None and en.peak_cap_kw is not None else []
        if over:
            first, worst = over[0], max(over, key=lambda i: en.base_load_kw[i])
            last = " (and every time after the last period)" if over[-1] == len(en.base_load_kw) - 1 else ""
            out.append({"type": "base_load_over_cap", "periods": over[:50], "count": len(over),
                        "message": (f"the base load alone is above energy.peak_cap_kw ({en.peak_cap_kw:g} kW) in "
                                    f"{len(over)} period{'s' * (len(over) != 1)}{last}, from t={first * en.period} "
                                    f"(highest {en.base_load_kw[worst]:g} kW at t={worst * en.period}): no plan keeps "
                                    "the cap there; operations that draw power are kept out of those periods, and "
                                    "the plan's peak_kw reports the base load")})
        if self.setups.empty:
            return out
        named = {f for mat in (self.setups.matrix, *self.setups.per_machine.values()) for pair, s in mat.items()
                 if s for f in pair}
        used = {o.family for j in self.jobs for o in j.operations if o.family is not None}
        if unused := sorted(named - used, key=str):
            out.append({"type": "setup_family_unused", "families": unused, "message": (
                f"the setup matrix names {_few(unused)}, which no operation has: those setups are never planned "
                "(a misspelt family?)")})
        if missing := sorted(used - named, key=str):
            out.append({"type": "setup_family_missing", "families": missing, "message": (
                f"no setup is given to or from {_few(missing)}: {'its' if len(missing) == 1 else 'their'} "
                "changeovers take no time")})
        return out

    def maintenance_machines(self) -> list[str]:
        """Machines that get a flexible maintenance window from the failure-risk policy."""
        if self.risk is None or self.risk.policy != "window":
            return []
        return self.risk.risky_machines()

    def trivial_lower_bound(self) -> int:
        """Makespan lower bound: longest job chain (fastest machines) and the busiest machine (fixed machines)."""
        lb = 0
        for j in self.jobs:
            lb = max(lb, j.release + sum(o.min_duration for o in j.operations))
        load: dict[str, int] = {}
        flex_work = 0
        for j in self.jobs:
            for o in j.operations:
                if len(o.machines) == 1:
                    load[o.machines[0]] = load.get(o.machines[0], 0) + o.durations[o.machines[0]]
                flex_work += o.min_duration
        if load:
            lb = max(lb, max(load.values()))
        lb = max(lb, -(-flex_work // len(self.machines)))
        return lb
