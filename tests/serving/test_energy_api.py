"""``POST /v1/energy/forecast`` on bodies a black-box fuzz found: every one a quick 422 with a clear message (or a
consistent 200), never a 500 or a minute of work."""

import time

import pandas as pd
import pytest

from models.registry import ModelRegistry
from tests.models.test_energy import others
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"
URL = "/v1/energy/forecast"


def energy_tenant(db, settings, demo_models):  # noqa: ANN001, ANN201
    """acme with the energy module and the demo energy model, and eight days and 15 minutes of the demo plant's
    records with ISO dates from 2020-01-01 00:15: (acme's keys, records)."""
    from models.demo import sample_request

    models_dir, demo_dir = demo_models
    acme = make_tenant(db, PEPPER, "acme", modules=("energy",))
    ModelRegistry(db, settings.home, "acme").register("energy", "energy", models_dir / "energy" / "v1")
    records = sample_request(demo_dir, "energy")["records"]
    stamps = pd.date_range("2020-01-01 00:15", periods=len(records), freq="15min")
    return acme, [{**r, "date": s.isoformat()} for r, s in zip(records, stamps, strict=True)]


@pytest.fixture
def energy(client, db, settings, demo_models):
    """(client, headers, eight days and 15 minutes of the demo plant's records with ISO dates)."""
    acme, records = energy_tenant(db, settings, demo_models)
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
    assert whole.status_code == 200 and whole.json()["filled_intervals"] == 0 and others(whole.json()["warnings"]) == []
    gappy = records[:300] + records[340:]  # 40 intervals missing, days before the origin
    r = client.post(URL, json={"records": gappy, "horizon": 4}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["filled_intervals"] == 40 and any("40" in w and "no reading" in w for w in body["warnings"]), body
    assert list(body)[:5] == ["model", "version", "count", "filled_intervals", "warnings"]


# ---------------------------------------------------------------- an energy manager's audit (2026-12)
HORIZON = '"horizon" must be a whole number of 15-minute steps, 1-96 (one day ahead); got '


@pytest.mark.parametrize(("horizon", "shown"), [(0, "0"), (10000, "10000"), ("96", "'96'"), (-3, "-3"),
                                                (2.5, "2.5"), (False, "False")])
def test_every_bad_horizon_gets_the_same_message(energy, horizon, shown):
    """0 said "from 1; got 0", 10000 "1-96 (one day ahead)", the text "96" "from 1; got '96'": one message now, the
    CLI's --horizon's too."""
    client, h, records = energy
    message = refused(client.post(URL, json={"records": records, "horizon": horizon}, headers=h))
    assert message == HORIZON + shown


def test_a_bad_horizon_in_the_query_string_gets_the_same_message(energy):
    import io

    client, h, records = energy
    body = io.BytesIO()
    pd.DataFrame(records).to_parquet(body)
    for value, shown in (("0", "0"), ("abc", "'abc'"), ("10000", "10000")):
        r = client.post(f"{URL}?horizon={value}", content=body.getvalue(),
                        headers={**h, "content-type": "application/vnd.apache.parquet"})
        assert refused(r) == HORIZON + shown


def test_readings_in_wh_are_refused_and_kw_warned_of(energy):
    """A meter in Wh (x 1,000) gave forecasts 856 x too high, and its CO2, without a word; MWh gave p50 0.0. The
    readings' level is compared with the training readings' (the manifest's mean_kwh)."""
    client, h, records = energy
    for factor, unit in ((1000, "Wh (1,000 x kWh)"), (1 / 1000, "MWh (kWh / 1,000)")):
        scaled = [{**r, "Usage_kWh": r["Usage_kWh"] * factor} for r in records]
        refused(client.post(URL, json={"records": scaled, "horizon": 4}, headers=h), "averages", unit,
                "needs a model trained on its own readings")
    kw = [{**r, "Usage_kWh": r["Usage_kWh"] * 4} for r in records]
    r = client.post(URL, json={"records": kw, "horizon": 4}, headers=h)
    assert r.status_code == 200, r.text
    assert any("Readings in kW (mean power)?" in w for w in r.json()["warnings"]), r.json()["warnings"]
    plain = client.post(URL, json={"records": records, "horizon": 4}, headers=h).json()
    assert others(plain["warnings"]) == []  # (the records span 8 days: the short history is warned of)


def test_utc_dates_are_the_plants_korea_time(energy):
    """UTC stamps were read on the UTC clock: origins at UTC midnight (09:00 in Korea), weekdays and holidays of UTC
    dates. They are now converted to Korea time first: the same readings as +09:00 and as UTC give one answer."""
    client, h, records = energy
    kst = [{**r, "date": r["date"] + "+09:00"} for r in records]
    utc = [{**r, "date": (pd.Timestamp(r["date"]) - pd.Timedelta(hours=9)).isoformat() + "Z"} for r in records]
    assert utc[0]["date"] == "2019-12-31T15:15:00Z"
    want = client.post(URL, json={"records": kst, "horizon": 4}, headers=h)
    got = client.post(URL, json={"records": utc, "horizon": 4}, headers=h)
    assert want.status_code == 200 and got.status_code == 200, got.text
    assert got.json()["predictions"] == want.json()["predictions"]
    assert got.json()["predictions"][0]["origin"] == "2020-01-09 00:00:00"


def test_an_empty_trailing_record_is_skipped_and_24_00_read(energy):
    client, h, records = energy
    want = client.post(URL, json={"records": records, "horizon": 4}, headers=h).json()["predictions"]
    r = client.post(URL, json={"records": [*records, {"date": None, "Usage_kWh": None}], "horizon": 4}, headers=h)
    assert r.status_code == 200 and r.json()["predictions"] == want, r.text
    ends = [{**x, "date": (pd.Timestamp(x["date"]) - pd.Timedelta(days=1)).strftime("%Y-%m-%dT24:%M:%S")}
            if x["date"].endswith("T00:00:00") else x for x in records]
    assert sum("T24:00" in x["date"] for x in ends) == 8
    r = client.post(URL, json={"records": ends, "horizon": 4}, headers=h)
    assert r.status_code == 200 and r.json()["predictions"] == want, r.text
    odd = [dict(x) for x in records]
    odd[30]["date"] = "31/12/2019 08:00"
    refused(client.post(URL, json={"records": odd}, headers=h), "column 'date' row 31 holds '31/12/2019 08:00', a "
            "dd/mm/yyyy date among ISO dates")


def test_the_answer_gives_its_emission_factor_and_sets_a_spike_aside(energy):
    """A manager could not see the factor behind co2_p50 (nor apply the reporting year's official one), and one
    reading far above the plant's range made the next day's forecast many times too high without a word."""
    client, h, records = energy
    r = client.post(URL, json={"records": records, "horizon": 96}, headers=h)
    assert r.status_code == 200, r.text
    answer = r.json()
    factor = answer["emission_factor_t_per_kwh"]
    assert 0 < factor < 0.001
    assert all(abs(p["co2_p50"] - round(p["p50"] * factor, 6)) < 1e-6 for p in answer["predictions"])
    spiked = [dict(rec) for rec in records]
    spiked[-20]["Usage_kWh"] = 40_000.0
    s = client.post(URL, json={"records": spiked, "horizon": 96}, headers=h).json()
    assert any("read as gaps" in w and "(40,000.0)" in w for w in s["warnings"]), s["warnings"]
    assert max(p["p50"] for p in s["predictions"]) < 10 * max(p["p50"] for p in answer["predictions"])
