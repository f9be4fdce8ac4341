"""Train the failure model: K-fold MLP ensemble, threshold from out-of-fold scores, ONNX export.

``train(input_path, dataset, out_dir, *, config, tracker) -> metrics`` is the family contract
(``models/families.py``); ``train_and_score`` and ``SEARCH_SPACE`` serve ``models/tune.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.config import RULES
from models.export import data_hash, export
from models.failure import features as F
from models.failure.config import FailureConfig
from models.failure.module import Ensemble, FailureMLP
from models.metrics import average_precision, calibration_bins, f1_at, f1_threshold, roc_auc
from models.tracking import tracker_or_off
from models.training import TrainConfig, fit, make_loader, predict_batches, seed_everything
from serving.errors import InvalidInput

# Ray Tune search space as plain data (models/tune.py turns it into ray.tune samplers).
SEARCH_SPACE = {
    "hidden": ("choice", [32, 64, 128]),
    "dropout": ("uniform", 0.0, 0.3),
    "pos_weight": ("choice", [1.0, 3.0, 10.0]),
    "mode_weight": ("uniform", 0.0, 1.0),
    "lr": ("loguniform", 1e-3, 1e-2),
}


@dataclass
class Fitted:
    model: Ensemble
    scaler: dict
    threshold: float
    oof: np.ndarray  # out-of-fold failure probabilities, one per training row
    metrics: dict
    histories: list[list[dict]] = field(default_factory=list)


def targets(df: pd.DataFrame) -> np.ndarray:
    if F.LABEL not in df.columns:
        raise InvalidInput(f"training needs the label column {F.LABEL!r}")
    y = pd.to_numeric(df[F.LABEL], errors="coerce")
    if y.isna().any() or not y.isin([0, 1]).all():
        raise InvalidInput(f"column {F.LABEL!r} must hold 0 or 1")
    cols = [y.to_numpy(float)]
    for m in F.MODES:  # a mode column that is absent is masked out of the loss
        cols.append(
            pd.to_numeric(df[m], errors="coerce").to_numpy(float) if m in df.columns else np.full(len(df), np.nan)
        )
    return np.stack(cols, axis=1).astype(np.float32)


def trained_modes(y: np.ndarray, cfg: FailureConfig) -> list[str]:
    """The failure modes whose heads learned anything: a mode column with at least one label (an absent or empty
    one is masked out of the loss), and none when the modes carry no weight in the loss. Prediction names a
    likely mode only among these: an untrained head's output is noise."""
    if cfg.mode_weight <= 0:
        return []
    return [m for j, m in enumerate(F.MODES, start=1) if np.isfinite(y[:, j]).any()]


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold index per row, each class spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        fold[idx] = np.arange(len(idx)) % k
    return fold


def fit_ensemble(df: pd.DataFrame, cfg: FailureConfig, tracker=None) -> Fitted:  # noqa: ANN001
    raw = F.validate(df)
    feats = F.engineer(raw)
    y = targets(df)
    scaler = F.fit_scaler(feats)
    x = F.transform(feats, scaler)
    folds = stratified_folds(y[:, 0], cfg.folds, cfg.seed)
    oof = np.zeros(len(x), dtype=np.float64)
    members, histories = [], []
    for k in range(cfg.folds):
        tr, va = folds != k, folds == k
        tcfg = TrainConfig(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            patience=cfg.patience,
            seed=cfg.seed * 100 + k,
            threads=cfg.threads,
            progress=True,
        )
        seed_everything(tcfg.seed, cfg.threads)
        model = FailureMLP(x.shape[1], cfg)

        def log(row: dict, k: int = k) -> None:
            if tracker is not None:
                tracker.log_metrics({f"fold{k}_{n}": v for n, v in row.items() if n != "epoch"}, step=row["epoch"])

        res = fit(
            model,
            make_loader(x[tr], y[tr], batch_size=cfg.batch_size, shuffle=True, seed=tcfg.seed),
            make_loader(x[va], y[va], batch_size=4096, shuffle=False),
            tcfg,
            on_epoch=log,
            label=f"failure fold {k + 1}/{cfg.folds}",
        )
        oof[va] = predict_batches(model, x[va])[:, 0]
        members.append(model)
        histories.append(res.history)
    threshold, _ = f1_threshold(y[:, 0], oof)
    metrics = {
        "val_roc_auc": roc_auc(y[:, 0], oof),
        "val_average_precision": average_precision(y[:, 0], oof),
        "val_f1": f1_at(y[:, 0], oof, threshold),
        "threshold": threshold,
        "val_epochs_mean": float(np.mean([len(h) for h in histories])),
    }
    return Fitted(Ensemble(members).eval(), scaler, threshold, oof, metrics, histories)


