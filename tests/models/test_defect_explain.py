"""Defect explanations and operating points (process-engineer audit, 2026-12): contributions on the served
probability's log-odds scale with the recent failure rate as an entry and a baseline that they add up to; robust
z, clipping and typical ranges; no zero entries; imputation warnings; a caller's rate read as SFAI reads its own;
lot_id as the id; the validation table of thresholds, a recall target, time-ordered validation and the global
importance stored at training. Trains on the same 300-wafer subset as test_defect.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.defect import drift as D
from models.defect import features as F
from serving.errors import InvalidInput
from tests.datasets import NoTracker, need

QUICK = {"n_splits": 2, "epochs": 15, "patience": 15}
COEF = [0.8, 0.9, -0.2]  # a drift prior whose a != 1: contributions must be scaled by it


@pytest.fixture(scope="module")
def subset(tmp_path_factory) -> Path:
    """300 wafers (30 failures), 150 measurements, in test-time order."""
    df = pd.read_csv(need("secom/secom_train.csv"))
    rows = pd.concat([df[df.label == 1].head(30), df[df.label == -1].head(270)]).sort_values("row_id")
    path = tmp_path_factory.mktemp("secom") / "train.csv"
    rows[["row_id", "label", "timestamp", *F.measurement_columns(df)[:150]]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(subset, tmp_path_factory) -> Path:
    from models.defect.train import train

    out = tmp_path_factory.mktemp("defect-model")
    train(subset, "secom", out, config=dict(QUICK), tracker=NoTracker())
    return out


def _with_prior(model_dir: Path, subset: Path):  # noqa: ANN202
    """The model, with a drift prior of known coefficients (the subset's validation may not keep one)."""
    from serving.runtime import OnnxModel

    df = pd.read_csv(subset)
    model = OnnxModel(model_dir)
    model.manifest["drift"] = {**D.history(D.stamps(df), F.labels(df), 50), "coef": list(COEF)}
    return model


def _entries(text: str) -> dict[str, float]:
    return {name: float(value) for name, value in (part.rsplit(":", 1) for part in text.split(";") if part)}


def test_contributions_are_on_the_served_scale_and_add_up_with_the_rate_and_the_baseline(trained, subset):
    """The rate moved the probability 0.047 -> 0.198 and the flag while the explanation stayed the network's own
    logit contributions, identical (audit). Now each contribution is a * w * z, the rate is its own entry, and the
    baseline plus every contribution is the served log-odds."""
    from models.defect.predict import score

    model = _with_prior(trained, subset)
    rows = pd.read_csv(subset).drop(columns=["label"]).iloc[100:106]
    low = score(model, rows, explain=True, recent_failure_rate=0.01)
    high = score(model, rows, explain=True, recent_failure_rate=0.2)
    assert (high.defect_probability > low.defect_probability).all()
    assert (low.top_measurements != high.top_measurements).all()  # the explanation follows the rate
    lo_rate = [_entries(t)["recent_failure_rate"] for t in low.top_measurements]
    hi_rate = [_entries(t)["recent_failure_rate"] for t in high.top_measurements]
    assert all(a < 0 < b for a, b in zip(lo_rate, hi_rate, strict=True))  # below / above the overall rate
    assert (low.baseline_logit == high.baseline_logit).all()  # a median wafer at the overall rate: one number
    assert (high.median_wafer_probability > low.median_wafer_probability).all()
    # the measurements' contributions: the network's weight x z, times the combiner's a
    stats = model.manifest["feature_stats"]
    z = F.transform(rows, stats)
    weights = dict(zip(model.manifest["features"], model.manifest["contribution_weights"], strict=True))
    col = {n: j for j, n in enumerate(model.manifest["features"])}
    for i, text in enumerate(low.top_measurements):
        for name, value in _entries(text).items():
            if name != "recent_failure_rate":
                assert value == pytest.approx(COEF[0] * weights[name] * z[i, col[name]], abs=6e-4)
    # baseline + every contribution (top_k = all) reaches the served log-odds, and the probability
    full = score(model, rows, explain=True, top_k=590, recent_failure_rate=0.2)
    for i in range(len(rows)):
        total = full.baseline_logit[i] + sum(d["contribution"] for d in full.top_measurement_values[i])
        assert total == pytest.approx(full.defect_logit[i], abs=0.02)
        p = full.defect_probability[i]
        assert full.defect_logit[i] == pytest.approx(np.log(p / (1 - p)), abs=1e-3)
        assert full.explained_share[i] > 0.99
    assert full.baseline_probability.tolist() == pytest.approx((1 / (1 + np.exp(-full.baseline_logit))).tolist(),
                                                               abs=1e-5)


def test_entries_give_z_clipping_typical_range_and_the_share_explained(trained, subset):
    from models.defect.predict import score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained)
    stats = model.manifest["feature_stats"]
    weights = np.abs(np.asarray(model.manifest["contribution_weights"]))
    j = int(np.argmax(weights[: len(stats["measurements"])]))  # the heaviest measurement: listed first below
    name = stats["measurements"][j]
    rows = pd.read_csv(subset).drop(columns=["label"]).head(3)
    rows.loc[0, name] = stats["median"][j] + 40 * stats["scale"][j]  # 40 IQRs out: read as the +5 clip
    out = score(model, rows, explain=True, top_k=3)
    first = out.top_measurement_values[0]
    hit = next(d for d in first if d["measurement"] == name)
    assert hit["z"] == pytest.approx(40, rel=1e-3) and hit["clipped"] is True and hit["direction"] == "high"
    assert hit["typical_range"] == pytest.approx([stats["p05"][j], stats["p95"][j]], rel=1e-5)
    assert stats["p05"][j] <= stats["median"][j] <= stats["p95"][j]
    for row in out.top_measurement_values:
        for d in row:
            assert d["clipped"] == (d["z"] is not None and abs(d["z"]) > stats["clip"])
            assert set(d) >= {"measurement", "kind", "value", "median", "typical_range", "z", "clipped", "direction",
                              "contribution", "probability_change"}
    p = out.defect_probability[0]
    without = 1 / (1 + np.exp(-(out.defect_logit[0] - hit["contribution"])))  # the served probability without it
    assert hit["probability_change"] == pytest.approx(p - without, abs=2e-4)
    assert all(0 < s <= 1 for s in out.explained_share)
    json.dumps(out.to_dict("records"), default=int)  # the API's JSON answer carries them as they are


