from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pipelines.industries import MODULES, PROFILES, get_profile, list_profiles
from pipelines.ksic import KSIC_DIVISIONS
from serving.db import Database


def test_every_division_has_a_profile():
    profiles = list_profiles()
    assert [p.code for p in profiles] == list(KSIC_DIVISIONS) and len(profiles) == 25
    for p in profiles:
        assert p.name_ko == KSIC_DIVISIONS[p.code].name_ko
        assert set(p.modules) <= set(MODULES) and p.modules and p.tables and p.feature_templates
    backed = {p.code: p.public_dataset for p in profiles if p.public_dataset}
    assert backed == {"C24": "steel-energy", "C26": "secom", "C29": "ai4i", "C31": "cmapss"}
    assert PROFILES["C22"].demo and "regime_normalization" in PROFILES["C31"].feature_templates


def test_get_profile_accepts_short_codes_and_names_the_range():
    assert get_profile("29").code == get_profile("c29").code == "C29"
    with pytest.raises(ValueError, match="C10-C34"):
        get_profile("C99")


def test_api_serves_profiles_and_keeps_the_list(pl_settings):
    from serving.app import create_app

    db = Database(pl_settings.resolved_database_url)
    with TestClient(create_app(pl_settings, db=db)) as client:
        rows = client.get("/v1/industries").json()
        assert len(rows) == 25 and set(rows[0]) == {"code", "name_ko", "name_en"}
        prof = client.get("/v1/industries/31/profile").json()
        assert prof["code"] == "C31" and prof["public_dataset"] == "cmapss" and "maintenance" in prof["modules"]
        assert len(client.get("/v1/industries/profiles").json()) == 25
        err = client.get("/v1/industries/C99/profile")
        assert err.status_code == 404 and "C10-C34" in err.json()["error"]["message"]
        assert client.get("/v1/industries/C26").json()["code"] == "C26"
    db.dispose()
