#!/usr/bin/env python3
"""One tenant's burst of heavy predictions against another tenant's single calls (``serving/turns.py``).

Starts ``sfai serve`` (SQLite, a scratch ``SFAI_HOME``) with two demo tenants, then, for each value of
``SFAI_MAX_SCORING_PER_TENANT`` given: tenant A sends ``--burst`` energy forecasts at once (nine days of readings
each: pandas-based, a few tens of ms of CPU), over and over, while tenant B sends RUL and failure calls one at a
time; prints B's latency (p50, p95, max) beside its latency alone, and A's throughput. The default compares
1,000 (no cap: the behaviour before the per-tenant turns) with 4 (the default).

    .venv/bin/python benchmarks/noisy_neighbour.py                      # ~1 min
    .venv/bin/python benchmarks/noisy_neighbour.py --caps 1000 4 2 --burst 48 --duration 15

Traffic only goes to 127.0.0.1; every run stops by itself. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SFAI = str(ROOT / ".venv" / "bin" / "sfai")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo(env: dict, tenant: str) -> str:
    out = subprocess.run([SFAI, "demo", "--tenant", tenant, "--json"], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)["api_key"]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _run(url: str, key_a: str, key_b: str, bodies: dict, burst: int, duration: float) -> dict:
    import httpx

    ha, hb = {"Authorization": f"Bearer {key_a}"}, {"Authorization": f"Bearer {key_b}"}
    limits = httpx.Limits(max_connections=burst + 8)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        async def one_b() -> float:
            t = time.perf_counter()
            for path, body in (("/v1/maintenance/rul/predict", bodies["rul"]),
                               ("/v1/maintenance/failure/predict", bodies["failure"])):
                r = await client.post(path, json=body, headers=hb)
                r.raise_for_status()
            return (time.perf_counter() - t) * 1000

        alone = [await one_b() for _ in range(20)]
        stop = time.monotonic() + duration
        done_a, refused_a = [0], [0]

        async def a_loop() -> None:
            while time.monotonic() < stop:
                r = await client.post("/v1/energy/forecast", json=bodies["energy"], headers=ha)
                if r.status_code == 429:
                    refused_a[0] += 1
                    await asyncio.sleep(0.2)
                else:
                    r.raise_for_status()
                    done_a[0] += 1

        tasks = [asyncio.create_task(a_loop()) for _ in range(burst)]
        await asyncio.sleep(1.0)  # the burst is under way
        during = []
        while time.monotonic() < stop:
            during.append(await one_b())
        await asyncio.gather(*tasks)
    return {"b_alone_p50_ms": statistics.median(alone), "b_p50_ms": statistics.median(during),
            "b_p95_ms": _pct(during, 0.95), "b_max_ms": max(during), "b_calls": len(during),
            "a_per_s": done_a[0] / duration, "a_429": refused_a[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--caps", type=int, nargs="+", default=[1000, 4], help="SFAI_MAX_SCORING_PER_TENANT values")
    ap.add_argument("--burst", type=int, default=48, help="tenant A's calls at once")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of burst per cap")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from models.demo import sample_request

    home = Path(tempfile.mkdtemp(prefix="sfai-noisy-"))
    env = {**os.environ, "SFAI_HOME": str(home), "SFAI_ENVIRONMENT": "development",
           "SFAI_RATE_LIMITS": json.dumps({"trial": None, "standard": None, "enterprise": None}),
           "SFAI_PLATFORM_RATE_LIMIT": "null"}
    try:
        key_a, key_b = _demo(env, "tenant-a"), _demo(env, "tenant-b")
        bodies = {f: sample_request(home / "demo" / "tenant-b", f) for f in ("rul", "failure", "energy")}
        bodies["energy"]["horizon"] = 96
        rows = []
        for cap in args.caps:
            port = _port()
            server = subprocess.Popen([SFAI, "serve", "--port", str(port)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL,
                                      env={**env, "SFAI_MAX_SCORING_PER_TENANT": str(cap),
                                           "SFAI_MAX_SCORING_WAITING_PER_TENANT": "1000"})
            try:
                import httpx

                deadline = time.monotonic() + 60
                while True:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("sfai serve did not start")
                    time.sleep(0.3)
                rows.append((cap, asyncio.run(_run(f"http://127.0.0.1:{port}", key_a, key_b, bodies, args.burst,
                                                   args.duration))))
            finally:
                server.terminate()
                server.wait(timeout=60)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"tenant A: {args.burst} energy forecasts at once, {args.duration:g} s; tenant B: one RUL + one failure "
          "call after another (ms per pair)")
    print(f"{'cap':>6} {'B alone p50':>12} {'B p50':>8} {'B p95':>8} {'B max':>8} {'B pairs':>8} {'A /s':>7} "
          f"{'A 429':>6}")
    for cap, r in rows:
        print(f"{cap:>6} {r['b_alone_p50_ms']:>12.1f} {r['b_p50_ms']:>8.1f} {r['b_p95_ms']:>8.1f} "
              f"{r['b_max_ms']:>8.1f} {r['b_calls']:>8} {r['a_per_s']:>7.1f} {r['a_429']:>6}")


if __name__ == "__main__":
    main()
