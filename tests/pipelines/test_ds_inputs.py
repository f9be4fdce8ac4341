"""Input found by a user audit: files in which no row is usable are refused with the usual one-line
"N of N rows failed validation ... first: row 1: ..." error, never a numpy/pandas error."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.adapters import cmapss, secom
from pipelines.canonical import TIMESTAMP
from pipelines.runner import run_pipeline
from serving.errors import InvalidInput
from tests.pipelines.test_bad_input import cmapss_lines, one_line, secom_lines, set_field, write


def iso_secom(lines: list[str]) -> list[str]:  # 19/07/2008 HH:MM:SS -> 2008-07-19THH:MM:SS, as an ISO export writes
    return [lines[0]] + [x.replace(",19/07/2008 ", ",2008-07-19T", 1) for x in lines[1:]]


@pytest.mark.parametrize(("edit", "first"), [
    (iso_secom, "first: row 1: timestamp: 2008-07-19T01:01:00 is not %d/%m/%Y %H:%M:%S"),
    (lambda ls: [ls[0]] + [set_field(x, 0, "") for x in ls[1:]], "first: row 1: row_id: missing"),
])
def test_a_secom_file_with_no_usable_row_is_refused_in_one_line(tmp_path, store, edit, first):
    path = write(tmp_path, "secom.csv", edit(secom_lines()))
    c = secom.read(path)  # read: no row placed, every one set aside with its reason
    assert len(c["sensor_readings"]) == 0 and len(c.rejects) == 10 and c.source_rows == 10
    with pytest.raises(InvalidInput) as e:
        run_pipeline("secom", path, store=store)
    text = one_line(e.value)
    assert "10 of 10 rows (100.0%) failed validation" in text and first in text


@pytest.mark.parametrize(("field", "first"), [
    (1, "first: row 1 of train_FD001.txt: cycle: 'x' is not a number"),
    (0, "first: row 1 of train_FD001.txt: unit: 'x' is not a number"),
])
def test_a_cmapss_file_with_no_usable_row_is_refused_in_one_line(tmp_path, store, field, first):
    path = write(tmp_path, "train_FD001.txt", [set_field(x, field, "x", " ") for x in cmapss_lines()])
    c = cmapss.read(path)
    assert len(c["sensor_readings"]) == 0 and len(c.rejects) == 10 and c.source_rows == 10
    with pytest.raises(InvalidInput) as e:
        run_pipeline("cmapss", path, store=store)
    text = one_line(e.value)
    assert "10 of 10 rows (100.0%) failed validation" in text and first in text


def test_one_bad_row_among_good_ones_is_still_set_aside(tmp_path):
    lines = iso_secom(secom_lines())
    good = secom_lines()
    c = secom.read(write(tmp_path, "secom.csv", [*good[:5], lines[5], *good[6:]]))
    assert len(c["sensor_readings"]) == 9 and c.rejects["source_row"].tolist() == [5]
    assert c["sensor_readings"].data["lot_id"].iloc[0] == "secom-0001"
    lines = cmapss_lines()
    lines[4] = set_field(lines[4], 1, "x", " ")
    c = cmapss.read(write(tmp_path, "train_FD001.txt", lines))
    assert len(c["sensor_readings"]) == 9 and c.rejects["source_row"].tolist() == [5]
    assert c["sensor_readings"].data["unit_id"].iloc[0] == "FD001-u001"



def no_seconds(x: str) -> str:  # 19/07/2008 01:01:00 -> 19/07/2008 01:01, as Excel saves it again
    return x.replace(":00,", ",", 1)


def dots(x: str) -> str:  # 19/07/2008 -> 19.07.2008, as a German Excel saves it
    return x.replace(",19/07/2008 ", ",19.07.2008 ", 1)


@pytest.mark.parametrize("edit", [no_seconds, dots, lambda x: dots(no_seconds(x))])
def test_a_secom_file_saved_again_by_a_spreadsheet_is_read(tmp_path, store, edit):
    """``sfai train/predict defect`` read these test times (models/defect/drift.py: DAY_FIRST); ingest quarantined
    every row ("10 of 10 rows failed validation")."""
    lines = secom_lines()
    path = write(tmp_path, "secom.csv", [lines[0], *map(edit, lines[1:])])
    c = secom.read(path)
    assert len(c.rejects) == 0 and len(c["sensor_readings"]) == 10
    first = c["sensor_readings"].data[TIMESTAMP].iloc[0]
    assert first == pd.Timestamp("2008-07-19 01:01:00", tz="UTC")
    run_pipeline("secom", path, store=store)  # written, none quarantined

def test_a_secom_time_in_no_format_names_the_formats_read(tmp_path):
    c = secom.read(write(tmp_path, "secom.csv", iso_secom(secom_lines())))
    assert ("timestamp: 2008-07-19T01:01:00 is not %d/%m/%Y %H:%M:%S, %d/%m/%Y %H:%M, %d.%m.%Y %H:%M:%S or "
            "%d.%m.%Y %H:%M") in c.rejects["reason"].iloc[0]


def test_a_cmapss_file_named_without_its_subset_is_ingested_with_subset(monkeypatch, tmp_path):
    """``sfai ingest cmapss units.txt`` was refused (no FD00x in the name) while ``sfai train``/``predict`` read such a
    file; ``--subset`` now names it, and the refusal names the option."""
    import json

    from typer.testing import CliRunner

    from tests.pipelines.test_runner import _cli

    path = write(tmp_path, "units.txt", cmapss_lines())
    with pytest.raises(ValueError) as e:
        cmapss.read(path)
    assert str(e.value) == ("units.txt: cannot tell the C-MAPSS subset; expected a name like train_FD001.txt, or "
                            "give it: --subset FD001|FD002|FD003|FD004")
    c = cmapss.read(path, subset="fd003")
    assert c["sensor_readings"].data["unit_id"].iloc[0] == "FD003-u001" and len(c.rejects) == 0
    with pytest.raises(ValueError, match=r"train_FD001.txt: its name says FD001, not --subset FD002"):
        cmapss.read(write(tmp_path, "train_FD001.txt", cmapss_lines()), subset="FD002")
    app = _cli(monkeypatch, tmp_path)
    res = CliRunner().invoke(app, ["ingest", "cmapss", str(path), "--subset", "FD001", "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["dataset"] == "cmapss"
    res = CliRunner().invoke(app, ["ingest", "cmapss", str(path), "--subset", "FD009", "--quiet"])
    assert res.exit_code != 0 and str(res.exception) == "--subset 'FD009': expected one of FD001, FD002, FD003, FD004"
    res = CliRunner().invoke(app, ["ingest", "cmapss", str(path), "--quiet"])
    assert res.exit_code != 0 and "--subset FD001|FD002|FD003|FD004" in str(res.exception)
