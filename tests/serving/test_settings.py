import pytest
from pydantic import ValidationError

from pipelines.ksic import KSIC_DIVISIONS, normalize_ksic
from serving.settings import MIN_USAGE_RETENTION_DAYS, PLACEHOLDER_SECRET, Settings, get_settings


def test_defaults_are_development_with_local_home(monkeypatch):
    for k in ("SFAI_HOME", "SFAI_ENVIRONMENT", "SFAI_DATABASE_URL", "SFAI_SECRET_KEY"):
        monkeypatch.delenv(k, raising=False)
    s = Settings(_env_file=None)
    assert s.environment == "development"
    assert str(s.home) == ".sfai"
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith(".sfai/sfai.db")


def test_environment_prefix_and_cached_getter(monkeypatch, tmp_path):
    monkeypatch.setenv("SFAI_HOME", str(tmp_path))
    monkeypatch.setenv("SFAI_DATABASE_URL", "postgresql://u@h/db")
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert s.home == tmp_path and s.database_url == "postgresql://u@h/db"
        assert get_settings() is s
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("env", ["staging", "production"])
def test_placeholder_secret_refused_outside_development(env):
    with pytest.raises(ValidationError, match="SFAI_SECRET_KEY"):
        Settings(environment=env, _env_file=None)
    with pytest.raises(ValidationError, match="SFAI_SECRET_KEY"):
        Settings(environment=env, secret_key="short", _env_file=None)
    assert Settings(environment=env, secret_key="a-real-secret-of-32-characters!!", _env_file=None).environment == env


def test_placeholder_allowed_in_development():
    assert Settings(environment="development", _env_file=None).secret_key == PLACEHOLDER_SECRET


def test_usage_retention_cannot_go_below_three_years():
    with pytest.raises(ValidationError, match="three years"):
        Settings(usage_retention_days=365, _env_file=None)
    assert Settings(usage_retention_days=MIN_USAGE_RETENTION_DAYS + 10, _env_file=None).usage_retention_days > 1095


def test_platform_switches_only_off_in_development():
    with pytest.raises(ValidationError, match="switched off"):
        Settings(environment="production", secret_key="x" * 32, auth_enabled=False, _env_file=None)


def test_ksic_has_the_25_manufacturing_divisions():
    assert list(KSIC_DIVISIONS) == [f"C{n}" for n in range(10, 35)]
    assert all(d.name_ko and d.name_en for d in KSIC_DIVISIONS.values())
    assert KSIC_DIVISIONS["C24"].name_en == "Manufacture of basic metals"
    assert normalize_ksic("c26") == "C26" and normalize_ksic(" 31 ") == "C31"
    for bad in ("C09", "C35", "A01", "", "C2"):
        with pytest.raises(ValueError, match="C10-C34"):
            normalize_ksic(bad)


def test_with_auth_off_the_module_status_answers_without_a_tenant(settings, db):
    """Development with SFAI_AUTH_ENABLED=false (what benchmarks/api_overhead.py measures as the bare path): the
    status endpoint has no tenant to list models of, and answers rather than a 404 for tenant '-'."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    off = settings.model_copy(update={"auth_enabled": False, "usage_log_enabled": False, "metrics_enabled": False})
    with TestClient(create_app(off, db=db)) as client:
        r = client.get("/v1/quality/status")
    assert r.status_code == 200, r.text
    assert r.json()["module"] == "quality" and r.json()["models"] == []
