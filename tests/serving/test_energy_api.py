"""``POST /v1/energy/forecast`` on bodies a black-box fuzz found: every one a quick 422 with a clear message (or a
consistent 200), never a 500 or a minute of work."""

import time

import pandas as pd
import pytest

from models.registry import ModelRegistry
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
URL = "/v1/energy/forecast"


@pytest.fixture
def energy(client, db, settings, demo_models):
    """(client, headers, eight days and 15 minutes of the demo plant's records with ISO dates)."""
    from models.demo import sample_request

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("energy",))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    records = sample_request(demo_dir, "energy")["records"]
    stamps = pd.date_range("2020-01-01 00:15", periods=len(records), freq="15min")
    records = [{**r, "date": s.isoformat()} for r, s in zip(records, stamps, strict=True)]
    return client, bearer(acme.mes), records


def refused(r, *words):
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    assert all(w in message for w in words), message
    return message


def test_the_demo_history_forecasts(energy):
    client, h, records = energy
    r = client.post(URL, json={"records": records, "horizon": 4}, headers=h)
    assert r.status_code == 200, r.text
    first = r.json()["predictions"][0]
    assert (first["origin"], first["timestamp"]) == ("2020-01-09 00:00:00", "2020-01-09 00:15:00")
    # null options are their defaults, as if left out
    same = client.post(URL, json={"records": records, "horizon": 4, "start": None}, headers=h)
    assert same.status_code == 200 and same.json()["predictions"] == r.json()["predictions"], same.text


def test_two_rows_decades_apart_are_refused_at_once(energy):
    client, h, _ = energy
    for first, last in (("2000-01-01T00:15", "2060-01-01T00:00"), ("1000-01-01T00:15", "3000-01-01T00:00")):
        body = {"records": [{"date": first, "Usage_kWh": 1}, {"date": last, "Usage_kWh": 1}], "horizon": 1}
        t0 = time.perf_counter()
        refused(client.post(URL, json=body, headers=h), "intervals of 15 minutes for 2 rows")
        assert time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize("start", ["", "NaT", "01/09/2020", "20200109"])
def test_a_start_that_is_not_a_time_is_422(energy, start):
    client, h, records = energy
    refused(client.post(URL, json={"records": records, "start": start}, headers=h), "not a date")


def test_time_zones_are_consistent_or_refused(energy):
    client, h, records = energy
    aware = [{**r, "date": r["date"] + "+09:00"} for r in records]
    naive = client.post(URL, json={"records": records, "horizon": 4}, headers=h).json()["predictions"]
    for start in (None, "2020-01-09", "2020-01-09T00:00:00+09:00", "2020-01-08T15:00:00Z"):
        body = {"records": aware, "horizon": 4, **({"start": start} if start else {})}
        r = client.post(URL, json=body, headers=h)
        assert r.status_code == 200, (start, r.text)
        assert r.json()["predictions"] == naive  # the local wall time of the dates' offset
    refused(client.post(URL, json={"records": records, "start": "2020-01-09T00:00:00+09:00"}, headers=h),
            "UTC offset")
    refused(client.post(URL, json={"records": records[:400] + aware[400:]}, headers=h), "mixes dates")


@pytest.mark.parametrize("horizon", [97, 672, 673, True, 0])
def test_horizon_out_of_range_or_not_a_number_is_422(energy, horizon):
    client, h, records = energy
    refused(client.post(URL, json={"records": records, "horizon": horizon}, headers=h), '"horizon"')


def test_horizon_past_a_day_names_the_models_range(energy):
    client, h, records = energy
    refused(client.post(URL, json={"records": records, "horizon": 97}, headers=h), "1-96")


def test_a_short_history_says_how_much_is_needed(energy):
    client, h, records = energy
    message = refused(client.post(URL, json={"records": records[:96]}, headers=h), "674 rows", "96 intervals")
    assert "start" not in message


def test_a_reading_out_of_range_names_row_and_column(energy):
    client, h, records = energy
    odd = [dict(r) for r in records]
    odd[9]["Usage_kWh"] = 1e39
    refused(client.post(URL, json={"records": odd}, headers=h), "'Usage_kWh' row 10", "out of range")


def test_the_answer_says_how_many_intervals_were_filled(energy):
    """Gaps in the meter's rows are filled (from the same slot a week earlier) before the model reads them; the
    CLI warned of it, the API answer said nothing. It now counts them and carries the warning."""
    client, h, records = energy
    whole = client.post(URL, json={"records": records, "horizon": 4}, headers=h)
    assert whole.status_code == 200 and whole.json()["filled_intervals"] == 0 and whole.json()["warnings"] == []
    gappy = records[:300] + records[340:]  # 40 intervals missing, days before the origin
    r = client.post(URL, json={"records": gappy, "horizon": 4}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["filled_intervals"] == 40 and any("40" in w and "no reading" in w for w in body["warnings"]), body
    assert list(body)[:5] == ["model", "version", "count", "filled_intervals", "warnings"]
