"""The failure network: an MLP with a main head (machine failure) and four failure-mode heads."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.failure.config import FailureConfig


class FailureMLP(nn.Module):
    """``forward(x, targets=None) -> (probabilities [batch, 5], loss)``; column 0 is machine failure,
    columns 1..4 TWF/HDF/PWF/OSF. Targets use NaN for a mode label that is unknown (masked out)."""

    def __init__(self, n_features: int, cfg: FailureConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, cfg.hidden),
            nn.SiLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.SiLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, 5),
        )
        self.pos_weight, self.mode_weight = cfg.pos_weight, cfg.mode_weight

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):  # noqa: ANN201
        logits = self.net(x)
        probs = torch.sigmoid(logits)
        if targets is None:
            return probs, None
        pw = torch.tensor(self.pos_weight, dtype=logits.dtype)
        main = F.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0], pos_weight=pw)
        known = ~torch.isnan(targets[:, 1:])
        modes = F.binary_cross_entropy_with_logits(
            logits[:, 1:][known], torch.nan_to_num(targets[:, 1:])[known], reduction="sum"
        ) / max(int(known.sum()), 1)
        return probs, main + self.mode_weight * modes


class Ensemble(nn.Module):
    """Averages the members' probabilities: one ONNX graph for the K-fold ensemble."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):  # noqa: ANN201
        out = torch.stack([m(x)[0] for m in self.members]).mean(0)
        return out, None
