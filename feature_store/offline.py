"""The offline store: per tenant and view, Parquet files partitioned by event date.

    $SFAI_HOME/features/<tenant>/<view>/date=YYYY-MM-DD/part-<content hash>.parquet

A batch is validated first, then every file is written under a temporary name and renamed into place, so a
failed ingest leaves nothing behind. The file name is the hash of the batch's content: ingesting the same
rows twice rewrites the same files instead of duplicating them.

Many small batches (an MES pushing one row per lot) make many small files; :meth:`OfflineStore.compact` merges
each partition's files into one, ``part-c<hash>.parquet``, and records the merged batches' hashes in the
partition's ``compacted.json``, so a batch ingested again after compaction is still recognised and not
duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

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
    rows: int  # rows in the compacted partitions (unchanged by compaction)


COMPACTED = "compacted.json"  # per partition: the batch hashes merged into its part-c file(s)


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


def _write_parquet(table: pa.Table, path: Path, view: FeatureView) -> None:
    """Parquet tuned for feature files: statistics only on the columns reads prune by (time, entity), dictionaries
    only for strings, and zstd where a file is big enough to repay its per-column set-up (a wide view split into
    many small daily files would otherwise spend most of its write time there)."""
    names = table.schema.names
    stats = [c for c in (TIMESTAMP, CREATED, view.join_key) if c in names]
    dictionary = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    compression = "zstd" if table.num_rows >= SMALL_FILE_ROWS else "snappy"
    pq.write_table(table, path, compression=compression, row_group_size=256_000, write_statistics=stats,
                   use_dictionary=dictionary)


def _merged(part_dir: Path) -> set[str]:
    """The batch hashes already merged into this partition's compacted file."""
    try:
        return set(json.loads((part_dir / COMPACTED).read_text()))
    except (OSError, ValueError):
        return set()


class OfflineStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._ranges: dict[str, tuple] = {}  # file -> (min, max) event time; files are immutable

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
                if digest in _merged(base / name) or (base / name / f"part-{digest}.parquet").exists():
                    continue  # this batch is here already (a retry, a rerun): kept as first written, so the
                    # ``created`` times that ``as_known_at`` reads stay those of the first arrival
                tmp = staging / f"{name}.parquet"
                _write_parquet(part, tmp, view)
                moves.append((tmp, base / name / f"part-{digest}.parquet"))
            for tmp, final in moves:  # all files are written: now make them visible
                final.parent.mkdir(exist_ok=True)
                os.replace(tmp, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return WriteReport(table.num_rows, len(moves), sorted(m[1].parent.name for m in moves))

    def compact(self, tenant: str, view: FeatureView, *, min_files: int = 8) -> CompactReport:
        """Merge the files of every partition holding at least ``min_files`` into one (rows sorted by event time
        and entity). The merged file is complete before the small ones go, so a reader sees every row at every
        moment (for an instant some twice, which point-in-time reads resolve); a reader that listed the small
        files just before they were removed fails with a missing file and can be run again."""
        base = self.view_dir(tenant, view.name)
        partitions = before = after = rows = 0
        for part_dir in sorted(base.glob("date=*")) if base.exists() else []:
            files = sorted(part_dir.glob("part-*.parquet"))
            if len(files) < max(2, min_files):
                continue
            table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
            keys = [(TIMESTAMP, "ascending")] + ([(view.join_key, "ascending")] if view.join_key in table.schema.names
                                                 else [])
            table = table.sort_by(keys)
            digests = sorted(f.stem.removeprefix("part-") for f in files)
            name = "c" + hashlib.sha256("\n".join(digests).encode()).hexdigest()[:23]
            staging = base / f".staging-{uuid.uuid4().hex}"
            staging.mkdir()
            try:
                tmp = staging / "merged.parquet"
                _write_parquet(table, tmp, view)
                merged = _merged(part_dir) | {d for d in digests if not d.startswith("c")}
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
        return CompactReport(partitions, before, after, rows)

    def files(self, tenant: str, view: str) -> list[str]:
        base = self.view_dir(tenant, view)
        if not base.exists():
            return []
        return sorted(str(p) for p in base.glob("date=*/part-*.parquet"))

    def may_repeat_keys(self, files: list[str]) -> bool:
        """Whether two files could hold the same (entity, event time): their time ranges overlap.

        A batch never repeats an (entity, time) within itself (``validate.conform`` refuses that), so when
        no two files overlap in time a point-in-time join can skip the "latest written wins" step.
        """
        ranges = sorted(self._time_range(f) for f in files)
        return any(b[0] <= a[1] for a, b in zip(ranges, ranges[1:], strict=False))

    def _time_range(self, path: str) -> tuple:
        hit = self._ranges.get(path)
        if hit is None:
            md = pq.ParquetFile(path).metadata
            col = md.schema.names.index(TIMESTAMP)
            lo = hi = None
            for i in range(md.num_row_groups):
                st = md.row_group(i).column(col).statistics
                if st is None or not st.has_min_max:
                    return (float("-inf"), float("inf"))
                lo = st.min if lo is None else min(lo, st.min)
                hi = st.max if hi is None else max(hi, st.max)
            hit = self._ranges[path] = (lo, hi)
        return hit

    def row_count(self, tenant: str, view: str) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files(tenant, view))
