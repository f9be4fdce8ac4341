"""``sfai admin backup`` / ``restore``: after a restore the same predictions, online features and usage log come
back, the usage hash chain verifies, and bad archives or targets are refused with one clear line."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from models.demo import ENDPOINTS, sample_request
from models.registry import ModelRegistry
from serving import tenancy
from serving.app import create_app
from serving.backup import backup, restore
from serving.calendar_store import check_days, read_days, replace_days
from serving.db import Database
from serving.db.tables import UsageRecord
from serving.errors import Conflict, InvalidInput, NotFound, SfaiError
from serving.settings import Settings
from serving.usage import ChainKey, deployment_id, query_usage, verify_chain
from tests.conftest import PgDatabase
from tests.serving.helpers import KEY, bearer, make_tenant
from tests.sfai_cli import run_sfai

PEPPER = "test-secret-0123456789"
FAMILIES = {"failure": "maintenance", "defect": "quality", "energy": "energy"}


def _empty_deployment(tmp_path: Path, secret: str = PEPPER) -> tuple[Settings, Database]:
    """Another deployment to restore into: its own SFAI_HOME and an empty SQLite database (the caller disposes)."""
    target = Settings(home=tmp_path / "t", database_url=f"sqlite:///{tmp_path / 't.db'}", environment="test",
                      secret_key=secret)
    target.ensure_home()
    return target, Database(target.resolved_database_url)


def _deployment(settings: Settings, db: Database, demo_models, tenant: str) -> str:
    """A tenant with every module, the demo models, the synthetic moulding data in its feature store, and some
    calls in its usage log; returns its MES key."""
    from feature_store.store import FeatureStore
    from pipelines.runner import run_pipeline

    models_dir, _ = demo_models
    keys = make_tenant(db, PEPPER, tenant, modules=tenancy.MODULES, ksic="C22")
    reg = ModelRegistry(db, settings.home, tenant)
    for family, module in FAMILIES.items():
        reg.register(family, module, models_dir / family / "v1")
    store = FeatureStore(settings, db, tenant)
    run_pipeline("c22-demo", None, store=store)
    store.close()
    return keys.mes


def _answers(app, key: str, demo_dir: Path) -> dict:
    """Predictions of every family, an online feature lookup, and the tenant's view of itself."""
    out = {}
    with TestClient(app) as client:
        h = bearer(key)
        for family in FAMILIES:
            r = client.post(ENDPOINTS[family], json=sample_request(demo_dir, family), headers=h)
            assert r.status_code == 200, (family, r.text)
            out[family] = r.json()
        views = client.get("/v1/features/views", headers=h).json()
        view = views[0]["name"]
        ids = ["m01", "m02", "m03", "M-01", 1, 2]
        out["online"] = client.post("/v1/features/online", json={"view": view, "entity_ids": ids}, headers=h).json()
        out["views"] = sorted(v["name"] for v in views)
    return out


def _usage(db: Database, tenant: str) -> list[tuple]:
    tid = tenancy.get_tenant(db, tenant).id
    rows = query_usage(db, tid, limit=10_000)["records"]
    return sorted((r["ts"], r["request_id"], r["endpoint"], r["status"], r["model_version"], r["seq"]) for r in rows)


def _target_db(request, tmp_path: Path, kind: str):  # noqa: ANN001, ANN202
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'restored.db'}"
    from tests.conftest import need_postgres

    need_postgres()
    pg = PgDatabase()
    request.addfinalizer(pg.drop)
    return pg.url


