"""A risky machine is serviced before it takes work (``FailureRisk.service_first``, the default): its window goes at
the earliest time it fits, and only operations pinned or running on it come before the window."""

from __future__ import annotations

import pytest

from optimization.check import verify
from optimization.io import problem_from_dict, problem_to_dict
from optimization.problem import Downtime, FailureRisk, Job, Machine, Operation, SchedulingProblem
from optimization.solution import Assignment, Schedule
from optimization.solver import SolverParams, solve
from optimization.windows import AFTER_PINS, NoWindow, service_first

FAST = SolverParams(time_limit_s=3, workers=2, seed=0)
OBJECTIVES = ("makespan", "tardiness", "weighted", "lex")


def _shop(risk: FailureRisk, *, calendar=(), ops_m1: int = 4, pinned: Operation | None = None) -> SchedulingProblem:
    """Two machines; M1 risky; jobs due early so that the objective would rather run them at once."""
    jobs = [Job(f"J{i}", (Operation("a", {"M1": 10, "M2": 25}), Operation("b", {"M1": 5})), due=20)
            for i in range(ops_m1)]
    if pinned is not None:
        jobs.append(Job("P", (pinned,)))
    return SchedulingProblem(jobs=tuple(jobs), machines=(Machine("M1", calendar=tuple(calendar)), Machine("M2")),
                             risk=risk)


def _work_on(s: Schedule, machine: str) -> list[Assignment]:
    return [a for a in s.assignments if a.machine == machine and a.end > a.start]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_window_comes_first_and_no_work_before_it(objective):
    p = _shop(FailureRisk({"M1": 0.8, "M2": 0.1}, window_duration=60))
    s = solve(p, SolverParams(**{**FAST.__dict__, "objective": objective}))
    assert verify(p, s) == []
    assert [(w.machine, w.start, w.end) for w in s.maintenance] == [("M1", 0, 60)]
    assert _work_on(s, "M1") and min(a.start for a in _work_on(s, "M1")) >= 60
    if objective in ("makespan", "tardiness"):
        assert min(a.start for a in _work_on(s, "M2")) == 0  # the other machine works meanwhile


def test_the_window_goes_around_downtimes_and_running_work():
    # an operation running until 45 (its remaining part, as io reads a negative start) and a holiday 50-70: the
    # window is 70-130
    running = Operation("run", {"M1": 45}, pinned_machine="M1", pinned_start=0, started=True, elapsed=15)
    p = _shop(FailureRisk({"M1": 0.8}, window_duration=60), calendar=[Downtime(50, 70, "holiday")],
              pinned=running)
    assert [(w.start, w.end) for w in service_first(p)[1]] == [(70, 130)]
    s = solve(p, FAST)
    assert verify(p, s) == []
    assert [(w.start, w.end, w.reason) for w in s.maintenance] == [(70, 130, "failure risk")]  # the holiday's doing
    starts = {a.key: a.start for a in _work_on(s, "M1")}
    assert starts.pop(("P", "run")) == 0 and min(starts.values()) >= 130
    # a break does not hold the window up (breaks are spanned, as by the flexible window)
    p2 = _shop(FailureRisk({"M1": 0.8}, window_duration=60), calendar=[Downtime(10, 20, "break")])
    assert [(w.start, w.end) for w in service_first(p2)[1]] == [(0, 60)]


def test_a_pin_before_the_window_stays_where_the_planner_put_it():
    pin = Operation("fix", {"M1": 20}, pinned_machine="M1", pinned_start=100)
    p = _shop(FailureRisk({"M1": 0.8}, window_duration=60), pinned=pin)
    s = solve(p, FAST)
    assert verify(p, s) == []
    assert [(w.start, w.end, w.reason) for w in s.maintenance] == [(0, 60, "failure risk")]
    assert s.by_key()[("P", "fix")].start == 100
    # a pin in the way: the window waits for a gap long enough
    pin2 = Operation("fix", {"M1": 20}, pinned_machine="M1", pinned_start=30)
    p2 = _shop(FailureRisk({"M1": 0.8}, window_duration=60), pinned=pin2)
    s2 = solve(p2, FAST)
    assert verify(p2, s2) == [] and [(w.start, w.end) for w in s2.maintenance] == [(50, 110)]
    # and the window says why it is not at the machine's first free time (it had given no sign of the move)
    assert [w.reason for w in s2.maintenance] == [AFTER_PINS] == ["failure risk (after pinned work)"]
    assert all(a.start >= 110 for a in _work_on(s2, "M1") if a.key != ("P", "fix"))


def test_service_first_false_keeps_the_flexible_window():
    p = _shop(FailureRisk({"M1": 0.8}, window_duration=60, service_first=False), ops_m1=1)
    s = solve(p, SolverParams(**{**FAST.__dict__, "objective": "tardiness"}))
    assert verify(p, s) == []
    (w,) = s.maintenance
    assert min(a.start for a in _work_on(s, "M1")) < w.start  # the work first, on time; the window after
    assert s.objective["weighted_tardiness"] == 0


