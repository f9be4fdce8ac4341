"""Train the defect model: repeated stratified validation, threshold from pooled validation scores, a final
fit on every row, ONNX export with the feature statistics, threshold and contribution weights in the manifest.

``train(input_path, dataset, out_dir, *, config=None, tracker=None) -> metrics`` is the family contract.

Early stopping and ``--epochs``: every fit stops when its loss on a stratified inner 20 % split has not improved
for ``patience`` (25) epochs and keeps the weights of its best epoch; ``epochs`` (200) only caps the run and sets
the length of the cosine learning-rate schedule, which such a run never gets far into (it stops after 26-60
epochs, at a learning rate still ~1e-2). That inner loss is noisy at this learning rate, and on the full SECOM
file with seed 0 its minimum is the first epoch (epoch 0): one fit's weights are then those after one pass, still
near their random start. Lower learning rates, stronger L2 or AdamW decay, and training to convergence were
checked on these inner splits and were not better (docs/quality_energy_models.md). So a fit is ``members`` (5)
such fits from other random starts, inner splits and batch orders, averaged: the measurements it names and the
wafers it flags no longer follow one random start. The metrics report every member's ``best_epochs``, the CLI
warns when every member keeps the first epoch, and the learning curve (the first member's) marks the kept epoch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.defect import drift as D
from models.defect import features as F
from models.defect.config import DefectConfig
from models.defect.module import DefectNet
from models.export import data_hash, export
from models.metrics import average_precision, balanced_accuracy, balanced_threshold, calibration_bins, roc_auc
from models.tracking import tracker_or_off
from models.training import TrainConfig, fit, make_loader, predict_batches, seed_everything

log = logging.getLogger("sfai.defect")
FLAT_SPREAD = 1e-3  # training probabilities all within 0.001 of each other: a model that ranks nothing


@dataclass
class Fitted:
    model: DefectNet
    stats: dict
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0  # of the first member, whose learning curve is logged
    best_epochs: list[int] = field(default_factory=list)  # of every member


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held) with ``fraction`` of each class held out."""
    held = []
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        n = max(1, round(fraction * len(idx)))
        held.append(rng.choice(idx, size=n, replace=False))
    held = np.sort(np.concatenate(held))
    rest = np.setdiff1d(np.arange(len(y)), held)
    return rest, held


MEMBER_SEED_STEP = 10_007  # member k of a fit with seed s trains with seed s + k * step: no other fit's seed


def fit_one(df: pd.DataFrame, y: np.ndarray, cfg: DefectConfig, *, seed: int, on_epoch=None,  # noqa: ANN001
            label: str = "defect") -> Fitted:
    """Features from these rows only; ``cfg.members`` fits, each early-stopped on its own stratified inner split
    of them, averaged into one logistic model (the first fit's learning curve is the one logged)."""
    stats = F.fit_features(df, max_missing=cfg.max_missing, min_missing_indicator=cfg.min_missing_indicator,
                           missing_indicators=cfg.missing_indicators, clip=cfg.clip)
    z = F.transform(df, stats)
    fits = [_fit_member(z, y, cfg, seed=seed + k * MEMBER_SEED_STEP, on_epoch=on_epoch if k == 0 else None,
                        label=f"{label} member {k + 1}/{cfg.members}" if cfg.members > 1 else label)
            for k in range(cfg.members)]
    first = fits[0]
    if len(fits) > 1:  # a logistic model's weights and bias, averaged: its members' logits, averaged
        with torch.no_grad():
            for name, p in first.model.named_parameters():
                p.copy_(torch.stack([dict(f.model.named_parameters())[name] for f in fits]).mean(0))
    return Fitted(first.model, stats, first.history, first.best_epoch, [f.best_epoch for f in fits])


def _fit_member(z: np.ndarray, y: np.ndarray, cfg: DefectConfig, *, seed: int, on_epoch=None,  # noqa: ANN001
                label: str = "defect") -> Fitted:
    tr, va = stratified_split(y, cfg.inner_val_fraction, np.random.default_rng(seed + 1000))
    pos = float(y[tr].sum())
    pos_weight = (len(tr) - pos) / max(pos, 1.0)
    seed_everything(seed, cfg.threads)
    model = DefectNet(z.shape[1], hidden=cfg.hidden, dropout=cfg.dropout, pos_weight=pos_weight, l2=cfg.l2)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       patience=cfg.patience, seed=seed, threads=cfg.threads)  # a bar at a terminal
    res = fit(model, make_loader(z[tr], y[tr], batch_size=cfg.batch_size, shuffle=True, seed=seed),
              make_loader(z[va], y[va], batch_size=4096, shuffle=False), tcfg, on_epoch=on_epoch, label=label)
    return Fitted(model, {}, res.history, res.best_epoch)


