"""Backup and restore of a deployment, or of one tenant: ``sfai admin backup`` / ``sfai admin restore``.

A backup is one ``.tar.gz``:

- ``manifest.json``: format, scope (``all`` or a tenant), time, schema revision, row counts, a fingerprint of
  the secret the API keys were hashed with, and the SHA-256 of every other member;
- ``db/<table>.jsonl``: the metadata database, row by row (tenants, subscriptions, hashed API keys, feature
  view declarations, model versions and alias history, scheduling jobs, the usage log with its hash chain),
  portable between SQLite and PostgreSQL;
- ``files/models/<tenant>/...``: the registered ONNX models and manifests; ``files/features/<tenant>/...``:
  the offline feature store (Parquet). The online store is rebuilt from it on restore.

``restore`` of scope ``all`` needs an empty database (a new deployment, or one being moved from SQLite to
PostgreSQL) and gives back every row as it was, ids and usage hash chain included (``sfai usage verify``
passes). ``restore --tenant T`` brings one tenant into a deployment that does not hold it: its rows get the
target's ids, and its usage records are appended to the target's hash chain with their original times and
their numbers in the tenant's own log (the archive keeps the original hashes).

MLflow runs (experiment tracking) are not part of it: back up the MLflow server's store by its own means.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import io
import json
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NoReturn

from sqlalchemy import Date, DateTime, Integer, delete, func, insert, select, text

from serving.calendar_store import PlantCalendarDay
from serving.db import Database
from serving.db.tables import (
    ApiKey,
    FeatureViewRecord,
    FeatureViewState,
    ModelAliasEvent,
    ModelVersionRecord,
    Module,
    SchedulingJob,
    Subscription,
    Tenant,
    UsageChain,
    UsageRecord,
    UsageTenantHead,
)
from serving.errors import Conflict, InvalidInput, NotFound, SfaiError, shown
from serving.settings import Settings
from serving.tenancy import as_utc, check_ksic, check_tenant_name, get_tenant, tenant_key
from serving.usage import ChainKey, UsageEntry, append_entries

FORMAT = 1
# In foreign-key order. Tables whose rows belong to a tenant carry ``tenant_id``.
TENANT_TABLES = (Subscription, ApiKey, FeatureViewRecord, FeatureViewState, ModelVersionRecord, ModelAliasEvent,
                 SchedulingJob, PlantCalendarDay)
USAGE_TABLES = (UsageRecord, UsageChain, UsageTenantHead)  # restored last, in one transaction
LATER_TABLES = (UsageTenantHead, PlantCalendarDay)  # tables a backup of an earlier release may lack
ALL_TABLES = (Module, Tenant, *TENANT_TABLES, *USAGE_TABLES)
FILE_AREAS = ("models", "features", "demo")  # under SFAI_HOME/<area>/<tenant>/ (demo: the sample data)
USAGE_BATCH = 5000
# what a restore has written so far, one JSON line per step, written (and synced) before the step: a restore killed
# with SIGKILL (or by a power cut) cannot run its undo, so the next restore on this SFAI_HOME runs it from here
JOURNAL = ".restore.journal"


@dataclass
class BackupReport:
    path: Path
    scope: str
    tenants: list[str]
    rows: dict[str, int]
    files: int
    bytes: int


@dataclass
class RestoreReport:
    scope: str
    tenants: list[str]
    rows: dict[str, int]
    files: int
    online_rows: int
    warnings: list[str] = field(default_factory=list)


def key_fingerprint(pepper: str) -> str:
    """Says whether two deployments hash API keys with the same secret, without revealing it."""
    return hmac.new(pepper.encode(), b"sfai-backup-fingerprint", hashlib.sha256).hexdigest()[:16]


def _encode(value):  # noqa: ANN001, ANN202
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):  # a plant calendar's day
        return value.isoformat()
    return value


def _row(row) -> dict:  # noqa: ANN001 - a SQLAlchemy Row
    return {k: _encode(v) for k, v in row._mapping.items()}


def _rows(conn, table, where=None) -> list[dict]:  # noqa: ANN001
    t = table.__table__
    stmt = select(t)
    if where is not None:
        stmt = stmt.where(where)
    pk = list(t.primary_key.columns)
    return [_row(r) for r in conn.execute(stmt.order_by(*pk))]


@contextlib.contextmanager
def _snapshot(db: Database):  # noqa: ANN202
    """One connection that reads the database as of one moment, so that the tables of a backup agree while the
    server goes on writing (read one by one, a live backup held usage records past its chain head, or a
    subscription of a tenant it did not hold, and could not be restored)."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # the driver opens no transaction for reads; WAL pins the first read's view
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.begin()
        try:
            yield conn
        finally:
            conn.rollback()


