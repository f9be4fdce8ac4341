"""Run a pipeline: read -> validate (quarantine) -> fit on the driver -> transform per entity partition
(locally or on Ray) -> write feature views.

    report = run_pipeline("cmapss", "train_FD001.txt", store=FeatureStore.for_tenant("acme"), engine="ray")

Ray: ``SFAI_RAY_ADDRESS`` (or ``ray_address=``) joins an existing cluster; otherwise a local Ray starts with
``workers`` CPUs. Work is split into partitions of whole entities (an entity's rows never straddle two
partitions, so per-entity windows are exact), balanced by row count; each partition is one Ray task
running the same plain DataFrame function the local engine and the tests call.

Re-runs are idempotent: the partitioning is fixed by the data (not by the engine or worker count), the
transforms are deterministic, and the offline store names files by content, so the same input writes the
same files again instead of adding rows; the quarantine file is named by a digest of the input.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pipelines.canonical import SOURCE_ROW, TIMESTAMP
from pipelines.defaults import DEFAULT_MAX_BAD_SHARE, MAX_WORKERS
from pipelines.jobs import Job, Output, get_job
from pipelines.raw_ingest import save_fit
from pipelines.transforms.missing import handle_missing
from pipelines.validate import Validation, validate, write_quarantine
from serving.errors import InvalidInput
from serving.settings import check_ray_address, ray_address

ENGINES = ("local", "ray")
MAX_PARTITIONS = 16  # fixed by the data, so that any engine/worker count writes the same files
MIN_PARTITION_ROWS = 5_000
PIPELINE_VERSION = "1"


@dataclass(slots=True)
class RunReport:
    dataset: str
    tenant: str | None
    run_id: str
    engine: str
    workers: int | None
    source: str
    source_rows: int
    rows_ok: int
    rows_quarantined: int
    bad_share: float
    reasons: dict[str, int]
    quarantine: str | None
    warnings: list[str]  # what the user should know about a file that was read anyway (labels absent, ...)
    entities: int
    partitions: int
    views: dict[str, int] = field(default_factory=dict)  # view -> rows written
    missing: dict = field(default_factory=dict)
    fitted: dict = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    rows_per_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def check_workers(dataset: str, workers: object, option: str = "workers") -> None:
    """``workers`` is None (all CPUs) or a whole number from 1 to MAX_WORKERS; else one-line InvalidInput."""
    ok = workers is None or (isinstance(workers, int) and not isinstance(workers, bool) and 1 <= workers <= MAX_WORKERS)
    if not ok:
        raise InvalidInput(f"{dataset}: {option} must be a whole number from 1 to {MAX_WORKERS}, not {workers!r}")


def input_digest(job: Job, path: str | Path | None, read_kwargs: dict) -> str:
    """A digest of what was read (file bytes, options, pipeline version): names the run."""
    h = hashlib.sha256(f"{job.dataset}|{PIPELINE_VERSION}|{sorted(read_kwargs.items())}".encode())
    if path is not None:
        p = Path(path)
        files = sorted(p.glob("*FD00*.txt")) if p.is_dir() else [p]
        for f in files:
            if f.is_file():
                h.update(f.name.encode())
                with open(f, "rb") as fh:
                    for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                        h.update(chunk)
    return f"{job.dataset}-{h.hexdigest()[:16]}"


def partition_by_entity(frame: pd.DataFrame, key: str, parts: int | None = None) -> list[pd.DataFrame]:
    """Sort by (entity, time) and cut into contiguous groups of whole entities with balanced row counts."""
    df = frame.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)
    if not len(df):
        return []
    sizes = df.groupby(key, sort=True).size()
    if parts is None:
        parts = min(MAX_PARTITIONS, len(sizes), max(1, math.ceil(len(df) / MIN_PARTITION_ROWS)))
    parts = max(1, min(parts, len(sizes)))
    ends = np.cumsum(sizes.to_numpy())
    # entity i goes to the partition where its first row falls
    first = ends - sizes.to_numpy()
    group = np.minimum((first * parts) // len(df), parts - 1)
    cut = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    bounds = [*first[cut].tolist(), len(df)]
    return [df.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _apply(transform: Callable, batch: pd.DataFrame, params: object, uses_params: bool) -> pd.DataFrame:
    return transform(batch, params) if uses_params else transform(batch)


def _progress(total: int, desc: str, enabled: bool):  # noqa: ANN202
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="part", file=sys.stderr, disable=not enabled, leave=False)


def ray_init(workers: int | None = None, address: str | None = None) -> str:
    """Connect to ``address`` / ``SFAI_RAY_ADDRESS``, or start a local Ray with ``workers`` CPUs."""
    import ray

    address = address or ray_address()
    if ray.is_initialized():
        return "existing"
    if address:
        check_ray_address(address)
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        return address
    # address="local": always a new local instance, never a cluster someone else left running on this host
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    return "local"


def _run_output(
    out: Output, parts: Sequence[pd.DataFrame], params: object, engine: str, progress: bool
) -> pd.DataFrame:
    bar = _progress(len(parts), out.view.name, progress)
    try:
        if engine == "local":
            results = []
            for p in parts:
                results.append(_apply(out.transform, p, params, out.uses_params))
                bar.update(1)
        else:
            import ray

            task = ray.remote(num_cpus=1)(_apply)
            params_ref = ray.put(params)
            refs = [task.remote(out.transform, p, params_ref, out.uses_params) for p in parts]
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                bar.update(len(done))
            results = ray.get(refs)
    finally:
        bar.close()
    return pd.concat(results, ignore_index=True) if results else pd.DataFrame()


def transform(
    job: Job,
    tables: dict[str, pd.DataFrame],
    *,
    engine: str = "local",
    partitions: int | None = None,
    progress: bool = False,
    fitted: object = None,
) -> tuple[dict[str, pd.DataFrame], object, int]:
    """The feature frames of every output of ``job`` from validated tables (no store involved). ``fitted``: the
    parameters to use instead of fitting them on ``tables`` (e.g. a tenant's C-MAPSS regimes)."""
    params = fitted if fitted is not None else job.prepare(tables) if job.prepare else None
    frames, n_parts = {}, 0
    for out in job.outputs:
        if out.table not in tables:  # a file without labels (rows to score): its features only
            continue
        key = out.view.join_key
        parts = partition_by_entity(tables[out.table], key, partitions)
        n_parts = max(n_parts, len(parts))
        frames[out.view.name] = _run_output(out, parts, params, engine, progress)
    return frames, params, n_parts


def _write_online(store, batch, frame: pd.DataFrame) -> int:  # noqa: ANN001 - a FeatureStore, a store.Conformed
    """The online store gets the latest row per entity only: choosing it in pandas first is much faster than
    handing every row to ``latest_rows`` (a Python loop over rows x features). ``batch`` is ``frame`` conformed
    (same rows, same order), so the rows chosen are taken from it and not checked again."""
    from feature_store.online.base import latest_rows

    view = batch.view
    keys = frame[[view.join_key, TIMESTAMP]].reset_index(drop=True)  # positions, whatever the frame's index
    latest = keys.sort_values([view.join_key, TIMESTAMP], kind="stable").groupby(view.join_key, sort=False).tail(1)
    table = batch.table.take(pa.array(latest.index.to_numpy()))
    return store.online.write(store.tenant, view.name, latest_rows(view, table))


def _check_fits(dataset: str, job: Job, tables: dict[str, pa.Table]) -> dict:
    """Every feature table conformed to its view (what ``store.ingest`` checks), so that a run that cannot be
    stored fails before it registers views or writes a first view without the second. The ``store.Conformed``
    batches (empty tables left out) go to ``store.ingest`` as they are: it does not check them again."""
    from feature_store.store import FeatureStore

    views = {o.view.name: o.view for o in job.outputs}
    batches = {}
    for name, table in tables.items():
        if not table.num_rows:
            continue
        try:
            batches[name] = FeatureStore.conform(views[name], table)
        except InvalidInput as e:
            raise InvalidInput(
                f"{dataset}: the {name} features do not fit the view ({e}); nothing was written"
            ) from None
    return batches


def _first_bad(checked: Validation) -> str:
    """The first quarantined row and why, shortened: a file refused as a whole (a date format not read, a column
    of text) says what is wrong on the line that refuses it."""
    q = checked.quarantined
    r = q.loc[q[SOURCE_ROW].astype("int64").idxmin()]
    reason = r["reason"] if len(r["reason"]) <= 160 else r["reason"][:157] + "..."
    return f"first: row {r[SOURCE_ROW]}{f' of {r.file}' if r.file else ''}: {reason}"


def run_pipeline(
    dataset: str,
    path: str | Path | None = None,
    *,
    store=None,  # noqa: ANN001 - a feature_store.FeatureStore; None: transform only (benchmarks)
    engine: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    partitions: int | None = None,
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE,
    quarantine_root: str | Path | None = None,
    write_online: bool = True,
    progress: bool = False,
    read_kwargs: dict | None = None,
    on_stage: Callable[[str], None] | None = None,
    fitted: object = None,
) -> RunReport:
    """Run ``dataset``'s pipeline on ``path`` into ``store``; raise InvalidInput when too many rows are bad.

    ``fitted``: parameters to use instead of fitting them on this input (C-MAPSS regimes, as ``prepare`` gives them);
    a run into a store keeps its fit for the push ingest of its views (``raw_ingest.save_fit``)."""
    if engine not in ENGINES:
        raise InvalidInput(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if not 0 <= max_bad_share <= 1:
        raise InvalidInput(f"max_bad_share must be between 0 and 1, not {max_bad_share}")
    check_workers(dataset, workers)
    job = get_job(dataset)
    read_kwargs = dict(read_kwargs or {})
    if job.file_required and path is None:
        raise InvalidInput(f"{dataset}: a source file is needed")
    stage = on_stage or (lambda _s: None)
    secs: dict[str, float] = {}
    t0 = time.perf_counter()

    stage("read")
    canonical = job.read(Path(path), **read_kwargs) if job.file_required else job.read(None, **read_kwargs)
    secs["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    stage("validate")
    checked = validate(canonical)
    run_id = input_digest(job, path, read_kwargs)
    tenant = getattr(store, "tenant", None)
    qroot = Path(quarantine_root) if quarantine_root else (store.settings.home / "quarantine" if store else None)
    qpath = write_quarantine(qroot, tenant or "_", dataset, run_id, checked, canonical.source) if qroot else None
    secs["validate"] = time.perf_counter() - t
    if checked.bad_share > max_bad_share:
        top = ", ".join(f"{k}: {n}" for k, n in sorted(checked.reasons.items(), key=lambda kv: -kv[1])[:3])
        raise InvalidInput(
            f"{dataset}: {checked.bad_rows} of {checked.source_rows} rows ({checked.bad_share:.1%}) failed validation, "
            f"more than the allowed {max_bad_share:.1%}; nothing was written ({top}; {_first_bad(checked)}; rows and "
            f"reasons in {qpath or 'the quarantine'})"
        )

    primary = checked.tables[job.primary]
    _, missing = handle_missing(
        primary, list(job.measurements), strategy=job.missing_strategy, key=canonical.tables[job.primary].key,
        keep=job.gaps_kept,
    )

    t = time.perf_counter()
    stage("transform")
    if engine == "ray":
        ray_init(workers, ray_address)
    frames, params, n_parts = transform(job, checked.tables, engine=engine, partitions=partitions, progress=progress,
                                        fitted=fitted)
    secs["transform"] = time.perf_counter() - t

    written: dict[str, int] = {}
    if store is not None:
        t = time.perf_counter()
        stage("write")
        # one chunk per column: the store names files by content, and Arrow-backed string columns would
        # otherwise keep the partition boundaries as chunks (another partitioning, another file name)
        tables = {name: pa.Table.from_pandas(f, preserve_index=False).combine_chunks() for name, f in frames.items()}
        batches = _check_fits(dataset, job, tables)  # before anything is registered or written
        store.apply(*(o.view for o in job.outputs))
        for name, frame in frames.items():
            written[name] = store.ingest(name, batches[name], write_online=False).rows if name in batches else 0
            if write_online and name in batches:
                _write_online(store, batches[name], frame)
        if params is not None:  # the push ingest of these views (pipelines.raw_ingest) normalises with this fit
            save_fit(store.settings.home, store.tenant, dataset, params)
        secs["write"] = time.perf_counter() - t
    else:
        written = {name: len(f) for name, f in frames.items()}
    for o in job.outputs:  # a view the file had no table for (labels of rows to score) got no rows
        written.setdefault(o.view.name, 0)
    secs["total"] = time.perf_counter() - t0
    fitted = params.summary() if hasattr(params, "summary") else {}
    md = missing.as_dict()
    md.pop("columns")
    md["constant"] = len(md["constant"])
    md["all_missing"] = len(md["all_missing"])
    return RunReport(
        dataset=dataset,
        tenant=tenant,
        run_id=run_id,
        engine=engine,
        workers=workers,
        source=canonical.source,
        source_rows=canonical.source_rows,
        rows_ok=len(primary),
        rows_quarantined=checked.bad_rows,
        bad_share=round(checked.bad_share, 6),
        reasons=checked.reasons,
        quarantine=str(qpath) if qpath else None,
        warnings=canonical.warnings,
        entities=int(primary[canonical.tables[job.primary].key].nunique()),
        partitions=n_parts,
        views=written,
        missing=md,
        fitted=fitted,
        seconds={k: round(v, 3) for k, v in secs.items()},
        rows_per_s=round(canonical.source_rows / secs["total"], 1) if secs["total"] else 0.0,
    )
