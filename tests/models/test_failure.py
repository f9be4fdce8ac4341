"""The failure model: features, ONNX parity, the predict contract, no torch in predict, determinism."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.failure import features as F
from models.failure import predict as P
from models.failure import train as T
from models.failure.config import FailureConfig
from models.metrics import average_precision, f1_at, f1_threshold, roc_auc
from models.tracking import Tracker
from serving.errors import InvalidInput
from serving.runtime import OnnxModel
from tests.datasets import assert_predicts_without_torch, need
from tests.sfai_cli import run_sfai

QUICK = {"folds": 2, "epochs": 4, "patience": 2, "hidden": 16}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    df = pd.read_csv(need("ai4i2020/ai4i2020_train.csv"))
    fold = T.stratified_folds(df["Machine failure"].to_numpy(), 4, seed=0)
    return df[fold == 0].reset_index(drop=True)  # 2,000 rows, ~64 failures


@pytest.fixture(scope="module")
def trained(rows, tmp_path_factory):
    out = tmp_path_factory.mktemp("failure")
    csv = out / "train.csv"
    rows.to_csv(csv, index=False)
    metrics = T.train(csv, "ai4i", out / "model", config=QUICK, tracker=Tracker(None, "t", enabled=False))
    return out, metrics


def test_features_follow_the_failure_physics():
    raw = pd.DataFrame(
        {
            "Type": ["L", "H"],
            "Air temperature [K]": [300.0, 300.0],
            "Process temperature [K]": [308.0, 310.0],
            "Rotational speed [rpm]": [1300.0, 1500.0],
            "Torque [Nm]": [40.0, 55.0],
            "Tool wear [min]": [210.0, 240.0],
        }
    )
    f = F.engineer(F.validate(raw))
    assert list(f.columns) == F.FEATURES
    assert f["hdf_rule"].tolist() == [1.0, 0.0]  # 8 K < 8.6 K and 1300 < 1380 rpm
    assert f["osf_rule"].tolist() == [0.0, 1.0]  # 210*40=8400 < 11000 (L); 240*55=13200 > 13000 (H)
    assert f["pwf_rule"].tolist() == [0.0, 0.0] and f["twf_zone"].tolist() == [1.0, 1.0]
    assert np.isclose(f["power"].iloc[0], 40 * 1300 * 2 * np.pi / 60)


@pytest.mark.parametrize(("column", "value", "words"), [
    ("Air temperature [K]", 25.0, "(in degrees Celsius? add 273.15 for kelvin)"),
    ("Process temperature [K]", 36.5, "Celsius"),
    ("Torque [Nm]", 4280.0, "a machine reads 0 to 200 N*m"),
    ("Tool wear [min]", 2000, "0 to 1000 min"),
    ("Rotational speed [rpm]", 50_000, "0 to 10000 rpm"),
])
def test_a_reading_no_machine_gives_is_refused_as_ingest_refuses_it(column, value, words):
    """Temperatures in Celsius, a torque of 4,280 Nm or 2,000 minutes of tool wear were scored as a healthy
    machine's (probability 0.0 for 40 real failures sent in Celsius), while 'sfai ingest ai4i' refused the rows."""
    raw = pd.DataFrame({"Type": ["L", "M"], "Air temperature [K]": [300.0, 301.0],
                        "Process temperature [K]": [309.0, 310.0], "Rotational speed [rpm]": [1500.0, 1400.0],
                        "Torque [Nm]": [40.0, 45.0], "Tool wear [min]": [10.0, 20.0]})
    F.validate(raw)  # in range
    raw.loc[1, column] = value
    with pytest.raises(InvalidInput, match=rf"^column {re.escape(repr(column))} row 2: .* is out of range") as e:
        F.validate(raw)
    assert words in str(e.value)


def test_metrics_match_definitions():
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert np.isclose(roc_auc(y, p), 8 / 9)
    assert np.isclose(average_precision(y, p), (1 + 1 + 3 / 4) / 3)
    t, f1 = f1_threshold(y, p)
    assert np.isclose(f1, f1_at(y, p, t)) and f1 >= f1_at(y, p, 0.5)