def _decode(table, row: dict) -> dict:  # noqa: ANN001
    out = {}
    for col in table.__table__.columns:
        if col.name not in row:
            continue
        v = row[col.name]
        if v is not None and isinstance(col.type, DateTime):
            v = as_utc(datetime.fromisoformat(v))
        elif v is not None and isinstance(col.type, Date):
            v = date.fromisoformat(v)
        out[col.name] = v
    return out


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, digests: dict[str, str]) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    info.mode = 0o600
    tar.addfile(info, io.BytesIO(data))
    digests[name] = hashlib.sha256(data).hexdigest()


def _schema_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:  # noqa: BLE001 - a database created without Alembic (tests)
            return None


def _check_out(out: Path, force: bool) -> None:
    """The backup file may be new, or (with ``force``) an existing regular file; its folder must exist."""
    if out.is_dir():
        raise InvalidInput(f"{out} is a folder; give the backup file's name, e.g. {out / 'sfai-backup.tar.gz'}")
    if out.is_symlink() or (os.path.lexists(out) and not out.is_file()):
        kind = "a symbolic link" if out.is_symlink() else "not a regular file"
        raise InvalidInput(f"{out} exists and is {kind}; give a new file name for the backup")
    if out.exists() and not force:
        raise Conflict(f"{out} already exists; give a new file name, or --force to replace it")
    if not out.parent.is_dir():
        raise InvalidInput(f"cannot write {out}: folder {out.parent} does not exist")


def backup(
    settings: Settings, db: Database, out: str | Path, tenant: str | None = None, *, force: bool = False
) -> BackupReport:
    """Write a backup of every tenant, or of ``tenant``, to ``out`` (a .tar.gz; written whole or not at all).
    ``out``'s folder must exist; an existing file is refused unless ``force``, anything else that exists always."""
    out = Path(out)
    _check_out(out, force)
    try:
        settings.refuse_state_file(out)
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    if tenant is not None:
        t = get_tenant(db, tenant)
        tenant = t.name  # as stored (the name may have been given in another case)
        tenants = [(t.id, t.name)]
        tables = {
            Module: None,  # reference data every tenant's subscriptions point at
            Tenant: Tenant.id == t.id,
            **{tb: tb.tenant_id == t.id for tb in TENANT_TABLES},
            UsageRecord: UsageRecord.tenant_id == t.id,
        }
    else:
        tenants = None  # read in the snapshot below, with the tables
        tables = {tb: None for tb in ALL_TABLES}
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=".sfai-backup-", suffix=".tmp", dir=out.parent)
    except OSError as e:
        raise InvalidInput(f"cannot write {out}: {e.strerror or e}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    digests: dict[str, str] = {}
    counts: dict[str, int] = {}
    files = 0
    try:
        with tarfile.open(tmp, "w:gz") as tar, _snapshot(db) as conn:
            if tenants is None:
                tenants = [(r.id, r.name) for r in conn.execute(select(Tenant.id, Tenant.name).order_by(Tenant.id))]
            for table, where in tables.items():
                name = table.__tablename__
                if table is UsageRecord:  # the biggest table: written in pages
                    buf = io.BytesIO()
                    n = 0
                    for page in _usage_pages(conn, where):
                        for row in page:
                            buf.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                            n += 1
                    data = buf.getvalue()
                else:
                    rows = _rows(conn, table, where)
                    n = len(rows)
                    data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
                _add_bytes(tar, f"db/{name}.jsonl", data, digests)
                counts[name] = n
            for _, name in tenants:
                for area in FILE_AREAS:
                    root = settings.home / area / name
                    if not root.is_dir():
                        continue
                    for path in sorted(root.rglob("*")):
                        # not a store's staging file, nor a backup being written there (this one, or another's),
                        # nor a model being registered (its folder moves into place once recorded)
                        if path.is_file() and not path.name.startswith((".staging-", ".sfai-backup-")) and \
                                not any(p.startswith(".incoming-") for p in path.relative_to(root).parts):
                            rel = path.relative_to(settings.home).as_posix()
                            _add_bytes(tar, f"files/{rel}", path.read_bytes(), digests)
                            files += 1
            manifest = {
                "format": FORMAT,
                "scope": tenant or "all",
                "created_at": datetime.now(UTC).isoformat(),
                "schema_revision": _schema_revision(db),
                "tenants": [name for _, name in tenants],
                "rows": counts,
                "files": files,
                "key_fingerprint": key_fingerprint(settings.secret_key),
                "sha256": digests,
            }
            _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=2).encode(), {})
        tmp.chmod(0o600)  # hashed keys and the usage log: for the operator only
        _check_out(out, force)  # again: something may have appeared there while the backup was written
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return BackupReport(out, tenant or "all", [n for _, n in tenants], counts, files, out.stat().st_size)


