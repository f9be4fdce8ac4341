"""Defect model (SECOM): features, metrics, ONNX parity, the predict contract, bad input, no torch in predict,
and one end-to-end ``sfai train`` / ``sfai predict`` run. Trains on a small subset so the file stays fast."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.defect import features as F
from models.metrics import balanced_accuracy, balanced_threshold, roc_auc
from serving.errors import InvalidInput
from tests.datasets import ROOT, NoTracker, assert_predicts_without_torch, need
from tests.sfai_cli import run_sfai

QUICK = {"n_splits": 2, "epochs": 15, "patience": 15}


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    """300 wafers, every failure among them kept at the file's rate or above; 150 measurements."""
    df = pd.read_csv(need("secom/secom_train.csv"))
    fails = df[df.label == 1].head(30)
    rows = pd.concat([fails, df[df.label == -1].head(270)]).sort_values("row_id")
    cols = ["row_id", "label", "timestamp", *F.measurement_columns(df)[:150]]
    path = tmp_path_factory.mktemp("secom") / "train.csv"
    rows[cols].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(subset, tmp_path_factory) -> tuple[Path, dict]:
    from models.defect.train import train

    out = tmp_path_factory.mktemp("defect-model")
    metrics = train(subset, "secom", out, config=dict(QUICK), tracker=NoTracker())
    return out, metrics


def test_features_drop_impute_scale_and_clip():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"row_id": range(40), "f001": rng.normal(10, 2, 40), "f002": 3.0, "f003": np.nan,
                       "f004": rng.normal(0, 1, 40)})
    df.loc[:5, "f004"] = np.nan
    df.loc[0, "f001"] = 1e6  # an outlier must not blow up the scale
    stats = F.fit_features(df, max_missing=0.5, min_missing_indicator=0.05, missing_indicators=True, clip=5.0)
    assert stats["measurements"] == ["f001", "f004"]  # f002 constant, f003 all missing
    assert stats["indicators"] == ["f004"] and stats["dropped_constant"] == 1
    json.dumps(stats)  # goes into the manifest as is
    z = F.transform(df, stats)
    assert z.shape == (40, 3) and z.dtype == np.float32
    assert z[0, 0] == 5.0 and np.all(z[:6, 1] == 0.0) and np.all(z[:6, 2] == 1.0)  # clipped, median-imputed
    assert abs(float(np.median(z[6:, 1]))) < 0.2


def test_metrics():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert balanced_accuracy(y, np.array([0, 1, 1, 1])) == 0.75
    assert balanced_accuracy(y, np.array([0.1, 0.2, 0.7, 0.9]) >= balanced_threshold(y, np.array([0.1, 0.2, 0.7, 0.9])))


def test_onnx_matches_torch(subset, tmp_path):
    from models.defect.config import DefectConfig
    from models.defect.train import fit_one
    from models.export import export
    from models.training import predict_batches
    from serving.runtime import OnnxModel

    df = F.read_rows(subset)
    fitted = fit_one(df, F.labels(df), DefectConfig.from_dict(QUICK), seed=0)
    z = F.transform(df, fitted.stats)
    manifest = export(fitted.model, z[:8], tmp_path, {"name": "defect", "feature_stats": fitted.stats})
    got = OnnxModel(tmp_path).run({"x": z})["y"][:, 0]
    assert manifest["parity_max_abs"] <= 1e-4
    assert np.max(np.abs(got - predict_batches(fitted.model, z)[:, 0])) <= 1e-4


def test_train_ships_threshold_features_and_weights(trained):
    out, metrics = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert 0.0 < manifest["threshold"] < 1.0
    assert len(manifest["contribution_weights"]) == len(manifest["features"])
    assert {"val_roc_auc", "val_roc_auc_sd", "val_balanced_accuracy"} <= set(metrics)
    assert manifest["data_hash"] and manifest["parity_max_abs"] <= 1e-4
    # the held-out probabilities read as probabilities: their mean is near the failure rate (10 % here), not ~0.5
    assert 0.5 < metrics["val_mean_probability"] / metrics["val_failure_rate"] < 2.0
    assert 0 <= metrics["best_epoch"] < metrics["epochs_run"] <= QUICK["epochs"]


def test_train_without_a_tracker(subset, tmp_path):
    """``tracker`` is optional (None: nothing is logged), as for the other families."""
    from models.defect.train import train

    metrics = train(subset, "secom", tmp_path, config={**QUICK, "n_splits": 0})
    assert (tmp_path / "model.onnx").exists() and metrics["features_kept"] > 0
    assert json.loads((tmp_path / "manifest.json").read_text())["threshold"] == pytest.approx(30 / 300)


def test_predict_contract_without_label(trained, subset, tmp_path):
    from models.defect.predict import explain, predict
    from serving.runtime import OnnxModel

    rows = pd.read_csv(subset).drop(columns=["label"]).head(25)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    model = OnnxModel(trained[0])
    out = predict(model, tmp_path / "rows.csv", "secom")
    assert list(out.columns) == ["row_id", "defect_probability", "defect_predicted"]
    assert out.row_id.tolist() == rows.row_id.tolist()
    assert out.defect_probability.between(0, 1).all() and set(out.defect_predicted) <= {0, 1}
    assert ((out.defect_probability >= model.manifest["threshold"]) == (out.defect_predicted == 1)).all()
    top = explain(model, tmp_path / "rows.csv", top_k=3)
    assert top.top_measurements.str.count(":").eq(3).all()


