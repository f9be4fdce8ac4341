"""The contract as outside checks run it: ``sfai schedule solve FILE --format ... --time-limit ...``."""

import json
import subprocess
import sys
from pathlib import Path

SFAI = str(Path(sys.executable).with_name("sfai"))


def test_sfai_schedule_solve_prints_one_json_line(datasets, tmp_path):
    out = tmp_path / "plan.json"
    p = subprocess.run(
        [
            SFAI,
            "schedule",
            "solve",
            str(datasets / "jsplib" / "instances" / "ft06.txt"),
            "--format",
            "jsplib",
            "--time-limit",
            "10",
            "--workers",
            "2",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
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
    p = subprocess.run(
        [SFAI, "schedule", "solve", str(bad), "--format", "jsplib", "--time-limit", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("error: ")
