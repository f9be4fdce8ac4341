from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from optimization.io import load, parse_fjsp, parse_json, parse_jsplib, problem_from_dict, problem_to_dict


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
        # a job line more than the header counts: before, left out of the plan without a word
        ("1 2\n0 3 1 4\n1 2 0 2\n", "jsplib", "f.txt:3: 1 more line(s) after the 1 job lines the header"),
        ("1 2\n1 1 0 3\n1 1 1 2\n", "fjsp", "f.txt:3: 1 more line(s) after the 1 job lines the header"),
        # a key twice in one object: before, the last one counted
        ('{"machines": ["M1"], "jobs": [{"id": "J", "due": 5, "due": 50, "operations": [{"machines": {"M1": 3}}]}]}',
         "json", "f.txt: invalid JSON: key 'due' appears twice in one object"),
        ('{"machines": ["M1"], "jobs": [{"id": "J", "operations": [{"machines": {"M1": 3, "M1": 30}}]}]}',
         "json", "key 'M1' appears twice"),
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


def _one_job(**op_fields) -> dict:
    return {"machines": ["M1", "M2"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": 3}, **op_fields}]}]}


@pytest.mark.parametrize(
    "doc,needle",
    [
        # a string is not iterated character by character
        ({"machines": "M1", "jobs": _one_job()["jobs"]}, "problem.machines must be a list of machine ids or objects, "
                                                         "got a string ('M1')"),
        ({**_one_job(), "jobs": {"id": "J1"}}, "problem.jobs must be a list, got an object"),
        ({**_one_job(), "precedences": [{"before": ["J1", "0"]}]}, "precedences[0] lacks required field 'after'"),
        ({**_one_job(), "precedences": [{"before": ["J1", "0"], "after": "J1"}]},
         "precedences[0].after must be a list [job id, operation id]"),
        # unknown fields are refused, not ignored
        (_one_job(durration=4), "job 'J1' operations[0]: unknown field 'durration' (allowed: id, machines,"),
        ({**_one_job(), "job": []}, "problem: unknown field 'job'"),
        ({**_one_job(), "energy": {"peak_cap": 5}}, "energy: unknown field 'peak_cap'"),
        ({"machines": [{"id": "M1", "calender": []}], "jobs": _one_job()["jobs"]}, "machines[0]: unknown field"),
        # ids: strings or integers
        ({"machines": ["M1"], "jobs": [{"id": None, "operations": [{"machines": {"M1": 3}}]}]},
         "jobs[0].id must be a string or an integer, got null"),
        ({"machines": ["M1"], "jobs": [{"id": ["a"], "operations": [{"machines": {"M1": 3}}]}]},
         "jobs[0].id must be a string or an integer, got a list"),
        ({"machines": [True], "jobs": _one_job()["jobs"]}, "machines[0] must be a machine id"),
        (_one_job(id={"x": 1}), "job 'J1' operations[0].id must be a string or an integer, got an object"),
        # values of the wrong type
        (_one_job(power_kw="5"), "job 'J1' operation '0' power_kw must be a number, got a string ('5')"),
        (_one_job(can_span_break="yes"), "job 'J1' operation '0' can_span_break must be true or false"),
        (_one_job(pinned={"machine": "M1"}), "job 'J1' operation '0' pinned lacks required field 'start'"),
        # before: the pin won and the operation counted as already running there
        (_one_job(pinned={"machine": "M1", "start": 5}, started={"machine": "M2", "start": 0}),
         "job 'J1' operation '0' has both 'pinned' and 'started': give one"),
    ],
)
def test_json_shape_errors_say_what_and_where(doc, needle):
    with pytest.raises(ValueError) as e:
        problem_from_dict(doc)
    assert needle in str(e.value)


def test_json_integer_ids_and_every_documented_field_are_accepted():
    """The example of docs/scheduling.md (every documented field) parses as written; integer ids become strings."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "scheduling.md").read_text()
    doc = json.loads(re.search(r"## JSON input format\n```json\n(.*?)\n```", text, re.S).group(1))
    p = problem_from_dict(doc)
    assert p.op(("O-1001", "weld")).started and p.energy.peak_cap_kw == 200 and p.risk.deadline == 1440
    q = problem_from_dict({"machines": [1, {"id": 2}], "jobs": [{"id": 7, "operations": [{"id": 0, "machines": {"1": 3},
                                                                                         "family": 4}]}]})
    assert [m.id for m in q.machines] == ["1", "2"] and q.op(("7", "0")).family == "4"


BIG = 2**63


@pytest.mark.parametrize(
    "doc,needle",
    [
        ({"machines": ["M1"], "jobs": [{"id": "J1", "operations": [{"machines": {"M1": BIG}}]}]},
         "operation '0' duration on machine 'M1' must be an integer in 0..1000000000, got 9223372036854775808"),
        ({"machines": ["M1"], "jobs": [{"id": "J1", "due": BIG, "operations": [{"machines": {"M1": 3}}]}]},
         "job 'J1' due must be an integer in -1000000000..1000000000"),
        ({"machines": ["M1"], "jobs": [{"id": "J1", "release": BIG, "operations": [{"machines": {"M1": 3}}]}]},
         "job 'J1' release must be an integer in 0..1000000000"),
        ({"machines": ["M1"], "jobs": [{"id": "J1", "weight": 1e308, "operations": [{"machines": {"M1": 3}}]}]},
         "job 'J1' weight must be a finite number in 0..1e+06"),
        (_one_job(power_kw=10**400), "power_kw must be a finite number in 0..1e+09, got 10000000000000000000..."),
        ({**_one_job(), "energy": {"peak_cap_kw": float("nan")}}, "energy peak_cap_kw must be a finite number"),
        ({**_one_job(), "energy": {"peak_cap_kw": float("inf")}}, "energy peak_cap_kw must be a finite number"),
        ({**_one_job(), "energy": {"prices": [1, float("inf")]}}, "energy prices[1] must be a finite number"),
        ({**_one_job(), "energy": {"period": BIG}}, "energy period must be an integer in 1..1000000000"),
        ({**_one_job(), "horizon": BIG}, "horizon must be an integer in 1..1000000000"),
        ({**_one_job(), "failure_risk": {"risks": {"M1": 0.9}, "threshold": float("nan")}},
         "failure_risk threshold must be a finite number in 0..1"),
        ({**_one_job(), "failure_risk": {"risks": {"M1": 0.9}, "deadline": 10, "window_duration": 60}},
         "maintenance deadline 10 is before a window of 60 can end"),
        # a due time sent as a date or a clock time says how times are counted (MES audit)
        ({"machines": ["M1"], "jobs": [{"id": "J1", "due": "2026-12-07T18:00:00+09:00",
                                        "operations": [{"machines": {"M1": 3}}]}]},
         "job 'J1' due must be an integer, got '2026-12-07T18:00:00+09:00': times are whole numbers of the plan's "
         "time unit counted from the plan's start (t=0)"),
        ({"machines": ["M1"], "jobs": [{"id": "J1", "release": "08:30", "operations": [{"machines": {"M1": 3}}]}]},
         "job 'J1' release must be an integer, got '08:30': times are whole numbers"),
    ],
)
def test_numbers_out_of_range_name_the_field_and_the_range(doc, needle):
    with pytest.raises(ValueError) as e:
        problem_from_dict(doc)
    assert needle in str(e.value)


@pytest.mark.parametrize(("file", "fmt", "other"), [
    ("jsplib/instances/la01.txt", "fjsp", "jsplib"),
    ("fjsp/brandimarte/mk01.txt", "jsplib", "fjsp"),
])
def test_a_file_given_the_other_text_format_is_told_which_it_reads_as(datasets, tmp_path, file, fmt, other):
    """A JSPLIB file given --format fjsp got only "la01.txt:6: job 0: line ends early": the parse error now says
    the file reads as the other format, and which option to give; its own words are kept as they were."""
    path = tmp_path / Path(file).name
    path.write_text((datasets / file).read_text())
    with pytest.raises(ValueError) as e:
        load(path, fmt)
    parse = parse_fjsp if fmt == "fjsp" else parse_jsplib
    with pytest.raises(ValueError) as plain:
        parse(path.read_text(encoding="utf-8-sig"), source=str(path))
    assert str(e.value) == f"{plain.value} (it reads as a {other} file: --format {other})"
    assert load(path, other).jobs  # and it does


def test_a_file_that_reads_as_neither_format_keeps_its_message(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("1 2\n2 1 0 3 1 1\n")
    for fmt in ("fjsp", "jsplib"):
        with pytest.raises(ValueError) as e:
            load(path, fmt)
        assert "reads as" not in str(e.value) and str(e.value).startswith(f"{path}:2: ")
