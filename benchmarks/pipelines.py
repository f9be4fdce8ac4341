"""Pipeline throughput: rows per second for each adapter + validation + transforms + feature-store write,
on the local engine and on a local Ray with 1 and 2 workers, plus a 10x replicated C-MAPSS train set.

    .venv/bin/python benchmarks/pipelines.py [--shared ../shared] [--replicate 10] [--skip-10x]

Peak memory is the driver's peak RSS (ru_maxrss) after each run; Ray workers' memory is not included.
Goal (issue 4): at least 1M raw sensor rows per minute end to end on this machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

# run as a script, this file's folder comes first on sys.path and its name would hide the pipelines package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

DATASETS = {
    "cmapss": "cmapss",
    "ai4i": "ai4i2020/ai4i2020_train.csv",
    "secom": "secom/secom_train.csv",
    "steel-energy": "steel_energy/steel_industry_2018_jan_oct.csv",
}


def replicate_cmapss(src: Path, dst: Path, times: int) -> Path:
    """``times`` copies of every train_FD00x.txt with engine numbers shifted (copy k: unit + 1000 k)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("train_FD00*.txt")):
        lines = f.read_text().splitlines()
        with open(dst / f.name, "w") as out:
            for k in range(times):
                for ln in lines:
                    unit, rest = ln.split(" ", 1)
                    out.write(f"{int(unit) + 1000 * k} {rest}\n")
    return dst


def fresh_store(home: Path):  # noqa: ANN201
    from feature_store.store import FeatureStore
    from serving import tenancy
    from serving.db import Database
    from serving.settings import Settings

    shutil.rmtree(home, ignore_errors=True)
    s = Settings(home=home, environment="test")
    s.ensure_home()
    db = Database(s.resolved_database_url)
    tenancy.create_tenant(db, "bench", "C31")
    return FeatureStore(s, db, "bench")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    default_shared = os.environ.get("SFAI_SHARED", str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--shared", default=default_shared)
    ap.add_argument("--replicate", type=int, default=10)
    ap.add_argument("--skip-10x", action="store_true")
    args = ap.parse_args()
    import ray

    from pipelines.runner import run_pipeline

    data = Path(args.shared) / "datasets"
    tmp = Path(tempfile.mkdtemp(prefix="sfai-bench-"))
    rows = []
    engines = [("local", None), ("ray", 1), ("ray", 2)]
    cases = [(name, data / rel) for name, rel in DATASETS.items()]
    if not args.skip_10x:
        cases.append((f"cmapss x{args.replicate}", replicate_cmapss(data / "cmapss", tmp / "cmapss10", args.replicate)))
    try:
        for engine, workers in engines:
            if engine == "ray":
                if ray.is_initialized():
                    ray.shutdown()
                ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR")
            for label, path in cases:
                if label.startswith("cmapss x") and engine == "ray" and workers == 1:
                    continue  # keep the run short: 10x on local and on 2 workers
                store = fresh_store(tmp / "home")
                dataset = label.split(" ")[0]
                t = time.perf_counter()
                rep = run_pipeline(dataset, path, store=store, engine=engine, workers=workers, write_online=True)
                wall = time.perf_counter() - t
                store.close()
                rows.append((label, f"{engine}" + (f"-{workers}" if workers else ""), rep.source_rows, wall,
                             rep.seconds.get("transform", 0), rep.seconds.get("write", 0), peak_mb()))
                print(f"{rows[-1][0]:>14} {rows[-1][1]:>7} {rep.source_rows:>9} rows {wall:7.2f} s", flush=True)  # noqa: T201
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print()  # noqa: T201
    print("| dataset | engine | raw rows | wall s | transform s | write s | rows/s | rows/min | peak RSS MB |")  # noqa: T201
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")  # noqa: T201
    for label, eng, n, wall, tr, wr, mem in rows:
        print(f"| {label} | {eng} | {n:,} | {wall:.2f} | {tr:.2f} | {wr:.2f} | {n / wall:,.0f} | {60 * n / wall:,.0f} | {mem:,.0f} |")  # noqa: T201, E501


if __name__ == "__main__":
    main()
