"""Failure and defect inputs found by a user audit: the too-few-rows message names the minimum and the way out."""

from __future__ import annotations

import pandas as pd
import pytest

from models.defect import features as DF
from models.failure import features as FF
from models.failure import train as FT
from models.failure.config import FailureConfig
from serving.errors import InvalidInput
from tests.datasets import need


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    return pd.read_csv(need("ai4i2020/ai4i2020_train.csv"))


@pytest.mark.parametrize(("rows", "overrides", "message"), [
    (43, {}, "f.csv: too few rows to train (43): 5 folds need at least 50 (10 per fold); add rows, or train with "
             "fewer folds (--set folds=4 needs 40 rows)"),
    (25, {"folds": 3}, "f.csv: too few rows to train (25): 3 folds need at least 30 (10 per fold); add rows, or "
                       "train with fewer folds (--set folds=2 needs 20 rows)"),
    (15, {}, "f.csv: too few rows to train (15): 5 folds need at least 50 (10 per fold); add rows (the fewest "
             "folds, --set folds=2, need 20 rows)"),
    (19, {"folds": 2}, "f.csv: too few rows to train (19): 2 folds need at least 20 (10 per fold); add rows (the "
                       "fewest folds, --set folds=2, need 20 rows)"),
])
def test_too_few_rows_names_the_minimum_and_the_folds_option(ai4i, tmp_path, rows, overrides, message):
    path = tmp_path / "f.csv"
    ai4i.head(rows).to_csv(path, index=False)
    with pytest.raises(InvalidInput) as e:
        FT.check_rows(path, FF.read_rows(path), FailureConfig.from_dict(overrides))
    assert str(e.value) == message
    with pytest.raises(InvalidInput, match=rf"too few rows to train \({rows}\)"):
        FT.preflight(path, overrides)


def test_enough_rows_for_fewer_folds_pass_the_row_check(ai4i, tmp_path):
    path = tmp_path / "f.csv"
    df = ai4i.head(4000)
    df = pd.concat([df[df["Machine failure"] == 1].head(4), df[df["Machine failure"] == 0].head(36)])
    df.to_csv(path, index=False)
    assert len(FT.check_rows(path, FF.read_rows(path), FailureConfig.from_dict({"folds": 4}))) == 40


# ---------------------------------------------------------------------- rows in which every cell is empty
# Excel leaves ",,,,,," lines at the end of a sheet it exports. The energy family skipped them; failure and defect
# refused them ("column 'UDI' row 1001 is empty", "column 'Machine failure' must hold 0 or 1"). Now every family
# skips a row in which every cell is empty, and only such a row.

TINY_FAILURE = {"folds": 2, "epochs": 2, "patience": 1, "hidden": 8}
TINY_DEFECT = {"n_splits": 0, "epochs": 3, "patience": 3}


def with_lines(path, lines: list[str], at: int | None = None):
    """``path`` with ``lines`` appended (or inserted before data row ``at``, counting from 0)."""
    text = path.read_text().splitlines()
    if at is None:
        text += lines
    else:
        text[at + 1:at + 1] = lines
    out = path.with_name(path.stem + f"_{'end' if at is None else at}{len(lines)}.csv")
    out.write_text("\n".join(text) + "\n")
    return out


@pytest.fixture(scope="module")
def failure_csv(ai4i, tmp_path_factory):
    df = pd.concat([ai4i[ai4i["Machine failure"] == 1].head(12), ai4i[ai4i["Machine failure"] == 0].head(188)])
    path = tmp_path_factory.mktemp("failure_rows") / "ai4i.csv"
    df.sort_values("UDI").to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def defect_csv(tmp_path_factory):
    df = pd.read_csv(need("secom/secom_train.csv"))
    df = pd.concat([df[df["label"] == 1].head(15), df[df["label"] == -1].head(105)]).sort_values("row_id")
    keep = ["row_id", "label", "timestamp", *[f"f{i:03d}" for i in range(1, 61)]]
    path = tmp_path_factory.mktemp("defect_rows") / "secom.csv"
    df[keep].to_csv(path, index=False)
    return path


def blank(path, n: int = 1) -> list[str]:
    """``n`` rows of empty cells, the last of them blank text (spaces)."""
    return [empty(path)] * (n - 1) + [" ," * (len(empty(path)))]


def empty(path) -> str:
    """A row of empty cells: only the commas."""
    return "," * (len(path.read_text().splitlines()[0].split(",")) - 1)


