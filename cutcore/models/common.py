"""Pieces shared by the CUT and CycleGAN training models."""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import torch
import torch.nn as nn

GradSync = Callable[[Iterable[nn.Parameter]], None]


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
def frozen(*nets: nn.Module):
    """No weight gradients for `nets` inside (inputs still get theirs): saves the weight-grad GEMMs."""
    params = [p for n in nets for p in n.parameters()]
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def adam(params: Iterable[nn.Parameter], lr: float, beta1: float, beta2: float) -> torch.optim.Adam:
    # The fused kernel (CPU and CUDA) is the same update in one pass over memory: ~2x faster steps.
    return torch.optim.Adam(list(params), lr=lr, betas=(beta1, beta2), fused=True)


def apply_lr(opts: dict[str, torch.optim.Optimizer], lr: float) -> None:
    for opt in opts.values():
        for group in opt.param_groups:
            group["lr"] = lr


def step(opt: torch.optim.Optimizer, loss: torch.Tensor, sync: GradSync | None) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if sync is not None:
        sync(p for g in opt.param_groups for p in g["params"])
    opt.step()