@pytest.mark.parametrize("target_kind", ["sqlite", "postgres"])
def test_full_backup_restores_the_same_answers_and_usage_log(request, settings, db, demo_models, tmp_path, target_kind):
    key = _deployment(settings, db, demo_models, "acme")
    demo_dir = demo_models[1]
    before = _answers(create_app(settings, db=db), key, demo_dir)
    usage_before = _usage(db, "acme")
    assert len(usage_before) >= 5

    (tmp_path / "b").mkdir()
    archive = backup(settings, db, tmp_path / "b" / "all.tar.gz")
    assert archive.path.stat().st_mode & 0o077 == 0  # hashed keys and the usage log: owner only
    assert archive.rows["usage_log"] == len(usage_before) and archive.files > 0

    # a new deployment (another home, another database; SQLite <-> PostgreSQL both ways across the matrix)
    target = settings.model_copy(update={"home": tmp_path / "restored", "database_url": _target_db(
        request, tmp_path, target_kind)})
    target.ensure_home()
    tdb = Database(target.resolved_database_url)
    try:
        own = deployment_id(tdb)
        report = restore(target, tdb, archive.path)
        assert report.tenants == ["acme"] and report.online_rows > 0 and not report.warnings
        # the target keeps its own id: on the source's Redis, a restored copy counts its own quotas
        assert deployment_id(tdb) == own != deployment_id(db)
        assert _usage(tdb, "acme") == usage_before
        assert verify_chain(tdb, key=KEY).ok
        after = _answers(create_app(target, db=tdb), key, demo_dir)  # the same key works: same secret
        assert after == before
        # the restored deployment goes on: new keys and tenants get fresh ids (PostgreSQL sequences moved on)
        tenancy.create_tenant(tdb, "newcomer", "C29")
        tenancy.create_api_key(tdb, PEPPER, "newcomer", "admin")
        # a second full restore into a database that holds tenants is refused
        with pytest.raises(Conflict, match="empty"):
            restore(target, tdb, archive.path)
    finally:
        tdb.dispose()


def test_one_tenant_moves_to_another_deployment(settings, db, demo_models, tmp_path):
    key = _deployment(settings, db, demo_models, "acme")
    _deployment(settings, db, demo_models, "other")
    demo_dir = demo_models[1]
    before = _answers(create_app(settings, db=db), key, demo_dir)
    usage_before = _usage(db, "acme")
    days = check_days({"days": [{"date": "2026-08-03", "kind": "day_off", "note": "summer shutdown"},
                                {"date": "2026-10-03", "kind": "working"}]})
    replace_days(db, tenancy.get_tenant(db, "acme").id, days)  # the plant calendar moves with the tenant
    calendar = read_days(db, tenancy.get_tenant(db, "acme").id)[0]
    archive = backup(settings, db, tmp_path / "acme.tar.gz", tenant="acme")
    with tarfile.open(archive.path) as tar:  # only acme's rows and files
        manifest = json.loads(tar.extractfile("manifest.json").read())
        assert manifest["tenants"] == ["acme"]
        assert not [n for n in tar.getnames() if "/other/" in n]
        tenants = [json.loads(line) for line in tar.extractfile("db/tenants.jsonl").read().splitlines()]
        assert [t["name"] for t in tenants] == ["acme"]

    # the target already serves another tenant, whose usage chain the restore must extend, not break
    target, tdb = _empty_deployment(tmp_path)
    try:
        local = make_tenant(tdb, PEPPER, "local", modules=("quality",))
        with TestClient(create_app(target, db=tdb)) as client:
            assert client.get("/v1/quality/status", headers=bearer(local.mes)).status_code == 200
        report = restore(target, tdb, archive.path, tenant="acme")
        assert report.tenants == ["acme"]
        assert [r[1:] for r in _usage(tdb, "acme")] == [r[1:] for r in usage_before]
        assert verify_chain(tdb, key=KEY).ok
        assert _answers(create_app(target, db=tdb), key, demo_dir) == before
        assert read_days(tdb, tenancy.get_tenant(tdb, "acme").id)[0] == calendar and len(calendar) == 2
        with pytest.raises(Conflict, match="already exists"):
            restore(target, tdb, archive.path, tenant="acme")
        with pytest.raises(NotFound, match="other"):
            restore(target, tdb, archive.path, tenant="other")
    finally:
        tdb.dispose()


