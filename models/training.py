"""The one training loop every family uses: seeded and deterministic on CPU, early stopping on a validation
split, a learning-rate schedule, a checkpoint with its config, progress on the CLI.

A family's ``nn.Module`` follows nanoGPT's convention: ``forward(x, targets=None)`` returns
``(output, loss)``, the loss ``None`` without targets.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@dataclass
class TrainConfig:
    epochs: int = 60  # upper bound; early stopping usually ends sooner
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 10  # epochs without a better validation score before stopping
    warmup_epochs: int = 2  # linear warm-up, then cosine decay to lr * min_lr_ratio
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 2
    progress: bool = True


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int, threads: int | None = None) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)


def lr_at(epoch: int, cfg: TrainConfig) -> float:
    if epoch < cfg.warmup_epochs:
        return cfg.lr * (epoch + 1) / cfg.warmup_epochs
    t = (epoch - cfg.warmup_epochs) / max(1, cfg.epochs - cfg.warmup_epochs)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_loader(*arrays: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    tensors = [torch.as_tensor(a) for a in arrays]
    gen = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=shuffle, generator=gen)


@torch.no_grad()
def predict_batches(model: nn.Module, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    model.eval()
    outs = [model(torch.as_tensor(x[i : i + batch_size]))[0].cpu().numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.zeros((0,))


@torch.no_grad()
def evaluate_loss(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    total, n = 0.0, 0
    for xb, yb in loader:
        _, loss = model(xb, yb)
        total += float(loss) * len(xb)
        n += len(xb)
    return total / max(n, 1)


PROGRESS_EVERY_S = 10.0
_last_progress = [-math.inf]
_clock = time.monotonic  # the progress lines' clock (a test sets its own: patching time.monotonic reached every thread)


def progress_line(text: str, every: float = PROGRESS_EVERY_S) -> None:
    """Where stderr is no terminal (a log file, a batch job, CI), a plain ``progress: ...`` line at most every
    ``every`` seconds instead of a bar, so a long training run shows it is alive and how far it got (it printed
    nothing until its result)."""
    now = _clock()
    if now - _last_progress[0] >= every:
        _last_progress[0] = now
        sys.stderr.write(f"progress: {text}\n")
        sys.stderr.flush()


def fit(
    model: nn.Module,
    train: DataLoader,
    val: DataLoader,
    cfg: TrainConfig,
    *,
    score: Callable[[nn.Module], float] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint: Path | None = None,
    label: str = "train",
    score_shown: bool = True,
) -> FitResult:
    """Train until ``patience`` epochs pass without a lower validation score (default: validation loss;
    pass ``score`` for a metric, lower is better). The best weights are loaded back into ``model``.
    ``score_shown=False``: the score is no measurement (a count that keeps the last epoch), so the progress bar
    shows the validation loss instead (it had shown ``val=-1.0000, best=-1.0000``, then -2, -3)."""
    seed_everything(cfg.seed, cfg.threads)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_epoch, best_state = math.inf, -1, None
    history: list[dict] = []
    t0 = time.perf_counter()
    bar, plain = None, cfg.progress and not sys.stderr.isatty()
    if cfg.progress and not plain:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, desc=label, unit="epoch", file=sys.stderr, leave=False)
    for epoch in range(cfg.epochs):
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch, cfg)
        model.train()
        total, n = 0.0, 0
        for xb, yb in train:
            _, loss = model(xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += float(loss.detach()) * len(xb)
            n += len(xb)
        val_loss = evaluate_loss(model, val)
        val_score = score(model) if score else val_loss
        row = {
            "epoch": epoch,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": total / max(n, 1),
            "val_loss": val_loss,
            **({"val_score": val_score} if score else {}),  # without a score of its own it is val_loss again
        }
        history.append(row)
        if on_epoch:
            on_epoch(row)
        if val_score < best - 1e-9:
            best, best_epoch = val_score, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if checkpoint is not None:
                torch.save({"model": best_state, "config": asdict(cfg), "epoch": epoch, "val_score": best}, checkpoint)
        if bar is not None:
            bar.update(1)
            if score_shown:
                bar.set_postfix(train=f"{row['train_loss']:.4f}", val=f"{val_score:.4f}", best=f"{best:.4f}")
            else:
                bar.set_postfix(train=f"{row['train_loss']:.4f}", val_loss=f"{val_loss:.4f}")
        elif plain:
            shown = f"val {val_score:.4f}, best {best:.4f}" if score_shown else f"val_loss {val_loss:.4f}"
            progress_line(f"{label}: epoch {epoch + 1}/{cfg.epochs}, train {row['train_loss']:.4f}, {shown}")
        if epoch - best_epoch >= cfg.patience:
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return FitResult(best_epoch, best, history, time.perf_counter() - t0)
