"""An energy manager's audit of the energy forecaster (2026-12): meter files in the wrong unit, UTC dates, Excel's
trailing empty line, 24:00, date errors without a row, horizon messages, and the gap warning's arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.energy import features as F
from serving.errors import InvalidInput
from tests.datasets import NoTracker
from tests.models.test_energy import QUICK, others
from tests.sfai_cli import run_sfai


@pytest.fixture(scope="module")
def model(series_csv, tmp_path_factory):
    from models.energy.train import train
    from serving.runtime import OnnxModel

    out = tmp_path_factory.mktemp("energy-model")
    train(series_csv, "steel-energy", out, config=dict(QUICK), tracker=NoTracker())
    return OnnxModel(out)


class _Constant:
    """Stands in for an exported model: every quantile 1 kWh; trained on readings of ``mean_kwh``."""

    def __init__(self, mean_kwh: float | None = 1.0) -> None:
        self.manifest = {"features": list(F.FEATURE_NAMES), "steps_per_day": 96, "fill_value": 0.0, "scale": 50.0,
                         "emission_factor_t_per_kwh": 0.0005}
        if mean_kwh is not None:
            self.manifest["mean_kwh"] = mean_kwh

    def run(self, feeds):
        return {"y": np.ones((len(feeds["x"]), 3), np.float32)}


def _rows(n: int, first: str = "2020-01-01T00:15:00", offset: str = "", kwh: float = 1.0) -> pd.DataFrame:
    stamps = pd.date_range(first, periods=n, freq="15min")
    return pd.DataFrame({"date": [s.isoformat() + offset for s in stamps], "Usage_kWh": kwh})


def _write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------- 1. the level of the readings (unit mistakes)
def test_training_records_the_level_of_its_readings(model, series_csv):
    want = pd.read_csv(series_csv)["Usage_kWh"].mean()
    assert model.manifest["mean_kwh"] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(("factor", "words"), [(1000, "Wh (1,000 x kWh)"), (1 / 1000, "MWh (kWh / 1,000)")])
def test_a_meter_file_in_wh_or_mwh_is_refused_naming_the_unit(model, series_csv, tmp_path, factor, words):
    """Wh (x 1,000) gave p50 856 x too high, MWh (/ 1,000) p50 0.0 everywhere and a collapsed band, without a word;
    now the readings' mean is compared with the training readings' (``mean_kwh``) and a unit mistake is refused, in
    one line naming the likely unit and the way out (the CLI's file, the API's records)."""
    from models.energy.predict import predict, score

    rows = pd.read_csv(series_csv)
    rows["Usage_kWh"] = rows["Usage_kWh"] * factor
    for call in (lambda: predict(model, _write(rows, tmp_path / "wrong.csv"), "steel-energy", start="2018-02-10"),
                 lambda: score(model, rows, start="2018-02-10")):
        with pytest.raises(InvalidInput, match=r"^column 'Usage_kWh' averages .* kWh per 15 minutes over the rows "
                           r"given, (1,000 x|1/1,000 of) the 40.3 kWh of the readings this model was trained "
                           r"on: are") as err:
            call()
        message = str(err.value)
        assert words in message and "needs a model trained on its own readings" in message and "\n" not in message
        assert len(message) < 400, message


def test_kw_readings_get_a_warning_and_the_plants_own_level_none(model, series_csv, tmp_path, caplog):
    """kW (mean power: 4 x the quarter hour's kWh) is within what a plant could do, so it is forecast, with a
    warning in the answer's warnings (and on the CLI's stderr); the plant's own readings, its quietest week (Lunar
    New Year, 0.26 x the Jan-Oct mean) included, get none."""
    from models.energy.predict import predict, score

    rows = pd.read_csv(series_csv)
    kw = rows.assign(Usage_kWh=rows["Usage_kWh"] * 4)
    with caplog.at_level("WARNING", logger="sfai.energy"):
        out = predict(model, _write(kw, tmp_path / "kw.csv"), "steel-energy", start="2018-02-10")
    level = [w for w in out.attrs["warnings"] if "averages" in w]
    assert len(level) == 1 and "Readings in kW (mean power)? Send kWh (kW / 4)" in level[0], out.attrs
    assert level[0] in caplog.text and len(out) == 5 * 96
    assert level[0] in score(model, kw, start="2018-02-10").attrs["warnings"]
    own = predict(model, series_csv, "steel-energy", start="2018-02-10")
    assert not any("averages" in w for w in own.attrs["warnings"])
    # one week and a day (the least an API call sends) of every week of the file: none is off by the warning's 5 x
    for first in range(0, 37 * 96, 96):
        week = rows.iloc[first : first + 8 * 96 + 1].reset_index(drop=True)
        assert not any("averages" in w for w in score(model, week, horizon=1).attrs["warnings"]), first


@pytest.mark.parametrize(("level", "outcome"), [(25.0, "refused"), (19.0, "warned"), (3.5, "warned"), (2.9, "ok"),
                                                (0.21, "ok"), (0.19, "warned"), (0.0051, "warned"),
                                                (0.0049, "refused")])
def test_level_thresholds(level, outcome):
    """Refused beyond 20 x or below 1/200 of the training level, warned beyond 3 x or below 1/5."""
    from models.energy.predict import score

    rows = _rows(8 * 96 + 1, kwh=level)
    if outcome == "refused":
        with pytest.raises(InvalidInput, match="averages"):
            score(_Constant(1.0), rows, horizon=1)
        return
    warned = [w for w in score(_Constant(1.0), rows, horizon=1).attrs["warnings"] if "averages" in w]
    assert bool(warned) == (outcome == "warned"), warned


def test_readings_all_zero_are_warned_of_not_taken_for_a_unit():
    from models.energy.predict import score

    out = score(_Constant(1.0), _rows(8 * 96 + 1, kwh=0.0), horizon=1)
    assert others(out.attrs["warnings"]) == [
        "every reading of column 'Usage_kWh' given is 0 (a meter switched off, or the plant shut down?): the "
        "forecasts follow these rows"]


def test_a_model_trained_before_the_level_was_recorded_is_not_checked():
    from models.energy.predict import score

    out = score(_Constant(None), _rows(8 * 96 + 1, kwh=5000.0), horizon=1)
    assert others(out.attrs["warnings"]) == []


def test_a_co2_column_without_large_intervals_says_so_not_no_co2_column(series_csv):
    """A file in MWh has its CO2 column, but no interval of 20 kWh or more to read the factor from: the source said
    "the file has no usable CO2 column", which sent the energy manager looking for a missing column."""
    from models.energy.train import FILE_FACTOR, GRID_FACTOR, KOREA_GRID_T_PER_KWH, emission_factor

    s = F.read_series(series_csv)
    assert emission_factor(s)[1] == FILE_FACTOR
    mwh = F.Series(s.start, s.kwh / 1000, s.co2)
    factor, source = emission_factor(mwh)
    assert factor == KOREA_GRID_T_PER_KWH
    assert "no interval of 20 kWh or more" in source and "are the readings kWh?" in source
    assert "no usable CO2 column" not in source
    assert emission_factor(F.Series(s.start, s.kwh, None)) == (KOREA_GRID_T_PER_KWH, GRID_FACTOR)
    assert "has no CO2(tCO2) column" in GRID_FACTOR
    zero = emission_factor(F.Series(s.start, s.kwh, np.zeros_like(s.co2)))[1]
    assert "reads 0 over every interval of 20 kWh or more" in zero


# ---------------------------------------------------------------- 2. UTC dates are Korea's clock
def test_utc_dates_are_read_on_korea_time(model, series_csv):
    """The same readings stamped +09:00 and as UTC (Z, +00:00): identical forecasts and origins, at the plant's
    midnight (UTC's midnight is 09:00 in Korea, and weekdays and holidays were read on UTC dates)."""
    from models.energy.predict import score

    rows = pd.read_csv(series_csv)
    local = F.parse_dates(rows["date"])
    kst = rows.assign(date=[t.isoformat() + "+09:00" for t in local])
    utc = (local.tz_localize("Asia/Seoul").tz_convert("UTC"))
    zulu = rows.assign(date=[t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in utc])
    plus0 = rows.assign(date=[t.isoformat() for t in utc])  # +00:00
    assert plus0["date"].iloc[0].endswith("+00:00") and zulu["date"].iloc[0] == "2017-12-31T15:15:00Z"
    want = score(model, kst, start="2018-02-10")
    assert want.origin.iloc[0] == "2018-02-10 00:00:00" and want.timestamp.iloc[0] == "2018-02-10 00:15:00"
    for body in (zulu, plus0):
        got = score(model, body, start="2018-02-10")
        pd.testing.assert_frame_equal(got, want)
    # a start in UTC is converted too: 2018-02-09T15:00Z is 10 February 00:00 in Korea
    pd.testing.assert_frame_equal(score(model, zulu, start="2018-02-09T15:00:00Z"), want)
    # and the naive dd/mm/yyyy file, the plant's own clock, gives the same
    pd.testing.assert_frame_equal(score(model, rows, start="2018-02-10"), want)


def test_other_offsets_keep_their_own_wall_clock():
    s = F.series_from_frame(_rows(8 * 96 + 1, offset="+01:00"))
    assert str(s.start) == "2020-01-01 00:15:00"
    k = F.series_from_frame(_rows(8 * 96 + 1, offset="Z"))
    assert str(k.start) == "2020-01-01 09:15:00" and str(k.tz) == "Asia/Seoul"


# ---------------------------------------------------------------- 6. the reader: empty lines, 24:00, rows named
def test_an_excel_trailing_empty_line_is_skipped(series_csv, tmp_path):
    text = Path(series_csv).read_text().rstrip("\n") + "\n" + "," * 10 + "\n"
    path = tmp_path / "excel.csv"
    path.write_text(text)
    s = F.read_series(path)
    assert len(s.kwh) == 45 * 96 and not np.isnan(s.kwh).any()
    # an empty line in the middle is skipped too, and the rows after it keep their numbers in messages
    rows = pd.read_csv(series_csv)
    middle = pd.concat([rows.iloc[:10], pd.DataFrame([{c: None for c in rows.columns}]), rows.iloc[10:]])
    middle = middle.astype({"Usage_kWh": object}).reset_index(drop=True)
    middle.loc[20, "Usage_kWh"] = -50.0
    with pytest.raises(InvalidInput, match=r"^column 'Usage_kWh' row 21 holds a negative value -50.0$"):
        F.series_from_frame(middle)


def test_a_negative_reading_names_its_row():
    rows = _rows(8 * 96 + 1).astype({"Usage_kWh": object})
    rows.loc[6, "Usage_kWh"] = -50.0
    with pytest.raises(InvalidInput, match=r"^column 'Usage_kWh' row 7 holds a negative value -50.0$"):
        F.series_from_frame(rows)


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        (["01/01/2018 00:15", "yesterday", "01/01/2018 00:45"],
         r"^column 'date' row 2 holds 'yesterday', expected dd/mm/yyyy HH:MM as the other dates are$"),
        (["01/01/2018 00:15", "2018-01-01T00:30:00", "01/01/2018 00:45"],
         r"^column 'date' row 2 holds '2018-01-01T00:30:00', an ISO date among dd/mm/yyyy dates: give every date "
         r"as the others are, dd/mm/yyyy HH:MM$"),
        (["2018-01-01T00:15", "2018-01-01T00:30", "01/01/2018 00:45"],
         r"^column 'date' row 3 holds '01/01/2018 00:45', a dd/mm/yyyy date among ISO dates: give every date as the "
         r"others are, YYYY-MM-DDTHH:MM"),
        (["2018-01-01T00:15", "soon", "2018-01-01T00:45"],
         r"^column 'date' row 2 holds 'soon', expected YYYY-MM-DDTHH:MM \(ISO 8601"),
    ],
)
def test_date_errors_name_the_row_and_the_format_in_use(dates, message):
    with pytest.raises(InvalidInput, match=message):
        F.series_from_frame(pd.DataFrame({"date": dates, "Usage_kWh": 1.0}))


