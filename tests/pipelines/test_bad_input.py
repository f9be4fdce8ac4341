"""Bad input found by a CLI fuzz: every case is either set aside with a reason (a bad row) or refused with one
line naming the file and what is wrong (a bad file or option), never a traceback or silently changed data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines import demo, runner
from pipelines.adapters import ai4i, cmapss, secom, steel_energy
from pipelines.jobs import get_job
from pipelines.runner import run_pipeline
from pipelines.validate import validate
from serving.errors import InvalidInput
from tests.datasets import need

AI4I_HEADER = ("UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],Torque [Nm],"
               "Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF")
STEEL_HEADER = ("date,Usage_kWh,Lagging_Current_Reactive.Power_kVarh,Leading_Current_Reactive_Power_kVarh,CO2(tCO2),"
                "Lagging_Current_Power_Factor,Leading_Current_Power_Factor,NSM,WeekStatus,Day_of_week,Load_Type")
CMAPSS_ROW = ("{u} {c} -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 1.30 "
              "47.47 521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190")


def ai4i_lines(n: int = 10) -> list[str]:
    return [AI4I_HEADER] + [f"{u},M{14860 + u},M,298.1,308.6,1551,42.8,{u},0,0,0,0,0,0" for u in range(1, n + 1)]


def steel_lines(n: int = 10) -> list[str]:
    rows = []
    for i in range(1, n + 1):
        m = 15 * i
        rows.append(f"01/01/2018 {m // 60:02d}:{m % 60:02d},3.17,2.95,0,0,73.21,100,{m * 60},Weekday,Monday,Light_Load")
    return [STEEL_HEADER, *rows]


def cmapss_lines(n: int = 10) -> list[str]:
    return [CMAPSS_ROW.format(u=1, c=c) for c in range(1, n + 1)]


def secom_lines(n: int = 10, *, nan_last: bool = True) -> list[str]:
    rows = []
    for r in range(1, n + 1):
        values = [f"{(r * 7 + i) % 97 / 10:.1f}" for i in range(secom.N_FEATURES)]
        if nan_last and r % 3 == 0:
            values[-1] = ""  # SECOM has gaps, also in its last column
        rows.append(f"{r},-1,19/07/2008 {r % 24:02d}:{r % 60:02d}:00," + ",".join(values))
    return ["row_id,label,timestamp," + ",".join(secom.FEATURES), *rows]


def write(tmp_path, name: str, lines: list[str]):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def set_field(line: str, i: int, value: str, sep: str = ",") -> str:
    fields = line.split(sep)
    fields[i] = value
    return sep.join(fields)


def one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text and "Traceback" not in text
    return text


# 1. a blank or non-numeric id: set aside with a reason, the raw row kept, the other rows read ----------------

@pytest.mark.parametrize(
    ("module", "name", "make", "row", "field", "value", "reason"),
    [
        (ai4i, "ai4i.csv", ai4i_lines, 3, 0, "", "udi: missing"),
        (ai4i, "ai4i.csv", ai4i_lines, 3, 0, "abc", "udi: 'abc' is not a number"),
        (ai4i, "ai4i.csv", ai4i_lines, 3, 0, "2.5", "udi: 2.5 is not a whole number"),
        (ai4i, "ai4i.csv", ai4i_lines, 3, 0, "1e30", "udi: 1e+30 is too large"),
        (ai4i, "ai4i.csv", ai4i_lines, 3, 1, "", "product_id: missing"),
        (steel_energy, "steel.csv", steel_lines, 3, 0, "", "date: missing"),
        (steel_energy, "steel.csv", steel_lines, 3, 0, "someday", "date: someday is not"),
        (secom, "secom.csv", secom_lines, 3, 0, "", "row_id: missing"),
        (secom, "secom.csv", secom_lines, 3, 0, "abc", "row_id: 'abc' is not a number"),
        (secom, "secom.csv", secom_lines, 3, 2, "", "timestamp: missing"),
    ],
)
def test_blank_or_text_id_is_set_aside(tmp_path, module, name, make, row, field, value, reason):
    lines = make()
    lines[row] = set_field(lines[row], field, value)  # lines[row] is data row `row` (line 0 is the header)
    c = module.read(write(tmp_path, name, lines))
    assert c.source_rows == 10 and len(c.rejects) == 1
    rj = c.rejects.iloc[0]
    assert rj["source_row"] == row and reason in rj["reason"]
    assert rj["raw"].split(",")[field] == {"1e30": "1e+30"}.get(value, value)  # the row as read
    primary = next(iter(c.tables.values())).data
    assert len(primary) == 9 and row not in primary["source_row"].tolist()


@pytest.mark.parametrize(("field", "value", "reason"), [
    (0, "x", "unit: 'x' is not a number"), (1, "3.5", "cycle: 3.5 is not a whole number"), (1, "nan", "cycle: missing"),
])
def test_cmapss_bad_unit_or_cycle_is_set_aside(tmp_path, field, value, reason):
    lines = cmapss_lines()
    lines[2] = set_field(lines[2], field, value, " ")
    c = cmapss.read(write(tmp_path, "train_FD001.txt", lines))
    assert c.source_rows == 10 and len(c["sensor_readings"]) == 9
    rj = c.rejects.iloc[0]
    assert rj["source_row"] == 3 and reason in rj["reason"] and rj["file"] == "train_FD001.txt"


def test_bad_ids_reach_the_quarantine_through_the_runner(tmp_path, store):
    lines = ai4i_lines(20)
    lines[4] = set_field(lines[4], 0, "")
    rep = run_pipeline("ai4i", write(tmp_path, "ai4i.csv", lines), store=store, max_bad_share=0.1)
    assert rep.rows_ok == 19 and rep.rows_quarantined == 1 and rep.reasons == {"unreadable row": 1}
    rows = [json.loads(x) for x in open(rep.quarantine, encoding="utf-8")]
    assert rows[0]["source_row"] == 4 and rows[0]["reason"] == "udi: missing"
    assert rows[0]["row"]["raw"].startswith(",M14864,M,298.1")


# 2. a header-only file ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("module", "make"), [(secom, secom_lines), (ai4i, ai4i_lines), (steel_energy, steel_lines)])
def test_header_only_file_is_refused(tmp_path, module, make):
    with pytest.raises(ValueError, match=r"^x\.csv: no data rows \(only a header\)") as e:
        module.read(write(tmp_path, "x.csv", make()[:1]))
    one_line(e.value)


# 3. a C-MAPSS row with the wrong number of fields ---------------------------------------------------------------

@pytest.mark.parametrize("bad", ["1 11 0.1", CMAPSS_ROW.format(u=1, c=11) + " 7 8"])
@pytest.mark.parametrize("where", [0, 5, 9])
def test_cmapss_line_with_wrong_field_count_is_set_aside_not_filled(tmp_path, bad, where):
    lines = cmapss_lines()
    lines[where] = bad
    c = cmapss.read(write(tmp_path, "train_FD001.txt", lines))
    assert c.source_rows == 10 and len(c["sensor_readings"]) == 9
    rj = c.rejects.iloc[0]
    n = len(bad.split())
    assert rj["source_row"] == where + 1 and rj["raw"] == bad
    assert rj["reason"].startswith(f"line {where + 1}: {n} fields, expected 26")
    assert not c["sensor_readings"].data[list(cmapss.SENSORS)].isna().any().any()  # nothing to forward-fill


def test_cmapss_truncated_row_is_quarantined_by_the_runner(tmp_path):
    lines = cmapss_lines(20)
    lines[10] = "1 11 0.1"
    rep = run_pipeline("cmapss", write(tmp_path, "train_FD001.txt", lines), max_bad_share=0.1,
                       quarantine_root=tmp_path / "q")
    assert rep.rows_quarantined == 1 and rep.missing["filled_cells"] == 0 and rep.rows_ok == 19
    row = json.loads(open(rep.quarantine, encoding="utf-8").readline())
    assert row["source_row"] == 11 and row["file"] == "train_FD001.txt" and "line 11: 3 fields" in row["reason"]


def test_cmapss_file_of_another_width_is_refused(tmp_path):
    p = write(tmp_path, "train_FD001.txt", [" ".join(x.split()[:5]) for x in cmapss_lines()])
    with pytest.raises(ValueError, match="^train_FD001.txt: not a C-MAPSS train_FD00x.txt file: its rows have 5 f"):
        cmapss.read(p)


# 4. SECOM infinities are set aside like everywhere else; a failed run registers no view -------------------------

@pytest.mark.parametrize(("dataset", "name", "make", "row", "field", "sep"), [
    ("secom", "secom.csv", secom_lines, 5, 3, ","),
    ("ai4i", "ai4i.csv", ai4i_lines, 5, 4, ","),
    ("steel-energy", "steel.csv", steel_lines, 5, 1, ","),
    ("cmapss", "train_FD001.txt", lambda: ["", *cmapss_lines()], 5, 6, " "),  # "" stands for a header
])
@pytest.mark.parametrize("value", ["inf", "-inf", "1e39"])
def test_infinite_values_are_quarantined_in_every_dataset(tmp_path, store, dataset, name, make, row, field, sep, value):
    lines = make()
    lines[row] = set_field(lines[row], field, value, sep)
    lines = [x for x in lines if x]
    rep = run_pipeline(dataset, write(tmp_path, name, lines), store=store, max_bad_share=0.5, write_online=False)
    assert rep.rows_quarantined == 1 and rep.reasons == {"impossible value": 1}
    rec = json.loads(open(rep.quarantine, encoding="utf-8").readline())
    assert rec["source_row"] == row
    assert ("is not a finite number" if "inf" in value else "beyond the float32 range") in rec["reason"]


def test_failed_secom_run_registers_no_view(tmp_path, store):
    lines = secom_lines()
    lines[3] = set_field(lines[3], 3, "inf")
    with pytest.raises(InvalidInput, match="failed validation"):
        run_pipeline("secom", write(tmp_path, "secom.csv", lines), store=store)
    assert not [v for v, _ in store.list_views() if v.name.startswith("secom")]


def test_features_that_cannot_be_stored_fail_before_any_view_is_registered(tmp_path, store, monkeypatch):
    real = runner.transform

    def broken(*a, **kw):  # noqa: ANN002, ANN003, ANN202 - a transform that yields an infinity
        frames, params, n = real(*a, **kw)
        frames["secom_features"].loc[frames["secom_features"].index[2], "f001"] = np.inf
        return frames, params, n

    monkeypatch.setattr(runner, "transform", broken)
    with pytest.raises(InvalidInput, match=r"secom_features features do not fit the view .*; nothing was written"):
        run_pipeline("secom", write(tmp_path, "secom.csv", secom_lines()), store=store)
    assert not [v for v, _ in store.list_views() if v.name.startswith("secom")]


# 5. one-line messages naming the file; rows counted from 1 ------------------------------------------------------

@pytest.mark.parametrize("module", [ai4i, secom, steel_energy])
def test_file_problems_are_one_line_naming_the_file(tmp_path, module):
    (tmp_path / "d").mkdir()
    with pytest.raises(ValueError, match=r"d: is a folder; expected .* file$") as e:
        module.read(tmp_path / "d")
    one_line(e.value)
    with pytest.raises(ValueError, match=r"^empty\.csv: empty file; expected .* file$") as e:
        module.read(write(tmp_path, "empty.csv", [""]))
    one_line(e.value)


def test_non_utf8_names_the_file_and_row(tmp_path):
    p = write(tmp_path, "latin.csv", ai4i_lines())
    lines = p.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b"M,298.1", b"M\xe9,298.1")
    p.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError) as e:
        ai4i.read(p)
    assert one_line(e.value) == "latin.csv: row 5 (line 6) is not UTF-8 text (byte 0xe9); save the file as UTF-8"
    with pytest.raises(ValueError, match=r"^train_FD001.txt: row 1 \(line 1\) is not UTF-8"):
        bad = tmp_path / "train_FD001.txt"
        bad.write_bytes(b"1 \xff 2\n")
        cmapss.read(bad)


@pytest.mark.parametrize(("module", "make", "name"), [
    (ai4i, ai4i_lines, "a.csv"), (steel_energy, steel_lines, "s.csv"), (secom, secom_lines, "x.csv"),
])
@pytest.mark.parametrize(("edit", "n"), [(lambda x: x + ",9", "+1"), (lambda x: x.rsplit(",", 3)[0], "-3")])
def test_ragged_csv_rows_are_set_aside_with_line_and_row_from_1(tmp_path, module, make, name, edit, n):
    lines = make()
    width = len(lines[0].split(","))
    lines[4] = edit(lines[4])  # data row 4, line 5
    c = module.read(write(tmp_path, name, lines))
    assert c.source_rows == 10 and len(next(iter(c.tables.values())).data) == 9
    rj = c.rejects.iloc[0]
    got = width + int(n)
    assert rj["source_row"] == 4 and rj["reason"].startswith(f"line 5: {got} fields, expected {width}")
    assert rj["raw"] == lines[4]


def test_ragged_first_row_and_blank_lines_keep_row_numbers(tmp_path):
    lines = ai4i_lines()
    lines[1] += ",9"  # pandas would read a long FIRST row as an index and cut every other row to fit
    lines.insert(4, "")
    c = ai4i.read(write(tmp_path, "a.csv", lines))
    assert c.rejects["source_row"].tolist() == [1] and c.source_rows == 10
    r = c["sensor_readings"].data
    assert r["source_row"].tolist() == list(range(2, 11)) and r["udi"].tolist() == list(range(2, 11))


def test_clean_secom_with_gaps_keeps_every_row(tmp_path):
    c = secom.read(write(tmp_path, "x.csv", secom_lines()))
    assert not len(c.rejects) and len(c["sensor_readings"]) == 10
    assert c["sensor_readings"].data["f590"].isna().sum() == 3


# 6. demo options: bounded, named ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("kw", "msg"), [
    ({"seed": -1}, "c22-demo: --seed must be from 0 to 4,294,967,295, not -1"),
    ({"days": 99999999999999999999}, "c22-demo: --days must be from 1 to 366, not 99999999999999999999"),
    ({"machines": 99999999999}, "c22-demo: --machines must be from 1 to 99, not 99999999999"),
    ({"machines": 0}, "c22-demo: --machines must be from 1 to 99, not 0"),
    ({"machines": 20, "days": 100}, "c22-demo: --machines x --days is 2,000 machine-days, more than the 1,000"),
    ({"days": "7"}, "c22-demo: --days must be a whole number from 1 to 366, not '7'"),
    ({"machins": 2}, "c22-demo: unknown option 'machins'"),
])
def test_demo_options_are_bounded_and_named(kw, msg):
    with pytest.raises(InvalidInput) as e:
        demo.generate(**kw)
    assert one_line(e.value).startswith(msg)


def test_demo_cli_option_errors(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tests.pipelines.test_runner import _cli

    app = _cli(monkeypatch, tmp_path)
    for args, option in ((["--seed", "-1"], "--seed"), (["--days", "99999999999999999999"], "--days"),
                         (["--machines", "99999999999"], "--machines")):
        res = CliRunner().invoke(app, ["ingest", "c22-demo", *args, "-q"])
        assert res.exit_code != 0 and isinstance(res.exception, InvalidInput), res.output
        assert one_line(res.exception).startswith(f"c22-demo: {option} must be")



# 7. a hostile-input pass: encodings, headers, huge values, labels ------------------------------------------------

def test_blank_load_type_is_set_aside_and_keeps_the_other_reasons(tmp_path):
    lines = steel_lines()
    lines[3] = set_field(lines[3], 10, "")
    lines[4] = set_field(set_field(lines[4], 10, ""), 1, "abc")  # pandas 3: "..." + NaN had erased the whole reason
    v = validate(steel_energy.read(write(tmp_path, "s.csv", lines)))
    assert v.bad_rows == 2 and v.reasons == {"wrong type": 2}
    assert v.quarantined["reason"].tolist() == [
        "load_type: missing", "usage_kwh: 'abc' is not a number; load_type: missing"]


@pytest.mark.parametrize(("dataset", "name", "make", "field", "reason"), [
    ("steel-energy", "s.csv", steel_lines, 7, "nsm: inf is not a finite number"),  # NSM: a column of integers
    ("steel-energy", "s.csv", steel_lines, 4, "co2_t: inf is not a finite number"),
    ("ai4i", "a.csv", ai4i_lines, 5, "rotational_speed_rpm: inf is not a finite number"),
    ("ai4i", "a.csv", ai4i_lines, 8, "machine_failure: inf is not a finite number"),
    ("ai4i", "a.csv", ai4i_lines, 0, "udi: inf is not a finite number"),
])
def test_a_400_digit_whole_number_is_set_aside_not_a_crash(tmp_path, dataset, name, make, field, reason):
    lines = make()
    lines[5] = set_field(lines[5], field, "1" + "0" * 400)  # pandas keeps it a Python int: to_numeric overflowed
    rep = run_pipeline(dataset, write(tmp_path, name, lines), quarantine_root=tmp_path / "q", max_bad_share=0.5)
    assert rep.rows_ok == 9 and rep.rows_quarantined == 1
    recs = [json.loads(x) for x in open(rep.quarantine, encoding="utf-8")]
    assert {r["source_row"] for r in recs} == {5} and any(reason in r["reason"] for r in recs)


@pytest.mark.parametrize(("dataset", "name", "make", "field", "value", "reason"), [
    ("ai4i", "a.csv", ai4i_lines, 8, "", "machine_failure: missing"),
    ("ai4i", "a.csv", ai4i_lines, 10, "nan", "hdf: missing"),
    ("ai4i", "a.csv", ai4i_lines, 8, "0.5", "machine_failure: 0.5 is not a whole number"),  # was stored as 0
    ("secom", "x.csv", secom_lines, 1, "", "label: missing"),
])
def test_a_missing_or_fractional_label_is_set_aside(tmp_path, dataset, name, make, field, value, reason):
    lines = make()
    lines[5] = set_field(lines[5], field, value)
    rep = run_pipeline(dataset, write(tmp_path, name, lines), quarantine_root=tmp_path / "q", max_bad_share=0.5)
    assert rep.rows_ok == 9 and rep.rows_quarantined == 1 and rep.views[f"{dataset}_labels"] == 9
    rec = json.loads(open(rep.quarantine, encoding="utf-8").readline())
    assert rec["source_row"] == 5 and rec["table"] == "labels" and reason in rec["reason"]


@pytest.mark.parametrize(("dataset", "name", "lines"), [
    ("ai4i", "a.csv", [",".join(x.split(",")[:8]) for x in ai4i_lines()]),
    ("secom", "x.csv", [",".join(x.split(",")[:1] + x.split(",")[2:]) for x in secom_lines()]),
])
def test_a_file_without_labels_writes_its_features_alone(tmp_path, store, dataset, name, lines):
    """Rows to score come without labels: their features are written and the labels view gets no rows (the run
    used to fail on casting the missing labels, every row quarantined after that)."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)  # no PerformanceWarning on stderr either
        rep = run_pipeline(dataset, write(tmp_path, name, lines), store=store, quarantine_root=tmp_path / "q")
    assert (rep.rows_ok, rep.rows_quarantined) == (10, 0)
    assert rep.views == {f"{dataset}_features": 10, f"{dataset}_labels": 0}  # rows the store wrote