def test_no_zero_entries_and_mostly_missing_wafers_are_warned_of(trained, subset):
    """``f551:+0.000`` and ``-0.000`` had been padded into the list; a wafer with 443 of 444 measurements missing was
    scored from medians without a word (audit)."""
    from models.defect.predict import score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained)
    kept = model.manifest["feature_stats"]["measurements"]
    rows = pd.read_csv(subset).drop(columns=["label"]).head(4)
    rows.loc[[1, 2], kept[1:]] = np.nan  # one measurement left on wafers 2 and 3
    out = score(model, rows, explain=True, top_k=10)
    for text in out.top_measurements:
        assert not re.search(r":[+-]0\.000(;|$)", text), text
    assert len(_entries(out.top_measurements[1])) <= 1
    assert out.measurements_missing.tolist()[1:3] == [len(kept) - 1] * 2
    notes = out.attrs["warnings"]
    assert any(n.startswith(f"2 of 4 wafers had most of their measurements missing, read as the training median "
                            f"(row_id {rows.row_id[1]}: {len(kept) - 1} of {len(kept)}") for n in notes), notes
    one = score(model, rows.iloc[[1]]).attrs["warnings"]
    assert one == [f"wafer row_id {rows.row_id[1]}: {len(kept) - 1} of {len(kept)} measurements were missing and read "
                   "as the training median: its probability rests on the 1 sent"]


