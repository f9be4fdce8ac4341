"""Train the energy forecaster with rolling-origin validation, then refit on the whole file and export.

Validation: the model is trained on origins before the last ``val_months`` months (early stopping on the last
``early_stop_days`` of them), then forecasts every day of the validation months at 00:00 from rows before that
origin only; p50 MAE, pinball loss and [p10, p90] coverage are compared with naive baselines. The shipped model
is refit on every day with the validated number of epochs and the validated interval-width factor.

``train(input_path, dataset, out_dir, *, config, tracker) -> metrics`` is the family contract.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from models.energy import features as F
from models.energy.batches import Batches
from models.energy.config import EnergyConfig
from models.energy.module import QUANTILES, QuantileMLP
from models.export import data_hash, export
from models.tracking import tracker_or_off
from models.training import TrainConfig, fit, predict_batches, seed_everything
from serving.errors import InvalidInput

log = logging.getLogger("sfai.energy")
MIN_EARLY_STOP_DAYS = 7  # the fewest early-stopping days a short file is trained with (one of each weekday)


@dataclass
class Fitted:
    model: QuantileMLP
    best_epoch: int
    history: list[dict] = field(default_factory=list)


# Korea's national grid emission factor (GIR, 0.4567 tCO2eq/MWh): used where the file gives no usable CO2 column
KOREA_GRID_T_PER_KWH = 0.4567e-3
FILE_FACTOR = "ratio of sums of CO2(tCO2) to Usage_kWh over training intervals >= 20 kWh"
GRID = "Korean national grid factor 0.4567 tCO2eq/MWh"
GRID_FACTOR = f"{GRID} (the file has no CO2(tCO2) column)"
# the file has the column, but it cannot give the factor
NO_LARGE_INTERVAL = (f"{GRID} (the file's CO2(tCO2) column was not used: no interval of 20 kWh or more with a CO2 "
                     "reading to read the factor from; are the readings kWh?)")
NO_CO2 = (f"{GRID} (the file's CO2(tCO2) column was not used: it reads 0 over every interval of 20 kWh or more)")


def emission_factor(series: F.Series) -> tuple[float, str]:
    """(tCO2 per kWh, where it comes from): the file's ratio of sums over intervals of at least 20 kWh (the tCO2
    column is rounded to 0.01 t, so small intervals read as 0); Korea's grid factor where the file has no CO2
    column, no interval that large (readings in MWh have none), or only zeros in it there; the source says which."""
    if series.co2 is None:
        return KOREA_GRID_T_PER_KWH, GRID_FACTOR
    ok = ~np.isnan(series.kwh) & ~np.isnan(series.co2) & (series.kwh >= 20)
    if not ok.any():
        return KOREA_GRID_T_PER_KWH, NO_LARGE_INTERVAL
    if series.co2[ok].sum() <= 0:
        return KOREA_GRID_T_PER_KWH, NO_CO2
    return float(series.co2[ok].sum() / series.kwh[ok].sum()), FILE_FACTOR


def dataset_for(v: np.ndarray, v_raw: np.ndarray, series: F.Series, origins: np.ndarray, scale: float):  # noqa: ANN201
    days = series.stamps[origins]
    x = F.build(v, origins, days, scale)
    y = F.targets(v_raw, origins).reshape(-1)
    keep = ~np.isnan(y)
    return x[keep], y[keep].astype(np.float32)


def fit_model(x_tr, y_tr, x_va, y_va, cfg: EnergyConfig, *, epochs: int, patience: int, on_epoch=None) -> Fitted:  # noqa: ANN001
    seed_everything(cfg.seed, cfg.threads)
    model = QuantileMLP(x_tr.shape[1], hidden=cfg.hidden, layers=cfg.layers, dropout=cfg.dropout, scale=cfg.scale,
                        base=F.FEATURE_NAMES.index("profile_p50"))
    tcfg = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       patience=patience, seed=cfg.seed, threads=cfg.threads, progress=True)
    res = fit(model, Batches(x_tr, y_tr, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed),
              Batches(x_va, y_va, batch_size=8192, shuffle=False), tcfg, on_epoch=on_epoch, label="energy")
    return Fitted(model, res.best_epoch, res.history)


def width_factor(q: np.ndarray, y: np.ndarray, target: float = 0.8) -> float:
    """The multiplier c for the distances p50-p10 and p90-p50 such that ``target`` of ``y`` falls inside."""
    lo, mid, hi = q[:, 0], q[:, 1], q[:, 2]
    below, above = (mid - y) / np.maximum(mid - lo, 1e-6), (y - mid) / np.maximum(hi - mid, 1e-6)
    need = np.maximum(below, above)  # the smallest c that covers each actual
    return float(np.clip(np.quantile(need, target), 0.5, 3.0))


def forecast_metrics(q: np.ndarray, y: np.ndarray) -> dict:
    """q: (n, 3) kWh quantiles; y: (n,) actuals."""
    err = y[:, None] - q
    qs = np.asarray(QUANTILES)[None, :]
    return {
        "p50_mae": float(np.mean(np.abs(y - q[:, 1]))),
        "pinball": float(np.mean(np.maximum(qs * err, (qs - 1) * err))),
        "coverage_p10_p90": float(np.mean((y >= q[:, 0]) & (y <= q[:, 2]))),
        "below_p10": float(np.mean(y < q[:, 0])),
        "above_p90": float(np.mean(y > q[:, 2])),
    }


def _coverage_figure(q: np.ndarray, y: np.ndarray, days: int):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2.5]})
    nominal = np.array(QUANTILES)
    observed = [np.mean(y <= q[:, i]) for i in range(3)]
    a1.plot(nominal, observed, "o-", label="validation")
    a1.plot([0, 1], [0, 1], "k--", lw=1, label="nominal")
    a1.set_xlabel("quantile level")
    a1.set_ylabel("share of actuals below the quantile")
    a1.legend()
    n = min(len(y), 7 * F.STEPS_PER_DAY)
    t = np.arange(n)
    a2.fill_between(t, q[:n, 0], q[:n, 2], alpha=0.3, label="p10-p90")
    a2.plot(t, q[:n, 1], lw=1, label="p50")
    a2.plot(t, y[:n], "k", lw=0.6, label="actual")
    a2.set_xlabel(f"15-minute steps (first 7 of {days} validation days)")
    a2.set_ylabel("kWh")
    a2.legend(loc="upper right")
    fig.tight_layout()
    return fig


def fit_early_stop_days(cfg: EnergyConfig, origins: int, *, explicit: bool) -> EnergyConfig:
    """Training needs ``3 x early_stop_days`` forecast days (origins: days with a week of rows before them and a
    whole day after): two thirds train, the early-stopping days and the validation days the rest. A shorter file
    (the demo's nine weeks) trains with ``early_stop_days`` lowered to a third of its days, down to
    ``MIN_EARLY_STOP_DAYS``, with a warning, unless ``early_stop_days`` was set (then it is refused, as is a file
    too short even for that)."""
    if origins >= 3 * cfg.early_stop_days:
        return cfg
    fits = origins // 3
    if not explicit and fits >= MIN_EARLY_STOP_DAYS:
        log.warning("%d forecast days in the file, fewer than 3 x early_stop_days (%d): training with "
                    "early_stop_days=%d (set it with --set early_stop_days=N)", origins, cfg.early_stop_days, fits)
        return replace(cfg, early_stop_days=fits)
    history = F.LAG_DAYS + 1
    if not explicit:  # lowered as far as it goes, and still too short: the real minimum (29 days), not the default's
        least = min(cfg.early_stop_days, MIN_EARLY_STOP_DAYS)
        raise InvalidInput(
            f"column {F.TARGET!r} covers too few days to train on: {origins} forecast days (the first {history} days "
            f"of rows are history only), and training needs at least {3 * least} (3 x early_stop_days, lowered for "
            f"a short file as far as {least}); give a file of at least {3 * least + history} days"
        )
    lower = f"lower it with --set early_stop_days=N (N <= {fits}) or " if fits >= 1 else ""
    raise InvalidInput(
        f"column {F.TARGET!r} covers too few days to train on: {origins} forecast days (the first {history} days "
        f"of rows are history only), and early_stop_days={cfg.early_stop_days} needs {3 * cfg.early_stop_days}; "
        f"{lower}give a file of at least {3 * cfg.early_stop_days + history} days"
    )


def train(
    input_path: Path, dataset: str, out_dir: Path, *, config: dict | None = None, tracker=None  # noqa: ANN001
) -> dict:
    """Train on ``input_path``, write ``out_dir/model.onnx`` + ``manifest.json``, return the validation metrics.
    ``config``: overrides of the shipped config (``--set``); ``tracker``: a ``models.tracking.Tracker``, or None
    to log nothing (the Python API; ``sfai train --no-track``)."""
    tracker = tracker_or_off(tracker)
    config = dict(config or {})
    t0 = time.perf_counter()
    cfg = EnergyConfig.from_dict(config)
    series = F.read_series(input_path)
    if cfg.max_days > 0:
        keep = min(len(series.kwh), cfg.max_days * F.STEPS_PER_DAY)
        first = len(series.kwh) - keep
        series = F.Series(series.stamps[first], series.kwh[first:], None if series.co2 is None else series.co2[first:])
    v_raw = series.kwh
    fill = float(np.nanmedian(v_raw))
    v = F.filled(v_raw, fill)
    gaps = int(np.isnan(v_raw).sum())
    if gaps:  # the inputs of the days after them are partly the fill's (the targets never are)
        log.warning("%s of the %s 15-minute intervals have no reading (%.1f days): filled from the same time a week "
                    "earlier (where it has none, from the last reading)", f"{gaps:,}", f"{len(v_raw):,}",
                    gaps / F.STEPS_PER_DAY)
    # the data version: the readings, where the grid starts (the same readings a day later are other data) and the
    # CO2 column the emission factor comes from
    dhash = data_hash(v_raw, np.array([series.start.value], dtype=np.int64), *(() if series.co2 is None else
                                                                                (series.co2,)))
    factor, factor_source = emission_factor(series)
    if factor_source not in (FILE_FACTOR, GRID_FACTOR):  # the file has a CO2 column that could not be read
        log.warning("CO2: %s", factor_source)
    tracker.log_params({**{f"energy.{k}": val for k, val in cfg.as_dict().items()}, "data_hash": dhash,
                        "emission_factor_t_per_kwh": factor})

    stamps = series.stamps
    first_origin = (stamps[0] + F.HISTORY * F.STEP).ceil("D")
    origins = F.origin_indices(series, first_origin)
    origins = origins[origins + F.STEPS_PER_DAY < len(v_raw)]  # full 96 actuals after each training origin
    cfg = fit_early_stop_days(cfg, len(origins), explicit="early_stop_days" in config)
    odays = stamps[origins]
    val_start = (odays[-1].to_period("M") - (cfg.val_months - 1)).to_timestamp() if cfg.val_months > 0 else None
    if val_start is None or (odays < val_start).sum() < 2 * cfg.early_stop_days:  # short files: last third
        val_start = odays[len(odays) * 2 // 3]
    fit_o, val_o = origins[odays < val_start], origins[odays >= val_start]
    es_o, tr_o = fit_o[-cfg.early_stop_days :], fit_o[: -cfg.early_stop_days]

    # 1) rolling-origin validation: train on the earlier months, forecast each validation day from its past
    x_tr, y_tr = dataset_for(v, v_raw, series, tr_o, cfg.scale)
    x_es, y_es = dataset_for(v, v_raw, series, es_o, cfg.scale)
    def log_epoch(row: dict) -> None:  # the learning curve: loss on the held-out early-stopping days
        tracker.log_metrics({k: val for k, val in row.items() if k != "epoch"}, step=row["epoch"])

    val_fit = fit_model(x_tr, y_tr, x_es, y_es, cfg, epochs=cfg.epochs, patience=cfg.patience, on_epoch=log_epoch)
    c = width_factor(predict_batches(val_fit.model, x_es), y_es) if cfg.calibrate else 1.0
    val_fit.model.width.fill_(c)
    x_va, y_va = dataset_for(v, v_raw, series, val_o, cfg.scale)
    q_va = predict_batches(val_fit.model, x_va)
    metrics = {f"val_{k}": val for k, val in forecast_metrics(q_va, y_va).items()}
    truth = F.targets(v_raw, val_o)
    ok = ~np.isnan(truth)
    for name, base in F.baselines(v, val_o).items():
        metrics[f"val_{name}_mae"] = float(np.mean(np.abs(truth[ok] - base[ok])))
    metrics["val_mae_ratio_vs_last_week"] = metrics["val_p50_mae"] / metrics["val_same_time_last_week_mae"]
    metrics["val_origins"] = len(val_o)
    metrics["val_first_origin"] = str(stamps[val_o[0]].date())
    metrics["interval_width_factor"] = c
    metrics["best_epoch"] = val_fit.best_epoch

    # 2) the shipped model: every day, the validated epoch count and width factor
    x_all, y_all = dataset_for(v, v_raw, series, origins, cfg.scale)
    x_last, y_last = dataset_for(v, v_raw, series, origins[-cfg.early_stop_days :], cfg.scale)

    def log_final(row: dict) -> None:  # its last days are among its training days: no validation loss here
        tracker.log_metrics({"final_train_loss": row["train_loss"]}, step=row["epoch"])

    final = fit_model(x_all, y_all, x_last, y_last, cfg, epochs=val_fit.best_epoch + 1, patience=10**6,
                      on_epoch=log_final)
    final.model.width.fill_(c)
    metrics["fit_seconds"] = round(time.perf_counter() - t0, 1)
    manifest = {
        "name": "energy",
        "family": "energy",
        "dataset": dataset,
        "version": 1,
        "features": F.FEATURE_NAMES,
        "quantiles": list(QUANTILES),
        "steps_per_day": F.STEPS_PER_DAY,
        "history_steps": F.HISTORY,
        "scale": cfg.scale,
        "fill_value": fill,
        # the level of the training readings: a forecast compares the readings it is given with it (a meter in Wh,
        # MWh or kW gave forecasts 1,000 x, 0 or 4 x off without a word)
        "mean_kwh": float(np.nanmean(v_raw)),
        "max_kwh": float(np.nanmax(v_raw)),  # readings far above it are read as gaps (predict.without_spikes)
        "emission_factor_t_per_kwh": factor,
        "emission_factor_source": factor_source,
        "time_index": "interval end; the file's dd/mm/yyyy 00:00 row is the previous day's 24:00",
        "output": "y[:, 0:3] = p10, p50, p90 kWh per 15 minutes, one row per forecast step",
        "config": cfg.as_dict(),
        "data_hash": dhash,
        "metrics": metrics,
        "trained_through": str(stamps[-1]),
    }
    export(final.model, x_all[:16], Path(out_dir), manifest)
    tracker.log_curves(val_fit.history)
    tracker.log_dict({"metrics": metrics, "data_hash": dhash, "emission_factor_t_per_kwh": factor}, "energy.json")
    if tracker.enabled:
        import matplotlib.pyplot as plt

        fig = _coverage_figure(q_va, y_va, len(val_o))
        tracker.log_figure(fig, "coverage.png")
        plt.close(fig)
    return metrics

