"""Benchmark the maintenance models with their shipped configs: validation metrics and training time.

    .venv/bin/python benchmarks/maintenance_models.py                 # ai4i + all four C-MAPSS subsets
    .venv/bin/python benchmarks/maintenance_models.py --only ai4i FD001 --repeats 3
    .venv/bin/python benchmarks/maintenance_models.py --only FD001 FD002 FD003 FD004   # the RUL rows

failure: repeated stratified 80/20 splits of ai4i2020_train.csv; the model (with its own K-fold threshold)
trains on the 80 % and is scored by the ONNX predict path on the untouched 20 %: ROC AUC, AP, F1 at the
shipped threshold, mean ± sd.
rul: ``sfai train``'s ensemble on the full training file; each fold's members (one per learning rate, trained
without that fold) are averaged and scored on the held-out fifth of the engines, truncated at random cycles like
NASA's test files (RMSE vs the true, uncapped RUL, vs the truth capped like the training target, and the PHM08
score, per engine and scaled to the official test set's engine count); mean ± sd over the five folds. Members
train a fixed schedule, so nothing is selected on the cuts they are scored on; the shipped average of all the
members is usually a little better than the fold mean reported here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path, and benchmarks/pipelines.py and serving.py would hide
# the packages of those names
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np
import pandas as pd

from models.failure import features as FF
from models.failure import predict as FP
from models.failure import train as FT
from models.metrics import average_precision, f1_at, roc_auc
from models.rul import data as RD
from models.rul import train as RT
from models.tracking import Tracker
from serving.runtime import OnnxModel

SHARED = Path(os.environ.get("SFAI_SHARED", Path(__file__).resolve().parents[1].parent / "shared")) / "datasets"
TEST_ENGINES = {"FD001": 100, "FD002": 259, "FD003": 100, "FD004": 248}
BARS = {"FD001": 11.5, "FD002": 14.0, "FD003": 11.5, "FD004": 16.0}


def bench_failure(repeats: int) -> dict:
    df = pd.read_csv(SHARED / "ai4i2020" / "ai4i2020_train.csv")
    rows, times = [], []
    for r in range(repeats):
        fold = FT.stratified_folds(df["Machine failure"].to_numpy(), 5, seed=1000 + r)
        tr, te = df[fold != 0], df[fold == 0]
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "train.csv"
            tr.to_csv(p, index=False)
            t0 = time.perf_counter()
            FT.train(p, "ai4i", Path(d) / "m", config={}, tracker=Tracker(None, "b", enabled=False))
            times.append(time.perf_counter() - t0)
            model = OnnxModel(Path(d) / "m")
            out = FP.score(model, te.drop(columns=FF.LABELS))
        y, p_ = te["Machine failure"].to_numpy(), out["failure_probability"].to_numpy()
        rows.append((roc_auc(y, p_), average_precision(y, p_), f1_at(y, p_, model.manifest["threshold"])))
        print(f"  split {r}: AUC {rows[-1][0]:.4f} AP {rows[-1][1]:.4f} F1 {rows[-1][2]:.4f} ({times[-1]:.0f} s)")
    a = np.asarray(rows)
    return {"auc": a[:, 0], "ap": a[:, 1], "f1": a[:, 2], "seconds": np.asarray(times)}


def bench_rul(subset: str) -> dict:
    df = RD.read_cmapss(SHARED / "cmapss" / f"train_{subset}.txt")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        p = SHARED / "cmapss" / f"train_{subset}.txt"
        metrics = RT.train(p, "cmapss", Path(d) / "m", config={}, tracker=Tracker(None, "b", enabled=False))
    metrics["seconds"] = time.perf_counter() - t0
    metrics["engines"] = df["unit"].nunique()
    print(
        f"  {subset}: val RMSE {metrics['val_rmse']:.2f} ± {metrics['val_rmse_sd']:.2f}, capped truth "
        f"{metrics['val_rmse_capped_truth']:.2f}, NASA score {metrics['val_nasa_per_engine']:.2f}/engine, "
        f"{metrics['members']} members in {metrics['folds']} folds x {metrics['val_epochs_mean']:.0f} epochs, "
        f"{metrics['seconds']:.0f} s"
    )
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", default=["ai4i", "FD001", "FD002", "FD003", "FD004"])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    lines = []
    if "ai4i" in args.only:
        print("failure (ai4i):")
        f = bench_failure(args.repeats)
        lines.append(
            f"| failure | ai4i ({args.repeats} stratified 80/20 splits) | ROC AUC {f['auc'].mean():.4f} ± "
            f"{f['auc'].std():.4f}; AP {f['ap'].mean():.4f} ± {f['ap'].std():.4f}; F1 {f['f1'].mean():.4f} ± "
            f"{f['f1'].std():.4f} | AUC ≥ 0.99, F1 ≥ 0.85 | {f['seconds'].mean():.0f} s (on 80 %) |"
        )
    for subset in [s for s in args.only if s.startswith("FD")]:
        print(f"rul ({subset}):")
        m = bench_rul(subset)
        score = m["val_nasa_per_engine"] * TEST_ENGINES[subset]
        lines.append(
            f"| rul-{subset.lower()} | {subset} ({m['engines']} engines, {m['members']} members, {m['folds']} folds) "
            f"| RMSE "
            f"{m['val_rmse']:.2f} ± {m['val_rmse_sd']:.2f} (capped truth {m['val_rmse_capped_truth']:.2f}); NASA "
            f"score {m['val_nasa_per_engine']:.2f}/engine ≈ {score:.0f} per {TEST_ENGINES[subset]} | RMSE ≤ "
            f"{BARS[subset]} | {m['seconds']:.0f} s |"
        )
        print("  " + lines[-1])
    print("\n| model | data | validation | bar | training time |\n|---|---|---|---|---|")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
