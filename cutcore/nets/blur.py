"""Anti-aliased resampling (Zhang 2019, "Making CNNs shift-invariant again"), as used by CUT.

Buffers are named `filt` so official CUT checkpoints load without key remapping.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_BINOMIAL = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}


def binomial_kernel(size: int) -> torch.Tensor:
    a = torch.tensor(_BINOMIAL[size])
    k = a[:, None] * a[None, :]
    return k / k.sum()


class BlurDownsample(nn.Module):
    """Reflect-pad, blur with [1,2,1]², subsample by 2 (depthwise)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", binomial_kernel(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Upsample by 2 with a [1,3,3,1]² transposed blur on a replicate-padded input (depthwise)."""

    def __init__(self, channels: int):
        super().__init__()
        self.register_buffer("filt", (binomial_kernel(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2, padding=2,
                               groups=x.shape[1])
        return y[:, :, 1:-1, 1:-1]
