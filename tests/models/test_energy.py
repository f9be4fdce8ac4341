"""Energy forecaster (steel plant): time index quirk, holidays, ONNX parity, monotone quantiles, the predict
contract, no leakage past an origin, bad input, and no torch in predict. Trains a few epochs on 45 days."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.energy import features as F
from models.energy.calendar import calendar_features, is_holiday
from serving.errors import InvalidInput
from tests.datasets import NoTracker, assert_predicts_without_torch, need

QUICK = {"epochs": 3, "patience": 3, "early_stop_days": 5, "val_months": 1, "hidden": 32}


@pytest.fixture(scope="module")
def trained(series_csv, tmp_path_factory) -> tuple[Path, dict]:
    from models.energy.train import train

    out = tmp_path_factory.mktemp("energy-model")
    return out, train(series_csv, "steel-energy", out, config=dict(QUICK), tracker=NoTracker())


def test_midnight_row_closes_its_day():
    stamps = F.parse_dates(pd.Series(["01/01/2018 23:45", "01/01/2018 00:00", "02/01/2018 00:15"]))
    assert list(stamps) == [pd.Timestamp("2018-01-01 23:45"), pd.Timestamp("2018-01-02 00:00"),
                            pd.Timestamp("2018-01-02 00:15")]


def test_calendar():
    days = pd.DatetimeIndex(["2018-09-24", "2018-09-27", "2018-10-01"])
    assert is_holiday(days).tolist() == [1.0, 0.0, 0.0]  # Chuseok
    # any year: Chuseok 2026 and its eve, National Foundation Day's substitute; not the day before the eve
    later = pd.DatetimeIndex(["2026-09-24", "2026-09-25", "2026-10-05", "2026-09-23"])
    assert is_holiday(later).tolist() == [1.0, 1.0, 1.0, 0.0]
    assert F.day_types(later).tolist() == [2, 2, 2, 0]
    with pytest.raises(InvalidInput, match="out of range"):
        is_holiday(pd.DatetimeIndex(["1900-01-01"]))
    cal = calendar_features(days, np.array([0, 48, 95]))
    assert cal.shape == (3, len(F.FEATURE_NAMES) - 18 - len(F.PROFILE_NAMES)) and cal[:, :7].sum() == 3
    assert cal[1, 8] == 1.0 and cal[1, 9] == 0.0 and cal[2, 9] == 1.0  # 26th substitute; Chuseok a week before


def test_features_never_read_the_origin_or_later():
    v = np.arange(20 * 96, dtype=float)
    o = np.array([10 * 96, 12 * 96])
    x = F.build(v, o, pd.DatetimeIndex(["2018-01-11", "2018-01-13"]), scale=1.0)
    assert x.shape == (2 * 96, len(F.FEATURE_NAMES))
    n = len(F.PROFILE_NAMES) + 18  # the profile, lags, windows, blocks and recent values: all read from kWh
    kwh = x[:, :n].reshape(2, 96, n)
    assert (kwh[0] < o[0]).all() and (kwh[1] < o[1]).all()


def test_day_type_profile_reads_the_last_days_of_the_targets_type():
    """Each day's values are its day number: the profile median is the median day number of the last 20 days of
    the target's type (working day / Saturday / Sunday or holiday) before the origin, never the origin's day."""
    start = pd.Timestamp("2018-08-01")  # a Wednesday; Liberation Day (15 Aug) and Chuseok (23-26 Sep) inside
    n_days = 70
    v = np.concatenate([[0.0], np.repeat(np.arange(n_days, dtype=float), 96)])  # index 0 is 1 Aug 00:00
    origin_days = pd.DatetimeIndex(["2018-10-01", "2018-09-30", "2018-09-29", "2018-09-26"])
    o = np.array([int((d - start) / F.STEP) for d in origin_days])
    prof = F.profile(v, o, origin_days, scale=1.0)
    names = F.PROFILE_NAMES
    for row, day in zip(prof, origin_days, strict=True):
        before = pd.date_range(start, day - pd.Timedelta(days=1))
        same = before[F.day_types(before) == F.day_types(pd.DatetimeIndex([day]))[0]][-F.PROFILE_DAYS:]
        numbers = np.array([(d - start).days for d in same], dtype=float)
        assert np.allclose(row[:, names.index("profile_p50")], np.median(numbers))
        assert np.allclose(row[:, names.index("profile_days")], len(same) / F.PROFILE_DAYS)
        assert np.allclose(row[:, names.index("profile_mean")], numbers.mean())
    # a holiday (26 Sep, Chuseok) reads Sundays and holidays: 15 Aug and the 23-25 Sep holidays among them
    assert F.day_types(pd.DatetimeIndex(["2018-09-26", "2018-08-15", "2018-09-29", "2018-10-01"])).tolist() == [
        2, 2, 1, 0]


def test_profile_falls_back_to_every_day_when_no_day_of_the_type_is_in_the_history():
    v = np.concatenate([[0.0], np.repeat([10.0, 20.0], 96)])  # Saturday 6 Jan and Sunday 7 Jan 2018
    prof = F.profile(v, np.array([2 * 96]), pd.DatetimeIndex(["2018-01-08"]), scale=1.0)  # a Monday
    assert np.allclose(prof[0, :, F.PROFILE_NAMES.index("profile_p50")], 15.0)
    assert np.allclose(prof[0, :, F.PROFILE_NAMES.index("profile_days")], 2 / F.PROFILE_DAYS)


def test_onnx_parity_and_monotone_quantiles(trained, series_csv):
    from serving.runtime import OnnxModel

    out, metrics = trained
    model = OnnxModel(out)
    assert model.manifest["parity_max_abs"] <= 1e-4
    assert 0.0003 < model.manifest["emission_factor_t_per_kwh"] < 0.0006
    assert {"val_p50_mae", "val_same_time_last_week_mae", "val_coverage_p10_p90"} <= set(metrics)
    s = F.read_series(series_csv)
    o = F.origin_indices(s, pd.Timestamp("2018-02-01"))
    x = F.build(F.filled(s.kwh, 0.0), o, s.stamps[o], model.manifest["scale"])
    q = model.run({"x": x})["y"]
    assert (q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all()


def test_onnx_matches_torch(tmp_path):
    import torch

    from models.energy.module import QuantileMLP
    from models.export import export
    from serving.runtime import OnnxModel

    torch.manual_seed(0)
    model = QuantileMLP(len(F.FEATURE_NAMES), hidden=16)
    torch.nn.init.normal_(model.head.weight, std=0.1)
    model.width.fill_(1.3)
    x = np.random.default_rng(0).normal(size=(64, len(F.FEATURE_NAMES))).astype(np.float32)
    export(model, x[:4], tmp_path, {"name": "energy"})
    with torch.no_grad():
        want = model(torch.as_tensor(x))[0].numpy()
    assert np.max(np.abs(OnnxModel(tmp_path).run({"x": x})["y"] - want)) <= 1e-4


def test_predict_contract(trained, series_csv):
    from models.energy.predict import predict, with_co2
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    out = predict(model, series_csv, "steel-energy", start="2018-02-10", horizon=96)
    assert list(out.columns) == ["origin", "timestamp", "p10", "p50", "p90"]
    assert len(out) == 5 * 96  # 10..14 February; the file ends at 14 February 24:00
    assert out.origin.iloc[0] == "2018-02-10 00:00:00" and out.origin.iloc[-1] == "2018-02-14 00:00:00"
    assert out.timestamp.iloc[0] == "2018-02-10 00:15:00" and out.timestamp.iloc[95] == "2018-02-11 00:00:00"
    assert (out.p10 <= out.p50).all() and (out.p50 <= out.p90).all() and (out.p10 >= 0).all()
    assert len(predict(model, series_csv, "steel-energy", start="2018-02-14", horizon=4)) == 4
    co2 = with_co2(out, model)
    assert np.allclose(co2.co2_p50, out.p50 * model.manifest["emission_factor_t_per_kwh"], atol=1e-6)


@pytest.mark.parametrize("gap", [0, 40])
def test_no_leakage(trained, series_csv, gap):
    """Changing every row at or after an origin leaves that origin's forecast unchanged; also where the rows right
    before it have a gap (``gap`` intervals, filled from a week earlier: only rows before the origin fill it). The
    origins whose day before is then mostly missing are left out (the later ones of 8 February)."""
    from models.energy.predict import forecast
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    s = F.read_series(series_csv)
    start = pd.Timestamp("2018-02-08")
    for day in ("2018-02-08", "2018-02-11"):
        origin = pd.Timestamp(day)
        k = s.index_of(origin)  # the row stamped at the origin (the previous day's 24:00) is changed too
        gappy = F.Series(s.start, s.kwh.copy(), None)
        gappy.kwh[k - gap : k] = np.nan
        base = forecast(model, gappy, start)
        changed = F.Series(s.start, gappy.kwh.copy(), None)
        changed.kwh[k:] = changed.kwh[k:] * 3.0 + 40.0
        changed.kwh[k + 300 :] = np.nan
        other = forecast(model, changed, start)
        cut = f"{day} 00:00:00"
        assert (base.origin == cut).sum() == 96
        pd.testing.assert_frame_equal(base[base.origin <= cut], other[other.origin <= cut])
        later = [f[f.origin > cut].reset_index(drop=True) for f in (base, other)]
        assert len(later[0]) and not later[0].equals(later[1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.drop(columns=["Usage_kWh"]), "Usage_kWh"),
        (lambda d: d.assign(Usage_kWh=d.Usage_kWh.astype(object).where(d.index != 50, "high")), "Usage_kWh"),
        (lambda d: d.assign(date=d.date.where(d.index != 7, "yesterday")), "date"),
    ],
)
def test_bad_input_names_the_column(trained, series_csv, tmp_path, change, message):
    from models.energy.predict import predict
    from serving.runtime import OnnxModel

    change(pd.read_csv(series_csv)).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InvalidInput, match=message) as err:
        predict(OnnxModel(trained[0]), tmp_path / "bad.csv", "steel-energy", start="2018-02-10")
    assert "\n" not in str(err.value)


def test_a_start_without_a_week_of_history_forecasts_from_the_first_day_with_one(trained, series_csv, caplog):
    """A file that begins at the start wanted (the months to forecast, without the week before): the forecasts
    begin at the first 00:00 with a week of history in the file, the same ones as from that start, and a warning
    names the days skipped (it was an error and no forecast at all). The API keeps refusing such a start."""
    from models.energy.predict import predict, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    with caplog.at_level("WARNING", logger="sfai.energy"):
        early = predict(model, series_csv, "steel-energy", start="2018-01-03")
    assert "start 2018-01-03 has less than 7 days of 'Usage_kWh' before it in the file; forecasts begin at " \
           "2018-01-09" in caplog.text
    pd.testing.assert_frame_equal(early, predict(model, series_csv, "steel-energy", start="2018-01-09"))
    with pytest.raises(InvalidInput, match="history|first possible start"):
        score(model, pd.read_csv(series_csv), start="2018-01-03")


def test_a_start_at_the_files_end_forecasts_the_day_after_it(trained, series_csv):
    """The file ends with the row that closes 14 February (stamped 15 February 00:00). A start of 15 February (a
    history file, tomorrow wanted) is that day's forecast: one origin, from the file's rows only, the same as when
    the file goes on past it (it was refused as "after the last row" before). A later start is refused."""
    from models.energy.predict import predict
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    history = series_csv  # up to the row stamped 15 February 00:00
    tomorrow = predict(model, history, "steel-energy", start="2018-02-15")
    assert tomorrow["origin"].unique().tolist() == ["2018-02-15 00:00:00"] and len(tomorrow) == 96
    assert tomorrow["timestamp"].iloc[[0, -1]].tolist() == ["2018-02-15 00:15:00", "2018-02-16 00:00:00"]
    more = series_csv.with_name("more.csv")  # the same rows and five more days
    pd.read_csv(need("steel_energy/steel_industry_2018_jan_oct.csv")).head(50 * 96).to_csv(more, index=False)
    longer = predict(model, more, "steel-energy", start="2018-02-15")
    pd.testing.assert_frame_equal(longer[longer["origin"] == "2018-02-15 00:00:00"].reset_index(drop=True), tomorrow)
    with pytest.raises(InvalidInput, match=r"^start 2018-02-16 is after the last row of column 'date'"):
        predict(model, history, "steel-energy", start="2018-02-16")


def test_predict_does_not_import_torch(trained, series_csv):
    assert_predicts_without_torch("energy", trained[0], series_csv, "steel-energy", 2 * 96, start="2018-02-13")


def test_api_score_forecasts_the_day_after_its_history(trained, series_csv):
    """The API sends history up to now and wants tomorrow: ``score`` adds the origin right after the rows, and
    that forecast equals the one made when later rows exist (nothing after an origin is read)."""
    from models.energy.predict import predict, score
    from serving.runtime import OnnxModel

    model = OnnxModel(trained[0])
    rows = pd.read_csv(series_csv)
    history = rows.head(44 * 96)  # ends with the row that closes 13 February (stamped 14 February 00:00)
    out = score(model, history, start="2018-02-12")
    assert out.origin.unique().tolist() == ["2018-02-12 00:00:00", "2018-02-13 00:00:00", "2018-02-14 00:00:00"]
    assert {"co2_p50"} <= set(out.columns) and out.co2_p50.notna().all()
    later = predict(model, series_csv, "steel-energy", start="2018-02-14")
    tomorrow = out[out.origin == "2018-02-14 00:00:00"].reset_index(drop=True)
    want = later[later.origin == "2018-02-14 00:00:00"].reset_index(drop=True)
    pd.testing.assert_frame_equal(tomorrow[later.columns], want)
    with pytest.raises(InvalidInput, match="after the last row"):
        score(model, history, start="2018-02-16")


def test_a_model_of_an_older_feature_set_is_refused_with_one_line(series_csv):
    from types import SimpleNamespace

    from models.energy.predict import forecast

    old = SimpleNamespace(manifest={"features": F.FEATURE_NAMES[len(F.PROFILE_NAMES):], "steps_per_day": 96})
    assert not F.built_for(old.manifest) and F.built_for({"features": list(F.FEATURE_NAMES)})
    s = F.read_series(series_csv)
    with pytest.raises(InvalidInput, match="older feature set; train it again"):
        forecast(old, s, pd.Timestamp("2018-02-01"))


# ---------------------------------------------------------------- request bodies a fuzz found (no trained model)
class _Constant:
    """Stands in for an exported model: every quantile 1 kWh (the checks below run before or around the model)."""

    manifest = {"features": list(F.FEATURE_NAMES), "steps_per_day": 96, "fill_value": 0.0, "scale": 50.0,
                "emission_factor_t_per_kwh": 0.0005}

    def run(self, feeds):
        return {"y": np.ones((len(feeds["x"]), 3), np.float32)}


def _rows(n: int, first: str = "2020-01-01T00:15:00", offset: str = "") -> pd.DataFrame:
    stamps = pd.date_range(first, periods=n, freq="15min")
    return pd.DataFrame({"date": [s.isoformat() + offset for s in stamps], "Usage_kWh": 1.0})


def others(warnings: list[str]) -> list[str]:
    """The warnings but the one about a history shorter than five weeks (these tests' rows span a few days)."""
    return [w for w in warnings if " days of readings (" not in w]


def test_rows_far_apart_are_refused_before_any_work(tmp_path):
    """Two rows 60 years apart used to build a grid of 2.1 million forward-filled values and 21,908 forecasts
    (59 s); now at least half the 15-minute intervals of the span must hold a row, checked before the grid."""
    import time

    from models.energy.predict import predict, score

    for first, last in (("2000-01-01T00:15", "2060-01-01T00:00"), ("1000-01-01T00:15", "3000-01-01T00:00")):
        rows = pd.DataFrame({"date": [first, last], "Usage_kWh": [1, 1]})
        t0 = time.perf_counter()
        with pytest.raises(InvalidInput, match="intervals of 15 minutes for 2 rows") as err:
            score(_Constant(), rows, horizon=1)
        assert time.perf_counter() - t0 < 1.0 and "\n" not in str(err.value)
        with pytest.raises(InvalidInput, match="intervals of 15 minutes for 2 rows"):  # the CLI's file: the same
            predict(_Constant(), _write(rows, tmp_path), "steel-energy")
    # a real file with a few missing intervals, or a missing day, still passes
    gappy = _rows(8 * 96 + 1).drop(index=[5, 6, 7, *range(300, 396)])
    assert len(score(_Constant(), gappy.reset_index(drop=True), horizon=4)) == 4


def test_shared_steel_file_passes_the_gap_rule():
    s = F.read_series(need("steel_energy/steel_industry_2018_jan_oct.csv"))
    assert len(s.kwh) == 29184 and not np.isnan(s.kwh).any()


@pytest.mark.parametrize("start", ["", "NaT", "nan", "None", "5", "04/03/2018", "March 4 2018", "20180304"])
def test_a_start_that_is_not_a_time_is_refused(start):
    from models.energy.predict import score

    with pytest.raises(InvalidInput, match="is not a date"):
        score(_Constant(), _rows(8 * 96 + 1), start=start)


def test_aware_dates_keep_their_local_time_and_agree_with_start():
    """Dates with a UTC offset are read on their own local clock (the offset of the earliest): the answer's origin
    and timestamps are that clock's, as for the same dates without offset; a start with an offset is converted to
    it; a start with an offset against dates without one, or dates with and without, are refused."""
    from models.energy.predict import score

    naive = score(_Constant(), _rows(8 * 96 + 1), horizon=4)
    aware = score(_Constant(), _rows(8 * 96 + 1, offset="+09:00"), horizon=4)
    pd.testing.assert_frame_equal(aware, naive)
    # a start with a time of day: the first origin is the next 00:00 (never one before the start)
    assert score(_Constant(), _rows(8 * 96 + 1), start="2020-01-08 13:00", horizon=4).equals(naive)
    assert aware.origin.iloc[0] == "2020-01-09 00:00:00" and aware.timestamp.iloc[0] == "2020-01-09 00:15:00"
    for start in ("2020-01-09", "2020-01-09T00:00:00+09:00", "2020-01-08T15:00:00Z"):
        assert score(_Constant(), _rows(8 * 96 + 1, offset="+09:00"), start=start, horizon=4).equals(aware)
    with pytest.raises(InvalidInput, match="has a UTC offset and the dates"):
        score(_Constant(), _rows(8 * 96 + 1), start="2020-01-09T00:00:00+09:00")
    mixed = pd.concat([_rows(4 * 96), _rows(4 * 96 + 1, "2020-01-05T00:15", "+09:00")], ignore_index=True)
    with pytest.raises(InvalidInput, match="mixes dates with a UTC offset"):
        score(_Constant(), mixed)
    # offsets that change (summer time) are converted to the earliest one: one continuous clock, no gap
    berlin = pd.date_range("2020-03-20", periods=10 * 96, freq="15min", tz="Europe/Berlin")
    s = F.series_from_frame(pd.DataFrame({"date": [t.isoformat() for t in berlin], "Usage_kWh": 1.0}))
    assert len(s.kwh) == 10 * 96 and not np.isnan(s.kwh).any() and str(s.stamps[-1]) == "2020-03-29 23:45:00"


@pytest.mark.parametrize("horizon", [0, 97, 672, 673, True, 2.0, "x"])
def test_horizon_is_one_day_at_most_and_a_whole_number(horizon):
    from models.energy.predict import score

    with pytest.raises(InvalidInput, match=r'"horizon" must be a whole number of 15-minute steps, 1-96'):
        score(_Constant(), _rows(8 * 96 + 1), horizon=horizon)


def test_too_short_a_history_says_what_is_needed_not_a_start_never_sent(tmp_path):
    from models.energy.predict import predict, score

    with pytest.raises(InvalidInput, match=r"needs 674 rows of 15 minutes .* cover 96 intervals \(1.0 days") as err:
        score(_Constant(), _rows(96))
    assert "start" not in str(err.value)
    with pytest.raises(InvalidInput, match=r"671 of them before the latest origin, 2020-01-08 00:00: add the earlier "
                       r"rows from 2019-12-31 23:30 on \(or, for the first possible origin, 2020-01-09, rows up to "
                       r"2020-01-08 23:45\)$"):
        predict(_Constant(), _write(_rows(7 * 96), tmp_path), "steel-energy")
    # eight days: the first possible origin is the day after the file, which is forecast from it
    assert predict(_Constant(), _write(_rows(8 * 96), tmp_path), "steel-energy")["origin"].unique().tolist() == [
        "2020-01-09 00:00:00"]


def _write(df: pd.DataFrame, directory: Path) -> Path:
    path = directory / "series.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("value", [1e39, 1e300, float("inf"), "Infinity", 2e9])
def test_readings_out_of_range_are_refused_naming_row_and_column(value):
    from models.energy.predict import score

    rows = _rows(8 * 96 + 1).astype({"Usage_kWh": object})
    rows.loc[5, "Usage_kWh"] = value
    with pytest.raises(InvalidInput, match=r"column 'Usage_kWh' row 6 holds .*out of range"):
        score(_Constant(), rows)
    co2 = _rows(8 * 96 + 1).assign(**{"CO2(tCO2)": 0.0}).astype({"CO2(tCO2)": object})
    co2.loc[7, "CO2(tCO2)"] = 1e39
    with pytest.raises(InvalidInput, match=r"column 'CO2\(tCO2\)' row 8 holds .*out of range"):
        F.series_from_frame(co2)


@pytest.mark.parametrize("value", [True, False, np.True_])
def test_a_boolean_reading_is_refused_naming_row_and_column(value, tmp_path):
    """true is no reading (pandas reads it as 1.0): a JSON record's boolean, or a CSV column of True/False (which
    pandas reads as booleans), is refused like text, naming the column and row."""
    from models.energy.predict import predict, score

    records = _rows(8 * 96 + 1).to_dict("records")
    records[5]["Usage_kWh"] = value
    with pytest.raises(InvalidInput, match=r"^column 'Usage_kWh' row 6 holds a non-numeric value (True|False)$"):
        score(_Constant(), pd.DataFrame.from_records(records), horizon=4)
    co2 = [{**r, "CO2(tCO2)": 0.0} for r in _rows(8 * 96 + 1).to_dict("records")]
    co2[7]["CO2(tCO2)"] = value
    with pytest.raises(InvalidInput, match=r"^column 'CO2\(tCO2\)' row 8 holds a non-numeric value"):
        F.series_from_frame(pd.DataFrame.from_records(co2))
    flags = _rows(8 * 96 + 1).assign(Usage_kWh=bool(value))  # a CSV column of True (or False) only
    with pytest.raises(InvalidInput, match=rf"^column 'Usage_kWh' row 1 holds a non-numeric value {bool(value)}$"):
        predict(_Constant(), _write(flags, tmp_path), "steel-energy")
    text = _rows(8 * 96 + 1).astype({"Usage_kWh": object})  # the text "true" among numbers: not a number either
    text.loc[9, "Usage_kWh"] = "true"
    with pytest.raises(InvalidInput, match=r"^column 'Usage_kWh' row 10 holds a non-numeric value 'true'$"):
        predict(_Constant(), _write(text, tmp_path), "steel-energy")
    zeros = _rows(8 * 96 + 1).assign(Usage_kWh=[0, 1.0] * (4 * 96) + [1]).astype({"Usage_kWh": object})
    assert len(score(_Constant(), zeros, horizon=4)) == 4  # readings of exactly 0 and 1 are fine


# ---------------------------------------------------------------- an energy manager's audit of inputs (2026-12)
def _every(minutes: int, n: int, first: str = "2020-01-01T00:15:00") -> pd.DataFrame:
    stamps = pd.date_range(first, periods=n, freq=f"{minutes}min")
    return pd.DataFrame({"date": [s.isoformat() for s in stamps], "Usage_kWh": 1.0})


@pytest.mark.parametrize(("minutes", "words"), [(30, "30 minutes"), (60, "1 hour"), (5, "5 minutes")])
def test_rows_of_another_interval_are_refused_naming_it(minutes, words, tmp_path):
    """30-minute kWh (two quarter hours each) passed the span rule and every other interval was filled with the
    reading before it: a day's forecast nearly doubled (5,906 kWh for 3,263). Hourly rows were told to leave out
    long gaps, 5-minute rows to keep to a 15-minute grid; now each is told what the rows are and what is needed."""
    from models.energy.predict import predict, score

    rows = _every(minutes, 10 * 24 * 60 // minutes)
    want = (rf"^column 'date': the rows are {words} apart \(median\); the model forecasts 15-minute kWh: give "
            "15-minute readings")
    with pytest.raises(InvalidInput, match=want):
        score(_Constant(), rows, horizon=4)
    with pytest.raises(InvalidInput, match=want):
        predict(_Constant(), _write(rows, tmp_path), "steel-energy")
    with_gaps = _every(15, 10 * 96).drop(index=range(1, 10 * 96, 2)).reset_index(drop=True)  # 15-minute, half gone
    with pytest.raises(InvalidInput, match="the rows are 30 minutes apart"):
        score(_Constant(), with_gaps)


@pytest.mark.parametrize(
    ("change", "row", "shown"),
    [
        (lambda t: t - pd.Timedelta(minutes=10), 1, "'2020-01-01T00:05:00'"),  # the meter's clock 10 minutes early
        (lambda t: t + pd.Timedelta(seconds=7), 1, "'2020-01-01T00:15:07'"),  # every stamp at :07 seconds
        (lambda t: t.where(np.arange(len(t)) != 99, t + pd.Timedelta(minutes=1)), 100, "'2020-01-02T01:01:00'"),
    ],
)
def test_stamps_off_the_quarter_hour_are_refused_naming_the_first(change, row, shown):
    """Stamps 10 minutes early were taken: the origins moved to 23:50 (with seconds, 23:50:07), not 00:00."""
    from models.energy.predict import score

    stamps = change(pd.Series(pd.date_range("2020-01-01 00:15", periods=10 * 96, freq="15min")))
    rows = pd.DataFrame({"date": [t.isoformat() for t in stamps], "Usage_kWh": 1.0})
    with pytest.raises(InvalidInput, match=rf"^column 'date' row {row} holds {shown}, not a quarter hour \(:00, :15"):
        score(_Constant(), rows)
    assert score(_Constant(), _rows(10 * 96), horizon=1).origin.str.endswith(" 00:00:00").all()


def test_gaps_are_filled_from_the_same_time_a_week_earlier():
    """A gap takes the same 15-minute slot of the latest week before with a reading, not the last reading (2.3 days
    after a 134.6 kWh peak made the next day 8,161 kWh for 3,263); in the first week, the last reading; before any
    reading, the constant. Each value comes from earlier rows only: the fill of a prefix is the prefix of the fill."""
    week = 7 * 96
    v = np.tile(np.arange(week, dtype=float), 4)  # every week the same: slot i holds i
    v[2 * week + 100] = 500.0  # a peak, then 2.3 days missing
    v[2 * week + 101 : 2 * week + 101 + 221] = np.nan
    v[3 * week + 100 : 3 * week + 110] = np.nan  # a week later: the peak's week is the latest one with readings
    v[[0, 1, 50, 51]] = np.nan  # the first week has no week before: the last reading, or the constant
    got = F.filled(v, fill=-1.0)
    gap = np.arange(2 * week + 101, 2 * week + 101 + 221)
    assert np.array_equal(got[gap], (gap % week).astype(float))
    assert np.array_equal(got[3 * week + 100 : 3 * week + 110], [500.0, *range(101, 110)])
    assert got[[0, 1, 50, 51]].tolist() == [-1.0, -1.0, 49.0, 49.0]
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(6 * week) < 0.3, np.nan, rng.random(6 * week))
    full = F.filled(noisy, fill=0.5)
    for k in (1, 95, week, week + 1, 3 * week + 7, 6 * week):
        assert np.array_equal(F.filled(noisy[:k], fill=0.5), full[:k])


def test_an_origin_whose_day_before_is_mostly_missing_is_forecast_with_a_warning(caplog):
    """The day before an origin mostly filled (here: 2.3 days gone, the last two rows kept) is a weak basis for a
    forecast, but the contract answers one origin per day: every origin is forecast, and a warning names those
    resting mostly on filled values and the gap (a day after such a gap, filled with the last reading, had been
    forecast 2.5 x too high; the fill now takes the same time a week earlier)."""
    from models.energy.predict import score

    rows = _rows(12 * 96)  # 1 January 00:15 to 13 January 00:00: origins 9-13 January
    gone = rows.drop(index=range(12 * 96 - 223, 12 * 96 - 2)).reset_index(drop=True)
    want = ("origin 2020-01-13 00:00: 95 of the 96 intervals it reads (stamped 2020-01-12 00:00 to 2020-01-12 23:45) "
            "have no reading; the latest gap: 2020-01-10 16:30 to 2020-01-12 23:30 (221 intervals, 2 days 7 h 15 min)")
    with caplog.at_level("WARNING", logger="sfai.energy"):
        out = score(_Constant(), gone, horizon=4)
    assert out.origin.unique().tolist() == [f"2020-01-{d:02d} 00:00:00" for d in (9, 10, 11, 12, 13)]
    note = ("the forecasts from 2020-01-12, 2020-01-13 rest mostly on filled values (more than 48 of the 96 "
            f"intervals each reads have no reading: send the missing rows); the latest, {want}")
    assert note in caplog.text and out.attrs["warnings"][0] == note
    only = score(_Constant(), gone, start="2020-01-13", horizon=4)
    assert only.origin.tolist() == ["2020-01-13 00:00:00"] * 4 and only.attrs["warnings"][0].endswith(want)
    half = rows.drop(index=range(12 * 96 - 49, 12 * 96 - 1)).reset_index(drop=True)  # 48 of 96 missing: no warning
    out = score(_Constant(), half, start="2020-01-13", horizon=4)
    assert out.origin.tolist() == ["2020-01-13 00:00:00"] * 4
    assert not any("rest mostly" in w for w in out.attrs["warnings"])


def test_filled_intervals_are_counted_and_warned_of(tmp_path, caplog):
    """The fill was silent; now the forecasts carry how many 15-minute intervals before the last origin were filled
    (``attrs["filled_intervals"]``, for the API's answer) and the CLI's log says it as a warning line."""
    from models.energy.predict import predict, score

    whole = score(_Constant(), _rows(10 * 96), horizon=4)
    assert whole.attrs["filled_intervals"] == 0 and others(whole.attrs["warnings"]) == []
    gappy = _rows(10 * 96).drop(index=range(300, 330)).reset_index(drop=True)
    with caplog.at_level("WARNING", logger="sfai.energy"):
        out = predict(_Constant(), _write(gappy, tmp_path), "steel-energy", horizon=4)
    note = ("30 of the 863 15-minute intervals before the last origin (2020-01-10 00:00) have no reading (0.3 days): "
            "filled from the same time a week earlier (where it has none, from the last reading)")
    assert out.attrs["filled_intervals"] == 30 and others(out.attrs["warnings"]) == [note] and note in caplog.text
    assert len(out) == 2 * 4 and score(_Constant(), gappy, horizon=4).attrs["filled_intervals"] == 30


def test_exactly_674_rows_says_which_earlier_rows_to_add():
    """674 rows ending with the 24:00 row were told they needed 674 rows, and then rows of the next day; the
    forecast from their end needs one earlier row (the rows at the origin is not before it)."""
    from models.energy.predict import score

    with pytest.raises(InvalidInput, match=r"cover 674 intervals \(7.0 days, 2019-12-31 23:45 to 2020-01-08 00:00\), "
                       r"673 of them before the latest origin, 2020-01-08 00:00: add the earlier rows from "
                       r"2019-12-31 23:30 on"):
        score(_Constant(), _rows(674, "2019-12-31T23:45:00"))
    assert score(_Constant(), _rows(675, "2019-12-31T23:30:00"), horizon=1).origin.tolist() == ["2020-01-08 00:00:00"]


def test_too_short_a_training_file_names_the_real_minimum(series_csv, tmp_path, caplog):
    """A 28-day file was told to give 134 days (early_stop_days 42 x 3 + 8), but early stopping is lowered for a
    short file down to 7 days: 29 days train (and the intervals the gap fill supplies are a warning there too)."""
    from models.energy.train import train

    rows = pd.read_csv(series_csv)
    rows.head(28 * 96).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(InvalidInput, match=r"20 forecast days .* needs at least 21 .* a file of at least 29 days$"):
        train(tmp_path / "short.csv", "steel-energy", tmp_path / "a", config={"epochs": 1}, tracker=NoTracker())
    rows.head(29 * 96).drop(index=range(1000, 1010)).to_csv(tmp_path / "enough.csv", index=False)
    with caplog.at_level("WARNING", logger="sfai.energy"):
        metrics = train(tmp_path / "enough.csv", "steel-energy", tmp_path / "b", config={"epochs": 1, "hidden": 8},
                        tracker=NoTracker())
    assert metrics["val_origins"] == 7
    assert "10 of the 2,784 15-minute intervals have no reading (0.1 days): filled from the same time" in caplog.text


def test_tomorrow_can_be_asked_for_before_midnight(tmp_path):
    """A day-ahead plan is made around noon: rows ending at 12:00 with start = tomorrow were refused ("start is
    after the last row"). Now the afternoon is filled from the same time a week earlier, counted and warned of;
    without a start, the answer stays what the rows allow (no origin resting on a filled half day)."""
    from models.energy.predict import predict, score

    rows = _rows(9 * 96 - 48)  # 1 January 00:15 to 9 January 12:00
    out = score(_Constant(), rows, start="2020-01-10", horizon=4)
    assert out.origin.unique().tolist() == ["2020-01-10 00:00:00"]
    assert out.attrs["filled_intervals"] == 47 and "47 of the" in others(out.attrs["warnings"])[-1]  # 12:15-23:45
    assert "2020-01-10 00:00:00" not in score(_Constant(), rows, horizon=4).origin.tolist()
    path = tmp_path / "noon.csv"
    rows.to_csv(path, index=False)
    assert predict(_Constant(), path, "steel-energy", start="2020-01-10", horizon=4).origin.tolist() == [
        "2020-01-10 00:00:00"] * 4
    with pytest.raises(InvalidInput, match="after the last row"):  # the day after tomorrow: no rows for it
        score(_Constant(), rows, start="2020-01-11", horizon=4)
