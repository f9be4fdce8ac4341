"""The quality module's explanations and operating points at the CLI, the batch scorer and the API
(process-engineer audit, 2026-12): ``sfai predict defect --explain/--top-k/--recall-target``, a file's warnings once
with its totals, ``sfai models show``, warnings at ``sfai models promote``, and over HTTP: lot_id as the id,
``top_k``, the case hint, repeated ids, big batches without explanations, a rate the model does not use, and the
status's operating points and global importance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.defect import drift as D
from models.defect import features as F
from models.registry import ModelRegistry
from serving import tenancy
from serving.batch import score_file
from tests.datasets import NoTracker
from tests.models import test_defect_explain
from tests.serving import test_cli_platform_inputs
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
subset = test_defect_explain.subset  # fixtures shared with those tests
sfai = test_cli_platform_inputs.sfai
URL = "/v1/quality/defect/predict"


@pytest.fixture(scope="module")
def trained(subset, tmp_path_factory) -> Path:
    """A quick model with validation (so with operating points) and, written into its manifest, a drift prior."""
    from models.defect.train import train

    out = tmp_path_factory.mktemp("defect-model")
    train(subset, "secom", out, config={"n_splits": 2, "epochs": 15, "patience": 15}, tracker=NoTracker())
    return out


def _copy(model_dir: Path, dest: Path, *, prior: bool, subset: Path | None = None) -> Path:
    shutil.copytree(model_dir, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest.pop("drift", None)
    if prior:
        df = pd.read_csv(subset)
        manifest["drift"] = {**D.history(D.stamps(df), F.labels(df), 50), "coef": [0.8, 0.9, -0.2]}
    (dest / "manifest.json").write_text(json.dumps(manifest))
    return dest


def test_cli_predict_explains_after_the_contract_columns(sfai, db, settings, trained, subset, tmp_path):
    """``sfai predict defect`` could not explain (audit): ``--explain`` (and ``--top-k``) add columns after the
    contract's, which stay exact without it; ``--recall-target`` picks the validation threshold for a recall."""
    from models.defect.predict import EXPLAIN_COLUMNS, threshold_for_recall

    tenancy.ensure_tenant(db, settings.default_tenant, "C26")
    reg = ModelRegistry(db, settings.home, settings.default_tenant)
    reg.register("defect", "quality", _copy(trained, tmp_path / "m", prior=True, subset=subset))
    rows = tmp_path / "rows.csv"
    pd.read_csv(subset).drop(columns=["label"]).iloc[150:162].to_csv(rows, index=False)  # with a recent history
    base = ["predict", "defect", "--dataset", "secom", "--input", str(rows)]
    rc, out, err = sfai(*base, "--output", str(tmp_path / "plain.csv"))
    assert rc == 0, err
    plain = pd.read_csv(tmp_path / "plain.csv")
    assert plain.columns.tolist() == ["row_id", "defect_probability", "defect_predicted"]
    rc, out, err = sfai(*base, "--output", str(tmp_path / "x.csv"), "--explain", "--top-k", "2")
    assert rc == 0, err
    got = pd.read_csv(tmp_path / "x.csv")
    assert got.columns.tolist() == ["row_id", "defect_probability", "defect_predicted", *EXPLAIN_COLUMNS]
    pd.testing.assert_frame_equal(got[plain.columns], plain)
    for text, values in zip(got.top_measurements, got.top_measurement_values, strict=True):
        entries = json.loads(values)
        assert [f"{d['measurement'] if d['kind'] != 'missing_indicator' else d['measurement'] + '_missing'}:"
                f"{d['contribution']:+.3f}" for d in entries] == text.split(";")
        assert sum(d["kind"] == "measurement" for d in entries) <= 2 and "recent_failure_rate" in text
    rc, out, err = sfai(*base, "--output", str(tmp_path / "r.csv"), "--recall-target", "0.8")
    assert rc == 0, err
    point = threshold_for_recall(reg.get("defect").manifest, 0.8)
    assert f"note: recall target 0.8: threshold {point['threshold']:.6g}; in validation it flagged" in err
    flagged = pd.read_csv(tmp_path / "r.csv")
    assert (flagged.defect_predicted == (flagged.defect_probability >= point["threshold"] - 1e-6)).all()
    rc, out, err = sfai(*base, "--output", str(tmp_path / "bad.csv"), "--top-k", "3")
    assert rc != 0 and "--top-k sets how many measurements --explain lists" in err
    rc, out, err = sfai(*base, "--output", str(tmp_path / "bad.csv"), "--recall-target", "0.8", "--threshold", "0.1")
    assert rc != 0 and "not both" in err


