"""Migration 0017 (``api_keys.expires_at``, ``modules``, ``last_used_at``) on a database whose keys were made
before it, and backups: the new columns travel, and a backup written before them restores (whole and per tenant)
with keys that work as they did. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text

from serving import tenancy
from serving.backup import backup, restore
from serving.db import Database
from serving.db.engine import MIGRATIONS_DIR, make_engine, normalize_url
from tests.serving.helpers import TEST_SECRET, make_tenant
from tests.serving.test_backup import _rewrite
from tests.serving.test_migrations import _upgrade

NEW_COLUMNS = ("expires_at", "modules", "last_used_at")


def test_0017_adds_the_columns_and_the_keys_made_before_keep_working(settings):
    url = normalize_url(settings.resolved_database_url)
    engine = make_engine(url)
    _upgrade(engine, "0016")
    secret = secrets.token_urlsafe(24).replace("_", "-")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (name, display_name, ksic_code, created_at) "
                          "VALUES ('acme', 'Acme', 'C24', :t)"), {"t": now})
        for i, (key_id, revoked) in enumerate([("k0123456789ab", None), ("kba9876543210", now)]):
            conn.execute(text("INSERT INTO api_keys (key_id, tenant_id, name, role, secret_hash, created_at, "
                              "revoked_at) VALUES (:k, (SELECT id FROM tenants WHERE name = 'acme'), :n, 'mes', :h, "
                              ":t, :r)"),
                         {"k": key_id, "n": f"old-{i}", "h": tenancy.hash_secret(TEST_SECRET, secret),
                          "t": now, "r": revoked})
    assert not set(NEW_COLUMNS) & {c["name"] for c in inspect(engine).get_columns("api_keys")}
    _upgrade(engine, "head")
    assert set(NEW_COLUMNS) <= {c["name"] for c in inspect(engine).get_columns("api_keys")}
    engine.dispose()
    db = Database(url)
    try:
        ctx = tenancy.resolve_api_key(db, TEST_SECRET, f"sfai_k0123456789ab_{secret}")
        assert ctx is not None and ctx.expires_at is None and ctx.modules is None  # no expiry, every module
        assert tenancy.resolve_api_key(db, TEST_SECRET, f"sfai_kba9876543210_{secret}") is None  # still revoked
        keys = {k.key_id: k for k in tenancy.list_api_keys(db, "acme")}
        assert [(k.expires_at, k.modules, k.last_used_at) for k in keys.values()] == [(None, None, None)] * 2
        assert keys["k0123456789ab"].state_at(now) == "active" and keys["kba9876543210"].state_at(now) == "revoked"
        # the new columns take values, and the UPDATE that moves a last use forward runs on this database
        new = tenancy.create_api_key(db, TEST_SECRET, "acme", "mes", expires_at="2099-01-01", modules=["quality"])
        use = tenancy_key_use(db)
        use.touch("k0123456789ab")
        assert use.flush() == 1
        keys = {k.key_id: k for k in tenancy.list_api_keys(db, "acme")}
        assert keys["k0123456789ab"].last_used_at is not None
        assert keys[new.info.key_id].modules == ("quality",)
        assert keys[new.info.key_id].expires_at == datetime(2099, 1, 2, tzinfo=UTC)
    finally:
        db.dispose()
    # and back down
    engine = make_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0016")
    assert not set(NEW_COLUMNS) & {c["name"] for c in inspect(engine).get_columns("api_keys")}
    engine.dispose()


def tenancy_key_use(db):  # noqa: ANN001, ANN201
    from serving.access import KeyUse

    return KeyUse(db)


def _target(settings, tmp_path, name: str):  # noqa: ANN001, ANN202
    target = settings.model_copy(update={"home": tmp_path / name, "database_url":
                                         f"sqlite:///{tmp_path / f'{name}.db'}"})
    target.ensure_home()
    return target, Database(target.resolved_database_url)


def test_backups_carry_expiry_scope_and_last_use_and_an_older_backup_restores(settings, db, tmp_path):
    keys = make_tenant(db, TEST_SECRET, "acme", modules=("quality", "energy"))
    scoped = tenancy.create_api_key(db, TEST_SECRET, "acme", "mes", "scoped", expires_at="2099-03-31",
                                    modules=["energy"])
    used = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE api_keys SET last_used_at = :t WHERE key_id = :k"),
                     {"t": used, "k": scoped.info.key_id})
    (tmp_path / "b").mkdir()
    archive = backup(settings, db, tmp_path / "b" / "all.tar.gz").path

    def old_format(name: str, data: bytes) -> bytes | None:
        if name == "db/api_keys.jsonl":  # as the release before 0017 wrote it
            rows = [json.loads(line) for line in data.splitlines()]
            assert rows and all(set(NEW_COLUMNS) <= set(r) for r in rows)
            return b"".join(json.dumps({k: v for k, v in r.items() if k not in NEW_COLUMNS}).encode() + b"\n"
                            for r in rows)
        return data

    _rewrite(archive, tmp_path / "old.tar.gz", old_format)
    for name, source, scope in [("new-all", archive, None), ("new-one", archive, "acme"),
                                ("old-all", tmp_path / "old.tar.gz", None), ("old-one", tmp_path / "old.tar.gz",
                                                                              "acme")]:
        target, tdb = _target(settings, tmp_path, name)
        try:
            restore(target, tdb, source, tenant=scope)
            restored = {k.key_id: k for k in tenancy.list_api_keys(tdb, "acme")}
            assert set(restored) == {keys.admin_key_id, tenancy.key_id_of(keys.mes), scoped.info.key_id}
            ctx = tenancy.resolve_api_key(tdb, TEST_SECRET, scoped.token)
            assert ctx is not None, name
            k = restored[scoped.info.key_id]
            if name.startswith("new"):
                assert (k.expires_at, k.modules, k.last_used_at) == (
                    datetime(2099, 4, 1, tzinfo=UTC), ("energy",), used)
                assert ctx.modules == frozenset({"energy"})
            else:  # a key of a backup made before: no expiry, every module, no last use recorded
                assert (k.expires_at, k.modules, k.last_used_at) == (None, None, None)
                assert ctx.modules is None and ctx.expires_at is None
        finally:
            tdb.dispose()


def test_two_processes_flushing_in_either_order_keep_the_later_time(db):
    """Two processes' flushes in either order leave the later time (the UPDATE's guard)."""
    keys = make_tenant(db, TEST_SECRET, "acme")
    a, b = tenancy_key_use(db), tenancy_key_use(db)
    t = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    a.touch(keys.admin_key_id, at=(t + timedelta(seconds=30)).timestamp())
    b.touch(keys.admin_key_id, at=t.timestamp())
    assert a.flush() == 1 and b.flush() == 1
    assert {k.key_id: k for k in tenancy.list_api_keys(db, "acme")}[keys.admin_key_id].last_used_at == \
        t + timedelta(seconds=30)
