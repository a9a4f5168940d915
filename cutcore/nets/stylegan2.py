"""StyleGAN2-style encoder/decoder and residual discriminator used by SinCUT (Park et al. 2020).

The building blocks follow StyleGAN2 (Karras et al. 2020) as ported by rosinality/stylegan2-pytorch:
equalised learning rate (weights ~ N(0, 1), scaled by 1/sqrt(fan_in) at run time), [1,3,3,1]
FIR blur around every resampling, scaled leaky ReLU, residual blocks averaged with 1/sqrt(2).
Everything is plain PyTorch: upfirdn2d is a zero-pad + depthwise conv, so it runs fast on CPU.

SinCUT's generator has no mapping network. Its one modulated conv (the upsampling layer) uses a
constant all-ones style, so every sample of a batch shares one demodulated kernel: StyleGAN2's
per-sample grouped convolution collapses to an ordinary (transposed) convolution.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from .configs import StyleGAN2DiscriminatorConfig, StyleGAN2GeneratorConfig
from .heads import check_layers

_SQRT2 = math.sqrt(2.0)


def _channels(res: int, multiplier: float, cap: int) -> float:
    """StyleGAN2's width table: 16384/res channels per unit multiplier, capped at low resolutions."""
    c = 16384 / res * multiplier
    return min(cap, c) if res <= 32 else c


# ---------------------------------------------------------------------------------------------
# Building blocks


