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


BIG_WEIGHT = 999999.123456789  # below MAX_WEIGHT, with more decimals than a scale of 10**6 keeps


def _late_from_the_start(weight: float, n: int = 4, release: int = 10**9 - 1000) -> dict:
    """Jobs released near 10**9 with early due dates: each is late by ~10**9 time units."""
    return {"machines": ["M1", "M2"],
            "jobs": [{"id": f"J{j}", "due": 10 * j, "weight": weight - j, "release": release + 37 * j,
                      "operations": [{"machines": {"M1": 5 + j}}, {"machines": {"M2": 3 + 2 * j}}]}
                     for j in range(n)]}


@pytest.mark.parametrize("objective", ["tardiness", "weighted", "lex"])
def test_huge_weights_over_a_long_horizon_still_reach_cp_sat(objective):
    """Before: weights of ~10**6 with 9 decimals (scaled by 10**6) times tardiness of ~10**9 overflowed CP-SAT's
    int64 objective: every model was invalid (MODEL_INVALID) and the dispatching plan came back without a word. Now
    the weights are scaled down to fit: they keep their ratios, lose decimals, and the answer is no proof."""
    problem = problem_from_dict(_late_from_the_start(BIG_WEIGHT))
    kw = {"weighted": {"weights": {"tardiness": BIG_WEIGHT, "makespan": 0.000001}},
          "lex": {"order": ["tardiness", "makespan"]}}.get(objective, {})
    line, doc = solve_document(problem, make_params(problem, time_limit_s=5, objective=objective, strategy="full",
                                                    **kw))
    assert line["violations"] == 0 and doc["stats"]["method"] == "cp-sat", doc["stats"]
    assert line["status"] == "FEASIBLE"


def test_a_lexicographic_stage_past_two_to_the_53_keeps_the_first_stage_exactly():
    """Before: the next stage was held to int(round(objective_value)), a float that past 2**53 is rounded, here
    below the integer value: the makespan stage was infeasible and the plan no proof."""
    from optimization.solver import _horizon, solve_full

    problem = problem_from_dict(_late_from_the_start(999999.5))
    params = make_params(problem, time_limit_s=5, objective="lex", order=["tardiness", "makespan"], workers=1)
    plan, bound, proven = solve_full(problem, params, _horizon(problem, None, params.stages()), None,
                                     time.perf_counter() + 5)
    assert plan is not None and proven
    assert plan.objective["weighted_tardiness"] * 10 > 2**53


def test_stage_weights_times_job_weights_are_not_rounded_away():
    """Before: the tardiness term was scaled by 10**6 for the job weights' 6 decimals, then the stage weight 0.5 (times
    10**-6) was scaled by 10**6 again and rounded down to 0: CP-SAT minimised the makespan alone and made job A late."""
    from optimization.solver import solve_full

    doc = {"machines": ["M1", "M2"],
           "jobs": [{"id": "A", "due": 10, "weight": 1.123456, "operations": [{"machines": {"M1": 10}}]},
                    {"id": "B", "due": 100, "weight": 1.123456,
                     "operations": [{"machines": {"M1": 2}}, {"machines": {"M2": 20}}]}]}
    problem = problem_from_dict(doc)
    params = make_params(problem, time_limit_s=5, objective="weighted", weights={"tardiness": 0.5, "makespan": 0.001})
    plan, _, proven = solve_full(problem, params, 40, None, time.perf_counter() + 5)
    assert plan is not None and proven
    assert plan.objective["weighted_tardiness"] == 0 and plan.makespan == 32
