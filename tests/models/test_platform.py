"""The shared model platform: training loop, ONNX export with parity, registry aliases, runtime checks."""

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from models.export import export
from models.registry import ModelRegistry
from models.training import TrainConfig, fit, make_loader, predict_batches
from serving import runtime, tenancy
from serving.errors import Conflict, InvalidInput, NotFound
from serving.runtime import ModelIntegrityError, OnnxModel


class TinyRegressor(nn.Module):
    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x, targets=None):
        out = self.net(x).squeeze(-1)
        return out, (None if targets is None else nn.functional.mse_loss(out, targets))


def data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x @ np.array([1.5, -2.0, 0.5], dtype=np.float32) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return x, y


def trained(seed=0):
    x, y = data()
    cfg = TrainConfig(epochs=40, batch_size=64, lr=1e-2, patience=5, seed=seed, progress=False)
    torch.manual_seed(seed)
    model = TinyRegressor(3)
    res = fit(
        model,
        make_loader(x[:300], y[:300], batch_size=64, shuffle=True, seed=seed),
        make_loader(x[300:], y[300:], batch_size=256, shuffle=False),
        cfg,
    )
    return model, res, x, y


def test_training_learns_stops_early_and_is_deterministic():
    m1, r1, x, y = trained()
    m2, r2, _, _ = trained()
    assert r1.best_score < 0.2 * float(np.var(y))  # learned the linear map
    assert r1.best_epoch == r2.best_epoch and r1.history[-1]["val_loss"] == r2.history[-1]["val_loss"]
    assert np.array_equal(predict_batches(m1, x), predict_batches(m2, x))  # seeded: bit-identical on CPU
    assert len(r1.history) <= 40 and r1.history[0]["lr"] < 1e-2  # warm-up


def test_the_progress_bar_shows_a_measurement_not_a_count(monkeypatch):
    """At a terminal the RUL bar read ``val=-1.0000, best=-1.0000``, then -2, -3 (data scientist's audit): its score
    is an epoch count that keeps the last weights, not a measurement. Such a fit shows the validation loss."""
    import io

    x, y = data()
    cfg = TrainConfig(epochs=3, batch_size=64, lr=1e-2, patience=10, seed=0)
    for shown, want, unwanted in ((False, "val_loss=", "best=-"), (True, "best=", "val_loss=")):
        err = io.StringIO()
        err.isatty = lambda: True  # a terminal: the bar is drawn
        monkeypatch.setattr("sys.stderr", err)
        count = iter(range(1, 100))
        fit(TinyRegressor(3), make_loader(x[:300], y[:300], batch_size=64, shuffle=True, seed=0),
            make_loader(x[300:], y[300:], batch_size=256, shuffle=False), cfg,
            score=lambda m, count=count: -float(next(count)), score_shown=shown, label="rul fold 1/5")
        text = err.getvalue()
        assert "rul fold 1/5" in text and want in text and unwanted not in text, text


def test_no_terminal_gets_plain_progress_lines_at_most_every_ten_seconds(monkeypatch):
    """Where stderr is a log file (nohup, a batch job) a training printed nothing until its result: no bar is drawn
    there. It now writes a ``progress:`` line, at most one per ``PROGRESS_EVERY_S``, and no bar."""
    import io

    from models import training

    x, y = data()
    cfg = TrainConfig(epochs=4, batch_size=64, lr=1e-2, patience=10, seed=0)
    clock = iter([100.0, 101.0, 112.0, 113.0, 200.0])  # epoch 1 printed, 2 too soon, 3 printed, 4 too soon
    monkeypatch.setattr(training, "_clock", lambda: next(clock))  # not time.monotonic: other threads read it
    monkeypatch.setattr(training, "_last_progress", [-float("inf")])
    err = io.StringIO()  # isatty() is False: no terminal
    monkeypatch.setattr("sys.stderr", err)
    fit(TinyRegressor(3), make_loader(x[:300], y[:300], batch_size=64, shuffle=True, seed=0),
        make_loader(x[300:], y[300:], batch_size=256, shuffle=False), cfg, label="failure split 1/3")
    lines = err.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "progress: failure split 1/3: epoch 1/4", "progress: failure split 1/3: epoch 3/4"], lines
    assert "val " in lines[0] and "best " in lines[0] and "\r" not in err.getvalue()
    training.progress_line("tuning: 1/2 trials", every=0)  # a trial's end is always shown
    assert err.getvalue().splitlines()[-1] == "progress: tuning: 1/2 trials"


