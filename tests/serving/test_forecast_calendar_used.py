"""An energy forecast says which calendar it used: the answer's ``calendar_used`` lists the days inside the forecasts'
horizons that were not forecast as ordinary weekdays, and why (``{"date", "day_type", "source"}``: a public holiday,
the tenant's plant calendar's day off or working day, a weekend), once per answer; the forecast numbers are the
same bytes as before. ``sfai predict energy`` says it in one note on stderr; its CSV is unchanged."""

import io
import json

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest

from models.energy.calendar import PLANT
from serving import predictions
from tests.serving.helpers import bearer
from tests.serving.test_energy_api import energy_tenant
from tests.serving.test_entity_predictions import ARROW, steel_csv, tenant_with
from tests.test_plant_calendar import CAL, FORECAST, cal

# 2018-08-13 (Monday) to 2018-08-20 (Monday): Liberation Day on Wednesday the 15th, the plant's day off on Friday
# the 17th and working Saturday the 18th, Sunday the 19th; the plant's working Thursday the 16th is an ordinary
# weekday anyway, and its day off on the 25th lies outside the horizon
PLANT_DAYS = [{"date": "2018-08-17", "kind": "day_off", "note": "summer shutdown"},
              {"date": "2018-08-18", "kind": "working"}, {"date": "2018-08-16", "kind": "working"},
              {"date": "2018-08-25", "kind": "day_off"}]
USED = [{"date": "2018-08-15", "day_type": "holiday", "source": "public"},
        {"date": "2018-08-17", "day_type": "holiday", "source": "plant"},
        {"date": "2018-08-18", "day_type": "working", "source": "plant"},
        {"date": "2018-08-19", "day_type": "weekend", "source": "public"}]
PUBLIC_ONLY = [{"date": "2018-08-15", "day_type": "holiday", "source": "public"},
               {"date": "2018-08-18", "day_type": "weekend", "source": "public"},
               {"date": "2018-08-19", "day_type": "weekend", "source": "public"}]
OLD_NOTES = ("filled_intervals", "warnings", "emission_factor_t_per_kwh")  # an energy answer's notes before


def august(demo_models, days: int = 31, end: str = "2018-08-20 00:00") -> list[dict]:
    """``days`` days of the demo plant's readings (ISO dates, no offset: the plant's clock) up to ``end``."""
    demo = pd.read_csv(demo_models[1] / "energy_demo.csv")
    stamps = pd.date_range(end=end, periods=days * 96, freq="15min")
    usage = np.resize(demo["Usage_kWh"].to_numpy(), len(stamps))
    return [{"date": s.isoformat(), "Usage_kWh": float(u)} for s, u in zip(stamps, usage, strict=True)]


@pytest.fixture
def energy(client, db, settings, demo_models):
    acme, _ = energy_tenant(db, settings, demo_models)
    return client, acme, august(demo_models)


def without_calendar(raw: bytes, days: list) -> bytes:
    """The answer's bytes without its calendar_used field (the last field before the predictions)."""
    field = b',"calendar_used":' + orjson.dumps(days)
    assert raw.count(field) == 1, raw[:400]
    return raw.replace(field, b"")