def test_train_exports_with_parity_and_learns(trained, rows):
    out, metrics = trained
    model = OnnxModel(out / "model")
    assert metrics["parity_max_abs"] <= 1e-4
    assert metrics["val_roc_auc"] > 0.9  # physics features make even a 4-epoch model useful
    m = model.manifest
    assert m["features"] == F.FEATURES and len(m["normalisation"]["mean"]) == len(F.FEATURES)
    assert 0 < m["threshold"] < 1 and m["data_hash"] and m["inputs"][0]["name"] == "x"


def test_onnx_equals_torch(rows, tmp_path):
    import torch

    from models.export import export
    from models.training import predict_batches

    fitted = T.fit_ensemble(rows, FailureConfig.from_dict({**QUICK, "epochs": 2}))
    x = F.matrix(rows, fitted.scaler)
    export(fitted.model, x[:16], tmp_path / "m", {"name": "failure"})
    got = OnnxModel(tmp_path / "m").run({"x": x})["y"]
    with torch.no_grad():
        expected = predict_batches(fitted.model, x)
    assert got.shape == (len(rows), 5) and np.max(np.abs(got - expected)) <= 1e-4


def test_predict_contract_without_labels(trained, rows, tmp_path):
    out, _ = trained
    model = OnnxModel(out / "model")
    unlabeled = rows.drop(columns=F.LABELS).iloc[:300]
    path = tmp_path / "rows.csv"
    unlabeled.to_csv(path, index=False)
    frame = P.predict(model, path, "ai4i", start=None, horizon=96)
    assert list(frame.columns) == ["UDI", "failure_probability", "failure_predicted"]
    assert frame["UDI"].tolist() == unlabeled["UDI"].tolist()
    assert frame["failure_probability"].between(0, 1).all() and set(frame["failure_predicted"]) <= {0, 1}
    explained = P.score(model, unlabeled.iloc[:20], explain=True)
    assert {"failure_mode", "top_features"} <= set(explained.columns)


@pytest.mark.parametrize(
    ("change", "column"),
    [
        (lambda d: d.drop(columns=["Torque [Nm]"]), "Torque [Nm]"),
        (
            lambda d: d.assign(**{"Rotational speed [rpm]": ["fast"] + d["Rotational speed [rpm]"].tolist()[1:]}),
            "Rotational speed [rpm]",
        ),
        (lambda d: d.assign(Type=["X"] + d["Type"].tolist()[1:]), "Type"),
        (lambda d: d.assign(**{"Tool wear [min]": [None] + d["Tool wear [min]"].tolist()[1:]}), "an empty cell"),
        (lambda d: d.assign(**{"Air temperature [K]": [-300.0] + d["Air temperature [K]"].tolist()[1:]}),
         "'Air temperature [K]' row 1: expected a reading above 0, got -300.0"),
        (lambda d: d.assign(**{"Torque [Nm]": d["Torque [Nm]"].tolist()[:2] + [-1.5, 1.0, 1.0]}),
         "'Torque [Nm]' row 3: expected a reading at least 0, got -1.5"),
    ],
)
def test_bad_input_names_the_column(trained, rows, tmp_path, change, column):
    out, _ = trained
    path = tmp_path / "bad.csv"
    change(rows.iloc[:5].drop(columns=F.LABELS)).to_csv(path, index=False)
    with pytest.raises(InvalidInput, match=column.replace("[", r"\[").replace("]", r"\]")) as e:
        P.predict(OnnxModel(out / "model"), path, "ai4i")
    assert "\n" not in str(e.value) and "np." not in str(e.value)  # values as written, not numpy reprs


def test_predict_does_not_import_torch(trained, rows, tmp_path):
    out, _ = trained
    path = tmp_path / "rows.csv"
    rows.drop(columns=F.LABELS).iloc[:50].to_csv(path, index=False)
    assert_predicts_without_torch("failure", out / "model", path, "ai4i", 50)


