"""What a CLI fuzz found in ``sfai features``, ``sfai ingest``, ``sfai models`` and ``sfai tune``: bad input is a
non-zero exit with one ``error: ...`` line on stderr (no traceback, no "error: error:"), and nothing falls back
silently to a default (a tenant, a view name) or runs forever."""

import json
import uuid

import pytest

from tests.sfai_cli import run_sfai

VIEW = """
from feature_store import FeatureView, Field, entities

okview = FeatureView(name="okview", entity=entities.machine, schema=[Field(name="x", dtype="float32")])
"""


@pytest.fixture
def sfai_env(tmp_path):
    """The CLI on its own SQLite database: what is checked here does not depend on the database (the registry's
    side runs on both in tests/feature_store/test_view_names.py)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    return {**env, "SFAI_HOME": str(tmp_path / "home"), "SFAI_DATABASE_URL": f"sqlite:///{tmp_path / 'sfai.db'}",
            "SFAI_ENVIRONMENT": "test", "SFAI_SECRET_KEY": "test-secret-0123456789"}


def sfai(env, *args, cwd=None):
    return run_sfai(*args, env=env, cwd=cwd)


def refused(env, args, message, cwd=None):
    p = sfai(env, *args, cwd=cwd)
    lines = p.stderr.strip().splitlines()
    assert p.returncode != 0, (args, p.stdout, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and not lines[0].startswith("error: error:"), (
        args, p.stderr[:2000])
    assert message in lines[0], (args, lines[0])
    assert len(lines[0]) < 400, lines[0]
    return p


@pytest.fixture
def workspace(sfai_env, tmp_path):
    """The local tenant with one view and one row in it."""
    (tmp_path / "views.py").write_text(VIEW)
    (tmp_path / "okview.csv").write_text("machine_id,event_timestamp,x\nm1,2024-01-01T00:00:00Z,1.5\n")
    p = sfai(sfai_env, "features", "apply", str(tmp_path / "views.py"))
    assert p.returncode == 0 and p.stdout.startswith("okview\t1\tcreated"), p.stderr
    assert sfai(sfai_env, "ingest", "csv", str(tmp_path / "okview.csv")).returncode == 0
    return tmp_path


def rows(env, view="okview"):
    listed = json.loads(sfai(env, "features", "list", "--json").stdout)
    return {v["name"]: v["rows"] for v in listed}.get(view)


def test_features_apply_needs_a_python_file_that_loads(sfai_env, workspace):
    (workspace / "exits.py").write_text(VIEW + "\nimport sys\nsys.exit(0)\n")
    (workspace / "long.py").write_text(VIEW.replace('"okview"', '"' + "a" * 300 + '"'))
    for args, message in [
        ((str(workspace),), "expected a Python file defining FeatureView objects"),  # was AttributeError: 'NoneType'
        ((str(workspace / "okview.csv"),), "expected a Python file defining FeatureView objects"),
        ((str(workspace / "exits.py"),), "exited while loading (sys.exit(0))"),  # was rc 0, nothing applied
        ((str(workspace / "long.py"),), "must be 1 to 64 characters"),  # was created, then 'File name too long'
    ]:
        refused(sfai_env, ("features", "apply", *args), message)
    listed = json.loads(sfai(sfai_env, "features", "list", "--json").stdout)
    assert [v["name"] for v in listed] == ["okview"]


def test_empty_tenant_or_view_is_refused_not_defaulted(sfai_env, workspace):
    csv = str(workspace / "okview.csv")
    refused(sfai_env, ("ingest", "csv", csv, "--tenant", ""), "Invalid value for '--tenant': must not be empty")
    refused(sfai_env, ("ingest", "csv", csv, "--view", ""), "Invalid value for '--view': must not be empty")
    refused(sfai_env, ("features", "list", "--tenant", " "), "'--tenant': must not be empty")
    ai4i = workspace / "ai4i.csv"
    ai4i.write_text("UDI\n1\n")
    refused(sfai_env, ("ingest", "ai4i", str(ai4i), "--tenant", ""), "'--tenant': must not be empty")
    assert rows(sfai_env) == 1  # nothing went to the local tenant's view


def test_materialize_names_a_bad_time_and_refuses_the_wrong_order(sfai_env, workspace):
    for args, message in [
        (("--start", "notadate"), "Invalid value for '--start': 'notadate' is not an ISO time"),
        (("--end", "99999-01-01"), "Invalid value for '--end'"),
        (("--start", ""), "'--start': must not be empty"),
        (("--start", "2024-02-01", "--end", "2024-01-01"), "'--start': '2024-02-01' is not before --end"),
        (("--start", "2999-01-01"), "is not before now"),
    ]:
        refused(sfai_env, ("features", "materialize", "okview", *args), message)
    p = sfai(sfai_env, "features", "materialize", "okview", "--start", "2023-12-31", "--end", "2024-01-02")
    assert (p.returncode, p.stdout) == (0, "1\n"), p.stderr


def test_mqtt_options_are_checked_before_connecting(sfai_env):
    cid = ("--client-id", f"sfai-t-{uuid.uuid4().hex[:8]}")
    for args, message in [
        (("--topic", "a/{tenant}x/{view}"), "must each be a whole topic level"),
        (("--topic", "{tenant}/{tenant}/{view}"), "has {tenant} more than once"),  # was "error: error: ..."
        (("--client-id", "c" * 70_000), "at most 256"),  # was "error: error: 'H' format requires ..."
        (("--duration", "nan"), "Invalid value for '--duration'"),  # ran forever
        (("--duration", "-1"), "Invalid value for '--duration'"),
        (("--max-messages", "-5"), "Invalid value for '--max-messages'"),
        (("--broker", ""), "broker URL is empty"),
        (("--broker", "mqtt://"), "names no host"),  # connected to 127.0.0.1 silently
    ]:
        refused(sfai_env, ("ingest", "mqtt", *cid, *args) if "--client-id" not in args else ("ingest", "mqtt", *args),
                message)


def test_model_versions_are_bounded(sfai_env, tmp_path):
    huge = "99999999999999999999999"  # was OverflowError: Python int too large to convert to SQLite INTEGER
    refused(sfai_env, ("models", "promote", "failure", "--version", huge), "Invalid value for '--version'")
    refused(sfai_env, ("models", "promote", "failure", "--version", "0"), "Invalid value for '--version'")
    refused(sfai_env, ("models", "promote", "failure", "--version", str(2**31)), "2147483647")
    refused(sfai_env, ("predict", "failure", "--dataset", "ai4i", "-i", "x.csv", "-o", "o.csv", "--version", huge),
            "Invalid value for '--version'")
    refused(sfai_env, ("models", "promote", "failure", "--version", str(2**31 - 1)),  # in range: looked up
            "no model 'failure' for tenant 'local'")


def test_tune_refuses_bad_options_before_ray_starts(sfai_env, tmp_path):
    data = tmp_path / "ai4i.csv"
    data.write_text("UDI\n1\n")
    base = ("tune", "failure", "--dataset", "ai4i", "--input", str(data))
    for args, message in [
        (("--trials", "99999999999999999999999"), "Invalid value for '--trials'"),  # Ray started and ran
        (("--trials", "10001"), "Invalid value for '--trials'"),
        (("--seed", "-1"), "Invalid value for '--seed'"),
        (("--set", "nokey=1"), "unknown failure config key(s): nokey"),  # was 46 lines of Ray traceback
        (("--set", "epochs=abc"), "config epochs='abc': expected int"),
    ]:
        p = refused(sfai_env, (*base, *args), message)
        assert p.stdout == ""


def test_a_stored_view_too_long_for_a_directory_does_not_break_the_tenant(sfai_env, workspace, tmp_path):
    """Registered before names were bounded (300 characters): 'File name too long' used to fail every
    ``features list`` and ``ingest csv`` of the tenant."""
    import sqlite3

    long = "a" * 300
    with sqlite3.connect(tmp_path / "sfai.db") as con:
        tenant_id, spec = con.execute("SELECT tenant_id, spec FROM feature_views WHERE name = 'okview'").fetchone()
        con.execute(
            "INSERT INTO feature_views (tenant_id, name, version, fingerprint, spec, created_at) "
            "VALUES (?, ?, 1, '0000000000000000', ?, CURRENT_TIMESTAMP)",
            (tenant_id, long, json.dumps({**json.loads(spec), "name": long})),
        )
    p = sfai(sfai_env, "features", "list")
    assert p.returncode == 0 and p.stdout.startswith("okview\tv1"), p.stderr
    assert "300 characters" in p.stderr and "left out" in p.stderr and len(p.stderr.splitlines()) == 1
    p = sfai(sfai_env, "ingest", "csv", str(workspace / "okview.csv"))
    assert p.returncode == 0, p.stderr
    refused(sfai_env, ("ingest", "csv", str(workspace / "okview.csv"), "--view", long),
            "stored feature view 'aaaaaaaaaa")


def test_ingest_csv_names_the_file_and_what_it_is_instead(sfai_env, workspace):
    """pyarrow's own words were "Expected 1 columns, got 2: <the file's bytes>" for a semicolon file or a binary
    one, and "no rows" without the file; a CP949 file (Korean Excel) was refused with its raw bytes."""
    w = workspace
    (w / "empty.csv").write_bytes(b"")
    (w / "head.csv").write_text("machine_id,event_timestamp,x\n")
    (w / "bin.csv").write_bytes(bytes(range(256)) * 8)
    (w / "semi.csv").write_text("machine_id;event_timestamp;x\nm1;2024-01-01T00:00:00Z;1,5\n")
    (w / "tabs.csv").write_text("machine_id\tevent_timestamp\tx\nm1\t2024-01-01T00:00:00Z\t1.5\n")
    (w / "latin.csv").write_bytes("machine_id,event_timestamp,x\ncafé,2024-01-01T00:00:00Z,1.5\n".encode("latin-1"))
    (w / "text.csv").write_text("machine_id,event_timestamp,x\nm1,2024-01-01T00:00:00Z,abc\n")
    for name, message in [
        ("empty.csv", "empty.csv: empty file"),
        ("head.csv", "head.csv: no rows"),
        ("bin.csv", "bin.csv: is not text"),
        ("semi.csv", "semi.csv: the header is separated by semicolons"),
        ("tabs.csv", "tabs.csv: the header is separated by tabs"),
        ("latin.csv", "latin.csv: line 2 is not UTF-8 text (byte 0xe9)"),
        ("text.csv", "text.csv: "),
    ]:
        refused(sfai_env, ("ingest", "csv", str(w / name), "--view", "okview"), message)
    refused(sfai_env, ("ingest", "csv", str(w), "--view", "okview"), "is a folder")
    assert rows(sfai_env) == 1
    # Korean Excel's CSV (CP949): read as such
    (w / "kr.csv").write_bytes("machine_id,event_timestamp,x\n공장1,2024-01-02T00:00:00Z,2.5\n".encode("cp949"))
    p = sfai(sfai_env, "ingest", "csv", str(w / "kr.csv"), "--view", "okview")
    assert p.returncode == 0, p.stderr
    assert rows(sfai_env) == 2
