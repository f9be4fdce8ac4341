"""A tenant's plant calendar: its own days off and working days, stored per tenant (migration 0015), set and read
through ``/v1/energy/calendar``, and read by the energy forecast for the days forecast and the past days behind
their day-type profile. Without a calendar the forecast is what it was."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from models.energy import features as F
from models.energy.calendar import PLANT, PlantCalendar, calendar_features, is_holiday
from models.registry import ModelRegistry
from tests.serving.helpers import bearer, make_tenant
from tests.serving.test_energy_api import energy_tenant

PEPPER = "test-secret-0123456789"
CAL, FORECAST = "/v1/energy/calendar", "/v1/energy/forecast"
D = date.fromisoformat


def cal(**kinds) -> PlantCalendar:
    """``cal(day_off=["2018-08-01"], working=[...])``"""
    return PlantCalendar(frozenset(map(D, kinds.get("day_off", []))), frozenset(map(D, kinds.get("working", []))))


# the covariates and day types ---------------------------------------------------------------------------------

def test_day_types_follow_the_plant_calendar():
    # Wed (working), Sat, Sun, Mon public holiday (Chuseok 2018-09-24), Sat 2018-09-29
    days = pd.DatetimeIndex(["2018-08-01", "2018-08-04", "2018-08-05", "2018-09-24", "2018-09-29"])
    assert F.day_types(days).tolist() == [0, 1, 2, 2, 1]
    plant = cal(day_off=["2018-08-01", "2018-09-29"], working=["2018-08-04", "2018-08-05", "2018-09-24"])
    assert F.day_types(days, plant).tolist() == [2, 0, 0, 0, 2]
    assert is_holiday(days, plant).tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]


def test_calendar_covariates_follow_the_plant_calendar():
    days = pd.DatetimeIndex(["2018-08-01", "2018-08-02", "2018-08-05", "2018-08-08", "2018-09-24"])
    names = ["holiday", "holiday_yesterday", "holiday_last_week", "day_off"]
    cols = [F.CALENDAR_NAMES.index(n) for n in names]
    plant = cal(day_off=["2018-08-01"], working=["2018-08-05", "2018-09-24"])
    x = calendar_features(days, np.zeros(len(days)), plant)[:, cols]
    assert x.tolist() == [[1, 0, 0, 1],  # the day off: a holiday
                          [0, 1, 0, 0],  # the day after it
                          [0, 0, 0, 0],  # a working Sunday: not a day off
                          [0, 0, 1, 0],  # a week after the day off
                          [0, 1, 0, 0]]  # Chuseok worked through (the day before it is Chuseok too)
    weekdays = calendar_features(days, np.zeros(len(days)), plant)[:, :7].argmax(1)
    assert weekdays.tolist() == [2, 3, 6, 2, 0]  # the weekday stays the date's own


def test_a_calendar_that_repeats_the_public_one_changes_no_feature():
    """Marking the public holidays days off and the ordinary weekdays working days says what the public calendar
    says: the same features (the calendar's code path gives the public calendar's answer where they agree)."""
    days = pd.date_range("2018-09-01", "2018-10-31", freq="D")
    public = days[is_holiday(days) > 0]
    weekdays = days[(is_holiday(days) == 0) & (days.day_of_week < 5)]
    assert len(public) == 6
    plant = PlantCalendar(frozenset(d.date() for d in public), frozenset(d.date() for d in weekdays))
    rows = np.repeat(days, 4)
    slots = np.tile(np.arange(4), len(days))
    assert np.array_equal(calendar_features(rows, slots, plant), calendar_features(rows, slots))
    assert np.array_equal(F.day_types(days, plant), F.day_types(days))


def test_a_date_cannot_be_both():
    from serving.errors import InvalidInput

    with pytest.raises(InvalidInput, match="both a day off and a working day"):
        cal(day_off=["2018-08-01"], working=["2018-08-01"])


def test_a_past_shutdown_day_does_not_feed_the_working_day_profile():
    """A working day in the history at zero load (the plant shut down) pulls the working-day profile's mean down;
    marked a day off, it leaves the working-day profile."""
    days = pd.date_range("2018-07-02", periods=56, freq="D")  # Mondays on, eight weeks
    v = np.full(len(days) * F.STEPS_PER_DAY + 1, 50.0)
    shut = 46  # a Friday (2018-08-17)
    assert days[shut].day_of_week == 4
    v[1 + shut * F.STEPS_PER_DAY: 1 + (shut + 1) * F.STEPS_PER_DAY] = 0.0
    origin = np.array([(len(days) - 4) * F.STEPS_PER_DAY])  # a Thursday's 00:00, six days after the shutdown
    target = pd.DatetimeIndex([days[-4]])
    assert target[0].day_of_week == 3
    mean = F.PROFILE_NAMES.index("profile_mean")
    plain = F.profile(v, origin, target, 1.0)[0, :, mean]
    plant = cal(day_off=[str(days[shut].date())])
    marked = F.profile(v, origin, target, 1.0, plant)[0, :, mean]
    assert np.allclose(plain, 50.0 * 19 / 20) and np.allclose(marked, 50.0)


# the store, the API and the forecast ---------------------------------------------------------------------------

@pytest.fixture
def energy(client, db, settings, demo_models):
    """(client, acme's keys, eight days and 15 minutes of the demo plant's records from 2020-01-01 00:15)."""
    acme, records = energy_tenant(db, settings, demo_models)
    return client, acme, records


def refused(r, status, *words):
    assert r.status_code == status, r.text
    message = r.json()["error"]["message"]
    assert all(w in message for w in words), message
    return message


def test_the_calendar_is_set_read_and_cleared(energy):
    client, acme, _ = energy
    h = bearer(acme.admin)
    empty = client.get(CAL, headers=h)
    assert empty.status_code == 200, empty.text
    assert empty.json() == {"tenant": "acme", "count": 0, "updated_at": None, "days": []}
    days = [{"date": "2018-08-03", "kind": "day_off"},
            {"date": "2018-08-01", "kind": "day_off", "note": "summer shutdown"},
            {"date": "2018-09-24", "kind": "working", "note": "Chuseok worked through"}]
    r = client.put(CAL, json={"days": days}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 3 and r.json()["updated_at"]
    assert r.json()["days"] == [days[1], days[0], days[2]]  # in date order; a day without a note has none
    assert client.get(CAL, headers=bearer(acme.mes)).json()["days"] == r.json()["days"]  # any key reads it
    again = client.put(CAL, json={"days": [{"date": "2018-12-31", "kind": "day_off"}]}, headers=h)
    assert again.json()["days"] == [{"date": "2018-12-31", "kind": "day_off"}]  # replaced whole
    cleared = client.put(CAL, json={"days": []}, headers=h)
    assert cleared.status_code == 200 and cleared.json()["count"] == 0


def test_the_calendar_is_the_tenants_own(energy, db):
    client, acme, _ = energy
    other = make_tenant(db, PEPPER, "other", modules=("energy",))
    plain = make_tenant(db, PEPPER, "plain", modules=("quality",))
    client.put(CAL, json={"days": [{"date": "2018-08-01", "kind": "day_off"}]}, headers=bearer(acme.admin))
    assert client.get(CAL, headers=bearer(other.admin)).json()["days"] == []
    refused(client.get(CAL, headers=bearer(plain.admin)), 403)  # no energy module
    refused(client.put(CAL, json={"days": []}, headers=bearer(acme.mes)), 403, "role")  # a machine's key
    assert client.get(CAL).status_code == 401


@pytest.mark.parametrize(("body", "words"), [
    ([], ("JSON object",)),
    ({"dates": []}, ("unknown field 'dates'",)),
    ({"days": {"2018-08-01": "day_off"}}, ('"days" must be a list',)),
    ({"days": ["2018-08-01"]}, ("days[0] must be an object",)),
    ({"days": [{"date": "2018/08/01", "kind": "day_off"}]}, ("days[0]", "YYYY-MM-DD", "2018/08/01")),
    ({"days": [{"date": "2018-02-30", "kind": "day_off"}]}, ("days[0]", "'2018-02-30' is no date")),
    ({"days": [{"date": 20180801, "kind": "day_off"}]}, ("days[0]", "YYYY-MM-DD")),
    ({"days": [{"kind": "day_off"}]}, ("days[0]", "YYYY-MM-DD", "none")),
    ({"days": [{"date": "1899-08-01", "kind": "day_off"}]}, ("outside 2000-01-01 to 2100-12-31",)),
    ({"days": [{"date": "2018-08-01", "kind": "holiday"}]}, ('"kind" must be "day_off" or "working"', "holiday")),
    ({"days": [{"date": "2018-08-01"}]}, ('"kind"', "none")),
    ({"days": [{"date": "2018-08-01", "kind": "day_off", "why": "x"}]}, ("unknown field 'why'",)),
    ({"days": [{"date": "2018-08-01", "kind": "day_off", "note": "x" * 201}]}, ('"note"', "200")),
    ({"days": [{"date": "2018-08-01", "kind": "day_off", "note": 5}]}, ('"note"',)),
    ({"days": [{"date": "2018-08-01", "kind": "day_off"}, {"date": "2018-08-01", "kind": "working"}]},
     ("days[1]", "2018-08-01 is given twice", "days[0]")),
    ({"days": [{"date": f"{2000 + i // 365}-01-01", "kind": "day_off"} for i in range(1001)]},
     ("1,001 dates", "at most 1,000")),
])
def test_bad_calendars_are_422_and_change_nothing(energy, body, words):
    client, acme, _ = energy
    h = bearer(acme.admin)
    client.put(CAL, json={"days": [{"date": "2018-08-01", "kind": "day_off"}]}, headers=h)
    refused(client.put(CAL, json=body, headers=h), 422, *words)
    assert client.get(CAL, headers=h).json()["days"] == [{"date": "2018-08-01", "kind": "day_off"}]


def test_a_body_that_is_no_json_is_422(energy):
    client, acme, _ = energy
    h = {**bearer(acme.admin), "content-type": "application/json"}
    refused(client.put(CAL, content=b"{days", headers=h), 422, "not valid JSON")
    refused(client.put(CAL, content=b'{"days": [], "days": []}', headers=h), 422, "twice")


def test_the_forecast_reads_the_calendar_and_is_unchanged_without_one(energy, settings, db):
    """The forecast of 2020-01-09 (a Thursday) as a day off differs; with the calendar cleared, or holding only
    dates the forecast does not read, the answer is byte for byte the one without a calendar; and it is the answer
    of the scorer called with no calendar at all (the public calendar, as before plant calendars)."""
    from models.energy.predict import score
    from serving.runtime import OnnxModel

    client, acme, records = energy
    h, body = bearer(acme.admin), {"records": records, "horizon": 96}
    plain = client.post(FORECAST, json=body, headers=h)
    assert plain.status_code == 200, plain.text
    assert plain.json()["predictions"][0]["origin"] == "2020-01-09 00:00:00"
    mv = ModelRegistry(db, settings.home, "acme").get("energy")
    direct = score(OnnxModel(mv.path), pd.DataFrame.from_records(records), horizon=96)
    assert np.array_equal(direct["p50"].to_numpy(), [p["p50"] for p in plain.json()["predictions"]])

    client.put(CAL, json={"days": [{"date": "2020-01-09", "kind": "day_off"}]}, headers=h)
    off = client.post(FORECAST, json=body, headers=h).json()["predictions"]
    p50 = np.array([p["p50"] for p in plain.json()["predictions"]])
    p50_off = np.array([p["p50"] for p in off])
    assert not np.allclose(p50, p50_off)

    far = [{"date": "2030-05-01", "kind": "day_off"}, {"date": "2019-06-01", "kind": "working"}]
    for days in ([], far):
        client.put(CAL, json={"days": days}, headers=h)
        assert client.post(FORECAST, json=body, headers=h).content == plain.content


def test_a_calendar_set_through_one_process_is_read_by_another(energy, settings, db):
    """Two API processes on one database (as the platform scales out): the calendar set through one is read by
    the other's next forecast."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    client, acme, records = energy
    h, body = bearer(acme.admin), {"records": records, "horizon": 8}
    with TestClient(create_app(settings, db=db)) as second:
        before = second.post(FORECAST, json=body, headers=h).json()["predictions"]
        client.put(CAL, json={"days": [{"date": "2020-01-09", "kind": "day_off"}]}, headers=h)
        assert second.get(CAL, headers=h).json()["count"] == 1
        after = second.post(FORECAST, json=body, headers=h).json()["predictions"]
    assert [p["p50"] for p in before] != [p["p50"] for p in after]
    assert after == client.post(FORECAST, json=body, headers=h).json()["predictions"]


