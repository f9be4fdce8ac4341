from __future__ import annotations

import json

from typer.testing import CliRunner

from optimization.cli import schedule_app
from optimization.explain import explain_late_jobs
from optimization.problem import Job, Machine, Operation, SchedulingProblem
from optimization.solver import SolverParams, solve

runner = CliRunner()


def test_explanation_names_the_bottleneck():
    # J-late needs M1 after a long urgent job holds it; its due date cannot be met
    jobs = (
        Job("urgent", (Operation("x", {"M1": 10}),), due=10, weight=10),
        Job("late", (Operation("p", {"M2": 1}), Operation("q", {"M1": 3})), due=5, weight=1),
    )
    p = SchedulingProblem(jobs=jobs, machines=(Machine("M1"), Machine("M2")))
    s = solve(p, SolverParams(time_limit_s=2, objective="tardiness"))
    ex = explain_late_jobs(p, s)
    assert [e["job"] for e in ex] == ["late"]
    e = ex[0]
    assert e["bottleneck_machine"] == "M1" and e["tardiness"] == 8
    assert {"job": "urgent", "operation": "x"} in e["blocking_operations"]
    assert e["binding_constraints"].get("machine_busy") == 1


def test_cli_prints_one_json_line(datasets, tmp_path):
    out = tmp_path / "out.json"
    r = runner.invoke(
        schedule_app,
        [
            "solve",
            str(datasets / "jsplib/instances/ft06.txt"),
            "--format",
            "jsplib",
            "--time-limit",
            "5",
            "--workers",
            "2",
            "--output",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    lines = [x for x in r.stdout.splitlines() if x.strip()]
    assert len(lines) == 1
    row = json.loads(lines[0])
    for key in ("status", "makespan", "lower_bound", "wall_s", "instance", "n_operations", "violations"):
        assert key in row
    assert row["makespan"] == 55 and row["violations"] == 0
    doc = json.loads(out.read_text())
    assert len([g for g in doc["gantt"] if g["job"] is not None]) == 36
    assert set(doc["gantt"][0]) == {"machine", "job", "operation", "start", "end", "setup", "late"}


def test_cli_bad_input_exits_1_without_traceback(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 2\n0 1 x 2\n")
    r = runner.invoke(schedule_app, ["solve", str(bad), "--format", "jsplib", "--time-limit", "1"])
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith("error: ") and "bad.txt:2" in r.stderr and "Traceback" not in r.stderr
    r = runner.invoke(schedule_app, ["solve", str(tmp_path / "none.json"), "--format", "json", "--time-limit", "1"])
    assert r.exit_code == 1 and r.stderr.startswith("error: ")