def test_24_00_is_the_end_of_the_day():
    dmy = F.parse_dates(pd.Series(["01/01/2018 23:45", "01/01/2018 24:00", "02/01/2018 00:15"]))
    assert list(dmy) == list(pd.DatetimeIndex(["2018-01-01 23:45", "2018-01-02 00:00", "2018-01-02 00:15"]))
    iso = F.parse_dates(pd.Series(["2018-01-01T23:45:00+09:00", "2018-01-01T24:00:00+09:00",
                                   "2018-01-02T00:15:00+09:00"]))
    assert [str(t) for t in iso] == ["2018-01-01 23:45:00+09:00", "2018-01-02 00:00:00+09:00",
                                     "2018-01-02 00:15:00+09:00"]
    naive = F.parse_dates(pd.Series(["2018-01-01T24:00", "2018-01-01 24:00:00"]))
    assert list(naive) == [pd.Timestamp("2018-01-02 00:00")] * 2
    # a whole file written with 24:00 reads as the one written with 00:00 (the steel file's own way)
    rows = _rows(8 * 96 + 1, offset="+09:00")
    ends = [d.replace("T00:00:00", "T24:00:00") for d in rows["date"]]
    ends = [(pd.Timestamp(d[:10]) - pd.Timedelta(days=1)).strftime("%Y-%m-%d") + d[10:] if "T24:" in d else d
            for d in ends]
    pd.testing.assert_index_equal(F.series_from_frame(rows.assign(date=ends)).stamps,
                                  F.series_from_frame(rows).stamps)
    with pytest.raises(InvalidInput, match="row 2 holds '2018-01-01T24:15'"):
        F.parse_dates(pd.Series(["2018-01-01T23:45", "2018-01-01T24:15"]))


