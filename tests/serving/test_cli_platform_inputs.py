"""Bad input at the platform commands (found by fuzzing the CLI: ``sfai admin``, ``serve``, ``tenant``, ``apikey``,
``usage``, ``demo``): each is refused with one ``error:`` line on stderr and a non-zero exit, and changes nothing.
The commands run in-process here (``serving.cli.main.run``, as the console script does), which is quicker than a
process each; tests/serving/test_cli.py runs the real one."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from serving import tenancy
from serving.cli import common
from serving.cli import main as cli_main
from serving.settings import get_settings
from tests.serving.helpers import bearer, make_tenant

PEPPER = "test-secret-0123456789"


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __iter__(self):  # rc, out, err = sfai(...)
        return iter((self.rc, self.out, self.err))

    @property
    def error(self) -> str:
        """The one error line (asserted to be the only line on stderr)."""
        lines = self.err.strip().splitlines()
        assert self.rc != 0 and len(lines) == 1 and lines[0].startswith("error: "), (self.rc, self.err)
        assert "Traceback" not in self.err
        return lines[0]


def _clear_caches() -> None:
    if common.database.cache_info().currsize:
        common.database().dispose()
    common.database.cache_clear()
    common.settings.cache_clear()
    get_settings.cache_clear()


@pytest.fixture
def sfai(sfai_env, monkeypatch, capsys):
    """``sfai(*args)`` runs the CLI in this process on the test's home and database."""
    for k in [k for k in os.environ if k.startswith("SFAI_")]:
        monkeypatch.delenv(k)
    for k, v in sfai_env.items():
        if k.startswith("SFAI_"):
            monkeypatch.setenv(k, v)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        for k, v in (env or {}).items():
            monkeypatch.setenv(k, v)
        _clear_caches()
        monkeypatch.setattr(sys, "argv", ["sfai", *args])
        capsys.readouterr()
        try:
            cli_main.run()
            rc = 0
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:
            _clear_caches()
        out, err = capsys.readouterr()
        return Result(rc, out, err)

    yield run
    _clear_caches()


# ------------------------------------------------------------------------------------------------ admin backup
def test_backup_target_folder_must_exist_and_a_file_is_kept_unless_force(sfai, settings, db, tmp_path):
    make_tenant(db, PEPPER, "acme")
    r = sfai("admin", "backup", str(tmp_path / "nonexistent" / "x.tar.gz"))
    assert "does not exist" in r.error and not (tmp_path / "nonexistent").exists()
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"yesterday")
    assert "--force" in sfai("admin", "backup", str(out), "--tenant", "acme").error
    assert out.read_bytes() == b"yesterday"
    r = sfai("admin", "backup", str(out), "--tenant", "acme", "--force")
    assert r.rc == 0 and r.out.strip() == str(out) and out.read_bytes() != b"yesterday"
    fifo = tmp_path / "device"  # as /dev/full: an existing thing that is not a file is never replaced
    os.mkfifo(fifo)
    assert "not a regular file" in sfai("admin", "backup", str(fifo), "--force").error
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_truncated_backup_restore_is_one_clear_line(sfai, settings, db, tmp_path):
    make_tenant(db, PEPPER, "acme")
    out = tmp_path / "b.tar.gz"
    assert sfai("admin", "backup", str(out), "--tenant", "acme").rc == 0
    trunc = tmp_path / "trunc.tar.gz"
    trunc.write_bytes(out.read_bytes()[:500])
    r = sfai("admin", "restore", str(trunc), "--tenant", "acme")
    assert r.error.startswith(f"error: {trunc}: not a complete SFAI backup (") and r.out == ""


# ------------------------------------------------------------------------------------------------ serve
def test_serve_refuses_what_it_cannot_listen_on_before_starting(sfai, monkeypatch):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(k))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cases = [
            (("--host", ""), "--host is empty"),
            (("--host", "  "), "--host is empty"),
            (("--log-level", "foo"), "unknown --log-level 'foo': expected one of critical, error, warning, info"),
            (("--host", "no.such.host.invalid"), "cannot listen on no.such.host.invalid:"),
            (("--host", "127.0.0.1", "--port", str(port)), f"cannot listen on 127.0.0.1:{port} (Address already"),
        ]
        for args, message in cases:
            r = sfai("serve", *args)
            assert r.rc == 1 and message in r.error, (args, r.err)
    assert started == []
    with socket.socket() as free:  # a free port and a known level (any case) do start it
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert sfai("serve", "--port", str(port), "--log-level", "WARNING").rc == 0
    assert [(k["host"], k["port"]) for k in started] == [("127.0.0.1", port)]


