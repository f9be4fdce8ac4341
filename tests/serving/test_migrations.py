"""The Alembic revisions and the table mappings describe the same schema, on SQLite and PostgreSQL."""

import time

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from serving.db import Database
from serving.db.engine import MIGRATIONS_DIR, make_engine, normalize_url
from serving.db.tables import Base
from serving.usage import GENESIS, ChainKey, append_entries, chain_hash, verify_chain
from tests.serving.helpers import KEY
from tests.serving.test_usage_log import entry, unguard
from tests.sfai_cli import run_sfai


def test_migrated_schema_matches_the_mappings(db):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    tables = set(inspect(db.engine).get_table_names())
    assert {"tenants", "modules", "subscriptions", "api_keys", "usage_log", "usage_chain", "alembic_version"} <= tables


def test_migrations_are_idempotent_on_start(settings, db):
    again = Database(settings.resolved_database_url)  # what every process start does
    with again.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
    again.dispose()


def _head() -> str:
    """The latest migration: the one head of a single line of revisions, each file named by its revision."""
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    script = ScriptDirectory.from_config(cfg)
    revisions = list(script.walk_revisions())
    assert all(r.path.rsplit("/", 1)[-1].startswith(f"{r.revision}_") for r in revisions)
    return script.get_current_head()  # raises where two revisions both claim to be the latest


HEAD = _head()


def test_a_start_on_a_current_schema_reads_its_revision_without_alembic(settings, db, tmp_path):
    """Every CLI command opens the database: on a current schema that is one query, not Alembic's import and no-op
    upgrade (0.2 s of each command). The revision read from the files' names is Alembic's head."""
    import subprocess
    import sys

    from serving.db.engine import head_revision

    assert head_revision() == HEAD
    probe = ("import sys; from serving.db import Database; d = Database(sys.argv[1]); "
             "print(d.revisions, 'alembic' in sys.modules); d.dispose()")
    run = [sys.executable, "-c", probe, settings.resolved_database_url]
    current = subprocess.run(run, capture_output=True, text=True, timeout=60)
    assert current.stdout.split() == [f"('{HEAD}',", f"'{HEAD}')", "False"], current.stderr
    # a schema behind this release still migrates (Alembic then runs), and says what it found
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = make_engine(url)
    _upgrade(old, "0017")
    old.dispose()
    behind = subprocess.run(run[:-1] + [url], capture_output=True, text=True, timeout=60)
    assert behind.stdout.split() == ["('0017',", f"'{HEAD}')", "True"], behind.stderr


def test_0011_keeps_the_jobs_already_made_without_a_key(settings):
    """Jobs from before idempotency keys keep running and reading back: their key and request hash are null, and
    two of them (null keys) do not collide in the tenant's unique index."""
    url = normalize_url(settings.resolved_database_url)
    engine = make_engine(url)
    _upgrade(engine, "0010")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, display_name, ksic_code, created_at) "
                          "VALUES (1, 'acme', 'Acme', 'C29', :ts)"), {"ts": "2026-12-01 00:00:00"})
        for job in ("a" * 32, "b" * 32):
            conn.execute(text("INSERT INTO scheduling_jobs (id, tenant_id, status, request, created_at) VALUES "
                              "(:id, 1, 'done', '{}', :ts)"), {"id": job, "ts": "2026-12-01 00:00:00"})
    _upgrade(engine, "0011")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, idempotency_key, request_hash FROM scheduling_jobs ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("a" * 32, None, None), ("b" * 32, None, None)]
    engine.dispose()


