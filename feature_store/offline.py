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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
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
