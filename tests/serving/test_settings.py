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


@pytest.mark.parametrize("value", ["", "   "])
def test_a_blank_database_url_is_refused_not_read_as_the_default(value):
    """`SFAI_DATABASE_URL=` (a secret that did not arrive) silently meant SQLite under SFAI_HOME: a second, empty
    deployment (operator's audit)."""
    with pytest.raises(ValidationError, match="SFAI_DATABASE_URL is set but empty"):
        Settings(_env_file=None, database_url=value)
    assert Settings(_env_file=None, database_url=None).resolved_database_url.startswith("sqlite:///")


@pytest.mark.parametrize(("url", "said"), [
    ("postgresql://u:pw@h:notaport/db", "is not a database URL (scheme 'postgresql')"),
    ("not a url", "is not a database URL (scheme 'none')"),
    ("mysql://u@h/db", "names a 'mysql' database: SFAI runs on PostgreSQL or SQLite"),
    ("postgresql://u@h:99999/db", "port 99999 is not a port"),
])
def test_a_database_url_sfai_cannot_open_is_named_in_one_line(url, said):
    """Typos had surfaced as "invalid literal for int()" or "No module named 'MySQLdb'" (operator's audit)."""
    with pytest.raises(ValidationError) as e:
        Settings(_env_file=None, database_url=url)
    message = e.value.errors()[0]["msg"]  # what the CLI prints (its one line leaves the input out)
    assert said in message and ":pw@" not in message, message
    for good in ("postgresql://u:pw@h:5432/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db", "sqlite:////x/s.db"):
        Settings(_env_file=None, database_url=good)


@pytest.mark.parametrize("env", ["staging", "production"])
def test_placeholder_secret_refused_outside_development(env):
    with pytest.raises(ValidationError, match="SFAI_SECRET_KEY"):
        Settings(environment=env, _env_file=None)
    with pytest.raises(ValidationError, match="SFAI_SECRET_KEY"):
        Settings(environment=env, secret_key="short", _env_file=None)
    assert Settings(environment=env, secret_key="a-real-secret-of-32-characters!!", _env_file=None).environment == env


@pytest.mark.parametrize("weak", [" " * 16, "a" * 16, "abababababababab", "change-mechange-me", "CHANGE-ME-0123456789"])
def test_a_weak_secret_is_refused_outside_development(weak):
    """16 spaces, one repeated character, or the placeholder twice passed the length check in production (security
    audit): the secret peppers every key's hash and keys the usage log. Development keeps any secret."""
    for env in ("staging", "production"):
        with pytest.raises(ValidationError, match="too weak"):
            Settings(environment=env, secret_key=weak, _env_file=None)
    assert Settings(environment="development", secret_key=weak, _env_file=None).secret_key == weak
    assert Settings(environment="production", secret_key="0f3a9c1e7b2d4a86", _env_file=None).environment == "production"


def test_a_weak_metrics_token_is_refused_outside_development():
    """SFAI_METRICS_TOKEN=x opened every tenant's call counts in production (security audit)."""
    good = "a-real-secret-of-32-characters!!"
    for token in ("x", "0123456789abcdef", "a" * 20):
        with pytest.raises(ValidationError, match="SFAI_METRICS_TOKEN is too weak"):
            Settings(environment="production", secret_key=good, metrics_token=token, _env_file=None)
        assert Settings(environment="development", metrics_token=token, _env_file=None).metrics_token == token
    assert Settings(environment="production", secret_key=good, metrics_token="Zq8-v1LxT4mWc9Rb",
                    _env_file=None).metrics_token


def test_an_empty_metrics_token_is_none_and_an_empty_url_still_an_error(monkeypatch):
    """docker-compose.yml passes ``SFAI_METRICS_TOKEN: ${SFAI_METRICS_TOKEN:-}``, so an operator who leaves it empty
    (deploy.env.example: "empty: /metrics answers 403") sent "": production refused it as too weak and the
    documented deployment never started (operator audit). An empty token is none; an empty database or Redis URL,
    sent through the environment, is still refused (review: read as unset, it started a second, empty deployment)."""
    monkeypatch.setenv("SFAI_ENVIRONMENT", "production")
    monkeypatch.setenv("SFAI_SECRET_KEY", "a-real-secret-of-32-characters!!")
    monkeypatch.setenv("SFAI_METRICS_TOKEN", "")
    loaded = Settings(_env_file=None)
    assert loaded.metrics_token is None and loaded.environment == "production"
    monkeypatch.setenv("SFAI_METRICS_TOKEN", "x")  # a short one is still refused
    with pytest.raises(ValidationError, match="SFAI_METRICS_TOKEN is too weak"):
        Settings(_env_file=None)
    monkeypatch.delenv("SFAI_METRICS_TOKEN")
    for name, said in (("SFAI_DATABASE_URL", "SFAI_DATABASE_URL is set but empty"),
                       ("SFAI_ONLINE_STORE", "online_store"), ("SFAI_RATE_LIMIT_REDIS", "rate_limit_redis")):
        monkeypatch.setenv(name, "")
        with pytest.raises(ValidationError, match=said):
            Settings(_env_file=None)
        monkeypatch.delenv(name)


