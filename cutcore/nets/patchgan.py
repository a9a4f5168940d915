"""PatchGAN discriminator (pix2pix; 70×70 receptive field with 3 layers), optionally anti-aliased as in CUT."""
from __future__ import annotations

import torch
import torch.nn as nn

from .blur import BlurDownsample
from .configs import PatchGANConfig


class PatchGANDiscriminator(nn.Module):
    def __init__(self, cfg: PatchGANConfig | None = None):
        super().__init__()
        cfg = cfg if cfg is not None else PatchGANConfig()
        ndf, aa = cfg.ndf, cfg.antialias

        def down(cin: int, cout: int, norm: bool) -> list[nn.Module]:
            conv = nn.Conv2d(cin, cout, 4, stride=1 if aa else 2, padding=1)
            block = [conv] + ([nn.InstanceNorm2d(cout)] if norm else []) + [nn.LeakyReLU(0.2, True)]
            return block + ([BlurDownsample(cout)] if aa else [])

        layers = down(cfg.in_channels, ndf, norm=False)
        mult = 1
        for n in range(1, cfg.n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += down(ndf * prev, ndf * mult, norm=True)
        prev, mult = mult, min(2**cfg.n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, padding=1), nn.InstanceNorm2d(ndf * mult),
                   nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(ndf * mult, 1, 4, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