# ---------------------------------------------------------------- 7. one horizon message
@pytest.mark.parametrize(("horizon", "shown"), [(0, "0"), (10000, "10000"), ("96", "'96'"), (True, "True"),
                                                (2.5, "2.5")])
def test_one_horizon_message(horizon, shown):
    from models.energy.predict import check_horizon

    with pytest.raises(InvalidInput) as err:
        check_horizon(horizon, text=False)
    assert str(err.value) == ('"horizon" must be a whole number of 15-minute steps, 1-96 (one day ahead); '
                              f"got {shown}")
    assert check_horizon("12") == 12 and check_horizon(96, text=False) == 96


@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("10000", "10000"), ("abc", "'abc'")])
def test_the_clis_horizon_says_the_same(tmp_path, value, shown):
    """``--horizon 0`` said Typer's "Input should be greater than or equal to 1" (and 10000 nothing until the
    model ran): the option now gives the model's message (the API's), as the CLI's usage errors are worded, on one
    line, before any file is read."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(SFAI_HOME=str(tmp_path / "home"), SFAI_DATABASE_URL=f"sqlite:///{tmp_path / 'sfai.db'}",
               SFAI_ENVIRONMENT="test", SFAI_SECRET_KEY="test-secret-0123456789")
    p = run_sfai("predict", "energy", "--dataset", "steel-energy", "--input", tmp_path / "x.csv",
                 "--output", tmp_path / "out.csv", "--horizon", value, env=env)
    assert p.returncode != 0 and p.stderr.strip().splitlines() == [
        "error: Invalid value for '--horizon': \"horizon\" must be a whole number of 15-minute steps, 1-96 (one day "
        f"ahead); got {shown} (see 'sfai predict --help')"], p.stderr


# ---------------------------------------------------------------- 8. the gap warning's count and gap agree
def test_a_missing_day_before_an_origin_is_counted_as_the_gap_is():
    """With the day before an origin removed (its 96 rows, 00:15 to the 24:00 row stamped at the origin), the warning
    said "95 of the 96 intervals ... (the latest gap: 00:15 to 00:00 of the next day, 1.0 days)": the count read the
    24 hours the forecast reads, the gap ran on to the origin's own row, which no forecast reads. Both now count the
    intervals the forecast reads, and the gap's length is exact."""
    from models.energy.predict import score

    rows = _rows(10 * 96)  # 1 January 00:15 to 11 January 00:00
    gone = rows[~rows["date"].between("2020-01-09T00:15:00", "2020-01-10T00:00:00")].reset_index(drop=True)
    assert len(gone) == 9 * 96
    out = score(_Constant(), gone, start="2020-01-10", horizon=1)
    (note,) = [w for w in out.attrs["warnings"] if "rest mostly" in w]
    assert note.endswith("origin 2020-01-10 00:00: 95 of the 96 intervals it reads (stamped 2020-01-09 00:00 to "
                         "2020-01-09 23:45) have no reading; the latest gap: 2020-01-09 00:15 to 2020-01-09 23:45 "
                         "(95 intervals, 23 h 45 min)"), note