@pytest.mark.parametrize("value", ["*", "10.0.0.5, *", " * "])
def test_a_wildcard_proxy_is_refused(value):
    """SFAI_FORWARDED_ALLOW_IPS=* let every client name any address in X-Forwarded-For and pass the failed-key limit
    (130 bad keys, no 429; security audit), although the docs said never *: it is refused at start."""
    with pytest.raises(ValidationError, match="may not be \\*"):
        Settings(forwarded_allow_ips=value, _env_file=None)
    assert Settings(forwarded_allow_ips="10.0.0.0/8, 127.0.0.1", _env_file=None).forwarded_allow_ips


def test_placeholder_allowed_in_development():
    assert Settings(environment="development", _env_file=None).secret_key == PLACEHOLDER_SECRET


def test_usage_retention_cannot_go_below_three_years():
    with pytest.raises(ValidationError, match="three years"):
        Settings(usage_retention_days=365, _env_file=None)
    assert Settings(usage_retention_days=MIN_USAGE_RETENTION_DAYS + 10, _env_file=None).usage_retention_days > 1095


def test_platform_switches_only_off_in_development():
    with pytest.raises(ValidationError, match="switched off"):
        Settings(environment="production", secret_key="a-real-secret-of-32-characters!!", auth_enabled=False,
                 _env_file=None)


@pytest.mark.parametrize(("field", "value", "why"), [
    ("online_store", "redis:/typo", "not a Redis URL"),
    ("online_store", "postgres://h/db", "not a Redis URL"),
    ("rate_limit_redis", "127.0.0.1:6379", "not a Redis URL"),
    ("rate_limit_redis", "redis://h:abc/0", "Port could not be cast"),
])
def test_a_bad_redis_url_is_refused_when_the_settings_are_read(field, value, why):
    """Before: `sfai serve --workers 2` restarted its workers forever on a bad rate-limit URL, and a bad online store
    URL served 500s on every lookup while /readyz said ready."""
    with pytest.raises(ValidationError, match=why):
        Settings(_env_file=None, **{field: value})
    assert Settings(_env_file=None, online_store="redis://127.0.0.1:6379/3", rate_limit_redis="unix:///run/r.sock")


def test_engines_named_in_a_dotenv_file_are_used(monkeypatch, tmp_path):
    """The README offers a .env file for every setting; the Ray cluster and the MLflow server were read only from
    the environment, so a .env naming them left batch scoring local and runs in $SFAI_HOME/mlflow.db."""
    from models.tracking import tracking_uri
    from serving.settings import ray_address

    for k in ("SFAI_RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SFAI_HOME"):
        monkeypatch.delenv(k, raising=False)
    (tmp_path / ".env").write_text("SFAI_RAY_ADDRESS=10.0.0.5:6379\nMLFLOW_TRACKING_URI=http://mlflow:5000\n")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    try:
        assert ray_address() == "10.0.0.5:6379"
        assert tracking_uri(get_settings()) == "http://mlflow:5000"
        monkeypatch.setenv("SFAI_RAY_ADDRESS", "10.0.0.9:6379")  # the environment first, as for every setting
        assert ray_address() == "10.0.0.9:6379"
    finally:
        get_settings.cache_clear()


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


def test_null_in_the_environment_means_no_limit(monkeypatch):
    """docs/limits.md: SFAI_PLATFORM_RATE_LIMIT and SFAI_FAILED_KEY_LOOKUPS_PER_S take null for none (the server
    refused to start on it)."""
    monkeypatch.setenv("SFAI_PLATFORM_RATE_LIMIT", "null")
    monkeypatch.setenv("SFAI_FAILED_KEY_LOOKUPS_PER_S", "None")
    s = Settings(_env_file=None)
    assert s.platform_rate_limit is None and s.failed_key_lookups_per_s is None
    monkeypatch.setenv("SFAI_PLATFORM_RATE_LIMIT", "7")
    assert Settings(_env_file=None).platform_rate_limit == 7.0


def test_the_state_is_readable_by_its_owner_only(tmp_path):
    """sfai.db, online.db and their folder had been created readable by every local user (every tenant's features,
    usage log and key hashes; security audit): a new home is 0700 and new databases 0600, their WAL files too; a
    folder that exists already keeps its mode."""
    import stat

    from feature_store.online.sqlite import SqliteOnlineStore
    from serving.db.engine import make_engine

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    home = tmp_path / "a" / "home"
    Settings(home=home, _env_file=None).ensure_home()
    assert mode(home) == 0o700
    engine = make_engine(f"sqlite:///{home / 'sfai.db'}")
    with engine.begin() as c:
        c.exec_driver_sql("create table t (x int)")
    assert {p.name: mode(p) for p in home.iterdir()} == {"sfai.db": 0o600, "sfai.db-wal": 0o600, "sfai.db-shm": 0o600}
    engine.dispose()
    store = SqliteOnlineStore(tmp_path / "b" / "online.db")
    assert mode(tmp_path / "b") == 0o700 and mode(tmp_path / "b" / "online.db") == 0o600
    store.close()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    Settings(home=shared, _env_file=None).ensure_home()
    assert mode(shared) == 0o755