def test_the_answer_names_the_days_that_were_no_ordinary_weekday(energy, monkeypatch):
    client, acme, records = energy
    h = bearer(acme.admin)
    body = {"records": records, "start": "2018-08-13", "horizon": 96}
    public = client.post(FORECAST, json=body, headers=h)
    assert public.status_code == 200, public.text
    assert sorted({p["origin"][:10] for p in public.json()["predictions"]}) == [
        f"2018-08-{d}" for d in range(13, 21)]
    assert public.json()["calendar_used"] == PUBLIC_ONLY  # no plant calendar: the public one

    assert client.put(CAL, json={"days": PLANT_DAYS}, headers=h).status_code == 200
    marked = client.post(FORECAST, json=body, headers=h)
    assert marked.status_code == 200, marked.text
    assert marked.json()["calendar_used"] == USED
    # the numbers: the bytes of the answer as it was before calendar_used, field for field
    monkeypatch.setattr(predictions, "NOTES", OLD_NOTES)
    before = client.post(FORECAST, json=body, headers=h)
    assert "calendar_used" not in before.json()
    assert without_calendar(marked.content, USED) == before.content
    monkeypatch.undo()
    # the plant's days moved the forecast: the calendar listed is the one the numbers were made with
    p50 = {p["timestamp"]: p["p50"] for p in public.json()["predictions"]}
    assert any(p["p50"] != p50[p["timestamp"]] for p in marked.json()["predictions"]
               if p["origin"].startswith("2018-08-17"))

    # one origin, a part of its day: the horizon's days only
    one = client.post(FORECAST, json={"records": records[: -4 * 96], "start": "2018-08-15", "horizon": 4},
                      headers=h).json()
    assert {p["origin"] for p in one["predictions"]} == {"2018-08-15 00:00:00", "2018-08-16 00:00:00"}
    assert one["calendar_used"] == USED[:1]
    # ordinary weekdays only: an empty list
    monday = client.post(FORECAST, json={"records": records[: -6 * 96], "start": "2018-08-13", "horizon": 8},
                         headers=h).json()
    assert {p["origin"][:10] for p in monday["predictions"]} == {"2018-08-13", "2018-08-14"}
    assert monday["calendar_used"] == []


def test_a_forecast_by_meter_id_names_its_days_once(client, db, settings, demo_models, tmp_path):
    """By meter id: the days of every meter's forecasts, once each; the Arrow answer has the same columns as before
    plus each row's entity and reading, and the calendar in its schema's metadata (``sfai.calendar_used``)."""
    from pipelines.runner import run_pipeline

    h, fs = tenant_with(db, settings, demo_models, "energy", modules=("energy",))
    ends = pd.date_range("2018-07-25 00:15", "2018-08-15 00:00", freq="15min")  # the last: the 14th's 24:00
    usage = np.resize(pd.read_csv(demo_models[1] / "energy_demo.csv")["Usage_kWh"].to_numpy(), len(ends))
    dmy = [(t - pd.Timedelta(days=1) if (t.hour, t.minute) == (0, 0) else t).strftime("%d/%m/%Y %H:%M") for t in ends]
    steel_csv(tmp_path / "steel.csv", pd.DataFrame({"date": dmy, "Usage_kWh": usage}))
    run_pipeline("steel-energy", tmp_path / "steel.csv", store=fs)
    fs.close()
    body = {"entity_ids": ["daewoo-gwangyang", "daewoo-gwangyang"], "view": "steel_energy_features", "horizon": 8}
    latest = client.post(FORECAST, json=body, headers=h)
    assert latest.status_code == 200, latest.text
    assert {p["origin"] for p in latest.json()["predictions"]} == {"2018-08-15 00:00:00"}  # the day after the last
    assert latest.json()["calendar_used"] == USED[:1]  # two meters (one, twice): the holiday once
    admin = make_admin(db)
    assert client.put(CAL, json={"days": [{"date": "2018-08-11", "kind": "working"},
                                          {"date": "2018-08-13", "kind": "day_off"}]}, headers=admin).status_code == 200
    backtest = client.post(FORECAST, json={**body, "start": "2018-08-10"}, headers=h).json()
    assert backtest["calendar_used"] == [
        {"date": "2018-08-11", "day_type": "working", "source": "plant"},  # Saturday
        {"date": "2018-08-12", "day_type": "weekend", "source": "public"},
        {"date": "2018-08-13", "day_type": "holiday", "source": "plant"},
        {"date": "2018-08-15", "day_type": "holiday", "source": "public"}]
    arrow = pa.ipc.open_stream(io.BytesIO(client.post(FORECAST, json=body, headers={**h, **ARROW}).content)).read_all()
    assert arrow.column_names == ["origin", "timestamp", "p10", "p50", "p90", "co2_p50", "entity_id", "reading_at",
                                  "reading_age_s"]
    assert json.loads(arrow.schema.metadata[b"sfai.calendar_used"]) == latest.json()["calendar_used"]
    assert json.loads(arrow.schema.metadata[b"sfai.emission_factor_t_per_kwh"]) == latest.json()[
        "emission_factor_t_per_kwh"]


