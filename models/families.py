"""The model families ``sfai train`` and ``sfai predict`` know, and where their code lives.

A family provides two modules, so that prediction never imports torch:

- ``<train module>.train(input_path, dataset, out_dir, *, config=None, tracker=None) -> dict`` trains (without a
  tracker nothing is logged to MLflow), writes ``out_dir/model.onnx`` + ``manifest.json`` (``models.export.export``)
  and returns validation metrics;
- ``<predict module>.predict(model, input_path, dataset, **options) -> pandas.DataFrame`` (ONNX Runtime via
  ``serving.runtime.OnnxModel``) returns the contract's columns.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from serving.errors import InvalidInput


@dataclass(frozen=True)
class Family:
    name: str  # as in `sfai train NAME`
    module: str  # the subscription module it serves
    datasets: tuple[str, ...]
    train_module: str
    predict_module: str
    description: str
    config_class: str  # dotted path of the config dataclass (its ``from_dict`` parses ``--set`` overrides)

    def check_dataset(self, dataset: str) -> None:
        if dataset not in self.datasets:
            raise InvalidInput(f"model {self.name!r} trains on {', '.join(self.datasets)}; got --dataset {dataset!r}")

    def registry_name(self, input_path: Path) -> str:
        """The registered model's name: the family, plus the C-MAPSS subset (FD001..FD004) where one shows in
        the file name, so that each subset keeps its own champion."""
        m = re.search(r"(FD00[1-4])", Path(input_path).name, re.IGNORECASE)
        return f"{self.name}-{m.group(1).lower()}" if (m and self.name == "rul") else self.name

    def check_config(self, config: dict) -> None:
        """Refuse unknown keys and bad values before any training starts (and before an MLflow run opens):
        ``config_class`` (``module.Class``, torch-free) parses ``config`` as the training will."""
        mod, cls = self.config_class.rsplit(".", 1)
        getattr(importlib.import_module(mod), cls).from_dict(config)

    def load(self, which: str):  # noqa: ANN201
        mod = self.train_module if which == "train" else self.predict_module
        try:
            return importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name and (e.name == mod or mod.startswith(e.name + ".")):
                raise InvalidInput(f"model family {self.name!r} is not available in this installation") from None
            raise


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "failure",
            "maintenance",
            ("ai4i",),
            "models.failure.train",
            "models.failure.predict",
            "machine failure probability (AI4I 2020)",
            "models.failure.config.FailureConfig",
        ),
        Family(
            "rul",
            "maintenance",
            ("cmapss",),
            "models.rul.train",
            "models.rul.predict",
            "remaining useful life in cycles (NASA C-MAPSS)",
            "models.rul.config.RulConfig",
        ),
        Family(
            "defect",
            "quality",
            ("secom",),
            "models.defect.train",
            "models.defect.predict",
            "wafer defect probability (SECOM)",
            "models.defect.config.DefectConfig",
        ),
        Family(
            "energy",
            "energy",
            ("steel-energy",),
            "models.energy.train",
            "models.energy.predict",
            "day-ahead energy quantiles p10/p50/p90 (steel plant, 15 min)",
            "models.energy.config.EnergyConfig",
        ),
    )
}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise InvalidInput(f"unknown model {name!r}: expected one of {', '.join(FAMILIES)}")
    return FAMILIES[name]