def test_origins_with_fewer_than_five_weeks_of_readings_are_warned_of():
    """A forecast from 8 days of readings read a profile of a few days of each type and said nothing (the same day's
    p50 moved from 3.98 to 4.31 kWh between 8 and 36 days of history: integration audit). Origins with fewer than
    SHORT_HISTORY_DAYS days before them are named in one warning; with enough history there is none."""
    from models.energy.predict import SHORT_HISTORY_DAYS, score

    rows = _rows(40 * 96)  # 1 January 00:15 to 10 February 00:00
    out = score(_Constant(), rows, start="2020-01-09", horizon=1)
    (note,) = [w for w in out.attrs["warnings"] if "fewer than" in w]
    assert SHORT_HISTORY_DAYS == 35
    assert note.startswith("27 origins (2020-01-09 to 2020-02-04) read fewer than 35 days of readings (8 before "
                           "2020-01-09): "), note
    assert note.endswith("send 35 days of readings or more")
    late = score(_Constant(), rows, start="2020-02-05", horizon=1)
    assert not [w for w in late.attrs["warnings"] if "fewer than" in w] and len(late) == 6
    one = score(_Constant(), rows.head(20 * 96 - 4), start="2020-01-20", horizon=1)  # to 20 January 23:00
    assert [w for w in one.attrs["warnings"] if "fewer than" in w][0].startswith("origin 2020-01-20 read fewer")


