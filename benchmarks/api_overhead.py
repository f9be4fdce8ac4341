#!/usr/bin/env python3
"""What the platform path costs: authenticated, usage-logged, subscription-checked vs bare.

Runs ``GET /v1/quality/status`` (a no-op module endpoint) against ``sfai serve`` started as a subprocess
on 127.0.0.1, once with everything on (API key, subscription check, group-committed usage log, metrics)
and once with ``SFAI_AUTH_ENABLED=false SFAI_USAGE_LOG_ENABLED=false SFAI_METRICS_ENABLED=false``, and
prints requests/s, p50 and p99 latency and the ratio to bare. The goal: full >= 0.9 x bare throughput.

    .venv/bin/python benchmarks/api_overhead.py                      # ~10 s per variant, SQLite
    .venv/bin/python benchmarks/api_overhead.py --postgres postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python benchmarks/api_overhead.py --duration 5 --breakdown --json

Load comes from ``wrk`` when it is on PATH (``apt-get install wrk``), otherwise from a Python asyncio
load generator (keep-alive connections, raw HTTP/1.1) in a separate process. Traffic only goes to
127.0.0.1; every run is bounded in time and stops by itself. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENDPOINT = "/v1/quality/status"
TENANT = "bench"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
OFF = {"SFAI_AUTH_ENABLED": "false", "SFAI_USAGE_LOG_ENABLED": "false", "SFAI_METRICS_ENABLED": "false"}


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- results
@dataclass
class Load:
    generator: str
    requests: int  # completed in the measured window
    ok: int  # of which 2xx (wrk: requests minus "Non-2xx or 3xx responses")
    errors: int  # socket errors / timeouts
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


@dataclass
class Result:
    variant: str
    database: str
    load: Load
    server_cpu_us_per_req: float | None = None  # server process CPU (all threads) per completed request
    server_cpu_cores: float | None = None  # its average CPU use during the window, in cores
    usage_rows: int | None = None  # rows the measured window added to the usage log
    usage_rows_total: int | None = None
    usage_verify: str | None = None
    checks: list[str] = field(default_factory=list)


@dataclass
class Variant:
    name: str
    env: dict[str, str]
    auth: bool
    usage_log: bool
    postgres: bool = False


# ---------------------------------------------------------------------------------------------- wrk
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse_wrk(out: str, seconds: float) -> Load:
    def grab(pattern: str, default: str | None = None) -> str:
        m = re.search(pattern, out, re.M)
        if m is None:
            if default is not None:
                return default
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{out}")
        return m.group(1)

    requests = int(grab(r"^\s*(\d+) requests in"))
    dur = grab(r"requests in ([\d.]+\w+),")
    secs = _ms(dur) / 1e3
    non2xx = int(grab(r"Non-2xx or 3xx responses:\s*(\d+)", "0"))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = sum(int(x) for x in sock.groups()) if sock else 0
    return Load(
        generator="wrk",
        requests=requests,
        ok=requests - non2xx,
        errors=errors,
        seconds=secs,
        rps=float(grab(r"Requests/sec:\s*([\d.]+)")),
        p50_ms=_ms(grab(r"^\s*50%\s+(\S+)")),
        p99_ms=_ms(grab(r"^\s*99%\s+(\S+)")),
    )


def run_wrk(wrk: str, url: str, headers: dict[str, str], connections: int, threads: int, duration: float) -> Load:
    cmd = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(url)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr or p.stdout}")
    return parse_wrk(p.stdout, duration)


# ---------------------------------------------------------------------------------------------- python
async def _pyload(host: str, port: int, path: str, headers: dict[str, str], connections: int, duration: float) -> dict:
    """N keep-alive connections, each sending one request after the other until the deadline."""
    import asyncio

    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + "\r\n").encode()
    latencies: list[int] = []
    counts = {"requests": 0, "ok": 0, "errors": 0}
    deadline = time.perf_counter() + duration

    async def read_response(reader: asyncio.StreamReader) -> int:
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
            elif k == "connection" and "close" in v.lower():
                close = True
        if chunked:
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await reader.readexactly(length)
        if close:
            raise ConnectionResetError("server closed the connection")
        return status

    async def worker() -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                t0 = time.perf_counter_ns()
                writer.write(request)
                status = await asyncio.wait_for(read_response(reader), timeout=10)
                latencies.append(time.perf_counter_ns() - t0)
                counts["requests"] += 1
                counts["ok"] += 200 <= status < 300
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                counts["errors"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.01)
        if writer is not None:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6 if latencies else float("nan")

    return {**counts, "seconds": elapsed, "rps": counts["requests"] / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def loadgen_main(spec: str) -> None:
    """Entry point of the separate load generator process (``--_loadgen JSON``)."""
    import asyncio

    s = json.loads(spec)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    out = asyncio.run(_pyload(s["host"], s["port"], s["path"], s["headers"], s["connections"], s["duration"]))
    print(json.dumps(out))


def run_python(url_host: str, port: int, headers: dict[str, str], connections: int, duration: float) -> Load:
    spec = json.dumps(
        {
            "host": url_host,
            "port": port,
            "path": ENDPOINT,
            "headers": headers,
            "connections": connections,
            "duration": duration,
        }
    )
    p = subprocess.run(
        [sys.executable, __file__, "--_loadgen", spec],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    if p.returncode != 0:
        raise RuntimeError(f"load generator failed ({p.returncode}): {p.stderr}")
    d = json.loads(p.stdout.strip().splitlines()[-1])
    return Load(generator="python-asyncio", **d)


# ---------------------------------------------------------------------------------------------- server
def cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a process and its children that are still running, from
    ``/proc`` (None where there is none). Around a load run, the difference over the requests answered is the
    server's CPU per request: it shows which step a change made cheaper, but it drifts with the machine's speed as
    the throughput does, so compare variants run a few seconds apart."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, seen = 0, False
    pids = [pid]
    while pids:
        p = pids.pop()
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (the process's threads included)
            seen = True
            for task in Path(f"/proc/{p}/task").glob("*/children"):
                pids += [int(c) for c in task.read_text().split()]
    return total / tick if seen else None


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (MB)."""
    total = 0
    pids = [pid]
    while pids:
        p = pids.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").glob("*/children"):
                pids += [int(c) for c in task.read_text().split()]
    return total / 1024


