"""The offline store: per tenant and view, Parquet files partitioned by event date.

    $SFAI_HOME/features/<tenant>/<view>/date=YYYY-MM-DD/part-<content hash>.parquet

A batch is validated first, then every file is written under a temporary name, every partition folder made, and
only then are the files renamed into place, so a failed ingest leaves nothing behind (a rename that fails takes
back the ones before it). The file name is the hash of the batch's content: ingesting the same
rows twice rewrites the same files instead of duplicating them.

Many small batches (an MES pushing one row per lot) make many small files; :meth:`OfflineStore.compact` merges
each partition's files into one, ``part-c<hash>.parquet``, and records the merged batches' hashes in the
partition's ``compacted.json``, so a batch ingested again after compaction is still recognised and not
duplicated.

Only a byte-identical batch is recognised on write: the same rows sent in another batch (a file ingested alone
after the folder it belongs to, a fixed file rerun) are stored again. Compaction drops those copies: a row that
repeats the previous version of its (entity, event time) with the same values (see :func:`drop_repeats`).

A push into a history view reads its entities' recent rows with :meth:`OfflineStore.recent_rows`: kept per view in
memory in step with the view's files, so that a push reads the files written since the one before, not all of them.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_store.view import CREATED, TIMESTAMP, FeatureView


@dataclass(frozen=True, slots=True)
class WriteReport:
    rows: int
    files: int
    partitions: list[str]


@dataclass(frozen=True, slots=True)
class CompactReport:
    partitions: int  # partitions compacted
    files_before: int
    files_after: int
    rows: int  # rows kept in the compacted partitions
    duplicates: int = 0  # rows dropped: a copy of the previous version of their (entity, event time), same values


COMPACTED = "compacted.json"  # per partition: the batch hashes merged into its part-c file(s)
# A compacted file's footer (Parquet key-value metadata) says whether it holds an (entity, event time) more than
# once (a correction kept with the value it corrects), for ``may_repeat_keys``. A part-c file without it was
# written before duplicates were dropped: it may repeat keys, and ``compact`` merges it once more.
FILE_META = b"sfai.compacted"


class _HashSink:
    """A write-only file that feeds SHA-256: the IPC stream is hashed as it is produced, never held in memory."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.closed = False

    def write(self, data) -> int:  # noqa: ANN001 - bytes-like
        self.hash.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _content_hash(table: pa.Table, *, skip: str | None) -> str:
    if skip is not None:
        table = table.drop_columns([skip])
    sink = _HashSink()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema) as w:
        w.write_table(table)
    return sink.hash.hexdigest()[:24]


SMALL_FILE_ROWS = 20_000


def _write_parquet(table: pa.Table, path: Path, view: FeatureView, *, meta: dict | None = None) -> None:
    """Parquet tuned for feature files: statistics only on the columns reads prune by (time, entity), dictionaries
    only for strings, and zstd where a file is big enough to repay its per-column set-up (a wide view split into
    many small daily files would otherwise spend most of its write time there)."""
    names = table.schema.names
    stats = [c for c in (TIMESTAMP, CREATED, view.join_key) if c in names]
    dictionary = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    compression = "zstd" if table.num_rows >= SMALL_FILE_ROWS else "snappy"
    if meta is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), FILE_META: json.dumps(meta).encode()})
    pq.write_table(table, path, compression=compression, row_group_size=256_000, write_statistics=stats,
                   use_dictionary=dictionary)


def _merged(part_dir: Path) -> set[str]:
    """The batch hashes already merged into this partition's compacted file."""
    try:
        return set(json.loads((part_dir / COMPACTED).read_text()))
    except (OSError, ValueError):
        return set()


def _newest_in_partition(path: Path) -> bool:
    """No other file of ``path``'s partition was written after it (files are immutable: their mtime is when they
    were written)."""
    mtime = path.stat().st_mtime_ns
    return all(f == path or f.stat().st_mtime_ns <= mtime for f in path.parent.glob("part-*.parquet"))


