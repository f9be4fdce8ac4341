"""Energy rows that go back in time (user audit): the steel file's dd/mm/yyyy dates reformatted to ISO at face
value (Excel) put each day's closing 00:00 row, which is 24:00, 24 hours early, after that day's 23:45. That is
refused naming the row and the fix; other rows out of time order are placed by their dates, as before, and logged;
correct files read and forecast exactly as before."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from models.energy import features as F
from serving.errors import InvalidInput
from tests.datasets import NoTracker
from tests.models.test_energy import QUICK


@pytest.fixture(scope="module")
def model(series_csv, tmp_path_factory):
    from models.energy.train import train
    from serving.runtime import OnnxModel

    out = tmp_path_factory.mktemp("energy-model")
    train(series_csv, "steel-energy", out, config=dict(QUICK), tracker=NoTracker())
    return OnnxModel(out)


def face_value_iso(df: pd.DataFrame) -> pd.DataFrame:
    """What Excel writes: each dd/mm/yyyy HH:MM date as ISO, its 00:00 (the day's 24:00) keeping its date."""
    stamps = pd.to_datetime(df["date"], format="%d/%m/%Y %H:%M")
    return df.assign(date=stamps.dt.strftime("%Y-%m-%dT%H:%M"))


def true_iso(df: pd.DataFrame, *, as_24: bool = False) -> pd.DataFrame:
    """The same dates as ISO, the closing 00:00 as the next day's 00:00 (or as 24:00 of its own day)."""
    stamps = pd.to_datetime(df["date"], format="%d/%m/%Y %H:%M")
    midnight = (stamps.dt.hour == 0) & (stamps.dt.minute == 0)
    text = (stamps + pd.to_timedelta(midnight.astype(int), unit="D")).dt.strftime("%Y-%m-%dT%H:%M")
    if as_24:
        text = text.where(~midnight, stamps.dt.strftime("%Y-%m-%dT24:00"))
    return df.assign(date=text)


def same_series(a: F.Series, b: F.Series) -> None:
    assert a.start == b.start and a.tz == b.tz
    np.testing.assert_array_equal(a.kwh, b.kwh)
    np.testing.assert_array_equal(a.co2, b.co2)


def test_face_value_iso_dates_are_refused_naming_the_row_and_the_fix(series_csv, tmp_path):
    bad = face_value_iso(pd.read_csv(series_csv))
    bad.to_csv(tmp_path / "iso.csv", index=False)
    for read in (lambda: F.read_series(tmp_path / "iso.csv"), lambda: F.series_from_frame(bad)):
        with pytest.raises(InvalidInput) as e:
            read()
        text = str(e.value)
        assert text.startswith(
            "column 'date' row 96 holds '2018-01-01T00:00', earlier than row 95 ('2018-01-01T23:45'): the rows go "
            "back in time. It looks like the day's closing 00:00 row (24:00) written with its own day's date")
        assert "write it as the next day's 00:00 (2018-01-02T00:00) or as 2018-01-01T24:00" in text
        assert "\n" not in text
    # a trailing empty line (skipped) keeps the row numbers; an offset does not hide it
    with pytest.raises(InvalidInput, match="row 96 holds '2018-01-01T00:00"):
        F.series_from_frame(pd.concat([bad, pd.DataFrame({"date": [""], "Usage_kWh": [np.nan]})]))
    with pytest.raises(InvalidInput, match=r"row 96 holds '2018-01-01T00:00\+09:00', earlier than row 95"):
        F.series_from_frame(bad.assign(date=bad["date"] + "+09:00"))


def test_iso_dates_with_the_closing_row_on_the_next_day_read_as_the_file(series_csv, caplog):
    df = pd.read_csv(series_csv)
    with caplog.at_level(logging.WARNING, logger="sfai.energy"):
        want = F.series_from_frame(df)
        for iso in (true_iso(df), true_iso(df, as_24=True)):
            same_series(F.series_from_frame(iso), want)
    assert not caplog.records  # correct files: no note


def test_rows_sent_newest_first_are_placed_by_date_and_logged(series_csv, caplog):
    df = pd.read_csv(series_csv)
    want = F.series_from_frame(df)
    for rows in (df.iloc[::-1], true_iso(df).iloc[::-1], true_iso(df).iloc[1:].iloc[::-1]):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sfai.energy"):
            got = F.series_from_frame(rows.reset_index(drop=True))
        assert "row 2 holds" in caplog.text and "the rows go back in time" in caplog.text
        np.testing.assert_array_equal(got.kwh[-len(want.kwh) + 1:], want.kwh[-len(want.kwh) + 1:])


def test_the_correct_steel_file_forecasts_exactly_as_before(model, series_csv, monkeypatch, caplog):
    from models.energy import predict as P

    with caplog.at_level(logging.WARNING, logger="sfai.energy"):
        now = P.predict(model, series_csv, "steel-energy", start="2018-02-10")
    assert "go back in time" not in caplog.text
    monkeypatch.setattr(F, "_check_order", lambda *a, **k: None)  # the reading before the check existed
    before = P.predict(model, series_csv, "steel-energy", start="2018-02-10")
    pd.testing.assert_frame_equal(now, before)
    assert now.attrs == before.attrs
