"""Experiment tracking in MLflow: the only module that imports mlflow.

By default MLflow runs on SQLite plus local artifacts under ``$SFAI_HOME`` (``mlflow ui --backend-store-uri
sqlite:///.sfai/mlflow.db`` shows the runs); ``MLFLOW_TRACKING_URI`` points at a server instead.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from serving.errors import InvalidInput, Unavailable
from serving.settings import Settings

log = logging.getLogger("sfai.tracking")


def tracking_uri(settings: Settings) -> str:
    configured = os.environ.get("MLFLOW_TRACKING_URI") or settings.mlflow_tracking_uri  # the environment, or .env
    return configured or f"sqlite:///{(settings.home / 'mlflow.db').resolve()}"


def _local(uri: str) -> bool:
    """A store on this machine (SQLite, a folder): its artifacts go under ``$SFAI_HOME``; a tracking server keeps
    them where the server says (its artifact root, or proxied), so that the UI and colleagues elsewhere see them."""
    return uri.startswith(("sqlite:", "file:", "/", ".")) or "://" not in uri


# MLflow retries a request to a tracking server 7 times with a growing backoff, 120 s each: a server that was down
# held `sfai train` 4 minutes before one long error, and `sfai models promote` 4 minutes before a silent exit
# (operator's audit). A caller's own values are kept.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
PROBE_TIMEOUT_S = 5.0


def check_server(uri: str, *, training: bool = True) -> None:
    """For a tracking server (``http(s)://``), one quick request before any work: one that does not answer is a
    one-line :class:`Unavailable` saying what to do, not minutes of retries. Local stores are not probed.
    ``training=False`` (promote, rollback): the advice leaves out ``sfai train --no-track``, no option there."""
    for k, v in HTTP_DEFAULTS.items():
        os.environ.setdefault(k, v)
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.parse
    import urllib.request

    # user:password@ in the address (MLflow takes it; urllib does not): probed without it, and never shown
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    shown = urllib.parse.urlunsplit(parts._replace(netloc=netloc)).rstrip("/")
    try:
        with urllib.request.urlopen(shown + "/health", timeout=PROBE_TIMEOUT_S):  # noqa: S310 - http(s) only
            pass
    except urllib.error.HTTPError:
        pass  # it answered (a proxy's 404, a 401 without the password): the calls themselves will say more
    except (urllib.error.URLError, TimeoutError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        advice = ("start it, correct MLFLOW_TRACKING_URI, or run without tracking (sfai train --no-track)" if training
                  else "start it or correct MLFLOW_TRACKING_URI")
        raise Unavailable(f"the MLflow tracking server {shown} does not answer ({reason}): {advice}") from None


def _same(old: str, new: str) -> bool:
    """Whether two logged parameter values say the same (``--set dropout=0`` against the config's ``0.0``)."""
    if old.lower() == new.lower():
        return True
    try:
        return float(old) == float(new)
    except ValueError:
        return False


def _to_stderr():  # noqa: ANN202
    """MLflow prints "View run ... at http://..." on stdout when it talks to a server; SFAI's commands print one
    JSON line there."""
    return contextlib.redirect_stdout(sys.stderr)


def _tolerant(method):  # noqa: ANN001, ANN202
    """A Tracker method that a tracking server failing mid-run turns into a warning and no-ops (``Tracker._lose``),
    not an aborted training; a refused value (InvalidInput) is still an error."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if self._mlflow is None:
            return None
        try:
            return method(self, *args, **kwargs)
        except InvalidInput:
            raise
        except Exception as e:  # noqa: BLE001
            self._lose(e)
            return None

    return call


class Tracker:
    """``with Tracker(settings, "acme/failure") as t: t.log_params(...); t.log_metrics(..., step=epoch)``.

    ``enabled=False`` makes every call a no-op (tests, quick runs: ``sfai train --no-track``).
    """

    def __init__(
        self,
        settings: Settings,
        experiment: str,
        *,
        enabled: bool = True,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ):
        self.settings, self.experiment, self.enabled, self.run_name = settings, experiment, enabled, run_name
        self.tags = dict(tags or {})  # on the run, for MLflow's search and columns (sfai.tenant, sfai.family, ...)
        self.run_id: str | None = None
        self._mlflow = None
        self._params: dict[str, str] = {}  # logged so far: MLflow refuses a key logged again with another value
        self._lost_run = False  # the server stopped answering during the run (_lose)

    def __enter__(self) -> Tracker:
        if not self.enabled:
            return self
        import mlflow

        # after the import: importing mlflow sets its own loggers to INFO, and its start-up lines ("Updating
        # database tables") would precede the one-line error of a training that refuses its input
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        uri = tracking_uri(self.settings)
        check_server(uri)
        self._mlflow = mlflow
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(self.experiment) is None:
            if _local(uri):
                artifacts = (self.settings.home / "mlartifacts").resolve()
                mlflow.create_experiment(self.experiment, artifact_location=artifacts.as_uri())
            else:
                mlflow.create_experiment(self.experiment)
        mlflow.set_experiment(self.experiment)
        self.run_id = mlflow.start_run(run_name=self.run_name, tags=self.tags or None).info.run_id
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if self._mlflow is not None:
            with _to_stderr():
                try:
                    self._mlflow.end_run(status="FAILED" if exc_type else "FINISHED")
                    if isinstance(exc, InvalidInput) and self.run_id:
                        # the input was refused (a wrong file, too few rows): no training to look at, so no run left
                        # in the experiment (it had kept a FAILED run per refused command); the error says why
                        self._mlflow.tracking.MlflowClient().delete_run(self.run_id)
                except Exception as e:  # noqa: BLE001 - the training's own outcome stands
                    self._lose(e)
        elif self._lost_run:
            try:  # the server may be back: the run is not left RUNNING
                import mlflow

                with _to_stderr():
                    mlflow.end_run(status="FAILED")
            except Exception:  # noqa: BLE001
                pass

    def _lose(self, e: Exception) -> None:
        """The tracking server stopped answering during the run: tracking ends here, the training goes on and its
        model is registered in SFAI (a server killed mid-training had lost the trained model: operator's audit)."""
        if self._mlflow is None:
            return
        self._mlflow, self._lost_run = None, True
        text = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        log.warning("warning: MLflow stopped answering (%s): this run is tracked no further; the model is still "
                    "trained and registered in SFAI (sfai models list)", text)

    @_tolerant
    def log_params(self, params: dict) -> None:
        """Logs ``params`` (values as text, up to 500 characters). A key logged before with the same
        value in another spelling (``0`` and ``0.0``, ``true`` and ``True``) is skipped; with another value, the
        new one goes under ``<key>.effective`` (what the family's config made of an override)."""
        if not self._mlflow:
            return
        out = {}
        for k, v in params.items():
            text = str(v)[:500]  # the limit of older tracking servers (MLflow itself now takes 6,000)
            old = self._params.get(k)
            if old is None:
                out[k] = self._params[k] = text
            elif not _same(old, text):
                out[f"{k}.effective"] = self._params[f"{k}.effective"] = text
        if out:
            self._mlflow.log_params(out)

    @_tolerant
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if self._mlflow:
            clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            self._mlflow.log_metrics(clean, step=step)

    @_tolerant
    def log_dict(self, data: dict, name: str) -> None:
        if self._mlflow:
            self._mlflow.log_dict(data, name)

    def log_input(self, path: Path, digest: str | None, context: str = "training") -> None:
        """The training file as the run's MLflow input (the Datasets column of the UI, comparable across runs): its
        path, name and the data hash the manifest keeps; the file itself is not copied."""
        if not self._mlflow:
            return
        try:
            import warnings

            from mlflow.data.dataset_source_registry import resolve_dataset_source
            from mlflow.data.meta_dataset import MetaDataset

            with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local file, either way
                warnings.simplefilter("ignore")
                source = resolve_dataset_source(str(Path(path).resolve()))
            with _to_stderr():
                self._mlflow.log_input(MetaDataset(source, name=Path(path).name, digest=(digest or "")[:36] or None),
                                       context=context)
        except Exception as e:  # noqa: BLE001 - the model is trained and registered: a missing input is no failure
            log.warning("note: the training file was not logged as the run's input (%s: %s)", type(e).__name__, e)

    @_tolerant
    def log_artifacts(self, directory: Path, path: str | None = None) -> None:
        if self._mlflow:
            self._mlflow.log_artifacts(str(directory), artifact_path=path)

    @_tolerant
    def log_figure(self, fig, name: str) -> None:  # noqa: ANN001
        if self._mlflow:
            self._mlflow.log_figure(fig, name)

    @_tolerant
    def log_curves(self, history: list[dict], name: str = "learning_curve.png", title: str | None = None) -> None:
        """Learning curves (train and validation loss per epoch) as a PNG artifact; ``title`` says whose (one fold
        or member of several: the per-epoch metrics of every one are logged as ``<fold|member>N_*``)."""
        if not self._mlflow or not history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], label="train loss")
        ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], label="validation loss")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)  # no epoch 0.5
        if title:
            ax.set_title(title, fontsize=10)
        ax.legend()
        fig.tight_layout()
        self._mlflow.log_figure(fig, name)
        plt.close(fig)

    @_tolerant
    def log_calibration(self, bins: list[dict], what: str, name: str = "calibration.png") -> None:
        """A reliability plot (``models.metrics.calibration_bins``: mean predicted vs observed rate per bin)."""
        if not self._mlflow or not bins:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 5))
        predicted, observed = [b["predicted"] for b in bins], [b["observed"] for b in bins]
        top = max([*predicted, *observed, 0.1])
        ax.plot([0, top], [0, top], "k--", lw=1, label="perfect calibration")
        ax.plot(predicted, observed, "o-", label="held-out bins")
        ax.set_xlabel(f"mean predicted {what} probability")
        ax.set_ylabel(f"observed {what} rate")
        ax.legend()
        fig.tight_layout()
        self._mlflow.log_figure(fig, name)
        plt.close(fig)

    @_tolerant
    def register(self, model_name: str, model_dir: Path, alias: str) -> None:
        """Log the exported model and register it under ``model_name`` with ``alias`` in MLflow's registry.

        The version's source is the run's ``model`` artifact folder: MLflow's ONNX flavour (``MLmodel``, the ONNX
        file, its input signature and requirements), so ``mlflow.pyfunc.load_model("models:/NAME@champion")``
        runs it on the model's input features, plus SFAI's ``manifest.json`` (features, normalisation,
        thresholds). Registered through the client API."""
        if not self._mlflow:
            return
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        with _to_stderr(), tempfile.TemporaryDirectory() as tmp:
            folder = _onnx_flavour(Path(model_dir), Path(tmp) / "model")
            self._mlflow.log_artifacts(str(folder), artifact_path="model")
            client = MlflowClient()
            try:
                client.get_registered_model(model_name)
            except MlflowException:
                client.create_registered_model(model_name, description="SFAI model (ONNX + manifest.json)")
            run = client.get_run(self.run_id)
            version = json.loads((Path(model_dir) / "manifest.json").read_text()).get("version")
            tags = {"sfai.version": str(version)} if version is not None else None
            mv = client.create_model_version(model_name, source=f"{run.info.artifact_uri}/model", run_id=self.run_id,
                                             tags=tags)
            client.set_registered_model_alias(model_name, alias, mv.version)


