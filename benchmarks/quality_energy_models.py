"""Validation metrics and training times of the shipped defect and energy models.

    .venv/bin/python benchmarks/quality_energy_models.py [--only defect|energy] [--json OUT.json]

Trains each family with its shipped config exactly as ``sfai train`` does (``models.<family>.train.train``,
tracking off) and prints a table: defect = mean +- sd over repeated stratified splits; energy = rolling
day-ahead origins over the last two months of the file vs naive baselines. Defect also prints the reliability
table of the pooled held-out probabilities (the manifest's ``calibration``: probability deciles).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = Path(os.environ.get("SFAI_SHARED", ROOT.parent / "shared")) / "datasets"
SECOM = DATASETS / "secom" / "secom_train.csv"
STEEL = DATASETS / "steel_energy" / "steel_industry_2018_jan_oct.csv"
TEN_MINUTES = 600.0


class NoTracker:
    enabled = False

    def __getattr__(self, name):  # noqa: ANN204
        return lambda *a, **k: None


def run(family: str, path: Path, dataset: str) -> tuple[dict, float]:
    import importlib

    train = importlib.import_module(f"models.{family}.train").train
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        metrics = train(path, dataset, Path(out), config={"seed": 0}, tracker=NoTracker())
        return metrics, time.perf_counter() - t0


def run_defect() -> tuple[dict, float, list[dict]]:
    """``run("defect", ...)`` that also keeps the manifest's reliability table (held-out probability deciles)."""
    from models.defect.train import train

    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        metrics = train(SECOM, "secom", Path(out), config={"seed": 0}, tracker=NoTracker())
        seconds = time.perf_counter() - t0
        return metrics, seconds, json.loads((Path(out) / "manifest.json").read_text()).get("calibration", [])


def defect_calibration_table(bins: list[dict]) -> str:
    rows = [f"| {i + 1} | {b['n']} | {b['predicted']:.3f} | {b['observed']:.3f} |" for i, b in enumerate(bins)]
    return "\n".join(["| decile | wafers | mean predicted | observed failure rate |", "|---|---|---|---|", *rows])


def defect_rows(m: dict, seconds: float) -> list[tuple[str, str, str, str]]:
    def pm(key: str) -> str:
        return f"{m[key]:.3f} ± {m[key + '_sd']:.3f}"

    return [
        ("defect", f"ROC AUC ({m['val_splits']} stratified 80/20 splits)", pm("val_roc_auc"),
         "≥ 0.80: " + ("met" if m["val_roc_auc"] >= 0.80 else "NOT met")),
        ("defect", f"balanced accuracy at shipped threshold {m['threshold']:.3f}", pm("val_balanced_accuracy"),
         "≥ 0.72: " + ("met" if m["val_balanced_accuracy"] >= 0.72 else "NOT met")),
        ("defect", "balanced accuracy, threshold from the other splits (nested)", pm("val_balanced_accuracy_nested"),
         "honest variant"),
        ("defect", "average precision (failure rate 6.5 %)", pm("val_average_precision"), ""),
        ("defect", "ROC AUC of the network alone / with the recent failure rate (nested)",
         f"{m['val_roc_auc_model']:.3f} / {m.get('val_roc_auc_with_drift', float('nan')):.3f}",
         "drift prior " + ("used" if m.get("val_roc_auc_with_drift", 0) > m["val_roc_auc_model"] else "not used")),
        ("defect", "mean predicted probability / observed failure rate (held-out)",
         f"{m['val_mean_probability']:.3f} / {m['val_failure_rate']:.3f}",
         "calibrated: " + ("yes" if abs(m["val_mean_probability"] / m["val_failure_rate"] - 1) <= 0.2 else "NO")),
        ("defect", "Brier score (held-out)", f"{m['val_brier']:.4f}", ""),
        ("defect", "measurements kept of 590", str(m["features_kept"]), ""),
        ("defect", "best epoch of each member of the shipped fit / epochs run by the first",
         f"{', '.join(map(str, m.get('best_epochs', [m['best_epoch']])))} / {m['epochs_run']}", "early stopping"),
        ("defect", "training time (validation + final fit)", f"{seconds:.0f} s",
         "≤ 600 s: " + ("met" if seconds <= TEN_MINUTES else "NOT met")),
    ]


def energy_rows(m: dict, seconds: float) -> list[tuple[str, str, str, str]]:
    ratio, cov = m["val_mae_ratio_vs_last_week"], m["val_coverage_p10_p90"]
    where = f"{m['val_origins']} daily origins from {m['val_first_origin']}"
    return [
        ("energy", f"p50 MAE kWh ({where})", f"{m['val_p50_mae']:.2f}", ""),
        ("energy", "same-time-last-week MAE kWh", f"{m['val_same_time_last_week_mae']:.2f}", "baseline"),
        ("energy", "yesterday's-profile MAE kWh", f"{m['val_yesterday_profile_mae']:.2f}", "baseline"),
        ("energy", "p50 MAE / same-time-last-week MAE", f"{ratio:.3f}",
         "≤ 0.60: " + ("met" if ratio <= 0.6 else "NOT met")),
        ("energy", "actuals inside [p10, p90]", f"{cov:.1%}",
         "80 % ± 5: " + ("met" if abs(cov - 0.8) <= 0.05 else "NOT met")),
        ("energy", "below p10 / above p90", f"{m['val_below_p10']:.1%} / {m['val_above_p90']:.1%}", "nominal 10 / 10"),
        ("energy", "pinball loss (mean of p10, p50, p90)", f"{m['val_pinball']:.2f}", ""),
        ("energy", "interval width factor (from early-stopping days)", f"{m['interval_width_factor']:.2f}", ""),
        ("energy", "training time (validation + final fit)", f"{seconds:.0f} s",
         "≤ 600 s: " + ("met" if seconds <= TEN_MINUTES else "NOT met")),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["defect", "energy"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows, raw, after = [], {}, []
    if args.only in (None, "defect"):
        m, s, bins = run_defect()
        rows += defect_rows(m, s)
        raw["defect"] = {**m, "seconds": s, "calibration": bins}
        after.append("\nDefect reliability (pooled held-out probabilities of the 10 splits, by decile):\n"
                     + defect_calibration_table(bins))
    if args.only in (None, "energy"):
        m, s = run("energy", STEEL, "steel-energy")
        rows += energy_rows(m, s)
        raw["energy"] = {**m, "seconds": s}
    print("| model | metric | value | bar |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    for text in after:
        print(text)
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=float))


if __name__ == "__main__":
    main()