def make_admin(db):
    """An admin key of acme (the tenant tenant_with made), which may set the calendar."""
    from serving import tenancy
    from tests.serving.test_entity_predictions import PEPPER

    return bearer(tenancy.create_api_key(db, PEPPER, "acme", "admin", "admin").token)


def test_the_day_types_and_their_sources():
    from models.energy.calendar import days_used, describe_days

    # Sat 2018-09-22 (a plant day off), Sun 2018-09-23 (Chuseok eve: a public holiday on a Sunday), Mon 2018-09-24
    # (Chuseok, worked through), Tue 2018-09-25 (Chuseok), Wed 2018-09-26 (its substitute holiday), Thu 2018-09-27
    # (ordinary), Fri 2018-09-28 (marked working: ordinary all the same), Sat 2018-09-29
    days = pd.date_range("2018-09-22", "2018-09-29", freq="D").append(pd.DatetimeIndex(["2018-09-22 06:00"]))
    plant = cal(day_off=["2018-09-22"], working=["2018-09-24", "2018-09-28"])
    assert days_used(days, plant) == [
        {"date": "2018-09-22", "day_type": "holiday", "source": "plant"},
        {"date": "2018-09-23", "day_type": "holiday", "source": "public"},
        {"date": "2018-09-24", "day_type": "working", "source": "plant"},
        {"date": "2018-09-25", "day_type": "holiday", "source": "public"},
        {"date": "2018-09-26", "day_type": "holiday", "source": "public"},
        {"date": "2018-09-29", "day_type": "weekend", "source": "public"}]
    assert [d["day_type"] for d in days_used(days)] == ["weekend", *["holiday"] * 4, "weekend"]
    assert days_used([]) == []
    assert describe_days(USED) == ("2018-08-15 holiday (public), 2018-08-17 holiday (plant), 2018-08-18 working "
                                   "(plant), 2018-08-19 weekend")
    assert describe_days([]) == "ordinary weekdays only"


def test_the_file_forecast_says_its_calendar_in_one_note(energy, settings, db, tmp_path):
    """``sfai predict energy`` (serving.batch.score_file): the contract CSV is unchanged, and the report's notes,
    which the CLI prints on stderr, say the calendar in one line."""
    from models.registry import ModelRegistry
    from serving.batch import score_file

    _, _, records = energy
    src, out = tmp_path / "history.csv", tmp_path / "out.csv"
    pd.DataFrame.from_records(records).to_csv(src, index=False)
    model = ModelRegistry(db, settings.home, "acme").get("energy")
    token = PLANT.set(cal(day_off=["2018-08-17"], working=["2018-08-18"]))
    try:
        report = score_file("energy", model.path, src, "steel-energy", out,
                            options={"start": "2018-08-13", "horizon": 96})
    finally:
        PLANT.reset(token)
    assert pd.read_csv(out).columns.tolist() == ["origin", "timestamp", "p10", "p50", "p90"]
    (note,) = [n for n in report["notes"] if n.startswith("calendar used")]
    assert note == ("calendar used for the days forecast: 2018-08-15 holiday (public), 2018-08-17 holiday (plant), "
                    "2018-08-18 working (plant), 2018-08-19 weekend")


def test_openapi_describes_the_calendar_used(client):
    op = client.get("/openapi.json").json()["paths"][FORECAST]["post"]
    used = op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["calendar_used"]
    day = used["items"]
    assert used["type"] == "array" and day["required"] == ["date", "day_type", "source"]
    assert day["properties"]["day_type"]["enum"] == ["holiday", "working", "weekend"]
    assert day["properties"]["source"]["enum"] == ["public", "plant"]