def test_training_is_deterministic(rows):
    cfg = FailureConfig.from_dict({**QUICK, "epochs": 2})
    a, b = T.fit_ensemble(rows, cfg), T.fit_ensemble(rows, cfg)
    assert np.array_equal(a.oof, b.oof) and a.threshold == b.threshold


def test_unknown_config_key_is_invalid_input():
    with pytest.raises(InvalidInput, match="unknown failure config"):
        FailureConfig.from_dict({"hiddne": 3})


def predict_failure(rows_csv, out_csv, *more, **kw):
    return run_sfai("predict", "failure", "--dataset", "ai4i", "--input", rows_csv, "--output", out_csv, *more, **kw)


def test_cli_train_then_predict(rows, tmp_path):
    """The contract end to end: `sfai train failure` then `sfai predict failure` on a file without labels."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(SFAI_HOME=str(tmp_path / "home"), SFAI_ENVIRONMENT="test")
    train_csv, rows_csv, out_csv = tmp_path / "train.csv", tmp_path / "rows.csv", tmp_path / "out.csv"
    rows.iloc[:1200].to_csv(train_csv, index=False)
    rows.iloc[1200:1400].drop(columns=F.LABELS).to_csv(rows_csv, index=False)
    root = Path(__file__).resolve().parents[2]
    sets = [a for k, v in QUICK.items() for a in ("--set", f"{k}={v}")]
    r = run_sfai("train", "failure", "--dataset", "ai4i", "--input", train_csv, "--no-track", *sets, env=env, cwd=root)
    assert r.returncode == 0, r.stderr
    r = predict_failure(rows_csv, out_csv, env=env, cwd=root)
    assert r.returncode == 0, r.stderr
    frame = pd.read_csv(out_csv)
    assert list(frame.columns) == ["UDI", "failure_probability", "failure_predicted"] and len(frame) == 200
    assert "note:" not in r.stderr
    # UDIs given twice: every row still answered in order, and said (it had passed in silence: joined back by UDI,
    # one machine's answer landed on two rows)
    twice = rows.iloc[1200:1400].drop(columns=F.LABELS).reset_index(drop=True)
    twice.loc[[1, 3], "UDI"] = twice.loc[[0, 2], "UDI"].to_numpy()
    twice.to_csv(rows_csv, index=False)
    r = predict_failure(rows_csv, out_csv, env=env, cwd=root)
    assert r.returncode == 0 and pd.read_csv(out_csv)["UDI"].tolist() == twice["UDI"].tolist(), r.stderr
    assert (f"note: 2 row(s) repeat the UDI of an earlier row (the first: '{twice['UDI'][0]}'): each row is answered "
            "on its own line of out.csv, in the file's order; join the answers back by row order, not by UDI"
            ) in r.stderr, r.stderr
    # a file without the UDI column: numbered 1..n, and said (it had been silent: joined back by UDI, the answers
    # went to the wrong machines)
    rows.iloc[1200:1400].drop(columns=[*F.LABELS, "UDI"]).to_csv(rows_csv, index=False)
    r = predict_failure(rows_csv, out_csv, env=env, cwd=root)
    assert r.returncode == 0, r.stderr
    assert "note: rows.csv has no 'UDI' column: its rows are numbered 1..n in out.csv, in the file's order" in r.stderr
    assert pd.read_csv(out_csv)["UDI"].tolist() == list(range(1, 201))
    # --threshold: flag at or above the caller's probability (0: every row; 1: only a certain failure), checked,
    # and failure/defect only (the threshold chosen at training could not be changed: process-engineer audit)
    for cut, expect in (("0", 200), ("1", None)):
        r = predict_failure(rows_csv, out_csv, "--threshold", cut, env=env, cwd=root)
        assert r.returncode == 0, r.stderr
        got = pd.read_csv(out_csv)
        assert got["failure_predicted"].sum() == (expect if expect is not None
                                                  else int((got["failure_probability"] >= 1.0).sum()))
    for args, said in ((("failure", "ai4i", "1.5"), 'error: "threshold" must be a probability from 0 to 1'),
                       (("rul", "cmapss", "0.5"), "error: --threshold is an option of the failure and defect models")):
        r = run_sfai("predict", args[0], "--dataset", args[1], "--input", rows_csv, "--output", out_csv,
                     "--threshold", args[2], env=env, cwd=root)
        assert r.returncode != 0 and r.stderr.startswith(said), r.stderr


def _records_answer(model: OnnxModel, records: list[dict], explain: bool) -> list[dict]:
    """score_records through the array path (validate_records, engineer_arrays, _answer): the reference."""
    ids = [r.get(F.ID, r.get("udi", i + 1)) for i, r in enumerate(records)]
    cols = P._score(model, F.validate_records(records), ids, explain, 3)
    values = [v.tolist() if isinstance(v, np.ndarray) else v for v in cols.values()]
    return [dict(zip(cols, row, strict=True)) for row in zip(*values, strict=True)]


def test_occluded_copies_equal_engineering_the_replaced_row():
    """engineer_occlusions recomputes only what each raw column feeds; every copy must equal engineer_row of the
    row with that column replaced, bit for bit, on both sides of every rule's edge (heat: 8.6 K and 1380 rpm;
    power: 3500 and 9000 W; wear zone: 200 and 240 min; overstrain: each type's limit). An air temperature of 0 K
    puts the difference exactly on 8.6 K."""
    rng = np.random.default_rng(7)
    values = {
        "kind": list(F.TYPES), "air": [0.0, 295.0, 298.1, 300.0], "dt": [8.5, 8.6, 8.7, 12.0],
        "rpm": [1168.0, 1379.0, 1380.0, 1381.0, 2886.0], "torque": [3.8, 21.55, 40.0, 55.41, 76.6],
        "wear": [0.0, 199.0, 200.0, 240.0, 241.0, 253.0],
    }
    rows = []
    for _ in range(400):
        kind, air, dt, rpm, torque, wear = (v[rng.integers(len(v))] for v in values.values())
        rows.append((kind, air, air + dt, rpm, torque, wear))
    rows.append(("L", 300.0, 308.6, 1380.0, 11000.0 / 200.0, 200.0))  # strain exactly at L's limit
    for row in rows:
        fills = [F.TYPES[rng.integers(3)], *(v[rng.integers(len(v))] for k, v in values.items() if k != "kind")]
        fills[2] = fills[1] + [8.5, 8.6, 8.7][rng.integers(3)]  # a process temperature near the heat edge
        got = F.engineer_occlusions(row, F.engineer_row(*row), fills)
        want = [F.engineer_row(*row[:j], fills[j], *row[j + 1 :]) for j in range(len(F.RAW))]
        assert got == want, (row, fills)
        assert [[type(v) for v in r] for r in got] == [[type(v) for v in r] for r in want]


def test_record_path_equals_the_array_path(trained, rows):
    """API records are engineered in plain Python (clean_rows, engineer_row, _answer_rows); every answer equals
    the array path's, value for value: probabilities, decisions at the shipped threshold, modes, top features."""
    model = OnnxModel(trained[0] / "model")
    records = rows.drop(columns=F.LABELS).to_dict("records")
    assert F.clean_rows(records[:5]) is not None  # the plain case does take the record path
    for n in (1, 3, 16):
        for start in range(0, 600, 37):
            chunk = records[start : start + n]
            for explain in (True, False):
                assert P.score_records(model, chunk, explain=explain) == _records_answer(model, chunk, explain)
    # the feature store's names, ints where floats are expected, and the decision right at the threshold
    store = [{s: r[raw] for s, raw in F.STORE_NAMES.items() if raw in r} for r in records[:8]]
    assert P.score_records(model, store, explain=True) == _records_answer(model, store, True)
    ints = [
        {**r, "Rotational speed [rpm]": int(r["Rotational speed [rpm]"]), "Tool wear [min]": int(r["Tool wear [min]"])}
        for r in records[:8]
    ]
    assert P.score_records(model, ints, explain=True) == _records_answer(model, ints, True)
    p = float(P.score(model, rows.head(1))["failure_probability"].iloc[0])
    x = F.scale(F.engineer_arrays(F.validate_records(records[:1])), model.manifest["normalisation"])
    risk = float(model.run({"x": x})["y"][0, 0])
    for threshold in (risk, np.nextafter(risk, 1.0), np.nextafter(risk, 0.0), risk + 1e-9, risk - 1e-9):
        model.manifest["threshold"] = float(threshold)
        model._derived.clear()
        assert P.score_records(model, records[:1]) == _records_answer(model, records[:1], False), threshold
    assert 0.0 <= p <= 1.0
    # a manifest from before the training medians were shipped: both paths occlude with the batch's medians
    model.manifest.pop("explain_baseline")
    model._derived.clear()
    for n in (1, 5):
        assert P.score_records(model, records[:n], explain=True) == _records_answer(model, records[:n], True)


