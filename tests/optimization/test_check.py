from __future__ import annotations

from dataclasses import replace

import pytest

from optimization.check import verify
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
from optimization.solution import Assignment, MaintenanceWindow, Schedule


def _problem() -> SchedulingProblem:
    jobs = (
        Job(
            "J1",
            (Operation("A", {"M1": 3}, family="X", power_kw=10), Operation("B", {"M2": 2, "M1": 4}, power_kw=10)),
            release=0,
        ),
        Job("J2", (Operation("C", {"M1": 2}, family="Y", power_kw=10),), release=1),
        Job("J3", (Operation("P", {"M2": 1}, pinned_machine="M2", pinned_start=20),)),
    )
    machines = (Machine("M1", (Downtime(30, 40, "holiday"),)), Machine("M2"))
    return SchedulingProblem(
        jobs=jobs,
        machines=machines,
        setups=SetupTimes({("X", "Y"): 2}),
        precedences=(Precedence(("J1", "A"), ("J2", "C"), 0),),
        energy=EnergySettings(period=10, peak_cap_kw=25),
        risk=FailureRisk({"M2": 0.9}, threshold=0.5, window_duration=5, deadline=60, service_first=False),
    )


def _good() -> Schedule:
    return Schedule(
        [
            Assignment("J1", "A", "M1", 0, 3),
            Assignment("J1", "B", "M2", 3, 5),
            Assignment("J2", "C", "M1", 5, 7, 2),
            Assignment("J3", "P", "M2", 20, 21),
        ],
        maintenance=[MaintenanceWindow("M2", 40, 45)],
    )


def test_good_schedule_passes():
    assert verify(_problem(), _good()) == []


def _plant(change: dict) -> Schedule:
    s = _good()
    rows = {a.key: a for a in s.assignments}
    for k, new in change.items():
        if new is None:
            rows.pop(k)
        else:
            rows[k] = replace(rows[k], **new)
    return Schedule(list(rows.values()), maintenance=s.maintenance)


@pytest.mark.parametrize(
    "change,kind",
    [
        ({("J2", "C"): None}, "missing"),
        ({("J1", "B"): {"machine": "M3"}}, "eligibility"),
        ({("J1", "B"): {"end": 6}}, "duration"),
        ({("J2", "C"): {"start": 2, "end": 4}}, "overlap"),
        ({("J2", "C"): {"start": 4, "end": 6}}, "setup"),
        ({("J1", "B"): {"start": 2, "end": 4}}, "precedence"),
        ({("J3", "P"): {"start": 22, "end": 23}}, "pinned"),
        ({("J2", "C"): {"start": 31, "end": 33}}, "calendar"),
        ({("J3", "P"): {"start": 41, "end": 42}}, "pinned"),
    ],
)
def test_planted_violation_is_caught(change, kind):
    kinds = {v.kind for v in verify(_problem(), _plant(change))}
    assert kind in kinds


def test_release_violation():
    p = _problem()
    s = _good()
    s.assignments[2] = Assignment("J2", "C", "M1", 0, 2)  # J2 released at 1 (and overlaps J1 A)
    assert "release" in {v.kind for v in verify(p, s)}


def test_maintenance_window_and_peak_power():
    p = _problem()
    s = _good()
    s.maintenance = [MaintenanceWindow("M2", 3, 8)]  # covers J1 B
    assert "maintenance" in {v.kind for v in verify(p, s)}
    s.maintenance = []
    assert "maintenance" in {v.kind for v in verify(p, s)}  # risky machine without a window
    s = _good()
    s.assignments[1] = Assignment("J1", "B", "M2", 5, 7)
    s.assignments[2] = Assignment("J2", "C", "M1", 5, 7, 2)  # 20 kW together > cap 25? no: 20 <= 25
    assert verify(p, s) == []
    tight = replace(p, energy=EnergySettings(period=10, peak_cap_kw=15))
    assert "peak_power" in {v.kind for v in verify(tight, s)}


def test_zero_length_operations_at_one_instant_are_checked_in_an_order_that_can_hold():
    """A plan gives times, not the order of operations that take no time: two zero-length operations at one
    instant were checked in the order the plan listed them, so a one-way setup (B -> A needs 4, A -> B none) was
    reported for a plan that is valid with A first. Where no order holds, the setup is still reported."""
    jobs = (Job("J1", (Operation("A", {"M1": 0}, family="a"),)), Job("J2", (Operation("B", {"M1": 0}, family="b"),)))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1"),), setups=SetupTimes({("b", "a"): 4}))
    for order in (("J1", "J2"), ("J2", "J1")):
        plan = Schedule(assignments=tuple(Assignment(j, "A" if j == "J1" else "B", "M1", 5, 5) for j in order))
        assert verify(p, plan) == [], order
    both = replace(p, setups=SetupTimes({("b", "a"): 4, ("a", "b"): 4}))
    plan = Schedule(assignments=(Assignment("J1", "A", "M1", 5, 5), Assignment("J2", "B", "M1", 5, 5)))
    assert [x.kind for x in verify(both, plan)] == ["setup"]
    # with the operation before them: b then the pair needs the pair to start with b
    jobs3 = (*jobs, Job("J3", (Operation("C", {"M1": 5}, family="b"),)))
    p3 = replace(p, jobs=jobs3)
    plan = Schedule(assignments=(Assignment("J3", "C", "M1", 0, 5), Assignment("J1", "A", "M1", 5, 5),
                                 Assignment("J2", "B", "M1", 5, 5)))
    assert [x.kind for x in verify(p3, plan)] == ["setup"]  # b -> (a, b) or (b, a): one b -> a either way
