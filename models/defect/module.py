"""The defect classifier: a logistic model (hidden=0) or a small regularised MLP, trained with a
class-weighted loss; the exported output is a prior-corrected defect probability."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class DefectNet(nn.Module):
    def __init__(self, n_in: int, *, hidden: int = 0, dropout: float = 0.2, pos_weight: float = 1.0,
                 l2: float = 0.0) -> None:
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, 1))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_in, 1))
        self.l2 = l2
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)))
        # Training up-weights failures by pos_weight; subtracting log(pos_weight) from the logit undoes the
        # implied prior shift, so the exported probability is roughly calibrated (held out on SECOM: mean 0.055,
        # failure rate 0.064); the served one, with the drift prior, is recalibrated in drift.fit_combiner.
        self.register_buffer("prior_shift", torch.tensor(math.log(pos_weight)))

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None):
        logit = self.logit(x)
        prob = torch.sigmoid(logit - self.prior_shift).unsqueeze(-1)
        if targets is None:
            return prob, None
        loss = F.binary_cross_entropy_with_logits(logit, targets, pos_weight=self.pos_weight)
        if self.l2:
            loss = loss + self.l2 * sum((p**2).sum() for n, p in self.named_parameters() if n.endswith("weight"))
        return prob, loss

    def contribution_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-feature weights in logit units: exact for the logistic model; for the MLP the mean input
        gradient over ``x`` (a global linearisation, good enough to rank measurements)."""
        self.eval()
        if len(self.net) == 2:
            return self.net[1].weight.detach()[0].clone()
        x = x.clone().requires_grad_(True)
        self.logit(x).sum().backward()
        return x.grad.mean(0).detach()