def _upgrade(engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_0005_numbers_existing_usage_records_per_tenant(settings):
    """A log written before per-tenant numbers: each tenant's records are numbered 1, 2, ... in log order, the
    heads hold the last numbers, the append-only guard is back, and new records go on from the heads."""
    url = normalize_url(settings.resolved_database_url)
    engine = make_engine(url)
    _upgrade(engine, "0004")
    order = [1, 2, 1, 1, 3, 2, 1]  # tenants of the rows, interleaved
    with engine.begin() as conn:
        for i, tid in enumerate(order, start=1):
            conn.execute(
                text(
                    "INSERT INTO usage_log (seq, ts, tenant_id, key_id, module, method, endpoint, status, latency_us, "
                    "request_id, prev_hash, hash) VALUES (:s, :ts, :t, 'k', NULL, 'GET', '/v1/usage', 200, 1, "
                    ":r, 'p', 'h')"
                ),
                {"s": i, "ts": "2026-12-01 00:00:00", "t": tid, "r": f"r{i}"},
            )
        conn.execute(text("UPDATE usage_chain SET last_seq = :n, last_hash = 'h'"), {"n": len(order)})
    _upgrade(engine, "head")
    with engine.connect() as conn:
        numbers = conn.execute(text("SELECT tenant_id, tenant_seq FROM usage_log ORDER BY seq")).all()
        heads = dict(conn.execute(text("SELECT tenant_id, last_seq FROM usage_tenant_heads")).all())
    assert [tuple(r) for r in numbers] == [(1, 1), (2, 1), (1, 2), (1, 3), (3, 1), (2, 2), (1, 4)]
    assert heads == {1: 4, 2: 2, 3: 1}
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE usage_log SET status = 500 WHERE seq = 1"))
    engine.dispose()
    db = Database(url)
    append_entries(db, [entry(0, tenant_id=2), entry(1, tenant_id=4)], key=KEY)
    with db.engine.connect() as conn:
        new = conn.execute(text("SELECT tenant_id, tenant_seq FROM usage_log WHERE seq > 7 ORDER BY seq")).all()
    assert [tuple(r) for r in new] == [(2, 3), (4, 1)]
    db.dispose()


def test_0006_marks_existing_subscriptions_with_operator_terms(settings):
    """Rows whose quota differs from their plan's, or whose end is still to come, become operator-managed; plain
    rows and rows already ended (a tenant's own unsubscribe looks the same) stay the tenant admin's."""
    url = normalize_url(settings.resolved_database_url)
    engine = make_engine(url)
    _upgrade(engine, "0005")
    rows = {  # id: (plan, quota, ends_at)
        1: ("trial", 10_000, None),
        2: ("trial", 500, None),
        3: ("standard", None, None),
        4: ("enterprise", None, None),
        5: ("enterprise", 7, None),
        6: ("standard", 1_000_000, "2099-01-01 00:00:00"),
        7: ("standard", 1_000_000, "2020-01-01 00:00:00"),
    }
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO tenants (id, name, display_name, ksic_code, created_at) "
                          "VALUES (1, 'acme', 'Acme', 'C24', '2019-01-01 00:00:00')"))
        for i, (plan, quota, ends) in rows.items():
            conn.execute(
                text("INSERT INTO subscriptions (id, tenant_id, module, plan, request_quota, starts_at, ends_at, "
                     "created_at) VALUES (:i, 1, 'energy', :p, :q, '2019-01-01 00:00:00', :e, '2019-01-01 00:00:00')"),
                {"i": i, "p": plan, "q": quota, "e": ends},
            )
    _upgrade(engine, "head")
    with engine.connect() as conn:
        marked = {i for i, m in conn.execute(text("SELECT id, operator_managed FROM subscriptions")).all() if m}
    assert marked == {2, 3, 5, 6}
    engine.dispose()


