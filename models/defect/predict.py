"""Score wafers with an exported defect model (ONNX Runtime only: this module never imports torch).

``predict`` returns the contract's columns ``row_id,defect_probability,defect_predicted``; ``explain`` adds, per
wafer, what moved its served probability, on the served log-odds scale (``EXPLAIN_COLUMNS``).

How an explanation adds up. The served probability is ``sigmoid(L)`` with the log-odds (logit)
``L = a * net_logit + b * logit(rate) + c`` where the model has the drift prior (``drift.py``; ``a, b, c`` are
the manifest's ``drift.coef``), else ``L = net_logit``. The network is a logistic model of robust z-scores, so
``net_logit = net_logit(median wafer) + sum_j w_j * z_j``. Hence

    L = baseline_logit + sum_j a * w_j * z_j + b * (logit(rate) - logit(overall rate))

``baseline_logit`` is a median wafer (every measurement at its training median) at the training file's overall
failure rate; each measurement contributes ``a * w_j * z_j`` and the line's recent failure rate its own entry,
``recent_failure_rate``. The contributions and the baseline add up to the served log-odds (``defect_logit``); an
MLP (``hidden > 0``) is approximated by its mean input gradients and the rest is an entry ``other``. A
contribution of +0.69 doubles the odds of a defect (+ raises the risk, - lowers it); ``probability_change`` says
the same as the change in the served probability against that entry at its baseline (the measurement at its
median, the rate at the overall rate).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from models.defect import drift as D
from models.defect import features as F
from models.rowids import frame_ids
from serving.errors import InvalidInput
from serving.runtime import OnnxModel

COLUMNS = ["row_id", "defect_probability", "defect_predicted"]
# what ``explain`` adds after the contract's columns (the CLI's --explain writes them in this order)
EXPLAIN_COLUMNS = ["top_measurements", "top_measurement_values", "defect_logit", "baseline_logit",
                   "baseline_probability", "median_wafer_probability", "explained_share", "measurements_missing"]
RATE = "recent_failure_rate"  # the drift prior's entry among the contributions
OTHER = "other"  # an MLP's remainder (what its mean gradients do not account for)
SATURATED = "saturation"  # the network's output at the log-odds' limit: what the contributions add beyond it
log = logging.getLogger("sfai.defect")
# a wafer tested this long after the training file's last one gets that file's last wafers' failure rate as its
# "recent" rate, which no longer follows the line: said, with what to send instead
STALE_DAYS = 7
# a wafer with more than this share of the model's measurements missing is scored mostly from training medians
MOSTLY_MISSING = 0.5
ZERO = 5e-4  # a contribution that prints as +0.000: not listed
API_EXPLAIN_LIMIT = 1_000  # serving.predictions.EXPLAIN_BY_DEFAULT: the API explains batches up to this by default
MAX_TOP_K = 590


class _Scored:
    """One frame scored: its measurements as read (``x``), model inputs (``z``), the network's and the served
    probability, each row's recent failure rate where the drift prior is used (else None), and the notes."""

    def __init__(self, x: np.ndarray, z: np.ndarray, net: np.ndarray, prob: np.ndarray, rates: np.ndarray | None,
                 notes: dict, given: float | None = None) -> None:
        self.x, self.z, self.net, self.prob, self.rates, self.notes = x, z, net, prob, rates, notes
        self.given = given  # the caller's recent_failure_rate as sent (``rates`` holds it as read)


