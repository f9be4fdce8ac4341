"""C-MAPSS files with a header row (user audit): the header's names place the columns, in any order; a header
that names an unknown column, leaves one out or names one twice is refused in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.rul import data as D
from models.rul import predict as P
from models.rul import train as T
from models.tracking import Tracker
from serving.errors import InvalidInput
from serving.runtime import OnnxModel
from tests.datasets import need

QUICK = {"members": 1, "epochs": 2, "patience": 1, "channels": 8, "hidden": 8, "val_cuts": 2}


def write(df: pd.DataFrame, path, columns: list[str] | None = None, header: list[str] | None = None):
    """Space-separated like NASA's files, the columns in the order given, with a header row when given."""
    columns = columns or D.COLUMNS
    lines = [" ".join(header)] if header is not None else []
    lines += [" ".join(f"{v:g}" for v in row) + "  " for row in df[columns].to_numpy()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fd001() -> pd.DataFrame:
    df = D.read_cmapss(need("cmapss/train_FD001.txt"))
    return df[df["unit"] <= 8].reset_index(drop=True)


@pytest.fixture(scope="module")
def model(fd001, tmp_path_factory):
    out = tmp_path_factory.mktemp("rul_inputs")
    T.train(write(fd001, out / "train_FD001.txt"), "cmapss", out / "model", config=QUICK,
            tracker=Tracker(None, "t", enabled=False))
    return OnnxModel(out / "model")


def swapped(columns: list[str], a: str, b: str) -> list[str]:
    i, j = columns.index(a), columns.index(b)
    columns = list(columns)
    columns[i], columns[j] = columns[j], columns[i]
    return columns


def test_a_header_with_two_sensors_swapped_reads_them_by_name(fd001, tmp_path):
    """sensor_8 and sensor_13 swapped in the header and in the data: read by position, the two sensors had
    changed places (and the predictions with them)."""
    cols = swapped(D.COLUMNS, "sensor_8", "sensor_13")
    df = D.read_cmapss(write(fd001, tmp_path / "swapped.txt", cols, cols))
    pd.testing.assert_frame_equal(df, fd001, check_dtype=False)


def test_reordered_and_upper_case_headers_predict_as_the_standard_order(model, fd001, tmp_path):
    test = fd001[fd001["cycle"] <= 60]
    plain = P.predict(model, write(test, tmp_path / "plain.txt"), "cmapss")
    rng = np.random.default_rng(0)
    cols = [D.COLUMNS[i] for i in rng.permutation(len(D.COLUMNS))]
    for header in (cols, [c.upper() for c in cols], [c.replace("op_setting", "setting") for c in cols]):
        got = P.predict(model, write(test, tmp_path / "named.txt", cols, header), "cmapss")
        pd.testing.assert_frame_equal(got, plain)
    swap = swapped(D.COLUMNS, "sensor_8", "sensor_13")
    got = P.predict(model, write(test, tmp_path / "swap.txt", swap, swap), "cmapss")
    pd.testing.assert_frame_equal(got, plain)
    # the standard order with its header: as before
    got = P.predict(model, write(test, tmp_path / "std.txt", D.COLUMNS, D.COLUMNS), "cmapss")
    pd.testing.assert_frame_equal(got, plain)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda h: [*h[:-1], "sensor_22"], "h.txt: header column 'sensor_22' is not a C-MAPSS column (expected unit, "
                                       "cycle, op_setting_1..3 (or setting_1..3), sensor_1..21)"),
    (lambda h: ["id", *h[1:]], "h.txt: header column 'id' is not a C-MAPSS column"),
    (lambda h: h[:-1], "h.txt: header has no column 'sensor_21'"),
    (lambda h: [*h[:-1], "sensor_8"], "h.txt: header names column 'sensor_8' twice"),
    (lambda h: [*h[:-1], "Sensor_8"], "h.txt: header names column 'sensor_8' twice"),
])
def test_a_header_with_an_unknown_missing_or_repeated_name_is_refused(fd001, tmp_path, edit, message):
    path = write(fd001.head(20), tmp_path / "h.txt", D.COLUMNS, edit(list(D.COLUMNS)))
    with pytest.raises(InvalidInput) as e:
        D.read_cmapss(path)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_header_alone_is_no_rows_and_no_header_reads_as_before(fd001, tmp_path):
    (tmp_path / "only.txt").write_text(" ".join(D.COLUMNS) + "\n")
    with pytest.raises(InvalidInput, match=r"only.txt: no rows$"):
        D.read_cmapss(tmp_path / "only.txt")
    pd.testing.assert_frame_equal(D.read_cmapss(write(fd001, tmp_path / "nasa.txt")), fd001, check_dtype=False)
