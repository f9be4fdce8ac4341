"""Shared fixtures. The platform suite runs twice: on SQLite and on PostgreSQL (a database created and
dropped per test). Where PostgreSQL is not reachable the PostgreSQL half skips with the reason printed,
except on CI, where it must be there."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from serving.db import Database
from serving.settings import Settings

PG_ADMIN_URL = os.environ.get("SFAI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ON_CI = bool(os.environ.get("CI"))
_pg_problem: list[str] = []


def _pg_admin_engine():
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg")
    return create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def pg_available() -> str | None:
    """None if PostgreSQL answers, else why not."""
    if not _pg_problem:
        try:
            eng = _pg_admin_engine()
            with eng.connect() as c:
                c.execute(text("SELECT 1"))
            eng.dispose()
            _pg_problem.append("")
        except Exception as e:  # noqa: BLE001
            _pg_problem.append(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {str(e).splitlines()[0]}")
    return _pg_problem[0] or None


def require_service(problem: str | None) -> None:
    """Skip (printing why) when a service the test talks to is missing; on CI, where .ci/run starts it, fail."""
    if problem:
        if ON_CI:
            pytest.fail(problem + " (CI must start it: see .ci/run)")
        print(f"\nSKIP: {problem}")
        pytest.skip(problem)


def need_postgres() -> None:
    require_service(pg_available())


# Tests that cannot run in a pytest-xdist worker: the scheduling searches (forked workers, which a process with
# other threads -- such as an xdist worker -- does not start, and CP-SAT under time limits) and the Ray clusters.
# `make test` runs the rest on all cores (pytest-xdist), then these in two plain pytest processes side by side, each
# keeping about a core busy: the searches and Ray in one, and in the other (BESIDE) those waited on for their answer,
# not against a solve's clock: the browser tests (a console and its server, waited on for up to 20 s) and the
# `sfai schedule solve` runs (each its own process, on one-second plans).
SERIAL = ("tests/optimization/", "tests/pipelines/test_ray.py", "tests/models/test_tune.py", "tests/test_scaleout.py",
          "tests/serving/test_batch.py::test_ray_data", "tests/web/")
BESIDE = ("tests/web/", "tests/optimization/test_sfai_schedule.py")


def pytest_collection_modifyitems(config, items) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix() + "::" + item.name
        if where.startswith(SERIAL):
            item.add_marker(pytest.mark.serial)
        if where.startswith(BESIDE):
            item.add_marker(pytest.mark.beside)


class PgDatabase:
    """A throw-away PostgreSQL database."""

    def __init__(self) -> None:
        self.name = f"sfai_test_{uuid.uuid4().hex[:12]}"
        self.admin = _pg_admin_engine()
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = make_url(PG_ADMIN_URL).set(database=self.name).render_as_string(hide_password=False)

    def drop(self) -> None:
        with self.admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        self.admin.dispose()


# Every test on SFAI's database runs on SQLite and on PostgreSQL, except those below: there the database only holds
# the tenant, keys and models a test calls with, and what the test is about (files, models, CLI output, HTTP rules,
# rate limits in memory) reads the same on both. The tests of the tables themselves (tenancy, keys, usage log, quotas,
# migrations, backups, jobs, the feature and model registries, isolation) run on both. SFAI_TEST_ALL_DATABASES=1
# runs these on both too.
SQLITE_ONLY = (
    "tests/models/test_cli_audit.py",
    "tests/feature_store/test_mqtt.py",
    "tests/pipelines/test_raw_ingest_history.py::test_the_history_read_is_the_scan_it_replaces_values_and_types",
    "tests/pipelines/test_raw_ingest_history.py::test_a_cmapss_push_after_a_restart_reads_its_engines_latest_files",
    "tests/pipelines/test_raw_ingest_history.py::test_cmapss_cycles_pushed_row_by_row_equal_the_file",
    "tests/pipelines/test_raw_ingest_history.py::test_steel_day_pushed_row_by_row_equals_the_file",
    "tests/pipelines/test_raw_ingest_history.py::test_a_meters_times_without_an_offset_are_the_plants_clock",
    "tests/serving/test_api_consistency.py",
    "tests/serving/test_cli.py::test_errors_are_one_line_and_non_zero",
    "tests/serving/test_cli.py::test_features_compact_from_the_cli",
    "tests/serving/test_cli.py::test_predict_rul_warns_when_the_files_subset_has_no_model",
    "tests/serving/test_cli.py::test_demo_prints_a_working_admin_key",
    "tests/serving/test_cli.py::test_a_server_stopped_with_sigterm_says_it_stopped_and_exits_0",
    "tests/serving/test_cli.py::test_an_interrupted_command_says_so_in_one_line",
    "tests/serving/test_energy_api.py",
    "tests/serving/test_entity_predictions.py",
    "tests/serving/test_fastpath.py",
    "tests/serving/test_json_off_loop.py",
    "tests/serving/test_limits.py",
    "tests/serving/test_predict_api.py",
    "tests/serving/test_quality_explain.py",
    "tests/serving/test_scheduling_energy_totals.py",
    "tests/serving/test_serve.py",
    # the checkpoints' reads and writes, and a job's takeover, run on both in the SIGKILL and SIGTERM tests
    "tests/serving/test_scheduling_resume.py::test_a_killed_processs_job_goes_on_from_the_plan_its_heartbeat_kept",
    "tests/serving/test_scheduling_resume.py::test_a_resumed_job_whose_time_left_finds_nothing_better_keeps_its_saved",
    "tests/test_kwh_only_meter.py",
    "tests/test_sfai_cli.py",
)


def pytest_generate_tests(metafunc) -> None:
    """The databases a test on ``db_url`` runs on: both, or SQLite alone for SQLITE_ONLY (and for a test that
    names its own, e.g. ``@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)``)."""
    if "db_url" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "db_url" in ([n.strip() for n in names.split(",")] if isinstance(names, str) else names):
            return
    both = (os.environ.get("SFAI_TEST_ALL_DATABASES") == "1"
            or not metafunc.definition.nodeid.startswith(SQLITE_ONLY))
    metafunc.parametrize("db_url", ["sqlite", "postgres"] if both else ["sqlite"], indirect=True)


@pytest.fixture
def db_url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sfai.db'}"
        return
    need_postgres()
    pg = PgDatabase()
    try:
        yield pg.url
    finally:
        pg.drop()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=db_url, environment="test", secret_key="test-secret-0123456789"
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    d = Database(settings.resolved_database_url)
    yield d
    d.dispose()


@pytest.fixture
def sfai_env(settings: Settings) -> dict[str, str]:
    """Environment for running the ``sfai`` CLI or server as a subprocess on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(
        SFAI_HOME=str(settings.home),
        SFAI_DATABASE_URL=settings.resolved_database_url,
        SFAI_ENVIRONMENT="test",
        SFAI_SECRET_KEY=settings.secret_key,
    )
    return env


@pytest.fixture
def app(settings: Settings, db: Database):
    from serving.app import create_app

    return create_app(settings, db=db)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> tuple[Path, Path]:
    """The demo models, trained once per session on synthetic data (a few seconds, no shared datasets needed):
    (``models/<tenant>`` with ``<family>/v1`` export directories to register by copy, the demo data directory
    that ``models.demo.sample_request`` reads)."""
    from models.demo import train_demo_models
    from serving import tenancy

    home = tmp_path_factory.mktemp("demo-models")
    settings = Settings(home=home, environment="test", secret_key="test-secret-0123456789")
    db = Database(settings.resolved_database_url)
    tenancy.create_tenant(db, "seed", "C22")
    train_demo_models(settings, db, "seed", progress=False)
    db.dispose()
    return home / "models" / "seed", home / "demo" / "seed"