# ------------------------------------------------------------------------------------------------ tenants
def test_unsubscribe_all_ends_every_active_subscription_at_once(sfai, db):
    make_tenant(db, PEPPER, "acme", modules=("quality", "maintenance", "scheduling"))  # not energy
    t = tenancy.get_tenant(db, "acme")
    r = sfai("tenant", "unsubscribe", "acme", "quality", "energy")  # one of them is not active: nothing ends
    assert "'energy'" in r.error and "nothing was ended" in r.error
    assert set(tenancy.active_subscriptions(db, t.id)) == {"quality", "maintenance", "scheduling"}
    r = sfai("tenant", "unsubscribe", "acme", "all")
    assert r.rc == 0 and r.out.splitlines() == ["quality", "maintenance", "scheduling"]
    assert "quality, maintenance, scheduling" in r.err
    assert tenancy.active_subscriptions(db, t.id) == {}
    assert "no active subscription" in sfai("tenant", "unsubscribe", "acme", "all").error


def test_quota_out_of_range_is_refused(sfai, db):
    make_tenant(db, PEPPER, "acme")
    r = sfai("tenant", "subscribe", "acme", "quality", "--quota", "99999999999999999999999")
    assert "--quota" in r.error and "OverflowError" not in r.err
    assert sfai("tenant", "subscribe", "acme", "quality", "--quota", str(tenancy.MAX_QUOTA)).rc == 0


def test_tenant_names_are_found_in_any_case(sfai, db, tmp_path):
    assert sfai("tenant", "create", "Acme2", "--ksic", "C29", "-m", "quality").out == "acme2\n"
    assert '"name": "acme2"' in sfai("tenant", "show", "Acme2", "--json").out
    key = sfai("apikey", "create", "--tenant", "ACME2", "--role", "mes").out.strip()
    assert key.startswith("sfai_")
    listed = sfai("apikey", "list", "--tenant", "Acme2")
    assert listed.rc == 0 and key.split("_")[1] in listed.out
    assert sfai("tenant", "subscribe", "Acme2", "energy").rc == 0
    assert sfai("tenant", "unsubscribe", "Acme2", "energy").out == "energy\n"
    assert sfai("usage", "export", "--tenant", "Acme2").rc == 0
    assert sfai("admin", "backup", str(tmp_path / "b.tar.gz"), "--tenant", "Acme2").rc == 0


def test_control_characters_in_names_are_refused(sfai, db, client):
    for args in (
        ("tenant", "create", "acme3", "--ksic", "C29", "--display-name", "ACME\tsteel"),
        ("tenant", "create", "acme3", "--ksic", "C29", "--display-name", "ACME\nsteel"),
    ):
        assert "control characters" in sfai(*args).error
    assert tenancy.list_tenants(db) == []
    keys = make_tenant(db, PEPPER, "acme")
    assert "control characters" in sfai("apikey", "create", "--tenant", "acme", "--role", "mes", "--name",
                                        "line\t3").error
    r = client.post("/v1/apikeys", json={"role": "mes", "name": "line\n3"}, headers=bearer(keys.admin))
    assert r.status_code == 422 and "control characters" in r.json()["error"]["message"]
    # a right-to-left override shows "admin\u202enim" as another name; a name of spaces shows as none
    r = client.post("/v1/apikeys", json={"role": "mes", "name": "mes\u202erotarepo"}, headers=bearer(keys.admin))
    assert r.status_code == 422 and "control characters" in r.json()["error"]["message"], r.text
    assert "only spaces" in sfai("tenant", "create", "acme4", "--ksic", "C29", "--display-name", "   ").error
    assert [k.name for k in tenancy.list_api_keys(db, "acme")] == ["admin", "mes"]


