"""Soak: a mixed load against a running SFAI server for a bounded time; throughput, latency, errors, memory.

    .venv/bin/python benchmarks/soak.py --duration 600            # own server + demo tenant, 10 minutes
    .venv/bin/python benchmarks/soak.py --url http://127.0.0.1:8000 --key sfai_... --duration 600 --rate 200

The mix: single-record failure and defect predictions, RUL and energy predictions (a few units, a week of
history), JSON ingest into one of the tenant's feature views, and background scheduling jobs (one at a time,
submitted and polled until done). First ``--peak-seconds`` of closed-loop load with ``--connections`` clients
measure the peak; then the soak runs open-loop at ``--rate`` calls per second (default: half the peak).

Reports per kind: calls, errors, p50/p99 ms; overall throughput; and the server's RSS at the end of the warm-up
and at the end (with its own server; ``--pid`` for one started elsewhere). Goal: 10 minutes at half the peak
with 0 errors and under 10 % RSS growth. Exits 1 when a call failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
sys.path.append(str(HERE))

import api_overhead as ao  # noqa: E402  (the server wrapper, process memory)

rss_mb = ao.rss_mb

WEIGHTS = {"failure": 40, "defect": 20, "rul": 8, "energy": 4, "ingest": 28}
PROBLEM = {
    "machines": ["M1", "M2", "M3"],
    "jobs": [{"id": f"J{j}", "due": 40, "operations": [{"machines": {f"M{(j + k) % 3 + 1}": 3 + (j * k) % 5}}
                                                       for k in range(3)]} for j in range(8)],
}


def demo_server(home: Path, workers: int) -> tuple[ao.Server, str, str, Path]:
    """``sfai demo`` in a fresh home (trains the demo models), then a server on it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update(SFAI_HOME=str(home), SFAI_ENVIRONMENT="development")
    info = json.loads(ao.cli(env, "demo", "--json").stdout.strip().splitlines()[-1])
    server = ao.Server(env, workers, home / "soak-server.log")
    server.wait_ready()
    return server, server.base, info["api_key"], home / "demo" / info["tenant"]


def bodies(base: str, key: str, demo_dir: Path | None) -> dict:
    """A request body per kind (the demo samples), and the ingest view and record maker."""
    import httpx

    from models.demo import sample_request

    if demo_dir is None:
        raise SystemExit("--url needs --demo-dir (the $SFAI_HOME/demo/<tenant> folder of the demo samples)")
    out = {f: sample_request(demo_dir, f) for f in ("failure", "defect", "rul", "energy")}
    for f in ("failure", "defect"):
        out[f] = {"records": out[f]["records"][:1]}
    views = httpx.get(base + "/v1/features/views", headers={"Authorization": f"Bearer {key}"}, timeout=30).json()
    if not views:
        raise SystemExit("the tenant has no feature view to ingest into")
    out["view"] = views[0]
    return out


def ingest_record(view: dict, i: int) -> dict:
    rec = {view["join_key"]: f"soak-{i % 50}", "event_timestamp": datetime.now(UTC).isoformat()}
    for name, dtype in view["features"].items():
        rec[name] = (random.random() * 10 if "float" in dtype else i % 7 if "int" in dtype
                     else False if "bool" in dtype else f"v{i % 5}")
    return rec


PATHS = {"failure": "/v1/maintenance/failure/predict", "defect": "/v1/quality/defect/predict",
         "rul": "/v1/maintenance/rul/predict", "energy": "/v1/energy/forecast"}


class Stats:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.examples: dict[str, str] = {}

    def add(self, kind: str, ms: float, ok: bool, detail: str = "") -> None:
        self.lat[kind].append(ms)
        if not ok:
            self.errors[kind] += 1
            self.examples.setdefault(kind, detail[:200])

    @property
    def calls(self) -> int:
        return sum(len(v) for v in self.lat.values())


async def one_call(client, kind: str, b: dict, key: str, stats: Stats, i: int) -> None:  # noqa: ANN001
    h = {"Authorization": f"Bearer {key}"}
    t0 = time.perf_counter()
    try:
        if kind == "ingest":
            r = await client.post(f"/v1/ingest/{b['view']['name']}", json={"records": [ingest_record(b["view"], i)]},
                                  headers=h)
        else:
            r = await client.post(PATHS[kind], json=b[kind], headers=h)
        ok, detail = r.status_code == 200, f"{r.status_code} {r.text[:150]}"
    except Exception as e:  # noqa: BLE001 - a failed call is counted, the soak goes on
        ok, detail = False, f"{type(e).__name__}: {e}"
    stats.add(kind, (time.perf_counter() - t0) * 1000, ok, detail)


async def scheduling_loop(client, key: str, stats: Stats, stop: asyncio.Event) -> None:  # noqa: ANN001
    """One background job at a time: submit, poll until done, again."""
    h = {"Authorization": f"Bearer {key}"}
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            r = await client.post("/v1/scheduling/jobs", json={"problem": PROBLEM, "time_limit_s": 1}, headers=h)
            ok = r.status_code == 202
            job = r.json().get("job_id") if ok else None
            while ok and not stop.is_set():
                await asyncio.sleep(0.25)
                g = await client.get(f"/v1/scheduling/jobs/{job}", headers=h)
                status = g.json().get("status") if g.status_code == 200 else "http-error"
                if status in ("done", "failed", "http-error"):
                    ok = status == "done"
                    break
            detail = "" if ok else r.text[:150]
        except Exception as e:  # noqa: BLE001
            ok, detail = False, f"{type(e).__name__}: {e}"
        stats.add("scheduling job", (time.perf_counter() - t0) * 1000, ok, detail)


