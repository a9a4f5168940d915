"""Typed configs and the named presets (hyper-parameters of the CUT and CycleGAN papers)."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .losses import GANMode, NCEConfig
from .nets.patchgan import PatchGANConfig
from .nets.resnet import ResnetGeneratorConfig


def config_field(cfg: Any, path: str) -> tuple[Any, str]:
    """The object holding the field a dotted path ("model.generator.ngf") names, and the field's name."""
    *sections, name = path.split(".")
    for section in sections:
        cfg = getattr(cfg, section)
    return cfg, name


def lr_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """The reference's linear policy: constant for `epochs`, then linear decay (epoch is 0-based).
    Shared by CUT/CycleGAN training (per data epoch) and SinCUT (per epoch of iterations)."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


@dataclass
class ModelConfig:
    kind: Literal["cut", "cyclegan"] = "cut"
    generator: ResnetGeneratorConfig = field(default_factory=ResnetGeneratorConfig)
    discriminator: PatchGANConfig = field(default_factory=PatchGANConfig)
    gan_mode: GANMode = "lsgan"
    init: Literal["xavier", "normal"] = "xavier"
    init_gain: float = 0.02
    # CUT
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0
    nce_idt: bool = True
    nce_layers: list[int] = field(default_factory=lambda: [0, 4, 8, 12, 16])
    num_patches: int = 256
    head_dim: int = 256
    nce: NCEConfig = field(default_factory=NCEConfig)
    flip_equivariance: bool = False
    # L1 identity ‖G(y) − y‖₁ on target-domain images (SinCUT's identity term; 0 in the CUT paper)
    lambda_l1_idt: float = 0.0
    # CycleGAN
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50


@dataclass
class DataConfig:
    root: str = ""
    load_size: int = 286  # resize to load_size², then random crop_size² crop
    crop_size: int = 256
    flip: bool = True
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    phase: str = "train"
    max_items: int | None = None  # cap per domain (quick experiments)
    exclude: list[str] = field(default_factory=list)  # file names held out (validation split)


@dataclass
class TrainConfig:
    epochs: int = 200  # at the full learning rate
    epochs_decay: int = 200  # then linearly decayed to ~0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = 1
    max_steps: int | None = None
    seed: int = 0
    device: str = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    num_workers: int = 2
    log_every: int = 10
    sample_every: int = 500
    save_every: int = 1000
    keep_checkpoints: int = 2
    # Held-out evaluation every `eval_every` steps (0 = never): metrics.jsonl + metrics.png in the run.
    eval_every: int = 0
    eval_data: str | None = None  # default: the training data root
    eval_split: str | None = None  # file of held-out names inside train{A,B}; None = the test{A,B} pairs
    eval_metrics: str | None = None  # e.g. "accuracy,rmse,swd"; None = all available
    eval_max_images: int | None = None


@dataclass
class RunConfig:
    preset: str = "cut"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _cyclegan() -> RunConfig:
    return RunConfig(
        preset="cyclegan",
        model=ModelConfig(
            kind="cyclegan",
            generator=ResnetGeneratorConfig(antialias_down=False, antialias_up=False),
            discriminator=PatchGANConfig(antialias=False),
            init="normal",
        ),
        train=TrainConfig(epochs=100, epochs_decay=100),
    )


def _cut(preset: str, **model: Any) -> RunConfig:
    return RunConfig(preset=preset, model=ModelConfig(**model))


def _fastcut(preset: str, **model: Any) -> RunConfig:
    run = RunConfig(preset=preset, model=ModelConfig(lambda_nce=10.0, nce_idt=False, flip_equivariance=True, **model))
    run.train.epochs, run.train.epochs_decay = 150, 50
    return run


PRESETS = {
    "cut": lambda: _cut("cut"),
    "cut-focal": lambda: _cut("cut-focal", nce=NCEConfig(loss="focal")),
    "put": lambda: _cut("put", nce=NCEConfig(prune_k=5)),
    "fastcut": lambda: _fastcut("fastcut"),
    "fastcut-focal": lambda: _fastcut("fastcut-focal", nce=NCEConfig(loss="focal")),
    "cyclegan": _cyclegan,
}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()


def from_dict(cls: type, data: dict[str, Any]):
    """Rebuild a (nested) config dataclass from its asdict() form; unknown keys are an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        kwargs[key] = from_dict(hint, value) if dataclasses.is_dataclass(hint) and isinstance(value, dict) else value
    return cls(**kwargs)
