"""The networks' config dataclasses, kept free of torch so that `cutcore.config` and the command line
can build on them without importing torch (`python -m cutcore --help` stays quick).

Each network module imports its config from here (`from cutcore.nets.resnet import ResnetGeneratorConfig`
still works); the networks themselves are in `patchgan`, `resnet` and `stylegan2`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# --- patchgan.PatchGANDiscriminator ---------------------------------------------------------


@dataclass
class PatchGANConfig:
    in_channels: int = 3
    ndf: int = field(default=64, metadata={"help": "discriminator width"})
    n_layers: int = 3
    antialias: bool = True  # CUT default; CycleGAN uses strided convs


# --- resnet.ResnetGenerator -----------------------------------------------------------------

# Two stride-2 downsamplings undone by two upsamplings: any other side comes back a different size
# (7 -> 4 -> 2 -> 4 -> 8).
SIZE_MULTIPLE = 4


@dataclass
class ResnetGeneratorConfig:
    in_channels: int = 3
    out_channels: int = 3
    ngf: int = field(default=64, metadata={"help": "generator width (channels of the first conv)"})
    n_blocks: int = field(default=9, metadata={"help": "residual blocks"})
    antialias_down: bool = True  # False: strided convs (CycleGAN)
    antialias_up: bool = True  # False: transposed convs (CycleGAN)
    dropout: bool = False  # off in every preset; on, it draws from torch's global generator (not the run's seed)


# --- stylegan2.StyleGAN2Generator and StyleGAN2Discriminator (SinCUT) -----------------------


@dataclass
class StyleGAN2GeneratorConfig:
    ngf: int = 10  # width multiplier ngf/32 on the StyleGAN2 channel table
    n_blocks: int = 6  # residual blocks, half in the encoder and half in the decoder
    n_downsampling: int = 1
    # Resolution that sets the widths (the reference uses the training crop size): at 64 and
    # ngf 10 the encoder runs 80 channels at full and 160 at half resolution.
    base_size: int = 64


@dataclass
class StyleGAN2DiscriminatorConfig:
    ndf: int = 8  # width multiplier ndf/64
    size: int = 64  # input resolution the network is built for (a power of two >= 8)
    # Split larger inputs into size x size tiles, each judged on its own (the reference
    # TileStyleGAN2Discriminator): e.g. 128² crops scored as four 64² tiles.
    tile: bool = False
