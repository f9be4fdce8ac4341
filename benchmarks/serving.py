#!/usr/bin/env python3
"""Serving benchmark: a single-record failure prediction through SFAI's full path, against two peers that
serve the same ONNX model.

- ``mlflow models serve``: the model saved with MLflow's ONNX flavour, served by MLflow's scoring server;
  the request carries the model's input vector (no feature engineering, no auth, no logging).
- ``bare FastAPI + ONNX Runtime``: one FastAPI endpoint that runs the session on the input vector.
- ``SFAI full path``: ``POST /v1/maintenance/failure/predict`` with an API key, the subscription check, the
  entity's latest features from the online store, feature engineering, ONNX Runtime and the usage log
  committed before the answer (``{"entity_ids": [...], "view": "ai4i_features"}``).
- ``SFAI inline record``: the same endpoint with the raw reading in the body instead of an entity id.

Also: a 10,000-record batch through the full path as JSON and as an Arrow IPC stream (median of ``--batches``
calls), and the serving process's memory after every demo model has answered (``--demo``: ``sfai demo``
trains them first).

    .venv/bin/python benchmarks/serving.py                         # 10 s per variant, 8 connections
    .venv/bin/python benchmarks/serving.py --duration 20 --rounds 3 --workers 1

Load comes from ``wrk`` (``apt-get install wrk``). Needs ``../shared/datasets/ai4i2020`` (or ``SFAI_SHARED``).
Goals (issue 8): full path >= 2.5x mlflow's and >= 0.9x bare's requests/s, p99 <= 10 ms at 8 connections,
10,000 records in <= 100 ms (JSON) and <= 30 ms (Arrow), serving RSS <= 600 MB with the four demo models.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))
sys.path.append(str(HERE))

import api_overhead as ao  # noqa: E402  (the shared wrk runner and server wrapper)

SHARED = Path(os.environ.get("SFAI_SHARED", ROOT.parent / "shared"))
AI4I = SHARED / "datasets" / "ai4i2020" / "ai4i2020_train.csv"
TENANT = "bench"
ENDPOINT = "/v1/maintenance/failure/predict"
LABELS = ["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"]


@dataclass
class Row:
    variant: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    cpu_us: float | None = None  # the server's CPU time per request answered (user + system, all its threads)


# ------------------------------------------------------------------------------------------- peers
def bare_app(model_dir: str):  # noqa: ANN201
    """The bare peer: FastAPI + one ONNX Runtime session, no auth, no logging, no feature lookup."""
    import numpy as np
    import onnxruntime as ort
    from fastapi import FastAPI, Request

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(Path(model_dir) / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    async def predict(request) -> dict:  # noqa: ANN001
        body = await request.json()
        x = np.asarray(body["x"], dtype=np.float32)
        y = session.run(None, {"x": x})[0]
        return {"failure_probability": y[:, 0].astype(float).tolist()}

    predict.__annotations__["request"] = Request  # this module's annotations are strings FastAPI cannot resolve
    app.add_api_route("/predict", predict, methods=["POST"])
    return app


def serve_bare(spec: str) -> None:
    import uvicorn

    s = json.loads(spec)
    uvicorn.run(bare_app(s["model"]), host="127.0.0.1", port=s["port"], log_level="warning", workers=None)


class Peer(ao.Server):
    """A peer server process (same lifecycle as SFAI's: start, wait for its health path, stop)."""

    def __init__(self, cmd: list[str], env: dict[str, str], port: int, log_path: Path, health: str) -> None:
        import subprocess as sp

        self.port = port
        self.health = health
        self.log = open(log_path, "wb")  # noqa: SIM115
        self.log_path = log_path
        self.proc = sp.Popen(cmd, env=env, stdout=self.log, stderr=sp.STDOUT, start_new_session=True)


# ------------------------------------------------------------------------------------------- wrk
def wrk_post(url: str, body: str, headers: dict[str, str], args: argparse.Namespace, work: Path,
             server_pid: int | None = None) -> tuple[ao.Load, float | None]:
    """A wrk run of POSTs (after a warm-up run); with ``server_pid``, also the server's CPU us per request."""
    script = work / f"post-{abs(hash((url, body))) % 10**8}.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    cmd = [args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{round(args.duration)}s",
           "--latency", "--timeout", "10s", "-s", str(script), url]
    if args.warmup > 0:
        warm = [*cmd[:6], f"{max(1, round(args.warmup))}s", *cmd[7:]]
        subprocess.run(warm, capture_output=True, text=True, timeout=args.warmup + 60, check=False)
    before = ao.cpu_s(server_pid) if server_pid else None
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60, check=False)
    after = ao.cpu_s(server_pid) if server_pid else None
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {p.stderr or p.stdout}")
    load = ao.parse_wrk(p.stdout, args.duration)
    cpu = (after - before) / load.requests * 1e6 if before is not None and after is not None and load.requests else None
    return load, cpu


