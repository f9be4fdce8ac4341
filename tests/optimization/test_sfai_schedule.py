"""The contract as outside checks run it: ``sfai schedule solve FILE --format ... --time-limit ...``."""

import json

from tests.sfai_cli import run_sfai


def test_sfai_schedule_solve_prints_one_json_line(datasets, tmp_path):
    out = tmp_path / "plan.json"
    p = run_sfai("schedule", "solve", datasets / "jsplib" / "instances" / "ft06.txt", "--format", "jsplib",
                 "--time-limit", "10", "--workers", "2", "--output", out)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert res["status"] == "OPTIMAL" and res["makespan"] == 55 and res["lower_bound"] == 55 and res["wall_s"] >= 0
    plan = json.loads(out.read_text())
    assert plan and out.stat().st_size > 100


def test_sfai_schedule_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("2 2\n0 5 1\n")
    p = run_sfai("schedule", "solve", bad, "--format", "jsplib", "--time-limit", "1", timeout=60)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: ")


def test_sfai_schedule_weights_and_order(tmp_path):
    """--weights and --order reach the solver (energy first waits for the cheap tariff); bad ones are one line."""
    problem = {
        "machines": ["M1"], "horizon": 60,
        "jobs": [{"id": "J1", "operations": [{"id": "a", "machines": {"M1": 10}, "power_kw": 30}]}],
        "energy": {"period": 20, "prices": [1.0, 0.1, 0.1], "hours_per_unit": 1.0},
    }
    src = tmp_path / "plan.json"
    src.write_text(json.dumps(problem))

    def run(*args):
        out = tmp_path / "out.json"
        p = run_sfai("schedule", "solve", src, "--time-limit", "5", "--output", out, *args)
        return p, (json.loads(out.read_text()) if p.returncode == 0 else None)

    _, doc = run("--objective", "weighted", "--weights", "energy=1,makespan=0.001")
    assert doc["gantt"][0]["start"] >= 20
    _, doc = run("--objective", "lex", "--order", "makespan,energy")
    assert doc["gantt"][0]["start"] == 0
    for args in (("--objective", "weighted", "--weights", "energy"), ("--objective", "lex", "--order", "speed")):
        p, _ = run(*args)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: ")


def test_sfai_schedule_out_of_range_numbers_and_unschedulable_power_are_one_line(tmp_path):
    """Numbers too large for the solver, and an operation above the peak cap, give one line naming the field (and
    the range) and exit 1, at once (before: a TypeError from OR-Tools, an int overflow, or a search that never
    ended)."""
    job = {"id": "J1", "operations": [{"machines": {"M1": 3}}]}
    cases = [
        ({"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 2**63}}]}]}, (),
         "duration on machine 'M1' must be an integer in 0..1000000000"),
        ({"machines": ["M1"], "jobs": [job]}, ("--seed", str(2**70)), "seed must be an integer in 0..2147483647"),
        ({"machines": ["M1"], "jobs": [job]}, ("--objective", "weighted", "--weights", "makespan=inf"),
         "weights: makespan must be a finite number in 0..1e+06"),
        ({"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}, "power_kw": 1000}]}],
          "energy": {"period": 60, "prices": [1], "peak_cap_kw": 100}}, (),
         "job 'J1' operation '0': power_kw 1000 exceeds the energy peak_cap_kw 100"),
        ({"machines": ["M1"], "jobs": [job]}, ("--objective", "energy"), "objective 'energy' needs energy settings"),
        ({"machines": ["M1"], "jobs": [job]}, ("--objective", "tardiness"),
         "objective 'tardiness' weighs only tardiness and needs due dates"),
        ({"machines": ["M1"], "jobs": [job]}, ("--time-limit", "1e308"), "at most 604,800 (a week)"),
        ("[" * 5000 + "]" * 5000, (), "invalid JSON: nested too deeply"),
    ]
    for doc, args, needle in cases:
        src = tmp_path / "plan.json"
        src.write_text(doc if isinstance(doc, str) else json.dumps(doc))
        p = run_sfai("schedule", "solve", src, "--format", "json", "--time-limit", "1", *args, timeout=60)
        assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: "), p.stderr
        assert needle in p.stderr, p.stderr
    bom = tmp_path / "bom.json"  # a byte-order mark (Windows editors): read like any other plan
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"machines": ["M1"], "jobs": [job]}).encode())
    p = run_sfai("schedule", "solve", bom, "--time-limit", "1", timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["makespan"] == 3, p.stderr


def test_sfai_schedule_says_why_there_is_no_plan(tmp_path):
    f = tmp_path / "short.json"
    f.write_text(json.dumps({"machines": ["M1"], "horizon": 50, "jobs": [
        {"id": f"J{i}", "operations": [{"id": "a", "machines": {"M1": 30}}]} for i in (1, 2)]}))
    p = run_sfai("schedule", "solve", f, "--time-limit", "2", timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout)["status"] == "INFEASIBLE"
    assert p.stderr.strip() == "no plan: the work needs until t=60 at least (the busiest machine or the machines' " \
                               "total load), past the horizon 50"
