"""Transforms are plain DataFrame functions: tested here without Ray."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipelines.transforms.calendar import HOLIDAY_YEARS, KOREAN_HOLIDAYS, calendar_features, holidays_kr
from pipelines.transforms.missing import handle_missing
from pipelines.transforms.regimes import fit_regime_stats, fit_regimes, normalize_by_regime
from pipelines.transforms.rolling import lags, rolling_stats


def _frame(seed=0):
    rng = np.random.default_rng(seed)
    keys = np.repeat(["a", "b", "c"], [7, 1, 12])
    df = pd.DataFrame({"k": keys, "x": rng.normal(size=len(keys)), "y": rng.normal(size=len(keys))})
    df.loc[3, "y"] = np.nan
    return df


def test_rolling_matches_groupby_and_never_crosses_entities():
    df = _frame()
    got = rolling_stats(df, key="k", columns=["x", "y"], windows=[3, 5])
    for stat in ("mean", "std", "min", "max"):
        for w in (3, 5):
            ref = getattr(df.groupby("k")["y"].rolling(w, min_periods=1), stat)().reset_index(level=0, drop=True)
            np.testing.assert_allclose(got[f"y_{stat}_{w}"], ref.astype("float32"), rtol=1e-5, equal_nan=True)
    # slope of a straight line is its step; an entity's first row has none
    line = pd.DataFrame({"k": ["a"] * 6 + ["b"] * 3, "v": [0, 2, 4, 6, 8, 10, 5, 2, -1]})
    s = rolling_stats(line, key="k", columns=["v"], windows=[3], stats=["slope"])["v_slope_3"]
    assert np.isnan(s[0]) and np.allclose(s[1:6], 2) and np.isnan(s[6]) and np.allclose(s[7:], -3)


def test_lags_stay_within_the_entity():
    df = pd.DataFrame({"k": ["a", "a", "b", "b"], "v": [1.0, 2.0, 3.0, 4.0]})
    out = lags(df, key="k", columns=["v"], lags=[1])
    assert out["v_lag_1"].tolist()[1] == 1.0 and np.isnan(out["v_lag_1"][2])


def test_six_operating_regimes_are_found_and_normalised():
    rng = np.random.default_rng(1)
    centers = np.array([[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100],
                        [42, 0.84, 100]])
    truth = rng.integers(0, 6, 3000)
    settings = centers[truth] + rng.normal(0, [0.003, 0.0003, 0.01], (3000, 3))
    sensor = 500 + 40 * truth + rng.normal(0, 1, 3000)
    df = pd.DataFrame(settings, columns=["s1", "s2", "s3"]).assign(t=sensor)
    model = fit_regimes(df, ["s1", "s2", "s3"], 6)
    reg = model.assign(df)
    assert model.k == 6 and pd.crosstab(truth, reg).gt(0).sum(axis=1).eq(1).all()  # one cluster per regime
    shuffled = fit_regimes(df.sample(frac=1, random_state=3), ["s1", "s2", "s3"], 6)
    assert (shuffled.assign(df) == reg).all()  # row order does not change the regimes or their ids
    z = normalize_by_regime(df, reg, fit_regime_stats(df, reg, ["t"], 6))["t_norm"]
    assert abs(z.mean()) < 1e-3 and abs(z.std() - 1) < 0.01


def test_korean_holidays_2018():
    h = holidays_kr(2018)
    for d in (date(2018, 1, 1), date(2018, 2, 16), date(2018, 5, 7), date(2018, 6, 13), date(2018, 9, 24),
              date(2018, 9, 26), date(2018, 10, 9), date(2018, 12, 25)):
        assert d in h
    assert len(h) == 18 and date(2018, 7, 17) not in KOREAN_HOLIDAYS  # Constitution Day: not a day off then


def test_the_holiday_calendar_equals_the_official_days_written_out_and_covers_today():
    for year in HOLIDAY_YEARS:  # the library gives exactly the days written out by hand from the official calendar
        assert holidays_kr(year).keys() == {d for d in KOREAN_HOLIDAYS if d.year == year}, year
    h = holidays_kr(2026)  # a tenant's data of this year: lunar holidays and substitutes included
    for d in (date(2026, 2, 16), date(2026, 2, 17), date(2026, 2, 18), date(2026, 9, 24), date(2026, 9, 25),
              date(2026, 9, 26), date(2026, 3, 2), date(2026, 10, 5), date(2026, 12, 25)):
        assert d in h, d
    assert date(2026, 9, 23) not in h
    f = calendar_features(pd.Series(pd.to_datetime(["2026-09-25 10:00", "2026-09-28 10:00"]).tz_localize("Asia/Seoul")))
    assert f["is_holiday"].tolist() == [True, False] and f["days_from_holiday"].tolist() == [0, 2]
    with pytest.raises(ValueError, match="no Korean public holiday calendar"):
        holidays_kr(1900)


def test_calendar_features_in_korea_time():
    times = pd.Series(pd.to_datetime(["2018-09-23T15:00:00Z", "2018-09-26T15:30:00Z", "2018-09-27T00:00:00Z"]))
    f = calendar_features(times)
    # 00:00 KST 24 Sep (Chuseok), 00:30 KST 27 Sep (Thursday, the day after the substitute holiday), 09:00 KST
    assert f["is_holiday"].tolist() == [True, False, False]
    assert f["hour"].tolist() == [0, 0, 9] and f["day_of_week"].tolist() == [0, 3, 3]
    assert f["days_from_holiday"].tolist() == [0, 1, 1] and f["is_workday"].tolist() == [False, True, True]


def test_missing_values_are_handled_and_reported():
    df = pd.DataFrame({"k": ["a", "a", "a", "b"], "v": [np.nan, 1.0, np.nan, np.nan], "w": [1.0, 1.0, 1.0, 1.0]})
    out, rep = handle_missing(df, ["v", "w"], strategy="ffill", key="k", count_column="n_missing")
    assert out["v"].tolist()[2] == 1.0 and np.isnan(out["v"][3]) and out["n_missing"].tolist() == [1, 0, 1, 1]
    assert rep.columns["v"] == {"missing": 3, "filled": 1, "remaining": 2, "fill_value": None}
    assert rep.constant == ["v", "w"] and rep.as_dict()["missing_cells"] == 3
    out, rep = handle_missing(df, ["v"], strategy="median")
    assert out["v"].isna().sum() == 0 and rep.columns["v"]["fill_value"] == 1.0
    with pytest.raises(ValueError, match="expected one of"):
        handle_missing(df, ["v"], strategy="mean")