@pytest.mark.parametrize("guessable", ["abcdefabcdefabcdef", "0123456789abcdef", "fedcba9876543210",
                                       "qwertyuiopasdfgh"])
def test_a_guessable_secret_is_refused_for_a_new_deployment_and_warned_of_for_a_running_one(guessable, db,
                                                                                            monkeypatch, capsys):
    """A repeated stretch or a run of the alphabet passed in production (the second security audit). Refusing it
    at start would leave an upgraded deployment unable to start, its keys' hashes and usage log depending on it
    (reviewer): a deployment with no key yet is refused, one with keys is warned."""
    from serving import tenancy
    from serving.cli import platform as cli
    from serving.errors import InvalidInput
    from serving.settings import guessable_secret, weak_secret

    assert guessable_secret(guessable) and not weak_secret(guessable)
    assert not guessable_secret("xK3-pq9ZtL0wR7vB") and not guessable_secret("a-real-secret-of-32-characters!!")
    prod = Settings(environment="production", secret_key=guessable, _env_file=None)
    monkeypatch.setattr(cli, "settings", lambda: prod)
    with pytest.raises(InvalidInput, match="SFAI_SECRET_KEY is guessable"):
        cli._guessable_secret(db)
    tenancy.create_tenant(db, "acme", "C29")
    tenancy.create_api_key(db, guessable, "acme", "admin")
    capsys.readouterr()
    cli._guessable_secret(db)  # keys made with it: warned, not refused
    assert "warning: SFAI_SECRET_KEY is guessable" in capsys.readouterr().err
    monkeypatch.setattr(cli, "settings", lambda: prod.model_copy(update={"environment": "development"}))
    cli._guessable_secret(db)
    assert capsys.readouterr().err == ""


def test_a_settings_error_names_the_variable_an_operator_sets(monkeypatch):
    """``max_body_bytes: Input should be ...`` and pydantic-settings' ``error parsing value for field "rate_limits"
    from source "EnvSettingsSource"`` named Python fields, not the variables the operator sets (operator's audit)."""
    from pydantic_settings import SettingsError

    from serving.cli.main import _one_line

    with pytest.raises(ValidationError) as e:
        Settings(max_body_bytes=5, _env_file=None)
    assert _one_line(e.value) == "invalid settings: SFAI_MAX_BODY_BYTES: Input should be greater than or equal to 1024"
    with pytest.raises(ValidationError) as e:
        Settings(environment="production", _env_file=None)
    assert _one_line(e.value).startswith("invalid settings: SFAI_SECRET_KEY must be set to a real secret")
    monkeypatch.setenv("SFAI_RATE_LIMITS", "{bad")
    with pytest.raises(SettingsError) as e:
        Settings(_env_file=None)
    assert _one_line(e.value).startswith("invalid settings: SFAI_RATE_LIMITS is not valid JSON")


def test_a_mistyped_variable_is_named_with_the_setting_it_meant():
    from serving.settings import unknown_variables

    env = {"SFAI_SECRTE_KEY": "x", "SFAI_HOME": "/tmp", "SFAI_TEST_RAY": "1", "SFAI_SHARED": "/s", "SFAI_COLOUR": "1",
           "PATH": "/bin"}
    assert unknown_variables(env) == [
        "SFAI_COLOUR is not an SFAI setting and is ignored (docs/deploy.md lists them)",
        "SFAI_SECRTE_KEY is not an SFAI setting and is ignored (did you mean SFAI_SECRET_KEY?)"]


def test_the_scheduling_takeover_time_must_leave_several_heartbeats(sfai_env):
    """``SFAI_SCHEDULING_STALE_S`` below three heartbeats would hand a busy process' jobs to another (two processes
    solving one job); refused at start in one line naming both variables."""
    import subprocess

    from tests.serving.test_cli import SFAI

    s = Settings(_env_file=None, scheduling_heartbeat_s=2, scheduling_stale_s=20)
    assert (s.scheduling_heartbeat_s, s.scheduling_stale_s) == (2, 20)
    env = {**sfai_env, "SFAI_SCHEDULING_HEARTBEAT_S": "10", "SFAI_SCHEDULING_STALE_S": "20"}
    p = subprocess.run([SFAI, "tenant", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "error: invalid settings: SFAI_SCHEDULING_STALE_S (20 s) must be at least 3 x SFAI_SCHEDULING_HEARTBEAT_S "
        "(10 s): a process that missed a beat or two would lose its running jobs to another"], p.stderr
    with pytest.raises(ValidationError, match="greater than or equal to 0.2"):
        Settings(_env_file=None, scheduling_heartbeat_s=0)