def pick(rng: random.Random) -> str:
    return rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]


async def closed_loop(base: str, key: str, b: dict, seconds: float, connections: int) -> float:
    import httpx

    stats = Stats()
    rng = random.Random(1)
    end = time.monotonic() + seconds
    counter = iter(range(10**9))
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        async def worker() -> None:
            while time.monotonic() < end:
                await one_call(client, pick(rng), b, key, stats, next(counter))

        await asyncio.gather(*(worker() for _ in range(connections)))
    return stats.calls / seconds


async def open_loop(base: str, key: str, b: dict, rate: float, seconds: float, warmup: float, pid: int | None,
                    report_every: float) -> tuple[Stats, dict]:
    import httpx

    stats = Stats()
    rng = random.Random(2)
    stop = asyncio.Event()
    mem: dict = {"samples": []}
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)) as client:
        sched = asyncio.create_task(scheduling_loop(client, key, stats, stop))
        pending: set[asyncio.Task] = set()
        start = time.monotonic()
        next_report = start + report_every
        i = 0
        while (now := time.monotonic()) < start + seconds:
            due = start + i / rate
            if due > now:
                await asyncio.sleep(due - now)
            task = asyncio.create_task(one_call(client, pick(rng), b, key, stats, i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            now = time.monotonic()
            if pid and "warm" not in mem and now - start >= warmup:
                mem["warm"] = rss_mb(pid)
            if now >= next_report:
                next_report += report_every
                rss = rss_mb(pid) if pid else None
                mem["samples"].append((round(now - start), rss))
                errs = sum(stats.errors.values())
                print(f"  {now - start:6.0f} s  {stats.calls:8d} calls  {errs} errors  "
                      f"RSS {rss:.0f} MB" if rss else "", flush=True)
        stop.set()
        await asyncio.gather(*pending, sched)
    if pid:
        mem["end"] = rss_mb(pid)
    return stats, mem


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) >= 2 else (values[0] if values else 0.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=600, help="soak seconds (default 600)")
    p.add_argument("--rate", type=float, help="calls per second (default: half the measured peak)")
    p.add_argument("--peak-seconds", type=float, default=20)
    p.add_argument("--connections", type=int, default=8, help="clients for the peak measurement")
    p.add_argument("--warmup", type=float, default=60, help="seconds before the first RSS reading")
    p.add_argument("--workers", type=int, default=1, help="server workers (own server)")
    p.add_argument("--url", help="a running server (else one is started on a demo tenant)")
    p.add_argument("--key", help="its API key (with --url)")
    p.add_argument("--demo-dir", type=Path, help="with --url: $SFAI_HOME/demo/<tenant> of that server")
    p.add_argument("--pid", type=int, help="with --url: the server's process id, for its memory")
    p.add_argument("--report-every", type=float, default=60)
    a = p.parse_args(argv)
    if a.duration <= 0 or a.peak_seconds < 0 or (a.rate is not None and a.rate <= 0):
        p.error("--duration and --rate must be positive")
    if a.url and not a.key:
        p.error("--url needs --key")
    server = None
    tmp = tempfile.TemporaryDirectory(prefix="sfai-soak-")
    try:
        if a.url:
            base, key, demo_dir, pid = a.url.rstrip("/"), a.key, a.demo_dir, a.pid
        else:
            print("preparing the demo tenant and starting a server ...", flush=True)
            server, base, key, demo_dir = demo_server(Path(tmp.name), a.workers)
            pid = server.proc.pid
        b = bodies(base, key, demo_dir)
        rate = a.rate
        if rate is None:
            peak = asyncio.run(closed_loop(base, key, b, a.peak_seconds, a.connections))
            rate = peak / 2
            print(f"peak (closed loop, {a.connections} clients, {a.peak_seconds:.0f} s): {peak:.0f} calls/s; "
                  f"soaking at {rate:.0f} calls/s for {a.duration:.0f} s", flush=True)
        stats, mem = asyncio.run(open_loop(base, key, b, rate, a.duration, a.warmup, pid, a.report_every))
    finally:
        if server is not None:
            server.stop()
        tmp.cleanup()
    print("\n| kind | calls | errors | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
    for kind in sorted(stats.lat):
        v = stats.lat[kind]
        print(f"| {kind} | {len(v)} | {stats.errors.get(kind, 0)} | {pct(v, 50):.1f} | {pct(v, 99):.1f} |")
    total_errors = sum(stats.errors.values())
    print(f"\ncalls: {stats.calls} in {a.duration:.0f} s = {stats.calls / a.duration:.1f}/s (target {rate:.1f}/s); "
          f"errors: {total_errors}")
    if "warm" in mem and "end" in mem:
        growth = (mem["end"] - mem["warm"]) / mem["warm"] * 100
        print(f"server RSS: {mem['warm']:.0f} MB after {a.warmup:.0f} s warm-up, {mem['end']:.0f} MB at the end "
              f"({growth:+.1f} %)")
    for kind, ex in stats.examples.items():
        print(f"first error of {kind}: {ex}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