# ---------------------------------------------------------------- a reading far above the training range
def test_a_spike_far_above_the_training_range_is_read_as_a_gap(model, series_csv):
    """One reading of 40,000 kWh (a meter error; the plant peaks near 160 per 15 minutes) made the next day's p50
    25 x too high and a plan under a peak cap impossible, without a word. Now it is read as a gap, filled as gaps
    are, and the warning names it: the forecast is the one of the rows with that reading missing."""
    from models.energy.predict import score

    rows = pd.read_csv(series_csv)
    assert model.manifest["max_kwh"] == pytest.approx(rows["Usage_kWh"].max())
    at = 30 * 96 + 40  # a reading on the day before 2018-02-01
    spiked = rows.copy()
    spiked.loc[at, "Usage_kWh"] = 40_000.0
    gap = rows.copy()
    gap.loc[at, "Usage_kWh"] = np.nan
    out, want = score(model, spiked, start="2018-02-01", horizon=96), score(model, gap, start="2018-02-01", horizon=96)
    assert out["p50"].tolist() == want["p50"].tolist() and out["p90"].max() < 5 * rows["Usage_kWh"].max()
    (spike,) = [w for w in out.attrs["warnings"] if "read as gaps" in w]
    assert spike.startswith("1 reading of column 'Usage_kWh' above 5 x the highest reading this model was trained on")
    stamp = F.series_from_frame(rows).stamps[at]
    assert f"{stamp:%Y-%m-%d %H:%M} (40,000.0)" in spike and out.attrs["filled_intervals"] == 1
    assert not any("read as gaps" in w for w in score(model, rows, start="2018-02-01").attrs["warnings"])


def test_a_model_without_its_maximum_judges_spikes_by_its_mean():
    from models.energy.predict import score

    rows = _rows(8 * 96 + 1, kwh=1.0)
    rows.loc[100, "Usage_kWh"], rows.loc[200, "Usage_kWh"] = 49.0, 51.0
    (spike,) = [w for w in score(_Constant(1.0), rows, horizon=1).attrs["warnings"] if "read as gaps" in w]
    assert "1 reading of column 'Usage_kWh' above 50 x the mean of the readings" in spike and "(51.0)" in spike