def test_the_checker_refuses_work_before_the_window():
    p = _shop(FailureRisk({"M1": 0.8}, window_duration=60), ops_m1=1)
    flexible = solve(_shop(FailureRisk({"M1": 0.8}, window_duration=60, service_first=False), ops_m1=1),
                     SolverParams(**{**FAST.__dict__, "objective": "tardiness"}))
    problems = verify(p, flexible)
    assert problems and all(v.kind == "maintenance" for v in problems)
    assert "before its maintenance window" in problems[0].message


def test_a_window_that_cannot_end_by_the_deadline_is_no_plan_with_the_reason():
    p = _shop(FailureRisk({"M1": 0.8}, window_duration=60, deadline=100),
              calendar=[Downtime(0, 50, "maintenance")])
    with pytest.raises(NoWindow, match="ends at 110 at the earliest, after the maintenance deadline 100"):
        service_first(p)
    s = solve(p, FAST)
    assert s.status == "INFEASIBLE" and not s.assignments
    assert [r["type"] for r in s.stats["no_plan_reasons"]] == ["maintenance_deadline"]


def test_json_reads_and_writes_service_first():
    d = problem_to_dict(_shop(FailureRisk({"M1": 0.8}, service_first=False)))
    assert d["failure_risk"]["service_first"] is False
    assert problem_from_dict(d).risk.service_first is False
    del d["failure_risk"]["service_first"]
    assert problem_from_dict(d).risk.service_first is True  # the default
    d["failure_risk"]["service_first"] = "yes"
    with pytest.raises(ValueError, match="service_first must be true or false"):
        problem_from_dict(d)


@pytest.mark.parametrize("seed", [3, 11])
def test_generated_shops_with_calendars_setups_and_pins_service_first(seed):
    """Shops with shifts, breaks, setups and a pinned operation, two risky machines: every strategy's plan passes
    the checker (which refuses unpinned work before a window), each window where ``service_first`` put it."""
    import dataclasses

    from benchmarks.gen_shop import generate
    from tests.optimization.test_lns_dispatch import _with_pins_and_risk

    p = _with_pins_and_risk(generate(25, 4, 6, seed=seed, days=2))
    risky = [p.machines[1].id, p.machines[2].id]
    p = dataclasses.replace(p, risk=FailureRisk({m: 0.9 for m in risky}, window_duration=60))
    expected = [(w.machine, w.start, w.end) for w in service_first(p)[1]]
    assert [m for m, _, _ in expected] == risky
    for strategy in ("full", "lns", "auto"):
        s = solve(p, SolverParams(**{**FAST.__dict__, "time_limit_s": 2, "strategy": strategy}))
        assert verify(p, s) == [], (strategy, verify(p, s)[:3])
        assert [(w.machine, w.start, w.end) for w in s.maintenance] == expected


def test_a_maintenance_already_in_the_calendar_is_the_service():
    """A risky machine whose calendar already holds a long enough maintenance at the plan's start is not serviced a
    second time after it (it had been: 0-120 booked, then a window 120-180); a short one, or a later one, is not
    the service, and the window comes first as before."""
    booked = [Downtime(0, 120, "maintenance")]
    p = _shop(FailureRisk({"M1": 0.8}, window_duration=60), calendar=booked)
    s = solve(p, FAST)
    assert verify(p, s) == []
    assert [(w.start, w.end, w.reason) for w in s.maintenance] == [(0, 120, "failure risk (calendar maintenance)")]
    assert min(a.start for a in _work_on(s, "M1")) == 120
    short = _shop(FailureRisk({"M1": 0.8}, window_duration=60), calendar=[Downtime(0, 30, "maintenance")])
    assert [(w.start, w.end) for w in service_first(short)[1]] == [(30, 90)]
    later = _shop(FailureRisk({"M1": 0.8}, window_duration=60), calendar=[Downtime(300, 400, "maintenance")])
    assert [(w.start, w.end) for w in service_first(later)[1]] == [(0, 60)]
    # one that ends past the deadline is not the service either: no plan, and why
    late = _shop(FailureRisk({"M1": 0.8}, window_duration=60, deadline=100), calendar=booked)
    assert solve(late, FAST).status == "INFEASIBLE"


