"""The ``sfai`` platform commands, run as a user runs them: stdout carries what a script needs, an error is
one line on stderr with a non-zero exit, never a traceback."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.sfai_cli import run_sfai

SFAI = str(Path(sys.executable).with_name("sfai"))


def sfai(env, *args, ok=True):
    p = run_sfai(*args, env=env)
    if ok:
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    else:
        assert p.returncode != 0, (args, p.stdout)
        assert "Traceback" not in p.stderr, p.stderr
    return p


def test_tenant_subscribe_key_and_the_api_agree(sfai_env, app):
    assert sfai(sfai_env, "tenant", "create", "acme", "--ksic", "C29", "-m", "quality").stdout == "acme\n"
    assert sfai(
        sfai_env, "tenant", "subscribe", "acme", "energy,scheduling", "--plan", "trial"
    ).stdout.splitlines() == ["energy\ttrial\t10000", "scheduling\ttrial\t10000"]
    key = sfai(sfai_env, "apikey", "create", "--tenant", "acme", "--role", "admin").stdout.strip()
    assert key.startswith("sfai_") and "\n" not in key
    listed = json.loads(sfai(sfai_env, "tenant", "list", "--json").stdout)
    assert listed[0]["name"] == "acme" and listed[0]["modules"] == ["energy", "quality", "scheduling"]
    shown = json.loads(sfai(sfai_env, "tenant", "show", "acme", "--json").stdout)["subscriptions"]
    text = sfai(sfai_env, "tenant", "show", "acme").stdout.splitlines()  # plain text unless --json (it was JSON only)
    assert text[0].startswith("acme\tacme\tC29 ") and text[1] == "subscriptions:"
    assert sorted(text[2:5]) == ["  energy\ttrial\t10000\tactive", "  quality\tstandard\t1000000\tactive",
                                 "  scheduling\ttrial\t10000\tactive"]
    assert text[5] == "api keys:" and text[6].endswith("\tadmin\tactive\tall\tno-expiry\tnever-used\tadmin-key")
    with TestClient(app) as c:
        h = {"Authorization": f"Bearer {key}"}
        assert c.get("/v1/tenant", headers=h).json()["modules"] == ["energy", "quality", "scheduling"]
        # the CLI's JSON names the fields as the API does (it had said operator_managed for managed_by_operator)
        api = c.get("/v1/subscriptions", headers=h).json()
        assert {k for s in shown for k in s} >= {"managed_by_operator"} and all("operator_managed" not in s
                                                                              for s in shown)
        assert {s["module"]: s["managed_by_operator"] for s in shown} == {s["module"]: s["managed_by_operator"]
                                                                          for s in api}
        assert c.get("/v1/maintenance/status", headers=h).status_code == 403
        assert c.get("/v1/energy/status", headers={**h, "X-Request-ID": "cli-test-1"}).status_code == 200
    assert sfai(sfai_env, "tenant", "unsubscribe", "acme", "energy").stdout == "energy\n"

    key_id = key.split("_")[1]
    keys = sfai(sfai_env, "apikey", "list", "--tenant", "acme").stdout
    assert key_id in keys and "active" in keys and key not in keys
    assert sfai(sfai_env, "apikey", "revoke", key_id, "--tenant", "acme").stdout.strip() == key_id
    assert "revoked" in sfai(sfai_env, "apikey", "list", "--tenant", "acme").stdout

    assert sfai(sfai_env, "usage", "verify").stdout.startswith("ok: ")
    out = sfai(sfai_env, "usage", "export", "--tenant", "acme", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert "cli-test-1" in [r["request_id"] for r in rows]


def test_errors_are_one_line_and_non_zero(sfai_env, tmp_path):
    sfai(sfai_env, "tenant", "create", "acme", "--ksic", "C29")
    train_file = tmp_path / "train_FD001.txt"
    train_file.write_text("1 1 0 0 100" + " 1" * 21 + "\n")
    cases = [
        (("tenant", "create", "acme", "--ksic", "C29"), "already exists"),
        (("tenant", "create", "steel", "--ksic", "C35"), "C10-C34"),
        (("tenant", "subscribe", "acme", "painting"), "unknown module"),
        (("tenant", "subscribe", "nobody", "quality"), "not found"),
        (("apikey", "create", "--tenant", "acme", "--role", "root"), "unknown role"),
        (("apikey", "revoke", "k000000000000"), "not found"),
        (("usage", "export", "--format", "xml"), "unknown export format"),
        (("usage", "export", "--from", "last tuesday"), "invalid 'from'"),
        (("usage", "export", "--module", "painting"), "unknown module 'painting'"),
        (("usage", "purge", "--before", "2026-01-01"), "kept"),
        # an empty date (an unset shell variable) is refused, not read as open-ended or as the whole log
        (("tenant", "subscribe", "acme", "quality", "--until", ""), "--until is empty"),
        (("usage", "purge", "--before", ""), "--before is empty"),
        (("usage", "export", "--to", " "), "--to is empty"),
        # a bad --set is refused before training starts or an MLflow run opens (nothing else on stderr)
        (("train", "rul", "--dataset", "cmapss", "--input", str(train_file), "--set", "nope=1"), "unknown rul config"),
        (("train", "rul", "--dataset", "cmapss", "--input", str(train_file), "--set", "mean_spans=1,500"), "from 1 to"),
        (("train", "energy", "--dataset", "steel-energy", "--input", str(train_file), "--set", "hidden=big"), "int"),
        # usage errors (click's): one line too, with where to look
        (("predict", "energy", "--dataset", "steel-energy", "--input", "x.csv", "--output", "o.csv", "--horizon",
          "abc"), "Invalid value for '--horizon'"),
        (("nosuch",), "No such command 'nosuch'. (see 'sfai --help')"),
        (("tenant", "create"), "Missing argument 'name'"),
        # a file refused after the MLflow run opened: MLflow's start-up lines stay off stderr
        (("train", "rul", "--dataset", "cmapss", "--input", str(train_file)), "at least 5 engines"),
    ]
    for args, message in cases:
        p = sfai(sfai_env, *args, ok=False)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, p.stderr)
        if args[:2] == ("usage", "purge"):  # --before is required: no "leave the option out"
            assert "leave the option out" not in lines[0], lines
    # settings refused outside development: one line too
    p = sfai({**sfai_env, "SFAI_ENVIRONMENT": "production", "SFAI_SECRET_KEY": "change-me"}, "tenant", "list", ok=False)
    assert "SFAI_SECRET_KEY" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_predict_refuses_to_write_over_its_input(sfai_env, tmp_path):
    """``--output`` naming the input file (by another spelling too) had replaced the rows with the predictions,
    without a word: the input is kept and the command says why."""
    rows = tmp_path / "rows.csv"
    rows.write_text("UDI,Type\n1,M\n")
    for out in (str(rows), str(tmp_path / "." / "rows.csv")):
        p = sfai(sfai_env, "predict", "failure", "--dataset", "ai4i", "--input", str(rows), "--output", out, ok=False)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "is the input file" in lines[0], p.stderr
        assert rows.read_text() == "UDI,Type\n1,M\n"


def test_revoking_a_key_twice_says_so(sfai_env):
    sfai(sfai_env, "tenant", "create", "acme", "--ksic", "C29")
    key = sfai(sfai_env, "apikey", "create", "--tenant", "acme", "--role", "admin").stdout.strip()
    key_id = key.split("_")[1]
    first = sfai(sfai_env, "apikey", "revoke", key)  # the key pasted whole: its id is revoked
    again = sfai(sfai_env, "apikey", "revoke", key_id)  # not an error: the key is revoked, as asked
    assert first.stdout == again.stdout == f"{key_id}\n" and first.stderr == ""
    assert "already revoked" in again.stderr and "nothing changed" in again.stderr


@pytest.mark.parametrize(("signame", "code", "line"), [
    ("SIGINT", 130, "error: interrupted (Ctrl-C)"), ("SIGTERM", 143, "error: terminated (SIGTERM)"),
])
def test_an_interrupted_command_says_so_in_one_line(sfai_env, signame, code, line):
    """Ctrl-C (typer turns it into a bare exit 130) and SIGTERM end a running command with one line on stderr."""
    sfai(sfai_env, "tenant", "create", "acme", "--ksic", "C29")
    # Ctrl-C as a terminal delivers it: a process started from a pytest-xdist worker inherits SIGINT ignored (the
    # signal did nothing, and the lambda's None came back: a TypeError, or with the sleep nothing at all); the
    # signal lands while the command works
    script = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from serving import tenancy\n"
        f"tenancy.list_tenants = lambda db: (os.kill(os.getpid(), signal.{signame}), time.sleep(30), [])[-1]\n"
        "sys.argv = ['sfai', 'tenant', 'list']\n"
        "from serving.cli.entry import run\n"
        "run()\n"
    )
    p = subprocess.run([sys.executable, "-c", script], env=sfai_env, capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (code, "", line + "\n")


def test_a_server_stopped_with_sigterm_says_it_stopped_and_exits_0(sfai_env):
    """``docker stop`` and systemd stop a server with SIGTERM; uvicorn shut down cleanly and then raised the signal
    again, and the CLI's own handler printed "error: terminated (SIGTERM)" with exit 143 after a clean stop."""
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([SFAI, "serve", "--port", str(port)], env=sfai_env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                break
            except OSError:
                assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() else "timeout"
                time.sleep(0.3)
        # a background solve under way (a minute's limit): the server stops anyway, its job handed back to the
        # queue (it had said "stopped" and solved on to the job's limit: operator's audit)
        from benchmarks.gen_shop import generate
        from optimization.io import problem_to_dict
        from serving.db import Database
        from tests.serving.helpers import make_tenant

        db = Database(sfai_env["SFAI_DATABASE_URL"])
        acme = make_tenant(db, sfai_env["SFAI_SECRET_KEY"], "acme", modules=("scheduling",))
        body = {"problem": problem_to_dict(generate(jobs=40, ops=5, machines=8, seed=2, days=4)), "time_limit_s": 60,
                "objective": "tardiness"}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/scheduling/jobs", data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {acme.mes}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            job = json.loads(r.read())["job_id"]
        while True:
            with db.engine.connect() as conn:  # closed each time (one left to the collector broke pytest's exit)
                if conn.execute(text("SELECT status FROM scheduling_jobs")).scalar() == "running":
                    break
            assert time.monotonic() < deadline + 60
            time.sleep(0.2)
        time.sleep(1)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    finally:
        p.kill()
    assert p.returncode == 0, err
    assert err.endswith("SFAI API stopped (SIGTERM)\n") and "error" not in err, err
    assert took < 20, f"the process ran {took:.0f} s after SIGTERM"  # not the job's 60 s
    with db.engine.connect() as conn:  # handed back: another process (or this server, restarted) takes it
        status, owner = conn.execute(text("SELECT status, owner FROM scheduling_jobs WHERE id = :id"),
                                     {"id": job}).one()
    assert status in ("queued", "running") and owner is None
    db.dispose()


def test_demo_prints_a_working_admin_key(sfai_env, app):
    first = sfai(sfai_env, "demo", "--no-models").stdout.strip()  # the demo models: tests/models/test_demo_models.py
    second = sfai(sfai_env, "demo", "--no-models").stdout.strip()  # re-running keeps the tenant, issues a new key
    assert first.startswith("sfai_") and second.startswith("sfai_") and first != second
    with TestClient(app) as c:
        for key in (first, second):
            t = c.get("/v1/tenant", headers={"Authorization": f"Bearer {key}"}).json()
            assert t["name"] == "demo" and t["caller_role"] == "admin"
            assert t["modules"] == ["energy", "maintenance", "quality", "scheduling"]


def test_usage_verify_fails_on_tampering(sfai_env, db, app):
    from sqlalchemy import text

    sfai(sfai_env, "tenant", "create", "acme", "--ksic", "C29", "-m", "quality")
    key = sfai(sfai_env, "apikey", "create", "--tenant", "acme", "--role", "mes").stdout.strip()
    with TestClient(app) as c:
        for _ in range(3):
            c.get("/v1/quality/status", headers={"Authorization": f"Bearer {key}"})
    assert sfai(sfai_env, "usage", "verify", "--json").returncode == 0
    quality = json.loads(sfai(sfai_env, "usage", "export", "-t", "acme", "-f", "json", "--module", "quality").stdout)
    assert [r["endpoint"] for r in quality] == ["/v1/quality/status"] * 3
    assert json.loads(sfai(sfai_env, "usage", "export", "-t", "acme", "-f", "json", "--module", "energy").stdout) == []
    with db.engine.begin() as conn:
        if db.is_sqlite:
            conn.execute(text("DROP TRIGGER usage_log_no_update"))
        else:
            conn.execute(text("ALTER TABLE usage_log DISABLE TRIGGER usage_log_guard"))
        conn.execute(text("UPDATE usage_log SET status = 201 WHERE seq = 2"))
    p = sfai(sfai_env, "usage", "verify", ok=False)
    assert p.returncode == 1 and "row 2 was modified" in p.stderr


def test_help_on_every_command(tmp_path):
    sfai_env = {"PATH": "/usr/bin:/bin", "SFAI_HOME": str(tmp_path), "SFAI_ENVIRONMENT": "test"}
    for args in (
        ["--help"],
        ["tenant", "--help"],
        ["tenant", "create", "--help"],
        ["apikey", "create", "--help"],
        ["usage", "export", "--help"],
        ["serve", "--help"],
    ):
        p = sfai(sfai_env, *args)
        assert "Usage" in p.stdout


def test_features_compact_from_the_cli(sfai_env):
    sfai(sfai_env, "tenant", "create", "acme", "--ksic", "C22")
    # synthetic machines in a factory's own tenant stay for good: refused unless asked for in so many words
    refused = sfai(sfai_env, "ingest", "c22-demo", "--tenant", "acme", "--machines", "1", "--days", "1", ok=False)
    assert "not made by 'sfai demo'" in refused.stderr and "--into-any-tenant" in refused.stderr
    assert json.loads(sfai(sfai_env, "features", "list", "--tenant", "acme", "--json").stdout) == []
    for i in range(3):  # three small runs of the demo data, three files per day partition
        sfai(sfai_env, "ingest", "c22-demo", "--tenant", "acme", "--machines", "1", "--days", "1", "--seed", str(i),
             "--quiet", "--into-any-tenant")
    views = json.loads(sfai(sfai_env, "features", "list", "--tenant", "acme", "--json").stdout)
    view = views[0]["name"]
    out = json.loads(sfai(sfai_env, "features", "compact", view, "--tenant", "acme", "--min-files", "2").stdout)
    assert out["view"] == view and out["partitions"] >= 1 and out["files_after"] < out["files_before"]
    assert out["duplicates"] == 0  # three seeds: other values at the same times, corrections, not repeats
    again = json.loads(sfai(sfai_env, "features", "compact", view, "--tenant", "acme", "--min-files", "2").stdout)
    assert again["partitions"] == 0  # nothing left to merge
    bad = sfai(sfai_env, "features", "compact", "no_such_view", "--tenant", "acme", ok=False)
    assert len(bad.stderr.strip().splitlines()) == 1 and "no_such_view" in bad.stderr


def test_an_unexpected_error_is_named_without_a_stutter():
    """``re.error`` and ``struct.error`` are both called ``error``: the one line says which (not "error: error:")."""
    import re
    import struct

    from serving.cli.main import _kind

    with pytest.raises(re.error) as rx:
        re.compile("(?P<a>x)(?P<a>y)")
    with pytest.raises(struct.error) as st:
        struct.pack("H", 70000)
    assert (_kind(rx.value), _kind(st.value), _kind(KeyError("k"))) == ("re.error", "struct.error", "KeyError")


def test_predict_rul_warns_when_the_files_subset_has_no_model(sfai_env, db, settings, demo_models, tmp_path):
    """test_FD002.txt scored with FD001's model (the only one trained) would give RULs from another subset's
    regimes and scales: the answer comes, but with a warning that names the model to train."""
    import shutil

    from models.registry import ModelRegistry
    from serving import tenancy

    tenancy.create_tenant(db, "acme", "C29")
    ModelRegistry(db, settings.home, "acme").register("rul-fd001", "maintenance", demo_models[0] / "rul" / "v1")
    for name in ("test_FD002.txt", "test_FD001.txt"):
        shutil.copy(demo_models[1] / "cmapss_demo.txt", tmp_path / name)
    p = sfai(sfai_env, "predict", "rul", "--tenant", "acme", "--dataset", "cmapss", "--input",
             str(tmp_path / "test_FD002.txt"), "--output", str(tmp_path / "o2.csv"))
    assert json.loads(p.stdout)["model"] == "rul-fd001"
    assert "warning: test_FD002.txt names the C-MAPSS subset FD002, which has no trained model (rul-fd002); " \
           "scoring with rul-fd001" in p.stderr and "train_FD002.txt" in p.stderr
    p = sfai(sfai_env, "predict", "rul", "--tenant", "acme", "--dataset", "cmapss", "--input",
             str(tmp_path / "test_FD001.txt"), "--output", str(tmp_path / "o1.csv"))
    assert "warning" not in p.stderr and json.loads(p.stdout)["model"] == "rul-fd001"
    # a plant's own file name points to no subset: --version alone had said to train a model that exists (data
    # scientist's audit); it names the tenant's models and --model, which picks one
    shutil.copy(demo_models[1] / "cmapss_demo.txt", tmp_path / "engines_line3.txt")
    args = ["predict", "rul", "--tenant", "acme", "--dataset", "cmapss", "--input", str(tmp_path / "engines_line3.txt"),
            "--output", str(tmp_path / "o3.csv")]
    p = sfai(sfai_env, *args, "--version", "1", ok=False)
    assert p.stderr.startswith("error: version 1 of which 'rul' model? This tenant has rul-fd001; name one with "
                               "--model"), p.stderr
    assert json.loads(sfai(sfai_env, *args, "--version", "1", "--model", "rul-fd001").stdout)["model"] == "rul-fd001"
    p = sfai(sfai_env, *args, "--model", "rul-fd009", ok=False)
    assert "no model 'rul-fd009' for tenant 'acme' (its 'rul' models: rul-fd001)" in p.stderr, p.stderr
