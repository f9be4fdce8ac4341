"""The offline store: per tenant and view, Parquet files partitioned by event date.

    $SFAI_HOME/features/<tenant>/<view>/date=YYYY-MM-DD/part-<content hash>.parquet

A batch is validated first, then every file is written under a temporary name and renamed into place, so a
failed ingest leaves nothing behind. The file name is the hash of the batch's content: ingesting the same
rows twice rewrites the same files instead of duplicating them.
"""

from __future__ import annotations

import hashlib
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
                tmp = staging / f"{name}.parquet"
                _write_parquet(part, tmp, view)
                moves.append((tmp, base / name / f"part-{digest}.parquet"))
            for tmp, final in moves:  # all files are written: now make them visible
                final.parent.mkdir(exist_ok=True)
                os.replace(tmp, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return WriteReport(table.num_rows, len(moves), sorted(m[1].parent.name for m in moves))

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