def drop_columns(lines: list[str], names: list[str]) -> list[str]:
    keep = [i for i, n in enumerate(lines[0].split(",")) if n not in names]
    return [",".join(x.split(",")[i] for i in keep) for x in lines]


def stored(store, view: str):  # noqa: ANN001, ANN201 - the rows of a view in the offline store, by lot
    import pandas as pd

    frame = pd.concat(pd.read_parquet(f) for f in store.offline.files("acme", view))
    return frame.sort_values("lot_id", ignore_index=True)


@pytest.mark.parametrize("absent", [list(ai4i.MODES), ["Machine failure"], ["HDF", "RNF"]])
def test_a_file_with_some_label_columns_keeps_its_rows(tmp_path, store, absent):
    """A file with some of the AI4I label columns (Machine failure without the mode flags, or the reverse) had
    every row set aside for the labels it had no column for; now its features and the labels it has are written,
    the others stored as null (what training masks out), and one warning names them."""
    lines = ai4i_lines()
    lines[3] = set_field(lines[3], 8, "1")  # a failure, with its HDF flag
    lines[3] = set_field(lines[3], 10, "1")
    rep = run_pipeline("ai4i", write(tmp_path, "a.csv", drop_columns(lines, absent)), store=store)
    assert (rep.rows_ok, rep.rows_quarantined, rep.quarantine) == (10, 0, None)
    assert rep.views == {"ai4i_features": 10, "ai4i_labels": 10}
    have = [c for c in ai4i.LABELS if c not in absent]
    assert rep.warnings == [f"a.csv: no label column {', '.join(absent)} (the file has {', '.join(have)}); its rows "
                            f"are kept with {'that label' if len(absent) == 1 else 'those labels'} empty (null)"]
    labels = stored(store, "ai4i_labels")
    for name in ai4i.LABELS:
        column = labels[ai4i.RENAME[name]]
        if name in absent:
            assert column.isna().all()
        else:
            assert column.tolist() == [int(name in ("Machine failure", "HDF") and u == 3) for u in range(1, 11)]


