from __future__ import annotations

import json

import pytest

from optimization.io import load, parse_fjsp, parse_json, parse_jsplib, problem_to_dict


def test_jsplib_ft06(datasets):
    p = load(datasets / "jsplib/instances/ft06.txt", "jsplib")
    assert (len(p.jobs), len(p.machines), p.n_operations) == (6, 6, 36)
    first = p.jobs[0].operations[0]
    assert dict(first.durations) == {"2": 1}


def test_all_jsplib_files_parse(datasets):
    bounds = json.loads((datasets / "jsplib/bounds.json").read_text())["instances"]
    for row in bounds:
        p = load(datasets / "jsplib" / row["file"], "jsplib")
        assert (len(p.jobs), len(p.machines)) == (row["jobs"], row["machines"]), row["name"]
        assert p.trivial_lower_bound() <= row["lower_bound"]


def test_all_fjsp_files_parse(datasets):
    bounds = json.loads((datasets / "fjsp/bounds.json").read_text())["instances"]
    for row in bounds:
        p = load(datasets / "fjsp" / row["file"], "fjsp")
        assert (len(p.jobs), len(p.machines)) == (row["jobs"], row["machines"]), row["name"]
        assert p.trivial_lower_bound() <= row["upper_bound"], row["name"]
    mk01 = load(datasets / "fjsp/brandimarte/mk01.txt", "fjsp")
    assert dict(mk01.jobs[0].operations[0].durations) == {"0": 5, "2": 4}


def test_classic_fjs_counts_machines_from_one():
    text = "2 2 1.5\n2 1 1 5 2 1 3 2 4\n1 1 2 7\n"
    p = parse_fjsp(text)
    assert dict(p.jobs[0].operations[0].durations) == {"0": 5}
    assert dict(p.jobs[0].operations[1].durations) == {"0": 3, "1": 4}
    assert dict(p.jobs[1].operations[0].durations) == {"1": 7}


@pytest.mark.parametrize(
    "text,fmt,needle",
    [
        ("2 2\n0 3 1 x\n1 2 0 2\n", "jsplib", "f.txt:2: expected integers"),
        ("2 2\n0 3 1 4\n", "jsplib", "f.txt:2: expected 2 job lines"),
        ("2 2\n0 3 5 4\n1 2 0 2\n", "jsplib", "f.txt:2: job 0 operation 1: machine 5"),
        ("1 2\n2 1 0 3 1 1\n", "fjsp", "f.txt:2: job 0: line ends early"),
        (
            '{"machines": ["M1"], "jobs": [{"id": "J", "operations": [{"machines": {"M9": 3}}]}]}',
            "json",
            "unknown machine 'M9'",
        ),
        ('{"machines": ["M1"],\n "jobs": [}', "json", "f.txt:2: invalid JSON"),
    ],
)
def test_parse_errors_name_file_and_line(tmp_path, text, fmt, needle):
    f = tmp_path / "f.txt"
    f.write_text(text)
    with pytest.raises(ValueError) as e:
        load(f, fmt)
    assert needle in str(e.value)


def test_json_round_trip():
    doc = {
        "machines": [{"id": "M1", "calendar": [{"start": 10, "end": 20, "kind": "break"}]}, "M2"],
        "jobs": [
            {
                "id": "J1",
                "due": 30,
                "weight": 2,
                "operations": [
                    {"id": "a", "machines": {"M1": 5, "M2": 7}, "family": "X", "power_kw": 3.5},
                    {"id": "b", "machines": {"M2": 4}, "pinned": {"machine": "M2", "start": 8}},
                ],
            }
        ],
        "setups": {"matrix": {"X": {"Y": 3}}},
        "energy": {"period": 60, "prices": [0.1, 0.3], "peak_cap_kw": 50},
        "failure_risk": {"risks": {"M1": 0.8}, "threshold": 0.5, "window_duration": 30},
    }
    p = parse_json(json.dumps(doc))
    assert p.setups.time("M1", "X", "Y") == 3
    assert p.jobs[0].operations[1].pinned_start == 8
    assert p.maintenance_machines() == ["M1"]
    again = parse_json(json.dumps(problem_to_dict(p)))
    assert problem_to_dict(again) == problem_to_dict(p)


def test_validation_names_the_culprit():
    with pytest.raises(ValueError, match="job '0' has duplicate operation id"):
        parse_json(
            '{"machines": ["M"], "jobs": [{"id": "0", "operations": '
            '[{"id": "x", "machines": {"M": 1}}, {"id": "x", "machines": {"M": 1}}]}]}'
        )
    with pytest.raises(ValueError, match="negative time"):
        parse_jsplib("1 1\n0 -3\n")