def test_a_caller_s_rate_is_read_as_sfai_reads_its_own(trained, subset):
    """``recent_failure_rate: 0`` had been clipped to 1e-4 (every wafer ~0 risk) while a history with no failures in
    its last 50 wafers reads 0.0064: the caller's rate is now shrunk with the same pseudo-count."""
    from models.defect.predict import score

    model = _with_prior(trained, subset)
    drift = model.manifest["drift"]
    history_zero = (0 + D.PSEUDO * drift["prior"]) / (drift["window"] + D.PSEUDO)
    hist = {**drift, "t": [float(i) for i in range(50)], "y": [0] * 50}  # 50 passes before the wafer
    assert D.recent_rate(hist, np.array([100.0]), 1)[0] == pytest.approx(history_zero)
    assert D.shrunk(0.0, drift) == pytest.approx(history_zero) and D.shrunk(1.0, drift) < 1
    rows = pd.read_csv(subset).drop(columns=["label", "timestamp"]).head(5)
    given = score(model, rows, recent_failure_rate=0).defect_probability
    net = score(model, rows.assign(), recent_failure_rate=None)  # the overall rate (no times)
    same = D.combine(drift["coef"], _net(model, rows), np.full(5, history_zero))
    assert given.to_numpy() == pytest.approx(same, abs=1e-6)
    assert (given > 1e-3).all() and (given < net.defect_probability).all()
    detail = score(model, rows, explain=True, recent_failure_rate=0).top_measurement_values[0]
    rate = next(d for d in detail if d["measurement"] == "recent_failure_rate")
    assert rate["sent"] == 0 and rate["value"] == pytest.approx(history_zero, abs=1e-4) and rate["source"] == "given"


def _net(model, rows) -> np.ndarray:  # noqa: ANN001
    z = F.transform(rows, model.manifest["feature_stats"])
    return model.run({"x": z})["y"][:, 0]


def test_records_with_lot_id_are_answered_under_it(trained, subset):
    """The CLI answers a store frame's wafers under ``lot_id``; API records carrying it got 1..n (audit)."""
    from models.defect.predict import records_frame, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained)
    df = pd.read_csv(subset).drop(columns=["label", "row_id"]).head(3)
    records = [{"lot_id": f"secom-{i:04d}", **r} for i, r in enumerate(json.loads(df.to_json(orient="records")), 7)]
    out = score(model, records_frame(records))
    assert out.row_id.tolist() == ["secom-0007", "secom-0008", "secom-0009"]
    both = [{**r, "row_id": n} for n, r in enumerate(records, 1)]  # row_id, where given, is the id
    assert score(model, records_frame(both)).row_id.tolist() == [1, 2, 3]
    twice = [{**r, "row_id": 5} for r in records[:2]]
    notes = score(model, records_frame(twice)).attrs["warnings"]
    assert notes == ["1 record(s) repeat the row_id of an earlier one (the first: '5'): each is answered on its own "
                     "row, in the order sent; match the answers by position, not by row_id"]


def test_input_messages_name_what_is_wrong(trained, subset, tmp_path):
    from models.defect.predict import predict, records_frame, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained)
    kept = model.manifest["feature_stats"]["measurements"]
    rows = pd.read_csv(subset).drop(columns=["label"]).head(4)
    path = tmp_path / "inf.csv"
    rows.astype({kept[0]: object}).assign(**{kept[0]: ["1.0", "2.0", "1e400", "3"]}).to_csv(path, index=False)
    with pytest.raises(InvalidInput, match=f"^column '{kept[0]}' row 3 \\(row_id {rows.row_id[2]}\\) holds an "
                                           "infinite "):
        predict(model, path, "secom")
    rows.drop(columns=kept[:20]).to_csv(path, index=False)
    with pytest.raises(InvalidInput, match=f"^input lacks 20 of the model's {len(kept)} measurement columns "
                                           f"\\({kept[0]}, {kept[1]}, .* and 12 more\\): send them, empty where they "
                                           "were not measured \\(an empty column is accepted"):
        predict(model, path, "secom")
    path.write_text(path.read_text().replace(f",{kept[25]},", f",{kept[24]},", 1))  # a header naming f0xx twice
    with pytest.raises(InvalidInput, match=f"the header names column '{kept[24]}' twice"):
        predict(model, path, "secom")
    records = json.loads(rows.to_json(orient="records"))
    records[0][kept[2].upper()] = records[0].pop(kept[2])
    with pytest.raises(InvalidInput, match=f"; found '{kept[2].upper()}' for '{kept[2]}'\\? field names are "
                                           "case-sensitive$"):
        records_frame(records)
    for bad in (0, 591, 2.5, True, "3"):
        with pytest.raises(InvalidInput, match='"top_k" must be a whole number'):
            score(model, rows, explain=True, top_k=bad)