def _old_records(conn, url: str, n: int, hash_of) -> str:  # noqa: ANN001
    """Records 1..n of tenant 1 written as an older release wrote them (``hash_of(prev, seq, entry)``), with the
    tenant's head; returns the last hash."""
    prev = GENESIS
    for seq in range(1, n + 1):
        e = entry(seq)
        h = hash_of(prev, seq, e)
        conn.execute(
            text("INSERT INTO usage_log (seq, ts, tenant_id, key_id, module, method, endpoint, status, latency_us, "
                 "model_version, request_id, prev_hash, hash, tenant_seq) VALUES (:s, :ts, :t, :k, :m, :me, :en, "
                 ":st, :l, :mv, :r, :p, :h, :s)"),
            {"s": seq, "ts": e.ts.strftime("%Y-%m-%d %H:%M:%S.%f") + ("" if url.startswith("sqlite") else "+00"),
             "t": e.tenant_id, "k": e.key_id, "m": e.module, "me": e.method,
             "en": e.endpoint, "st": e.status, "mv": e.model_version, "l": e.latency_us, "r": e.request_id,
             "p": prev, "h": h},
        )
        prev = h
    conn.execute(text("INSERT INTO usage_tenant_heads (tenant_id, last_seq) VALUES (1, :n)"), {"n": n})
    return prev


def test_0010_keys_the_usage_chain_after_the_records_already_written(settings):
    """Records written before the chain was keyed keep their plain SHA-256 hashes and still verify; records from
    the upgrade on are keyed, and the first of them signs where keyed records start."""
    url = normalize_url(settings.resolved_database_url)
    engine = make_engine(url)
    _upgrade(engine, "0009")
    with engine.begin() as conn:
        prev = _old_records(conn, url, 3, lambda prev, seq, e: chain_hash(prev, seq, e, key=None))
        conn.execute(text("UPDATE usage_chain SET last_seq = 3, last_hash = :h"), {"h": prev})
    _upgrade(engine, "head")
    engine.dispose()
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            assert tuple(conn.execute(text("SELECT keyed_from, keyed_mark FROM usage_chain")).one()) == (4, None)
        r = verify_chain(db, key=KEY)
        assert (r.ok, r.rows, r.keyed_from) == (True, 3, 4), r
        append_entries(db, [entry(4), entry(5)], key=KEY)
        r = verify_chain(db, key=KEY)
        assert (r.ok, r.rows, r.keyed_from) == (True, 5, 4)
        from serving.db.tables import UsageRecord

        with db.engine.connect() as conn:
            rows = conn.execute(select(UsageRecord.__table__).order_by(UsageRecord.seq)).all()
        fourth = rows[3]  # the first record after the upgrade: keyed, not plain
        assert fourth.hash == chain_hash(rows[2].hash, 4, fourth, key=KEY) != chain_hash(rows[2].hash, 4, fourth,
                                                                                          key=None)
        assert rows[2].hash == chain_hash(rows[1].hash, 3, rows[2], key=None)  # from before it: plain
        assert not verify_chain(db, key=ChainKey("another-secret-0123456789")).ok
    finally:
        db.dispose()


