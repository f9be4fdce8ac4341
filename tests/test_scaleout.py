"""The scale-out stack end to end on this machine, every part a separate process, configured only by settings:

ingest (the ai4i pipeline on a Ray head started with ``ray start --head``) -> the feature store (offline Parquet,
online in Redis) -> training tracked on a separate ``mlflow server`` backed by PostgreSQL -> the registry in
PostgreSQL -> ``sfai serve`` answering a prediction for an entity id from the Redis online store.

Starts Ray and an MLflow server (about a minute in all): it runs on CI and where ``SFAI_TEST_RAY`` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import ON_CI, PgDatabase, need_postgres, require_service
from tests.datasets import need
from tests.ray_head import free_port, ray_head, stop_group

BIN = Path(sys.executable).parent


def _sfai(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([str(BIN / "sfai"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"sfai {' '.join(args)}: {r.stderr[-3000:]}"
    return r


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url} exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} did not answer in {timeout:.0f} s: {log.read_text()[-3000:]}")


def test_ingest_on_ray_training_on_mlflow_server_serving_from_postgres_and_redis(tmp_path):
    if not (ON_CI or os.environ.get("SFAI_TEST_RAY")):
        print("\nSKIP: set SFAI_TEST_RAY=1 to start a Ray head and an MLflow server for the scale-out test")
        pytest.skip("SFAI_TEST_RAY not set")
    pytest.importorskip("ray")
    pytest.importorskip("mlflow")
    import httpx
    import redis

    from tests.feature_store.conftest import REDIS_URL, redis_problem

    need_postgres()
    require_service(redis_problem())
    src = need("ai4i2020/ai4i2020_train.csv")
    sample = tmp_path / "ai4i.csv"
    pd.read_csv(src).sample(2000, random_state=0).to_csv(sample, index=False)

    sfai_db, mlflow_db = PgDatabase(), PgDatabase()
    prefix = f"sfai-test:{uuid.uuid4().hex[:8]}:"
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        # the MLflow tracking server: its own process, its store in PostgreSQL, artifacts on disk
        mlflow_port = free_port()
        mlflow_url = make_url(mlflow_db.url).set(drivername="postgresql+psycopg").render_as_string(
            hide_password=False)
        mlog = open(tmp_path / "mlflow.log", "w")  # noqa: SIM115 - closed below
        logs.append(mlog)
        procs.append(subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
             "--backend-store-uri", mlflow_url, "--default-artifact-root", str(tmp_path / "mlartifacts")],
            stdout=mlog, stderr=subprocess.STDOUT, start_new_session=True,
        ))
        tracking = f"http://127.0.0.1:{mlflow_port}"
        with ray_head(tmp_path / "ray-head.log") as ray_address:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SFAI_", "MLFLOW_"))}
            env.update(
                SFAI_HOME=str(tmp_path / "home"),
                SFAI_ENVIRONMENT="test",
                SFAI_SECRET_KEY="test-secret-0123456789",
                SFAI_DATABASE_URL=sfai_db.url,
                SFAI_ONLINE_STORE=REDIS_URL,
                SFAI_REDIS_PREFIX=prefix,
                SFAI_RAY_ADDRESS=ray_address,
                MLFLOW_TRACKING_URI=tracking,
                RAY_AUTH_MODE="disabled",
            )
            _sfai(env, "tenant", "create", "acme", "--ksic", "C29", "--module", "all")
            report = json.loads(_sfai(env, "ingest", "ai4i", str(sample), "--tenant", "acme", "--engine", "ray",
                                      "--quiet").stdout)
            assert report["views"]["ai4i_features"] == 2000, report
            _wait_http(tracking + "/health", procs[0], tmp_path / "mlflow.log")
            _sfai(env, "train", "failure", "--dataset", "ai4i", "--input", str(sample), "--tenant", "acme",
                  "--set", "folds=2", "--epochs", "3")
            key = _sfai(env, "apikey", "create", "--tenant", "acme", "--role", "mes").stdout.strip()

            # the run is on the MLflow server, not in a local file
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=tracking)
            exp = client.get_experiment_by_name("acme/failure")
            assert exp is not None
            runs = client.search_runs([exp.experiment_id])
            assert len(runs) == 1 and runs[0].info.status == "FINISHED" and "val_f1" in runs[0].data.metrics
            assert not (tmp_path / "home" / "mlflow.db").exists()

            # the online store is Redis: the pipeline wrote the latest row of every machine there
            r = redis.Redis.from_url(REDIS_URL)
            assert sum(1 for _ in r.scan_iter(match=prefix + "*", count=1000)) > 0

            # serving: its own process, the registry in PostgreSQL, entity lookups in Redis
            port = free_port()
            slog = open(tmp_path / "serve.log", "w")  # noqa: SIM115
            logs.append(slog)
            procs.append(subprocess.Popen(
                [str(BIN / "sfai"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                env=env, stdout=slog, stderr=subprocess.STDOUT, start_new_session=True,
            ))
            base = f"http://127.0.0.1:{port}"
            _wait_http(base + "/readyz", procs[-1], tmp_path / "serve.log")
            ids = [f"ai4i-{p}" for p in pd.read_csv(sample)["Product ID"].head(5)]
            resp = httpx.post(base + "/v1/maintenance/failure/predict", headers={"Authorization": f"Bearer {key}"},
                              json={"view": "ai4i_features", "entity_ids": ids}, timeout=30)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["model"] == "failure" and body["version"] == 1 and body["count"] == 5
            assert all(0 <= p["failure_probability"] <= 1 for p in body["predictions"])
            usage = _sfai(env, "usage", "export", "--tenant", "acme", "--format", "json").stdout
            assert "/v1/maintenance/failure/predict" in usage
    finally:
        for p in procs:
            stop_group(p)
        for f in logs:
            f.close()
        client = __import__("redis").Redis.from_url(REDIS_URL)
        for k in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(k)
        sfai_db.drop()
        mlflow_db.drop()
