"""ResNet generator of CUT/CycleGAN (Johnson et al. 2016), with CUT's anti-aliased resampling.

The module layout mirrors the reference implementation (`model.<i>` in one nn.Sequential) so
that layer indices used for PatchNCE and official checkpoint keys mean the same thing here.
With the defaults, PatchNCE layers 0,4,8,12,16 are: the (padded) RGB input, the first and
second downsampling convs, and the first and fifth residual blocks.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .blur import BlurDownsample, BlurUpsample
from .configs import SIZE_MULTIPLE, ResnetGeneratorConfig
from .heads import check_layers


def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), _norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, cfg: ResnetGeneratorConfig | None = None):
        super().__init__()
        cfg = cfg if cfg is not None else ResnetGeneratorConfig()
        self.cfg = cfg
        ngf = cfg.ngf
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cfg.in_channels, ngf, 7), _norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            cin, cout = ngf * mult, ngf * mult * 2
            if cfg.antialias_down:
                layers += [nn.Conv2d(cin, cout, 3, padding=1), _norm(cout), nn.ReLU(True), BlurDownsample(cout)]
            else:
                layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), _norm(cout), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, cfg.dropout) for _ in range(cfg.n_blocks)]
        for mult in (4, 2):
            cin, cout = ngf * mult, ngf * mult // 2
            if cfg.antialias_up:
                layers += [BlurUpsample(cin), nn.Conv2d(cin, cout, 3, padding=1), _norm(cout), nn.ReLU(True)]
            else:
                layers += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), _norm(cout),
                           nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cfg.out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this for the output to match the input size."""
        return SIZE_MULTIPLE

    def forward(self, x: torch.Tensor, layers: list[int] | None = None):
        """The translated image; with `layers`, also the features after those layer indices."""
        if not layers:
            return self.model(x)
        feats = []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in layers:
                feats.append(x)
        return x, feats

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Features after the given layer indices, stopping after the last one."""
        check_layers(layers, len(self.model))
        feats, last = [], max(layers)
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in layers:
                feats.append(x)
            if i == last:
                break
        return feats
