"""How many usage records a second the one usage chain takes when several server processes append at once.

Every authenticated call's usage record joins one hash chain per database (``serving.usage.append_entries``): each
process's usage writer appends its batch in one transaction that holds the chain head's lock (PostgreSQL: a row
lock on ``usage_chain``; SQLite: the database's write lock), so the processes' commits take turns, whatever their
tenants. This measures where that ceiling is: ``--writers`` processes, each with its own tenants, append batches of
``--batch`` records as fast as they can for ``--seconds``; it prints records a second and the commit latency.

    .venv/bin/python benchmarks/usage_chain_writers.py --database postgresql://postgres@127.0.0.1:5432/postgres

It creates and drops its own database (PostgreSQL) or file (SQLite, the default without ``--database``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # benchmarks/serving.py hides the package
sys.path.insert(0, str(_HERE.parent))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from serving import tenancy  # noqa: E402
from serving.db import Database  # noqa: E402
from serving.usage import ChainKey, UsageEntry, append_entries, verify_chain  # noqa: E402

SECRET = "benchmark-secret-0123456789"


def _writer(url: str, tenant_ids: list[int], batch: int, seconds: float, start: float, out) -> None:  # noqa: ANN001
    db = Database(url, run_migrations=False)
    key = ChainKey(SECRET)
    raw = db.engine.raw_connection()
    lat, n, i = [], 0, 0
    while time.time() < start:
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        now = datetime.now(UTC)
        entries = [UsageEntry(now, tenant_ids[(i + j) % len(tenant_ids)], "kbench", "quality", "POST",
                              "/v1/quality/defect/predict", 200, 1500, uuid.uuid4().hex) for j in range(batch)]
        t0 = time.perf_counter()
        append_entries(db, entries, raw.driver_connection, key=key)
        lat.append(time.perf_counter() - t0)
        n += batch
        i += batch
    raw.close()
    db.dispose()
    out.put((n, lat))


def run(url: str, writers: int, batch: int, seconds: float) -> dict:
    db = Database(url)
    tenants = []
    for w in range(writers):
        for t in range(3):
            tenancy.create_tenant(db, f"bench{w}x{t}", "C29")
            tenants.append(tenancy.get_tenant(db, f"bench{w}x{t}").id)
    db.dispose()
    out: mp.Queue = mp.Queue()
    start = time.time() + 1.0
    procs = [mp.Process(target=_writer, args=(url, tenants[3 * w:3 * w + 3], batch, seconds, start, out))
             for w in range(writers)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for _, ls in results for x in ls)
    total = sum(n for n, _ in results)
    db = Database(url)
    verified = verify_chain(db, key=ChainKey(SECRET))
    db.dispose()
    return {"writers": writers, "batch": batch, "records_s": total / seconds, "commits_s": len(lat) / seconds,
            "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))],
            "chain_ok": verified.ok and verified.rows == total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", help="a PostgreSQL server URL (a database is created on it and dropped); "
                    "default: a SQLite file")
    ap.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--batch", type=int, default=20, help="records per commit (the usage writer's batches)")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    rows = []
    for writers in args.writers:
        if args.database:
            admin = create_engine(make_url(args.database).set(drivername="postgresql+psycopg"),
                                  isolation_level="AUTOCOMMIT")
            name = f"sfai_bench_{uuid.uuid4().hex[:10]}"
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(args.database).set(database=name).render_as_string(hide_password=False)
            try:
                rows.append(run(url, writers, args.batch, args.seconds))
            finally:
                with admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            with tempfile.TemporaryDirectory() as d:
                rows.append(run(f"sqlite:///{Path(d) / 'sfai.db'}", writers, args.batch, args.seconds))
    print("| writers | records per commit | records/s | commits/s | commit p50 ms | commit p95 ms | chain verifies |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['writers']} | {r['batch']} | {r['records_s']:,.0f} | {r['commits_s']:,.0f} | {r['p50_ms']:.1f} | "
              f"{r['p95_ms']:.1f} | {'yes' if r['chain_ok'] else 'NO'} |")


if __name__ == "__main__":
    main()