def probabilities(fitted: Fitted, df: pd.DataFrame) -> np.ndarray:
    return predict_batches(fitted.model, F.transform(df, fitted.stats))[:, 0]


def time_splits(times: np.ndarray | None, y: np.ndarray, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward chaining (``validation=time``): the wafers in test-time order cut into ``n_splits + 1`` blocks of
    consecutive wafers; split k validates block k with a fit on every wafer tested before it (blocks 0..k-1), as
    the model will be used: trained on the past, scoring the wafers that follow. SECOM's failure rate drifts
    (23 % of July's wafers, 2 % of September's), so this is the harder, more honest estimate."""
    from serving.errors import InvalidInput

    if times is None or np.isnan(times).any():
        missing = "has no test-time column" if times is None else f"has {int(np.isnan(times).sum())} rows without one"
        raise InvalidInput(f"config validation=time orders the wafers by their test time (column 'timestamp'), and "
                           f"the file {missing}: use validation=stratified")
    blocks = np.array_split(np.argsort(times, kind="stable"), n_splits + 1)
    out = []
    for k in range(1, n_splits + 1):
        tr = np.sort(np.concatenate(blocks[:k]))
        if y[tr].sum() < 2 or len(tr) - y[tr].sum() < 2:
            raise InvalidInput(f"config validation=time: the wafers before block {k + 1} of {n_splits + 1} hold "
                               f"{int(y[tr].sum())} failures: too few to train on; set fewer n_splits")
        out.append((tr, np.sort(blocks[k])))
    return out


def operating_curve(y: np.ndarray, p: np.ndarray) -> list[dict]:
    """Every operating point of the pooled held-out probabilities ``p``: for each failure's probability taken as
    the threshold (a wafer is flagged at or above it), the recall (share of failures flagged), the precision (share
    of flagged wafers that failed) and the flag rate (share of all wafers flagged); highest threshold first."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, float)
    n_pos = int(y.sum())
    if not n_pos:
        return []
    ps = np.sort(p)
    out = []
    for t in np.unique(p[y])[::-1]:
        flagged = len(p) - int(np.searchsorted(ps, t, side="left"))
        tp = int((p[y] >= t).sum())
        out.append({"threshold": float(t), "recall": round(tp / n_pos, 4),
                    "precision": round(tp / max(flagged, 1), 4), "flag_rate": round(flagged / len(p), 4)})
    return out


def _at(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    y = np.asarray(y).astype(bool)
    flagged = p >= t
    return {"threshold": float(t), "recall": round(float((flagged & y).sum() / max(y.sum(), 1)), 4),
            "precision": round(float((flagged & y).sum() / max(flagged.sum(), 1)), 4),
            "flag_rate": round(float(flagged.mean()), 4)}


RECALL_TABLE = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)  # the rows `sfai models show` prints


def operating_points(y: np.ndarray, p: np.ndarray, threshold: float, source: str) -> dict:
    """The manifest's validation table: the shipped threshold's recall, precision and flag rate, the highest
    threshold reaching each of ``RECALL_TABLE``'s recalls, and the whole curve (``predict.threshold_for_recall``
    reads it for any recall target)."""
    curve = operating_curve(y, p)
    table = []
    for target in RECALL_TABLE:
        ok = [c for c in curve if c["recall"] >= target]
        if ok:
            table.append({"recall_target": target, **max(ok, key=lambda c: c["threshold"])})
    return {"source": source, "wafers": len(y), "failures": int(np.sum(y)),
            "shipped": _at(y, p, threshold), "table": table, "curve": curve}


def validate(df: pd.DataFrame, y: np.ndarray, cfg: DefectConfig) -> dict:
    """Repeated stratified splits (or, with ``validation=time``, forward-chaining ones: ``time_splits``):
    per-split AUC/AP, one threshold chosen on the pooled validation scores, balanced accuracy at that threshold,
    and an honest nested variant (threshold from the other splits).

    With test times in the file (and ``drift_prior``), each split's validation wafers also get the recent
    failure rate of that split's training wafers before them (``drift.py``); the combiner of model and rate is
    judged nested (fitted on the other splits) and kept only if it raises the mean validation AUC."""
    rng = np.random.default_rng(cfg.seed)
    times = D.stamps(df) if cfg.drift_prior else None
    if cfg.validation == "time":
        plan = time_splits(D.stamps(df), y, cfg.n_splits)
    else:
        plan = [stratified_split(y, cfg.test_fraction, rng) for _ in range(cfg.n_splits)]
    splits, scores, rates = [], [], []
    for r, (tr, te) in enumerate(plan):
        fitted = fit_one(df.iloc[tr], y[tr], cfg, seed=cfg.seed + r,
                         label=f"defect validation split {r + 1}/{cfg.n_splits}")
        splits.append(te)
        scores.append(probabilities(fitted, df.iloc[te]))
        if times is not None:
            rates.append(D.recent_rate(D.history(times[tr], y[tr], cfg.drift_window), times[te], len(te)))
    out = {"val_roc_auc_model": _mean([roc_auc(y[te], p) for te, p in zip(splits, scores, strict=True)])}
    coef = None
    if times is not None and len(splits) > 1:
        nested_scores = []
        for i in range(len(splits)):
            o = [j for j in range(len(splits)) if j != i]
            c = D.fit_combiner(np.concatenate([scores[j] for j in o]), np.concatenate([rates[j] for j in o]),
                               np.concatenate([y[splits[j]] for j in o]))
            nested_scores.append(D.combine(c, scores[i], rates[i]))
        auc_drift = _mean([roc_auc(y[te], p) for te, p in zip(splits, nested_scores, strict=True)])
        out["val_roc_auc_with_drift"] = auc_drift
        if auc_drift > out["val_roc_auc_model"]:
            y_val = np.concatenate([y[te] for te in splits])
            coef = D.fit_combiner(np.concatenate(scores), np.concatenate(rates), y_val)
            scores = nested_scores  # everything below is measured on the nested combined scores
    out["drift_coef"] = coef
    y_all, p_all = np.concatenate([y[te] for te in splits]), np.concatenate(scores)
    threshold = balanced_threshold(y_all, p_all)
    both = [i for i, te in enumerate(splits) if 0 < y[te].sum() < len(te)]  # a time block may hold no failure
    auc = [roc_auc(y[splits[i]], scores[i]) for i in both]
    ap = [average_precision(y[splits[i]], scores[i]) for i in both]
    ba = [balanced_accuracy(y[splits[i]], scores[i] >= threshold) for i in both]
    nested = []
    for i in both:
        others = [j for j in range(len(splits)) if j != i]
        if others:
            y_o = np.concatenate([y[splits[j]] for j in others])
            t = balanced_threshold(y_o, np.concatenate([scores[j] for j in others]))
            nested.append(balanced_accuracy(y[splits[i]], scores[i] >= t))
    how = (f"{cfg.n_splits} forward-chaining splits in test-time order" if cfg.validation == "time" else
           f"{cfg.n_splits} stratified {1 - cfg.test_fraction:.0%}/{cfg.test_fraction:.0%} splits")
    source = (f"pooled held-out probabilities of {how}" + (" (with the drift prior: the combiner fitted on the other "
              "splits)" if coef is not None else ""))
    return {
        **out,
        "threshold": threshold,
        "val_roc_auc": _mean(auc),
        "val_roc_auc_sd": _sd(auc),
        "val_average_precision": _mean(ap),
        "val_average_precision_sd": _sd(ap),
        "val_balanced_accuracy": _mean(ba),
        "val_balanced_accuracy_sd": _sd(ba),
        "val_balanced_accuracy_nested": _mean(nested),
        "val_balanced_accuracy_nested_sd": _sd(nested),
        "val_splits": cfg.n_splits,
        "val_flag_rate": float(np.mean(p_all >= threshold)),  # share of held-out wafers flagged at the threshold
        "val_recall": float(np.mean(p_all[y_all == 1] >= threshold)) if y_all.sum() else float("nan"),
        "val_precision": float(y_all[p_all >= threshold].mean()) if (p_all >= threshold).any() else float("nan"),
        "_operating_points": operating_points(y_all, p_all, threshold, source),
        # calibration of the pooled held-out probabilities (those shipped: with the drift prior, the nested combined
        # ones): their mean against the failure rate, and the Brier score
        "val_mean_probability": float(p_all.mean()),
        "val_failure_rate": float(y_all.mean()),
        "val_brier": float(np.mean((p_all - y_all) ** 2)),
        "_calibration": calibration_bins(y_all, p_all),
    }


def _mean(values: list[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def _sd(values: list[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.std(values)) if values else float("nan")


IMPORTANCE_KEPT = 30  # ranked features the manifest keeps (MLflow's defect_model_card.json keeps them all)


def global_importance(z: np.ndarray, weights: np.ndarray, names: list[str], coef: list[float] | None,
                      rates: np.ndarray | None, prior: float | None) -> list[dict]:
    """Each feature's mean |contribution| to the served log-odds over the given wafers (``explain``'s per-wafer
    numbers, averaged), its mean signed contribution, whether higher values raise the risk (the weight's sign) and
    its share of the total; the recent failure rate's term as ``recent_failure_rate`` where the drift prior is
    used. Ranked, largest first."""
    a = float(coef[0]) if coef else 1.0
    contrib = z.astype(np.float64) * (a * np.asarray(weights, float))
    mean_abs, mean = np.abs(contrib).mean(0), contrib.mean(0)
    rows = [{"feature": n, "mean_abs_contribution": float(ma), "mean_contribution": float(me),
             "higher_raises_risk": bool(w > 0)}
            for n, ma, me, w in zip(names, mean_abs, mean, weights, strict=True)]
    if coef is not None and rates is not None and prior is not None:
        term = float(coef[1]) * (D.logit(rates) - float(D.logit(prior)))
        rows.append({"feature": "recent_failure_rate", "mean_abs_contribution": float(np.abs(term).mean()),
                     "mean_contribution": float(term.mean()), "higher_raises_risk": bool(coef[1] > 0)})
    total = sum(r["mean_abs_contribution"] for r in rows) or 1.0
    rows.sort(key=lambda r: -r["mean_abs_contribution"])
    for rank, r in enumerate(rows, 1):
        r.update(rank=rank, share=round(r["mean_abs_contribution"] / total, 4),
                 mean_abs_contribution=round(r["mean_abs_contribution"], 4),
                 mean_contribution=round(r["mean_contribution"], 4))
    return rows


def train(
    input_path: Path, dataset: str, out_dir: Path, *, config: dict | None = None, tracker=None  # noqa: ANN001
) -> dict:
    """Train on ``input_path``, write ``out_dir/model.onnx`` + ``manifest.json``, return the validation metrics.
    ``config``: overrides of the shipped config (``--set``); ``tracker``: a ``models.tracking.Tracker``, or None
    to log nothing (the Python API; ``sfai train --no-track``)."""
    tracker = tracker_or_off(tracker)
    t0 = time.perf_counter()
    cfg = DefectConfig.from_dict(dict(config or {}))
    df = F.read_rows(input_path)
    y = F.labels(df)
    if (y.sum() < 2 * cfg.n_splits and y.sum() < 10) or len(y) - y.sum() < 10:
        from serving.errors import InvalidInput

        raise InvalidInput(f"column {F.LABEL!r} has {int(y.sum())} failures and {int(len(y) - y.sum())} passes: "
                           "too few to train on (at least 10 passes, and 10 failures or two per validation split)")
    tracker.log_params({f"defect.{k}": v for k, v in cfg.as_dict().items()})
    cols = F.measurement_columns(df)
    dhash = data_hash(df[cols].to_numpy(float), y)
    tracker.log_params({"data_hash": dhash, "rows": len(df), "failures": int(y.sum())})

    # without validation (n_splits=0, quick runs) the failure rate is the threshold: for a calibrated probability
    # that is the decision the class-weighted loss aims at
    val = validate(df, y, cfg) if cfg.n_splits > 0 else {"threshold": float(y.mean()), "_calibration": []}
    calibration = val.pop("_calibration")
    points = val.pop("_operating_points", None)
    coef = val.pop("drift_coef", None)
    times = D.stamps(df) if coef is not None else None

    def log_epoch(row: dict) -> None:
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])

    final = fit_one(df, y, cfg, seed=cfg.seed, on_epoch=log_epoch, label="defect final model")
    z = F.transform(df, final.stats)
    names = F.feature_names(final.stats)
    weights = final.model.contribution_weights(torch.as_tensor(z)).numpy()
    train_prob = predict_batches(final.model, z)[:, 0]
    metrics = {
        **val,
        "train_roc_auc": roc_auc(y, train_prob),
        "features_kept": len(final.stats["measurements"]),
        "best_epoch": final.best_epoch,  # of the first member: its weights are those after this epoch (0 = the first)
        "best_epochs": final.best_epochs,  # of every member of the shipped model
        "epochs_run": len(final.history),  # early stopping ends the run; ``epochs`` only caps it
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }
    manifest = {
        "name": "defect",
        "family": "defect",
        "dataset": dataset,
        "version": 1,
        "id_column": F.ID,
        "features": names,
        "feature_stats": final.stats,
        "threshold": float(val["threshold"]),
        "contribution_weights": [float(w) for w in weights],
        "contribution_units": "logit (weight x robust z-score)",
        # served (models/defect/predict.py): drift.combine(drift.coef, y, recent rate) where "drift" is present
        "output": "y[:, 0] = defect probability of the network alone (prior-corrected)",
        "config": cfg.as_dict(),
        "data_hash": dhash,
        "metrics": metrics,
        "calibration": calibration,
    }
    if coef is not None:  # the recent failure rate of the training wafers before each scored wafer, and how to use it
        manifest["drift"] = {**D.history(times, y, cfg.drift_window), "coef": coef}
    hist = manifest.get("drift")
    importance = global_importance(z, weights, names, coef, D.recent_rate(hist, times, len(y)) if hist else None,
                                   hist["prior"] if hist else None)
    manifest["global_importance"] = {
        "data": f"the {len(y)} training wafers (in-sample), with the shipped model",
        "units": "served log-odds (explain's contributions): mean |contribution| per wafer",
        "features": importance[:IMPORTANCE_KEPT]}
    if points is not None:  # threshold -> recall, precision, flag rate on validation data (sfai models show)
        manifest["operating_points"] = points
    spread = float(np.ptp(train_prob)) if len(train_prob) else 0.0
    metrics["train_probability_spread"] = spread
    if spread < FLAT_SPREAD:
        log.warning("defect: the model gives every training wafer about the same probability (%.4f to %.4f): it "
                    "learned no ranking and flags all wafers or none; its L2 penalty (l2=%g) is likely too strong "
                    "for this network (hidden=%d): train again with a smaller --set l2=...",
                    float(train_prob.min()), float(train_prob.max()), cfg.l2, cfg.hidden)
    if final.best_epochs and all(e == 0 for e in final.best_epochs) and len(final.history) > 1:
        log.warning("defect: early stopping kept the weights after the first epoch in every member (epoch 0 had the "
                    "lowest loss on each inner %d %% split); --epochs only caps the run, it does not train longer",
                    round(100 * cfg.inner_val_fraction))
    file_times = D.stamps(df) if cfg.drift_prior and cfg.n_splits > 0 else np.zeros(1)
    if file_times is None or np.isnan(file_times).all():
        near = D.near_time_column(df.columns)
        log.warning("defect: the file has no test times (%s): the model is trained without the line's recent failure "
                    "rate (the drift prior; on secom_train.csv it raised the validation ROC AUC from 0.729 to 0.746) "
                    "and scores every wafer from its measurements alone; add the wafers' test times as %r to use it",
                    f"its column {near!r} is not read" if near else f"no {D.TIMESTAMP!r} column" if file_times is None
                    else f"the {D.TIMESTAMP!r} column is empty", D.TIMESTAMP)
    export(final.model, z[:16], Path(out_dir), manifest)
    tracker.log_dict({"feature_stats": final.stats, "calibration": calibration, "data_hash": dhash},
                     "defect_features.json")
    tracker.log_dict({"threshold": manifest["threshold"], "operating_points": points,
                      "global_importance": {**manifest["global_importance"], "features": importance}},
                     "defect_model_card.json")
    _log_curves(tracker, final)
    tracker.log_calibration(calibration, "defect")
    return metrics


def _log_curves(tracker, fitted: Fitted) -> None:  # noqa: ANN001
    """The shipped fit's learning curve, with the epoch whose weights are shipped marked."""
    if not getattr(tracker, "enabled", False) or not fitted.history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = fitted.history
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["epoch"] for r in h], [r["train_loss"] for r in h], label="train loss")
    ax.plot([r["epoch"] for r in h], [r["val_loss"] for r in h], label="validation loss (inner split)")
    ax.axvline(fitted.best_epoch, color="k", ls="--", lw=1, label=f"shipped weights: epoch {fitted.best_epoch}")
    ax.set_xlabel("epoch (early stopping ends the run; --epochs only caps it)")
    ax.legend()
    fig.tight_layout()
    tracker.log_figure(fig, "learning_curve.png")
    plt.close(fig)