def _usage_pages(conn, where) -> list[list[dict]]:  # noqa: ANN001
    t = UsageRecord.__table__
    last = -1
    while True:
        stmt = select(t).where(t.c.seq > last)
        if where is not None:
            stmt = stmt.where(where)
        page = [_row(r) for r in conn.execute(stmt.order_by(t.c.seq).limit(USAGE_BATCH))]
        if not page:
            return
        last = page[-1]["seq"]
        yield page


# ---------------------------------------------------------------------------------------------------- restore
class _Archive:
    """A backup opened for reading, every member checked against the manifest's SHA-256."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise NotFound(f"no backup file at {path}")
        self.path = path
        self.tar = None
        try:
            self.tar = tarfile.open(path, "r:gz")
            self.manifest = json.loads(self._read("manifest.json"))
        except _TRUNCATED as e:
            self.close()
            raise self._incomplete(e) from None
        except KeyError as e:  # no manifest: a foreign archive, or one of SFAI's whose later part was overwritten
            sfai = self._members_look_like_a_backup()
            self.close()
            if sfai:
                raise InvalidInput(f"{path}: the backup is damaged (its members are there but its manifest is not: "
                                   "the file was changed or cut short); use another copy") from None
            raise InvalidInput(f"{path} is not an SFAI backup ({_reason(e)})") from None
        except (tarfile.TarError, OSError, ValueError, zlib.error) as e:
            self.close()
            raise InvalidInput(f"{path} is not an SFAI backup ({_reason(e)})") from None
        found = self.manifest.get("format") if isinstance(self.manifest, dict) else None
        if found != FORMAT or not isinstance(self.manifest.get("sha256"), dict):
            self.close()
            raise InvalidInput(f"{path}: unsupported backup format {found!r} (this SFAI reads {FORMAT})")

    def _members_look_like_a_backup(self) -> bool:
        try:
            return any(n.startswith(("db/", "files/")) for n in self.tar.getnames())
        except (tarfile.TarError, OSError, EOFError, zlib.error):
            return False

    def _incomplete(self, e: BaseException) -> InvalidInput:
        return InvalidInput(f"{self.path}: not a complete SFAI backup ({_reason(e)})")

    def _read(self, name: str) -> bytes:
        member = self.tar.extractfile(name)
        if member is None:
            raise KeyError(name)
        return member.read()

    def read(self, name: str) -> bytes:
        try:
            data = self._read(name)
        except KeyError:
            raise InvalidInput(f"{self.path}: {name} is missing from the backup") from None
        except _TRUNCATED as e:
            raise self._incomplete(e) from None
        except (tarfile.TarError, OSError, zlib.error) as e:
            raise InvalidInput(f"{self.path}: {name} cannot be read ({_reason(e)}); the backup is damaged") from None
        if hashlib.sha256(data).hexdigest() != self.manifest["sha256"].get(name):
            raise InvalidInput(f"{self.path}: {name} does not match its checksum; the backup is damaged")
        return data

    def size(self, name: str) -> int:
        return self.tar.getmember(name).size

    def holds(self, table) -> bool:  # noqa: ANN001
        return f"db/{table.__tablename__}.jsonl" in self.manifest["sha256"]

    def table(self, table) -> list[dict]:  # noqa: ANN001
        """The rows of ``table``; none for a table added after the backup was made (``LATER_TABLES``): a backup of an
        earlier release had failed to restore once a table was added ("... is missing from the backup")."""
        if table in LATER_TABLES and not self.holds(table):
            return []
        data = self.read(f"db/{table.__tablename__}.jsonl")
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def files(self, tenant: str) -> list[str]:
        prefixes = tuple(f"files/{area}/{tenant}/" for area in FILE_AREAS)
        return [n for n in self.manifest["sha256"] if n.startswith(prefixes)]

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            self.tar = None


# A gzip stream cut short: EOFError from gzip (which click would turn into a bare "Aborted"). (tarfile's own
# ReadError "unexpected end of data", a tar stream cut short inside a whole gzip stream, reads as damaged.)
_TRUNCATED = (EOFError,)


def _reason(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _safe_target(home: Path, name: str) -> Path:
    rel = Path(name.removeprefix("files/"))
    target = (home / rel).resolve()
    if ".." in rel.parts or rel.is_absolute() or not target.is_relative_to(home.resolve()):
        raise InvalidInput(f"backup member {name!r} points outside SFAI_HOME; refusing it")
    return target


def restore(settings: Settings, db: Database, archive: str | Path, tenant: str | None = None) -> RestoreReport:
    """Restore a backup into this deployment (see the module docstring for the two scopes).

    All or nothing: every table is read and checked first; then the files are written, the rows inserted and
    committed, the online store rebuilt, and the usage records committed last. If a step fails, what the earlier
    ones wrote is taken away again (rows, files, online rows), so that the same restore can simply be run again.
    """
    arc = _Archive(Path(archive))
    try:
        with _restore_lock(settings.home):
            undone = _recover(settings, db)
            report = _restore(settings, db, arc, tenant)
            report.warnings = undone + report.warnings
            return report
    finally:
        arc.close()


def _recover(settings: Settings, db: Database) -> list[str]:
    """Undo a restore that was killed before it finished (its journal is still there; the lock says no restore is
    running): its files, rows and online rows go, so that this restore starts from where that one started.
    Returns a warning saying so, or nothing."""
    path = settings.home / JOURNAL
    if not path.exists():
        return []
    steps = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            steps.append(json.loads(line))
        except ValueError:  # the last line, torn by the kill
            break
    undo = _Undo(settings, db, journal=False)
    done = False
    for st in steps:
        if "file" in st:
            undo.files.append(Path(st["file"]))
        elif "dir" in st:
            undo.dirs.append(Path(st["dir"]))
        elif "tenants" in st:
            undo.tenants.update({int(k): v for k, v in st["tenants"].items()})
        elif "online" in st:
            undo.online.extend((t, v) for t, v in st["online"])
        elif st.get("done"):
            done = True
    if not done and undo.tenants:
        # the usage records are committed last, in one transaction: where they are, the restore had finished
        with db.session() as s:
            done = s.scalar(select(func.count()).select_from(UsageRecord)
                            .where(UsageRecord.tenant_id.in_(list(undo.tenants)))) > 0
    if done:
        path.unlink(missing_ok=True)
        return []
    problems = undo.run()
    if problems:
        raise SfaiError("an earlier restore on this SFAI_HOME was stopped before it finished, and what it wrote "
                        "could not be fully taken away: " + "; ".join(problems) + f" (its record: {path})")
    path.unlink(missing_ok=True)
    names = ", ".join(sorted(undo.tenants.values())) or "no tenant rows yet"
    return [f"an earlier restore on this SFAI_HOME was stopped before it finished ({names}); what it wrote was "
            "taken away first"]


@contextlib.contextmanager
def _restore_lock(home: Path):  # noqa: ANN202
    """One restore at a time per SFAI_HOME: two at once both passed the empty-database check, and the one that
    failed undid the files of the one that succeeded."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".restore.lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("another restore is running on this SFAI_HOME; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _restore(settings: Settings, db: Database, arc: _Archive, tenant: str | None) -> RestoreReport:
    names = arc.manifest.get("tenants", [])
    if tenant is not None:
        tenant = tenant_key(tenant)
        if tenant not in names:
            raise NotFound(f"tenant {tenant!r} is not in this backup (it holds: {', '.join(names) or 'none'})")
    warnings = []
    if arc.manifest.get("key_fingerprint") != key_fingerprint(settings.secret_key):
        warnings.append(
            "the API keys in this backup were hashed with another SFAI_SECRET_KEY: they authenticate only where "
            "that secret is set; make new keys with 'sfai apikey create' otherwise"
        )
    if tenant is None and arc.manifest["scope"] == "all":
        report = _restore_all(settings, db, arc)
    else:
        report = _restore_tenant(settings, db, arc, tenant or arc.manifest["scope"])
    report.warnings = warnings
    return report


def _missing_modules(conn, rows: list[dict]) -> list[dict]:  # noqa: ANN001
    """The backup's module catalogue rows that this database lacks (migrations seed the catalogue)."""
    existing = set(conn.execute(select(Module.name)).scalars())
    return [r for r in rows if r["name"] not in existing]


def _model_path(settings: Settings, tenant: str, name: str, version: int) -> str:
    return str(settings.home / "models" / tenant / name / f"v{version}")


def _advance_sequences(conn, db: Database, tables) -> None:  # noqa: ANN001
    """PostgreSQL: explicit ids were inserted, so move the sequences past them."""
    if db.engine.dialect.name != "postgresql":
        return
    for table in tables:
        t = table.__table__
        if "id" in t.c and isinstance(t.c.id.type, Integer):  # setval(NULL) (no sequence) does nothing
            conn.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{t.name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {t.name}), 0) + 1, false)"
            ))