ROWS_PER_FOLD = 10  # a training file needs this many rows per fold (``folds``)
MIN_FOLDS = int(RULES["failure"]["folds"].lo)  # the fewest folds ``--set folds=`` takes


def check_rows(input_path: Path, df: pd.DataFrame, cfg: FailureConfig) -> np.ndarray:
    """The file's targets (``targets``), refusing a training file the folds cannot learn from: too few rows, or too
    few failures or rows without (a file without failures trained a model of no use, AUC undefined and F1 0, and
    registered it as challenger)."""
    if len(df) < ROWS_PER_FOLD * cfg.folds:
        fit = len(df) // ROWS_PER_FOLD  # the most folds these rows fill
        fewer = (f", or train with fewer folds (--set folds={fit} needs {ROWS_PER_FOLD * fit} rows)" if fit >= MIN_FOLDS
                 else f" (the fewest folds, --set folds={MIN_FOLDS}, need {ROWS_PER_FOLD * MIN_FOLDS} rows)")
        raise InvalidInput(f"{Path(input_path).name}: too few rows to train ({len(df):,}): {cfg.folds} folds need "
                           f"at least {ROWS_PER_FOLD * cfg.folds:,} ({ROWS_PER_FOLD} per fold); add rows{fewer}")
    labels = targets(df)
    y = labels[:, 0]
    fails, fine = int(y.sum()), int(len(y) - y.sum())
    need = max(2, cfg.folds)
    if fails < need or fine < need:
        raise InvalidInput(f"{Path(input_path).name}: {fails:,} of {len(df):,} rows are machine failures "
                           f"({F.LABEL!r} = 1); training needs at least {need} failures and {need} rows without "
                           "(each validation fold holds both)")
    return labels


def preflight(input_path: Path, config: dict) -> None:
    """What ``sfai tune`` checks before Ray starts (``models.tune``): the file as ``train`` would refuse it."""
    check_rows(input_path, F.read_rows(input_path), FailureConfig.from_dict(config))


def train_and_score(input_path: Path, dataset: str, config: dict) -> float:
    """Out-of-fold score for tuning, lower is better: 1 - average precision."""
    cfg = FailureConfig.from_dict(config)
    df = F.read_rows(input_path)
    check_rows(input_path, df, cfg)
    fitted = fit_ensemble(df, cfg)
    return 1.0 - fitted.metrics["val_average_precision"]


def train(
    input_path: Path, dataset: str, out_dir: Path, *, config: dict | None = None, tracker=None  # noqa: ANN001
) -> dict:
    """Train on ``input_path``, write ``out_dir/model.onnx`` + ``manifest.json``, return the validation metrics.
    ``config``: overrides of the shipped config (``--set``); ``tracker``: a ``models.tracking.Tracker``, or None
    to log nothing (the Python API; ``sfai train --no-track``)."""
    tracker = tracker_or_off(tracker)
    config = dict(config or {})
    cfg = FailureConfig.from_dict(config)
    df = F.read_rows(input_path)
    labels = check_rows(input_path, df, cfg)
    y = labels[:, 0]
    torch.set_num_threads(cfg.threads)
    dhash = data_hash(df)
    tracker.log_params({**cfg.to_dict(), "data_hash": dhash, "rows": len(df), "features": len(F.FEATURES)})
    fitted = fit_ensemble(df, cfg, tracker)
    sample = F.transform(F.engineer(F.validate(df.iloc[:64])), fitted.scaler)
    manifest = export(
        fitted.model,
        sample,
        Path(out_dir),
        {
            "name": "failure",
            "family": "failure",
            "dataset": dataset,
            "raw_columns": F.RAW,
            "features": F.FEATURES,
            "normalisation": fitted.scaler,
            "threshold": fitted.threshold,
            "outputs_meaning": ["failure", *F.MODES],
            "trained_modes": trained_modes(labels, cfg),  # the heads failure_mode may name (predict.py)
            "explain_baseline": {c: float(v) for c, v in F.validate(df)[F.NUMERIC].median().items()},
            "config": cfg.to_dict(),
            "data_hash": dhash,
            "metrics": fitted.metrics,
        },
    )
    tracker.log_curves(fitted.histories[0], title=f"fold 0 of {len(fitted.histories)} (all: fold<N>_* metrics)")
    tracker.log_dict({"metrics": fitted.metrics, "parity_max_abs": manifest["parity_max_abs"]}, "validation.json")
    tracker.log_calibration(calibration_bins(y, fitted.oof), "failure")
    return {**fitted.metrics, "parity_max_abs": manifest["parity_max_abs"]}