# ------------------------------------------------------------------------------------------- main


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sfai_bin() -> str:
    local = Path(sys.executable).with_name("sfai")
    return str(local) if local.exists() else (shutil.which("sfai") or "sfai")


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sfai_bin(), *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    if check and p.returncode != 0:
        raise RuntimeError(f"sfai {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


class Server:
    health = "/healthz"  # the path that answers 200 once the server is ready

    def __init__(self, env: dict[str, str], workers: int, log_path: Path) -> None:
        self.port = free_port()
        self.log = open(log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sfai_bin(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log_path = log_path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base + self.health, timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{self.log_path.read_text()[-3000:]}")

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server and its worker processes so far (Linux /proc; None elsewhere)."""
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

        def tree(pid: int) -> float:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return 0.0
            total = (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    total += sum(tree(int(c)) for c in task.read_text().split())
            return total

        if not Path(f"/proc/{self.proc.pid}/stat").exists():
            return None
        return tree(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the uvicorn workers too
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


# ---------------------------------------------------------------------------------------------- database
def settled_usage_rows(db_url: str, timeout: float = 10.0) -> int:
    """The row count once in-flight requests (e.g. those wrk left at its deadline) have been committed."""
    last = usage_rows(db_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = usage_rows(db_url)
        if now == last:
            return now
        last = now
    return last


def usage_rows(db_url: str) -> int:
    from sqlalchemy import create_engine, text

    from serving.db.engine import normalize_url

    engine = create_engine(normalize_url(db_url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM usage_log")).scalar_one())
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_database(admin_url: str):
    """A fresh ``sfai_bench_<random>`` database on the server of ``admin_url``, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"sfai_bench_{secrets.token_hex(4)}"
    u = make_url(admin_url)
    conninfo = u.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    note(f"created PostgreSQL database {name}")
    try:
        yield u.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        note(f"dropped PostgreSQL database {name}")


# ---------------------------------------------------------------------------------------------- one variant
def run_variant(v: Variant, args: argparse.Namespace, gen: str, wrk: str | None, db_url: str | None) -> Result:
    home = Path(tempfile.mkdtemp(prefix="sfai-bench-"))
    env = {k: val for k, val in os.environ.items() if not k.startswith("SFAI_")}
    env.update({"SFAI_HOME": str(home), "SFAI_ENVIRONMENT": "development", **args.extra_env, **v.env})
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if db_url:
        env["SFAI_DATABASE_URL"] = db_url
    url_db = db_url or f"sqlite:///{(home / 'sfai.db').resolve()}"
    database = "postgresql" if db_url else "sqlite"
    server = None
    try:
        headers: dict[str, str] = {}
        if v.auth:
            cli(env, "tenant", "create", TENANT, "--ksic", "C29", "-m", "quality", "--plan", "enterprise")
            key = cli(env, "apikey", "create", "--tenant", TENANT, "--role", "mes").stdout.strip().splitlines()[-1]
            headers["Authorization"] = f"Bearer {key}"
        server = Server(env, args.workers, home / "server.log")
        server.wait_ready()
        import httpx

        r = httpx.get(server.base + ENDPOINT, headers=headers, timeout=5)
        if r.status_code != 200:
            raise RuntimeError(f"{v.name}: {ENDPOINT} answered {r.status_code}: {r.text}")

        def load(duration: float) -> Load:
            if gen == "wrk":
                return run_wrk(wrk, server.base + ENDPOINT, headers, args.connections, args.threads, duration)
            return run_python("127.0.0.1", server.port, headers, args.connections, duration)

        if args.warmup > 0:
            note(f"  {v.name}: warm-up {args.warmup:g}s")
            load(args.warmup)
        before = settled_usage_rows(url_db) if v.usage_log else None
        note(f"  {v.name}: measuring {args.duration:g}s, {args.connections} connections, {args.workers} worker(s)")
        cpu0 = server.cpu_seconds()
        res = Result(variant=v.name, database=database, load=load(args.duration))
        cpu1 = server.cpu_seconds()
        if cpu0 is not None and cpu1 is not None and res.load.requests:
            res.server_cpu_us_per_req = (cpu1 - cpu0) / res.load.requests * 1e6
            res.server_cpu_cores = (cpu1 - cpu0) / res.load.seconds
        server.stop()  # commits what is queued
        server = None
        if v.usage_log:
            total = usage_rows(url_db)
            res.usage_rows_total = total
            res.usage_rows = total - before
            ok = res.load.ok
            # wrk stops counting at the deadline: up to one in-flight request per connection is logged
            # but not counted.
            if res.usage_rows < ok:
                res.checks.append(f"FAIL: {res.usage_rows} usage rows < {ok} 2xx responses")
            else:
                res.checks.append(f"ok: {res.usage_rows} usage rows >= {ok} 2xx responses")
            if res.usage_rows > res.load.requests + args.connections:
                res.checks.append(
                    f"note: {res.usage_rows} usage rows > {res.load.requests} requests "
                    f"+ {args.connections} left in flight at the deadline"
                )
            p = cli(env, "usage", "verify", check=False)
            res.usage_verify = p.stdout.strip() or p.stderr.strip()
            res.checks.append(("ok: " if p.returncode == 0 else "FAIL: ") + f"sfai usage verify: {res.usage_verify}")
        return res
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            note(f"  kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


def busy_warning() -> float | None:
    """Warn when other work already loads the machine: the ratio then measures the neighbours too."""
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return None
    cores = os.cpu_count() or 1
    if load1 > 0.5 * cores:
        note(
            f"warning: load average {load1:.1f} on {cores} cores before the run: other work competes for the CPU, "
            "expect noisy figures (use --rounds 3, or run on a quiet machine)"
        )
    return load1


# ---------------------------------------------------------------------------------------------- summary
@dataclass
class Summary:
    """One variant over all rounds: the median of each figure (one round: that round's figures)."""

    variant: str
    rps: float
    p50_ms: float
    p99_ms: float
    ratio: float | None
    server_cpu_us_per_req: float | None
    rounds: list[Result]


def _median(values: list[float | None]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def summarize(by_variant: dict[str, list[Result]]) -> list[Summary]:
    out = [
        Summary(
            variant=name,
            rps=_median([r.load.rps for r in rs]),
            p50_ms=_median([r.load.p50_ms for r in rs]),
            p99_ms=_median([r.load.p99_ms for r in rs]),
            ratio=None,
            server_cpu_us_per_req=_median([r.server_cpu_us_per_req for r in rs]),
            rounds=rs,
        )
        for name, rs in by_variant.items()
    ]
    bare = out[0].rps
    for sm in out:
        sm.ratio = sm.rps / bare if bare else None
    return out


def table(summaries: list[Summary]) -> str:
    lines = ["| variant | requests/s | p50 ms | p99 ms | ratio to bare |", "|---|---:|---:|---:|---:|"]
    for r in summaries:
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        lines.append(f"| {r.variant} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {ratio} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per variant (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per variant, not measured (default 2)")
    ap.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections (default 32)")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the variants this many times, interleaved, and report medians (default 1; 3 steadies the ratio)",
    )
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: leave the cores to the server)")
    ap.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if on PATH (auto), or the Python asyncio one",
    )
    ap.add_argument(
        "--postgres",
        metavar="URL",
        nargs="?",
        const=DEFAULT_PG_ADMIN,
        default=None,
        help="also run the full path on PostgreSQL: a fresh sfai_bench_<random> database on the server "
        f"of URL (an admin URL, default {DEFAULT_PG_ADMIN}), dropped afterwards",
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also run 'auth only' and 'auth + usage log' (metrics off) to split the cost",
    )
    ap.add_argument(
        "--set",
        metavar="SFAI_X=VALUE",
        action="append",
        default=[],
        help="extra environment for every server, e.g. --set SFAI_USAGE_FLUSH_MAX_WAIT_MS=0 (repeatable)",
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    ap.add_argument("--keep", action="store_true", help="keep the temporary SFAI_HOME directories")
    ap.add_argument("--_loadgen", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._loadgen:
        loadgen_main(args._loadgen)
        return 0
    if args.duration <= 0 or args.duration > 600:
        ap.error("--duration must be in (0, 600] seconds")
    if not 1 <= args.rounds <= 20:
        ap.error("--rounds must be 1..20")
    extra: dict[str, str] = {}
    for item in args.set:
        k, sep, val = item.partition("=")
        if not sep or not k.startswith("SFAI_"):
            ap.error(f"--set expects SFAI_NAME=VALUE, got {item!r}")
        extra[k] = val
    args.extra_env = extra
    sys.path.insert(0, str(ROOT))

    wrk = shutil.which("wrk")
    gen = args.generator
    if gen == "auto":
        gen = "wrk" if wrk else "python"
    if gen == "wrk" and not wrk:
        ap.error("wrk is not on PATH (apt-get install wrk), use --generator python")
    how = f" ({wrk}, {args.threads} thread(s))" if gen == "wrk" else " (asyncio, uvloop if installed)"
    note(f"load generator: {gen}{how}")
    load_before = busy_warning()

    variants = [Variant("bare (auth, usage log, metrics off)", dict(OFF), auth=False, usage_log=False)]
    if args.breakdown:
        variants += [
            Variant(
                "auth + subscription only",
                {"SFAI_USAGE_LOG_ENABLED": "false", "SFAI_METRICS_ENABLED": "false"},
                auth=True,
                usage_log=False,
            ),
            Variant("auth + subscription + usage log", {"SFAI_METRICS_ENABLED": "false"}, auth=True, usage_log=True),
        ]
    variants.append(Variant("full path, SQLite", {}, auth=True, usage_log=True))
    if args.postgres:
        variants.append(Variant("full path, PostgreSQL", {}, auth=True, usage_log=True, postgres=True))

    by_variant: dict[str, list[Result]] = {v.name: [] for v in variants}
    for rnd in range(1, args.rounds + 1):
        for v in variants:
            note(f"variant: {v.name}" + (f" (round {rnd}/{args.rounds})" if args.rounds > 1 else ""))
            if v.postgres:
                with postgres_database(args.postgres) as url:
                    res = run_variant(v, args, gen, wrk, url)
            else:
                res = run_variant(v, args, gen, wrk, None)
            by_variant[v.name].append(res)
            note(f"  {res.load.rps:,.0f} requests/s, p50 {res.load.p50_ms:.2f} ms, p99 {res.load.p99_ms:.2f} ms")
            for c in res.checks:
                note(f"  {c}")

    summaries = summarize(by_variant)
    verdict = {sm.variant: (sm.ratio or 0) >= 0.9 for sm in summaries if sm.variant.startswith("full path")}
    failed = [c for sm in summaries for r in sm.rounds for c in r.checks if c.startswith("FAIL")]

    if args.json:
        doc = {
            "endpoint": ENDPOINT,
            "generator": gen,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "workers": args.workers,
            "rounds": args.rounds,
            "extra_env": args.extra_env,
            "load_average_before": load_before,
            "goal_ratio": 0.9,
            "meets_goal": verdict,
            "usage_log_checks_ok": not failed,
            "variants": [asdict(sm) for sm in summaries],
        }
        print(json.dumps(doc, indent=2))
        return 0

    extra = "".join(f", {k}={v}" for k, v in args.extra_env.items())
    if load_before is not None:
        extra += f", load average before {load_before:.1f} on {os.cpu_count()} cores"
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"GET {ENDPOINT}: {args.duration:g}s per variant{rounds}, {args.connections} connections, "
        f"{args.workers} worker(s), load generator {gen}{extra}\n"
    )
    print(table(summaries))
    print()
    for sm in summaries:
        if sm.server_cpu_us_per_req is not None:
            print(f"{sm.variant}: server CPU {sm.server_cpu_us_per_req:,.0f} us/request (all threads)")
    for sm in summaries:
        for r in sm.rounds:
            if r.usage_rows is not None:
                print(
                    f"{r.variant}: {r.load.ok} 2xx of {r.load.requests} requests, {r.load.errors} socket errors; "
                    f"usage log +{r.usage_rows} rows in the window ({r.usage_rows_total} in all); "
                    f"sfai usage verify: {r.usage_verify}"
                )
    for c in failed:
        print(c)
    for name, ok in verdict.items():
        print(f"goal (full >= 0.9 x bare requests/s) for {name}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
