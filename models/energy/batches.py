"""A minimal in-memory batch iterator for ``models.training.fit``.

``make_loader`` wraps a ``TensorDataset`` in a ``DataLoader``, which indexes and collates row by row: for the
~28,000 forecast rows here that costs more than the network. This slices shuffled tensors instead (same
interface for ``fit``: iterating yields ``(x, y)`` batches; seeded per pass, so runs stay deterministic).
"""

from __future__ import annotations

import numpy as np
import torch


class Batches:
    def __init__(self, x: np.ndarray, y: np.ndarray, *, batch_size: int, shuffle: bool, seed: int = 0) -> None:
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def __iter__(self):  # noqa: ANN204
        idx = torch.randperm(len(self.x), generator=self.gen) if self.shuffle else torch.arange(len(self.x))
        for i in range(0, len(idx), self.batch_size):
            j = idx[i : i + self.batch_size]
            yield self.x[j], self.y[j]