def test_the_file_forecast_of_a_registered_model_reads_its_tenants_calendar(energy, settings, db, monkeypatch,
                                                                             tmp_path):
    """``sfai predict energy`` (models.energy.predict.predict on a registered model: its manifest names its tenant)
    reads the tenant's stored calendar; a given calendar (PLANT, the API's) comes first."""
    import serving.cli.common as common
    from models.energy.predict import predict
    from serving.runtime import OnnxModel

    client, acme, records = energy
    monkeypatch.setattr(common, "database", lambda **_: db)
    path = tmp_path / "history.csv"
    pd.DataFrame.from_records(records).to_csv(path, index=False)
    model = OnnxModel(ModelRegistry(db, settings.home, "acme").get("energy").path)
    assert model.manifest["tenant"] == "acme"
    plain = predict(model, path, "steel-energy", horizon=96)
    client.put(CAL, json={"days": [{"date": "2020-01-09", "kind": "day_off"}]}, headers=bearer(acme.admin))
    marked = predict(model, path, "steel-energy", horizon=96)
    assert not np.allclose(plain["p50"], marked["p50"])
    explicit = predict(model, path, "steel-energy", horizon=96, plant=cal(day_off=["2020-01-09"]))
    pd.testing.assert_frame_equal(marked, explicit)
    token = PLANT.set(PlantCalendar())  # the caller's own (empty) calendar: not the stored one
    try:
        pd.testing.assert_frame_equal(plain, predict(model, path, "steel-energy", horizon=96))
    finally:
        PLANT.reset(token)


