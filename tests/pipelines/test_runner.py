"""The runner on the local engine (no Ray), the CLI commands, and the C22 demo generator."""

from __future__ import annotations

import json

import pandas as pd
import typer
from typer.testing import CliRunner

from pipelines import demo
from pipelines.runner import partition_by_entity, run_pipeline
from tests.datasets import need


def test_rerun_is_idempotent_and_features_reach_both_stores(store):
    path = need("ai4i2020/ai4i2020_train.csv")
    first = run_pipeline("ai4i", path, store=store, partitions=3)
    files = store.offline.files("acme", "ai4i_features")
    again = run_pipeline("ai4i", path, store=store, partitions=5)  # another partitioning, the same files
    assert first.views == again.views == {"ai4i_features": 8000, "ai4i_labels": 8000}
    assert store.offline.files("acme", "ai4i_features") == files
    assert store.offline.row_count("acme", "ai4i_features") == 8000
    assert store.offline.row_count("acme", "ai4i_labels") == 8000 and first.run_id == again.run_id
    online = store.get_online_features("ai4i_features", ["ai4i-M14860"])[0]
    assert abs(online["torque_nm"] - 42.8) < 1e-4 and online["type_m"] == 1
    frame = store.get_training_frame(
        pd.DataFrame({"lot_id": ["ai4i-M14860"], "event_timestamp": [pd.Timestamp("2020-01-02", tz="UTC")]}),
        ["ai4i_features:power_w", "ai4i_labels:machine_failure"],
    )
    assert round(float(frame["power_w"][0])) == round(42.8 * 1551 * 2 * 3.141592653589793 / 60)


def test_partitions_hold_whole_entities():
    df = pd.DataFrame({"k": list("aaabbbbbcd"), "event_timestamp": pd.date_range("2020", periods=10, tz="UTC")})
    parts = partition_by_entity(df.sample(frac=1, random_state=0), "k", 3)
    assert sum(map(len, parts)) == 10 and len({k for p in parts for k in p["k"].unique()}) == 4
    assert all(set(a["k"]).isdisjoint(b["k"]) for i, a in enumerate(parts) for b in parts[i + 1:])


def test_demo_is_deterministic_and_documented():
    a, b = demo.generate(seed=7, machines=2, days=1), demo.generate(seed=7, machines=2, days=1)
    assert a["sensor_readings"].data.equals(b["sensor_readings"].data)
    assert not a["sensor_readings"].data.equals(demo.generate(seed=8, machines=2, days=1)["sensor_readings"].data)
    assert a["sensor_readings"].entities == 2 and len(a["meter_readings"]) == 2 * 96
    assert 0.01 < a["labels"].data["defect"].mean() < 0.2
    assert a["sensor_readings"].units["melt_temp_c"] == "degC" and "seed" in (demo.__doc__ or "")


def _cli(monkeypatch, tmp_path):
    from serving.cli import common
    from serving.settings import get_settings

    monkeypatch.setenv("SFAI_HOME", str(tmp_path / "cli-home"))
    monkeypatch.setenv("SFAI_ENVIRONMENT", "test")
    monkeypatch.delenv("SFAI_DATABASE_URL", raising=False)
    for f in (get_settings, common.settings, common.database):
        f.cache_clear()
    from pipelines.cli import register

    app, ingest = typer.Typer(), typer.Typer()
    register(ingest)
    app.add_typer(ingest, name="ingest")
    return app


def test_cli_prints_one_json_line_and_errors_on_bad_input(monkeypatch, tmp_path):
    app = _cli(monkeypatch, tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["ingest", "c22-demo", "--machines", "1", "--days", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["dataset"] == "c22-demo" and report["tenant"] == "local" and report["views"]["c22_cycle_features"]
    res = runner.invoke(app, ["ingest", "steel-energy", str(tmp_path / "nope.csv"), "--tenant", "local"])
    assert res.exit_code != 0 and isinstance(res.exception, ValueError) and "no such file" in str(res.exception)
    res = runner.invoke(app, ["ingest", "ai4i", str(need("ai4i2020/ai4i2020_train.csv")), "--engine", "spark", "-q"])
    assert res.exit_code != 0 and "unknown engine" in str(res.exception)


def test_each_feature_table_is_conformed_once(store, monkeypatch):
    """The runner checks every table against its view before anything is written; the store and the online
    write take those checked tables as they are instead of conforming them again (0.1-0.3 s on C-MAPSS)."""
    import feature_store.store
    import feature_store.validate

    real, calls = feature_store.validate.conform, []

    def counting(view, table, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append((view.name, table.num_rows))
        return real(view, table, **kw)

    monkeypatch.setattr(feature_store.validate, "conform", counting)
    monkeypatch.setattr(feature_store.store, "conform", counting)
    rep = run_pipeline("ai4i", need("ai4i2020/ai4i2020_train.csv"), store=store)
    assert sorted(calls) == [("ai4i_features", 8000), ("ai4i_labels", 8000)]
    assert rep.views == {"ai4i_features": 8000, "ai4i_labels": 8000}
    assert store.get_online_features("ai4i_features", ["ai4i-M14860"])[0]["type_m"] == 1
