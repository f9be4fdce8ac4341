"""Zero-length operations (a milestone, an inspection sign-off) against maintenance windows, other operations and
setups, in every scheme that places or re-times operations: the compiled and the Python dispatching (``engine``),
the reference generator, the small-sub-model LNS and the compiled sequence search."""

from __future__ import annotations

import time

import pytest

from optimization.check import verify
from optimization.heuristics import RULES, _LocalState, dispatch
from optimization.lns import improve
from optimization.problem import FailureRisk, Job, Machine, Operation, SchedulingProblem, SetupTimes
from optimization.solution import MaintenanceWindow
from tests.optimization.reference_dispatch import dispatch_reference
from tests.optimization.test_lns_dispatch import _same

WINDOW = FailureRisk(risks={"M": 0.9}, threshold=0.5, window_duration=10, deadline=10)


def _at_a_window() -> SchedulingProblem:
    """Machine M's maintenance window must end by 10, so it lies at [0, 10); job Z's zero-length operation fits at 0,
    the window's start, and job A (5 units, released at 2) must wait for the window's end."""
    jobs = (Job("Z", (Operation("z", {"M": 0}),)), Job("A", (Operation("a", {"M": 5}),), release=2))
    return SchedulingProblem(jobs=jobs, machines=(Machine("M"),), risk=WINDOW)


def _at_an_operation() -> SchedulingProblem:
    """The same with an operation pinned at [0, 10) in the window's place."""
    jobs = (Job("P", (Operation("p", {"M": 10}, pinned_machine="M", pinned_start=0),)),
            Job("Z", (Operation("z", {"M": 0}),)), Job("A", (Operation("a", {"M": 5}),), release=2))
    return SchedulingProblem(jobs=jobs, machines=(Machine("M"),))


def _two_at_once() -> SchedulingProblem:
    """Two zero-length operations of one job in a row on M: family C then family B, which needs a setup of 4 after C
    (none the other way round)."""
    job = Job("J", (Operation("c", {"M": 0}, family="C"), Operation("b", {"M": 0}, family="B")))
    return SchedulingProblem(jobs=(job,), machines=(Machine("M"),),
                             setups=SetupTimes(matrix={("C", "B"): 4, ("B", "C"): 0}))


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("make", [_at_a_window, _at_an_operation, _two_at_once])
def test_a_zero_length_operation_hides_nothing_from_the_gap_search(make, rule, engine):
    """Before: the zero-length operation went into the machine's timeline after the window (or operation) that
    starts with it, whose end the gap search then never saw: A ran at [2, 7), inside it. And the second zero-length
    operation fitted the gap before the first (no setup from B to C) but went in after it (a setup of 4 missing)."""
    p = make()
    s = dispatch(p, rule)
    assert verify(p, s) == [], (make.__name__, s.assignments)
    assert _same(s, dispatch_reference(p, rule))
    # the tail re-dispatch: the zero-length operation kept, the window given
    fixed = {a.key: (a.machine, a.start) for a in s.assignments if a.end == a.start}
    again = dispatch(p, rule, fixed=fixed, fixed_windows=s.maintenance)
    assert verify(p, again) == []
    assert _same(again, dispatch_reference(p, rule, fixed=fixed, fixed_windows=s.maintenance))


def _ready_inside_a_window():
    """Z's zero-length operation on M is ready at 3, inside M's window [0, 10), and late whenever it ends after 0:
    re-timing it as early as its job allows put it at 3."""
    jobs = (Job("Z", (Operation("x", {"N": 3}), Operation("z", {"M": 0})), due=0),
            Job("L", (Operation("a", {"M": 4}),), due=5),
            Job("K", (Operation("b", {"M": 4}),), due=30))
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M"), Machine("N")), risk=WINDOW)
    d = dispatch(p, "atc")
    assert verify(p, d) == [] and d.maintenance == [MaintenanceWindow("M", 0, 10)]
    return p, d


def test_the_re_timings_keep_a_zero_length_operation_out_of_a_maintenance_window():
    """Before: the LNS's and the sequence search's re-timing let a zero-length operation anywhere (it overlaps no
    calendar block), also inside a maintenance window, which the checker refuses: the LNS returned such a plan."""
    p, d = _ready_inside_a_window()
    s = improve(p, d, {"tardiness": 1.0}, time.perf_counter() + 1.0, workers=1, seed=0, size=8)
    assert verify(p, s) == [], s.assignments
    st = _LocalState(p, d, {"tardiness": 1.0})
    assert st.ok and verify(p, st.schedule(p, "re-timed")) == []