def test_a_zero_length_operation_may_sit_in_the_window_as_in_a_downtime():
    """The machine is down until its window ends, and an operation that takes no time may sit in a downtime: one
    placed in the window (unpinned, or pinned there) had made the checker refuse the solver's own plan (review)."""
    chain = Job("J", (Operation("a", {"M2": 30}), Operation("z", {"M1": 0}), Operation("b", {"M2": 10})))
    p = SchedulingProblem(jobs=(chain,), machines=(Machine("M1"), Machine("M2")),
                          risk=FailureRisk({"M1": 0.9}, window_duration=60))
    s = solve(p, FAST)
    assert s.status == "OPTIMAL" and verify(p, s) == [] and s.makespan == 40
    pinned = Job("P", (Operation("z", {"M1": 0}, pinned_machine="M1", pinned_start=20),))
    p2 = SchedulingProblem(jobs=(pinned, Job("J", (Operation("a", {"M1": 10}),))), machines=(Machine("M1"),),
                           risk=FailureRisk({"M1": 0.9}, window_duration=60))
    s2 = solve(p2, FAST)
    assert verify(p2, s2) == [] and [(w.start, w.end) for w in s2.maintenance] == [(0, 60)]
    assert s2.by_key()[("P", "z")].start == 20 and s2.by_key()[("J", "a")].start == 60


def test_the_setup_between_two_pins_before_the_window_keeps_its_working_time():
    """Pins at [0, 10) (family X) and [40, 50) (Y) with a setup of 5 between them and a window of 60: the time
    between the pins had been made downtime, the setup found none, and the solve answered UNKNOWN blaming the time
    limit (review). The window goes after the second pin, the setup runs between them."""
    from optimization.problem import SetupTimes

    jobs = (Job("A", (Operation("a", {"M1": 10}, family="X", pinned_machine="M1", pinned_start=0),)),
            Job("B", (Operation("b", {"M1": 10}, family="Y", pinned_machine="M1", pinned_start=40),)),
            Job("C", (Operation("c", {"M1": 10}, family="Y"),)))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1"),), setups=SetupTimes({("X", "Y"): 5}),
                          risk=FailureRisk({"M1": 0.9}, window_duration=60))
    s = solve(p, FAST)
    assert s.status == "OPTIMAL" and verify(p, s) == []
    assert [(w.start, w.end) for w in s.maintenance] == [(50, 110)] and s.by_key()[("C", "c")].start == 110


def test_no_plan_reasons_are_those_of_the_problem_as_given():
    """The reasons were worked out on the problem with the machine made down until its window: relaxing the pins
    there named a plan ending at 90 that does not exist (125 without the pins). Servicing first is named as a cause
    of its own; a window that cannot end by the horizon says so at once, serviced first or not."""
    p = SchedulingProblem(jobs=(
        Job("P", (Operation("p", {"M1": 10}, pinned_machine="M1", pinned_start=0),)),
        Job("J", (Operation("a", {"M1": 10}), Operation("b", {"M2": 50}))),
        Job("K", (Operation("c", {"M1": 10}), Operation("d", {"M2": 5}, pinned_machine="M2", pinned_start=50)))),
        machines=(Machine("M1"), Machine("M2")), risk=FailureRisk({"M1": 0.9}, window_duration=60))
    s = solve(p, FAST)
    assert s.status == "INFEASIBLE"
    reasons = {r["type"]: r for r in s.stats["no_plan_reasons"]}
    assert reasons["pinned"]["makespan"] == 125 and reasons["service_first"]["makespan"] < 125
    for first in (True, False):
        short = SchedulingProblem(jobs=(Job("J", (Operation("a", {"M1": 10, "M2": 10}),)),),
                                  machines=(Machine("M1"), Machine("M2")), horizon=50,
                                  risk=FailureRisk({"M1": 0.9}, window_duration=60, service_first=first))
        s = solve(short, FAST)
        assert s.status == "INFEASIBLE" and [r["type"] for r in s.stats["no_plan_reasons"]] == ["horizon"], first
        assert "maintenance window of 60 ends at 60 at the earliest, after the plan's horizon 50" in \
            s.stats["no_plan_reasons"][0]["message"]


def test_a_step_after_the_service_and_its_setup_is_explained_by_them():
    """A step that waits for the service window and then for its setup was explained as "could start earlier" (or
    as held by the peak power cap, with a cap that left room): the setup runs in working time after the window, so
    the step's start is the window's end plus the setup (planner audit)."""
    from optimization.explain import explain_late_jobs
    from optimization.problem import SetupTimes

    running = Operation("r", {"M1": 20}, family="A", pinned_machine="M1", pinned_start=0, started=True)
    jobs = (Job("R", (running,)), Job("J", (Operation("b", {"M1": 10}, family="B"),), due=50))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1"),), setups=SetupTimes({("A", "B"): 30}),
                          risk=FailureRisk({"M1": 0.9}, window_duration=60))
    s = solve(p, FAST)
    assert verify(p, s) == [] and [(w.start, w.end) for w in s.maintenance] == [(20, 80)]
    assert s.by_key()[("J", "b")].start == 110
    (late,) = explain_late_jobs(p, s)
    binding = late["critical_chain"][-1]["binding"]  # the chain runs from its start to the late step
    assert [b["type"] for b in binding] == ["machine_busy", "setup", "maintenance"], binding
    assert binding[2] == {"type": "maintenance", "machine": "M1", "start": 20, "end": 80, "reason": "failure risk"}