class _Undo:
    """What a restore has written so far, and how to take it away again if a later step fails. Each step is also
    written to the journal (``JOURNAL``) before it is taken, for a restore that is killed (:func:`_recover`)."""

    def __init__(self, settings: Settings, db: Database, journal: bool = True) -> None:
        self.settings, self.db = settings, db
        self.files: list[Path] = []
        self.dirs: list[Path] = []  # folders the restore created, outermost first
        self.tenants: dict[int, str] = {}  # id -> name of the tenants whose rows the restore writes
        self.online: list[tuple[str, str]] = []  # (tenant, view) the online store may hold rows of
        self._journal = open(settings.home / JOURNAL, "w") if journal else None  # noqa: SIM115 - closed by done()

    def log(self, **step: object) -> None:
        """Writes ``step`` to the journal and syncs it, before the step is taken."""
        if self._journal is not None:
            self._journal.write(json.dumps(step, default=str) + "\n")
            self._journal.flush()
            os.fsync(self._journal.fileno())

    def add_tenants(self, tenants: dict[int, str]) -> None:
        self.log(tenants=tenants)
        self.tenants.update(tenants)

    def add_online(self, views: list[tuple[str, str]]) -> None:
        self.log(online=views)
        self.online.extend(views)

    def done(self) -> None:
        """The restore finished: no journal."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
            (self.settings.home / JOURNAL).unlink(missing_ok=True)

    def write_file(self, target: Path, data: bytes) -> None:
        """Writes ``data`` at ``target`` and remembers it for the undo. A file already there (it holds the same
        bytes: :func:`_check_targets` refused any other) is left as it is and never taken away by the undo."""
        if target.is_file():
            return
        missing = []
        parent = target.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for d in reversed(missing):
            self.log(dir=str(d))
        self.log(file=str(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        self.dirs.extend(reversed(missing))
        self.files.append(target)
        target.write_bytes(data)

    def run(self) -> list[str]:
        """Take everything away; returns what could not be (each step is tried). A tenant's rows go only while
        its id still carries its name (a journal's id is never another tenant's)."""
        problems = []
        if self.tenants:
            try:
                with self.db.engine.begin() as conn:
                    ids = [i for i, name in self.tenants.items()
                           if conn.execute(select(Tenant.name).where(Tenant.id == i)).scalar() in (name, None)]
                    for table in reversed(TENANT_TABLES):
                        conn.execute(delete(table).where(table.tenant_id.in_(ids)))
                    conn.execute(delete(Tenant).where(Tenant.id.in_(ids)))
            except Exception as e:  # noqa: BLE001 - reported with the failure that started the undo
                problems.append(f"the restored rows stay ({_reason(e)})")
        if self.online:
            try:
                from feature_store.online import online_store_for

                store = online_store_for(self.settings)
                try:
                    for tenant, view in self.online:
                        store.delete_view(tenant, view)
                finally:
                    store.close()
            except Exception as e:  # noqa: BLE001
                problems.append(f"online feature rows stay ({_reason(e)})")
        for path in self.files:
            try:
                path.unlink(missing_ok=True)
            except OSError as e:
                problems.append(f"{path} stays ({e.strerror})")
        for folder in reversed(self.dirs):  # innermost first; a folder something else wrote into stays
            try:
                folder.rmdir()
            except OSError:
                pass
        return problems


def _undo_and_raise(undo: _Undo, scope: str, e: BaseException) -> NoReturn:
    """Undo a restore that failed at ``e``; raise ``e`` saying so (or what could not be undone). The journal
    stays where the undo could not finish, so that the next restore tries again."""
    problems = undo.run()
    if not problems:
        undo.done()
    if problems:
        raise SfaiError(f"restore of {scope} failed ({_reason(e)}) and could not be fully undone: "
                        + "; ".join(problems)) from e
    if isinstance(e, SfaiError):
        e.message = f"{e.message}; nothing was restored"
        e.args = (e.message,)
        raise e
    if isinstance(e, Exception):
        raise SfaiError(f"restore of {scope} failed, nothing was restored: {type(e).__name__}: {_reason(e)}") from e
    raise e  # KeyboardInterrupt and the like: as they are, once undone


def _check_targets(settings: Settings, arc: _Archive, tenant: str) -> None:
    """Before anything is written: every file of ``tenant`` goes inside ``SFAI_HOME``, and where a file is there
    already (the same home moved to another database) it holds the backup's bytes. A restore never overwrites a
    file, so that undoing a failed one cannot take away what was there before it."""
    for name in arc.files(tenant):
        target = _safe_target(settings.home, name)
        if os.path.lexists(target) and not (target.is_file() and not target.is_symlink()
                                            and target.stat().st_size == arc.size(name)
                                            and target.read_bytes() == arc.read(name)):
            raise Conflict(f"{target} exists and differs from the backup's copy; a restore does not overwrite files: "
                           "move it away (or restore into an empty SFAI_HOME)")


def _check_rows(tenants: list[dict]) -> None:
    """The backup's tenants pass the checks a new tenant passes (a name that becomes folders under ``SFAI_HOME``,
    a KSIC code): the archive's own checksums prove it whole, not that it was made by SFAI."""
    for r in tenants:
        try:
            if check_tenant_name(str(r.get("name"))) != r.get("name"):
                raise InvalidInput(f"tenant name {r.get('name')!r} is not in its stored form")
            check_ksic(str(r.get("ksic_code")))
        except SfaiError as e:
            raise InvalidInput(f"the backup's tenant {shown(r.get('name'))} is refused: {e.message}") from None