@pytest.mark.parametrize(
    ("change", "column"),
    [(lambda d: d.drop(columns=["f059"]), "f059"), (lambda d: d.assign(f033="high"), "f033"),
     (lambda d: d.drop(columns=["row_id"]), "row_id")],
)
def test_bad_input_names_the_column(trained, subset, tmp_path, change, column):
    from models.defect.predict import predict
    from serving.runtime import OnnxModel

    change(pd.read_csv(subset).head(5)).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInput, match=column) as err:
        predict(OnnxModel(trained[0]), tmp_path / "bad.csv", "secom")
    assert "\n" not in str(err.value)


def test_api_records_refuse_unknown_fields_and_take_the_known_ones(trained, subset):
    """A field of an API record that the defect model does not know (a typo such as ``f05`` or ``labell``) is
    refused, naming it, as the failure model refuses one; the SECOM file's id, label and test time, what an
    online-store row adds, and measurements the model dropped in training (or never saw) are known."""
    from models.defect.predict import records_frame, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    df = pd.read_csv(subset).head(4)
    records = json.loads(df.to_json(orient="records"))  # row_id, label, timestamp, measurements (null: missing)
    kept = model.manifest["feature_stats"]["measurements"]
    dropped = [c for c in F.measurement_columns(df) if c not in kept]
    assert dropped and all(c in records[0] for c in dropped)  # constant or mostly missing in training
    store = {"lot_id": "secom-0001", "event_timestamp": "2008-07-19T11:55:00+00:00", "n_missing": 3, "defect": False}
    known = [{**r, **store, "f590": 0.5} for r in records]
    want = score(model, records_frame(records))
    assert np.allclose(want.defect_probability, score(model, df).defect_probability, atol=1e-5)  # as the file's
    assert score(model, records_frame(known)).defect_probability.tolist() == want.defect_probability.tolist()
    for typo in ("f05", "labell", "F001", "f0001", "f001 ", "row id", "timestamps", "f\u0661\u0662\u0663"):
        bad = [dict(r) for r in records]
        bad[2][typo] = 1.0
        with pytest.raises(InvalidInput, match=f"^unknown feature {re.escape(repr(typo))} \\(a defect record holds"):
            records_frame(bad)
    # a file (``sfai predict defect``) is read as it is: the SECOM layout and any column besides
    file = score(model, df.assign(operator="ann"))
    assert file.defect_probability.tolist() == score(model, df).defect_probability.tolist()


@pytest.mark.parametrize("value", [True, False, np.True_])
def test_a_boolean_measurement_is_refused_naming_its_column_and_row(trained, subset, tmp_path, value):
    """true is no measurement (pandas reads it as 1.0): refused like text, naming the column and row, in API
    records (JSON booleans) and in a CSV column of True/False (which pandas reads as booleans)."""
    from models.defect.predict import predict, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    measurement = model.manifest["feature_stats"]["measurements"][0]
    df = pd.read_csv(subset).head(5)
    records = json.loads(df.to_json(orient="records"))
    records[1][measurement] = value
    message = f"^column '{measurement}' row 2 holds a non-numeric value {bool(value)}$"
    with pytest.raises(InvalidInput, match=message):
        score(model, pd.DataFrame.from_records(records))  # as the route reads JSON records
    df.assign(**{measurement: bool(value)}).to_csv(tmp_path / "flags.csv", index=False)
    assert pd.read_csv(tmp_path / "flags.csv")[measurement].dtype == bool
    with pytest.raises(InvalidInput, match=f"^column '{measurement}' row 1 holds a non-numeric value {bool(value)}$"):
        predict(model, tmp_path / "flags.csv", "secom")
    text = df.astype({measurement: object})
    text.loc[2, measurement] = "true"  # the text among numbers: not a number either
    text.to_csv(tmp_path / "text.csv", index=False)
    with pytest.raises(InvalidInput, match=f"^column '{measurement}' row 3 holds a non-numeric value 'true'$"):
        predict(model, tmp_path / "text.csv", "secom")


def test_predict_does_not_import_torch(trained, subset):
    assert_predicts_without_torch("defect", trained[0], subset, "secom", 300)