def _score_rows(model: OnnxModel, df: pd.DataFrame, recent_failure_rate: float | None = None) -> _Scored:
    """The rows' probabilities; with the model's drift prior, the probability combines the network's with the
    line's recent failure rate before each wafer (``drift.py``): ``recent_failure_rate`` where the caller gives it
    (the line's current yield, read as SFAI reads its own: ``drift.shrunk``), else the rate of the training wafers
    before each one's test time (after the training file: its last ``drift_window`` wafers')."""
    stats = model.manifest["feature_stats"]
    x = F.numeric_matrix(df, list(stats["measurements"]))  # read once: the scores, the notes, the explanations
    z = F.transform(df, stats, scoring=True, x=x)
    net = model.run({"x": z})["y"][:, 0] if len(z) else np.zeros(0, dtype=np.float32)
    prob = net
    drift = model.manifest.get("drift")
    times = D.stamps(df)  # read even where the model has no drift prior: an unreadable test time is refused
    given = None if recent_failure_rate is None else D.given_rate(recent_failure_rate)  # 1.5 is a 422 either way
    notes: dict = {"rows": len(z), **F.range_findings(df, stats, x)}
    if given is not None and not drift:
        # a model promoted without the prior: the MES that sends its line's rate keeps being answered (from the
        # measurements alone), and told, rather than refused with a 422 on every call
        notes["rate_ignored"] = {"rate": given}
    rates = None
    if drift and len(z):
        rates = np.full(len(z), D.shrunk(given, drift)) if given is not None else D.recent_rate(drift, times, len(z))
        prob = D.combine(drift["coef"], net, rates)
        if given is None:
            notes.update(_stale(drift, times, rates))
            notes.update(_untimed(df, drift, times))
    if len(z) and stats["measurements"]:
        missing = np.isnan(x).sum(1)
        mostly = np.flatnonzero(missing > MOSTLY_MISSING * x.shape[1])
        if len(mostly):
            notes["missing"] = {"count": len(mostly), "of": x.shape[1],
                                "first": [[F._wafer(df, i), int(missing[i])] for i in mostly[:5]]}
    return _Scored(x, z, net, prob, rates, notes, given)


def _stale(drift: dict, times: np.ndarray | None, rates: np.ndarray) -> dict:
    """Wafers tested over ``STALE_DAYS`` after the training file's last wafer: their recent rate is that file's
    last wafers', which drives the flag more than their measurements do (a plant's later wafers had all been
    flagged: process-engineer audit)."""
    if times is None or not drift.get("t"):
        return {}
    last = float(drift["t"][-1])
    late = np.flatnonzero(times > last + STALE_DAYS * 86400.0)
    if not len(late):
        return {}
    return {"stale": {"count": len(late), "last": last, "window": int(drift["window"]),
                      "rate": float(rates[late[0]])}}


def _untimed(df: pd.DataFrame, drift: dict, times: np.ndarray | None) -> dict:
    """Wafers without a test time (no ``timestamp`` column, or an empty cell) and no rate given: their recent
    failure rate is the training file's overall rate, which is not the line's. It had been used without a word,
    and it moves the answer: 6 of the first 20 SECOM wafers changed their flag when the column was left out
    (process-engineer walkthrough)."""
    untimed = np.ones(len(df), dtype=bool) if times is None else np.isnan(times)
    if not untimed.any():
        return {}
    return {"untimed": {"count": int(untimed.sum()), "column": times is None, "near": D.near_time_column(df.columns),
                        "rate": float(drift["prior"]),
                        "first": [F._wafer(df, int(i)) for i in np.flatnonzero(untimed)[:5]]}}