def test_a_blank_in_a_label_the_file_has_is_still_set_aside(tmp_path, store):
    lines = drop_columns(ai4i_lines(), ["TWF", "PWF", "OSF", "RNF"])  # UDI .. Machine failure, HDF
    lines[5] = set_field(lines[5], 9, "")
    lines[6] = set_field(lines[6], 8, "2")
    rep = run_pipeline("ai4i", write(tmp_path, "a.csv", lines), store=store, max_bad_share=0.5)
    assert (rep.rows_ok, rep.rows_quarantined) == (8, 2) and rep.views["ai4i_labels"] == 8
    reasons = {json.loads(x)["source_row"]: json.loads(x)["reason"] for x in open(rep.quarantine, encoding="utf-8")}
    assert reasons == {5: "hdf: missing", 6: "machine_failure: 2 1 outside [0, 1]"}
    assert len(rep.warnings) == 1


def test_the_cli_prints_one_warning_line_for_absent_labels(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tests.pipelines.test_runner import _cli

    path = write(tmp_path, "a.csv", drop_columns(ai4i_lines(), ["Machine failure", "TWF"]))
    res = CliRunner().invoke(_cli(monkeypatch, tmp_path), ["ingest", "ai4i", str(path), "-q"])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines() == [
        "warning: a.csv: no label column Machine failure, TWF (the file has HDF, PWF, OSF, RNF); its rows are kept "
        "with those labels empty (null)"]
    assert json.loads(res.stdout)["views"] == {"ai4i_features": 10, "ai4i_labels": 10}


def test_the_real_ai4i_file_without_its_mode_flags(tmp_path):
    """The shared AI4I file less its five mode flags gives the same features and Machine failure labels as the
    whole file, and null flags."""
    lines = need("ai4i2020/ai4i2020_train.csv").read_text(encoding="utf-8").splitlines()
    job = get_job("ai4i")

    def frames(name: str, rows: list[str]):  # noqa: ANN202
        checked = validate(ai4i.read(write(tmp_path, name, rows)))
        assert checked.bad_rows == 0
        return runner.transform(job, checked.tables)[0]

    whole, part = frames("whole.csv", lines), frames("part.csv", drop_columns(lines, list(ai4i.MODES)))
    assert part["ai4i_features"].equals(whole["ai4i_features"]) and len(part["ai4i_labels"]) == 8000
    assert part["ai4i_labels"]["machine_failure"].equals(whole["ai4i_labels"]["machine_failure"])
    assert part["ai4i_labels"][[m.lower() for m in ai4i.MODES]].isna().all().all()


def test_a_cmapss_test_file_writes_no_labels(tmp_path, store):
    """NASA's test_FD00x.txt engines stop before failing: their RUL at the last cycle is unknown, not 0. The
    labels and failure events were written as if every engine failed there; now a test file gives sensors alone,
    and a train file (run to failure) still gets both."""
    lines = [CMAPSS_ROW.format(u=u, c=c) for u in (1, 2) for c in range(1, 8)]
    rep = run_pipeline("cmapss", write(tmp_path, "test_FD001.txt", lines), store=store)
    assert (rep.rows_ok, rep.views) == (14, {"cmapss_features": 14, "cmapss_labels": 0})
    canonical = cmapss.read(write(tmp_path, "test_FD003.txt", lines))
    assert set(canonical.tables) == {"sensor_readings"}
    train = cmapss.read(write(tmp_path, "train_FD001.txt", lines))
    assert train["labels"].data["rul"].tolist() == [6, 5, 4, 3, 2, 1, 0] * 2 and len(train["events"].data) == 2
    # a test file's engines are not the training file's of the same number: their cycles had been appended to
    # FD001-u001's (an entity-id RUL then read the training engine's cycles 81-192 and the test engine's 1-80)
    assert set(canonical["sensor_readings"].data["unit_id"]) == {"FD003-t001", "FD003-t002"}
    assert set(train["sensor_readings"].data["unit_id"]) == {"FD001-u001", "FD001-u002"}


@pytest.mark.parametrize(("module", "make", "name", "dup"), [
    (ai4i, ai4i_lines, "a.csv", "Torque [Nm]"),
    (steel_energy, steel_lines, "s.csv", "Usage_kWh"),
    (secom, secom_lines, "x.csv", "f007"),
])
def test_a_header_naming_a_column_twice_is_refused(tmp_path, module, make, name, dup):
    lines = [x + "," + ("999" if i else dup) for i, x in enumerate(make())]  # pandas read it as '<dup>.1'
    with pytest.raises(ValueError) as e:
        module.read(write(tmp_path, name, lines))
    assert one_line(e.value).startswith(f"{name}: the header names column {dup!r} twice; expected ")
    extra = [x + "," + ("999" if i else "notes") for i, x in enumerate(make())]
    assert len(next(iter(module.read(write(tmp_path, name, extra)).tables.values())).data) == 10  # extra: ignored


def test_a_huge_field_in_a_ragged_file_is_one_line(tmp_path):
    lines = ai4i_lines()
    lines[5] = set_field(lines[5], 1, "x" * 200_000)  # past the csv module's 128 KiB field limit
    lines[7] += ",9"  # a ragged row: the lines are counted one by one
    with pytest.raises(ValueError) as e:
        ai4i.read(write(tmp_path, "a.csv", lines))
    assert one_line(e.value).startswith("a.csv: line 6 cannot be read (field larger than field limit")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
@pytest.mark.parametrize(("module", "make", "name"), [
    (ai4i, ai4i_lines, "a.csv"), (secom, secom_lines, "x.csv"), (cmapss, cmapss_lines, "train_FD001.txt"),
])
def test_utf16_is_named_not_read_as_missing_columns(tmp_path, encoding, module, make, name):
    p = tmp_path / name
    p.write_bytes(("\n".join(make()) + "\n").encode(encoding))  # utf-16-le: no byte-order mark, a NUL every 2nd byte
    with pytest.raises(ValueError) as e:
        module.read(p)
    assert one_line(e.value) == (
        f"{name}: is not UTF-8 text (it looks like UTF-16 or a binary file); save the file as UTF-8")


def test_a_device_is_not_called_missing():
    with pytest.raises(ValueError, match=r"^/dev/null: not a regular file; expected an AI4I 2020 CSV file$"):
        ai4i.read(Path("/dev/null"))


def test_missing_operating_settings_are_set_aside_not_put_in_regime_0(tmp_path):
    lines = need("cmapss/train_FD002.txt").read_text().splitlines()[:3000]
    fields = lines[100].split()
    fields[2:5] = ["nan"] * 3
    lines[100] = " ".join(fields)
    job = get_job("cmapss")
    v = validate(job.read(write(tmp_path, "train_FD002.txt", lines)))
    assert v.reasons == {"missing required value": 1} and v.quarantined["source_row"].tolist() == [101]
    frames, _, _ = runner.transform(job, v.tables)
    # one row without settings had pulled 2,998 of 2,999 rows into one regime (every normalised sensor wrong)
    assert frames["cmapss_features"]["regime"].value_counts().max() < 1000


# 8. files as Excel saves them in Korean, European and US offices ------------------------------------------------

KOREAN = "a.csv: is not UTF-8 text; read as CP949 (EUC-KR, as Korean Excel saves a CSV)"


@pytest.mark.parametrize(("module", "make", "name"), [
    (ai4i, ai4i_lines, "a.csv"), (steel_energy, steel_lines, "a.csv"), (secom, secom_lines, "a.csv"),
])
def test_a_korean_excel_csv_is_read_as_cp949(tmp_path, module, make, name):
    """Korean Excel saves a CSV as CP949 (EUC-KR): such a file was refused as not UTF-8; it is read, with a note."""
    lines = [x + ("," + ("비고" if i else "설비 메모")) for i, x in enumerate(make())]  # a notes column in Korean
    p = tmp_path / name
    p.write_bytes(("\n".join(lines) + "\n").encode("cp949"))
    c = module.read(p)
    assert c.source_rows == 10 and not len(c.rejects) and c.warnings == [KOREAN]
    assert validate(c).bad_rows == 0
    latin = tmp_path / "latin.csv"  # not CP949 either: still refused, naming the row
    latin.write_bytes(("\n".join(make()[:3] + [make()[3] + ",caf\xe9"]) + "\n").encode("latin-1"))
    with pytest.raises(ValueError, match=r"^latin\.csv: row 3 \(line 4\) is not UTF-8 text"):
        module.read(latin)
    # Latin-1 that CP949 decodes too ("Größe": 0xF6 0xDF is a Hanja): not Korean text, so refused, not stored changed
    latin.write_bytes(("\n".join(make()[:3] + [make()[3] + ",Gr\xf6\xdfe"]) + "\n").encode("latin-1"))
    with pytest.raises(ValueError, match=r"^latin\.csv: row 3 \(line 4\) is not UTF-8 text"):
        module.read(latin)


def test_the_cli_names_a_cp949_file_in_one_warning_line(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tests.pipelines.test_runner import _cli

    lines = [x + ("," + ("월" if i else "비고")) for i, x in enumerate(ai4i_lines())]
    (tmp_path / "a.csv").write_bytes(("\n".join(lines) + "\n").encode("cp949"))
    res = CliRunner().invoke(_cli(monkeypatch, tmp_path), ["ingest", "ai4i", str(tmp_path / "a.csv"), "-q"])
    assert res.exit_code == 0 and res.stderr.splitlines() == [f"warning: {KOREAN}"], res.output
    assert json.loads(res.stdout)["warnings"] == [KOREAN]


@pytest.mark.parametrize(("sep", "decimal"), [(";", ","), ("\t", ".")])
@pytest.mark.parametrize(("module", "make"), [(ai4i, ai4i_lines), (steel_energy, steel_lines), (secom, secom_lines)])
def test_a_semicolon_or_tab_separated_file_reads_as_its_comma_twin(tmp_path, sep, decimal, module, make):
    """A European Excel saves ``;`` between fields and ``,`` as the decimal mark; a tab-separated export keeps the
    point. Both were refused as lacking every column; they read as the comma-separated file does."""
    lines = make()
    other = [lines[0].replace(",", sep)] + [x.replace(",", sep).replace(".", decimal) for x in lines[1:]]
    want, got = module.read(write(tmp_path, "comma.csv", lines)), module.read(write(tmp_path, "other.csv", other))
    assert not got.warnings and not len(got.rejects)
    for kind, table in want.tables.items():
        assert got[kind].data.equals(table.data), kind


def test_a_month_first_steel_date_is_set_aside_not_moved_to_another_month(tmp_path):
    """A US Excel writes 2 January 2018 as 01/02/2018, which reads as 1 February: the rows were stored a month
    off. The file's Day_of_week (the day the interval belongs to) now sets such a row aside."""
    lines = need("steel_energy/steel_industry_2018_jan_oct.csv").read_text(encoding="utf-8").splitlines()[:289]
    assert validate(steel_energy.read(write(tmp_path, "e.csv", lines))).bad_rows == 0  # 1-3 January, day first
    us = [lines[0]] + [f"{x[3:5]}/{x[:2]}{x[5:]}" for x in lines[1:]]  # month first
    v = validate(steel_energy.read(write(tmp_path, "us.csv", us)))
    assert v.reasons == {"wrong type": 192} and v.quarantined["source_row"].min() == 97  # every row after 1 January
    assert v.quarantined["reason"].iloc[0] == "day_of_week: Tuesday disagrees with date 01/02/2018 00:15 (a Thursday)"
    korean = [lines[0]] + [x.replace("Monday", "월요일").replace("Tuesday", "화").replace("Wednesday", "Wed")
                           for x in lines[1:]]  # as a Korean export may name the days
    assert validate(steel_energy.read(write(tmp_path, "ko.csv", korean))).bad_rows == 0


def test_a_refused_run_names_its_first_bad_row(tmp_path, store):
    """A steel file with ISO stamps and a zone has no row read: the refusal said 'unreadable row: 10' and
    pointed at the quarantine; it now says which row first and why."""
    lines = steel_lines()
    iso = [lines[0]] + [x.replace("01/01/2018 ", "2018-01-01T", 1).replace(",", ":00+09:00,", 1) for x in lines[1:]]
    with pytest.raises(InvalidInput) as e:
        run_pipeline("steel-energy", write(tmp_path, "e.csv", iso), store=store)
    assert "(unreadable row: 10; first: row 1: date: 2018-01-01T00:15:00+09:00 is not %d/%m/%Y %H:%M; rows and " \
           "reasons in " in one_line(e.value)
