"""Bad rows are set aside with a reason and counted; too many fail the run with a clear message."""

from __future__ import annotations

import json

import pytest

from pipelines.canonical import not_a_number, raw_cells
from pipelines.runner import run_pipeline
from serving.errors import InvalidInput
from tests.datasets import need
from tests.pipelines import test_bad_input as bad

GOOD = "1 {c} -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 1.30 47.47 " \
       "521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190"


def _write(tmp_path, lines):
    p = tmp_path / "train_FD001.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_every_kind_of_bad_row_is_quarantined_with_its_reason(tmp_path, store):
    lines = [GOOD.format(c=c) for c in range(1, 41)]
    lines[4] = lines[4].replace("641.82", "abc")  # wrong type
    lines[9] = lines[9].replace("1589.70", "-3")  # impossible (negative temperature)
    lines[14] = GOOD.format(c=14)  # duplicate of cycle 14
    lines += ["2" + GOOD.format(c=c)[1:] for c in (5, 6, 3, 7)]  # unit 2: cycle 3 after 6 goes backwards
    rep = run_pipeline("cmapss", _write(tmp_path, lines), store=store, max_bad_share=0.5)
    assert rep.rows_quarantined == 4 and rep.rows_ok == 40 and rep.views["cmapss_features"] == 40
    assert rep.reasons == {"wrong type": 1, "impossible value": 1, "duplicate key": 1, "time goes backwards": 1}
    rows = [json.loads(x) for x in open(rep.quarantine, encoding="utf-8")]
    by_row = {r["source_row"]: r["reason"] for r in rows if r["table"] == "sensor_readings"}
    assert "not a number" in by_row[5] and "outside" in by_row[10]
    assert "duplicate key" in by_row[15] and "backwards" in by_row[43]
    assert rep.quarantine.startswith(str(store.settings.home / "quarantine" / "acme" / "cmapss"))


def test_too_many_bad_rows_fail_and_write_nothing(tmp_path, store):
    lines = [GOOD.format(c=c) for c in range(1, 21)]
    lines[3] = lines[3].replace("641.82", "abc")
    with pytest.raises(InvalidInput, match=r"1 of 20 rows \(5.0%\) failed validation, more than the allowed 1.0%"):
        run_pipeline("cmapss", _write(tmp_path, lines), store=store, max_bad_share=0.01)
    assert store.offline.row_count("acme", "cmapss_features") == 0
    assert list((store.settings.home / "quarantine" / "acme" / "cmapss").glob("*.jsonl"))


def test_real_files_are_clean(store):
    rep = run_pipeline("secom", need("secom/secom_train.csv"), store=store, write_online=False)
    assert rep.rows_quarantined == 0 and rep.quarantine is None
    assert rep.missing["missing_cells"] == 33_498 and rep.missing["strategy"] == "keep"


# the quarantine keeps what the user sent: the text of a cell that was no number, and the file it came from ---------

@pytest.mark.parametrize(("dataset", "name", "row", "field", "sep", "column"), [
    ("secom", "secom.csv", 5, 3, ",", "f001"),
    ("ai4i", "ai4i.csv", 5, 3, ",", "air_temp_k"),
    ("steel-energy", "steel.csv", 5, 1, ",", "usage_kwh"),
    ("cmapss", "train_FD001.txt", 5, 6, " ", "t24"),
])
def test_a_cell_that_is_no_number_is_quarantined_as_sent_with_its_file(tmp_path, dataset, name, row, field, sep,
                                                                       column):
    """``Air temperature [K] = hot`` was written as ``"air_temp_k": null`` (the cell made missing by the conversion
    to numbers), and ``"file"`` was "" for every adapter that reads one file."""
    make = {"secom": bad.secom_lines, "ai4i": bad.ai4i_lines, "steel-energy": bad.steel_lines,
            "cmapss": lambda: ["", *bad.cmapss_lines()]}[dataset]  # "" stands for a header
    lines = make()
    lines[row] = bad.set_field(lines[row], field, "hot", sep)
    lines = [x for x in lines if x]
    rep = run_pipeline(dataset, bad.write(tmp_path, name, lines), quarantine_root=tmp_path / "q", max_bad_share=0.5)
    recs = [json.loads(x) for x in open(rep.quarantine, encoding="utf-8")]
    assert len(recs) == 1 and recs[0]["source_row"] == row
    assert recs[0]["reason"] == f"{column}: 'hot' is not a number"
    assert recs[0]["row"][column] == "hot" and recs[0]["file"] == name


def test_the_text_is_kept_exactly_and_only_where_a_number_was_expected(tmp_path):
    lines = bad.ai4i_lines()
    tricky = "it's \"warm\"; torque_nm: 'x' is not a number"  # quotes, and text that reads like another reason
    lines[2] = bad.set_field(lines[2], 3, '"' + tricky.replace('"', '""') + '"')
    lines[4] = bad.set_field(bad.set_field(lines[4], 4, "n.a."), 6, "zwölf")  # two cells of one row
    lines[6] = bad.set_field(lines[6], 2, "Q; air_temp_k: 'spoof' is not a number")  # a reason that is not one
    rep = run_pipeline("ai4i", bad.write(tmp_path, "a.csv", lines), quarantine_root=tmp_path / "q", max_bad_share=0.5)
    recs = {r["source_row"]: r for r in map(json.loads, open(rep.quarantine, encoding="utf-8"))}
    assert recs[2]["row"]["air_temp_k"] == tricky and recs[2]["row"]["torque_nm"] == 42.8
    assert (recs[4]["row"]["process_temp_k"], recs[4]["row"]["torque_nm"]) == ("n.a.", "zwölf")
    assert recs[6]["row"]["air_temp_k"] == 298.1 and recs[6]["row"]["type"].startswith("Q;")
    assert {r["file"] for r in recs.values()} == {"a.csv"}


def test_a_c_mapss_folder_names_each_row_s_file(tmp_path):
    folder = tmp_path / "cmapss"
    folder.mkdir()
    for n in (1, 2):
        lines = bad.cmapss_lines()
        if n == 2:
            lines[3] = bad.set_field(lines[3], 6, "hot", " ")
        bad.write(folder, f"train_FD00{n}.txt", lines)
    rep = run_pipeline("cmapss", folder, quarantine_root=tmp_path / "q", max_bad_share=0.5)
    (rec,) = [json.loads(x) for x in open(rep.quarantine, encoding="utf-8")]
    assert (rec["file"], rec["source_row"], rec["row"]["t24"]) == ("train_FD002.txt", 4, "hot")


def test_raw_cells_reads_back_what_coerce_numeric_wrote():
    texts = ["hot", "it's", 'a"b', "x'\"; y: 'z' is not a number", "tab\there", "back\\slash", "온도", " 1 2 "]
    for text in texts:
        reason = "; ".join([not_a_number("a", text), not_a_number("b", text + "!"), "c: 'evil' is not a number"])
        reason += "; type: x; d: 'not read' is not a number"  # after a reason of another kind: not read
        assert raw_cells(reason) == {"a": text, "b": text + "!", "c": "evil"}, text
    assert raw_cells("udi: 0.5 is not a whole number; a: 'x' is not a number") == {}
