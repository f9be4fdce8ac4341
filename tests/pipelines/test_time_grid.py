"""Lags and rolling windows count time steps of a regular grid per entity, not rows: a row that is missing
(quarantined, or absent in the source) reads as missing, it does not shift the rows after it. On data without
gaps the features are what they were (the real-data runs in the other tests are bit-identical)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipelines.adapters import cmapss, steel_energy
from pipelines.jobs import get_job
from pipelines.runner import run_pipeline, transform
from pipelines.transforms import steel, turbofan
from pipelines.transforms.rolling import STATS, lags, rolling_stats
from pipelines.validate import validate
from serving.errors import InvalidInput
from tests.pipelines.test_bad_input import CMAPSS_ROW, one_line, set_field, steel_lines, write

WINDOW_STATS = ("mean", "std", "min", "max")


def _assert_bits(a: pd.Series | np.ndarray, b: pd.Series | np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), what


def _brute(values: dict[int, float], s: int, w: int, stat: str) -> float:
    """``stat`` over the steps s-w+1 .. s that have a value (the reference definition)."""
    v = np.array([values[t] for t in range(s - w + 1, s + 1) if t in values and not np.isnan(values[t])])
    if stat == "std":
        return float(np.std(v, ddof=1)) if len(v) > 1 else np.nan
    if stat == "slope":
        t = np.array([t for t in range(s - w + 1, s + 1) if t in values and not np.isnan(values[t])], dtype=float)
        return float(np.polyfit(t, v, 1)[0]) if len(v) > 1 else np.nan
    return float(getattr(np, stat)(v)) if len(v) else np.nan


def _check_gap(full: pd.DataFrame, gap: pd.DataFrame, steps_full: np.ndarray, steps_gap: np.ndarray,
               removed: int, cols: list[str], lag_list, windows, series: dict[str, dict[int, float]]) -> None:
    """Rows of ``gap`` (the series without step ``removed``) against the rows of ``full`` with the same step:
    identical where the feature does not need the removed step, missing (lags) or the window over the steps
    that exist (windows) where it does."""
    at = {int(s): i for i, s in enumerate(steps_full)}
    idx = np.array([at[int(s)] for s in steps_gap])
    for c in cols:
        for k in lag_list:
            name = f"{c}_lag_{k}"
            needs = steps_gap - k == removed
            _assert_bits(gap[name].to_numpy()[~needs], full[name].to_numpy()[idx[~needs]], name)
            assert needs.sum() == 1 and np.isnan(gap[name].to_numpy()[needs]).all(), name
        for w in windows:
            needs = (steps_gap >= removed) & (steps_gap - w < removed)
            assert needs.any()
            for stat in (s for s in STATS if f"{c}_{s}_{w}" in gap.columns):
                name = f"{c}_{stat}_{w}"
                got = gap[name].to_numpy()
                _assert_bits(got[~needs], full[name].to_numpy()[idx[~needs]], name)
                ref = [_brute(series[c], int(s), w, stat) for s in steps_gap[needs]]
                np.testing.assert_allclose(got[needs], np.array(ref, dtype=np.float32), rtol=2e-4, atol=1e-5,
                                           equal_nan=True, err_msg=name)


def test_rolling_helpers_count_steps_not_rows():
    rng = np.random.default_rng(3)
    steps = np.r_[np.arange(10, 40), np.arange(5, 25)]
    df = pd.DataFrame({"k": ["a"] * 30 + ["b"] * 20, "s": steps, "v": rng.normal(size=50)})
    lag_list, windows = (1, 3), (4, 7)
    full_lag = lags(df, key="k", columns=["v"], lags=lag_list, step="s")
    full_roll = rolling_stats(df, key="k", columns=["v"], windows=windows, step="s")
    # on a gapless grid, step counting is row counting, bit for bit
    for f, g in ((full_lag, lags(df, key="k", columns=["v"], lags=lag_list)),
                 (full_roll, rolling_stats(df, key="k", columns=["v"], windows=windows))):
        for c in f.columns:
            _assert_bits(f[c], g[c], c)
    removed_row = 15  # step 25 of entity a
    gap = df.drop(index=removed_row).reset_index(drop=True)
    g = pd.concat([lags(gap, key="k", columns=["v"], lags=lag_list, step="s"),
                   rolling_stats(gap, key="k", columns=["v"], windows=windows, step="s")], axis=1)
    f = pd.concat([full_lag, full_roll], axis=1)
    a_full, a_gap = df["k"] == "a", gap["k"] == "a"
    series = {"v": dict(zip(gap.loc[a_gap, "s"], gap.loc[a_gap, "v"], strict=True))}
    _check_gap(f[a_full.to_numpy()].reset_index(drop=True), g[a_gap.to_numpy()].reset_index(drop=True),
               df.loc[a_full, "s"].to_numpy(), gap.loc[a_gap, "s"].to_numpy(), 25, ["v"], lag_list, windows, series)
    for c in f.columns:  # entity b is untouched
        _assert_bits(g.loc[~a_gap.to_numpy(), c], f.loc[~a_full.to_numpy(), c], c)
    # the slope is per step: a straight line with a missing point keeps its slope
    line = pd.DataFrame({"k": ["a"] * 5, "s": [0, 1, 3, 4, 5], "v": [0.0, 2.0, 6.0, 8.0, 10.0]})
    slope = rolling_stats(line, key="k", columns=["v"], windows=[3], stats=["slope"], step="s")["v_slope_3"]
    assert np.isnan(slope[0]) and np.allclose(slope[1:], 2.0)
    # a gap far longer than any window costs no memory and is not seen across
    far = pd.DataFrame({"k": ["a"] * 3, "s": [0, 1, 10**15], "v": [1.0, 2.0, 4.0]})
    out = rolling_stats(far, key="k", columns=["v"], windows=[3], stats=["mean"], step="s")["v_mean_3"]
    assert out.tolist() == [1.0, 1.5, 4.0]
    assert np.isnan(lags(far, key="k", columns=["v"], lags=[1], step="s")["v_lag_1"][2])
    with pytest.raises(ValueError, match="must increase within an entity"):
        lags(far.assign(s=[0, 1, 1]), key="k", columns=["v"], lags=[1], step="s")


def _steel_batch(n: int, meters=("m-1", "m-2"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    end = pd.date_range("2018-01-01 00:15", periods=n, freq="15min", tz="Asia/Seoul").tz_convert("UTC")
    parts = []
    for m in meters:
        parts.append(pd.DataFrame({
            "meter_id": m, "event_timestamp": end, "interval_start": end - pd.Timedelta(minutes=15),
            "usage_kwh": rng.gamma(2.0, 15.0, n), "lagging_kvarh": rng.gamma(2.0, 5.0, n),
            "leading_kvarh": rng.gamma(1.0, 1.0, n), "co2_t": rng.uniform(0, 0.05, n),
            "lagging_pf": rng.uniform(60, 100, n), "leading_pf": rng.uniform(60, 100, n), "load_type": "Light_Load",
        }))
    return pd.concat(parts, ignore_index=True)


def _interval_numbers(times: pd.Series) -> np.ndarray:
    return ((times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(minutes=15)).to_numpy()


def test_steel_lags_and_windows_after_a_missing_interval():
    n = 800  # more than a week of 15-minute intervals, so lag 672 is reached after the gap
    batch = _steel_batch(n)
    removed = 60  # an interval of m-1 in the middle of its series
    gap_batch = batch.drop(index=removed).reset_index(drop=True)
    full, gap = steel.features(batch), steel.features(gap_batch)
    assert len(gap) == len(full) - 1 and gap.columns.tolist() == full.columns.tolist()
    m1f, m1g = (full["meter_id"] == "m-1").to_numpy(), (gap["meter_id"] == "m-1").to_numpy()
    steps_f, steps_g = _interval_numbers(full["event_timestamp"]), _interval_numbers(gap["event_timestamp"])
    rem_step = int(steps_f[removed])
    series = {"usage_kwh": dict(zip(steps_g[m1g], gap.loc[m1g, "usage_kwh"].astype(np.float64), strict=True))}
    _check_gap(full[m1f].reset_index(drop=True), gap[m1g].reset_index(drop=True), steps_f[m1f], steps_g[m1g],
               rem_step, ["usage_kwh"], steel.LAGS, steel.WINDOWS, series)
    after = gap[m1g].reset_index(drop=True).iloc[removed]  # the interval right after the gap
    assert np.isnan(after["usage_kwh_lag_1"])
    assert after["usage_kwh_lag_4"] == np.float32(batch["usage_kwh"][removed - 3])
    for c in gap.columns:  # the other meter, whose series is whole, is untouched
        pd.testing.assert_series_equal(gap.loc[~m1g, c].reset_index(drop=True),
                                       full.loc[~m1f, c].reset_index(drop=True))


def test_a_missing_usage_reading_stays_a_gap_the_other_readings_are_carried_on():
    """A blank kWh cell was forward-filled: the store held the last reading ten times over a stopped meter, and a
    forecast by id read them as real (filled_intervals 0), while the same rows as records were a counted gap.
    The usage now stays missing (its lags and windows read it as missing, as a missing row); the other readings,
    which no forecast reads, are still carried on."""
    batch = _steel_batch(200, meters=("m-1",))
    batch.loc[50:59, ["usage_kwh", "lagging_kvarh"]] = np.nan
    out = steel.features(batch)
    assert out["usage_kwh"][50:60].isna().all() and not out["usage_kwh"].drop(index=range(50, 60)).isna().any()
    assert (out["lagging_kvarh"][50:60] == np.float32(batch["lagging_kvarh"][49])).all()
    assert np.isnan(out["usage_kwh_lag_1"][60]) and out["usage_kwh_lag_1"][61] == np.float32(batch["usage_kwh"][60])
    window = out["usage_kwh_mean_4"][61]  # steps 58-61: only 60 and 61 have a reading
    assert window == pytest.approx(batch["usage_kwh"][60:62].mean(), rel=1e-6)


def test_the_steel_run_report_says_the_usage_gaps_are_kept(tmp_path):
    lines = steel_lines(40)
    for i in (5, 6):
        lines[i] = set_field(lines[i], 1, "")  # Usage_kWh
    rep = run_pipeline("steel-energy", write(tmp_path, "Steel_industry_data.csv", lines))
    assert rep.missing["kept_as_gaps"] == ["usage_kwh"]
    assert rep.missing["missing_cells"] == 2 and rep.missing["filled_cells"] == 0


def _cmapss_lines(units: int = 3, cycles: int = 40, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    base = CMAPSS_ROW.split()
    lines = []
    for u in range(1, units + 1):
        for c in range(1, cycles + 1):
            f = [str(u), str(c), *base[2:5]]
            f += [f"{float(x) * (1 + 0.002 * rng.normal()):.4f}" for x in base[5:]]
            lines.append(" ".join(f))
    return lines


def test_cmapss_lags_and_windows_after_a_quarantined_cycle(tmp_path):
    lines = _cmapss_lines()
    tables = validate(cmapss.read(write(tmp_path, "train_FD001.txt", lines))).tables
    readings = tables["sensor_readings"]
    params = turbofan.prepare(readings)  # the same regimes and statistics for both: only the gap differs
    unit = "FD001-u002"
    drop = readings.index[(readings["unit_id"] == unit) & (readings["cycle"] == 17)]
    full, gap = turbofan.features(readings, params), turbofan.features(readings.drop(index=drop), params)
    assert len(gap) == len(full) - 1
    uf, ug = (full["unit_id"] == unit).to_numpy(), (gap["unit_id"] == unit).to_numpy()
    series = {c: dict(zip(gap.loc[ug, "cycle"], gap.loc[ug, c].astype(np.float64), strict=True)) for c in turbofan.NORM}
    _check_gap(full[uf].reset_index(drop=True),
               gap[ug].reset_index(drop=True), full.loc[uf, "cycle"].to_numpy(), gap.loc[ug, "cycle"].to_numpy(), 17,
               list(turbofan.NORM), turbofan.LAGS, turbofan.WINDOWS, series)
    row18 = gap[ug & (gap["cycle"] == 18).to_numpy()].iloc[0]
    assert all(np.isnan(row18[f"{c}_lag_1"]) for c in turbofan.NORM)
    for c in gap.columns:  # the other units are untouched
        pd.testing.assert_series_equal(gap.loc[~ug, c].reset_index(drop=True), full.loc[~uf, c].reset_index(drop=True))


def test_a_quarantined_row_reads_as_missing_and_partitions_agree(tmp_path):
    """End to end: a row set aside by validation leaves a gap in its unit's grid; any partitioning of whole
    entities (what the local loop and each Ray task get) gives the same features."""
    lines = _cmapss_lines(units=6, cycles=30, seed=1)
    bad = 2 * 30 + 11  # unit 3, cycle 12
    lines[bad] = set_field(lines[bad], 8, "inf", " ")
    job = get_job("cmapss")
    checked = validate(job.read(write(tmp_path, "train_FD001.txt", lines)))
    assert checked.bad_rows == 1
    frames = [transform(job, checked.tables, partitions=p)[0]["cmapss_features"] for p in (1, 2, 3, 6)]
    for f in frames[1:]:
        pd.testing.assert_frame_equal(f, frames[0])
    f = frames[0]
    u3 = f[f["unit_id"] == "FD001-u003"].set_index("cycle")
    assert 12 not in u3.index and np.isnan(u3.loc[13, "t24_norm_lag_1"])
    assert u3.loc[14, "t24_norm_lag_1"] == u3.loc[13, "t24_norm"]
    # the 5-cycle window at cycle 15 holds cycles 11, 13, 14, 15 (not 10 .. 15)
    want = np.mean(u3.loc[[11, 13, 14, 15], "t24_norm"].astype(np.float64))
    assert np.isclose(u3.loc[15, "t24_norm_mean_5"], want, rtol=1e-5)


def test_a_steel_stamp_off_the_15_minute_grid_is_set_aside(tmp_path):
    lines = steel_lines()
    lines[4] = set_field(set_field(lines[4], 0, "01/01/2018 01:07"), 7, str(67 * 60))
    checked = validate(steel_energy.read(write(tmp_path, "steel.csv", lines)))
    assert checked.bad_rows == 1 and "not on the 15-minute grid" in checked.quarantined["reason"][0]
    out = steel.features(checked.tables["meter_readings"])
    assert len(out) == 9 and np.isnan(out["usage_kwh_lag_1"][3])  # 01:15 follows the missing 01:00
    with pytest.raises(ValueError, match="not on the 15-minute grid"):
        steel.interval_steps(pd.Series(pd.to_datetime(["2018-01-01 00:07"]).tz_localize("UTC")))
    # named on the plant's clock, with its meter (a push sent with +09:00 had been answered in UTC only)
    times = pd.Series(pd.to_datetime(["2026-12-06 17:45", "2026-12-06 17:52"]).tz_localize("UTC"))
    with pytest.raises(ValueError) as e:
        steel.interval_steps(times, pd.Series(["line-2", "line-2"]))
    assert str(e.value) == ("meter 'line-2': event_timestamp 2026-12-07T02:52:00+09:00 (2026-12-06T17:52:00Z) is not "
                            "on the 15-minute grid: a reading closes a 15-minute interval, at :00, :15, :30 or :45")
    with pytest.raises(ValueError, match=r"02:45:30\+09:00 \(2026-12-06T17:45:30Z\) is not"):  # seconds shown
        steel.interval_steps(pd.Series(pd.to_datetime(["2026-12-06 17:45:30"]).tz_localize("UTC")))


@pytest.mark.parametrize(("value", "text"), [("inf", "inf"), ("-inf", "-inf")])
def test_quarantined_infinity_is_standard_json(tmp_path, value, text):
    lines = steel_lines()
    lines[5] = set_field(lines[5], 2, value)  # lagging kVArh
    rep = run_pipeline("steel-energy", write(tmp_path, "steel.csv", lines), quarantine_root=tmp_path / "q",
                       max_bad_share=0.5)
    assert rep.rows_quarantined == 1

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    rec = json.loads(open(rep.quarantine, encoding="utf-8").readline(), parse_constant=refuse)
    assert rec["row"]["lagging_kvarh"] == text and "is not a finite number" in rec["reason"]


def test_workers_are_bounded_with_a_one_line_error(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from tests.pipelines.test_runner import _cli

    app = _cli(monkeypatch, tmp_path)
    for value in ("99999999999999", "0", "-3"):
        res = CliRunner().invoke(app, ["ingest", "steel-energy", str(tmp_path / "nope.csv"), "--workers", value, "-q"])
        assert res.exit_code != 0 and isinstance(res.exception, InvalidInput), res.output
        assert one_line(res.exception) == f"steel-energy: --workers must be a whole number from 1 to 64, not {value}"
    with pytest.raises(InvalidInput, match="^cmapss: workers must be a whole number from 1 to 64, not 100000$"):
        run_pipeline("cmapss", tmp_path / "nope.txt", engine="ray", workers=100_000)