def _write_files(settings: Settings, arc: _Archive, tenant: str, undo: _Undo) -> int:
    n = 0
    for name in arc.files(tenant):
        target = _safe_target(settings.home, name)
        undo.write_file(target, arc.read(name))
        n += 1
    return n


def _restore_all(settings: Settings, db: Database, arc: _Archive) -> RestoreReport:
    with db.session() as s:
        if s.scalar(select(func.count()).select_from(Tenant)):
            raise Conflict(
                "this database already holds tenants; a full restore needs an empty one "
                "(restore single tenants with --tenant)"
            )
    # read (and checksum) everything before writing; backups made before per-tenant usage numbers lack them
    tables = {tb: arc.table(tb) for tb in ALL_TABLES}
    tables[UsageTenantHead] = _number_usage(tables[UsageRecord], tables.get(UsageTenantHead, []))
    tables[UsageChain] = _keyed_chain(settings, tables[UsageChain])
    _check_rows(tables[Tenant])
    tenant_names = {r["id"]: r["name"] for r in tables[Tenant]}
    for name in tenant_names.values():
        _check_targets(settings, arc, name)
    counts = {}
    undo = _Undo(settings, db)
    try:
        files = sum(_write_files(settings, arc, name, undo) for name in tenant_names.values())
        first = [tb for tb in ALL_TABLES if tb not in USAGE_TABLES]
        undo.add_tenants(tenant_names)
        with db.engine.begin() as conn:
            for table in first:
                rows = tables[table]
                if table is Module:
                    rows = _missing_modules(conn, rows)
                if table is ModelVersionRecord:
                    rows = [{**r, "path": _model_path(settings, tenant_names[r["tenant_id"]], r["name"], r["version"])}
                            for r in rows]
                _insert(conn, table, rows)
                counts[table.__tablename__] = len(rows)
            _advance_sequences(conn, db, first)
        undo.add_online([(tenant_names[r["tenant_id"]], r["name"]) for r in tables[FeatureViewRecord]])
        online = _rebuild_online(settings, db, list(tenant_names.values()))
        with db.engine.begin() as conn:  # last, as usage records cannot be taken away once committed
            # the id names this database, not the data in it: a staging copy restored from production's backup
            # keeps its own, so that on production's Redis it does not count production's quotas (migration 0012)
            own = conn.execute(select(UsageChain.deployment_id)).scalar()
            tables[UsageChain] = [{**h, "deployment_id": own} for h in tables[UsageChain]]
            conn.execute(delete(UsageChain))
            conn.execute(delete(UsageTenantHead))
            for table in USAGE_TABLES:
                _insert(conn, table, tables[table])
                counts[table.__tablename__] = len(tables[table])
        undo.done()
    except BaseException as e:
        _undo_and_raise(undo, "the backup", e)
    return RestoreReport("all", list(tenant_names.values()), counts, files, online)


