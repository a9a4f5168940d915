"""SinCUT configs and presets: `sincut` (the paper's single-image setting), `sincut-cpu` and `sincut-gpu`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from ..config import GANMode, NCEConfig, lr_factor
from ..nets.configs import StyleGAN2DiscriminatorConfig, StyleGAN2GeneratorConfig

if TYPE_CHECKING:
    import torch


@dataclass
class SinCUTModelConfig:
    kind: Literal["sincut"] = "sincut"
    generator: StyleGAN2GeneratorConfig = field(default_factory=StyleGAN2GeneratorConfig)
    discriminator: StyleGAN2DiscriminatorConfig = field(default_factory=StyleGAN2DiscriminatorConfig)
    gan_mode: GANMode = "nonsaturating"
    lambda_gan: float = 1.0
    lambda_nce: float = 4.0
    nce_idt: bool = True  # PatchNCE also on the identity pair (G(y), y)
    nce_layers: list[int] = field(default_factory=lambda: [0, 2, 4])
    # One location per layer, shared by all crops of the batch; the other crops are the negatives.
    num_patches: int = 1
    head_dim: int = 256
    nce: NCEConfig = field(default_factory=lambda: NCEConfig(negatives_from_minibatch=True))
    lambda_idt: float = 1.0  # L1(G(y), y)
    lambda_r1: float = 1.0  # R1 penalty on real images, every step
    head_init_gain: float = 0.02  # xavier-normal gain of the PatchNCE heads (the reference default)


@dataclass
class SinCUTDataConfig:
    crop_size: int = 64
    # Each minibatch is cut from the image resized by independent width/height factors in
    # U(scale_min, 1): the reference's random_scale_max = 3.
    scale_min: float = 1 / 3
    flip: bool = True
    # Both images are first shrunk (never enlarged, aspect kept) so that their longer side is at most
    # max_side; crops, previews and the photo's translation then work at that size. None: the images
    # as given (the paper). On a short schedule it sets the scale of what the model learns: 32² crops of
    # a 1024 px photo are mostly flat colour (a recolouring), of a 512 px one they hold edges and strokes.
    max_side: int | None = None


@dataclass
class SinCUTTrainConfig:
    batch_size: int = 16
    lr: float = 0.002
    beta1: float = 0.0
    beta2: float = 0.99
    # LR schedule of the reference: `epochs` at lr, then `epochs_decay` with linear decay,
    # stepped once per epoch of `iters_per_epoch` iterations (100,000 crops / batch 16).
    iters_per_epoch: int = 6250
    epochs: int = 8
    epochs_decay: int = 8
    seed: int = 0
    # Seconds of training the preset promises (None: none). The live trainer times the first iterations
    # (a preview included) and, if the schedule would take longer, lays it over the iterations that fit;
    # again at each preview while the LR is constant, so a passing slowdown does not cut the run for good.
    time_budget_s: float | None = None
    # Previews, translations and the exported model use an exponential moving average of G's weights with this
    # half-life in iterations (SinCUTModel.average_generator); None: G itself, as the paper.
    ema_half_life: float | None = None

    @property
    def total_iters(self) -> int:
        return self.iters_per_epoch * (self.epochs + self.epochs_decay)

    def lr_at(self, iteration: int) -> float:
        """The reference's linear policy, stepped per epoch (the last epoch runs at lr/(decay+1))."""
        return self.lr * lr_factor(iteration // self.iters_per_epoch, self.epochs, self.epochs_decay)


@dataclass
class SinCUTConfig:
    preset: str = "sincut"
    model: SinCUTModelConfig = field(default_factory=SinCUTModelConfig)
    data: SinCUTDataConfig = field(default_factory=SinCUTDataConfig)
    train: SinCUTTrainConfig = field(default_factory=SinCUTTrainConfig)

    def validate(self) -> None:
        crop, d, g = self.data.crop_size, self.model.discriminator, self.model.generator
        if crop % (2**g.n_downsampling):
            raise ValueError(f"crop_size {crop} must be a multiple of {2**g.n_downsampling}")
        if crop != d.size and not (d.tile and crop % d.size == 0):
            raise ValueError(
                f"crop_size {crop} needs discriminator.size == crop_size, "
                f"or tile=True with crop_size a multiple of {d.size}"
            )
        if self.train.batch_size < 2 and self.model.nce.negatives_from_minibatch and self.model.num_patches == 1:
            raise ValueError("PatchNCE with one patch per crop needs batch_size >= 2 (negatives come from other crops)")
        if self.data.max_side is not None and self.data.max_side < crop:
            raise ValueError(f"max_side {self.data.max_side} is smaller than the {crop}² crop")
        if not 0 < self.data.scale_min <= 1:
            raise ValueError(f"scale_min must be in (0, 1], got {self.data.scale_min}")
        if self.train.ema_half_life is not None and not 0 < self.train.ema_half_life < math.inf:
            raise ValueError(f"train.ema_half_life must be a finite number of iterations above 0 (None: G itself), got "
                             f"{self.train.ema_half_life}")


def _paper() -> SinCUTConfig:
    return SinCUTConfig()


def _cpu() -> SinCUTConfig:
    """A style, not a recolouring, in about five minutes on two CPU cores (issue 14).

    The paper's networks and losses, narrower (G ngf 6: 48/96 channels; D built for 32²), on 8 crops
    of 32² cut from both images shrunk to 512 px (max_side), for 450 iterations: 9 epochs of 25 at
    lr 2e-3, then 9 of linear decay to lr/10 (the paper's shape). ~0.6 s an iteration on a quiet
    2-core machine; where that is slower, its 285 s budget lays the schedule over fewer iterations.
    The 180-iteration schedule before it ended while the palette still swung (the colour yardstick of
    one run moved 0.46 -> 0.74 in its last 60 iterations) and at full resolution its crops saw flat
    colour; docs/sincut.md has the measurements.
    """
    cfg = SinCUTConfig(preset="sincut-cpu")
    cfg.model.generator = replace(cfg.model.generator, ngf=6)
    cfg.model.discriminator = replace(cfg.model.discriminator, size=32)
    cfg.data = SinCUTDataConfig(crop_size=32, max_side=512)
    cfg.train = SinCUTTrainConfig(batch_size=8, iters_per_epoch=25, epochs=9, epochs_decay=9, time_budget_s=285.0)
    return cfg


def _gpu() -> SinCUTConfig:
    """A style within a minute on one big GPU (issue 14): the paper's networks and crops (16 × 64²),
    PatchNCE at λ 1 instead of 4, on both images shrunk to 512 px, for 680 iterations: 340 at lr 2e-3,
    then 340 of linear decay stepped every iteration (the paper's shape over fewer steps, as `sincut --iters`
    lays a schedule). Previews, translations and the model come from an average of G's weights.

    ~25 s at the ~30 it/s estimated for an H200 (780 GFLOP per step, launch-bound eager PyTorch; GPU_NOTES.md).
    Chosen on a CPU (the same maths in bf16; docs/sincut.md): at 512 px with λ 1 the palette and strokes come
    within a few hundred iterations, where the paper's sizes and λ 4 stayed smoother than the painting for 1,785.
    Twice as long (1,360 iterations, 8 + 8 epochs of 85) met the goals (colour ≤ 0.7, texture ≤ 0.9,
    content ≥ 0.4) on the two pairs it was chosen on and drifted past them late in the schedule on two others
    (Matisse's content 0.24-0.27, The Scream's colour 0.92); 680 meets them on those four and on two more, and
    misses texture on two new pairs (Turner's Shipwreck 2.69, a softened photo; Hoover Tower × Matisse 0.94).

    The average (half-life 100 iterations; over this schedule the warm-up keeps it at about the last tenth of the
    steps) steadies the previews: over the second half of the longer schedule G's swung by 0.15-0.32 in colour
    ratio from one to the next, the average's by 0.01-0.03.
    """
    cfg = SinCUTConfig(preset="sincut-gpu")
    cfg.model.lambda_nce = 1.0
    cfg.data.max_side = 512
    cfg.train = SinCUTTrainConfig(iters_per_epoch=1, epochs=340, epochs_decay=340, ema_half_life=100.0)
    return cfg


SINCUT_PRESETS = {"sincut": _paper, "sincut-cpu": _cpu, "sincut-gpu": _gpu}


def sincut_preset(name: str) -> SinCUTConfig:
    if name not in SINCUT_PRESETS:
        raise ValueError(f"unknown SinCUT preset {name!r}; choose from {', '.join(SINCUT_PRESETS)}")
    return SINCUT_PRESETS[name]()


def default_sincut_preset(device: torch.device) -> str:
    """The preset to train on `device` when none is chosen: the GPU one on CUDA, else the CPU one."""
    return "sincut-gpu" if device.type == "cuda" else "sincut-cpu"


def with_recipe(cfg: SinCUTConfig, *, lambda_nce: float | None = None, max_side: int | None = None) -> SinCUTConfig:
    """`cfg` with the two knobs its presets were chosen by (docs/sincut.md) set; None keeps the preset's.
    `max_side` 0: both images as given (the paper)."""
    if lambda_nce is not None:
        if not 0 <= lambda_nce < float("inf"):
            raise ValueError(f"the PatchNCE weight must be 0 or more, got {lambda_nce}")
        cfg = replace(cfg, model=replace(cfg.model, lambda_nce=float(lambda_nce)))
    if max_side is not None:
        if max_side < 0:
            raise ValueError(f"max_side must be 0 (the images as given) or a size in pixels, got {max_side}")
        cfg = replace(cfg, data=replace(cfg.data, max_side=max_side or None))
    return cfg


def trained_for(cfg: SinCUTConfig, iterations: int) -> SinCUTConfig:
    """`cfg` with its schedule laid over exactly `iterations` steps and trained in full: a count someone
    chose (`sincut --iters`, the app's budget) outlasts the preset's time budget."""
    cfg = with_total_iters(cfg, iterations)
    return replace(cfg, train=replace(cfg.train, time_budget_s=None))


def with_total_iters(cfg: SinCUTConfig, iterations: int) -> SinCUTConfig:
    """A copy of `cfg` whose LR schedule lasts exactly `iterations` steps, stretched or shrunk from the preset's
    shape: the same share of steps at the full LR (floored), then the linear decay, stepped every iteration."""
    iterations = int(iterations)
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    t = cfg.train
    epochs = t.epochs + t.epochs_decay
    constant = iterations * t.epochs // epochs if epochs > 0 else iterations // 2
    return replace(cfg, train=replace(t, iters_per_epoch=1, epochs=constant, epochs_decay=iterations - constant))
