"""Hyperparameters of the failure model (defaults are the shipped config, chosen on validation folds)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from serving.errors import InvalidInput


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
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(overrides or {}) - set(known))
        if unknown:
            raise InvalidInput(f"unknown failure config key(s): {', '.join(unknown)}; expected {', '.join(known)}")
        cfg = cls()
        for key, value in (overrides or {}).items():
            default = getattr(cfg, key)
            try:
                setattr(cfg, key, type(default)(value))
            except (TypeError, ValueError):
                raise InvalidInput(f"config {key}={value!r}: expected {type(default).__name__}") from None
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)
