"""What the quality module's OpenAPI says of the defect answer (``serving/routers/quality.py`` applies it)."""

_NUMBER = {"type": "number"}
_ID = {"anyOf": [{"type": "string"}, {"type": "integer"}],
       "description": "the row's id as sent (a record's lot_id where it has no row_id), or 1..n"}
_LOG_ODDS = ("in log-odds of a defect (logit) on the served probability's scale: + raises the risk, - lowers it; "
             "+0.69 doubles the odds")

DEFECT_ROWS = {
    "row_id": _ID,
    "defect_probability": {"type": "number", "description": "the served probability of a defect, 0-1 (with the "
                           "drift prior: the network's combined with the line's recent failure rate)"},
    "defect_predicted": {"type": "integer", "enum": [0, 1], "description": "1 at or above the threshold (the "
                         "model's, GET /v1/quality/status; or the request's)"},
    "top_measurements": {"type": "string", "description": "explain: the top_k measurements' contributions and the "
                         f"recent failure rate's (recent_failure_rate), largest first, {_LOG_ODDS}: "
                         "recent_failure_rate:+0.812;f059:+0.410;f033:-0.220. Zero contributions are left out"},
    "top_measurement_values": {
        "type": "array", "description": "explain: the same entries, each with what a process engineer reads",
        "items": {"type": "object", "properties": {
            "measurement": {"type": "string", "description": "f001..f590, recent_failure_rate, or other (an MLP's "
                            "nonlinear remainder)"},
            "kind": {"type": "string", "enum": ["measurement", "missing_indicator", "recent_failure_rate", "other",
                                                "saturation"],
                     "description": "other: an MLP's nonlinear remainder; saturation: the network's output at the "
                     "log-odds' limit (+-9.21, a probability within 1e-4 of 0 or 1), the contributions beyond it"},
            "value": {"type": ["number", "null"], "description": "the value read (null: not sent, read as the "
                      "median); for recent_failure_rate the rate used"},
            "median": {"type": ["number", "null"], "description": "the training median (recent_failure_rate: the "
                       "training file's overall failure rate)"},
            "typical_range": {"type": ["array", "null"], "items": _NUMBER, "description": "the training wafers' "
                              "5th and 95th percentile (null for models trained before 2026-12)"},
            "z": {"type": ["number", "null"], "description": "robust z: (value - median) / IQR, before clipping"},
            "clipped": {"type": "boolean", "description": "the model read it as the +-5 clip"},
            "direction": {"type": "string", "description": "high, low, at median or missing: the value against "
                          "the median (not the sign of the contribution)"},
            "contribution": {"type": "number", "description": _LOG_ODDS},
            "source": {"type": "string", "enum": ["history", "given"], "description": "recent_failure_rate only: "
                       "from the line's recent wafers in the rows (history) or the caller's recent_failure_rate "
                       "(given, shrunk toward the overall rate as SFAI's own is)"},
            "sent": {"type": "number", "description": "recent_failure_rate with source given: the rate as sent"},
            "probability_change": {"type": "number", "description": "the served probability minus the one with "
                                   "this entry at its baseline (the measurement at its median, the rate at the "
                                   "overall rate): the change in risk, 0-1"},
        }}},
    "defect_logit": {"type": "number", "description": "explain: the served log-odds, logit(defect_probability) = "
                     "baseline_logit + the sum of every contribution (the listed ones and the rest)"},
    "baseline_logit": {"type": "number", "description": "explain: the log-odds of a median wafer (every measurement "
                       "at its training median) at the training file's overall failure rate"},
    "baseline_probability": {"type": "number", "description": "explain: that median wafer's probability"},
    "median_wafer_probability": {"type": "number", "description": "explain: a median wafer's probability at this "
                                 "wafer's recent failure rate"},
    "explained_share": {"type": "number", "description": "explain: the listed entries' share of the total "
                        "|contribution| (1: nothing left out)"},
    "measurements_missing": {"type": "integer", "description": "explain: the model's measurements not sent (read "
                             "as the training median)"},
}

DEFECT_WARNINGS = {
    "type": "array", "items": {"type": "string"},
    "description": "wafers read far outside the training data (most measurements outside their training range, or "
    "one reading far out), with most measurements missing, or tested over 7 days after the training file without "
    "recent_failure_rate; wafers without a test time (no timestamp, no recent_failure_rate: read at the training "
    "file's overall rate); a recent_failure_rate the model does not use (ignored); repeated row_ids; a batch over "
    "1,000 records not explained",
}

TOP_K = {"type": ["integer", "null"], "minimum": 1, "maximum": 590,
         "description": "defect, with explain: measurements listed per record (null: the model's, 5)"}
