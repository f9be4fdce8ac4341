"""Bad rows are set aside with a reason and counted; too many fail the run with a clear message."""

from __future__ import annotations

import json

import pytest

from pipelines.runner import run_pipeline
from serving.errors import InvalidInput
from tests.datasets import need

GOOD = "1 {c} -0.0007 -0.0004 100.0 518.67 641.82 1589.70 1400.60 14.62 21.61 554.36 2388.06 9046.19 1.30 47.47 " \
       "521.66 2388.02 8138.62 8.4195 0.03 392 2388 100.00 39.06 23.4190"


def _write(tmp_path, lines):
    p = tmp_path / "train_FD001.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_every_kind_of_bad_row_is_quarantined_with_its_reason(tmp_path, store):
    lines = [GOOD.format(c=c) for c in range(1, 41)]
    lines[4] = lines[4].replace("641.82", "abc")  # wrong type
    lines[9] = lines[9].replace("1589.70", "-3")  # impossible (negative temperature)
    lines[14] = GOOD.format(c=14)  # duplicate of cycle 14
    lines += ["2" + GOOD.format(c=c)[1:] for c in (5, 6, 3, 7)]  # unit 2: cycle 3 after 6 goes backwards
    rep = run_pipeline("cmapss", _write(tmp_path, lines), store=store, max_bad_share=0.5)
    assert rep.rows_quarantined == 4 and rep.rows_ok == 40 and rep.views["cmapss_features"] == 40
    assert rep.reasons == {"wrong type": 1, "impossible value": 1, "duplicate key": 1, "time goes backwards": 1}
    rows = [json.loads(x) for x in open(rep.quarantine, encoding="utf-8")]
    by_row = {r["source_row"]: r["reason"] for r in rows if r["table"] == "sensor_readings"}
    assert "not a number" in by_row[5] and "outside" in by_row[10]
    assert "duplicate key" in by_row[15] and "backwards" in by_row[43]
    assert rep.quarantine.startswith(str(store.settings.home / "quarantine" / "acme" / "cmapss"))


def test_too_many_bad_rows_fail_and_write_nothing(tmp_path, store):
    lines = [GOOD.format(c=c) for c in range(1, 21)]
    lines[3] = lines[3].replace("641.82", "abc")
    with pytest.raises(InvalidInput, match=r"1 of 20 rows \(5.0%\) failed validation, more than the allowed 1.0%"):
        run_pipeline("cmapss", _write(tmp_path, lines), store=store, max_bad_share=0.01)
    assert store.offline.row_count("acme", "cmapss_features") == 0
    assert list((store.settings.home / "quarantine" / "acme" / "cmapss").glob("*.jsonl"))


def test_real_files_are_clean(store):
    rep = run_pipeline("secom", need("secom/secom_train.csv"), store=store, write_online=False)
    assert rep.rows_quarantined == 0 and rep.quarantine is None
    assert rep.missing["missing_cells"] == 33_498 and rep.missing["strategy"] == "keep"