def test_failure_skips_trailing_and_inner_empty_rows(failure_csv, tmp_path):
    from models.failure import predict as FP
    from models.tracking import Tracker
    from serving.runtime import OnnxModel

    clean = FF.read_rows(failure_csv)
    trailing = with_lines(failure_csv, blank(failure_csv, 3))
    inner = with_lines(failure_csv, [empty(failure_csv)] * 2, 50)
    for path in (trailing, inner):
        got = FF.read_rows(path)
        pd.testing.assert_frame_equal(got, clean)  # ids stay whole numbers, not 1.0
        assert len(FT.check_rows(path, got, FailureConfig.from_dict(TINY_FAILURE))) == 200
    out = tmp_path / "m"
    FT.train(trailing, "ai4i", out, config=TINY_FAILURE, tracker=Tracker(None, "t", enabled=False))
    model = OnnxModel(out)
    want = FP.predict(model, failure_csv, "ai4i")
    for path in (trailing, inner, with_lines(failure_csv, blank(failure_csv, 2), 50)):  # the last: blank text too
        pd.testing.assert_frame_equal(FP.predict(model, path, "ai4i"), want, check_dtype=False)
        assert FP.predict(model, path, "ai4i").to_csv() == want.to_csv()  # ids written as in the file


def test_defect_skips_trailing_and_inner_empty_rows(defect_csv, tmp_path):
    from models.defect import predict as DP
    from models.defect.train import train
    from serving.runtime import OnnxModel
    from tests.datasets import NoTracker

    clean = DF.read_rows(defect_csv)
    trailing = with_lines(defect_csv, blank(defect_csv, 2))
    inner = with_lines(defect_csv, [empty(defect_csv)], 7)
    for path in (trailing, inner):
        got = DF.read_rows(path)
        pd.testing.assert_frame_equal(got, clean)
        assert DF.labels(got).sum() == 15
    train(trailing, "secom", tmp_path, config=dict(TINY_DEFECT), tracker=NoTracker())
    model = OnnxModel(tmp_path)
    want = DP.predict(model, defect_csv, "secom")
    for path in (trailing, inner, with_lines(defect_csv, blank(defect_csv, 2), 7)):
        assert DP.predict(model, path, "secom").to_csv() == want.to_csv()


def test_a_row_with_only_some_cells_empty_is_still_refused(failure_csv, defect_csv):
    from models.defect.train import train as defect_train

    width = len(failure_csv.read_text().splitlines()[0].split(","))
    path = with_lines(failure_csv, ["9999" + "," * (width - 1)])  # its UDI and nothing else
    assert len(FF.read_rows(path)) == 201
    with pytest.raises(InvalidInput, match=r"column 'Machine failure' must hold 0 or 1"):
        FT.train(path, "ai4i", path.parent / "m", config=TINY_FAILURE)
    width = len(defect_csv.read_text().splitlines()[0].split(","))
    path = with_lines(defect_csv, ["," * (width - 2) + "1.5"])  # one measurement, no id
    with pytest.raises(InvalidInput, match=r"column 'label' row \d+ holds an empty cell: it must hold -1 \(pass\) or "
                       r"1 \(fail\)"):
        defect_train(path, "secom", path.parent / "m", config=dict(TINY_DEFECT))


def test_a_file_of_empty_rows_only_has_no_rows(failure_csv, tmp_path):
    header = failure_csv.read_text().splitlines()[0]
    path = tmp_path / "empty.csv"
    path.write_text(header + "\n" + "\n".join(blank(failure_csv, 3)) + "\n")
    assert FF.read_rows(path).empty
    with pytest.raises(InvalidInput, match=r"too few rows to train \(0\)"):
        FT.preflight(path, {})


def test_a_semicolon_file_with_decimal_commas_skips_its_empty_rows(failure_csv, tmp_path):
    df = pd.read_csv(failure_csv)
    clean = tmp_path / "eu.csv"
    df.to_csv(clean, index=False, sep=";", decimal=",")
    lines = clean.read_text().splitlines()
    width = len(lines[0].split(";"))
    lines[30:30] = [";" * (width - 1)]
    path = tmp_path / "eu_blank.csv"
    path.write_text("\n".join([*lines, ";" * (width - 1), " ;" * (width - 1)]) + "\n")
    pd.testing.assert_frame_equal(FF.read_rows(path), FF.read_rows(clean))
    pd.testing.assert_frame_equal(FF.read_rows(clean), FF.read_rows(failure_csv))
