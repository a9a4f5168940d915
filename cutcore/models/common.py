"""What every trainable model shares: the training protocol, initialisation, optimiser steps."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
import torch.nn as nn

from ..hardware import autocast

GradSync = Callable[[Iterable[nn.Parameter]], None]


class TrainableModel(nn.Module):
    """The protocol `cutcore.loop.TrainingLoop` drives: CUT, FastCUT, CycleGAN and SinCUT implement it.

    A subclass names its parameter groups (`optimizer_params`), its modules (`inference_modules`,
    the ones a model folder ships; `training_modules`, the rest of a checkpoint) and one
    `train_step`. `configure_training` is called once per run: it builds the optimisers and fixes
    how steps execute (precision, gradient averaging across processes), so a step is just data.
    """

    optimizers: dict[str, torch.optim.Optimizer]
    precision: str = "fp32"
    grad_sync: GradSync | None = None

    def optimizer_params(self) -> dict[str, list[nn.Parameter]]:
        raise NotImplementedError

    def inference_modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def training_modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """One update of every network; returns the detached loss tensors (read back only when logged)."""
        raise NotImplementedError

    @torch.no_grad()
    def translate(self, x: torch.Tensor) -> torch.Tensor:
        return self.G(x)

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Checkpointed training state that is not a module or an optimiser (CycleGAN's image pools)."""
        return {}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        del tensors

    # -- run-time set-up, called by the loop's owner ----------------------------------------------
    def configure_training(self, lr: float, beta1: float, beta2: float, precision: str = "fp32",
                           grad_sync: GradSync | None = None) -> None:
        self.optimizers = {name: adam(params, lr, beta1, beta2) for name, params in self.optimizer_params().items()}
        self.precision, self.grad_sync = precision, grad_sync

    def set_lr(self, lr: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr

    # -- helpers for train_step -----------------------------------------------------------------
    def autocast(self, device: torch.device):
        return autocast(device, self.precision)

    def update(self, name: str, loss: torch.Tensor) -> None:
        """Back-propagate `loss` and step the optimiser `name` (gradients averaged across processes)."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(p for g in opt.param_groups for p in g["params"])
        opt.step()


def init_weights(net: nn.Module, kind: str, gain: float) -> None:
    """Conv/Linear weights ~ xavier-normal or N(0, gain); biases 0 (the CUT/CycleGAN init)."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            else:
                raise ValueError(f"unknown init {kind!r}")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@contextlib.contextmanager
def seeded_init(seed: int):
    """Torch's CPU generator seeded inside and restored after: networks built here (on the CPU) start the same for
    a seed, and the caller's random state is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        yield


@contextlib.contextmanager
def frozen(*nets: nn.Module):
    """No weight gradients for `nets` inside (inputs still get theirs): saves the weight-grad GEMMs."""
    params = [p for n in nets for p in n.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)


def adam(params: Iterable[nn.Parameter], lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    # The fused kernel (CPU and CUDA) is the same update in one pass over memory: ~2x faster steps.
    return torch.optim.Adam(list(params), lr=lr, betas=(beta1, beta2), fused=True)