def as_row(name: str, load: ao.Load, cpu_us: float | None = None) -> Row:
    return Row(name, load.rps, load.p50_ms, load.p99_ms, load.errors, load.requests - load.ok, cpu_us)


# ------------------------------------------------------------------------------------------- setup
def prepare(home: Path, env: dict[str, str], epochs: int) -> tuple[str, Path, dict]:
    """Tenant, key, a trained failure champion and the AI4I rows in the feature store; returns (key, model
    directory, one raw record)."""
    import pandas as pd

    ao.cli(env, "tenant", "create", TENANT, "--ksic", "C29", "-m", "maintenance", "-m", "quality", "-m", "energy",
           "--plan", "enterprise")
    key = ao.cli(env, "apikey", "create", "--tenant", TENANT, "--role", "mes").stdout.strip().splitlines()[-1]
    ao.note(f"training the failure model ({epochs} epochs per fold, not tracked)")
    p = subprocess.run([ao.sfai_bin(), "train", "failure", "--dataset", "ai4i", "--input", str(AI4I), "--tenant",
                        TENANT, "--epochs", str(epochs), "--no-track"], env=env, capture_output=True, text=True,
                       timeout=900, check=False)
    if p.returncode != 0:
        raise RuntimeError(f"sfai train failed: {p.stderr.strip()[-2000:]}")
    ao.cli(env, "ingest", "ai4i", str(AI4I), "--tenant", TENANT)
    models = sorted((home / "models").rglob("model.onnx"))
    if not models:
        raise RuntimeError(f"no model.onnx under {home / 'models'}")
    record = pd.read_csv(AI4I, nrows=1).drop(columns=LABELS).iloc[0].to_dict()
    return key, models[-1].parent, {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}


def model_input(model_dir: Path, record: dict) -> list[list[float]]:
    """The scaled input vector of ``record``: what the two peers receive (they do no feature engineering)."""
    import pandas as pd

    from models.failure import features as F

    manifest = json.loads((model_dir / "manifest.json").read_text())
    return F.matrix(pd.DataFrame([record]), manifest["normalisation"]).astype(float).tolist()


def mlflow_model(model_dir: Path, dest: Path) -> Path:
    import mlflow.onnx
    import onnx

    out = dest / "mlflow-onnx"
    if (out / "MLmodel").exists():  # a later round serves the same saved model
        return out
    mlflow.onnx.save_model(onnx.load(str(model_dir / "model.onnx")), str(out))
    return out