def test_training_stores_operating_points_and_global_importance(trained, subset):
    from models.defect.predict import threshold_for_recall

    manifest = json.loads((trained / "manifest.json").read_text())
    points = manifest["operating_points"]
    assert points["wafers"] == 2 * 60 and points["failures"] == 2 * 6 and "stratified" in points["source"]
    curve = points["curve"]
    assert [c["threshold"] for c in curve] == sorted((c["threshold"] for c in curve), reverse=True)
    pairs = zip(curve, curve[1:], strict=False)
    assert all(a["recall"] <= b["recall"] and a["flag_rate"] <= b["flag_rate"] for a, b in pairs)
    assert curve[-1]["recall"] == 1.0
    assert points["shipped"]["threshold"] == pytest.approx(manifest["threshold"], rel=1e-5)
    assert manifest["metrics"]["val_flag_rate"] == pytest.approx(points["shipped"]["flag_rate"], abs=1e-4)
    for row in points["table"]:
        assert row["recall"] >= row["recall_target"]
    point = threshold_for_recall(manifest, 0.8)
    assert point["recall"] >= 0.8 and point == max((c for c in curve if c["recall"] >= 0.8),
                                                   key=lambda c: c["threshold"])
    with pytest.raises(InvalidInput, match="recall target must be"):
        threshold_for_recall(manifest, 0)
    with pytest.raises(InvalidInput, match="keeps no validation operating points"):
        threshold_for_recall({}, 0.8)
    importance = manifest["global_importance"]["features"]
    assert [r["rank"] for r in importance] == list(range(1, len(importance) + 1))
    assert importance == sorted(importance, key=lambda r: -r["mean_abs_contribution"])
    weights = dict(zip(manifest["features"], manifest["contribution_weights"], strict=True))
    for r in importance:
        assert r["higher_raises_risk"] == (weights[r["feature"]] > 0)
    assert 0 < sum(r["share"] for r in importance) <= 1.0001


def test_time_ordered_validation_at_training(subset, tmp_path):
    """``--set validation=time`` validates each block of wafers with a fit on the wafers tested before it (the
    stratified splits mix July's wafers into September's); the operating points say which validation made them."""
    from models.defect.train import time_splits, train

    df = F.read_rows(subset)
    y = F.labels(df)
    plan = time_splits(D.stamps(df), y, 2)
    times = D.stamps(df)
    for tr, te in plan:
        assert times[tr].max() <= times[te].min()  # the past trains, the future validates
    assert [len(te) for _, te in plan] == [100, 100] and [len(tr) for tr, _ in plan] == [100, 200]
    with pytest.raises(InvalidInput, match="validation=time orders the wafers by their test time"):
        time_splits(None, y, 2)
    with pytest.raises(InvalidInput, match="config validation='random': expected stratified or time"):
        train(subset, "secom", tmp_path, config={"validation": "random"}, tracker=NoTracker())
    metrics = train(subset, "secom", tmp_path, config={**QUICK, "validation": "time"}, tracker=NoTracker())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    points = manifest["operating_points"]
    assert "2 forward-chaining splits in test-time order" in points["source"] and points["wafers"] == 200
    assert metrics["val_splits"] == 2 and 0 < metrics["val_flag_rate"] < 1


def test_a_wafer_at_the_models_limit_names_its_remainder_saturation(trained, subset):
    """A wafer scored at p = 0.999999 had its log-odds read at the +9.21 limit, and what the contributions add
    beyond it was listed as a large negative "other", an MLP's nonlinearity even for a logistic model (review).
    It is now named ``saturation``; ordinary wafers have none."""
    from models.defect.predict import score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained)
    stats = model.manifest["feature_stats"]
    n = len(stats["measurements"])
    weights = np.asarray(model.manifest["contribution_weights"], float)[:n]
    rows = pd.read_csv(subset).drop(columns=["label"]).head(2)
    for j, name in enumerate(stats["measurements"]):  # every measurement far out, the way that raises the risk
        rows.loc[0, name] = stats["median"][j] + np.sign(weights[j] or 1) * 100 * stats["scale"][j]
    out = score(model, rows, explain=True, top_k=590)
    assert out.defect_probability[0] > 1 - 1e-4
    kinds = {d["kind"]: d for d in out.top_measurement_values[0]}
    assert "other" not in kinds and kinds["saturation"]["direction"] == "at the model's limit"
    assert kinds["saturation"]["contribution"] < 0  # what the contributions add past the limit, taken back
    assert not any(d["kind"] == "saturation" for d in out.top_measurement_values[1])