def score(model: OnnxModel, df: pd.DataFrame, *, explain: bool | None = False, top_k: int | None = None,
          top: int | None = None, recent_failure_rate: float | None = None, threshold: float | None = None,
          warn: bool = True) -> pd.DataFrame:
    """The contract columns for rows already read (``row_id`` 1..n where the rows have none, their ``lot_id``
    where they carry the feature store's key instead, as a file is read).

    ``explain`` adds ``EXPLAIN_COLUMNS`` (module docstring): ``top_measurements`` (``recent_failure_rate:+0.812;
    f059:+0.410;...``: the ``top_k`` largest measurement contributions, default the manifest's ``config.top_k``
    (5), and the recent failure rate's, in served log-odds, largest first; contributions of zero are left out),
    ``top_measurement_values`` (the same entries with the value, the training median and typical range, the robust
    z and whether it was clipped), the served log-odds, the baseline and the share of the total |contribution|
    listed. ``explain=None``: not asked for and left out for the batch's size (the API's default), said in the
    warnings. ``top`` is the older name of ``top_k``.
    ``recent_failure_rate`` (0-1): the line's current failure rate, used for every row instead of the training
    history's (ignored, with a warning, by a model without the drift prior); ``threshold``: the decision
    threshold for ``defect_predicted`` instead of the shipped one. ``warn``: log the warnings (the batch scorer
    logs a file's once, from every chunk's ``attrs["notes"]``)."""
    if F.ID not in df.columns and F.STORE_KEY in df.columns:  # the store's key is the wafer's id (as read_rows)
        df = df.rename(columns={F.STORE_KEY: F.ID})
    s = _score_rows(model, df, recent_failure_rate)
    m = model.manifest
    ids = frame_ids(df, F.ID)
    out = pd.DataFrame(
        {
            "row_id": ids,
            "defect_probability": np.round(s.prob.astype(float), 6),
            "defect_predicted": (s.prob >= float(m["threshold"] if threshold is None else threshold)).astype(int),
        },
        columns=COLUMNS,
    )
    notes = s.notes
    if F.ID in df.columns and len(ids):
        text = pd.Series(ids).astype(str)
        repeated = text.duplicated().to_numpy()
        if repeated.any():
            notes["repeated_ids"] = {"count": int(repeated.sum()), "first": str(text.iloc[int(repeated.argmax())])}
    if explain:
        k = _top_k(top_k if top_k is not None else top, m)
        for name, values in _explain(model, s, k).items():
            out[name] = values
    elif explain is None:
        notes["explain_dropped"] = {"count": len(out)}
    out.attrs["notes"] = notes
    out.attrs["warnings"] = render_notes(notes)
    if warn:
        for line in out.attrs["warnings"]:
            log.warning("%s", line)
    return out


def _top_k(value: object, manifest: dict) -> int:
    if value is None:
        return int(manifest.get("config", {}).get("top_k", 5))
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= int(value) <= MAX_TOP_K:
        raise InvalidInput(f'"top_k" must be a whole number of measurements from 1 to {MAX_TOP_K} (default: the '
                           f"model's {int(manifest.get('config', {}).get('top_k', 5))}); got {value!r}")
    return int(value)


def _net_logit_of_the_median_wafer(model: OnnxModel) -> float:
    """The network's log-odds for a wafer whose every measurement is at its training median (z = 0, no
    missing-value indicator set): the explanation's baseline, computed once per loaded model."""
    def make(m: OnnxModel) -> float:
        zero = np.zeros((1, len(m.manifest["features"])), dtype=np.float32)
        return float(D.logit(m.run({"x": zero})["y"][:, 0])[0])

    return model.derived("defect.median_net_logit", make)