def test_a_reading_out_of_range_is_refused_whatever_the_call_size(trained, rows):
    """A torque of 500 Nm or a temperature in Celsius in a call of up to 64 records (the quick record path) was
    scored as a healthy machine's (probability 0.0), and refused in a call of 65 (MES audit): both refuse it now,
    with the same message."""
    model = OnnxModel(trained[0] / "model")
    base = rows.drop(columns=F.LABELS).iloc[0].to_dict()
    for change, words in (({"Torque [Nm]": 500}, "a machine reads 0 to 200 N*m"),
                          ({"Air temperature [K]": 25.0}, "in degrees Celsius?")):
        messages = set()
        for n in (1, 64, 65):
            with pytest.raises(InvalidInput, match=re.escape(words)) as e:
                P.score_records(model, [{**base, "UDI": i + 1} for i in range(n - 1)] + [{**base, **change}])
            messages.add(str(e.value).replace(f"row {n}", "row N"))
        assert len(messages) == 1, messages


def test_a_reading_at_its_floor_stays_on_the_record_path(trained, rows):
    """A tool just changed has worn 0 min: a common reading, at its floor, not below it. It is read on the quick
    record path (it once went the array way, and single predictions took ~140 us more of server CPU), with the
    array path's answer."""
    model = OnnxModel(trained[0] / "model")
    base = rows.drop(columns=F.LABELS).iloc[0].to_dict()
    for change in ({"Tool wear [min]": 0}, {"Tool wear [min]": 0.0}, {"Torque [Nm]": 0.0},
                   {"Rotational speed [rpm]": 0}):
        record = {**base, **change}
        assert F.clean_rows([record]) is not None, change
        assert P.score_records(model, [record], explain=True) == _records_answer(model, [record], True), change