def _keyed_chain(settings: Settings, heads: list[dict]) -> list[dict]:
    """The backup's usage chain head, checked against this deployment's key. A backup written before SFAI keyed
    the chain holds only plain hashes: keyed records start after its last one. A keyed chain verifies, and takes
    records, only with the secret it was keyed with: another secret is refused before anything is written."""
    out = []
    for h in heads:
        h = dict(h)
        if "keyed_from" not in h:
            h["keyed_from"], h["keyed_mark"] = h["last_seq"] + 1, None
        if h.get("keyed_mark") is not None and h["keyed_mark"] != ChainKey(settings.secret_key).mark(h["keyed_from"]):
            raise Conflict(
                "this backup's usage log is hash-chained with another SFAI_SECRET_KEY than this one: restore with "
                "SFAI_SECRET_KEY set to the secret of the deployment that was backed up (or restore tenants one by "
                "one with --tenant, which re-chains their records here)"
            )
        out.append(h)
    return out


def _number_usage(usage: list[dict], heads: list[dict]) -> list[dict]:
    """Each tenant's usage record numbers and heads, for a backup written before SFAI numbered them: the
    records of each tenant 1, 2, ... in chain order (as the schema migration numbers them), and each head at
    least the tenant's last number. Numbers the backup holds are kept."""
    last = {r["tenant_id"]: r["last_seq"] for r in heads}
    numbers: dict[int, int] = {}
    for r in sorted(usage, key=lambda r: r["seq"]):
        tid = r["tenant_id"]
        if r.get("tenant_seq") is None:
            r["tenant_seq"] = numbers.get(tid, 0) + 1
        numbers[tid] = r["tenant_seq"]
    for tid, n in numbers.items():
        last[tid] = max(last.get(tid, 0), n)
    return [{"tenant_id": tid, "last_seq": n} for tid, n in sorted(last.items())]