def test_a_file_s_warnings_are_given_once_with_its_totals(trained, subset, tmp_path):
    """Chunk by chunk a 106,680-wafer file had said "38536 of 100000 wafers ..." then "2624 of 6680 ..."."""
    model = _copy(trained, tmp_path / "m", prior=True, subset=subset)
    df = pd.read_csv(subset).drop(columns=["label"])
    later = (pd.to_datetime(df.timestamp, dayfirst=True).max() + pd.Timedelta(days=30)).strftime("%d/%m/%Y %H:%M:%S")
    df.loc[df.index[:70], "timestamp"] = later  # 70 late wafers over three chunks
    path = tmp_path / "rows.csv"
    df.to_csv(path, index=False)
    rep = score_file("defect", model, path, "secom", tmp_path / "out.csv", chunk_rows=30, use_ray=False)
    assert rep["chunks"] == 10
    stale = [w for w in rep["warnings"] if "days after the training file's last wafer" in w]
    assert len(stale) == 1 and stale[0].startswith("70 of 300 wafers were tested more than 7 days"), rep["warnings"]
    got = pd.read_csv(tmp_path / "out.csv")
    assert got.columns.tolist() == ["row_id", "defect_probability", "defect_predicted"]


def test_models_show_and_promote_warnings(sfai, db, settings, trained, subset, tmp_path):
    """Promoting a model without the drift prior had silently broken MES callers that send recent_failure_rate;
    ``sfai models show`` gives the operating points and the global importance."""
    tenancy.ensure_tenant(db, settings.default_tenant, "C26")
    reg = ModelRegistry(db, settings.home, settings.default_tenant)
    reg.register("defect", "quality", _copy(trained, tmp_path / "v1", prior=True, subset=subset))
    quick = _copy(trained, tmp_path / "v2", prior=False)
    manifest = json.loads((quick / "manifest.json").read_text())
    manifest["metrics"] = {k: v for k, v in manifest["metrics"].items() if not k.startswith("val_")}
    manifest.pop("operating_points")
    (quick / "manifest.json").write_text(json.dumps(manifest))
    reg.register("defect", "quality", quick, metrics=manifest["metrics"])
    rc, out, err = sfai("models", "show", "defect")
    assert rc == 0, err
    assert "operating points (pooled held-out probabilities of 2 stratified 80%/20% splits" in out
    assert "THRESHOLD\tRECALL\tPRECISION\tFLAGGED" in out and "<- shipped threshold" in out
    assert "global importance (served log-odds" in out and "raise the risk" in out
    assert "--recall-target 0.8 flags at the highest threshold" in out
    rc, out, err = sfai("models", "show", "defect", "--json")
    card = json.loads(out)
    assert card["operating_points"]["table"] and "curve" not in card["operating_points"]
    assert len(card["global_importance"]["features"]) == 15 and card["drift_prior"].startswith("used")
    rc, out, err = sfai("models", "promote", "defect", "--version", "2")
    assert rc == 0 and out.strip() == "defect\t2", err
    assert ("warning: defect version 2 does not use the line's recent failure rate (version 1 had it): callers that "
            "send recent_failure_rate are answered from the measurements alone") in err
    assert "warning: defect version 2 was trained without validation (n_splits=0)" in err
    rc, out, err = sfai("models", "show", "defect")
    assert "operating points: none" in out and "recent failure rate (drift prior): not used" in out