def batch_times(base: str, key: str, n: int, calls: int) -> dict[str, float]:
    """Median wall ms of ``calls`` requests of ``n`` records, JSON and Arrow."""
    import httpx
    import pandas as pd
    import pyarrow as pa

    frame = pd.read_csv(AI4I).drop(columns=LABELS)
    frame = pd.concat([frame] * (n // len(frame) + 1), ignore_index=True).head(n)
    frame["UDI"] = range(1, n + 1)
    body_json = json.dumps({"records": frame.to_dict("records")}).encode()
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    body_arrow = sink.getvalue().to_pybytes()
    h = {"Authorization": f"Bearer {key}"}
    out = {}
    with httpx.Client(base_url=base, timeout=60) as c:
        arrow = "application/vnd.apache.arrow.stream"
        for name, body, ctype in (("json", body_json, "application/json"), ("arrow", body_arrow, arrow)):
            times = []
            for _ in range(calls + 1):
                t = time.perf_counter()
                # Arrow in, Arrow out (Accept); JSON in, JSON out
                r = c.post(ENDPOINT, content=body, headers={**h, "content-type": ctype, "accept": ctype})
                times.append((time.perf_counter() - t) * 1e3)
                got = r.headers.get("x-sfai-count") if ctype == arrow else r.json().get("count")
                if r.status_code != 200 or int(got or -1) != n:
                    raise RuntimeError(f"batch {name}: {r.status_code} {r.text[:300]}")
            out[name] = statistics.median(times[1:])  # the first call warms the path
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per variant (default 10)")
    ap.add_argument("--warmup", type=float, default=2.0, help="unmeasured warm-up seconds per variant (default 2)")
    ap.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--workers", type=int, default=1, help="server worker processes, every server alike (default 1)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the variants, interleaved; medians (default 1)")
    ap.add_argument("--batch", type=int, default=10_000, help="records per batch request (default 10000)")
    ap.add_argument("--batches", type=int, default=5, help="batch requests per format (default 5)")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs for the benchmark model (default 3)")
    ap.add_argument("--skip-mlflow", action="store_true", help="leave out the mlflow models serve peer")
    ap.add_argument("--demo", action="store_true", help="also measure RSS with the four demo models loaded")
    ap.add_argument("--keep", action="store_true", help="keep the temporary SFAI_HOME")
    ap.add_argument("--_bare", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._bare:
        serve_bare(args._bare)
        return 0
    args.wrk = shutil.which("wrk")
    if not args.wrk:
        ap.error("wrk is not on PATH (apt-get install wrk)")
    if not AI4I.exists():
        ap.error(f"{AI4I} not found: set SFAI_SHARED to the folder holding datasets/")
    load_before = ao.busy_warning()

    home = Path(tempfile.mkdtemp(prefix="sfai-serving-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SFAI_")}
    env.update({"SFAI_HOME": str(home), "SFAI_ENVIRONMENT": "development"})
    servers: list[ao.Server] = []
    rows: dict[str, list[Row]] = {}
    extra: dict = {}
    try:
        key, model_dir, record = prepare(home, env, args.epochs)
        x = model_input(model_dir, record)
        entity = f"ai4i-{record['Product ID']}"
        auth = {"Authorization": f"Bearer {key}"}

        def start_sfai() -> ao.Server:
            s = ao.Server(env, args.workers, home / "sfai.log")
            servers.append(s)
            s.wait_ready()
            return s

        def start_bare() -> Peer:
            port = ao.free_port()
            spec = json.dumps({"model": str(model_dir), "port": port})
            s = Peer([sys.executable, __file__, "--_bare", spec], env, port, home / "bare.log", "/healthz")
            servers.append(s)
            s.wait_ready()
            return s

        def start_mlflow() -> Peer:
            port = ao.free_port()
            mdir = mlflow_model(model_dir, home)
            mlflow = str(Path(sys.executable).with_name("mlflow"))
            cmd = [mlflow, "models", "serve", "-m", str(mdir), "-h", "127.0.0.1", "-p", str(port),
                   "--env-manager", "local", "-w", str(args.workers)]
            # mlflow execs ``uvicorn`` by name: the virtualenv's bin must be on PATH
            penv = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
            s = Peer(cmd, penv, port, home / "mlflow.log", "/health")
            servers.append(s)
            s.wait_ready()
            return s

        def stop(s: ao.Server) -> None:
            s.stop()
            servers.remove(s)

        variants = []
        if not args.skip_mlflow:
            variants.append(("mlflow models serve", start_mlflow, "/invocations", {"inputs": {"x": x}}, {}))
        variants += [
            ("bare FastAPI + ONNX Runtime", start_bare, "/predict", {"x": x}, {}),
            ("SFAI full path (entity id)", start_sfai, ENDPOINT, {"entity_ids": [entity], "view": "ai4i_features"},
             auth),
            ("SFAI full path (inline record)", start_sfai, ENDPOINT, {"records": [record]}, auth),
        ]
        import httpx

        for rnd in range(args.rounds):
            for name, start, path, body, headers in variants:
                ao.note(f"{name}" + (f" (round {rnd + 1}/{args.rounds})" if args.rounds > 1 else ""))
                server = start()
                r = httpx.post(server.base + path, json=body, headers=headers, timeout=10)
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: {path} answered {r.status_code}: {r.text[:500]}")
                load, cpu = wrk_post(server.base + path, json.dumps(body), headers, args, home, server.proc.pid)
                rows.setdefault(name, []).append(as_row(name, load, cpu))
                ao.note(f"  {load.rps:,.0f} requests/s, p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms"
                        + (f", server CPU {cpu:.0f} us/request" if cpu is not None else ""))
                if name.startswith("SFAI full path (entity") and rnd == 0:
                    extra["batch_ms"] = batch_times(server.base, key, args.batch, args.batches)
                    extra["rss_failure_only_mb"] = ao.rss_mb(server.proc.pid)
                stop(server)
        if args.demo:
            extra["rss_demo_mb"] = demo_rss(env, home, args)
    finally:
        for s in list(servers):
            s.stop()
        if args.keep:
            ao.note(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    def median_cpu(rs: list[Row]) -> float | None:
        cpus = [r.cpu_us for r in rs if r.cpu_us is not None]
        return statistics.median(cpus) if cpus else None

    med = {n: Row(n, *(statistics.median(getattr(r, f) for r in rs) for f in ("rps", "p50_ms", "p99_ms")),
                  sum(r.errors for r in rs), sum(r.non_2xx for r in rs), median_cpu(rs)) for n, rs in rows.items()}
    bare = med["bare FastAPI + ONNX Runtime"].rps
    mlf = med["mlflow models serve"].rps if "mlflow models serve" in med else None
    rounds = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    lb = f", load average before {load_before:.1f}" if load_before is not None else ""
    print(f"single-record failure prediction: {args.duration:g} s per variant{rounds}, {args.connections} "
          f"connections, {args.workers} worker(s) per server, wrk {args.threads} thread(s){lb}\n")
    print("| variant | requests/s | p50 ms | p99 ms | vs mlflow | vs bare | server CPU us/request | errors / non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in med.values():
        vm = f"{r.rps / mlf:.2f}x" if mlf else "-"
        cpu = f"{r.cpu_us:.0f}" if r.cpu_us is not None else "-"
        print(f"| {r.variant} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {vm} | {r.rps / bare:.2f}x | "
              f"{cpu} | {r.errors} / {r.non_2xx} |")
    print()
    if "batch_ms" in extra:
        b = extra["batch_ms"]
        print(f"batch of {args.batch:,} records through the full path (median of {args.batches}): "
              f"JSON {b['json']:.1f} ms (goal <= 100), Arrow {b['arrow']:.1f} ms (goal <= 30)")
    if "rss_failure_only_mb" in extra:
        print(f"serving RSS after the benchmark, failure model loaded: {extra['rss_failure_only_mb']:.0f} MB")
    if "rss_demo_mb" in extra:
        print(f"serving RSS with the four demo models loaded and answering: {extra['rss_demo_mb']:.0f} MB "
              "(goal <= 600)")
    full = med["SFAI full path (entity id)"]
    # this machine's speed drifts between runs: the ratios of the runs in the same round (a few seconds apart)
    # are steadier than the ratio of the medians
    pairs = {}
    for name in ("SFAI full path (entity id)", "SFAI full path (inline record)"):
        for peer, key in (("bare FastAPI + ONNX Runtime", "bare"), ("mlflow models serve", "mlflow")):
            if name in rows and peer in rows:
                pairs[(name, key)] = statistics.median(
                    a.rps / b.rps for a, b in zip(rows[name], rows[peer], strict=True))
    if args.rounds > 1 and pairs:
        print(f"per-round ratios, median of {args.rounds} rounds: " + "; ".join(
            f"{n.split('(')[1].rstrip(')')} vs {k} {v:.2f}x" for (n, k), v in pairs.items()))
    vs_bare = pairs.get(("SFAI full path (entity id)", "bare"), full.rps / bare)
    vs_mlflow = pairs.get(("SFAI full path (entity id)", "mlflow"), full.rps / mlf if mlf else 0.0)
    mlflow_goal = "not measured (--skip-mlflow)" if not mlf else "met" if vs_mlflow >= 2.5 else "NOT met"
    print(f"goals: >= 2.5x mlflow: {mlflow_goal}; >= 0.9x bare: "
          f"{'met' if vs_bare >= 0.9 else 'NOT met'}; p99 <= 10 ms: "
          f"{'met' if full.p99_ms <= 10 else 'NOT met'}")
    return 0


def demo_rss(env: dict[str, str], home: Path, args: argparse.Namespace) -> float:
    """``sfai demo`` (trains the demo models), then one call per endpoint; the server's RSS afterwards."""
    import httpx

    from models import demo

    p = subprocess.run([ao.sfai_bin(), "demo", "--json"], env=env, capture_output=True, text=True, timeout=900,
                       check=False)
    if p.returncode != 0:
        raise RuntimeError(f"sfai demo failed: {p.stderr.strip()[-2000:]}")
    info = json.loads(p.stdout.strip().splitlines()[-1])
    server = ao.Server(env, args.workers, home / "sfai-demo.log")
    try:
        server.wait_ready()
        h = {"Authorization": f"Bearer {info['api_key']}"}
        for family, path in demo.ENDPOINTS.items():
            body = demo.sample_request(home / "demo" / info["tenant"], family)
            r = httpx.post(server.base + path, json=body, headers=h, timeout=60)
            if r.status_code != 200:
                raise RuntimeError(f"demo {path}: {r.status_code} {r.text[:300]}")
        return ao.rss_mb(server.proc.pid)
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
