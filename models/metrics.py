"""Binary classification metrics in numpy (no scikit-learn at run time), shared by the failure and defect
families: ROC AUC, average precision, F1 and balanced accuracy, the thresholds that maximise them, and a
reliability table."""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties get average ranks); NaN with one class."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(score, dtype=float))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(a: np.ndarray) -> np.ndarray:
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    ranks = np.empty(len(a))
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    """Mean precision at the rank of each positive (NaN without positives)."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def f1_at(y: np.ndarray, score: np.ndarray, threshold: float) -> float:
    y = np.asarray(y).astype(bool)
    pred = np.asarray(score) >= threshold
    tp = int((pred & y).sum())
    denom = int(pred.sum()) + int(y.sum())
    return 2 * tp / denom if denom else 0.0


def balanced_accuracy(y: np.ndarray, predicted: np.ndarray) -> float:
    y, p = np.asarray(y).astype(bool), np.asarray(predicted).astype(bool)
    tpr = (p & y).sum() / max(y.sum(), 1)
    tnr = (~p & ~y).sum() / max((~y).sum(), 1)
    return float((tpr + tnr) / 2)


def f1_threshold(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """The threshold that maximises F1, midway between neighbouring scores; (threshold, F1)."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    ps, hits = np.asarray(score, dtype=float)[order], y[order]
    tp = np.cumsum(hits)
    f1 = 2 * tp / (np.arange(1, len(ps) + 1) + y.sum())
    valid = np.r_[ps[1:] < ps[:-1], True]  # only cut between distinct scores
    f1 = np.where(valid, f1, -1)
    k = int(np.argmax(f1))
    nxt = ps[k + 1] if k + 1 < len(ps) else 0.0
    return float((ps[k] + nxt) / 2), float(f1[k])


def balanced_threshold(y: np.ndarray, score: np.ndarray) -> float:
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
    """Reliability table on probability quantiles: mean predicted probability vs observed rate per bin."""
    prob = np.asarray(prob, dtype=float)
    edges = np.unique(np.quantile(prob, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return [{"predicted": float(prob.mean()), "observed": float(np.mean(y)), "n": len(prob)}] if len(prob) else []
    idx = np.clip(np.searchsorted(edges, prob, side="right") - 1, 0, len(edges) - 2)
    out = []
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            out.append({"predicted": float(prob[m].mean()), "observed": float(np.mean(y[m])), "n": int(m.sum())})
    return out