def _records(subset: Path, n: int, drop=("label",)) -> list[dict]:  # noqa: ANN001
    """``n`` wafers from the 151st (wafers with training wafers before them: their recent rate is their own)."""
    df = pd.read_csv(subset).drop(columns=list(drop)).iloc[150:]
    df = pd.concat([df] * (n // len(df) + 1)).head(n)
    return json.loads(df.to_json(orient="records"))


def test_the_api_explains_on_the_served_scale_and_says_what_it_left_out(client, db, settings, trained, subset,
                                                                        tmp_path):
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    h = bearer(acme.mes)
    reg = ModelRegistry(db, settings.home, "acme")
    reg.register("defect", "quality", _copy(trained, tmp_path / "m", prior=True, subset=subset))
    records = _records(subset, 3, drop=("label", "row_id"))
    lots = [{"lot_id": f"secom-{i:04d}", **r} for i, r in enumerate(records, 1)]
    r = client.post(URL, json={"records": lots, "top_k": 2}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [p["row_id"] for p in body["predictions"]] == ["secom-0001", "secom-0002", "secom-0003"]
    first = body["predictions"][0]
    assert {"defect_logit", "baseline_logit", "baseline_probability", "median_wafer_probability", "explained_share",
            "measurements_missing"} <= set(first)
    assert sum(d["kind"] == "measurement" for d in first["top_measurement_values"]) <= 2
    assert any(d["measurement"] == "recent_failure_rate" for d in first["top_measurement_values"])
    q = client.post(f"{URL}?top_k=1", json={"records": lots}, headers=h).json()["predictions"][0]
    assert sum(d["kind"] == "measurement" for d in q["top_measurement_values"]) <= 1
    r = client.post(URL, json={"records": lots, "top_k": 0}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["message"].startswith('"top_k" must be a whole number')
    # repeated ids get a note, as the CLI's
    twice = [{**rec, "row_id": 7} for rec in records[:2]]
    warnings = client.post(URL, json={"records": twice}, headers=h).json()["warnings"]
    assert any("repeat the row_id of an earlier one" in w for w in warnings), warnings
    # F060 for f060: the hint, as the file's
    kept = reg.get("defect").manifest["feature_stats"]["measurements"]
    upper = [dict(rec) for rec in records]
    upper[0][kept[0].upper()] = upper[0].pop(kept[0])
    r = client.post(URL, json={"records": upper}, headers=h)
    assert r.status_code == 422 and f"found '{kept[0].upper()}' for '{kept[0]}'? field names are case-sensitive" in \
        r.json()["error"]["message"]
    # over 1,000 records: no explanations unless asked, said in the answer
    big = _records(subset, 1001)
    body = client.post(URL, json={"records": big}, headers=h).json()
    assert "top_measurements" not in body["predictions"][0]
    assert any(w.startswith("no top_measurements: a batch of 1001 records is explained only when asked") for w in
               body["warnings"]), body["warnings"]
    from models.defect.predict import API_EXPLAIN_LIMIT
    from serving.predictions import EXPLAIN_BY_DEFAULT

    assert API_EXPLAIN_LIMIT == EXPLAIN_BY_DEFAULT  # the warning's figure is the API's
    body = client.post(URL, json={"records": big, "explain": False}, headers=h).json()
    assert not any("no top_measurements" in w for w in body["warnings"])
    # the OpenAPI says what the numbers are
    schema = json.dumps(client.get("/openapi.json").json()["paths"][URL])
    assert "log-odds" in schema and "top_k" in schema and "baseline_logit" in schema


def test_a_rate_the_model_does_not_use_is_ignored_with_a_warning(client, db, settings, trained, subset, tmp_path):
    """A champion without the drift prior (trained with n_splits=0) had answered 422 to every MES call that sends
    recent_failure_rate: it now answers from the measurements alone and says the rate was ignored."""
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    h = bearer(acme.mes)
    ModelRegistry(db, settings.home, "acme").register("defect", "quality", _copy(trained, tmp_path / "m",
                                                                                 prior=False))
    records = _records(subset, 2)
    plain = client.post(URL, json={"records": records}, headers=h).json()
    r = client.post(URL, json={"records": records, "recent_failure_rate": 0.2}, headers=h)
    assert r.status_code == 200, r.text
    assert [p["defect_probability"] for p in r.json()["predictions"]] == [p["defect_probability"] for p in
                                                                          plain["predictions"]]
    assert r.json()["warnings"][0].startswith("recent_failure_rate 0.2 was ignored")
    r = client.post(URL, json={"records": records, "recent_failure_rate": 1.5}, headers=h)
    assert r.status_code == 422 and "recent_failure_rate must be a share" in r.text


def test_the_quality_status_gives_operating_points_and_global_importance(client, db, settings, trained, subset,
                                                                         tmp_path):
    acme = make_tenant(db, PEPPER, "acme", modules=("quality",))
    h = bearer(acme.mes)
    ModelRegistry(db, settings.home, "acme").register("defect", "quality", _copy(trained, tmp_path / "m", prior=True,
                                                                                 subset=subset))
    r = client.get("/v1/quality/status", headers=h)
    assert r.status_code == 200, r.text
    (entry,) = r.json()["models"]
    assert (entry["name"], entry["version"], entry["uses_recent_failure_rate"]) == ("defect", 1, True)
    points = entry["operating_points"]
    assert points["shipped"]["threshold"] == pytest.approx(entry["threshold"]) and points["table"]
    assert "curve" not in points
    importance = entry["global_importance"]["features"]
    assert len(importance) == 10 and importance[0]["rank"] == 1 and "mean_abs_contribution" in importance[0]
    assert np.isclose(sum(f["share"] for f in importance), sum(f["share"] for f in importance))
    assert client.get("/v1/maintenance/status", headers=h).status_code == 403  # the shared route's check still holds