@pytest.mark.parametrize(
    "change",
    [{"Type": " M "}, {"Type": "X"}, {"Torque [Nm]": "42.5"}, {"Torque [Nm]": True}, {"Torque [Nm]": None},
     {"Torque [Nm]": [1, 2]}, {"Torque [Nm]": float("nan")}, {"Torque [Nm]": 10**400}, {"Vibration [g]": 0.1},
     {"Air temperature [K]": -300.0}, {"Air temperature [K]": 0}, {"Air temperature [K]": 0.0},
     {"Rotational speed [rpm]": -5}, {"Tool wear [min]": -1}, {"Torque [Nm]": -0.5},
     # out of the plausible range (an MES audit: a single record had skipped it and scored as healthy)
     {"Torque [Nm]": 500}, {"Torque [Nm]": 1e20}, {"Rotational speed [rpm]": 99999}, {"Air temperature [K]": 25.0},
     {"Process temperature [K]": 35}, {"Tool wear [min]": 10**6}],
)
def test_records_the_record_path_cannot_read_go_the_array_way(trained, rows, change):
    """Anything but clean records (odd types, text numbers, unknown fields) is left to validate_records, so the
    answer or the error is exactly the array path's."""
    model = OnnxModel(trained[0] / "model")
    record = {**rows.drop(columns=F.LABELS).iloc[0].to_dict(), **change}
    assert F.clean_rows([record]) is None
    try:
        expected = _records_answer(model, [record], True)
    except InvalidInput as e:
        with pytest.raises(InvalidInput, match=re.escape(str(e))):
            P.score_records(model, [record], explain=True)
    else:
        assert P.score_records(model, [record], explain=True) == expected


