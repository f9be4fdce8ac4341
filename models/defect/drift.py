"""The line's recent failure rate, a prior for defect prediction (numpy only: used at prediction time too).

Wafer failure rates drift over weeks (SECOM: 23 % of July's wafers failed, 2 % of September's), and the
measurements do not carry all of that drift. A fab knows the outcome of the wafers it tested before: the
failure rate over the last ``window`` labelled wafers before a wafer's test time is a legitimate input for
that wafer. Only wafers strictly earlier than the one scored are read, never later ones.

The model's probability and the recent rate are combined by a two-input logistic regression
(``logit p = a * logit(model) + b * logit(rate) + c``) fitted on held-out validation scores, so the network
itself is unchanged (ONNX parity holds) and a file without timestamps scores with the overall rate (the
combination then only recalibrates).

The regression is fitted class-balanced (failures weighted by n_pass/n_fail, the weighting under which the
slopes ``a``, ``b`` were validated), which moves its intercept by log(n_pass/n_fail): a balanced fit of SECOM's
6.5 % failures averaged ~0.47. ``fit_combiner`` takes that shift back out (the prior correction of a
case-control logistic fit), so the combined probability is calibrated to the real failure rate (on average and
per decile, measured on held-out splits: docs/quality_energy_models.md). It is a constant on the logit, so the
ranking, the AUC and the balanced accuracy at the (equally shifted) threshold are unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.errors import InvalidInput, shown

TIMESTAMP = "timestamp"
# an online-store row of ``secom_features`` carries the wafer's test time here (UTC), not in ``timestamp``
EVENT_TIMESTAMP = "event_timestamp"
SECOM_FORMAT = "%d/%m/%Y %H:%M:%S"
# day first, as the SECOM file writes it, and as a spreadsheet saves it again: Excel drops the seconds
# (``19/07/2008 11:55``) and writes dots in a German locale (``19.07.2008 11:55``); both had been refused
DAY_FIRST = (SECOM_FORMAT, "%d/%m/%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M")
DAY_FIRST_TEXT = ", ".join(DAY_FIRST[:-1]) + f" or {DAY_FIRST[-1]}"  # as the ingest's quarantine names them
FORMATS = ("dd/mm/yyyy HH:MM:SS (the SECOM file's; also without the seconds, or with dots: dd.mm.yyyy HH:MM) or "
           "ISO 8601 (2008-07-19T11:55:00, optionally with a UTC offset)")
PSEUDO = 5.0  # pseudo-wafers at the overall rate: a window of few wafers leans on the overall rate
EPS = 1e-4


def stamps(df: pd.DataFrame) -> np.ndarray | None:
    """Test times in seconds since the epoch, UTC (NaN where a row has none); None without a time column.

    A row's time is its ``timestamp`` (the SECOM file's column), else its ``event_timestamp``: an online-store row
    carries the test time only there, and a wafer looked up by its id must score as the same wafer sent inline.
    Times without an offset are UTC, as the feature store reads the SECOM file. An empty cell is no time (the
    overall rate); a value that reads as neither format is refused, naming the column and row: dropped silently
    it would change the answer."""
    cols = [c for c in (TIMESTAMP, EVENT_TIMESTAMP) if c in df.columns]
    if not cols:
        return None
    out = np.full(len(df), np.nan)
    for c in cols:
        out = np.where(np.isnan(out), _column_seconds(df[c], c), out)
    return out


def near_time_column(columns: object) -> str | None:
    """A column that is not read as the test time but looks meant to be (``Timestamp``, ``TIMESTAMP``, ``timestamp ``
    from a spreadsheet's header): named in the warnings about wafers without a test time."""
    near = [str(c) for c in columns if isinstance(c, str) and c not in (TIMESTAMP, EVENT_TIMESTAMP)
            and c.strip().lower() in (TIMESTAMP, EVENT_TIMESTAMP)]
    return near[0] if near else None


def _column_seconds(col: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(col):  # an Arrow or Parquet body's time column
        return _seconds(col)
    raw = col.astype("string").str.strip()
    secom = _seconds(day_first(raw))  # the SECOM file's format, and as a spreadsheet saves it
    iso = _seconds(pd.to_datetime(raw, format="ISO8601", errors="coerce", utc=True))  # API callers, the store
    out = np.where(np.isnan(secom), iso, secom)
    bad = np.isnan(out) & (raw.fillna("") != "").to_numpy()
    if bad.any():
        i = int(bad.argmax())
        raise InvalidInput(f"column {name!r} row {i + 1} holds {shown(col.iloc[i])}, not a test time: {FORMATS}")
    return out


def day_first(col: pd.Series) -> pd.Series:
    """Text test times read as each of ``DAY_FIRST`` in turn (naive, no zone); NaT where none reads. Shared by
    ``sfai ingest secom`` and the defect model's inputs, so a file one accepts the other reads."""
    raw = col.astype("string").str.strip()
    out = pd.to_datetime(raw, format=DAY_FIRST[0], errors="coerce")
    for fmt in DAY_FIRST[1:]:
        if out.notna().all():
            break
        out = out.where(out.notna(), pd.to_datetime(raw, format=fmt, errors="coerce"))
    return out


def _seconds(parsed: pd.Series) -> np.ndarray:
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(None)
    return ((parsed - pd.Timestamp(0)).dt.total_seconds()).to_numpy(dtype=float, na_value=np.nan)


def history(times: np.ndarray, y: np.ndarray, window: int) -> dict:
    """What the manifest keeps: labelled test times (sorted) and the overall rate."""
    ok = ~np.isnan(times)
    order = np.argsort(times[ok], kind="stable")
    return {
        "window": int(window),
        "prior": float((y.sum() + 1) / (len(y) + 2)),
        "t": times[ok][order].tolist(),
        "y": y[ok][order].astype(int).tolist(),
    }


def recent_rate(hist: dict, times: np.ndarray | None, n: int) -> np.ndarray:
    """For each of ``n`` rows: the failure rate over the ``window`` history wafers tested strictly before it,
    shrunk towards the overall rate; the overall rate where the row has no time."""
    prior = float(hist["prior"])
    if times is None or not hist["t"]:
        return np.full(n, prior)
    t, y = np.asarray(hist["t"], float), np.asarray(hist["y"], float)
    cs = np.concatenate([[0.0], np.cumsum(y)])
    known = ~np.isnan(times)
    pos = np.searchsorted(t, np.where(known, times, -np.inf), side="left")
    lo = np.maximum(0, pos - int(hist["window"]))
    rate = (cs[pos] - cs[lo] + PSEUDO * prior) / (pos - lo + PSEUDO)
    return np.where(known, rate, prior)


def given_rate(value: object) -> float:
    """A caller's recent failure rate, checked: a number from 0 to 1 (``shrunk`` makes it a rate the model reads)."""
    try:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    except OverflowError:  # an integer past float's range
        number = None
    if number is None or not 0.0 <= number <= 1.0:
        raise InvalidInput(f"recent_failure_rate must be a share of failed wafers from 0 to 1 (0.065 for 6.5 %); "
                           f"got {shown(value)}")
    return float(number)


def shrunk(rate: float, hist: dict) -> float:
    """A caller's rate as the model reads it: as if measured over the model's ``window`` wafers and shrunk towards
    the overall rate with ``PSEUDO`` pseudo-wafers, exactly as ``recent_rate`` treats a rate SFAI computes from the
    history. A line with no failures in its recent wafers (0) then reads 5/55 of the overall rate (0.0064 for
    SECOM's), as the same history computed by SFAI does; it had been clipped to 1e-4, which scored every wafer about
    8 times lower (process-engineer audit)."""
    window, prior = float(hist["window"]), float(hist["prior"])
    return (rate * window + PSEUDO * prior) / (window + PSEUDO)


def logit(p: np.ndarray) -> np.ndarray:
    """The log-odds the combiner reads (probabilities kept ``EPS`` off 0 and 1)."""
    return _logit(p)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def fit_combiner(model_p: np.ndarray, rate: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> list[float]:
    """[a, b, c] of the class-balanced logistic regression of ``y`` on (logit model_p, logit rate) (Newton),
    with the intercept ``c`` corrected for the class prior: ``combine`` then gives calibrated probabilities."""
    x = np.column_stack([_logit(model_p), _logit(rate), np.ones(len(y))])
    rate_y = float(np.clip(np.mean(y), EPS, 1 - EPS))
    w = np.where(y == 1, 0.5 / rate_y, 0.5 / (1 - rate_y))  # balanced classes
    beta = np.array([1.0, 0.0, 0.0])
    for _ in range(50):
        p = 1 / (1 + np.exp(-(x @ beta)))
        grad = x.T @ (w * (p - y)) + l2 * np.r_[beta[:2], 0.0]
        hess = (x * (w * p * (1 - p))[:, None]).T @ x + np.diag([l2, l2, 1e-9])
        step = np.clip(np.linalg.lstsq(hess, grad, rcond=None)[0], -2.0, 2.0)  # damped: never a wild jump
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    # the balanced weights multiply the odds of a failure by (1 - rate)/rate; take that back out of the intercept
    beta[2] -= np.log((1 - rate_y) / rate_y)
    return [float(v) for v in beta]


def combine(coef: list[float], model_p: np.ndarray, rate: np.ndarray) -> np.ndarray:
    a, b, c = coef
    return 1 / (1 + np.exp(-(a * _logit(model_p) + b * _logit(rate) + c)))