def test_cli_train_then_predict(subset, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(SFAI_HOME=str(tmp_path / "home"), SFAI_ENVIRONMENT="test")
    sets = [a for k, v in {**QUICK, "n_splits": 0}.items() for a in ("--set", f"{k}={v}")]  # no validation: fast
    done = run_sfai("train", "defect", "--dataset", "secom", "--input", subset, "--no-track", *sets, env=env, cwd=ROOT,
                    timeout=180)
    assert done.returncode == 0, done.stderr
    assert "features_kept" in json.loads(done.stdout.strip().splitlines()[-1])["metrics"]
    rows = tmp_path / "rows.csv"
    pd.read_csv(subset).drop(columns=["label"]).head(10).to_csv(rows, index=False)
    out = tmp_path / "out.csv"
    cmd = ["predict", "defect", "--dataset", "secom", "--input", str(rows), "--output", str(out)]
    done = run_sfai(*cmd, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert pd.read_csv(out).columns.tolist() == ["row_id", "defect_probability", "defect_predicted"]
    # the line's current failure rate: this model (no validation, so no drift prior) uses none: it answers from the
    # measurements alone and says the rate was ignored, in one line (it had refused, breaking an MES that sends it)
    done = run_sfai(*cmd, "--recent-failure-rate", "0.3", env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0 and done.stderr.startswith("warning: recent_failure_rate 0.3 was ignored: this "
                                                           "defect model does not use"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_recent_failure_rate_reads_only_earlier_wafers():
    from models.defect import drift as D

    times = np.arange(10, dtype=float) * 60.0
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 1, 1])
    hist = D.history(times, y, window=4)
    # a wafer at 4.5 min sees wafers 1-4 (labels 1, 0, 0, 0), never its own or later ones
    got = D.recent_rate(hist, np.array([4.5 * 60, 0.0, np.nan]), 3)
    prior = hist["prior"]
    assert np.isclose(got[0], (1 + D.PSEUDO * prior) / (4 + D.PSEUDO))
    assert np.isclose(got[1], prior) and np.isclose(got[2], prior)  # nothing earlier / no time: the overall rate
    changed = D.history(times, np.r_[y[:5], y[5:][::-1]], window=4)  # later labels differ (same overall rate)
    assert np.isclose(D.recent_rate(changed, np.array([4.5 * 60]), 1)[0], got[0])


def test_combiner_learns_the_weight_of_each_input():
    from models.defect import drift as D

    rng = np.random.default_rng(0)
    rate = rng.uniform(0.01, 0.3, 4000)
    model_p = rng.uniform(0.01, 0.99, 4000)
    y = (rng.uniform(size=4000) < rate).astype(int)  # outcomes follow the rate, not the model
    a, b, _ = D.fit_combiner(model_p, rate, y)
    assert abs(a) < 0.15 and b > 0.7
    p = D.combine([a, b, _], model_p, rate)
    assert p.shape == (4000,) and ((p > 0) & (p < 1)).all()


def test_combiner_probabilities_are_calibrated_and_rank_as_the_balanced_fit():
    """The combiner is fitted class-balanced, then its intercept is corrected for the class prior: on outcomes
    drawn from a known logistic model with ~6 % failures it recovers that model (slopes and intercept), so its
    probabilities average the failure rate and match it per decile, not ~0.5 as a balanced fit's would."""
    from models.defect import drift as D
    from models.metrics import calibration_bins

    rng = np.random.default_rng(1)
    n = 40000
    model_p = 1 / (1 + np.exp(-rng.normal(0.0, 1.5, n)))
    rate = rng.uniform(0.01, 0.2, n)
    truth = [0.8, 0.5, -2.0]
    y = (rng.uniform(size=n) < D.combine(truth, model_p, rate)).astype(float)
    assert 0.04 < y.mean() < 0.09
    coef = D.fit_combiner(model_p, rate, y)
    assert np.allclose(coef, truth, atol=0.15)
    p = D.combine(coef, model_p, rate)
    assert abs(p.mean() - y.mean()) < 0.1 * y.mean()
    assert all(abs(b["predicted"] - b["observed"]) < 0.02 for b in calibration_bins(y, p))
    # only the intercept moved: the ranking (and so AUC, balanced accuracy) is the balanced fit's
    balanced = [coef[0], coef[1], coef[2] + np.log((1 - y.mean()) / y.mean())]
    assert D.combine(balanced, model_p, rate).mean() > 0.3
    assert np.array_equal(np.argsort(p, kind="stable"), np.argsort(D.combine(balanced, model_p, rate), kind="stable"))


def test_stamps_read_the_secom_format_and_iso():
    from models.defect import drift as D

    df = pd.DataFrame({"timestamp": ["19/07/2008 11:55:00", "2008-07-19T12:55:00", "", None,
                                     "2008-07-19T14:55:00+02:00"]})
    t = D.stamps(df)
    assert t[1] - t[0] == 3600 and np.isnan(t[2]) and np.isnan(t[3]) and t[4] - t[0] == 3600  # empty: no time
    assert D.stamps(pd.DataFrame({"x": [1]})) is None


def _store_rows(df: pd.DataFrame) -> list[dict]:
    """``df``'s wafers as the online store answers an entity-id lookup of ``secom_features``: the test time only as
    ``event_timestamp``, UTC ISO text (``feature_store.store``; the SECOM adapter reads the file's time as UTC)."""
    utc = pd.to_datetime(df.timestamp, format="%d/%m/%Y %H:%M:%S", utc=True)
    rows = json.loads(df.drop(columns=["timestamp", "label"]).to_json(orient="records"))
    return [{"lot_id": f"secom-{r['row_id']:04d}", "event_timestamp": t.to_pydatetime().isoformat(), **r,
             "n_missing": 0} for r, t in zip(rows, utc, strict=True)]


def test_a_wafer_looked_up_by_id_scores_as_sent_inline(trained, subset):
    """An online-store row carries the wafer's test time as ``event_timestamp`` (UTC), not ``timestamp``: the drift
    prior reads it, so ``{"entity_ids": [...], "view": "secom_features"}`` gives the probability of the same wafer
    sent inline with its ``timestamp`` (it was scored at the overall rate, as if it had no time)."""
    from models.defect import drift as D
    from models.defect.predict import score
    from serving.runtime import OnnxModel

    df = pd.read_csv(subset)
    model = OnnxModel(trained[0])  # trained on 300 wafers, the drift prior may not be kept: give it one
    model.manifest["drift"] = {**D.history(D.stamps(df), F.labels(df), 50), "coef": [1.0, 1.0, 0.0]}
    rows = df.iloc[150:160]
    inline = score(model, rows).defect_probability
    store = pd.DataFrame.from_records(_store_rows(rows))  # as serving.predictions.records_frame(from_store=True)
    assert "timestamp" not in store.columns and store.event_timestamp.iloc[0].endswith("+00:00")
    assert score(model, store).defect_probability.tolist() == inline.tolist()
    assert score(model, store.drop(columns=["event_timestamp"])).defect_probability.tolist() != inline.tolist()
    typed = store.assign(event_timestamp=pd.to_datetime(store.event_timestamp))  # an Arrow body's time column
    assert score(model, typed).defect_probability.tolist() == inline.tolist()
    # a row whose ``timestamp`` is empty takes its ``event_timestamp``
    both = store.assign(timestamp=[""] + rows.timestamp.tolist()[1:])
    assert score(model, both).defect_probability.tolist() == inline.tolist()


@pytest.mark.parametrize("written", ["%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%-d/%-m/%Y %-H:%M"])
def test_a_test_time_saved_again_by_a_spreadsheet_reads_as_the_file_s(trained, subset, tmp_path, written):
    """The SECOM file opened in Excel and saved again writes its times without the seconds (``19/07/2008 11:55``),
    or with dots in a German locale (``19.07.2008 11:55``): every such file was refused (``not a test time``) by
    sfai predict and sfai train (process-engineer walkthrough). They read as the file's own times; SECOM's are
    whole minutes, so the answers are the same."""
    from models.defect import drift as D
    from models.defect.predict import predict
    from serving.runtime import OnnxModel

    df = pd.read_csv(subset).head(8).drop(columns=["label"])
    when = pd.to_datetime(df.timestamp, format=D.SECOM_FORMAT)
    saved = df.assign(timestamp=when.dt.strftime(written))
    assert (D.stamps(saved) == D.stamps(df)).all()
    model = OnnxModel(trained[0])
    df.to_csv(tmp_path / "file.csv", index=False)
    saved.to_csv(tmp_path / "saved.csv", index=False, sep=";", decimal=",")
    pd.testing.assert_frame_equal(predict(model, tmp_path / "saved.csv", "secom"),
                                  predict(model, tmp_path / "file.csv", "secom"))

@pytest.mark.parametrize("column", ["timestamp", "event_timestamp"])
@pytest.mark.parametrize("value", ["yesterday", "1216468500", 1216468500, "19/07/2008", "07/19/2008 11:55:00",
                                   "2008-13-01T00:00:00", True])
def test_an_unreadable_test_time_is_refused_naming_the_column_and_row(trained, subset, tmp_path, column, value):
    """A test time that reads as neither the SECOM file's format nor ISO 8601 (a word, epoch seconds, a date
    alone, month first) is refused, naming the column and the row, in records and in a file: it was read as no
    time, which changes the probability (the overall failure rate instead of the line's recent one)."""
    from models.defect import drift as D
    from models.defect.predict import predict, records_frame, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    df = pd.read_csv(subset).head(4)
    records = json.loads(df.rename(columns={"timestamp": column}).to_json(orient="records"))
    records[2][column] = value
    message = f"^column '{column}' row 3 holds {re.escape(repr(value))}, not a test time: dd/mm/yyyy HH:MM:SS .*ISO"
    with pytest.raises(InvalidInput, match=message) as err:
        score(model, records_frame(records))
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInput, match=message):
        D.stamps(pd.DataFrame.from_records(records))
    pd.DataFrame.from_records(records).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(InvalidInput, match=f"^column '{column}' row 3 holds "):
        predict(model, tmp_path / "rows.csv", "secom")


def test_a_wafer_with_no_readings_is_refused(trained, subset, tmp_path):
    """A row with none of the model's measurements was scored at the training medians (and could be flagged
    defective): refused, naming the row, in a file and in records. A measurement empty in every row of a batch is
    allowed (missing values are normal in SECOM), and so is a row with a single reading."""
    from models.defect.predict import predict, records_frame, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    kept = model.manifest["feature_stats"]["measurements"]
    df = pd.read_csv(subset).drop(columns=["label"]).head(5)
    empty = df.copy()
    empty.loc[2, F.measurement_columns(df)] = np.nan
    empty.to_csv(tmp_path / "rows.csv", index=False)
    wafer = int(df.row_id.iloc[2])
    message = f"^row 3 \\(row_id {wafer}\\) holds none of the model's {len(kept)} measurements: a wafer with no "
    with pytest.raises(InvalidInput, match=message):
        predict(model, tmp_path / "rows.csv", "secom")
    records = json.loads(df.to_json(orient="records"))
    bare = [*records[:2], {"row_id": wafer, "timestamp": records[2]["timestamp"]}, *records[3:]]  # no keys at all
    with pytest.raises(InvalidInput, match=message):
        score(model, records_frame(bare))
    nulls = [*records[:2], {k: (None if F.is_measurement(k) else v) for k, v in records[2].items()}, *records[3:]]
    with pytest.raises(InvalidInput, match=message):
        score(model, records_frame(nulls))
    # a measurement empty in the whole batch, a row with one reading: scored
    one = [{**r, kept[0]: None} for r in records]
    one[1] = {"row_id": one[1]["row_id"], kept[1]: records[1][kept[1]]}
    out = score(model, records_frame(one))
    assert out.defect_probability.between(0, 1).all() and len(out) == 5


def test_a_record_lacking_a_key_has_that_measurement_missing(trained, subset):
    """Over the API, a record without a measurement that the batch's other records carry has it missing, as JSON
    null, ``""`` or an empty CSV cell; a measurement that no record carries is refused, as a file without the
    column is, whether the batch holds one record or many."""
    from models.defect.predict import records_frame, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    kept = model.manifest["feature_stats"]["measurements"]
    records = json.loads(pd.read_csv(subset).head(3).to_json(orient="records"))
    lacking = [dict(r) for r in records]
    del lacking[1][kept[3]]
    nulls = [dict(r) for r in records]
    nulls[1][kept[3]] = None
    want = score(model, records_frame(nulls)).defect_probability.tolist()
    assert score(model, records_frame(lacking)).defect_probability.tolist() == want
    for batch in ([lacking[1]], [{k: v for k, v in r.items() if k != kept[3]} for r in records]):
        with pytest.raises(InvalidInput, match=f"^input lacks the measurement column '{kept[3]}': send it, empty if "
                                               "it was not measured"):
            score(model, records_frame(batch))


def test_blank_strings_are_missing_values(trained, subset, tmp_path):
    """``""`` in a JSON record is a missing value, as an empty CSV cell is (it was refused over HTTP with "holds a
    non-numeric value an empty cell" while the same wafer in a file was scored); text is still refused."""
    from models.defect.predict import predict, records_frame, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    kept = model.manifest["feature_stats"]["measurements"]
    df = pd.read_csv(subset).head(4)
    df.loc[1, kept[:5]] = np.nan
    df.to_csv(tmp_path / "rows.csv", index=False)
    want = predict(model, tmp_path / "rows.csv", "secom").defect_probability.tolist()
    records = json.loads(df.to_json(orient="records"))
    for blank in ("", "  "):
        sent = [{k: (blank if v is None else v) for k, v in r.items()} for r in records]
        assert sent[1][kept[0]] == blank
        assert score(model, records_frame(sent)).defect_probability.tolist() == want
    records[2][kept[0]] = "1,5"
    with pytest.raises(InvalidInput, match=f"^column '{kept[0]}' row 3 holds a non-numeric value '1,5'$"):
        score(model, records_frame(records))


@pytest.mark.parametrize("name", ["f000", "f591", "f999"])
def test_a_measurement_name_beyond_secom_is_refused(name):
    """SECOM's measurements are f001..f590: a record field ``f591`` or ``f999`` is no measurement (a typo, scored as
    if absent), refused as an unknown feature; in a file (read as it is) such a column is not read, also in
    training."""
    from models.defect.predict import records_frame

    with pytest.raises(InvalidInput, match=f"^unknown feature '{name}' \\(a defect record holds measurements named "
                                           "f001, f002, ... f590 and may carry"):
        records_frame([{"row_id": 1, "f001": 1.0, "f590": 2.0, name: 3.0}])
    assert F.measurement_columns(pd.DataFrame(columns=["row_id", "f001", "f590", name, "F002"])) == ["f001", "f590"]


def test_a_column_named_in_other_letters_is_named_in_the_error(trained, subset, tmp_path):
    """``F060`` for ``f060`` in a file: the error says which column was found, not only which is lacking."""
    from models.defect.predict import predict
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    name = model.manifest["feature_stats"]["measurements"][2]
    pd.read_csv(subset).head(3).rename(columns={name: name.upper()}).to_csv(tmp_path / "rows.csv", index=False)
    message = re.escape(f"input lacks the measurement column '{name}' (found '{name.upper()}': column names are "
                        "case-sensitive): send it")
    with pytest.raises(InvalidInput, match=f"^{message}"):
        predict(model, tmp_path / "rows.csv", "secom")


def test_members_make_the_named_measurements_independent_of_the_random_start(subset, tmp_path):
    """One early-stopped fit kept weights near its random start (on SECOM the first epoch is often the best), so
    the measurements it named and the wafers it flagged changed with the seed: weights of seeds 0 and 1 correlated
    0.47 on the full file. The shipped model averages five members: 0.95 there."""
    import json

    import numpy as np

    from models.defect.train import train

    def weights(seed: int, members: int) -> np.ndarray:
        out = tmp_path / f"s{seed}-m{members}"
        train(subset, "secom", out, config={"n_splits": 0, "seed": seed, "members": members}, tracker=NoTracker())
        return np.array(json.loads((out / "manifest.json").read_text())["contribution_weights"])

    one = np.corrcoef(weights(0, 1), weights(1, 1))[0, 1]
    five = np.corrcoef(weights(0, 5), weights(1, 5))[0, 1]
    print(f"\nweight correlation of seeds 0 and 1: one fit {one:.3f}, five members {five:.3f}")
    assert five > 0.9 and five > one + 0.05, (one, five)
    with pytest.raises(InvalidInput, match="members=5 averages logistic models"):
        train(subset, "secom", tmp_path / "mlp", config={"hidden": 8, "members": 5}, tracker=NoTracker())
    from models.defect.config import DefectConfig

    assert DefectConfig.from_dict({"hidden": 32}).members == 1  # the docs' --set hidden=32: one fit, as before


def test_the_line_s_current_failure_rate_can_be_given(trained, subset, tmp_path):
    """After the training file, every wafer took the failure rate of its last 50 wafers: the line's current yield
    could not be given. ``recent_failure_rate`` now stands for every row (HTTP body option, CLI flag); a worse line
    raises every wafer's probability, the rate is checked, and a model without the drift prior says it uses none."""
    from models.defect import drift as D
    from models.defect.predict import predict, score
    from serving.runtime import OnnxModel

    df = pd.read_csv(subset)
    model = OnnxModel(trained[0])
    plain = score(model, df.iloc[:20]).defect_probability
    if model.manifest.get("drift"):
        model.manifest.pop("drift")
    ignored = score(model, df.iloc[:20], recent_failure_rate=0.1)  # a model without the prior: said, not refused
    assert ignored.defect_probability.tolist() == score(model, df.iloc[:20]).defect_probability.tolist()
    assert ignored.attrs["warnings"][0].startswith("recent_failure_rate 0.1 was ignored: this defect model does "
                                                   "not use the line's recent failure rate")
    model.manifest["drift"] = {**D.history(D.stamps(df), F.labels(df), 50), "coef": [1.0, 1.0, 0.0]}
    good = score(model, df.iloc[:20], recent_failure_rate=0.01).defect_probability
    bad = score(model, df.iloc[:20], recent_failure_rate=0.3).defect_probability
    assert (bad > good).all() and not np.allclose(good, plain)
    rows = tmp_path / "rows.csv"
    df.iloc[:20].drop(columns=["label"]).to_csv(rows, index=False)
    assert predict(model, rows, "secom", recent_failure_rate=0.3).defect_probability.tolist() == bad.tolist()
    for value in (-0.1, 1.5, "high", True, float("nan"), 10**400):
        with pytest.raises(InvalidInput, match="recent_failure_rate must be a share"):
            score(model, df.iloc[:3], recent_failure_rate=value)


def test_wafers_far_from_the_training_data_or_its_time_are_warned_of(trained, subset):
    """A reading of 1e9, a process shifted by 20 IQRs, and wafers tested a month after the training file were all
    scored without a word (clipped values; the file's last failure rate): process-engineer audit. Each is now a
    warning in the answer (and the CLI's stderr); the training file's own wafers get none."""
    from models.defect.predict import score
    from serving.runtime import OnnxModel

    df = pd.read_csv(subset).drop(columns=["label"])
    model = OnnxModel(trained[0])
    stats = model.manifest["feature_stats"]
    assert score(model, df).attrs["warnings"] == []
    first = stats["measurements"][0]
    odd = df.copy()
    odd.loc[4, first] = 1e9
    notes = score(model, odd).attrs["warnings"]
    assert len(notes) == 1 and notes[0].startswith(f"wafer row_id {df.row_id[4]}: {first} = 1e+09 lies far outside its "
                                                   "training range"), notes
    shifted = df.copy()
    for c, q in zip(stats["measurements"], stats["scale"], strict=True):
        shifted[c] = shifted[c] + 20 * q
    notes = score(model, shifted.iloc[:3]).attrs["warnings"]
    assert len(notes) == 1 and notes[0].startswith(f"wafers row_id {df.row_id[0]} (")
    assert "most of their measurements lie outside the ranges the model was trained on" in notes[0]
    if not model.manifest.get("drift"):  # the subset's validation may not keep the prior: give the model one
        from models.defect import drift as D

        full = pd.read_csv(subset)
        model.manifest["drift"] = {**D.history(D.stamps(full), F.labels(full), 50), "coef": [1.0, 1.0, 0.0]}
    later = df.iloc[:5].assign(timestamp=(pd.to_datetime(df.timestamp, dayfirst=True).max()
                                          + pd.Timedelta(days=30)).strftime("%d/%m/%Y %H:%M:%S"))
    notes = score(model, later).attrs["warnings"]
    assert len(notes) == 1 and notes[0].startswith("5 of 5 wafers were tested more than 7 days after the "
                                                   "training file's last wafer"), notes
    assert "send the line's current rate as recent_failure_rate" in notes[0]
    assert score(model, later, recent_failure_rate=0.05).attrs["warnings"] == []  # the caller gave the rate
    assert score(model, df.iloc[:5]).attrs["warnings"] == []  # the file's own times



def test_wafers_without_a_test_time_are_warned_of(trained, subset, tmp_path):
    """A file without the timestamp column (or with empty cells) was scored at the training file's overall failure
    rate without a word: 6 of the first 20 SECOM wafers changed their flag against the same file with its times
    (process-engineer walkthrough). The answer now says so, and what to send instead; a rate given, or the times,
    say nothing."""
    from models.defect.predict import score
    from serving.batch import score_file
    from serving.runtime import OnnxModel

    df = pd.read_csv(subset).drop(columns=["label"])
    model = OnnxModel(trained[0])
    if not model.manifest.get("drift"):  # the subset's validation may not keep the prior: give the model one
        from models.defect import drift as D

        full = pd.read_csv(subset)
        model.manifest["drift"] = {**D.history(D.stamps(full), F.labels(full), 50), "coef": [1.0, 1.0, 0.0]}
    prior = model.manifest["drift"]["prior"]
    notes = score(model, df.drop(columns=["timestamp"]).iloc[:4]).attrs["warnings"]
    assert notes == [f"4 of 4 wafers have no test time (the input has no timestamp column): their recent failure "
                     f"rate is taken as the training file's overall rate ({prior:.3f}), not the line's; send each "
                     "wafer's timestamp (dd/mm/yyyy HH:MM:SS or ISO 8601), or the line's current rate as "
                     "recent_failure_rate (sfai predict defect --recent-failure-rate)"], notes
    notes = score(model, df.rename(columns={"timestamp": "Timestamp"}).iloc[:4]).attrs["warnings"]
    assert notes[0].startswith("4 of 4 wafers have no test time (the input has no timestamp column; its column "
                               "'Timestamp' is not read: name it 'timestamp'): "), notes
    blank = df.iloc[:4].copy()
    blank.loc[blank.index[2], "timestamp"] = ""
    notes = score(model, blank).attrs["warnings"]
    assert len(notes) == 1 and notes[0].startswith(f"1 of 4 wafers has no test time (an empty timestamp: row_id "
                                                   f"{blank.row_id.iloc[2]}): its recent failure rate"), notes
    assert score(model, df.drop(columns=["timestamp"]).iloc[:4], recent_failure_rate=0.05).attrs["warnings"] == []
    assert score(model, df.iloc[:4]).attrs["warnings"] == []
    # the CLI's file: said once, with the file's totals, not per chunk
    folder = tmp_path / "model"
    shutil.copytree(trained[0], folder)
    (folder / "manifest.json").write_text(json.dumps(model.manifest))
    path = tmp_path / "untimed.csv"
    df.drop(columns=["timestamp"]).to_csv(path, index=False)
    report = score_file("defect", folder, path, "secom", tmp_path / "out.csv", chunk_rows=100)
    said = [w.split(" (")[0] for w in report["warnings"]]
    assert report["chunks"] > 1 and said == [f"{len(df)} of {len(df)} wafers have no test time"], report


def test_the_openapi_lists_the_warning_about_wafers_without_a_test_time():
    """The defect answer warns of wafers without a test time (above); its OpenAPI description of the warnings had
    not listed them (contract-checker audit)."""
    from serving.routers.quality import PREDICT, router

    route = next(r for r in router.routes if getattr(r, "path", None) == router.prefix + PREDICT)
    answer = route.openapi_extra["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert "wafers without a test time (no timestamp, no recent_failure_rate" in answer["warnings"]["description"]


def test_explanations_say_whether_each_measurement_was_high_or_low(trained, subset):
    """``f003:-0.308`` did not say whether f003 was high or low, nor against what (process-engineer audit). Each
    named measurement now comes with the value sent, the training median, the direction and the contribution."""
    from models.defect.predict import score
    from serving.runtime import OnnxModel

    df = pd.read_csv(subset).drop(columns=["label"]).head(6)
    model = OnnxModel(trained[0])
    stats = model.manifest["feature_stats"]
    first = stats["measurements"][0]
    df.loc[0, first] = np.nan  # not sent: read as the median
    out = score(model, df, explain=True, top=len(model.manifest["features"]))
    median = dict(zip(stats["measurements"], stats["median"], strict=True))
    for i, (text, details) in enumerate(zip(out["top_measurements"], out["top_measurement_values"], strict=True)):
        assert [f"{d['measurement']}:{d['contribution']:+.3f}" for d in details] == [
            t.replace("_missing:", ":") for t in text.split(";")]
        for d in details:
            assert d["median"] == pytest.approx(median[d["measurement"]], rel=1e-5)
            sent = df[d["measurement"]].iloc[i]
            if pd.isna(sent):
                assert d["value"] is None and d["direction"] == "missing"
            else:
                assert d["value"] == pytest.approx(sent, rel=1e-5)
                assert d["direction"] == ("high" if sent > median[d["measurement"]] else
                                          "low" if sent < median[d["measurement"]] else "at median")
    # a measurement not sent is read as its median: it contributes nothing and is not listed (it had been padded in
    # as ``f001:+0.000``); the wafer says how many were missing
    assert not any(d["measurement"] == first for d in out["top_measurement_values"][0])
    assert out["measurements_missing"][0] == int(df.iloc[0][stats["measurements"]].isna().sum()) >= 1
    json.dumps(out.to_dict("records"))  # the API's JSON answer carries them as they are


def test_an_mlp_ranks_wafers_and_a_flat_model_is_warned_of(subset, tmp_path, caplog):
    """``--set hidden=32`` (the docs' MLP): with the logistic model's L2 penalty of 1.0 on both of its layers, every
    wafer got the same probability (0.064457 on the whole file) and nothing said so. An MLP now takes its own
    penalty (MLP_L2) and ranks the wafers; a model that ranks nothing (a penalty set too strong) is warned of."""
    import logging

    from models.defect.config import MLP_L2, DefectConfig
    from models.defect.train import FLAT_SPREAD, train

    assert DefectConfig.from_dict({"hidden": 32}).l2 == MLP_L2 < 1.0
    assert DefectConfig.from_dict({"hidden": 32, "l2": 1.0}).l2 == 1.0  # one set is kept
    assert DefectConfig.from_dict({}).l2 == 1.0  # the logistic model's, as before
    with caplog.at_level(logging.WARNING, logger="sfai.defect"):
        mlp = train(subset, "secom", tmp_path / "mlp", config={**QUICK, "n_splits": 0, "hidden": 32})
    assert mlp["train_probability_spread"] > 0.05 and mlp["train_roc_auc"] > 0.7, mlp
    assert "learned no ranking" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="sfai.defect"):
        flat = train(subset, "secom", tmp_path / "flat", config={**QUICK, "n_splits": 0, "hidden": 32, "l2": 5000.0})
    assert flat["train_probability_spread"] < FLAT_SPREAD, flat
    assert "learned no ranking" in caplog.text and "l2=5000" in caplog.text


def test_a_label_of_0_and_1_is_refused_naming_the_row_and_the_fix():
    """A label column of 0 (pass) and 1 (fail), as most tools write it, was refused with `column 'label' must hold
    -1 (pass) or 1 (fail)`: no row, no value, no way forward (process-engineer walkthrough). The refusal names the
    first row and its value, and for 0 / 1 says what to send; the same column named ``defect`` trains as is."""
    df = pd.DataFrame({"row_id": [1, 2, 3], "label": [1, 0, 1], "f001": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInput, match=r"^column 'label' row 2 holds 0: it must hold -1 \(pass\) or 1 \(fail\); "
                                           r"the column holds 0 and 1: write each pass \(0\) as -1, or name the "
                                           r"column 'defect' \(1 or True for a fail\) instead$"):
        F.labels(df)
    assert F.labels(df.rename(columns={"label": "defect"})).tolist() == [1.0, 0.0, 1.0]
    with pytest.raises(InvalidInput, match=r"^column 'label' row 3 holds 'pass': it must hold -1 \(pass\) or 1 "
                                           r"\(fail\)$"):
        F.labels(df.assign(label=["1", "-1", "pass"]))


def test_training_without_test_times_says_the_drift_prior_is_not_used(subset, tmp_path, caplog):
    """A training file without its timestamp column (or with it as ``Timestamp``, a spreadsheet's header, which is
    not read) trained without the line's recent failure rate in silence; the model then ignores the rate every MES
    call sends (process-engineer walkthrough). Training now says so and names the column it did not read; a file
    with its times says nothing."""
    import logging

    from models.defect.train import train

    df = pd.read_csv(subset)
    quick = {**QUICK, "epochs": 2, "members": 1}
    for name, frame, said in [("none", df.drop(columns=["timestamp"]), "no 'timestamp' column"),
                              ("case", df.rename(columns={"timestamp": "Timestamp"}), "its column 'Timestamp' is not "
                                                                                      "read"),
                              ("empty", df.assign(timestamp=""), "the 'timestamp' column is empty")]:
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sfai.defect"):
            train(tmp_path / f"{name}.csv", "secom", tmp_path / name, config=quick)
        assert not json.loads((tmp_path / name / "manifest.json").read_text()).get("drift")
        assert f"defect: the file has no test times ({said}): the model is trained without the line's recent " \
               "failure rate" in caplog.text, caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sfai.defect"):
        train(subset, "secom", tmp_path / "timed", config=quick)
    assert "no test times" not in caplog.text


def test_a_file_s_missing_markers_are_missing_in_an_api_record_too(trained, subset, tmp_path):
    """Excel writes a missing reading as ``#N/A``; pandas reads it (and ``NA``, ``N/A``, ``NULL``, ...) in a file as
    a missing value, so ``sfai predict`` scored the wafer, while the same wafer sent to the API was refused
    (``column 'f001' row 1 holds a non-numeric value '#N/A'``): process-engineer walkthrough. Both now read it as
    missing (the training median), with the same probability; other text is still refused."""
    from pandas._libs.parsers import STR_NA_VALUES

    from models.defect.predict import predict, records_frame, score
    from serving.runtime import OnnxModel

    assert F.NA_TEXT == frozenset(STR_NA_VALUES)  # what the file reader takes as missing
    model = OnnxModel(trained[0])
    df = pd.read_csv(subset).head(3).drop(columns=["label"])
    first = model.manifest["feature_stats"]["measurements"][0]
    records = json.loads(df.to_json(orient="records"))
    text = df.astype(object)
    for i, marker in enumerate(["#N/A", "NULL", "N/A"]):
        records[i][first] = marker
        text.loc[i, first] = marker
    text.to_csv(tmp_path / "rows.csv", index=False)
    from_file = predict(model, tmp_path / "rows.csv", "secom")
    from_records = score(model, records_frame(records))
    missing = score(model, df.assign(**{first: np.nan}))
    assert from_records.defect_probability.tolist() == from_file.defect_probability.tolist() == \
        missing.defect_probability.tolist()
    records[0][first] = "#DIV/0!"
    with pytest.raises(InvalidInput, match=f"^column '{first}' row 1 holds a non-numeric value '#DIV/0!'"):
        score(model, records_frame(records))