def _onnx_flavour(model_dir: Path, folder: Path) -> Path:
    """``folder`` holding the exported model as MLflow's ONNX flavour (the same ``model.onnx``, on CPU, with the
    manifest's input as its signature and pinned requirements, so MLflow infers nothing) and ``manifest.json``. A
    data scientist's ``mlflow.pyfunc.load_model`` had failed on the folder (no ``MLmodel``)."""
    import mlflow.onnx
    import onnx
    import onnxruntime
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    manifest = json.loads((model_dir / "manifest.json").read_text())
    inputs = [TensorSpec(np.dtype(i.get("dtype", "float32")), tuple(-1 if isinstance(d, str) else int(d)
                                                                      for d in i.get("shape", ["batch"])), i["name"])
              for i in manifest.get("inputs", [])]
    mlflow.onnx.save_model(
        onnx.load(str(model_dir / "model.onnx")), str(folder), onnx_execution_providers=["CPUExecutionProvider"],
        save_as_external_data=False, signature=ModelSignature(inputs=Schema(inputs)) if inputs else None,
        pip_requirements=[f"onnx=={onnx.__version__}", f"onnxruntime=={onnxruntime.__version__}"])
    shutil.copy2(model_dir / "manifest.json", folder / "manifest.json")
    return folder


def sync_aliases(settings: Settings, model_name: str, targets: dict[str, tuple[int, str | None] | None]) -> list[str]:
    """Point MLflow's aliases of ``model_name`` where SFAI's registry points them (after promote or rollback):
    ``targets`` maps each alias to (SFAI version, the run that logged it) or None where SFAI has no such alias. An
    alias whose SFAI version was trained without tracking (``--no-track``, the demo's models) has no MLflow version
    to point at: it is removed from MLflow rather than left on another version. Returns one note per such alias."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = tracking_uri(settings)
    check_server(uri, training=False)  # a server that does not answer: the caller says the aliases were not moved
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    try:
        current = dict(client.get_registered_model(model_name).aliases or {})
    except MlflowException as e:
        if e.error_code == "RESOURCE_DOES_NOT_EXIST":  # never tracked: nothing in MLflow to keep in step
            return []
        raise
    by_run = {mv.run_id: mv.version for mv in client.search_model_versions(f"name='{model_name}'")}
    notes = []
    for alias, target in targets.items():
        version = by_run.get(target[1]) if target is not None and target[1] else None
        if version is not None:
            if str(current.get(alias)) != str(version):
                client.set_registered_model_alias(model_name, alias, version)
            continue
        if alias in current:
            client.delete_registered_model_alias(model_name, alias)
        if target is not None:
            notes.append(f"MLflow has no '{alias}' of {model_name} now: version {target[0]} was trained without "
                         "tracking (--no-track)")
    return notes


__all__ = ["Tracker", "sync_aliases", "tracking_uri"]


def tracker_or_off(tracker: Tracker | None) -> Tracker:
    """``tracker``, or one that logs nothing where it is None (a family's ``train()`` called from Python)."""
    return tracker if tracker is not None else Tracker(None, "", enabled=False)  # type: ignore[arg-type]