def test_processes_starting_together_on_an_empty_database_all_migrate(db_url, tmp_path):
    """Replicas (or `sfai db migrate` in a deploy script beside a starting server) on a database that is still
    empty: each found no tables and created them, and all but one failed (PostgreSQL: a unique index on
    alembic_version's type; SQLite: "table tenants already exists"). They now take turns."""
    import subprocess
    import sys

    go = tmp_path / "go"
    script = (
        "import pathlib, sys, time\n"
        "from serving.db.engine import make_engine, migrate\n"
        "engine = make_engine(sys.argv[1])\n"
        "while not pathlib.Path(sys.argv[2]).exists():\n"
        "    time.sleep(0.001)\n"
        "migrate(engine)\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, db_url, str(go)], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    time.sleep(3)  # every process imported and waiting: they start migrating at once
    go.touch()
    results = [(p.wait(timeout=120), p.stderr.read()[-500:]) for p in procs]
    for p in procs:
        p.stderr.close()
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
    engine.dispose()


def test_a_postgres_url_reads_as_postgresql():
    """``postgres://`` is what several hosting providers hand out; SQLAlchemy knows only ``postgresql``."""
    from sqlalchemy.engine import make_url

    url = make_url(normalize_url("postgres://u:p@db:5432/sfai"))
    assert (url.get_backend_name(), url.get_driver_name(), url.host, url.database) == ("postgresql", "psycopg", "db",
                                                                                        "sfai")


def test_only_serve_demo_and_db_migrate_upgrade_an_older_schema(settings, sfai_env):
    """``sfai tenant list`` of a new release, run while the old release's servers still ran, migrated their database
    under them (operator's audit). The CLI's other commands now refuse an older schema in one line, naming the way
    out; ``sfai db migrate`` upgrades it; a schema newer than the release knows is refused, saying a newer release
    migrated it (it was alembic's "Can't locate revision")."""
    import subprocess

    from serving.db.engine import SchemaMismatch

    engine = make_engine(normalize_url(settings.resolved_database_url))
    _upgrade(engine, "0011")

    def run(*args: str) -> subprocess.CompletedProcess:
        return run_sfai(*args, env=sfai_env)

    r = run("tenant", "list")
    assert r.returncode == 1 and r.stderr.strip() == (
        f"error: the database's schema is at revision 0011 and this SFAI release needs {HEAD}: stop the servers of "
        "the older release, then run 'sfai db migrate' (or start 'sfai serve'), as docs/deploy.md says for upgrades")
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0011"  # untouched
    with pytest.raises(SchemaMismatch):
        Database(settings.resolved_database_url, upgrade=False).dispose()
    # what a deploy script checks first, and what a migration did: said (operator's audit: nothing reported it)
    from importlib.metadata import version

    from serving import __version__

    assert run("--version").stdout == f"sfai {__version__}\n" and __version__ == version("sfai")  # pyproject's
    r = run("db", "status")
    assert r.returncode == 1 and f"schema revision 0011; this release ({__version__}) needs {HEAD}" in r.stdout, \
        r.stdout
    assert r.stderr.strip().splitlines() == ["error: the schema is behind this release: stop the older release's "
                                             "servers, then run 'sfai db migrate'"]
    r = run("db", "migrate")
    assert r.returncode == 0 and f"schema migrated from revision 0011 to {HEAD}" in r.stderr, r.stderr
    r = run("db", "migrate")
    assert r.returncode == 0 and f"schema already at revision {HEAD}" in r.stderr, r.stderr
    assert run("db", "status").returncode == 0
    assert run("tenant", "list").returncode == 0
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    r = run("tenant", "list")
    assert r.returncode == 1 and "at revision 0099, newer than this SFAI release knows" in r.stderr, r.stderr
    assert "newer than this release" in run("db", "status").stderr
    with pytest.raises(SchemaMismatch, match="a newer release migrated it"):
        Database(settings.resolved_database_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE alembic_version SET version_num = '{HEAD}'"))
    engine.dispose()


def test_each_database_draws_its_own_deployment_id_and_postgres_refuses_truncate(db, settings, tmp_path):
    from serving.usage import deployment_id

    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        assert deployment_id(db) != deployment_id(other)
        assert deployment_id(db) == deployment_id(Database(settings.resolved_database_url))  # kept, not redrawn
    finally:
        other.dispose()
    if db.is_sqlite:
        return  # no TRUNCATE in SQLite; its delete trigger keeps three years (test_usage_log)
    with pytest.raises(DBAPIError, match="TRUNCATE is refused"), db.engine.begin() as conn:
        conn.execute(text("TRUNCATE usage_log CASCADE"))


def test_0014_keeps_the_records_already_written_as_single_calls(settings):
    """Records written before ``calls``, hashed as SFAI hashed them then, stand for one call each and still verify;
    a record of collapsed refusals written after hashes its count, so changing the count breaks the chain."""
    url = normalize_url(settings.resolved_database_url)
    engine = make_engine(url)
    _upgrade(engine, "0013")
    def hash_0013(prev: str, seq: int, e) -> str:  # the payload of 0013: no count
        ts = e.ts.isoformat(timespec="microseconds")[:26] + "Z"
        return KEY.hex(
            f"{prev}\x1e{seq}\x1f{ts}\x1f{e.tenant_id}\x1f{e.key_id}\x1f{e.module}\x1f{e.method}\x1f{e.endpoint}"
            f"\x1f{e.status}\x1f{e.latency_us}\x1f{e.model_version}\x1f{e.request_id}".encode())

    with engine.begin() as conn:
        prev = _old_records(conn, url, 2, hash_0013)
        conn.execute(text("UPDATE usage_chain SET last_seq = 2, last_hash = :h, keyed_from = 1, keyed_mark = :m"),
                     {"h": prev, "m": KEY.mark(1)})
    _upgrade(engine, "head")
    engine.dispose()
    db = Database(url)
    try:
        assert verify_chain(db, key=KEY).rows == 2 and verify_chain(db, key=KEY).ok
        refused = entry(3)
        refused.status, refused.calls = 429, 37
        append_entries(db, [refused], key=KEY)
        with db.engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text("SELECT seq, calls FROM usage_log ORDER BY seq"))] == [
                (1, 1), (2, 1), (3, 37)]
        r = verify_chain(db, key=KEY)
        assert (r.ok, r.rows) == (True, 3), r
        with db.engine.begin() as conn:
            unguard(db, conn)
            conn.execute(text("UPDATE usage_log SET calls = 3 WHERE seq = 3"))
        r = verify_chain(db, key=KEY)
        assert not r.ok and r.seq == 3 and "modified" in r.problem, r
    finally:
        db.dispose()