@pytest.mark.parametrize("value", [True, False, np.True_])
def test_a_boolean_reading_is_refused_naming_its_column_and_row(trained, rows, tmp_path, value):
    """true is no reading (NumPy reads it as 1.0, and used to score it): refused like text, naming the column and
    row, on every way in: a few records (the record path), a batch past CLEAN_ROWS (validate_records), a frame (an
    Arrow or Parquet body) and a CSV column of True/False (which pandas reads as booleans)."""
    model = OnnxModel(trained[0] / "model")
    records = rows.drop(columns=F.LABELS).iloc[:100].to_dict("records")
    for column in F.NUMERIC:
        for n in (3, len(records)):
            batch = [dict(r) for r in records[:n]]
            batch[1][column] = value
            message = re.escape(f"column {column!r} row 2: expected a number, got {bool(value)}")
            with pytest.raises(InvalidInput, match=f"^{message}$"):
                P.score_records(model, batch, explain=True)
            with pytest.raises(InvalidInput, match=f"^{message}$"):
                P.score(model, pd.DataFrame.from_records(batch))
    flags = rows.drop(columns=F.LABELS).iloc[:5].assign(**{"Torque [Nm]": bool(value)})
    flags.to_csv(tmp_path / "flags.csv", index=False)
    assert pd.read_csv(tmp_path / "flags.csv")["Torque [Nm]"].dtype == bool
    message = re.escape(f"column 'Torque [Nm]' row 1: expected a number, got {bool(value)}")
    with pytest.raises(InvalidInput, match=message):
        P.predict(model, tmp_path / "flags.csv", "ai4i")
    text = rows.drop(columns=F.LABELS).iloc[:5].astype({"Torque [Nm]": object})
    text.loc[3, "Torque [Nm]"] = "true"  # the text among numbers: not a number either
    text.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(InvalidInput, match=re.escape("column 'Torque [Nm]' row 4: expected a number, got 'true'")):
        P.predict(model, tmp_path / "text.csv", "ai4i")
    # readings of exactly 0 and 1 are readings: the check looks at the type, not the value
    ones = [{**r, "Tool wear [min]": w} for r, w in zip(records, [0, 1, 0.0, 1.0] * 25, strict=True)]
    assert len(P.score_records(model, ones)) == len(ones) and len(P.score_records(model, ones[:4])) == 4


def test_a_file_without_mode_columns_names_no_failure_mode(rows, tmp_path):
    """Trained on `Machine failure` alone, the mode heads never learned (absent labels are masked out of the
    loss): the manifest says no mode was trained, and a predicted failure names none (it used to say "HDF" or
    whichever untrained head came out highest), on the record path and the array path alike."""
    failures = rows[rows[F.LABEL] == 1]
    tiny = pd.concat([failures, rows[rows[F.LABEL] == 0].iloc[: 8 * len(failures)]]).drop(columns=F.LABELS[1:])
    csv = tmp_path / "train.csv"
    tiny.to_csv(csv, index=False)
    T.train(csv, "ai4i", tmp_path / "model", config=QUICK, tracker=Tracker(None, "t", enabled=False))
    model = OnnxModel(tmp_path / "model")
    assert model.manifest["trained_modes"] == []
    records = failures.drop(columns=F.LABELS).to_dict("records")
    few = P.score_records(model, records[:8], explain=True)  # the plain-Python path
    many = P.score(model, pd.DataFrame.from_records(records), explain=True)  # the array path
    assert sum(p["failure_predicted"] for p in few) > 0 and many["failure_predicted"].sum() > 0
    assert {p["failure_mode"] for p in few} == {""} and set(many["failure_mode"]) == {""}


