"""The one training loop: every step sets the LR, draws a batch, and takes the model's step.

`Trainer` (datasets, logs, checkpoints, evaluation) and SinCUT's `LiveTrainer` (a thread with
progress events) both drive a `TrainingLoop`; what they add happens in `on_step`. Losses stay on
the device as tensors: reading them back (a host synchronisation) is the caller's choice.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from .models.common import TrainableModel

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepResult:
    step: int  # steps done, this one included
    lr: float
    losses: dict[str, torch.Tensor]
    batch: Batch

    def loss_values(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.losses.items()}


class TrainingLoop:
    """Steps `model` over `batches` from `step` to `total`, the LR given by `lr_at(step)`.

    Each step's random choices (PatchNCE locations, FastCUT's flip, CycleGAN's pool) come from a
    generator seeded by (seed, step), so a resumed run makes the same choices as an unbroken one.
    """

    def __init__(self, model: TrainableModel, batches: Iterator[Batch], lr_at: Callable[[int], float], total: int,
                 *, seed: int = 0, step: int = 0, device: torch.device | str = "cpu", channels_last: bool = False):
        self.model, self.batches, self.lr_at, self.total = model, batches, lr_at, total
        self.seed, self.step, self.device = seed, step, torch.device(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.updating = False  # inside a model update: an error there leaves the weights half-stepped

    def run(self, on_step: Callable[[StepResult], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False, lock: threading.Lock | None = None) -> None:
        """Train until `total` steps or `should_stop()`; `lock` is held during each update."""
        while self.step < self.total and not should_stop():
            real_a, real_b = (t.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
                              for t in next(self.batches))
            with lock or contextlib.nullcontext():
                self.updating = True
                lr = self.lr_at(self.step)
                self.model.set_lr(lr)
                rng = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
                losses = self.model.train_step(real_a, real_b, rng)
                self.step += 1
                self.updating = False
            if on_step is not None:
                on_step(StepResult(self.step, lr, losses, (real_a, real_b)))
