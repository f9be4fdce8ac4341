"""Train the RUL model on a C-MAPSS training file: an ensemble of sequence models, each validated on a
different fifth of the engines truncated at random cycles (like NASA's test files), exported to ONNX.

``train(input_path, dataset, out_dir, *, config, tracker) -> metrics`` is the family contract;
``train_and_score`` and ``SEARCH_SPACE`` serve ``models/tune.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.export import data_hash, export
from models.rul import data as D
from models.rul.config import RulConfig
from models.rul.metrics import nasa_score, rmse
from models.rul.module import Ensemble, build
from models.training import TrainConfig, fit, make_loader, predict_batches, seed_everything
from serving.errors import InvalidInput

SEARCH_SPACE = {
    "arch": ("choice", ["dcnn", "cnn", "gru"]),
    "channels": ("choice", [10, 32]),
    "smooth": ("uniform", 0.0, 0.5),
    "window": ("choice", [30, 40]),
    "dropout": ("uniform", 0.0, 0.5),
    "lr": ("loguniform", 5e-4, 5e-3),
}
MAX_TEST_RUL = 150  # validation truncation: true RUL drawn up to this (NASA's test files reach ~145-195)
MIN_OBSERVED = 20  # and at least this many cycles observed (the shortest NASA test units have 19-31)


@dataclass
class Fitted:
    model: Ensemble
    prep: dict
    metrics: dict
    histories: list[list[dict]] = field(default_factory=list)
    residuals: tuple[np.ndarray, np.ndarray] | None = None  # (true, predicted) on held-out truncations


def training_windows(per_unit: dict[int, np.ndarray], units, cfg: RulConfig) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for u in units:
        x = per_unit[u]
        xs.append(D.unit_windows(x, cfg.window))
        ys.append(np.minimum(np.arange(len(x))[::-1], cfg.cap) / cfg.cap)
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.float32)


def truncated_windows(per_unit: dict[int, np.ndarray], units, cfg: RulConfig, seed: int):
    """Each held-out engine cut ``val_cuts`` times at random; the window at the cut and its true RUL."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for u in units:
        x = per_unit[u]
        hi = min(MAX_TEST_RUL, len(x) - MIN_OBSERVED)
        for rul in rng.integers(0, max(hi, 0) + 1, size=cfg.val_cuts):
            xs.append(D.unit_windows(x[: len(x) - rul][-cfg.window :], cfg.window)[-1])
            ys.append(float(rul))
    return np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.float32)


def engine_folds(units: np.ndarray, cfg: RulConfig) -> list[np.ndarray]:
    k = max(2, round(1 / cfg.val_fraction))
    perm = np.random.default_rng(cfg.seed).permutation(units)
    return [perm[i::k] for i in range(k)]