def test_failure_mode_is_one_the_model_was_trained_on(trained, rows):
    """A model whose file labelled only some modes names only those; a manifest from before `trained_modes`
    names any of the four, as it always did."""
    assert OnnxModel(trained[0] / "model").manifest["trained_modes"] == F.MODES  # the AI4I file labels all four
    records = rows[rows[F.LABEL] == 1].drop(columns=F.LABELS).to_dict("records")
    model = OnnxModel(trained[0] / "model")
    model.manifest["trained_modes"] = ["OSF"]
    for answer in (P.score_records(model, records[:8], explain=True),
                   P.score(model, pd.DataFrame.from_records(records), explain=True).to_dict("records")):
        predicted = [p for p in answer if p["failure_predicted"]]
        assert predicted and {p["failure_mode"] for p in predicted} == {"OSF"}
        assert {p["failure_mode"] for p in answer if not p["failure_predicted"]} <= {""}
    old = OnnxModel(trained[0] / "model")
    old.manifest.pop("trained_modes")
    modes = set(P.score(old, pd.DataFrame.from_records(records), explain=True)["failure_mode"])
    assert modes - {""} and modes <= {"", *F.MODES}


def test_a_tracked_run_names_its_training_file_as_its_input(rows, tmp_path):
    """MLflow's Datasets column was empty: a run did not say which file it trained on, beyond a parameter (data-
    scientist audit). `sfai train` logs the file as the run's training input, by its path, name and data hash."""
    from mlflow import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFAI_", "MLFLOW_"))}
    env.update(SFAI_HOME=str(tmp_path / "home"), SFAI_ENVIRONMENT="test")
    csv = tmp_path / "small.csv"
    pd.concat([rows[rows["Machine failure"] == 1].head(20), rows[rows["Machine failure"] == 0].head(280)]).to_csv(
        csv, index=False)
    r = subprocess.run([sys.executable, "-m", "serving.cli.main", "train", "failure", "--dataset", "ai4i", "--input",
                        str(csv), "--set", "folds=2", "--set", "epochs=2"], env=env,
                       cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    client = MlflowClient(f"sqlite:///{(tmp_path / 'home' / 'mlflow.db').resolve()}")
    (run,) = [run for e in client.search_experiments() for run in client.search_runs([e.experiment_id])]
    (used,) = run.inputs.dataset_inputs
    manifest = json.loads(next((tmp_path / "home" / "models").rglob("manifest.json")).read_text())
    assert used.dataset.name == "small.csv" and used.dataset.digest == manifest["data_hash"][:36]
    assert str(csv.resolve()) in used.dataset.source and [t.value for t in used.tags] == ["training"]


def test_a_file_without_failures_is_refused_and_leaves_no_run(rows, tmp_path):
    """300 rows without a failure trained a model of no use (AUC null, F1 0) and registered it as challenger, next
    in line for a plain 'sfai models promote'; a refused file also left a FAILED run in MLflow. Now: one line, no
    model, no run left to look at (data-scientist audit)."""
    from mlflow import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFAI_", "MLFLOW_"))}
    env.update(SFAI_HOME=str(tmp_path / "home"), SFAI_ENVIRONMENT="test")
    csv = tmp_path / "nofail.csv"
    rows[rows["Machine failure"] == 0].head(300).to_csv(csv, index=False)
    r = subprocess.run([sys.executable, "-m", "serving.cli.main", "train", "failure", "--dataset", "ai4i", "--input",
                        str(csv), "--set", "folds=2"], env=env, cwd=Path(__file__).resolve().parents[2],
                       capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        "error: nofail.csv: 0 of 300 rows are machine failures ('Machine failure' = 1); training needs at least 2 "
        "failures and 2 rows without (each validation fold holds both)"], r.stderr
    assert not (tmp_path / "home" / "models").exists() or not any((tmp_path / "home" / "models").rglob("*.onnx"))
    client = MlflowClient(f"sqlite:///{(tmp_path / 'home' / 'mlflow.db').resolve()}")  # this home's store alone
    runs = [run for e in client.search_experiments() for run in client.search_runs([e.experiment_id])]
    assert runs == []  # deleted runs are not listed
