"""History-view push latency vs what the view holds: steel (15-minute lags over a week), C-MAPSS (cycles), C22 (shots).

    .venv/bin/python benchmarks/bench_history_push.py                 # this tree (about 1-2 minutes)
    .venv/bin/python benchmarks/bench_history_push.py --code /tmp/hp_before --label before
    .venv/bin/python benchmarks/bench_history_push.py --quick         # smaller levels, a smoke run

A push of raw readings into a history view (``POST /v1/ingest/{view}``, MQTT) reads each entity's look-back from
the tenant's offline store (``pipelines/raw_ingest.py``). Every single-row push adds one Parquet file. For each
dataset and level this script fills a scratch tenant (``SFAI_HOME`` under /tmp, SQLite registry and online store):

- **steel**: 15 days of the DAEWOO file through ``sfai ingest``'s pipeline, then the next intervals stored one row
  per file (what single-row pushes store: the pipeline's own rows, written as ``Conformed`` one-row batches) until
  the look-back window (a week, the dates it covers) holds the level's number of files;
- **cmapss**: ``train_FD002.txt`` through the pipeline without the last cycles of six engines, then those cycles one
  row per file up to the level's file count;
- **c22**: the demo's shots pushed as one batch (stored shots = the level), and at one level the last 1,000 of them
  stored one per file.

Then it times ``FeatureStore.ingest(view, [one reading])`` (the code path of a REST or MQTT push, without HTTP) for
the next readings: ``cold`` is the first push after the store is opened anew (a server restart: no cache), p50 and
p95 are over the pushes after it. Each measured push must store its row; at the end the pushed steel and C-MAPSS
rows are compared with the file pipeline's (exactly).

``--code DIR`` runs another checkout's code (e.g. ``git worktree add /tmp/hp_before HEAD``) with this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--code", default=str(ROOT), help="the checkout whose code is measured")
    p.add_argument("--label", default="", help="a name for this run in the table")
    p.add_argument("--pushes", type=int, default=12, help="pushes timed per level")
    p.add_argument("--quick", action="store_true", help="small levels only")
    p.add_argument("--only", nargs="*", default=["steel", "cmapss", "c22"])
    p.add_argument("--json", action="store_true", help="one JSON line per level too")
    return p.parse_args()


A = _args()
sys.path.insert(0, str(Path(A.code).resolve()))
SHARED = Path(os.environ.get("SFAI_SHARED", ROOT.parent / "shared"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from feature_store.online import open_online_store  # noqa: E402
from feature_store.store import Conformed, FeatureStore  # noqa: E402
from pipelines import raw_ingest, views  # noqa: E402
from pipelines.canonical import TIMESTAMP  # noqa: E402
from pipelines.runner import run_pipeline  # noqa: E402
from serving import tenancy  # noqa: E402
from serving.db import Database  # noqa: E402
from serving.settings import Settings  # noqa: E402

ROWS: list[dict] = []


class Tenant:
    def __init__(self, home: Path, name: str, ksic: str) -> None:
        self.home, self.name = home, name
        self.settings = Settings(home=home, environment="test", online_store="sqlite")
        self.db = Database(self.settings.resolved_database_url)
        tenancy.ensure_tenant(self.db, name, ksic)
        self.fs = self.open()

    def open(self) -> FeatureStore:
        """A fresh store (as after a restart): no cache of this process carries over."""
        from feature_store import offline

        reset = getattr(offline, "clear_recent", None)  # this change's per-view cache (none before it)
        if reset is not None:
            reset()
        return FeatureStore(self.settings, self.db, self.name,
                            online=open_online_store("sqlite", self.home / "online" / self.name))


def stored(fs: FeatureStore, view: str) -> pd.DataFrame:
    files = fs.offline.files(fs.tenant, view)
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True).drop(columns=["created"])
    key = views.VIEWS[view].join_key
    return df.sort_values([key, TIMESTAMP], kind="stable").reset_index(drop=True)


def records(frame: pd.DataFrame, columns) -> list[dict]:  # noqa: ANN001
    out = frame[list(columns)].copy()
    out[TIMESTAMP] = out[TIMESTAMP].map(lambda t: pd.Timestamp(t).isoformat())
    for c in out.columns:  # the readings as a meter sends them (3.17), not the float32's float64 digits
        if out[c].dtype == np.float32:
            out[c] = out[c].astype(str).astype(np.float64)
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in out.to_dict("records")]


def store_one_row_files(fs: FeatureStore, view_name: str, rows: pd.DataFrame) -> None:
    """Each row as its own file: what a single-row push stores (the same columns and values)."""
    import pyarrow as pa

    view = fs.get_view(view_name)
    for i in range(len(rows)):
        table = pa.Table.from_pandas(rows.iloc[i:i + 1], preserve_index=False)
        fs.ingest(view_name, Conformed(view, fs.conform(view, table).table, False))


def time_pushes(t: Tenant, view: str, recs: list[dict]) -> list[float]:
    t.fs = t.open()
    out = []
    for r in recs:
        start = time.perf_counter()
        rep = t.fs.ingest(view, [r])
        out.append((time.perf_counter() - start) * 1000)
        assert rep.rows == 1, rep
    return out


def report(dataset: str, level: str, files: int, window_files: int, rows: int, ms: list[float]) -> None:
    warm = ms[1:] or ms
    q = statistics.quantiles(warm, n=20, method="inclusive") if len(warm) > 1 else [warm[0]] * 19
    row = {"code": A.label, "dataset": dataset, "level": level, "files": files, "window_files": window_files,
           "rows": rows, "cold_ms": round(ms[0], 1), "p50_ms": round(statistics.median(warm), 1),
           "p95_ms": round(q[18], 1), "pushes": len(ms)}
    ROWS.append(row)
    print(f"  {dataset:7} {level:>18}: files {files:>6,} (look-back {window_files:>5,}) rows {rows:>8,}  cold "
          f"{row['cold_ms']:8.1f} ms  p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms", flush=True)
    if A.json:
        print(json.dumps(row), flush=True)


# -- steel ---------------------------------------------------------------------------------------------------------
def bench_steel(tmp: Path) -> None:
    src = SHARED / "datasets" / "steel_energy" / "steel_industry_2018_jan_oct.csv"
    lines = src.read_text().splitlines()
    levels = [100, 400] if A.quick else [70, 375, 980]
    k = A.pushes
    head_days = 15
    extra = levels[-1] + k + 10  # intervals after the head: one-row files and timed pushes
    full = tmp / "steel_full.csv"
    full.write_text("\n".join([lines[0], *lines[1:1 + 96 * head_days + extra]]) + "\n")
    head = tmp / "steel_head.csv"
    head.write_text("\n".join([lines[0], *lines[1:1 + 96 * head_days]]) + "\n")
    ref = Tenant(tmp / "home", "ref", "C24")
    run_pipeline("steel-energy", full, store=ref.fs)
    expected = stored(ref.fs, "steel_energy_features")
    tail = expected.iloc[96 * head_days:].reset_index(drop=True)
    t = Tenant(tmp / "home", "steel", "C24")
    run_pipeline("steel-energy", head, store=t.fs)
    d = raw_ingest.DERIVATIONS["steel_energy_features"]
    at, lookback = 0, d.lookback * pd.Timedelta(minutes=15)
    for level in levels:
        n = max(level - at, 0)  # one-row files (and timed pushes) stored after the pipeline's days: ``level``
        store_one_row_files(t.fs, "steel_energy_features", tail.iloc[at:at + n])
        at += n
        push = tail.iloc[at:at + k]
        since = pd.Timestamp(push[TIMESTAMP].iloc[0]) - lookback
        files = t.fs.offline.files(t.name, "steel_energy_features")
        window = [f for f in files if Path(f).parent.name >= f"date={since:%Y-%m-%d}"]
        ms = time_pushes(t, "steel_energy_features", records(push, ["meter_id", TIMESTAMP, *d.raw]))
        at += k
        report("steel", f"{level} one-row files", len(files), len(window),
               t.fs.offline.row_count(t.name, "steel_energy_features"), ms)
    got = stored(t.fs, "steel_energy_features")
    want = expected.iloc[:len(got)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


# -- C-MAPSS -------------------------------------------------------------------------------------------------------
def bench_cmapss(tmp: Path) -> None:
    src = SHARED / "datasets" / "cmapss" / "train_FD002.txt"
    rows = [r.split() for r in src.read_text().splitlines() if r.strip()]
    engines = {"1", "2", "3", "4", "5", "6"}
    levels = [40, 100] if A.quick else [40, 100, 400]
    k = A.pushes
    per_engine = (levels[-1] + k * len(levels)) // len(engines) + 4
    last = {u: max(int(r[1]) for r in rows if r[0] == u) for u in engines}
    held = {u: set(range(last[u] - per_engine + 1, last[u] + 1)) for u in engines}
    a, b = tmp / "a" / "train_FD002.txt", tmp / "b" / "train_FD002.txt"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    b.write_text("\n".join(" ".join(r) for r in rows if not (r[0] in engines and int(r[1]) in held[r[0]])) + "\n")
    ref = Tenant(tmp / "home", "cref", "C31")
    run_pipeline("cmapss", a, store=ref.fs)
    fit = raw_ingest.load_fit(ref.settings.home, "cref", "cmapss")
    t = Tenant(tmp / "home", "cmapss", "C31")
    run_pipeline("cmapss", b, store=t.fs, fitted=fit)
    expected = stored(ref.fs, "cmapss_features")
    unit = expected["unit_id"].str.rsplit("u", n=1).str[-1].str.lstrip("0")
    is_held = np.array([u in engines and c in held[u] for u, c in zip(unit, expected["cycle"], strict=True)])
    tail = expected[is_held].sort_values([TIMESTAMP, "unit_id"], kind="stable").reset_index(drop=True)
    d = raw_ingest.DERIVATIONS["cmapss_features"]
    at = 0
    for level in levels:
        files = t.fs.offline.files(t.name, "cmapss_features")
        n = max(level - len(files), 0)
        store_one_row_files(t.fs, "cmapss_features", tail.iloc[at:at + n])
        at += n
        push = tail.iloc[at:at + k]
        files = t.fs.offline.files(t.name, "cmapss_features")
        ms = time_pushes(t, "cmapss_features", records(push, ["unit_id", TIMESTAMP, *d.raw]))
        at += k
        report("cmapss", f"{len(files)} files", len(files), len(files),
               t.fs.offline.row_count(t.name, "cmapss_features"), ms)
    got = stored(t.fs, "cmapss_features")
    done = set(zip(tail["unit_id"].iloc[at:], tail[TIMESTAMP].iloc[at:], strict=True))
    keep = [(u, ts) not in done for u, ts in zip(expected["unit_id"], expected[TIMESTAMP], strict=True)]
    pd.testing.assert_frame_equal(got, expected[keep].reset_index(drop=True), check_exact=True)


# -- C22 -----------------------------------------------------------------------------------------------------------
def bench_c22(tmp: Path) -> None:
    from pipelines import demo

    d = raw_ingest.DERIVATIONS["c22_cycle_features"]
    k = A.pushes
    # machines, days (about 2,500 shots a machine-day), shots stored one per file after them
    levels = [(1, 1, 0), (1, 1, 300), (2, 10, 0)] if A.quick else [(1, 1, 0), (1, 1, 1000), (4, 20, 0)]
    for i, (machines, days, singles) in enumerate(levels):
        shots = demo.generate(machines=machines, days=days).tables["sensor_readings"].data
        shots = shots[["machine_id", TIMESTAMP, *d.raw]].sort_values([TIMESTAMP, "machine_id"], kind="stable")
        base, one, push = shots.iloc[:-k - singles], shots.iloc[-k - singles:-k], shots.iloc[-k:]
        t = Tenant(tmp / "home", f"c22x{i}", "C22")
        t.fs.apply(views.c22_cycle_features)
        t.fs.ingest("c22_cycle_features", base.reset_index(drop=True))
        if singles:  # their rows as a push computes them (a batch into another tenant), then one file each
            ref = Tenant(tmp / "home", f"c22r{i}", "C22")
            ref.fs.apply(views.c22_cycle_features)
            ref.fs.ingest("c22_cycle_features", pd.concat([base, one]).reset_index(drop=True))
            rows = stored(ref.fs, "c22_cycle_features").sort_values([TIMESTAMP, "machine_id"], kind="stable")
            store_one_row_files(t.fs, "c22_cycle_features", rows.iloc[len(base):].reset_index(drop=True))
        files = t.fs.offline.files(t.name, "c22_cycle_features")
        recs = [{**r, TIMESTAMP: pd.Timestamp(r[TIMESTAMP]).isoformat()} for r in push.to_dict("records")]
        ms = time_pushes(t, "c22_cycle_features", recs)
        level = f"{len(base) + len(one):,} shots" + (f", {singles} one-row files" if singles else "")
        report("c22", level, len(files), len(files), t.fs.offline.row_count(t.name, "c22_cycle_features"), ms)


def main() -> None:
    print(f"history push latency ({A.label or A.code}); {A.pushes} single-reading pushes per level", flush=True)
    with tempfile.TemporaryDirectory(prefix="sfai-bench-hp-") as tmp:
        for name in A.only:
            sub = Path(tmp) / name
            sub.mkdir()
            t0 = time.perf_counter()
            {"steel": bench_steel, "cmapss": bench_cmapss, "c22": bench_c22}[name](sub)
            print(f"  ({name}: {time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print("| code | dataset | level | files | files in look-back | rows | cold ms | p50 ms | p95 ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in ROWS:
        print(f"| {r['code']} | {r['dataset']} | {r['level']} | {r['files']:,} | {r['window_files']:,} | "
              f"{r['rows']:,} | {r['cold_ms']:.0f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} |")


if __name__ == "__main__":
    main()