def test_damaged_or_foreign_archives_are_refused(settings, db, tmp_path):
    make_tenant(db, PEPPER, "acme")
    archive = backup(settings, db, tmp_path / "a.tar.gz").path
    target, tdb = _empty_deployment(tmp_path, secret="another-secret-0123456789")
    try:
        # a member changed after the backup: its checksum no longer matches
        damaged = tmp_path / "damaged.tar.gz"
        with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as dst:
            for m in src.getmembers():
                data = src.extractfile(m).read()
                if m.name == "db/tenants.jsonl":
                    data = data.replace(b"acme", b"acmf")
                m.size = len(data)
                import io

                dst.addfile(m, io.BytesIO(data))
        with pytest.raises(InvalidInput, match="checksum"):
            restore(target, tdb, damaged)
        junk = tmp_path / "junk.tar.gz"
        junk.write_bytes(b"not a backup")
        with pytest.raises(InvalidInput, match="not an SFAI backup"):
            restore(target, tdb, junk)
        # bytes overwritten after the tables (the manifest is the last member): damaged, not "not a backup"
        raw = bytearray(archive.read_bytes())
        with tarfile.open(archive) as src:
            head = sum(512 + -(-m.size // 512) * 512 for m in src.getmembers() if m.name.startswith("db/"))
        plain = bytearray(gzip.decompress(bytes(raw)))
        plain[head:] = b"\xff" * (len(plain) - head)
        overwritten = tmp_path / "overwritten.tar.gz"
        overwritten.write_bytes(gzip.compress(bytes(plain)))
        with pytest.raises(InvalidInput, match="the backup is damaged"):
            restore(target, tdb, overwritten)
        with pytest.raises(NotFound):
            restore(target, tdb, tmp_path / "missing.tar.gz")
        # another secret: restored, with a warning that the old keys will not authenticate here
        report = restore(target, tdb, archive)
        assert report.warnings and "SFAI_SECRET_KEY" in report.warnings[0]
    finally:
        tdb.dispose()


def test_cli_backup_and_restore(sfai_env, settings, db, tmp_path):
    make_tenant(db, PEPPER, "acme")

    def sfai(*args, env=sfai_env):
        return run_sfai(*args, env=env)

    out = tmp_path / "cli.tar.gz"
    r = sfai("admin", "backup", str(out), "--tenant", "acme")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out) and "1 tenant(s)" in r.stderr
    env = {**sfai_env, "SFAI_HOME": str(tmp_path / "h2"), "SFAI_DATABASE_URL": f"sqlite:///{tmp_path / 'h2.db'}"}
    r = sfai("admin", "restore", str(out), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tenants"] == ["acme"]
    for args in (("admin", "restore", str(tmp_path / "nope.tar.gz")), ("admin", "backup", str(tmp_path))):
        r = sfai(*args, env=env)
        assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr


def test_backup_refuses_a_missing_folder_an_existing_file_and_anything_not_a_file(settings, db, tmp_path):
    make_tenant(db, PEPPER, "acme")
    with pytest.raises(InvalidInput, match="does not exist"):
        backup(settings, db, tmp_path / "nope" / "x.tar.gz")
    assert not (tmp_path / "nope").exists()  # not made on the way
    out = tmp_path / "b.tar.gz"
    out.write_bytes(b"last night's backup")
    with pytest.raises(Conflict, match="--force"):
        backup(settings, db, out)
    assert out.read_bytes() == b"last night's backup"
    assert backup(settings, db, out, force=True).path == out and tarfile.is_tarfile(out)
    fifo = tmp_path / "fifo"  # stands for /dev/full and the like: never replaced, --force or not
    os.mkfifo(fifo)
    link = tmp_path / "link.tar.gz"
    link.symlink_to(out)
    for target in (fifo, link):
        with pytest.raises(InvalidInput, match="not a regular file|symbolic link"):
            backup(settings, db, target, force=True)
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".sfai-backup-")) == []


