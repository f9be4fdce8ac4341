"""Experiment tracking in MLflow: the only module that imports mlflow.

By default MLflow runs on SQLite plus local artifacts under ``$SFAI_HOME`` (``mlflow ui --backend-store-uri
sqlite:///.sfai/mlflow.db`` shows the runs); ``MLFLOW_TRACKING_URI`` points at a server instead.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from serving.settings import Settings


def tracking_uri(settings: Settings) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(settings.home / 'mlflow.db').resolve()}"


class Tracker:
    """``with Tracker(settings, "acme/failure") as t: t.log_params(...); t.log_metrics(..., step=epoch)``.

    ``enabled=False`` makes every call a no-op (tests, quick runs: ``sfai train --no-track``).
    """

    def __init__(self, settings: Settings, experiment: str, *, enabled: bool = True, run_name: str | None = None):
        self.settings, self.experiment, self.enabled, self.run_name = settings, experiment, enabled, run_name
        self.run_id: str | None = None
        self._mlflow = None

    def __enter__(self) -> Tracker:
        if not self.enabled:
            return self
        import mlflow

        # after the import: importing mlflow sets its own loggers to INFO, and its start-up lines ("Updating
        # database tables") would precede the one-line error of a training that refuses its input
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self._mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri(self.settings))
        if mlflow.get_experiment_by_name(self.experiment) is None:
            artifacts = (self.settings.home / "mlartifacts").resolve()
            mlflow.create_experiment(self.experiment, artifact_location=artifacts.as_uri())
        mlflow.set_experiment(self.experiment)
        self.run_id = mlflow.start_run(run_name=self.run_name).info.run_id
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if self._mlflow is not None:
            self._mlflow.end_run(status="FAILED" if exc_type else "FINISHED")

    def log_params(self, params: dict) -> None:
        if self._mlflow:
            self._mlflow.log_params({k: str(v)[:500] for k, v in params.items()})

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if self._mlflow:
            clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
            self._mlflow.log_metrics(clean, step=step)

    def log_dict(self, data: dict, name: str) -> None:
        if self._mlflow:
            self._mlflow.log_dict(data, name)

    def log_artifacts(self, directory: Path, path: str | None = None) -> None:
        if self._mlflow:
            self._mlflow.log_artifacts(str(directory), artifact_path=path)

    def log_figure(self, fig, name: str) -> None:  # noqa: ANN001
        if self._mlflow:
            self._mlflow.log_figure(fig, name)

    def log_curves(self, history: list[dict], name: str = "learning_curve.png") -> None:
        """Learning curves (train and validation loss per epoch) as a PNG artifact."""
        if not self._mlflow or not history:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], label="train loss")
        ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], label="validation loss")
        ax.set_xlabel("epoch")
        ax.legend()
        fig.tight_layout()
        self._mlflow.log_figure(fig, name)
        plt.close(fig)

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

    def register(self, model_name: str, model_dir: Path, alias: str) -> None:
        """Log the exported model and register it under ``model_name`` with ``alias`` in MLflow's registry.

        The version's source is the run's ``model`` artifact folder (ONNX file + manifest), registered through
        the client API, so no MLflow "logged model" flavour is needed."""
        if not self._mlflow:
            return
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self._mlflow.log_artifacts(str(model_dir), artifact_path="model")
        client = MlflowClient()
        try:
            client.get_registered_model(model_name)
        except MlflowException:
            client.create_registered_model(model_name, description="SFAI model (ONNX + manifest.json)")
        run = client.get_run(self.run_id)
        mv = client.create_model_version(model_name, source=f"{run.info.artifact_uri}/model", run_id=self.run_id)
        client.set_registered_model_alias(model_name, alias, mv.version)


def sync_alias(settings: Settings, model_name: str, alias: str, run_id: str | None) -> None:
    """Point an MLflow alias at the registered version logged by ``run_id`` (after promote or rollback)."""
    if not run_id:
        return
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri(settings))
    client = MlflowClient()
    for mv in client.search_model_versions(f"name='{model_name}'"):
        if mv.run_id == run_id:
            client.set_registered_model_alias(model_name, alias, mv.version)
            return


__all__ = ["Tracker", "sync_alias", "tracking_uri"]
