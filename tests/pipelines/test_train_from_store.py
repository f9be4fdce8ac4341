"""From the feature store to a model: a point-in-time frame of the AI4I views, written to a file, trains and scores
as it is. The store names its columns ``air_temp_k`` ... ``machine_failure``, and training had asked for
``'Machine failure'`` (data scientist's audit), and ``sfai predict`` numbered the rows 1..n instead of their ``udi``."""

from __future__ import annotations

import duckdb
import pandas as pd

from models.failure.train import train
from serving.batch import score_file
from tests.datasets import need


def test_a_training_frame_from_the_store_trains_and_scores_by_its_own_names(store, tmp_path):
    from pipelines.runner import run_pipeline

    src = tmp_path / "ai4i.csv"
    pd.read_csv(need("ai4i2020/ai4i2020_train.csv")).head(1500).to_csv(src, index=False)
    run_pipeline("ai4i", src, store=store)
    files = store.offline.files("acme", "ai4i_labels")
    labels = duckdb.sql(f"SELECT lot_id, event_timestamp, machine_failure, twf, hdf, pwf, osf, rnf "
                        f"FROM read_parquet({files})").df()
    frame = store.get_training_frame(labels, ["ai4i_features:*"])
    assert {"machine_failure", "air_temp_k", "udi"} <= set(frame.columns) and "Machine failure" not in frame.columns
    path = tmp_path / "train.csv"
    frame.to_csv(path, index=False)
    metrics = train(path, "ai4i", tmp_path / "model", config={"folds": 2, "epochs": 2}, tracker=None)
    assert metrics["val_roc_auc"] > 0.8
    out = tmp_path / "scored.csv"
    score_file("failure", tmp_path / "model", path, "ai4i", out, use_ray=False)
    scored = pd.read_csv(out)
    assert scored["UDI"].tolist() == frame["udi"].tolist()  # the rows' own ids, not 1..n
