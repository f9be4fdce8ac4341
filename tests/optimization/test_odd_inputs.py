"""Odd but valid problems (and a few invalid ones) as a hostile user sends them: every answer is a checked plan, an
honest status or a clear error, within the time limit."""

from __future__ import annotations

import random
import time

import pytest

from optimization.check import verify
from optimization.io import load, problem_from_dict
from optimization.service import make_params, solve_document
from optimization.solver import solve
from tests.optimization.helpers import deadline


def _solve(doc: dict, **kw):
    problem = problem_from_dict(doc)
    schedule = solve(problem, make_params(problem, time_limit_s=kw.pop("time_limit_s", 5), **kw))
    assert not verify(problem, schedule) if schedule.assignments else True
    return schedule


def test_a_break_inside_a_holiday_is_not_infeasible():
    """Before: the holiday and the break, overlapping fixed intervals in one no-overlap, made the CP-SAT model
    infeasible, and the dispatch placed the operation inside the holiday (unsorted block ends): INFEASIBLE."""
    doc = {"machines": [{"id": "M1", "calendar": [{"start": 0, "end": 100, "kind": "holiday"},
                                                  {"start": 5, "end": 15, "kind": "break"}]}, "M2"],
           "jobs": [{"id": "A", "operations": [{"id": "x", "machines": {"M2": 20}},
                                               {"id": "y", "machines": {"M1": 3}}]}]}
    s = _solve(doc)
    assert s.status == "OPTIMAL" and s.makespan == 103


def test_overlapping_downtimes_keep_the_proof_and_the_bound():
    """Before: FEASIBLE with lower bound 6 (the model was infeasible, the dispatching plan stayed the answer)."""
    doc = {"machines": [{"id": "M1", "calendar": [{"start": 0, "end": 10, "kind": "holiday"},
                                                  {"start": 5, "end": 15, "kind": "break"},
                                                  {"start": 5, "end": 15, "kind": "break"}]}],
           "jobs": [{"id": "A", "operations": [{"machines": {"M1": 3}}]},
                    {"id": "B", "operations": [{"machines": {"M1": 3}, "can_span_break": True}]}]}
    s = _solve(doc)
    assert (s.status, s.makespan, s.lower_bound) == ("OPTIMAL", 18, 18)
    by_job = {a.job: a for a in s.assignments}
    assert by_job["A"].start >= 15 and by_job["B"].start >= 10


def test_small_tardiness_weights_are_not_rounded_away():
    """Before: weights of 0.001 scaled by 100 rounded to 0, the model weighed nothing and "proved" a plan with
    weighted tardiness 0.008 OPTIMAL where 0.007 is the optimum."""
    dues, durs = (5, 15, 7, 10, 10), (5, 1, 1, 4, 6)
    doc = {"machines": ["M1"], "jobs": [{"id": f"J{j}", "due": dues[j], "weight": 0.001,
                                         "operations": [{"machines": {"M1": durs[j]}}]} for j in range(5)]}
    s = _solve(doc, objective="tardiness")
    assert s.status == "OPTIMAL" and s.objective["weighted_tardiness"] == pytest.approx(0.007)
    assert s.lower_bound == pytest.approx(0.007)
    heavy = _solve({**doc, "jobs": [{**j, "weight": 1} for j in doc["jobs"]]}, objective="tardiness")
    assert heavy.objective["weighted_tardiness"] == 7


def test_an_operation_pinned_before_its_release_is_refused():
    """Before: no plan and status UNKNOWN (the model ignored the release, the checker refused every plan)."""
    doc = {"machines": ["M1"], "jobs": [{"id": "A", "release": 3, "operations": [
        {"id": "a", "machines": {"M1": 5}, "started": {"machine": "M1", "start": 0}}]}]}
    with pytest.raises(ValueError, match="job 'A' operation 'a' is started at 0, before the job's release 3"):
        problem_from_dict(doc)


def _power_shop(n_jobs: int, n_ops: int, n_machines: int) -> dict:
    rng = random.Random(1)
    machines = [f"M{i}" for i in range(n_machines)]
    jobs = [{"id": f"J{j}", "due": rng.randint(50, 50 * n_ops), "operations": [
        {"id": str(o), "machines": {m: rng.randint(1, 50) for m in rng.sample(machines, 2)},
         "power_kw": rng.randint(1, 30)} for o in range(n_ops)]} for j in range(n_jobs)]
    return {"machines": machines, "jobs": jobs, "energy": {"period": 60, "prices": [1, 2, 3], "peak_cap_kw": 80}}


def test_a_peak_power_cap_on_a_big_plan_keeps_the_time_limit():
    """Before: the dispatching rule (Python, a peak power cap) ran ~1 min on 2,000 operations whatever the time limit
    (a 1-s synchronous solve held a server thread that long). Now it stops at the deadline and says so."""
    problem = problem_from_dict(_power_shop(100, 20, 10))
    t0 = time.perf_counter()
    with deadline(30):
        line, doc = solve_document(problem, make_params(problem, time_limit_s=1.0, workers=1))
    assert time.perf_counter() - t0 < 10
    assert line["violations"] == 0
    if line["status"] == "UNKNOWN":
        assert "within the time limit" in doc["stats"]["dispatch"]


def test_non_utf8_and_byte_order_mark_files(tmp_path):
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf2 2\n0 3 1 2\n1 4 0 3\n")
    assert load(bom, "jsplib").n_operations == 4  # before: "expected integers, found '\ufeff2'"
    binary = tmp_path / "plan.json"
    binary.write_bytes(b'{"machines": ["M1"]}\xff')
    with pytest.raises(ValueError, match=r"plan.json: not a UTF-8 text file \(byte 0xff at offset 20\)"):
        load(binary, "json")
