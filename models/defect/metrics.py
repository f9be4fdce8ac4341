"""Binary classification metrics in numpy (no scikit-learn dependency)."""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties get average ranks)."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s))
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(score), kind="mergesort")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    y, p = np.asarray(y).astype(bool), np.asarray(predicted).astype(bool)
    tpr = (p & y).sum() / max(y.sum(), 1)
    tnr = (~p & ~y).sum() / max((~y).sum(), 1)
    return float((tpr + tnr) / 2)


def best_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The threshold that maximises balanced accuracy (midpoint between neighbouring scores)."""
    s = np.unique(score)
    cands = np.concatenate([[s[0] - 1e-9], (s[:-1] + s[1:]) / 2]) if len(s) > 1 else s
    best, best_t = -1.0, float(cands[0])
    for t in cands:
        ba = balanced_accuracy(y, score >= t)
        if ba > best:
            best, best_t = ba, float(t)
    return best_t


def calibration_bins(y: np.ndarray, prob: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability table on probability quantiles: mean predicted vs observed failure rate per bin."""
    edges = np.unique(np.quantile(prob, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            out.append({"predicted": float(prob[m].mean()), "observed": float(np.mean(y[m])), "n": int(m.sum())})
    return out