def _explain(model: OnnxModel, s: _Scored, k: int) -> dict:
    """The explanation columns (``EXPLAIN_COLUMNS``) of the scored rows."""
    m = model.manifest
    stats, names = m["feature_stats"], m["features"]
    n_meas = len(stats["measurements"])
    drift = m.get("drift") if s.rates is not None else None
    a, b, c = (float(v) for v in drift["coef"]) if drift else (1.0, 0.0, 0.0)
    contrib = s.z.astype(np.float64)
    contrib *= a * np.asarray(m["contribution_weights"], float)  # served log-odds, per feature
    net_logit = D.logit(s.net)
    saturated = np.abs(net_logit) >= float(D.logit(1 - D.EPS)) - 1e-9  # read at the clip
    base = a * _net_logit_of_the_median_wafer(model)
    if drift:
        prior = float(drift["prior"])
        base += b * float(D.logit(prior)) + c
        rate_term = b * (D.logit(s.rates) - D.logit(prior))
        served = a * net_logit + b * D.logit(s.rates) + c
    else:
        prior, rate_term, served = None, np.zeros(len(s.z)), net_logit
    other = served - base - rate_term - contrib.sum(1)  # ~0 for the logistic model; an MLP's nonlinearity
    total = np.abs(contrib).sum(1) + np.abs(rate_term) + np.abs(other)
    k = min(k, contrib.shape[1])
    order = np.argpartition(-np.abs(contrib), k - 1, axis=1)[:, :k] if k < contrib.shape[1] else \
        np.tile(np.arange(contrib.shape[1]), (len(contrib), 1))
    median, scale = np.asarray(stats["median"], float), np.asarray(stats["scale"], float)
    p05, p95 = stats.get("p05"), stats.get("p95")
    pos = {cname: j for j, cname in enumerate(stats["measurements"])}
    clip = float(stats["clip"])
    texts, details, shares = [], [], []
    for i in range(len(s.z)):
        p, logit_i = float(s.prob[i]), float(served[i])
        entries = []  # (name, contribution, detail)
        for j in order[i]:
            cj = float(contrib[i, j])
            if abs(cj) < ZERO:
                continue
            entries.append((names[j], cj, _measurement(names[j], j, n_meas, pos, s.x[i], median, scale, p05, p95,
                                                        clip)))
        if drift and abs(rate_term[i]) >= ZERO:
            r = float(s.rates[i])
            entries.append((RATE, float(rate_term[i]), {
                "measurement": RATE, "kind": RATE, "value": round(r, 4), "median": round(prior, 4),
                "typical_range": None, "z": None, "clipped": False,
                "direction": "high" if r > prior else "low" if r < prior else "at median",
                "source": "history" if s.given is None else "given", **({} if s.given is None else {"sent": s.given})}))
        if abs(other[i]) >= 0.01:
            # a network output within EPS of 0 or 1 is read at that limit (D.logit): the contributions past it do
            # not move the risk, and the remainder is that, not an MLP's nonlinearity (review: "other -4.55" on a
            # logistic model's wafer at p = 0.999999)
            at_limit = bool(saturated[i])
            name = SATURATED if at_limit else OTHER
            entries.append((name, float(other[i]), {
                "measurement": name, "kind": name, "value": None, "median": None, "typical_range": None,
                "z": None, "clipped": False, "direction": "at the model's limit" if at_limit else "nonlinear"}))
        entries.sort(key=lambda e: -abs(e[1]))
        row = []
        for _name, cj, detail in entries:
            detail["contribution"] = round(cj, 3)
            detail["probability_change"] = round(p - float(_sigmoid(logit_i - cj)), 4)
            row.append(detail)
        texts.append(";".join(f"{name}:{cj:+.3f}" for name, cj, _ in entries))
        details.append(row)
        listed = sum(abs(cj) for _, cj, _ in entries)
        shares.append(round(listed / float(total[i]), 3) if total[i] > 0 else 1.0)
    return {
        "top_measurements": texts,
        "top_measurement_values": details,
        "defect_logit": np.round(served, 4),
        "baseline_logit": np.full(len(s.z), round(base, 4)),
        "baseline_probability": np.full(len(s.z), round(float(_sigmoid(base)), 6)),
        "median_wafer_probability": np.round(_sigmoid(base + rate_term), 6),
        "explained_share": shares,
        "measurements_missing": np.isnan(s.x).sum(1).astype(int),
    }


def _sigmoid(v: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(v, float)))


def _measurement(name: str, j: int, n_meas: int, pos: dict, x: np.ndarray, median: np.ndarray, scale: np.ndarray,
                 p05: list | None, p95: list | None, clip: float) -> dict:
    """One measurement as an engineer reads it: the value sent, the training median and typical range (5th-95th
    percentile, models trained before 2026-12 keep none), the robust z (distance from the median in IQRs, before
    the +-clip) with ``clipped`` where the model read it as the clip, and whether it was ``high`` or ``low``
    against the median (``missing``: not sent, read as the median). A ``..._missing`` indicator names the
    measurement whose absence counts."""
    base = name.removesuffix("_missing") if j >= n_meas else name
    col = pos[base]
    value = float(x[col])
    seen = not np.isnan(value)
    med = float(median[col])
    zraw = (value - med) / float(scale[col]) if seen else None
    return {
        "measurement": base,
        "kind": "missing_indicator" if j >= n_meas else "measurement",
        "value": float(f"{value:.6g}") if seen else None,
        "median": float(f"{med:.6g}"),
        "typical_range": [float(f"{p05[col]:.6g}"), float(f"{p95[col]:.6g}")] if p05 is not None and p95 is not None
        else None,
        "z": round(zraw, 2) if zraw is not None else None,
        "clipped": bool(zraw is not None and abs(zraw) > clip),
        "direction": ("high" if value > med else "low" if value < med else "at median") if seen else "missing",
    }


# notes ----------------------------------------------------------------------------------------------------------
# ``score`` keeps what it found about its rows as counts and the first few wafers (``attrs["notes"]``), so that the
# batch scorer can add up a file's chunks and say each thing once, with the file's totals (``merge_notes``).