class Blur(nn.Module):
    """Zero-pad by (before, after) on both axes, then filter with the normalised [1,3,3,1]² kernel.

    upfirdn2d with up = down = 1; resampling layers put the stride in the neighbouring conv.
    `gain` is 4 after a 2x zero-insertion upsample, to keep the signal's mean.
    """

    def __init__(self, pad: tuple[int, int], gain: float = 1.0):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = k[:, None] * k[None, :]
        # Constant, not learned: kept out of the state dict.
        self.register_buffer("kernel", (k / k.sum() * gain)[None, None], persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        p0, p1 = self.pad
        # The kernel is symmetric, so correlation (conv2d) equals upfirdn's true convolution.
        return F.conv2d(F.pad(x, (p0, p1, p0, p1)), self.kernel.expand(c, 1, 4, 4), groups=c)


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate: N(0,1) weights scaled by He's constant in forward."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = 1.0 / math.sqrt(in_dim)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias, 0.2) * _SQRT2
        return F.linear(x, self.weight * self.scale, self.bias)


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU(0.2), times sqrt(2) to keep unit variance (StyleGAN2's "fused" activation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias, 0.2) * _SQRT2


class ConvLayer(nn.Sequential):
    """[blur] -> equalised conv (stride 2 when downsampling) -> [bias + scaled leaky ReLU].

    Non-activated layers (the 1x1 residual shortcuts) have no bias, as in the reference.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, downsample: bool = False, activate: bool = True):
        layers: list[nn.Module] = []
        if downsample:
            p = 2 + (kernel_size - 1)  # (taps - factor) + (kernel_size - 1)
            layers.append(Blur(((p + 1) // 2, p // 2)))
            layers.append(EqualConv2d(in_ch, out_ch, kernel_size, stride=2))
        else:
            layers.append(EqualConv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2))
        if activate:
            layers.append(FusedLeakyReLU(out_ch))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 ConvLayers (the second may downsample) plus a shortcut, averaged by 1/sqrt(2)."""

    def __init__(self, in_ch: int, out_ch: int, downsample: bool):
        super().__init__()
        self.conv1 = ConvLayer(in_ch, in_ch, 3)
        self.conv2 = ConvLayer(in_ch, out_ch, 3, downsample=downsample)
        if in_ch != out_ch or downsample:
            self.skip: nn.Module = ConvLayer(in_ch, out_ch, 1, downsample=downsample, activate=False)
        else:
            self.skip = nn.Identity()
        # Output row i depends on input rows s*i + lo .. s*i + hi (two 3x3 convs; blur + stride 2).
        self.reach = (2, -3, 4) if downsample else (1, -2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / _SQRT2


class ModulatedUpConv(nn.Module):
    """StyleGAN2 modulated 3x3 conv with 2x upsampling, for a constant all-ones style.

    Weight demodulation normalises each output filter to unit norm. Upsampling is a stride-2
    transposed conv followed by the [1,3,3,1] blur (gain 4), exactly as StyleGAN2 does it.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        p = 2 - (kernel_size - 1)  # (taps - factor) - (kernel_size - 1)
        self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.scale * self.weight  # an all-ones style leaves the weight unchanged
        w = w * torch.rsqrt(w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        return self.blur(F.conv_transpose2d(x, w.transpose(0, 1), stride=2))


class NoiseInjection(nn.Module):
    """Adds per-pixel N(0,1) noise (shared across channels) scaled by a learned scalar (init 0); the noise comes from
    `generator` when one is set (`StyleGAN2Generator.noise_from`), else from torch's global one."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return x + self.weight * x.new_empty(b, 1, h, w).normal_(generator=self.generator)


class StyledUpConv(nn.Module):
    """Modulated upsampling conv -> noise -> bias + scaled leaky ReLU (the reference StyledConv)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = ModulatedUpConv(in_ch, out_ch)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x)))


# ---------------------------------------------------------------------------------------------
# Generator (its config, StyleGAN2GeneratorConfig, is in .configs)


class StyleGAN2Generator(nn.Module):
    """Encoder/decoder of the reference `StyleGAN2Generator` (SinCUT's G).

    Encoder layer indices, as in the reference (and used by `nce_layers`):
      0: identity (the RGB input itself), 1: 1x1 conv to RGB-width features,
      2 .. 1+n_downsampling: downsampling ResBlocks, then n_blocks//2 ResBlocks.
    So SinCUT's default layers 0,2,4 are the input pixels, the output of the downsampling block
    and the output of the second residual block.

    The output is the reference's: a 1x1 conv with the scaled leaky ReLU and no tanh, so it is
    only nominally in [-1, 1]; clamp when turning it into an image.
    """

    def __init__(self, cfg: StyleGAN2GeneratorConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or StyleGAN2GeneratorConfig()
        mult = cfg.ngf / 32

        def ch(res: int) -> int:
            return round(_channels(res, mult, 512))

        res = cfg.base_size
        enc: list[nn.Module] = [nn.Identity(), ConvLayer(3, ch(res), 1)]
        for _ in range(cfg.n_downsampling):
            enc.append(ResBlock(ch(res), ch(res // 2), downsample=True))
            res //= 2
        enc += [ResBlock(ch(res), ch(res), downsample=False) for _ in range(cfg.n_blocks // 2)]
        dec: list[nn.Module] = [ResBlock(ch(res), ch(res), downsample=False) for _ in range(cfg.n_blocks // 2)]
        for _ in range(cfg.n_downsampling):
            dec.append(StyledUpConv(ch(res), ch(res * 2)))
            res *= 2
        dec.append(ConvLayer(ch(res), 3, 1))
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this for the output to match the input size."""
        return 2**self.cfg.n_downsampling

    def layer_channels(self, layers: list[int]) -> list[int]:
        """Channels of the encoder features at `layers` (sizes the PatchNCE heads)."""
        with torch.no_grad():
            x = torch.zeros(1, 3, 4 * self.size_multiple, 4 * self.size_multiple)
            return [f.shape[1] for f in self.encode(x, layers)]

    @contextlib.contextmanager
    def noise_from(self, generator: torch.Generator):
        """The decoder's noise drawn from `generator` inside: in training a run's steps repeat with its seed, in
        inference an image translates the same way every time (`cutcore.translate.seeded_noise`)."""
        noises = [m for m in self.decoder.modules() if isinstance(m, NoiseInjection)]
        before = [m.generator for m in noises]
        for m in noises:
            m.generator = generator
        try:
            yield
        finally:
            for m, g in zip(noises, before, strict=True):
                m.generator = g

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Encoder features at `layers` (in the order given), stopping after the deepest one."""
        check_layers(layers, len(self.encoder))
        feats: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.encoder[: max(layers) + 1]):
            x = layer(x)
            if i in layers:
                feats[i] = x
        return [feats[i] for i in layers]

    def forward(self, x: torch.Tensor, layers: list[int] | None = None):
        """The translated image; with `layers`, also the encoder features at those indices."""
        feats: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.encoder):
            x = layer(x)
            if layers and i in layers:
                feats[i] = x
        out = self.decoder(x)
        if not layers:
            return out
        return out, [feats[i] for i in layers]

    def input_window(
        self, layer: int, rows: tuple[int, int], cols: tuple[int, int], size: tuple[int, int]
    ) -> tuple[int, int, int, int]:
        """Input box (y0, y1, x0, x1) that determines `layer`'s features at rows × cols (half-open).

        The box covers the receptive field, clipped to the (h, w) = `size` image, with its start
        on the stride grid so the strided convs sample the same positions as on the full image.
        """
        step = self.size_multiple

        def span(lo: int, hi: int, n: int) -> tuple[int, int]:
            hi -= 1
            for m in reversed(self.encoder[1 : layer + 1]):
                s, a, b = getattr(m, "reach", (1, 0, 0))  # only ResBlocks look at neighbours
                lo, hi = s * lo + a, s * hi + b
            return max(0, lo // step * step), min(n, -(-(hi + 1) // step) * step)

        return span(*rows, size[0]) + span(*cols, size[1])

    def encode_window(self, x: torch.Tensor, layer: int, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        """`encode(x, [layer])[0][:, :, r0:r1, c0:c1]`, computed from just the pixels it depends on.

        Exact, not an approximation: window edges inside the image only corrupt features outside
        the requested box, and edges on the image border see the same zero padding as before.
        """
        y0, y1, x0, x1 = self.input_window(layer, rows, cols, tuple(x.shape[-2:]))
        feat = self.encode(x[:, :, y0:y1, x0:x1], [layer])[0]
        scale = math.prod(getattr(m, "reach", (1,))[0] for m in self.encoder[1 : layer + 1])
        (r0, r1), (c0, c1) = rows, cols
        return feat[:, :, r0 - y0 // scale : r1 - y0 // scale, c0 - x0 // scale : c1 - x0 // scale]


# ---------------------------------------------------------------------------------------------
# Discriminator (its config, StyleGAN2DiscriminatorConfig, is in .configs)


class StyleGAN2Discriminator(nn.Module):
    """StyleGAN2 residual discriminator without the minibatch-stddev layer (as SinCUT uses it).

    Returns one logit per input (per tile when tiling), shape (N, 1).
    """

    def __init__(self, cfg: StyleGAN2DiscriminatorConfig | None = None):
        super().__init__()
        cfg = cfg or StyleGAN2DiscriminatorConfig()
        if cfg.size < 8 or cfg.size & (cfg.size - 1):
            raise ValueError(f"discriminator size must be a power of two >= 8, got {cfg.size}")
        self.cfg = cfg
        mult = cfg.ndf / 64

        def ch(res: int) -> int:
            return int(_channels(res, mult, 384))

        convs: list[nn.Module] = [ConvLayer(3, ch(cfg.size), 1)]
        res = cfg.size
        while res > 4:
            convs.append(ResBlock(ch(res), ch(res // 2), downsample=True))
            res //= 2
        self.convs = nn.Sequential(*convs)
        self.final_conv = ConvLayer(ch(4), ch(4), 3)
        self.final_linear = nn.Sequential(EqualLinear(ch(4) * 16, ch(4), activate=True), EqualLinear(ch(4), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.cfg.size
        b, c, h, w = x.shape
        if self.cfg.tile and (h, w) != (s, s):
            if h % s or w % s:
                raise ValueError(f"input {h}x{w} does not split into {s}x{s} tiles")
            x = x.view(b, c, h // s, s, w // s, s).permute(0, 2, 4, 1, 3, 5).reshape(-1, c, s, s)
        elif (h, w) != (s, s):
            raise ValueError(f"discriminator built for {s}x{s} inputs got {h}x{w} (enable tiling for larger crops)")
        out = self.final_conv(self.convs(x))
        return self.final_linear(out.flatten(1))