def _same_as_previous(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Per row from the second on: equal to the row before (two missing values are equal; NaN is missing)."""
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    missing = pc.is_null(col)
    if pa.types.is_floating(col.type):
        missing = pc.or_(missing, pc.fill_null(pc.is_nan(col), False))
    eq = pc.fill_null(pc.equal(col.slice(1), col.slice(0, len(col) - 1)), False)
    both = pc.and_(missing.slice(1), missing.slice(0, len(col) - 1))
    return pc.or_(eq, both).to_numpy(zero_copy_only=False)


def drop_repeats(table: pa.Table, key: str) -> tuple[pa.Table, int, bool]:
    """``table`` sorted by (event time, entity, ``created``) without the rows that repeat the previous version of
    their (entity, event time) with the same values in every column but ``created``: of such a run the first,
    the earliest written, is kept. Returns the table, the rows dropped, and whether an (entity, event time) is
    still there more than once (a correction and the value it corrects).

    No point-in-time answer changes, ``as_known_at`` any time included: where a dropped row was the latest known
    the row kept before it is, with the same values. A value changed back (1, then 2, then 1 again) is no repeat
    of the previous version and stays, or the latest written would be 2. Rows that share their (entity, event
    time) and ``created`` but not their values (a ``created`` given twice) leave which is latest undecided: no row
    of such a group, and no row right after one, is dropped."""
    names = table.column_names
    order = [(TIMESTAMP, "ascending")] + ([(key, "ascending")] if key in names else [])
    table = table.sort_by(order + ([(CREATED, "ascending")] if CREATED in names else []))
    n = table.num_rows
    if n < 2 or key not in names or CREATED not in names:  # not a view's file: nothing dropped, nothing known
        return table, 0, n > 1
    same_key = _same_as_previous(table.column(TIMESTAMP)) & _same_as_previous(table.column(key))
    same_values = same_key.copy()
    for name in names:
        if name not in (key, TIMESTAMP, CREATED):
            same_values &= _same_as_previous(table.column(name))
    same_created = same_key & _same_as_previous(table.column(CREATED))
    # groups of rows with one (entity, event time, created); a group whose values differ is undecided
    group = np.concatenate([[0], np.cumsum(~same_created)])
    undecided = np.zeros(group[-1] + 1, dtype=bool)
    undecided[group[1:][same_created & ~same_values]] = True
    drop = same_values & ~undecided[group[1:]] & ~undecided[group[:-1]]
    # a kept row right after another of its (entity, event time) follows a kept one of it (a run's first stays)
    repeats = bool((same_key & ~drop).any())
    if not drop.any():
        return table, 0, repeats
    return table.filter(pa.array(np.concatenate([[True], ~drop]))), int(drop.sum()), repeats


class OfflineStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._ranges: dict[str, tuple] = {}  # file -> (min, max) event time, may repeat keys; files are immutable

    def view_dir(self, tenant: str, view: str) -> Path:
        return self.root / tenant / view

    def write(self, tenant: str, view: FeatureView, table: pa.Table, *, created_given: bool = True) -> WriteReport:
        """Append a conformed table (see ``validate.conform``)."""
        base = self.view_dir(tenant, view.name)
        base.mkdir(parents=True, exist_ok=True)
        digest = _content_hash(table, skip=None if created_given else CREATED)
        dates = pc.cast(pc.cast(table.column(TIMESTAMP), pa.timestamp("us")), pa.date32())
        staging = base / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        moves: list[tuple[Path, Path]] = []
        try:
            for d in pc.unique(dates).to_pylist():
                part = table.filter(pc.equal(dates, pa.scalar(d, pa.date32())))
                name = f"date={d.isoformat()}"
                final = base / name / f"part-{digest}.parquet"
                written, merged = final.exists(), digest in _merged(base / name)
                if written or merged:
                    # with its ``created`` times: this very version is here already. Without (stamped now): a retry
                    # of the latest batch here keeps the first copy, and with it the ``created`` times that
                    # ``as_known_at`` reads (the first arrival's)
                    if created_given or (written and _newest_in_partition(final)) or \
                            (merged and self._only_current_versions(base / name)):
                        continue
                    # a file written since may hold another version of these rows (1, then 2, then 1 again): this
                    # copy is their latest word, kept under its own name; compaction drops it where it repeats
                    final = final.with_name(f"part-{_content_hash(part, skip=None)}.parquet")
                tmp = staging / f"{name}.parquet"
                _write_parquet(part, tmp, view)
                moves.append((tmp, final))
            # all files are written; every partition folder is made before the first file is published, so that a
            # folder that cannot be made (a plain file in its place, no permission) fails the batch before any of it
            # is visible, and a rename that still fails takes back the files published before it
            for _, final in moves:
                final.parent.mkdir(exist_ok=True)  # FileExistsError where a file (not a folder) has the name
            published: list[Path] = []
            try:
                for tmp, final in moves:
                    existed = final.exists()
                    os.replace(tmp, final)
                    if not existed:
                        published.append(final)
            except BaseException:
                for final in published:
                    final.unlink(missing_ok=True)
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return WriteReport(table.num_rows, len(moves), sorted(m[1].parent.name for m in moves))

    def compact(self, tenant: str, view: FeatureView, *, min_files: int = 8) -> CompactReport:
        """Merge the files of a partition into one (rows sorted by event time, entity and ``created``), dropping
        the rows that repeat the previous version of their (entity, event time) with the same values
        (:func:`drop_repeats`). A partition is merged when it holds at least ``min_files`` files, or at least two
        that share an (entity, event time) (the same rows ingested again in another batch, or corrections), or a
        compacted file written before duplicates were dropped.

        The merged file is complete before the small ones go, so a reader sees every row at every moment (for an
        instant some twice, which point-in-time reads resolve); a reader that listed the small files just before
        they were removed fails with a missing file and can be run again."""
        base = self.view_dir(tenant, view.name)
        partitions = before = after = rows = dropped = 0
        for part_dir in sorted(base.glob("date=*")) if base.exists() else []:
            files = sorted(part_dir.glob("part-*.parquet"))
            if not self._worth_compacting(part_dir, files, view.join_key, min_files):
                continue
            table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
            table, n_dropped, repeats = drop_repeats(table, view.join_key)
            digests = sorted(f.stem.removeprefix("part-") for f in files)
            name = "c" + hashlib.sha256("\n".join(digests).encode()).hexdigest()[:23]
            staging = base / f".staging-{uuid.uuid4().hex}"
            staging.mkdir()
            try:
                tmp = staging / "merged.parquet"
                _write_parquet(table, tmp, view, meta={"repeats": repeats})
                # every merged file's name: a batch's hash may begin with "c" too (it was left out, and that batch
                # was stored again when sent after compaction); a compacted file's name matches no batch
                merged = _merged(part_dir) | set(digests)
                (staging / COMPACTED).write_text(json.dumps(sorted(merged)))
                os.replace(tmp, part_dir / f"part-{name}.parquet")
                os.replace(staging / COMPACTED, part_dir / COMPACTED)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            for f in files:
                if f.name != f"part-{name}.parquet":
                    f.unlink(missing_ok=True)
                    self._ranges.pop(str(f), None)
            partitions += 1
            before += len(files)
            after += 1
            rows += table.num_rows
            dropped += n_dropped
        return CompactReport(partitions, before, after, rows, dropped)

    def _only_current_versions(self, part_dir: Path) -> bool:
        """Nothing can have changed the rows of a batch merged into this partition's compacted file: the partition
        holds only compacted files with one version of each (entity, event time) (a later batch is a file of its
        own, and a correction merged with it would be a second version)."""
        files = list(part_dir.glob("part-*.parquet"))
        return bool(files) and all(f.name.startswith("part-c") and self._info(str(f))[2] is False for f in files)

    def _worth_compacting(self, part_dir: Path, files: list[Path], key: str, min_files: int) -> bool:
        if len(files) >= max(2, min_files):
            return True
        paths = [str(f) for f in files]
        if (part_dir / COMPACTED).exists() and any(f.name.startswith("part-c") and self._info(p)[2] is None
                                                   for f, p in zip(files, paths, strict=True)):
            return True  # compacted before duplicates were dropped: may hold some, and its footer says nothing
        if len(files) < 2 or not self.may_repeat_keys(paths):
            return False
        # the files' times overlap: do they share an (entity, event time)? (two columns read, not the features)
        keys = pa.concat_tables([pq.read_table(f, columns=[key, TIMESTAMP]) for f in files], promote_options="default")
        return keys.group_by([key, TIMESTAMP]).aggregate([]).num_rows < keys.num_rows

    def files(self, tenant: str, view: str) -> list[str]:
        base = self.view_dir(tenant, view)
        if not base.exists():
            return []
        return sorted(str(p) for p in base.glob("date=*/part-*.parquet"))

    def recent_rows(
        self, tenant: str, view: FeatureView, keys: list, columns: tuple[str, ...], *, since: datetime | None = None,
        last: int | None = None, retain: timedelta | None = None,
    ) -> pa.Table:
        """The stored rows of the entities ``keys``: the key, event time and ``columns`` (null where a file lacks a
        column) of the latest written version of each (entity, event time), those at or after ``since``, or each
        entity's latest ``last`` times. What a push into a history view reads (``pipelines/raw_ingest.py``): kept
        per view in memory, in step with the view's files, so that a push reads the files written since the one
        before it, not all of them (see ``_Recent``). ``retain``: with ``since``, how much earlier than ``since``
        the rows kept for the next call reach (a later batch's look-back may start a little before this one's)."""
        if (since is None) == (last is None):
            raise ValueError("recent_rows: pass since or last")
        cache = _recent_for(self.view_dir(tenant, view.name).absolute(), view, tuple(columns), last)
        since_us = None if since is None else _us(since)
        retain_us = None if retain is None else retain // _MICROSECOND
        with cache.lock:
            for attempt in range(3):
                try:
                    out = cache.rows(list(keys), since_us, retain_us)
                    break
                except FileNotFoundError:  # compacted away meanwhile (another process): read the files again
                    cache.clear()
                    if attempt == 2:
                        raise
                except BaseException:
                    cache.clear()
                    raise
            cache.shrink(MAX_RECENT_ROWS)
        _evict(MAX_RECENT_ROWS)
        return out

    def may_repeat_keys(self, files: list[str]) -> bool:
        """Whether the files could hold an (entity, event time) twice: one compacted file holds a correction next
        to the value it corrects, or two files' time ranges overlap.

        A batch never repeats an (entity, time) within itself (``validate.conform`` refuses that), and a compacted
        file says in its footer whether it does, so when neither holds a point-in-time join can skip the "latest
        written wins" step.
        """
        infos = [self._info(f) for f in files]
        if any(i[2] is not False for i in infos):
            return True
        ranges = sorted(i[:2] for i in infos)
        return any(b[0] <= a[1] for a, b in zip(ranges, ranges[1:], strict=False))

    def _info(self, path: str) -> tuple:
        """(min, max) event time of a file, and whether it may repeat an (entity, event time): False for a batch's
        file; for a compacted one what its footer says, None where the footer says nothing (compacted before the
        footer was written, or a batch whose hash begins with "c": the name cannot tell). Cached: files are
        immutable."""
        hit = self._ranges.get(path)
        if hit is None:
            pf = pq.ParquetFile(path)
            md = pf.metadata
            repeats: bool | None = False
            if Path(path).name.startswith("part-c"):
                meta = (pf.schema_arrow.metadata or {}).get(FILE_META)
                repeats = None if meta is None else bool(json.loads(meta).get("repeats", True))
            col = md.schema.names.index(TIMESTAMP)
            lo = hi = None
            for i in range(md.num_row_groups):
                st = md.row_group(i).column(col).statistics
                if st is None or not st.has_min_max:
                    lo, hi = float("-inf"), float("inf")
                    break
                lo = st.min if lo is None else min(lo, st.min)
                hi = st.max if hi is None else max(hi, st.max)
            hit = self._ranges[path] = (lo, hi, repeats)
        return hit

    def row_count(self, tenant: str, view: str) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files(tenant, view))


# -- each entity's latest rows (the push ingest of history views) --------------------------------------------------
#
# A push into a history view (lags and rolling statistics: ``pipelines/raw_ingest.py``) reads the rows its entities
# stored before it. Reading them with one scan of every file of the view made every push slower as files piled up (a
# single-row push writes one): 0.1 s at 69 files in the look-back, 0.9 s at 981. ``OfflineStore.recent_rows`` keeps,
# per view, its entities' recent rows in memory, in step with the view's files: each call lists the partitions those
# rows can be in (a partition folder unchanged since it was listed is not listed again) and reads only the files it
# has not seen (after a push: the one file the push before wrote), and only those whose footers' statistics (entity
# and event-time ranges) can hold a row it keeps. A file gone or replaced (compaction, a failed write taken back, a
# restore) drops all it kept: the entities are then read again from the files, as the first time, again only the
# files whose statistics can hold their rows.

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_TS = pa.timestamp("us", "UTC")
# more files than this in one read: one DuckDB scan of them
_SCAN_FROM = 24
# a partition folder's listing is reused while its mtime is unchanged, and only where that mtime was this much older
# than the listing: a file added within the same tick of a coarse file-system clock would not change it
_LISTING_SETTLED_NS = 2_000_000_000
# rows kept over all views, and views kept; past them the views (then the entities) used least recently are dropped
MAX_RECENT_ROWS = 1_000_000
MAX_RECENT_VIEWS = 256


@dataclass(frozen=True, slots=True)
class FileStats:
    """A Parquet file's row count, event-time range (microseconds, max exclusive) and entity-key range from its
    footer; a range is None where a row group has no statistics for it (nothing can be pruned by it)."""

    rows: int
    times: tuple[int, int] | None
    keys: tuple | None
    columns: tuple[str, ...]  # in the file's order


_STATS: dict[tuple[str, int], FileStats] = {}  # (path, inode): a file is immutable; a replaced one is a new inode
_STATS_LOCK = threading.Lock()
_STATS_MAX = 200_000


def _us(value: object) -> int | None:
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICROSECOND


def _range(md: pq.FileMetaData, column: int, times: bool) -> tuple | None:
    lo = hi = None
    for i in range(md.num_row_groups):
        st = md.row_group(i).column(column).statistics
        if st is None or not st.has_min_max:
            return None
        a, b = st.min, st.max
        if times:
            a, b = _us(a), _us(b)
            if a is None or b is None:
                return None
            b += 1  # exclusive (a time finer than the microsecond)
        elif not (isinstance(a, str) and isinstance(b, str)) and not (isinstance(a, int) and isinstance(b, int)):
            return None  # bytes, or an unknown logical type: not compared
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return None if lo is None else (lo, hi)


def file_stats(path: str, key: str, inode: int = 0) -> FileStats:
    """The footer's statistics of a view file (cached per path and inode)."""
    hit = _STATS.get((path, inode))
    if hit is None:
        md = pq.read_metadata(path)
        names = md.schema.names
        times = _range(md, names.index(TIMESTAMP), True) if TIMESTAMP in names else None
        keys = _range(md, names.index(key), False) if key in names else None
        hit = FileStats(md.num_rows, times, keys, tuple(names))
        with _STATS_LOCK:
            if len(_STATS) >= _STATS_MAX:
                _STATS.clear()
            _STATS[(path, inode)] = hit
    return hit


def _at_or_after(table: pa.Table, us: int) -> pa.Table:
    return table.filter(pc.greater_equal(table.column(TIMESTAMP), pa.scalar(us, _TS)))


def _partition(us: int | None) -> str:
    """The name of the partition holding an event time (partitions are by UTC date); "" for every partition."""
    if us is None:
        return ""
    return f"date={(_EPOCH + _MICROSECOND * us).date().isoformat()}"


def _newest_first(candidate: tuple[str, FileStats]) -> int:
    """Files by their latest event time, newest first; one without time statistics could hold any: first."""
    times = candidate[1].times
    return -(times[1] if times is not None else 2**63)


class _Tail:
    """One entity's kept rows: sorted by event time, one row per time (its latest written version), and every row
    of the entity's at or after ``lo`` that the seen files hold (``lo`` None: all of them)."""

    __slots__ = ("lo", "rows")

    def __init__(self, rows: pa.Table, lo: int | None) -> None:
        self.rows, self.lo = rows, lo


class _Recent:
    """One view's kept rows per entity and the files they reflect."""

    def __init__(self, base: Path, key: str, schema: pa.Schema, last: int | None) -> None:
        self.base, self.key, self.schema, self.last = base, key, schema, last
        self.tails: OrderedDict[object, _Tail] = OrderedDict()
        self.floor: str | None = None  # the first partition a kept row can be in ("": any); None: nothing kept
        self.seen: dict[str, dict[str, int]] = {}  # partition -> {file name: inode}, partitions >= floor
        self.dirs: dict[str, tuple[int, int, dict[str, int]]] = {}  # partition -> (mtime, listed at, files)
        self.lock = threading.Lock()
        self.size = 0  # rows kept

    def clear(self) -> None:
        self.tails.clear()
        self.floor, self.seen, self.dirs, self.size = None, {}, {}, 0

    # listing ---------------------------------------------------------------------------------------------------
    def _list(self, floor: str) -> dict[str, dict[str, int]]:
        """{partition: {file name: inode}} of the partitions named ``floor`` or later."""
        out: dict[str, dict[str, int]] = {}
        try:
            with os.scandir(self.base) as it:
                parts = [e for e in it if e.name.startswith("date=") and e.name >= floor]
        except FileNotFoundError:
            return out
        for e in parts:
            try:
                st = e.stat()
                if not e.is_dir():
                    continue
                hit = self.dirs.get(e.name)
                if hit is not None and hit[0] == st.st_mtime_ns and st.st_mtime_ns < hit[1] - _LISTING_SETTLED_NS:
                    out[e.name] = hit[2]
                    continue
                now = time.time_ns()
                with os.scandir(e.path) as it:
                    files = {f.name: f.inode() for f in it
                             if f.name.startswith("part-") and f.name.endswith(".parquet")}
            except FileNotFoundError:  # the partition went meanwhile
                continue
            self.dirs[e.name] = (st.st_mtime_ns, now, files)
            out[e.name] = files
        for gone in [p for p in self.dirs if p >= floor and p not in out]:
            del self.dirs[gone]
        return out

    # reading ---------------------------------------------------------------------------------------------------
    def _read(self, files: list[tuple[str, FileStats]], keys: pa.Array, since: int | None) -> pa.Table:
        """The files' rows of ``keys`` (at or after ``since``) in the kept schema (a column a file lacks: null). A
        few files are read one by one; more in one DuckDB scan, whose reader costs less per file (a first push
        after a restart reads the week of a meter's single-row files: 750)."""
        if len(files) > _SCAN_FROM:
            return self._scan(files, keys, since)
        out = []
        for path, stats in files:
            present = [n for n in self.schema.names if n in stats.columns]
            t = pq.ParquetFile(path).read(columns=present)
            mask = pc.is_in(t.column(self.key), value_set=keys)
            if since is not None:
                mask = pc.and_(mask, pc.greater_equal(t.column(TIMESTAMP), pa.scalar(since, _TS)))
            out.append(self._conform(t.filter(mask)))
        return pa.concat_tables(out) if out else self.schema.empty_table()

    def _scan(self, files: list[tuple[str, FileStats]], keys: pa.Array, since: int | None) -> pa.Table:
        """One DuckDB scan per set of columns the files hold (usually one: a read by name across files of other
        columns would read every footer first, ``union_by_name``)."""
        from feature_store.pit import _q, connect

        groups: dict[tuple[str, ...], list[str]] = {}
        for path, stats in files:
            groups.setdefault(stats.columns, []).append(path)
        where, params = f"list_contains(?, {_q(self.key)})", [keys.to_pylist()]
        if since is not None:
            where += f" AND {_q(TIMESTAMP)} >= ?"
            params.append(_EPOCH + _MICROSECOND * since)
        out = []
        with connect("512MB", threads=2) as con:
            for columns, paths in groups.items():
                present = [n for n in self.schema.names if n in columns]
                file_list = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
                sql = f"SELECT {', '.join(map(_q, present))} FROM read_parquet({file_list}) WHERE {where}"
                out.append(self._conform(con.sql(sql, params=params).to_arrow_table()))
        return pa.concat_tables(out)

    def _conform(self, t: pa.Table) -> pa.Table:
        """``t`` in the kept schema: its columns cast, a column it lacks null."""
        names = t.column_names
        cols = [t.column(n).cast(f.type) if n in names else pa.nulls(t.num_rows, f.type) for n, f in
                zip(self.schema.names, self.schema, strict=True)]
        return pa.Table.from_arrays(cols, schema=self.schema)

    def _may_hold(self, stats: FileStats, keys: list, since: int | None) -> bool:
        """Whether the file's statistics allow a row of one of ``keys`` (sorted) at or after ``since``."""
        if stats.rows == 0:
            return False
        if since is not None and stats.times is not None and stats.times[1] <= since:
            return False
        if stats.keys is not None:
            lo, hi = stats.keys
            try:
                i = bisect.bisect_left(keys, lo)
            except TypeError:  # a key of another type than the file's: cannot tell
                return True
            return i < len(keys) and keys[i] <= hi
        return True

    def _merge(self, tail: _Tail | None, rows: pa.Table, lo: int | None) -> _Tail:
        """``rows`` (of one entity) added to ``tail``: the latest written version of each time; rows before ``lo``
        left out; for ``last`` the latest ``last`` times only."""
        t = rows if tail is None else pa.concat_tables([tail.rows, rows])
        if lo is not None:
            t = _at_or_after(t, lo)
        # stable: of two versions written at the same instant the one read later wins
        t = t.sort_by([(TIMESTAMP, "ascending"), (CREATED, "ascending")])
        if t.num_rows > 1:
            ts = t.column(TIMESTAMP).combine_chunks().cast(pa.int64()).to_numpy()
            keep = np.append(ts[1:] != ts[:-1], True)  # the last of each time: its latest ``created``
            if not keep.all():
                t = t.filter(pa.array(keep))
        if self.last is not None:
            if t.num_rows >= self.last:
                t = t.slice(t.num_rows - self.last)
                lo = int(t.column(TIMESTAMP)[0].cast(pa.int64()).as_py())
            else:
                lo = None
        return _Tail(t, lo)

    @staticmethod
    def _by_key(table: pa.Table, key: str) -> dict[object, pa.Table]:
        if table.num_rows == 0:
            return {}
        table = table.sort_by([(key, "ascending")])
        values = table.column(key).to_pylist()
        out, start = {}, 0
        for i in range(1, len(values) + 1):
            if i == len(values) or values[i] != values[start]:
                out[values[start]] = table.slice(start, i - start)
                start = i
        return out

    # answering -------------------------------------------------------------------------------------------------
    def rows(self, keys: list, since: int | None, retain: int | None) -> pa.Table:
        """Each of ``keys``' kept rows (the latest written version of each time, sorted by time, ``created``
        left out): those at or after ``since``, or (``last``) its latest ``last``."""
        want = list(dict.fromkeys(keys))
        load = [k for k in want if k not in self.tails or (since is not None and (self.tails[k].lo is None or
                                                                                  self.tails[k].lo > since))]
        load_floor = "" if since is None else _partition(since)
        first = min(f for f in (self.floor, load_floor if load else None) if f is not None)
        listing = self._list(first)
        if self.floor is not None:
            for part, files in self.seen.items():  # a file gone or replaced: what was kept may hold its rows
                now = listing.get(part, {})
                if now is not files and any(now.get(name) != inode for name, inode in files.items()):
                    self.clear()
                    return self.rows(keys, since, retain)
            self._refresh(listing, set(load))
        if load:
            self._load(listing, load, load_floor, since)
        out = self._answer(want, since, retain)
        self._forget_below_floor(listing)
        return out

    def _forget_below_floor(self, listing: dict[str, dict[str, int]] | None = None) -> None:
        """Keep the files seen (and the folders' listings) of the partitions a kept row can be in only."""
        floor = self.floor
        if listing is not None:
            self.seen = {p: f for p, f in listing.items() if floor is not None and p >= floor}
        else:
            self.seen = {p: f for p, f in self.seen.items() if floor is not None and p >= floor}
        self.dirs = {p: d for p, d in self.dirs.items() if floor is not None and p >= floor}

    def _refresh(self, listing: dict[str, dict[str, int]], skip: set) -> None:
        """The files not seen before, read into the kept entities' rows (those about to be read again aside): only
        those whose statistics can hold a row of a kept entity at or after its ``lo``; for ``last``, newest first,
        so that once an entity has its latest ``last`` times the older files are left unread (many files written
        by another writer since the last call)."""
        kept = sorted(k for k in self.tails if k not in skip)
        if not kept:
            return
        new = [(part, name, inode) for part, files in listing.items()
               if part >= self.floor and files is not self.seen.get(part)  # a folder unchanged: the same listing
               for name, inode in files.items() if self.seen.get(part, {}).get(name) != inode]
        if not new:
            return
        value_set = pa.array(kept, self.schema.field(self.key).type)
        since = self._least_lo(kept)
        candidates = []
        for part, name, inode in new:
            path = str(self.base / part / name)
            stats = file_stats(path, self.key, inode)
            if self._may_hold(stats, kept, since):
                candidates.append((path, stats))
        if self.last is None:  # every row at or after each entity's ``lo``: the order does not matter
            self._add(self._read(candidates, value_set, since))
            return
        candidates.sort(key=_newest_first)
        for chunk in self._chunks(candidates):
            chunk = [c for c in chunk if self._may_hold(c[1], kept, since)]
            if chunk:
                self._add(self._read(chunk, value_set, since))
                since = self._least_lo(kept)

    def _chunks(self, candidates: list) -> Iterator[list]:
        """Files newest first in growing chunks: the first as many as the times kept (single-row files), then
        twice as many each time."""
        size, i = self.last + 1, 0
        while i < len(candidates):
            yield candidates[i:i + size]
            i, size = i + size, size * 2

    def _least_lo(self, keys: list) -> int | None:
        los = [self.tails[k].lo for k in keys]
        return None if any(lo is None for lo in los) else min(los)

    def _add(self, rows: pa.Table) -> None:
        """Rows of kept entities merged into their tails."""
        for k, part in self._by_key(rows, self.key).items():
            old = self.tails[k]
            self.size -= old.rows.num_rows
            tail = self._merge(old, part, old.lo)
            self.tails[k] = tail
            self.size += tail.rows.num_rows

    def _load(self, listing: dict[str, dict[str, int]], load: list, floor: str, since: int | None) -> None:
        """``load``'s rows read from the files whose statistics can hold them: each entity's rows at or after
        ``since``, or (``last``) its latest ``last`` times: the files by their latest time, newest first, until no
        file left can hold a time among the latest ``last`` of an entity."""
        ordered = sorted(load)
        value_set = pa.array(ordered, self.schema.field(self.key).type)
        candidates = []
        for part, files in listing.items():
            if part < floor:
                continue
            for name, inode in files.items():
                path = str(self.base / part / name)
                stats = file_stats(path, self.key, inode)
                if self._may_hold(stats, ordered, since):
                    candidates.append((path, stats))
        got: dict[object, list[pa.Table]] = {k: [] for k in load}
        if self.last is None:
            for k, rows in self._by_key(self._read(candidates, value_set, since), self.key).items():
                got[k].append(rows)
        else:
            candidates.sort(key=_newest_first)
            times: dict[object, set[int]] = {k: set() for k in load}
            done = 0
            for chunk in self._chunks(candidates):
                for k, rows in self._by_key(self._read(chunk, value_set, None), self.key).items():
                    got[k].append(rows)
                    times[k].update(rows.column(TIMESTAMP).cast(pa.int64()).to_pylist())
                done += len(chunk)
                nxt = candidates[done][1].times if done < len(candidates) else None
                if nxt is not None and all(len(s) >= self.last and sorted(s)[-self.last] >= nxt[1]
                                           for s in times.values()):
                    break  # no file left can hold one of an entity's latest ``last`` times
        empty = self.schema.empty_table()
        for k in load:
            old = self.tails.pop(k, None)
            if old is not None:
                self.size -= old.rows.num_rows
            tail = self._merge(None, pa.concat_tables(got[k]) if got[k] else empty, since)
            if self.last is None:
                tail.lo = since
            self.tails[k] = tail
            self.size += tail.rows.num_rows

    def _answer_floor(self) -> None:
        if not self.tails:
            self.floor = None
            return
        los = [t.lo for t in self.tails.values()]
        self.floor = "" if any(lo is None for lo in los) else _partition(min(los))

    def _answer(self, want: list, since: int | None, retain: int | None) -> pa.Table:
        parts = []
        for k in want:
            self.tails.move_to_end(k)
            tail = self.tails[k]
            rows = tail.rows
            if since is not None:
                rows = _at_or_after(rows, since)
                if retain is not None and tail.lo is not None and tail.lo < since - retain:  # what a later push needs
                    cut = since - retain
                    self.size -= tail.rows.num_rows
                    tail.rows = _at_or_after(tail.rows, cut)
                    tail.lo = cut
                    self.size += tail.rows.num_rows
            parts.append(rows)
        self._answer_floor()
        out = pa.concat_tables(parts) if parts else self.schema.empty_table()
        return out.drop_columns([CREATED])

    def shrink(self, limit: int) -> None:
        """Drop the entities used least recently until at most ``limit`` rows are kept."""
        while self.size > limit and self.tails:
            _, tail = self.tails.popitem(last=False)
            self.size -= tail.rows.num_rows
        self._answer_floor()
        self._forget_below_floor()


_RECENT: OrderedDict[tuple, _Recent] = OrderedDict()  # per view (its folder, key, columns, ``last``)
_RECENT_LOCK = threading.Lock()


def clear_recent() -> None:
    """Forget every view's kept rows (as a new process would start)."""
    with _RECENT_LOCK:
        _RECENT.clear()


def _recent_for(base: Path, view: FeatureView, columns: tuple[str, ...], last: int | None) -> _Recent:
    full = view.arrow_schema()
    schema = pa.schema([full.field(view.join_key), full.field(TIMESTAMP), *(full.field(c) for c in columns),
                        full.field(CREATED)])
    ident = (str(base), view.join_key, columns, last, schema.to_string())
    with _RECENT_LOCK:
        hit = _RECENT.get(ident)
        if hit is None:
            hit = _RECENT[ident] = _Recent(base, view.join_key, schema, last)
        _RECENT.move_to_end(ident)
        return hit


def _evict(limit: int) -> None:
    """Drop the views used least recently while more than ``limit`` rows are kept (the last one used stays)."""
    with _RECENT_LOCK:
        while len(_RECENT) > MAX_RECENT_VIEWS or (len(_RECENT) > 1 and sum(r.size for r in _RECENT.values()) > limit):
            _RECENT.popitem(last=False)
