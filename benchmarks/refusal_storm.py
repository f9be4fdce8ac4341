#!/usr/bin/env python3
"""A client retrying refused calls as fast as it can: how many usage-log records it leaves, and what it costs.

Starts ``sfai serve`` (SQLite, a scratch ``SFAI_HOME``) with a demo tenant whose modules allow 1 call a second, and
sends ``GET /v1/quality/status`` from ``--clients`` connections for ``--duration`` seconds, almost all of them
refused with 429. For each mode (``SFAI_USAGE_COLLAPSE_REFUSALS`` true, the default, and false: a record per
refused call, the behaviour before) prints the refusals a second, their latency, and the records the log holds
afterwards with the calls they stand for. Collapsed, a kind of refusal leaves at most two records per 10 seconds.

    .venv/bin/python benchmarks/refusal_storm.py                  # ~1 min
    .venv/bin/python benchmarks/refusal_storm.py --clients 16 --duration 20

Traffic only goes to 127.0.0.1; every run stops by itself. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noisy_neighbour import SFAI, _demo, _pct, _port  # noqa: E402


async def _storm(url: str, key: str, clients: int, duration: float) -> dict:
    import httpx

    h = {"Authorization": f"Bearer {key}"}
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    stop = time.monotonic() + duration
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=clients + 2)) as client:
        async def loop() -> None:
            while time.monotonic() < stop:
                t = time.perf_counter()
                r = await client.get("/v1/quality/status", headers=h)
                latencies.append((time.perf_counter() - t) * 1000)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        wall = time.perf_counter() - t0
    return {"statuses": statuses, "latencies": latencies, "wall": wall}


def run(collapse: bool, clients: int, duration: float) -> dict:
    home = Path(tempfile.mkdtemp(prefix="sfai-refusals-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(SFAI_HOME=str(home), SFAI_ENVIRONMENT="development", SFAI_ACCESS_LOG="false",
               SFAI_RATE_LIMITS=json.dumps({"trial": 1, "standard": 1, "enterprise": 1}),
               SFAI_USAGE_COLLAPSE_REFUSALS=str(collapse).lower())
    port = _port()
    try:
        key = _demo(env, "storm")
        server = subprocess.Popen([SFAI, "serve", "--port", str(port), "--log-level", "warning"], env=env)
        try:
            import httpx

            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            out = asyncio.run(_storm(url, key, clients, duration))
        finally:
            server.terminate()  # SIGTERM: the server writes the collapsed records it holds as it stops
            server.wait(60)
        with sqlite3.connect(home / "sfai.db") as conn:
            rows, calls = conn.execute(
                "SELECT count(*), coalesce(sum(calls), 0) FROM usage_log WHERE status = 429").fetchone()
        out.update(rows=rows, calls=calls)
        return out
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--modes", nargs="+", type=lambda v: v == "collapsed", default=[False, True],
                   help="one-per-call and/or collapsed, in this order (default: both)")
    a = p.parse_args()
    print(f"{a.clients} connections for {a.duration:.0f} s, GET /v1/quality/status at 1 call/s allowed\n")
    print("| mode | 429/s | 429 p50 ms | 429 p95 ms | 429s answered | records | calls they count "
          "| records per 1,000 |")
    print("|---|---|---|---|---|---|---|---|")
    for collapse in a.modes:
        r = run(collapse, a.clients, a.duration)
        refused = r["statuses"].get(429, 0)
        rate = refused / r["wall"]
        lat = r["latencies"]
        per_k = 1000 * r["rows"] / max(refused, 1)
        print(f"| {'collapsed' if collapse else 'one per call'} | {rate:,.0f} | {_pct(lat, 0.5):.1f} "
              f"| {_pct(lat, 0.95):.1f} | {refused:,} | {r['rows']:,} | {r['calls']:,} | {per_k:,.1f} |")


if __name__ == "__main__":
    main()