# the CLI (serving/cli/energy.py: ``sfai energy calendar``) -----------------------------------------------------

def test_calendar_files_are_read_and_checked(tmp_path):
    from serving.cli.energy import read_calendar_file
    from serving.errors import InvalidInput

    good = tmp_path / "plant.csv"
    good.write_text("date,kind,note\n2018-08-15,working,\n2018-08-01,day_off,summer shutdown\n")
    assert read_calendar_file(good) == [{"date": D("2018-08-01"), "kind": "day_off", "note": "summer shutdown"},
                                        {"date": D("2018-08-15"), "kind": "working", "note": None}]
    as_json = tmp_path / "plant.json"
    as_json.write_text('{"days": [{"date": "2018-08-01", "kind": "day_off"}]}')
    assert read_calendar_file(as_json) == [{"date": D("2018-08-01"), "kind": "day_off", "note": None}]
    for name, text, words in [
        ("bad.csv", "date,kind\n2018-08-01,day_off\n2018-02-30,working\n", "bad.csv: row 3: \"date\" '2018-02-30'"),
        ("twice.csv", "date,kind\n2018-08-01,day_off\n2018-08-01,working\n", "row 3: date 2018-08-01 is given twice"),
        ("header.csv", "day,kind\n2018-08-01,day_off\n", "the header must be date,kind"),
        ("wide.csv", "date,kind\n2018-08-01,day_off,x\n", "row 2: more cells"),
        ("bad.json", '{"days": [{"date": "2018-08-01", "kind": "off"}]}', '"kind" must be "day_off" or "working"'),
        ("broken.json", '{"days": [', "broken.json is not valid JSON"),
        ("plant.txt", "2018-08-01", "give a .json file"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(InvalidInput) as e:
            read_calendar_file(tmp_path / name)
        assert words in e.value.message, e.value.message
    with pytest.raises(InvalidInput, match="no such file"):
        read_calendar_file(tmp_path / "missing.csv")


def test_the_cli_sets_and_shows_the_calendar_the_api_reads(energy, db, tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    import serving.cli.energy as cli

    client, acme, _ = energy
    monkeypatch.setattr(cli, "database", lambda **_: db)
    runner = CliRunner()
    plant = tmp_path / "plant.csv"
    plant.write_text("date,kind,note\n2018-08-01,day_off,summer shutdown\n2018-08-15,working,\n")
    r = runner.invoke(cli.energy_app, ["calendar", "set", "--file", str(plant), "--tenant", "acme"])
    assert r.exit_code == 0, r.output
    assert client.get(CAL, headers=bearer(acme.admin)).json()["days"] == [
        {"date": "2018-08-01", "kind": "day_off", "note": "summer shutdown"}, {"date": "2018-08-15", "kind": "working"}]
    shown = runner.invoke(cli.energy_app, ["calendar", "show", "--tenant", "acme", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["count"] == 2, shown.output
    lines = runner.invoke(cli.energy_app, ["calendar", "show", "--tenant", "acme"]).stdout.splitlines()
    assert lines == ["2018-08-01  day_off  summer shutdown", "2018-08-15  working"]
    bad = tmp_path / "bad.csv"
    bad.write_text("date,kind\n2018-13-01,day_off\n")
    refused = runner.invoke(cli.energy_app, ["calendar", "set", "--file", str(bad), "--tenant", "acme"])
    assert refused.exit_code != 0 and "row 2" in refused.exception.message
    assert client.get(CAL, headers=bearer(acme.admin)).json()["count"] == 2  # unchanged


def test_calendars_set_at_once_take_turns(energy, db):
    """Calls replacing one tenant's calendar at once (two API processes, say) each leave a whole calendar, never a
    mix nor a duplicate-key error (PostgreSQL: the tenant row's lock; without it 4 threads failed at once)."""
    import threading

    from serving import calendar_store as store
    from serving.tenancy import get_tenant

    tid = get_tenant(db, "acme").id
    errors = []

    def put(i: int) -> None:
        try:
            for k in range(10):
                store.replace_days(db, tid, [{"date": date(2018, 8, d), "kind": "day_off", "note": f"{i}-{k}"}
                                             for d in range(1, 11)])
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(e))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    days, _ = store.read_days(db, tid)
    assert errors == [] and len(days) == 10 and len({d["note"] for d in days}) == 1