def test_export_parity_manifest_and_checksum(tmp_path, monkeypatch):
    model, _, x, _ = trained()
    manifest = export(model, x[:8], tmp_path / "m", {"name": "tiny", "features": ["a", "b", "c"], "threshold": 0.5})
    assert manifest["parity_max_abs"] <= 1e-4
    onnx = OnnxModel(tmp_path / "m")
    got = onnx.run({"x": x.astype(np.float64)})["y"]  # float64 in: cast by the manifest's dtype
    assert np.allclose(got, predict_batches(model, x), atol=1e-4)
    m = json.loads((tmp_path / "m" / "manifest.json").read_text())
    assert m["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["batch", 3]} and m["features"] == [
        "a",
        "b",
        "c",
    ]
    with pytest.raises(InvalidInput, match="needs inputs"):
        onnx.run({"z": x})
    # a big batch gets a many-thread session built from the file again: a file changed since the load is not
    # used; the batch is scored by the session loaded from the verified file
    monkeypatch.setattr(runtime, "WIDE_THREADS", 2)
    big = np.repeat(x, runtime.WIDE_ROWS // len(x) + 1, axis=0).astype(np.float32)
    want = onnx.run({"x": big})["y"]
    assert onnx._wide is not None  # the many-thread session scored it
    loaded = OnnxModel(tmp_path / "m")
    (tmp_path / "m" / "model.onnx").write_bytes((tmp_path / "m" / "model.onnx").read_bytes() + b"\0")
    assert np.allclose(loaded.run({"x": big})["y"], want, atol=1e-6) and loaded._wide is None
    with pytest.raises(ModelIntegrityError, match="checksum"):
        OnnxModel(tmp_path / "m")


def test_registry_champion_challenger_promote_rollback(tmp_path, db):
    tenancy.create_tenant(db, "acme", "C29")
    tenancy.create_tenant(db, "other", "C29")
    model, _, x, _ = trained()
    export(model, x[:4], tmp_path / "exp", {"name": "failure"})
    reg = ModelRegistry(db, tmp_path / "home", "acme")
    v1 = reg.register("failure", "maintenance", tmp_path / "exp", metrics={"auc": 0.9})
    v2 = reg.register("failure", "maintenance", tmp_path / "exp", metrics={"auc": 0.95})
    assert (v1.version, v1.aliases, v2.version, v2.aliases) == (1, ("champion",), 2, ("challenger",))
    assert reg.get("failure").version == 1 and reg.get("failure", alias="challenger").version == 2
    assert json.loads((v2.path / "manifest.json").read_text())["version"] == 2
    assert reg.promote("failure").version == 2
    assert (reg.alias("failure", "champion"), reg.alias("failure", "challenger")) == (2, 1)
    assert reg.rollback("failure").version == 1
    assert (reg.alias("failure", "champion"), reg.alias("failure", "challenger")) == (1, 2)
    assert OnnxModel(reg.get("failure").path).version == "1"
    with pytest.raises(NotFound):
        ModelRegistry(db, tmp_path / "home", "other").get("failure")  # per tenant
    with pytest.raises(NotFound, match="no version 7"):
        reg.promote("failure", 7)
    for name in ("../other/failure", "Failure", "", "rul/fd001"):  # a name is a folder under the tenant's models
        with pytest.raises(InvalidInput, match="model name"):
            reg.register(name, "maintenance", tmp_path / "exp")
    assert sorted(p.name for p in (tmp_path / "home" / "models").iterdir()) == ["acme"]


def test_a_new_database_on_an_old_home_keeps_the_old_files_and_serves_only_its_own(tmp_path, db, settings):
    """A deployment switched to a new database by configuration, on the same SFAI_HOME: its first training wrote
    over the old deployment's models/acme/failure/v1, and a changed file was served as the version the registry had
    recorded (operator's audit). Registering over a folder the database does not know is refused (the old deployment
    still serves it), and a model file that is not the one registered is refused on load. Two registrations at once
    take two numbers."""
    import threading

    from serving.db import Database
    from serving.predictions import ModelCache

    tenancy.create_tenant(db, "acme", "C29")
    model, _, x, _ = trained()
    export(model, x[:4], tmp_path / "a", {"name": "failure"})
    export(trained(seed=1)[0], x[:4], tmp_path / "b", {"name": "failure"})
    home = tmp_path / "home"
    old = ModelRegistry(db, home, "acme").register("failure", "maintenance", tmp_path / "a")
    old_bytes = (old.path / "model.onnx").read_bytes()
    new_db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        tenancy.create_tenant(new_db, "acme", "C29")
        with pytest.raises(Conflict, match="exists but this database has no such version"):
            ModelRegistry(new_db, home, "acme").check_next_free("failure")  # before a training
        with pytest.raises(Conflict, match="another deployment's models are in this SFAI_HOME"):
            ModelRegistry(new_db, home, "acme").register("failure", "maintenance", tmp_path / "b")
        assert (old.path / "model.onnx").read_bytes() == old_bytes  # untouched: the old deployment serves it
        assert ModelCache(db, home).champion("acme", "failure").version == "1"
        assert ModelRegistry(new_db, home, "acme").list() == []  # nothing half-registered
        assert not [p for p in (home / "models" / "acme" / "failure").iterdir() if p.name.startswith(".incoming-")]
        # a file changed under a registered version: refused, not served as that version
        (old.path / "model.onnx").write_bytes((tmp_path / "b" / "model.onnx").read_bytes())
        with pytest.raises(ModelIntegrityError, match="does not match the checksum recorded when it was registered"):
            ModelCache(db, home).champion("acme", "failure")
        (old.path / "model.onnx").write_bytes(old_bytes)
        # two registrations at the same moment (on the old database): two versions, both folders in place
        reg = ModelRegistry(db, home, "acme")
        got: list[int] = []
        threads = [threading.Thread(target=lambda: got.append(reg.register("failure", "maintenance",
                                                                            tmp_path / "a").version))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(got) == [2, 3]
        for v in (2, 3):
            assert (home / "models" / "acme" / "failure" / f"v{v}" / "model.onnx").read_bytes() == old_bytes
        assert not [p for p in (home / "models" / "acme" / "failure").iterdir() if p.name.startswith(".incoming-")]
    finally:
        new_db.dispose()


def test_a_registration_cut_off_after_its_folder_moved_does_not_block_the_next(tmp_path, db, monkeypatch):
    """A registration whose commit failed after its folder had moved into place left ``v2`` there unrecorded, and
    every later training of that model was refused as "another deployment's" (operator's audit). A failed commit
    now takes its folder back; one left by a killed process names this deployment in its manifest and is set
    aside, kept, while another deployment's folder is still refused."""
    from contextlib import contextmanager

    from sqlalchemy.exc import OperationalError

    tenancy.create_tenant(db, "acme", "C29")
    model, _, x, _ = trained()
    export(model, x[:4], tmp_path / "exp", {"name": "failure"})
    home = tmp_path / "home"
    reg = ModelRegistry(db, home, "acme")
    reg.register("failure", "maintenance", tmp_path / "exp")
    folder = home / "models" / "acme" / "failure"
    real = db.session

    @contextmanager
    def failing_commit():
        with real() as s:
            yield s
            raise OperationalError("COMMIT", {}, Exception("database is locked"))

    monkeypatch.setattr(db, "session", failing_commit)
    with pytest.raises(OperationalError):
        reg.register("failure", "maintenance", tmp_path / "exp")
    monkeypatch.setattr(db, "session", real)
    assert sorted(p.name for p in folder.iterdir()) == ["v1"]  # no v2 left behind, no staging folder
    # a process killed between the move and the commit: v2 in place, the database without it
    shutil.copytree(folder / "v1", folder / "v2")
    manifest = json.loads((folder / "v2" / "manifest.json").read_text())
    assert manifest["deployment"] not in (None, "-")
    manifest["version"] = 2
    (folder / "v2" / "manifest.json").write_text(json.dumps(manifest))
    reg.check_next_free("failure")  # not refused: this deployment's own; and not moved (a registration about to
    assert (folder / "v2" / "model.onnx").exists()  # commit it may be running: only the registration moves it)
    v2 = reg.register("failure", "maintenance", tmp_path / "exp")
    assert v2.version == 2 and (v2.path / "model.onnx").exists()
    aside = [p.name for p in folder.iterdir() if p.name.startswith("v2.interrupted-")]
    assert len(aside) == 1 and (folder / aside[0] / "model.onnx").exists()  # kept, not removed
    # another deployment's v3 (its manifest names another deployment): refused, as before
    shutil.copytree(folder / "v1", folder / "v3")
    (folder / "v3" / "manifest.json").write_text(json.dumps({**manifest, "version": 3, "deployment": "0123456789ab"}))
    with pytest.raises(Conflict, match="another deployment's models"):
        reg.register("failure", "maintenance", tmp_path / "exp")
    assert (folder / "v3" / "manifest.json").exists()


def test_tracked_run_is_logged_and_registered_in_mlflow(tmp_path, monkeypatch):
    """What `sfai train` does by default: an MLflow run with params, metrics, curves, and a registered
    version carrying the alias."""
    from mlflow import MlflowClient

    from models.tracking import Tracker, tracking_uri
    from serving.settings import Settings

    settings = Settings(home=tmp_path, environment="test")
    model, res, x, _ = trained()
    export(model, x[:4], tmp_path / "exp", {"name": "tiny"})
    with Tracker(settings, "acme/tiny", run_name="tiny run") as t:
        t.log_params({"hidden": 16})
        for h in res.history:
            t.log_metrics({"val_loss": h["val_loss"]}, step=h["epoch"])
        t.log_curves(res.history)
        t.register("acme.tiny", tmp_path / "exp", "champion")
        run_id = t.run_id
    client = MlflowClient(tracking_uri(settings))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["hidden"] == "16"
    assert len(client.get_metric_history(run_id, "val_loss")) == len(res.history)
    mv = client.get_model_version_by_alias("acme.tiny", "champion")
    assert mv.run_id == run_id
    artifacts = {a.path for a in client.list_artifacts(run_id, "model")}
    assert {"model/model.onnx", "model/manifest.json", "model/MLmodel"} <= artifacts
    # MLflow's ONNX flavour: pyfunc loads the champion and runs it on the model's input features, as SFAI's
    # runtime does (it had failed: no MLmodel in the folder; data-scientist audit)
    import mlflow.pyfunc

    from serving.runtime import OnnxModel

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(settings))  # undone after the test
    loaded = mlflow.pyfunc.load_model("models:/acme.tiny@champion")
    spec = loaded.metadata.get_input_schema().inputs[0]
    assert spec.name == "x" and spec.shape == (-1, x.shape[1])
    got = loaded.predict({"x": x[:8].astype(np.float32)})
    expected = OnnxModel(tmp_path / "exp").run({"x": x[:8].astype(np.float32)})
    assert np.allclose(next(iter(got.values())), next(iter(expected.values())), atol=1e-6)


def test_tracking_keeps_params_tags_and_aliases_in_step(tmp_path):
    """A ``--set`` override logged by the CLI and again, cast, by the family's config (``0`` and ``0.0``) made
    MLflow refuse the run; runs carry SFAI's tags; promote/rollback move MLflow's aliases with SFAI's, and an alias
    whose version was never tracked is removed from MLflow instead of left on another version."""
    from mlflow import MlflowClient

    from models.tracking import Tracker, _local, sync_aliases, tracking_uri
    from serving.settings import Settings

    settings = Settings(home=tmp_path, environment="test")
    model, _, x, _ = trained()
    runs = []
    for version in (1, 2):
        exp = tmp_path / f"exp{version}"
        export(model, x[:4], exp, {"name": "tiny", "version": version})
        with Tracker(settings, "acme/tiny", tags={"sfai.tenant": "acme", "sfai.dataset": "ai4i"}) as t:
            t.log_params({"dropout": "0", "family": "tiny"})
            t.log_params({"dropout": 0.0, "flag": True})
            t.log_params({"flag": "true", "lr": 1e-3})
            t.log_params({"dropout": 0.2})  # a real change: kept next to what was asked for
            t.register("acme.tiny", exp, "champion" if version == 1 else "challenger")
            runs.append(t.run_id)
    client = MlflowClient(tracking_uri(settings))
    run = client.get_run(runs[0])
    assert run.data.params == {"dropout": "0", "family": "tiny", "flag": "True", "lr": "0.001",
                               "dropout.effective": "0.2"}
    assert run.data.tags["sfai.tenant"] == "acme" and run.data.tags["sfai.dataset"] == "ai4i"
    assert client.get_model_version_by_alias("acme.tiny", "challenger").tags["sfai.version"] == "2"

    # SFAI promotes version 2 (MLflow version 2), then a third, untracked version becomes champion
    assert sync_aliases(settings, "acme.tiny", {"champion": (2, runs[1]), "challenger": (1, runs[0])}) == []
    assert client.get_model_version_by_alias("acme.tiny", "champion").run_id == runs[1]
    assert client.get_model_version_by_alias("acme.tiny", "challenger").run_id == runs[0]
    notes = sync_aliases(settings, "acme.tiny", {"champion": (3, None), "challenger": (2, runs[1])})
    assert len(notes) == 1 and "version 3 was trained without tracking" in notes[0]
    aliases = client.get_registered_model("acme.tiny").aliases
    assert "champion" not in aliases and client.get_model_version_by_alias("acme.tiny", "challenger").run_id == runs[1]
    assert sync_aliases(settings, "acme.other", {"champion": (1, None), "challenger": None}) == []  # never tracked
    assert _local(f"sqlite:///{tmp_path}/m.db") and _local("file:///x") and _local("/srv/mlruns")
    assert not _local("http://mlflow:5000") and not _local("https://mlflow.example")


def test_a_tracking_server_that_does_not_answer_is_said_at_once_and_a_lost_one_keeps_the_training(tmp_path,
                                                                                                   monkeypatch,
                                                                                                   caplog):
    """A tracking server that was down held `sfai train` 4 minutes in MLflow's retries before one long error, and
    `sfai models promote` 4 minutes before a silent exit; one killed mid-training lost the trained model (operator's
    audit). A server that does not answer is now one line before any work; one lost mid-run ends the run's
    tracking with a warning, and the training goes on."""
    import socket
    import time

    import mlflow

    from models.tracking import Tracker, check_server, sync_aliases
    from serving.errors import Unavailable
    from serving.settings import Settings

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    settings = Settings(home=tmp_path, environment="test")
    t0 = time.monotonic()
    with pytest.raises(Unavailable, match=r"the MLflow tracking server .* does not answer .*--no-track"):
        Tracker(settings, "acme/tiny").__enter__()
    with pytest.raises(Unavailable, match="does not answer"):
        sync_aliases(settings, "acme.tiny", {"champion": (1, "abc")})
    # user:password@ in the address (MLflow takes it): probed without it, and never shown
    with pytest.raises(Unavailable) as e:
        check_server(dead.replace("http://", "http://ops:password@"))
    assert "password@" not in e.value.message and "ops:" not in e.value.message and dead in e.value.message
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)  # answers (404)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:  # a server that answers passes, with credentials in its address or not (it had failed: a bad host)
        check_server(f"http://ops:password@127.0.0.1:{server.server_address[1]}")
        check_server(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
    assert time.monotonic() - t0 < 20

    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # SFAI's own store, then it "stops answering" mid-run
    with Tracker(Settings(home=tmp_path, environment="test"), "acme/tiny") as t:
        t.log_metrics({"loss": 1.0}, step=0)

        def gone(*_a, **_k):
            raise ConnectionError("connection refused")

        monkeypatch.setattr(mlflow, "log_metrics", gone)
        t.log_metrics({"loss": 0.5}, step=1)  # no exception: the training goes on
        assert "MLflow stopped answering (ConnectionError: connection refused)" in caplog.text
        t.log_params({"later": 1})  # a no-op from here
        assert t._mlflow is None
    monkeypatch.undo()