def merge_notes(a: dict, b: dict) -> dict:
    """Two chunks' notes as one file's: counts added, the first few wafers kept."""
    out = {**a}
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == "rows":
            out[key] = out[key] + value
        elif isinstance(value, dict):
            mine = dict(out[key])
            if "count" in value:
                mine["count"] = mine.get("count", 0) + value["count"]
            if isinstance(value.get("first"), list):
                mine["first"] = (mine.get("first") or [])[:5] + value["first"][: max(0, 5 - len(mine.get("first")
                                                                                               or []))]
            out[key] = mine
    return out


def render_notes(notes: dict) -> list[str]:
    """The notes as warnings, in words."""
    out = []
    rows = int(notes.get("rows", 0))
    if "missing" in notes:
        n = notes["missing"]
        of = int(n["of"])
        if n["count"] == 1:
            wafer, miss = n["first"][0]
            out.append(f"wafer {wafer}: {miss} of {of} measurements were missing and read as the training median: "
                       f"its probability rests on the {of - miss} sent")
        else:
            named = "; ".join(f"{w}: {miss} of {of}" for w, miss in n["first"])
            more = f"; and {n['count'] - len(n['first'])} more" if n["count"] > len(n["first"]) else ""
            out.append(f"{n['count']} of {rows} wafers had most of their measurements missing, read as the training "
                       f"median ({named}{more}): their probabilities rest on the few measurements sent")
    if "outside" in notes:
        n = notes["outside"]
        named = ", ".join(f"{w} ({share:.0%})" for w, share in n["first"])
        more = f" and {n['count'] - len(n['first'])} more" if n["count"] > len(n["first"]) else ""
        out.append(f"wafers {named}{more}: most of their measurements lie outside the ranges the model was trained "
                   "on; are they in the training file's units, or has the process changed? Their probability is "
                   "read from values clipped to the training spread: retrain on the current process")
    if "far" in notes:
        n, f = notes["far"], notes["far"]["first"]
        more = f" ({n['count'] - 1} more such readings)" if n["count"] > 1 else ""
        out.append(f"wafer {f['wafer']}: {f['column']} = {f['value']:.6g} lies far outside its training range "
                   f"({f['low']:.6g} to {f['high']:.6g}){more}: a unit or column mix-up? It is read as the edge of "
                   "the training spread")
    if "stale" in notes:
        n = notes["stale"]
        when = datetime.fromtimestamp(float(n["last"]), UTC).strftime("%Y-%m-%d %H:%M")
        out.append(f"{n['count']} of {rows} wafers were tested more than {STALE_DAYS} days after the training "
                   f"file's last wafer ({when} UTC): their recent failure rate is taken as that file's last "
                   f"{n['window']} wafers' ({float(n['rate']):.3f}), which no longer follows the line; send the "
                   "line's current rate as recent_failure_rate (sfai predict defect --recent-failure-rate), or "
                   "retrain on recent wafers")
    if "untimed" in notes:
        n = notes["untimed"]
        one = n["count"] == 1
        which = f"{n['count']} of {rows} wafers ha{'s' if one else 've'}"
        near = (f"; its column {n['near']!r} is not read: name it {D.TIMESTAMP!r}" if n.get("near") else "")
        why = f"the input has no timestamp column{near}" if n["column"] else (
            "an empty timestamp: " + ", ".join(n["first"]) + (" and more" if n["count"] > len(n["first"]) else ""))
        out.append(f"{which} no test time ({why}): {'its' if one else 'their'} recent failure rate is taken as the "
                   f"training file's overall "
                   f"rate ({float(n['rate']):.3f}), not the line's; send each wafer's timestamp (dd/mm/yyyy "
                   "HH:MM:SS or ISO 8601), or the line's current rate as recent_failure_rate (sfai predict defect "
                   "--recent-failure-rate)")
    if "rate_ignored" in notes:
        out.append(f"recent_failure_rate {notes['rate_ignored']['rate']:g} was ignored: this defect model does not "
                   "use the line's recent failure rate (trained without test times or without validation "
                   "(n_splits=0), or the rate did not help in validation); its probabilities come from the "
                   "measurements alone")
    if "repeated_ids" in notes:
        n = notes["repeated_ids"]
        out.append(f"{n['count']} record(s) repeat the row_id of an earlier one (the first: {n['first']!r}): each is "
                   "answered on its own row, in the order sent; match the answers by position, not by row_id")
    if "explain_dropped" in notes:
        out.append(f"no top_measurements: a batch of {notes['explain_dropped']['count']} records is explained only "
                   f'when asked ("explain": true; on by default up to {API_EXPLAIN_LIMIT:,} records)')
    return out


