"""Engine construction and Alembic migrations, run on start."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from serving.settings import private_file

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
log = logging.getLogger("sfai.db")
_migrate_lock = threading.Lock()
MIGRATION_LOCK_KEY = 0x5F41_0001  # SFAI's advisory lock for migrations (any other user of the database: another key)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for ``postgresql://`` URLs (the driver SFAI installs), and read ``postgres://`` (what Heroku,
    Render and others hand out) as ``postgresql://``."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    u = make_url(url)
    if (
        u.get_backend_name() == "postgresql"
        and u.get_driver_name() in ("", "psycopg2")
        and "+" not in url.split(":", 1)[0]
    ):
        u = u.set(drivername="postgresql+psycopg")
    return u.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if is_sqlite(url):
        db_path = make_url(url).database
        if db_path and db_path != ":memory:":
            private_file(Path(db_path))
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # NORMAL (with WAL): a committed usage record survives a killed process; a power cut may lose the
            # last commits. FULL would also cover that, at an fsync per group commit; where power-loss
            # durability matters, run on PostgreSQL.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    """Processes migrating one SQLite file take turns (a lock file next to it): two first starts at once both
    found no tables, and the second failed on "table tenants already exists"."""
    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    import fcntl

    with open(f"{path}.migrate-lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield  # the lock goes with the file's closing


class SchemaMismatch(Exception):
    """The database's schema is not the one this release needs, and this process may not change it: one line for
    the operator, saying which way and what to run."""


def migrate(engine: Engine, *, upgrade: bool = True) -> tuple[str | None, str]:
    """Bring the schema to the latest Alembic revision (idempotent, safe to call on every start). A new, empty
    database is always created. ``upgrade=False`` (the CLI's commands but ``serve``, ``demo`` and ``db migrate``):
    an existing database behind this release is refused with :class:`SchemaMismatch` instead of migrated: ``sfai
    tenant list`` run with a new release while the old release's servers still ran had migrated their database
    under them, and their later usage records made the log fail verification (operator's audit). A database that a
    newer release migrated is refused either way, saying so (it was alembic's "Can't locate revision").
    Returns (the revision found, the release's newest): equal where nothing was migrated; a migration is logged."""
    newest = head_revision()
    if _schema_is_current(engine, newest):  # every start but the first after an upgrade: no Alembic (~0.2 s a command)
        return newest, newest
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg, script = _alembic()
    head = script.get_current_head()
    with _migrate_lock, _sqlite_file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # replicas started together on an empty database: one migrates, the others wait for it and find the
            # schema current (each creating alembic_version at once failed all but one on a unique index)
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        current = MigrationContext.configure(conn).get_current_revision()
        if current is not None and current != head:
            if current not in known_revisions():
                raise SchemaMismatch(f"the database's schema is at revision {current}, newer than this SFAI release "
                                     f"knows (its newest: {head}): a newer release migrated it; run that release")
            if not upgrade:
                raise SchemaMismatch(f"the database's schema is at revision {current} and this SFAI release needs "
                                     f"{head}: stop the servers of the older release, then run 'sfai db migrate' "
                                     "(or start 'sfai serve'), as docs/deploy.md says for upgrades")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    if current != head:
        log.info("database schema migrated from revision %s to %s", current or "(empty)", head)
    return current, head


def head_revision() -> str:
    """This release's newest schema revision, read from the migration files' names without importing Alembic: each
    file ``NNNN_<what>.py`` holds revision ``NNNN`` after ``NNNN - 1`` (tests/serving/test_migrations.py checks that
    this is Alembic's head)."""
    return max(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def _schema_is_current(engine: Engine, newest: str) -> bool:
    """Whether the database's schema is at ``newest`` (this release's), read with one query. Anything else (no
    schema yet, an older or newer one, a database that cannot be read) is False: :func:`migrate` then does its whole
    work and says what it found."""
    from sqlalchemy.exc import DBAPIError

    try:
        with engine.connect() as conn:
            found = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    except DBAPIError:
        return False
    return found == [newest]


def schema_revisions(engine: Engine) -> tuple[str | None, str]:
    """(the database's schema revision, this release's newest), read without changing anything."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, _alembic()[1].get_current_head()


def known_revisions() -> set[str]:
    """Every schema revision this release's migrations know."""
    return {r.revision for r in _alembic()[1].walk_revisions()}


def _alembic():  # noqa: ANN202
    """Alembic's configuration and script directory of SFAI's migrations."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg, ScriptDirectory.from_config(cfg)


class Database:
    """An engine plus a session factory; one per process (and per test)."""

    def __init__(self, url: str, *, run_migrations: bool = True, upgrade: bool = True) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.revisions: tuple[str | None, str] | None = None  # (found, now) where this process ran the migration
        if run_migrations:
            try:
                self.revisions = migrate(self.engine, upgrade=upgrade)
            except BaseException:
                self.engine.dispose()
                raise

    @functools.cached_property
    def is_sqlite(self) -> bool:  # asked on every usage commit: parse the URL once
        return is_sqlite(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - readiness only reports
            return False

    def dispose(self) -> None:
        self.engine.dispose()
