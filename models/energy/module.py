"""Quantile MLP: one row of features per forecast step in, kWh quantiles (p10, p50, p90) out.

Monotone by construction: p10 = p50 - softplus(a), p90 = p50 + softplus(b). Trained with the pinball loss.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

QUANTILES = (0.1, 0.5, 0.9)


def pinball(pred: torch.Tensor, target: torch.Tensor, quantiles=QUANTILES) -> torch.Tensor:  # noqa: ANN001
    q = torch.as_tensor(quantiles, dtype=pred.dtype)
    err = target.unsqueeze(-1) - pred
    return torch.maximum(q * err, (q - 1) * err).mean()


class QuantileMLP(nn.Module):
    def __init__(self, n_in: int, *, hidden: int = 128, layers: int = 2, dropout: float = 0.1,
                 scale: float = 50.0, base: int = 0) -> None:
        super().__init__()
        self.base = int(base)  # the feature the p50 is a residual on (the day-type profile median, scaled)
        blocks, width = [], n_in
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, 3)
        self.register_buffer("scale", torch.tensor(float(scale)))
        # interval width multiplier, set after training from held-out coverage (1.0 while training)
        self.register_buffer("width", torch.tensor(1.0))
        # "today looks like the recent days of its type" is a strong start: p50 begins as the profile median
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, 0.0)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        h = self.head(self.body(x))
        mid = h[:, 1] + x[:, self.base]
        lo = mid - self.width * (F.softplus(h[:, 0]) + 1e-3)
        hi = mid + self.width * (F.softplus(h[:, 2]) + 1e-3)
        q = torch.stack([lo, mid, hi], dim=1)
        out = q * self.scale
        if targets is None:
            return out, None
        return out, pinball(q, targets / self.scale)