# ------------------------------------------------------------------------------------------------ demo
def test_demo_leaves_a_tenant_it_did_not_make_alone(sfai, db):
    tenancy.create_tenant(db, "acme2", "C29")
    tenancy.subscribe(db, "acme2", "quality", plan="trial")
    r = sfai("demo", "--tenant", "acme2", "--ksic", "C22", "--no-models", "--no-data")
    assert "not made by 'sfai demo'" in r.error and r.out == ""
    subs = tenancy.list_subscriptions(db, "acme2")
    assert [(s.module, s.plan) for s in subs] == [("quality", "trial")] and subs[0].ends_at is None
    assert tenancy.get_tenant(db, "acme2").ksic_code == "C29" and tenancy.list_api_keys(db, "acme2") == []


def test_demo_refuses_a_bad_or_other_ksic_and_runs_again_on_its_own_tenant(sfai, db):
    first = sfai("demo", "--no-models", "--no-data")
    assert first.rc == 0
    assert "C99" in sfai("demo", "--ksic", "C99", "--no-models", "--no-data").error
    assert "is C22" in sfai("demo", "--ksic", "C10", "--no-models", "--no-data").error
    tenancy.unsubscribe(db, "demo", "energy")  # ended since: demo says that it subscribes it again
    second = sfai("demo", "--ksic", "c22", "--no-models", "--no-data")
    assert second.rc == 0 and second.out != first.out and "subscribed again to energy" in second.err
    assert set(tenancy.active_subscriptions(db, tenancy.get_tenant(db, "demo").id)) == set(tenancy.MODULES)
    assert len(tenancy.list_api_keys(db, "demo")) == 2


# ------------------------------------------------------------------------------------------------ usage export
def test_usage_export_output_is_checked_first_and_leaves_no_part_file(sfai, db, tmp_path, monkeypatch):
    make_tenant(db, PEPPER, "acme")
    work = tmp_path / "work"
    work.mkdir()
    folder = work / "cf"
    folder.mkdir()
    r = sfai("usage", "export", "--output", str(folder))
    assert f"{folder} is a folder" in r.error
    r = sfai("usage", "export", "--output", str(work / "nodir" / "x.csv"))
    assert "x.csv" in r.error and ".part" not in r.error and "does not exist" in r.error
    fifo = work / "fifo"
    os.mkfifo(fifo)
    assert "not a regular file" in sfai("usage", "export", "--output", str(fifo)).error
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    out = work / "u.csv"
    out.write_text("kept")
    (work / "u.csv.part").write_text("someone's file")  # not ours to overwrite or remove

    def failing(*a, **k):  # noqa: ANN002, ANN003, ANN202
        yield "seq,ts\n"
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("serving.cli.platform.export_usage", failing)
        assert "No space left" in sfai("usage", "export", "--output", str(out)).error
    assert out.read_text() == "kept" and (work / "u.csv.part").read_text() == "someone's file"
    assert sorted(p.name for p in work.iterdir()) == ["cf", "fifo", "u.csv", "u.csv.part"]
    assert sfai("usage", "export", "--output", str(out)).rc == 0 and out.read_text().startswith("log_seq,seq,")
    assert sorted(p.name for p in work.iterdir()) == ["cf", "fifo", "u.csv", "u.csv.part"]


# ------------------------------------------------------------------------------------------------ database URL
def test_sqlite_url_in_a_missing_folder_is_refused(sfai, tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'nonexistent_dir' / 'x.db'}"
    r = sfai("tenant", "list", env={"SFAI_DATABASE_URL": url, "SFAI_HOME": str(tmp_path / "home2")})
    assert "does not exist" in r.error and not (tmp_path / "nonexistent_dir").exists()
    inside = tmp_path / "home3" / "db" / "x.db"  # under SFAI_HOME: made on first run, as SFAI_HOME itself
    r = sfai("tenant", "list", env={"SFAI_DATABASE_URL": f"sqlite:///{inside}", "SFAI_HOME": str(tmp_path / "home3")})
    assert r.rc == 0 and inside.exists()


def test_json_lines_hold_no_nan(capsys):
    """`sfai train defect --set n_splits=1` printed `"val_balanced_accuracy_nested": NaN`, which is not JSON: jq and
    strict parsers refused the whole line. A metric that is not a number is null."""
    import numpy as np

    from serving.cli.common import emit_json

    emit_json({"auc": float("nan"), "curve": [np.float32("nan"), np.float64(0.5), float("-inf")], "n": np.float32(2)})
    assert json.loads(capsys.readouterr().out) == {"auc": None, "curve": [None, 0.5, None], "n": 2.0}
