"""Binary classification metrics in numpy (no scikit-learn at run time)."""

from __future__ import annotations

import numpy as np


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(p, dtype=float))
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


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y).astype(bool)
    if not y.any():
        return float("nan")
    order = np.argsort(-np.asarray(p, dtype=float), kind="mergesort")
    hits = y[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def f1_at(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= threshold
    tp = int((pred & y).sum())
    denom = int(pred.sum()) + int(y.sum())
    return 2 * tp / denom if denom else 0.0


def best_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """The threshold that maximises F1 on (y, p), taken midway between neighbouring scores; (threshold, F1)."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(-np.asarray(p, dtype=float), kind="mergesort")
    ps, hits = np.asarray(p, dtype=float)[order], y[order]
    tp = np.cumsum(hits)
    f1 = 2 * tp / (np.arange(1, len(ps) + 1) + y.sum())
    # only cut between distinct scores
    valid = np.r_[ps[1:] < ps[:-1], True]
    f1 = np.where(valid, f1, -1)
    k = int(np.argmax(f1))
    nxt = ps[k + 1] if k + 1 < len(ps) else 0.0
    return float((ps[k] + nxt) / 2), float(f1[k])