def _insert(conn, table, rows: list[dict]) -> None:  # noqa: ANN001
    for i in range(0, len(rows), USAGE_BATCH):
        conn.execute(insert(table), [_decode(table, r) for r in rows[i : i + USAGE_BATCH]])


def _restore_tenant(settings: Settings, db: Database, arc: _Archive, tenant: str) -> RestoreReport:
    with db.session() as s:
        if s.scalar(select(Tenant).where(Tenant.name == tenant)) is not None:
            raise Conflict(
                f"tenant {tenant!r} already exists here; a tenant restore brings back a tenant that is not in this "
                "deployment (restore into a fresh database for a point-in-time copy)"
            )
    src = next((r for r in arc.table(Tenant) if r["name"] == tenant), None)
    if src is None:
        raise NotFound(f"tenant {tenant!r} is not in this backup")
    _check_rows([src])
    old_id = src["id"]
    rows = {tb: [r for r in arc.table(tb) if r["tenant_id"] == old_id] for tb in TENANT_TABLES}
    usage = [r for r in arc.table(UsageRecord) if r["tenant_id"] == old_id]
    modules = arc.table(Module)
    _check_targets(settings, arc, tenant)
    with db.session() as s:
        key_ids = [r["key_id"] for r in rows[ApiKey]]
        job_ids = [r["id"] for r in rows[SchedulingJob]]
        taken = set(s.scalars(select(ApiKey.key_id).where(ApiKey.key_id.in_(key_ids))))
        jobs = set(s.scalars(select(SchedulingJob.id).where(SchedulingJob.id.in_(job_ids))))
    if taken or jobs:
        raise Conflict(f"API key ids or job ids of {tenant!r} already exist here: {sorted(taken | jobs)[:3]}")
    counts = {"tenants": 1}
    undo = _Undo(settings, db)
    try:
        files = _write_files(settings, arc, tenant, undo)
        with db.engine.begin() as conn:
            missing = _missing_modules(conn, modules)
            if missing:
                conn.execute(insert(Module), [_decode(Module, r) for r in missing])
            new_id = conn.execute(
                insert(Tenant).values(**_decode(Tenant, {k: v for k, v in src.items() if k != "id"}))
                .returning(Tenant.id)
            ).scalar_one()
            undo.add_tenants({new_id: tenant})  # before the commit: a kill after it finds the id here
            for table, trows in rows.items():
                keep_id = table is SchedulingJob or "id" not in table.__table__.columns
                out = []
                for r in trows:
                    r = {**r, "tenant_id": new_id}
                    if not keep_id:
                        r.pop("id", None)
                    if table is ModelVersionRecord:
                        r["path"] = _model_path(settings, tenant, r["name"], r["version"])
                    out.append(_decode(table, r))
                if out:
                    conn.execute(insert(table), out)
                counts[table.__tablename__] = len(out)
        undo.add_online([(tenant, r["name"]) for r in rows[FeatureViewRecord]])
        online = _rebuild_online(settings, db, [tenant])
        entries = [
            UsageEntry(
                ts=as_utc(datetime.fromisoformat(r["ts"])), tenant_id=new_id, key_id=r["key_id"], module=r["module"],
                method=r["method"], endpoint=r["endpoint"], status=r["status"], latency_us=r["latency_us"],
                request_id=r["request_id"], model_version=r["model_version"], calls=r.get("calls") or 1,
                counted=r.get("counted", True),
            )
            for r in usage
        ]
        if entries:  # last, in one transaction: usage records cannot be taken away once committed
            first = min((r["tenant_seq"] for r in usage if r.get("tenant_seq")), default=1)
            append_entries(db, entries, key=ChainKey(settings.secret_key), first_numbers={new_id: first})
        counts["usage_log"] = len(entries)
        undo.done()
    except BaseException as e:
        _undo_and_raise(undo, f"tenant {tenant!r}", e)
    return RestoreReport(tenant, [tenant], counts, files, online)


def _rebuild_online(settings: Settings, db: Database, tenants: list[str]) -> int:
    """The online store from the restored offline store: the latest row per entity of every view."""
    from feature_store.store import FeatureStore

    n = 0
    until = datetime.now(UTC) + timedelta(days=3650)
    for name in tenants:
        store = FeatureStore(settings, db, name)
        try:
            for view, _ in store.list_views():
                n += store.materialize(view.name, None, until)
        finally:
            store.close()
    return n

