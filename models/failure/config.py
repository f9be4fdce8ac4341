"""Hyperparameters of the failure model (defaults are the shipped config, chosen on validation folds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from models.config import from_overrides


@dataclass
class FailureConfig:
    hidden: int = 64  # width of the two hidden layers
    dropout: float = 0.1
    mode_weight: float = 0.5  # weight of the failure-mode heads (TWF/HDF/PWF/OSF) in the loss
    pos_weight: float = 3.0  # up-weights the rare positive class in the main BCE loss (imbalance ~1:30)
    folds: int = 5  # K-fold ensemble: each member early-stops on its own fold; threshold from out-of-fold scores
    epochs: int = 80
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 12
    seed: int = 0
    threads: int = 1  # small model: a second thread only adds contention on a shared 2-core machine

    @classmethod
    def from_dict(cls, overrides: dict | None) -> FailureConfig:
        return from_overrides(cls, overrides, "failure")

    def to_dict(self) -> dict:
        return asdict(self)