def test_0016_the_quota_count_reads_its_index_alone_and_an_uncounted_record_is_chained(settings):
    """A read of a module's status is recorded as not counted, which the chain hashes (made counted, it breaks the
    chain), and the quota's count leaves it out from the index alone (SQLite: a covering index; PostgreSQL: an
    index-only scan), as migration 0009 had made it; records of before 0016 stay counted."""
    from datetime import timedelta

    from sqlalchemy.dialects import postgresql, sqlite

    from serving.db.tables import UsageRecord
    from serving.usage import count_calls

    url = normalize_url(settings.resolved_database_url)
    db = Database(url)
    try:
        read = entry(2)
        read.method, read.endpoint, read.counted = "GET", "/v1/quality/status", False
        append_entries(db, [entry(1), read, entry(3)], key=KEY)
        since = entry(0).ts - timedelta(days=1)
        assert count_calls(db, 1, "quality", since) == 2
        with db.engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text("SELECT seq, counted FROM usage_log ORDER BY seq"))] == [
                (1, True), (2, False), (3, True)]
            t = UsageRecord.__table__
            stmt = select(func.count()).where(t.c.tenant_id == 1, t.c.module == "quality", t.c.ts >= since,
                                         t.c.status.notin_((403, 429)), t.c.status < 500, t.c.counted)
            if db.is_sqlite:
                sql = str(stmt.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
                plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
                assert "COVERING INDEX ix_usage_log_tenant_module_ts" in plan, plan
            else:
                sql = str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
                for scan in ("seqscan", "indexscan", "bitmapscan"):  # left: a scan of an index that holds it all
                    conn.execute(text(f"SET enable_{scan} = off"))
                plan = " ".join(r[0] for r in conn.execute(text(f"EXPLAIN {sql}")))
                assert "Index Only Scan using ix_usage_log_tenant_module_ts" in plan, plan
        assert verify_chain(db, key=KEY).ok
        with db.engine.begin() as conn:
            unguard(db, conn)
            conn.execute(text("UPDATE usage_log SET counted = true WHERE seq = 2"))
        r = verify_chain(db, key=KEY)
        assert not r.ok and r.seq == 2 and "modified" in r.problem, r
    finally:
        db.dispose()