def fit_ensemble(df: pd.DataFrame, cfg: RulConfig, tracker=None) -> Fitted:  # noqa: ANN001
    t_start = time.perf_counter()
    prep = D.fit_prep(df, window=cfg.window, cap=cfg.cap, use_cycle=cfg.use_cycle, seed=cfg.seed, smooth=cfg.smooth)
    per_unit = D.split_units(df, D.features(df, prep))
    units = np.asarray(sorted(per_unit))
    folds = engine_folds(units, cfg)
    members, histories, rows, true_all, pred_all = [], [], [], [], []
    for m in range(min(cfg.members, len(folds))):
        elapsed = time.perf_counter() - t_start
        if m and elapsed / m * (m + 1) > cfg.max_seconds:
            break  # another member would overrun the training budget
        val_units = set(folds[m].tolist())
        tr_units = [u for u in units if u not in val_units]
        x_tr, y_tr = training_windows(per_unit, tr_units, cfg)
        x_va, rul_va = truncated_windows(per_unit, sorted(val_units), cfg, cfg.seed * 100 + m)
        y_va = np.minimum(rul_va, cfg.cap) / cfg.cap
        tcfg = TrainConfig(
            epochs=cfg.epochs,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            patience=cfg.patience,
            seed=cfg.seed * 100 + m,
            threads=cfg.threads,
        )
        seed_everything(tcfg.seed, cfg.threads)
        model = build(x_tr.shape[2], cfg)

        def val_rmse(model: torch.nn.Module, x_va: np.ndarray = x_va, rul_va: np.ndarray = rul_va) -> float:
            return rmse(predict_batches(model, x_va), rul_va)

        def log(row: dict, m: int = m) -> None:
            if tracker is not None:
                tracker.log_metrics({f"member{m}_{k}": v for k, v in row.items() if k != "epoch"}, step=row["epoch"])

        res = fit(
            model,
            make_loader(x_tr, y_tr, batch_size=cfg.batch_size, shuffle=True, seed=tcfg.seed),
            make_loader(x_va, y_va, batch_size=4096, shuffle=False),
            tcfg,
            score=val_rmse,
            on_epoch=log,
            label=f"rul member {m + 1}/{cfg.members}",
        )
        pred = predict_batches(model, x_va)
        rows.append(
            {
                "rmse": rmse(pred, rul_va),
                "rmse_capped_truth": rmse(pred, np.minimum(rul_va, cfg.cap)),
                "nasa_per_engine": nasa_score(pred, rul_va) / len(rul_va),
                "epochs": len(res.history),
                "seconds": res.seconds,
            }
        )
        members.append(model)
        histories.append(res.history)
        true_all.append(rul_va)
        pred_all.append(pred)
        del x_tr, y_tr
    metrics = {
        f"val_{k}": float(np.mean([r[k] for r in rows])) for k in ("rmse", "rmse_capped_truth", "nasa_per_engine")
    }
    metrics["val_rmse_sd"] = float(np.std([r["rmse"] for r in rows]))
    metrics["members"] = len(members)
    metrics["val_epochs_mean"] = float(np.mean([r["epochs"] for r in rows]))
    residuals = (np.concatenate(true_all), np.concatenate(pred_all))
    return Fitted(Ensemble(members).eval(), prep, metrics, histories, residuals)


def read_training(input_path: Path) -> pd.DataFrame:
    df = D.read_cmapss(input_path)
    if df["unit"].nunique() < 5:
        raise InvalidInput(f"{Path(input_path).name}: need at least 5 engines to train and validate")
    return df


def train_and_score(input_path: Path, dataset: str, config: dict) -> float:
    """Validation RMSE (held-out engines, one member) for tuning; lower is better."""
    cfg = RulConfig.from_dict({"members": 1, **config})
    return fit_ensemble(read_training(input_path), cfg).metrics["val_rmse"]


def _residual_figure(true: np.ndarray, pred: np.ndarray):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true, pred, s=6, alpha=0.5)
    hi = float(max(true.max(), pred.max()))
    ax.plot([0, hi], [0, hi], "k--", lw=1)
    ax.set_xlabel("true RUL (held-out engines, truncated)")
    ax.set_ylabel("predicted RUL")
    fig.tight_layout()
    return fig


def train(input_path: Path, dataset: str, out_dir: Path, *, config: dict, tracker) -> dict:  # noqa: ANN001
    cfg = RulConfig.from_dict(config)
    df = read_training(input_path)
    torch.set_num_threads(cfg.threads)
    dhash = data_hash(df)
    tracker.log_params({**cfg.to_dict(), "data_hash": dhash, "rows": len(df), "engines": df["unit"].nunique()})
    fitted = fit_ensemble(df, cfg, tracker)
    _, sample = D.last_windows(df[df["unit"].isin(df["unit"].unique()[:16])], fitted.prep)
    manifest = export(
        fitted.model,
        sample,
        Path(out_dir),
        {
            "name": "rul",
            "family": "rul",
            "dataset": dataset,
            "source_file": Path(input_path).name,
            "features": fitted.prep["features"],
            "prep": fitted.prep,
            "config": cfg.to_dict(),
            "data_hash": dhash,
            "metrics": fitted.metrics,
        },
    )
    tracker.log_curves(fitted.histories[0])
    tracker.log_dict({"metrics": fitted.metrics, "parity_max_abs": manifest["parity_max_abs"]}, "validation.json")
    if getattr(tracker, "enabled", False) and fitted.residuals is not None:
        import matplotlib.pyplot as plt

        fig = _residual_figure(*fitted.residuals)
        tracker.log_figure(fig, "residuals.png")
        plt.close(fig)
    return {**fitted.metrics, "parity_max_abs": manifest["parity_max_abs"]}