def test_truncated_backup_is_named_as_such(settings, db, tmp_path):
    make_tenant(db, PEPPER, "acme")
    whole = backup(settings, db, tmp_path / "a.tar.gz").path.read_bytes()
    target = Settings(home=tmp_path / "t", database_url=f"sqlite:///{tmp_path / 't.db'}", environment="test",
                      secret_key=PEPPER)
    tdb = Database(target.resolved_database_url)
    try:
        for cut in (20, len(whole) // 2):
            trunc = tmp_path / "trunc.tar.gz"
            trunc.write_bytes(whole[:cut])
            with pytest.raises(InvalidInput, match=r"trunc.tar.gz: not a complete SFAI backup \("):
                restore(target, tdb, trunc, tenant="acme")
    finally:
        tdb.dispose()


def _source_with_files_and_usage(settings, db) -> None:  # noqa: ANN001
    from serving.usage import UsageEntry, append_entries

    make_tenant(db, PEPPER, "acme")
    tid = tenancy.get_tenant(db, "acme").id
    append_entries(db, [UsageEntry(ts=tenancy.utcnow(), tenant_id=tid, key_id="k1", module="quality", method="GET",
                                   endpoint="/v1/quality/status", status=200, latency_us=5, request_id=f"r{i}")
                        for i in range(3)], key=KEY)
    sample = settings.home / "demo" / "acme" / "sample.csv"
    sample.parent.mkdir(parents=True)
    sample.write_text("a,b\n1,2\n")


def test_a_keyed_usage_log_restores_whole_only_under_its_secret(settings, db, tmp_path):
    """The usage chain is keyed with SFAI_SECRET_KEY: a whole restore under another secret would leave a log that
    neither verifies nor takes new records, so it is refused before anything is written. One tenant's restore
    re-chains its records under the target's key; a backup from before keyed chains restores as plain rows."""
    _source_with_files_and_usage(settings, db)
    archive = backup(settings, db, tmp_path / "a.tar.gz").path
    other = "another-secret-0123456789"
    target, tdb = _empty_deployment(tmp_path, secret=other)
    try:
        with pytest.raises(Conflict, match="hash-chained with another SFAI_SECRET_KEY"):
            restore(target, tdb, archive)
        assert not tenancy.list_tenants(tdb)
        report = restore(target, tdb, archive, tenant="acme")
        assert report.rows["usage_log"] == 3 and verify_chain(tdb, key=ChainKey(other)).ok
    finally:
        tdb.dispose()
    # a backup from before keyed chains: its head has no keyed start, so its rows are all plain
    from serving.backup import _keyed_chain

    head = {"id": 1, "last_seq": 3, "last_hash": "h", "anchor_seq": 0, "anchor_hash": "0" * 64}
    assert _keyed_chain(target, [head]) == [{**head, "keyed_from": 4, "keyed_mark": None}]


@pytest.mark.parametrize("scope", ["tenant", "all"])
@pytest.mark.parametrize("fails_in", ["rebuild", "usage", "files"])
def test_a_restore_that_fails_part_way_leaves_nothing_and_can_run_again(settings, db, tmp_path, monkeypatch, scope,
                                                                         fails_in):
    import serving.backup as bk

    _source_with_files_and_usage(settings, db)
    archive = backup(settings, db, tmp_path / "a.tar.gz").path
    target, tdb = _empty_deployment(tmp_path)
    tenant = "acme" if scope == "tenant" else None
    try:
        if scope == "tenant":
            make_tenant(tdb, PEPPER, "local")  # a deployment in use: its rows, files and chain must stay
        before = verify_chain(tdb, key=KEY)

        def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
            raise RuntimeError("disk on fire")

        if fails_in == "rebuild":
            monkeypatch.setattr(bk, "_rebuild_online", boom)
        elif fails_in == "usage":
            monkeypatch.setattr(bk, "append_entries", boom)
            monkeypatch.setattr(bk, "_insert", _failing_on_usage(bk._insert))
        else:
            real = bk._Undo.write_file

            def write_then_fail(self, target, data):  # noqa: ANN001, ANN202
                real(self, target, data)
                raise OSError(28, "No space left on device")

            monkeypatch.setattr(bk._Undo, "write_file", write_then_fail)
        with pytest.raises(SfaiError, match="nothing was restored"):
            restore(target, tdb, archive, tenant=tenant)
        with pytest.raises(NotFound):
            tenancy.get_tenant(tdb, "acme")
        assert not (target.home / "demo" / "acme").exists()
        assert verify_chain(tdb, key=KEY).rows == before.rows
        monkeypatch.undo()
        report = restore(target, tdb, archive, tenant=tenant)  # the same restore, run again, goes through
        assert report.tenants == ["acme"] and report.rows["usage_log"] == 3
        assert (target.home / "demo" / "acme" / "sample.csv").read_text() == "a,b\n1,2\n"
        assert len(_usage(tdb, "acme")) == 3 and verify_chain(tdb, key=KEY).ok
    finally:
        tdb.dispose()


def _failing_on_usage(insert_rows):  # noqa: ANN001, ANN202
    def insert(conn, table, rows):  # noqa: ANN001, ANN202
        if table is UsageRecord:
            raise RuntimeError("disk on fire")
        return insert_rows(conn, table, rows)

    return insert


def _rewrite(archive: Path, out: Path, edit) -> None:  # noqa: ANN001
    """A copy of ``archive`` whose members ``edit(name, data)`` may change (None drops one), checksums redone."""
    import hashlib
    import io

    with tarfile.open(archive) as src:
        members = {m.name: src.extractfile(m).read() for m in src.getmembers()}
    manifest = json.loads(members.pop("manifest.json"))
    manifest["sha256"] = {}
    with tarfile.open(out, "w:gz") as tar:
        for name, data in members.items():
            data = edit(name, data)
            if data is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            manifest["sha256"][name] = hashlib.sha256(data).hexdigest()
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_a_backup_from_before_per_tenant_numbers_is_numbered_on_restore(settings, db, tmp_path):
    """Backups written before usage records carried their tenant's own number restore with the numbers the
    schema migration gives: 1, 2, ... per tenant in log order, the heads at the last ones; the log verifies."""
    from serving.usage import UsageEntry, append_entries

    ids = [tenancy.get_tenant(db, make_tenant(db, PEPPER, name).name).id for name in ("acme", "other")]
    append_entries(db, [UsageEntry(ts=tenancy.utcnow(), tenant_id=ids[i % 3 == 0], key_id="k1", module=None,
                                   method="GET", endpoint="/v1/usage", status=200, latency_us=5, request_id=f"r{i}")
                        for i in range(7)], key=KEY)
    (tmp_path / "b").mkdir()
    archive = backup(settings, db, tmp_path / "b" / "all.tar.gz").path

    def old_format(name: str, data: bytes) -> bytes | None:
        if name == "db/usage_tenant_heads.jsonl":
            return None
        if name == "db/usage_log.jsonl":
            rows = [json.loads(line) for line in data.splitlines()]
            return b"".join(json.dumps({k: v for k, v in r.items() if k != "tenant_seq"}).encode() + b"\n"
                            for r in rows)
        return data

    _rewrite(archive, tmp_path / "old.tar.gz", old_format)
    target = settings.model_copy(update={"home": tmp_path / "t", "database_url": f"sqlite:///{tmp_path / 't.db'}"})
    target.ensure_home()
    tdb = Database(target.resolved_database_url)
    try:
        restore(target, tdb, tmp_path / "old.tar.gz")
        assert verify_chain(tdb, key=KEY).ok
        for name in ("acme", "other"):
            assert _usage(tdb, name) == _usage(db, name)  # the same numbers the source gave them
        append_entries(tdb, [UsageEntry(ts=tenancy.utcnow(), tenant_id=ids[1], key_id="k1", module=None,
                                        method="GET", endpoint="/v1/usage", status=200, latency_us=5,
                                        request_id="after")], key=KEY)
        assert query_usage(tdb, ids[1], limit=1)["records"][0]["seq"] == 4  # r0, r3, r6, then this one
        assert verify_chain(tdb, key=KEY).ok
    finally:
        tdb.dispose()


def test_a_backup_from_before_the_plant_calendar_and_refusal_counts_restores(settings, db, tmp_path):
    """A backup of the release before (no plant_calendar_days table, no usage ``calls``) restores whole and per
    tenant: it had failed with "db/plant_calendar_days.jsonl is missing from the backup" (review)."""
    from serving.usage import UsageEntry, append_entries

    acme = tenancy.get_tenant(db, make_tenant(db, PEPPER, "acme").name).id
    append_entries(db, [UsageEntry(ts=tenancy.utcnow(), tenant_id=acme, key_id="k1", module=None, method="GET",
                                   endpoint="/v1/usage", status=200, latency_us=5, request_id=f"r{i}")
                        for i in range(3)], key=KEY)
    (tmp_path / "b").mkdir()
    archive = backup(settings, db, tmp_path / "b" / "all.tar.gz").path

    def old_format(name: str, data: bytes) -> bytes | None:
        if name == "db/plant_calendar_days.jsonl":
            return None
        if name == "db/usage_log.jsonl":
            rows = [json.loads(line) for line in data.splitlines()]
            return b"".join(json.dumps({k: v for k, v in r.items() if k != "calls"}).encode() + b"\n" for r in rows)
        return data

    _rewrite(archive, tmp_path / "old.tar.gz", old_format)
    for scope in ("all", "acme"):
        target = settings.model_copy(update={"home": tmp_path / scope, "database_url":
                                             f"sqlite:///{tmp_path / f'{scope}.db'}"})
        target.ensure_home()
        tdb = Database(target.resolved_database_url)
        try:
            restore(target, tdb, tmp_path / "old.tar.gz", tenant=None if scope == "all" else "acme")
            assert verify_chain(tdb, key=KEY).ok
            records = query_usage(tdb, tenancy.get_tenant(tdb, "acme").id, limit=10)["records"]
            assert sorted(r["request_id"] for r in records) == ["r0", "r1", "r2"]
            assert {r["calls"] for r in records} == {1}
            assert read_days(tdb, tenancy.get_tenant(tdb, "acme").id) == ([], None)
        finally:
            tdb.dispose()


def test_a_failed_restore_keeps_the_files_that_were_there_and_never_overwrites_one(settings, db, tmp_path,
                                                                                  monkeypatch):
    """Moving a deployment to a new database on the same SFAI_HOME (the documented SQLite -> PostgreSQL move): a
    restore that failed, or was interrupted, deleted the feature and model files that were there before it, since
    its undo took away every file it had written over. It no longer writes over any file: one with the backup's
    bytes is left as it is (and kept by an undo), one with other bytes is refused before anything is written."""
    import serving.backup as bk

    _source_with_files_and_usage(settings, db)
    archive = backup(settings, db, tmp_path / "a.tar.gz").path
    sample = settings.home / "demo" / "acme" / "sample.csv"
    moved = Settings(home=settings.home, database_url=f"sqlite:///{tmp_path / 'new.db'}", environment="test",
                     secret_key=PEPPER)
    tdb = Database(moved.resolved_database_url)
    try:
        def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
            raise RuntimeError("interrupted")

        monkeypatch.setattr(bk, "_rebuild_online", boom)
        with pytest.raises(SfaiError, match="nothing was restored"):
            restore(moved, tdb, archive)
        assert sample.read_text() == "a,b\n1,2\n"  # was deleted by the undo
        monkeypatch.undo()
        sample.write_text("a,b\n1,3\n")  # changed since the backup: not overwritten, and nothing else written
        with pytest.raises(Conflict, match="exists and differs from the backup's copy"):
            restore(moved, tdb, archive)
        assert sample.read_text() == "a,b\n1,3\n"
        with pytest.raises(NotFound):
            tenancy.get_tenant(tdb, "acme")
        sample.write_text("a,b\n1,2\n")
        assert restore(moved, tdb, archive).tenants == ["acme"] and verify_chain(tdb, key=KEY).ok
    finally:
        tdb.dispose()


def test_restore_refuses_a_forged_tenant_and_a_second_restore_at_once(settings, db, tmp_path):
    """The archive's checksums are its own: an edited one whose tenant is named ``../../x`` (a name that becomes
    folders under SFAI_HOME) restored; and two restores at once both passed the empty-database check, the failing
    one undoing the other's files."""
    import fcntl

    _source_with_files_and_usage(settings, db)
    archive = backup(settings, db, tmp_path / "a.tar.gz").path
    target, tdb = _empty_deployment(tmp_path)
    try:
        for field, value in (("name", "../../x"), ("ksic_code", "C99")):
            forged = tmp_path / f"forged-{field}.tar.gz"
            _rewrite(archive, forged, lambda name, data, f=field, v=value: data if name != "db/tenants.jsonl" else
                     b"\n".join(json.dumps({**json.loads(line), f: v}).encode() for line in data.splitlines()))
            with pytest.raises(InvalidInput, match="the backup's tenant .* is refused"):
                restore(target, tdb, forged)
        assert not (tmp_path / "x").exists() and tenancy.list_tenants(tdb) == []
        with open(target.home / ".restore.lock", "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # another restore is running
            with pytest.raises(Conflict, match="another restore is running"):
                restore(target, tdb, archive)
        assert restore(target, tdb, archive).tenants == ["acme"]
    finally:
        tdb.dispose()


def _restore_held_at_the_online_store(sfai_env, archive: Path, tmp_path: Path, *args: str):  # noqa: ANN001, ANN202
    """``sfai admin restore ARCHIVE [ARGS]`` into a fresh deployment under ``tmp_path / "t"``, in a process of its
    own, held once its rows are committed (rebuilding the online store): (the process, the target's environment)."""
    import time

    marker = tmp_path / "rebuilding"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "import serving.backup as bk\n"
        "def slow(*a, **k):\n"
        f"    Path({str(marker)!r}).touch()\n"
        "    time.sleep(60)\n"
        "bk._rebuild_online = slow\n"
        "from serving.cli.main import run\n"
        f"sys.argv = ['sfai', 'admin', 'restore', {str(archive)!r}, *{list(args)!r}]\n"
        "run()\n"
    )
    target = {"SFAI_HOME": str(tmp_path / "t"), "SFAI_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}"}
    proc = subprocess.Popen([sys.executable, "-c", script], env={**sfai_env, **target}, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.stderr.read() if proc.poll() is not None else "the restore did not start")
        time.sleep(0.05)
    return proc, target


def test_a_restore_stopped_by_sigterm_is_undone_and_runs_again(sfai_env, settings, db, tmp_path):
    """``docker stop``, systemd and ``timeout`` send SIGTERM, which ended the process mid-restore without its undo:
    the tenants came back without their usage log, and the restore could not be run again."""
    import signal

    _source_with_files_and_usage(settings, db)
    archive = backup(settings, db, tmp_path / "a.tar.gz").path
    proc, target = _restore_held_at_the_online_store(sfai_env, archive, tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    tdb = Database(target["SFAI_DATABASE_URL"])
    try:
        assert tenancy.list_tenants(tdb) == []  # undone
        assert not (tmp_path / "t" / "demo" / "acme").exists()
        tsettings = Settings(home=tmp_path / "t", database_url=target["SFAI_DATABASE_URL"], environment="test",
                             secret_key=PEPPER)
        report = restore(tsettings, tdb, archive)  # and the same restore goes through
        assert report.rows["usage_log"] == 3 and verify_chain(tdb, key=KEY).ok
    finally:
        tdb.dispose()


@pytest.mark.parametrize("scope", ["all", "tenant"])
def test_a_restore_killed_with_sigkill_is_undone_by_the_next_one(sfai_env, settings, db, tmp_path, scope):
    """SIGKILL (the OOM killer, a power cut) gives a restore no chance to undo itself: the tenants stayed without
    their usage log and the same restore was refused ("already holds tenants"). Its journal now lets the next
    restore take away what it wrote, and then go through."""
    _source_with_files_and_usage(settings, db)
    archive = backup(settings, db, tmp_path / "a.tar.gz").path
    args = ("--tenant", "acme") if scope == "tenant" else ()
    proc, target = _restore_held_at_the_online_store(sfai_env, archive, tmp_path, *args)
    proc.kill()
    assert proc.wait(timeout=30) == -9
    tdb = Database(target["SFAI_DATABASE_URL"])
    tsettings = Settings(home=tmp_path / "t", database_url=target["SFAI_DATABASE_URL"], environment="test",
                         secret_key=PEPPER)
    try:
        assert [t.name for t in tenancy.list_tenants(tdb)] == ["acme"]  # left behind by the kill
        assert (tmp_path / "t" / ".restore.journal").exists()
        report = restore(tsettings, tdb, archive, tenant="acme" if scope == "tenant" else None)
        assert any("stopped before it finished (acme)" in w for w in report.warnings), report.warnings
        assert report.rows["usage_log"] == 3 and verify_chain(tdb, key=KEY).ok
        assert [t.name for t in tenancy.list_tenants(tdb)] == ["acme"]
        assert not (tmp_path / "t" / ".restore.journal").exists()  # a finished restore leaves nothing to undo
    finally:
        tdb.dispose()


def test_an_export_or_a_backup_never_overwrites_the_database(tmp_path):
    """``sfai usage export -o $SFAI_HOME/sfai.db`` wrote CSV over the live database (and ``admin backup ... --force``
    a tar.gz): the next command found 'file is not a database'."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(SFAI_HOME=str(home), SFAI_ENVIRONMENT="test", SFAI_SECRET_KEY=PEPPER)
    local = Settings(home=home, environment="test", secret_key=PEPPER)
    local.ensure_home()
    ldb = Database(local.resolved_database_url)
    try:
        make_tenant(ldb, PEPPER, "acme")
        database = home / "sfai.db"
        for args in (("usage", "export", "-o", str(database)), ("admin", "backup", str(database), "--force"),
                     ("usage", "export", "-o", str(home / "mlflow.db"))):
            r = run_sfai(*args, env=env)
            assert r.returncode == 1 and "where SFAI keeps its state" in r.stderr, r.stderr
            assert r.stderr.count("\n") == 1, r.stderr
        assert database.read_bytes()[:16] == b"SQLite format 3\x00" and tenancy.get_tenant(ldb, "acme").name == "acme"
    finally:
        ldb.dispose()


def test_a_backup_taken_while_the_server_writes_restores_and_verifies(settings, db, tmp_path, monkeypatch):
    """Each table was read in its own connection: calls logged and a tenant subscribed while a backup ran gave an
    archive with usage records past its chain head ("usage log tampered" after restore) or a subscription of a
    tenant it did not hold (the restore failed on a foreign key). All tables are now read in one snapshot."""
    import serving.backup as bk
    from serving.usage import UsageEntry, append_entries

    _source_with_files_and_usage(settings, db)
    tid = tenancy.get_tenant(db, "acme").id
    real, writes = bk._rows, []

    def rows_while_writing(conn, table, where=None):  # noqa: ANN001, ANN202
        out = real(conn, table, where)
        if not writes:  # after the first table: the server goes on logging calls and a tenant subscribes
            writes.append(1)
            append_entries(db, [UsageEntry(ts=tenancy.utcnow(), tenant_id=tid, key_id="k1", module="quality",
                                           method="GET", endpoint="/v1/quality/status", status=200, latency_us=5,
                                           request_id=f"live{i}") for i in range(5)], key=KEY)
            make_tenant(db, PEPPER, "late", modules=("quality",))
        return out

    monkeypatch.setattr(bk, "_rows", rows_while_writing)
    archive = backup(settings, db, tmp_path / "live.tar.gz").path
    monkeypatch.undo()
    assert writes
    target, tdb = _empty_deployment(tmp_path)
    try:
        report = restore(target, tdb, archive)
        assert report.tenants == ["acme"] and report.rows["usage_log"] == 3  # as of the backup's moment
        assert verify_chain(tdb, key=KEY).ok
    finally:
        tdb.dispose()


def test_a_backup_written_into_a_tenants_folder_does_not_hold_itself(settings, db, tmp_path):
    _source_with_files_and_usage(settings, db)
    out = settings.home / "demo" / "acme" / "b.tar.gz"
    backup(settings, db, out)
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "files/demo/acme/sample.csv" in names and not [n for n in names if ".sfai-backup-" in n], names