# operating points -----------------------------------------------------------------------------------------------

def threshold_for_recall(manifest: dict, target: float) -> dict:
    """The validation operating point for a recall target (the share of failing wafers to flag): the highest
    threshold whose pooled held-out recall is at least ``target``, with the precision and flag rate it had. From
    the manifest's ``operating_points`` (models trained since 2026-12; ``sfai models show`` prints them)."""
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0.0 < float(target) <= 1.0:
        raise InvalidInput(f"recall target must be a share of failing wafers to flag, above 0 and at most 1; got "
                           f"{target!r}")
    curve = (manifest.get("operating_points") or {}).get("curve") or []
    if not curve:
        raise InvalidInput("this defect model keeps no validation operating points (trained before 2026-12, or "
                           "with n_splits=0): retrain it with validation, or give --threshold")
    ok = [p for p in curve if p["recall"] >= float(target) - 1e-12]
    return max(ok, key=lambda p: p["threshold"]) if ok else min(curve, key=lambda p: p["threshold"])


check_fields = F.check_fields  # the columns of an Arrow or Parquet body (serving.predictions.records_frame)


def records_frame(records: list[dict]) -> pd.DataFrame:
    """API records (JSON, or online-store rows) as the frame :func:`score` reads; a field that is neither a
    measurement nor one of the known extras (id, label, test time, online-store keys) is refused, naming it. Files
    are read as they are (``read_rows``). A record with ``lot_id`` and no ``row_id`` is answered under its
    ``lot_id``, as a file's row is (``score``).

    A record lacking a measurement that others in the batch carry has it missing, as JSON null or ``""`` (a blank
    CSV cell); a measurement no record carries is refused (``input lacks the measurement column``), as a file
    lacking the column is, and so is a record with none of the model's measurements (``score``)."""
    frame = pd.DataFrame.from_records(records)
    F.check_fields(frame.columns)  # the columns are every record's fields
    return frame


def csv_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """The scored frame as a CSV holds it: ``top_measurement_values`` (a list of objects) as JSON text."""
    if "top_measurement_values" in frame.columns:
        frame = frame.assign(top_measurement_values=[v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
                                                     for v in frame["top_measurement_values"]])
    return frame


def predict(model: OnnxModel, input_path: Path, dataset: str, *, start=None, horizon=96,  # noqa: ANN001
            recent_failure_rate: float | None = None, threshold: float | None = None, explain: bool = False,
            top_k: int | None = None, **_) -> pd.DataFrame:
    return score(model, F.read_rows(input_path), recent_failure_rate=recent_failure_rate, threshold=threshold,
                 explain=explain, top_k=top_k)


def explain(model: OnnxModel, input_path: Path, *, top_k: int | None = None,
            recent_failure_rate: float | None = None) -> pd.DataFrame:
    """The contract columns plus ``EXPLAIN_COLUMNS``; ``top_k`` measurements per wafer (default None: the
    manifest's ``config.top_k``, 5 for the shipped model)."""
    return score(model, F.read_rows(input_path), explain=True, top_k=top_k, recent_failure_rate=recent_failure_rate)


def validation_summary(manifest: dict, top: int) -> dict:
    """A defect model's validation operating points (without the full curve) and its ``top`` measurements by global
    importance, as ``sfai models show`` and ``GET /v1/quality/status`` give them (empty for older models)."""
    out: dict = {}
    points = manifest.get("operating_points")
    if points:
        out["operating_points"] = {k: v for k, v in points.items() if k != "curve"}
    importance = manifest.get("global_importance")
    if importance:
        out["global_importance"] = {**importance, "features": importance["features"][:top]}
    return out
