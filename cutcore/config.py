"""Typed configs and the named presets (hyper-parameters of the CUT and CycleGAN papers)."""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .nets.configs import SIZE_MULTIPLE as RESNET_SIZE_MULTIPLE
from .nets.configs import PatchGANConfig, ResnetGeneratorConfig

GANMode = Literal["lsgan", "vanilla", "nonsaturating", "hinge"]


def option(default: Any, *, help: str | None = None, flag: str | None = None,
           resume: Literal["runtime", "schedule"] | None = None) -> Any:
    """A config field that, with `help`, is also a `train` flag (`--name-with-dashes` unless `flag`).

    `resume` says what `--resume` may change besides the `runtime` section (which it may change at
    will): "runtime" fields likewise, "schedule" fields while the learning rate already used stays
    the same; every other field of a saved run is fixed.
    """
    meta = {"help": help, "flag": flag, "resume": resume}
    return field(default=default, metadata=meta)


@dataclass
class NCEConfig:
    """How PatchNCE scores a query against its positive and negatives."""

    temperature: float = 0.07
    loss: Literal["ce", "focal"] = option("ce", help="PatchNCE loss", flag="--nce-loss")
    focal_gamma: float = option(2.0, help="focal PatchNCE's gamma")
    focal_alpha: float = option(0.25, help="focal PatchNCE's alpha")
    # PUT (Lin et al. 2022): keep only the k most similar negatives of each query. None = all.
    prune_k: int | None = option(None, help="PUT: keep each query's k hardest negatives")
    # Draw negatives from every patch of the minibatch (SinCUT) instead of the same image.
    negatives_from_minibatch: bool = False


def config_field(cfg: Any, path: str) -> tuple[Any, str]:
    """The object holding the field a dotted path ("model.generator.ngf") names, and the field's name."""
    *sections, name = path.split(".")
    for section in sections:
        cfg = getattr(cfg, section)
    return cfg, name


def parse_duration(text: str | float) -> float:
    """Seconds in "90", "90s", "9m", "1h30m", "1.5h" (or a number of seconds)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text or "")
    if not match or not any(match.groups()):
        raise ValueError(f"not a duration: {text!r} (write e.g. 90s, 9m or 1h30m)")
    h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return h * 3600 + m * 60 + s


def lr_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """The reference's linear policy: constant for `epochs`, then linear decay (epoch is 0-based).
    Shared by CUT/CycleGAN training (per data epoch) and SinCUT (per epoch of iterations)."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


@dataclass
class GANModelConfig:
    """What CUT and CycleGAN share: ResNet generator(s), PatchGAN discriminator(s), initialisation."""

    generator: ResnetGeneratorConfig = field(default_factory=ResnetGeneratorConfig)
    discriminator: PatchGANConfig = field(default_factory=PatchGANConfig)
    gan_mode: GANMode = option("lsgan", help="GAN objective")
    init: Literal["xavier", "normal"] = "xavier"
    init_gain: float = 0.02


@dataclass
class CUTModelConfig(GANModelConfig):
    kind: Literal["cut"] = "cut"
    lambda_gan: float = 1.0
    lambda_nce: float = option(1.0, help="weight of the PatchNCE loss")
    nce_idt: bool = True
    nce_layers: list[int] = field(default_factory=lambda: [0, 4, 8, 12, 16])
    num_patches: int = option(256, help="PatchNCE locations per layer and image")
    head_dim: int = 256
    nce: NCEConfig = field(default_factory=NCEConfig)
    flip_equivariance: bool = False
    # L1 identity ‖G(y) − y‖₁ on target-domain images (SinCUT's identity term; 0 in the CUT paper)
    lambda_l1_idt: float = option(0.0, help="weight of an L1 identity term on target images (0 = paper CUT)")


@dataclass
class CycleGANModelConfig(GANModelConfig):
    kind: Literal["cyclegan"] = "cyclegan"
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50


ModelConfig = CUTModelConfig | CycleGANModelConfig


@dataclass
class DataConfig:
    root: str = option("", resume="runtime")  # the --data folder
    load_size: int = option(286, help="resize images to this square size ...")
    crop_size: int = option(256, help="... then take random crops of this size")
    flip: bool = True
    direction: Literal["AtoB", "BtoA"] = option("AtoB", help="which domain is translated")
    phase: str = "train"
    max_items: int | None = option(None, help="use at most this many images per domain")
    exclude: list[str] = field(default_factory=list)  # file names held out (validation split)
    # The CUT reference's data loader: once the learning rate decays, whole images resized to the
    # crop size (load_size = crop_size). Off for CycleGAN (its reference keeps random crops) and for
    # recipes whose crops are patches of a deliberately resized image (128 px tiles, 64² crops).
    whole_images_when_decaying: bool = option(True, help="during LR decay train on whole images resized to "
                                                         "the crop size, as the CUT reference")


@dataclass
class TrainConfig:
    """What the run learns from: optimiser, schedule, batch, seed, arithmetic."""

    epochs: int = option(200, help="epochs at the full learning rate", resume="schedule")
    epochs_decay: int = option(200, help="then epochs of linear decay to ~0", resume="schedule")
    lr: float = option(2e-4, help="Adam learning rate")
    beta1: float = 0.5
    beta2: float = 0.999
    batch_size: int = option(1, help="images per step and process")
    seed: int = option(0, help="initialisation, data order and sampling seed")
    # "auto": bf16 autocast where the device multiplies bf16 natively (Ampere+ GPUs, CPUs with
    # AVX512-BF16 or AMX), fp32 elsewhere; a run saves the precision it resolved to.
    precision: Literal["auto", "fp32", "bf16"] = option("auto", help="auto, fp32, or bf16 autocast")


@dataclass
class RuntimeConfig:
    """How and where the run executes and reports; `--resume` may change any of it."""

    max_steps: int | None = option(None, help="stop after this many iterations (total, across resumes)")
    # Wall-clock budget, e.g. "9m", "1h30m", "600s": the schedule is laid over the steps that fit.
    time_budget: str | None = option(None, help="train for this long (e.g. 9m, 1h30m; a bare number is seconds): the "
                                                "preset's schedule (constant LR, then linear decay) is fitted to the "
                                                "measured step rate")
    device: str = option("auto", help="auto, cpu, cuda, cuda:1 ...")
    # NHWC activations and weights: "auto" is on for CUDA (cuDNN's tensor-core layout), off elsewhere;
    # `train --channels-last [auto|on|off]` sets it. Saved as given, so a resume on another device decides again.
    channels_last: Literal["auto", "on", "off"] | bool = "auto"
    # "auto": on CUDA the training images are decoded once into uint8 tensors on the GPU and cropped
    # and flipped there (the same batches as the DataLoader's); elsewhere, or when they would take
    # more than a quarter of the device's memory, the DataLoader (see cutcore.data.DeviceImages).
    data_on_device: Literal["auto", "on", "off"] | bool = option(
        "auto", help="decode the training images once onto the training device and crop there "
                     "(auto: on CUDA when they fit in a quarter of its memory; off: the DataLoader)")
    num_workers: int = option(2, help="data loader processes")
    log_every: int = option(10, help="log.jsonl every this many steps")
    sample_every: int = option(500, help="samples/ grid every this many steps")
    save_every: int = option(1000, help="checkpoint every this many steps")
    keep_checkpoints: int = option(2, help="newest checkpoints kept")
    # Held-out evaluation every `eval_every` steps (0 = never): metrics.jsonl + metrics.png in the run.
    eval_every: int = option(0, help="held-out evaluation every this many steps (0 = never)")
    eval_data: str | None = option(None, help="evaluation dataset (default: --data)")
    eval_split: str | None = option(None, help="file of held-out names in train{A,B} (default: the test pairs)")
    eval_metrics: str | None = option(None, help="e.g. accuracy,rmse,swd (default: all available)")
    eval_max_images: int | None = option(None, help="evaluate on at most this many pairs")


GENERATOR_MULTIPLE = RESNET_SIZE_MULTIPLE  # crops must be multiples of it (ResnetGenerator.size_multiple)
# Each image is resized to load_size² in memory before it is cropped (30000 px: 2.5 GiB an image).
MAX_LOAD_SIZE = 8192


@dataclass
class RunConfig:
    preset: str = "cut"
    model: ModelConfig = field(default_factory=CUTModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def validate(self) -> None:
        """Refuse values that cannot train, naming the field and its flag (ValueError), before any work starts."""
        m, d, t, r = self.model, self.data, self.train, self.runtime
        # (CycleGAN samples no patches: its num_patches stands in as 1.)
        for path, value, low in (("train.batch_size", t.batch_size, 1), ("model.generator.ngf", m.generator.ngf, 1),
                                 ("model.discriminator.ndf", m.discriminator.ndf, 1),
                                 ("model.generator.n_blocks", m.generator.n_blocks, 0),
                                 ("model.num_patches", getattr(m, "num_patches", 1), 1), ("train.epochs", t.epochs, 0),
                                 ("train.epochs_decay", t.epochs_decay, 0), ("runtime.log_every", r.log_every, 1),
                                 ("runtime.sample_every", r.sample_every, 1), ("runtime.save_every", r.save_every, 1),
                                 ("runtime.eval_every", r.eval_every, 0)):
            if value < low:
                raise ValueError(f"{named(path)} must be at least {low}, got {value}")
        if r.max_steps is not None and r.max_steps < 1:
            raise ValueError(f"{named('runtime.max_steps')} must be at least 1 (leave it out for the whole schedule), "
                             f"got {r.max_steps}")
        if not t.lr > 0:
            raise ValueError(f"{named('train.lr')} must be above 0, got {t.lr}")
        if d.max_items is not None and d.max_items < 1:
            raise ValueError(f"{named('data.max_items')} must be at least 1 (leave it out for every image), got "
                             f"{d.max_items}")
        if t.epochs + t.epochs_decay < 1:
            raise ValueError(f"{named('train.epochs')} plus {named('train.epochs_decay')} must be at least 1 epoch, "
                             f"got {t.epochs} + {t.epochs_decay}")
        if d.crop_size > d.load_size:
            raise ValueError(f"{named('data.crop_size')} {d.crop_size} is larger than {named('data.load_size')} "
                             f"{d.load_size} (crops are cut from the image resized to the load size)")
        if r.time_budget:
            try:
                seconds = parse_duration(r.time_budget)
            except ValueError as e:
                raise ValueError(f"{named('runtime.time_budget')}: {e}") from None
            if seconds <= 0:
                raise ValueError(f"{named('runtime.time_budget')} must be longer than 0 s, got {r.time_budget!r}")
        if d.load_size > MAX_LOAD_SIZE:
            raise ValueError(f"{named('data.load_size')} {d.load_size} is over {MAX_LOAD_SIZE}: every image is "
                             f"resized to {d.load_size}x{d.load_size} in memory ({d.load_size**2 * 3 / 2**30:.1f} GiB "
                             "each) first")
        _check_crop(d.crop_size, m.discriminator.n_layers)
        if isinstance(d.exclude, str):  # a str is a sequence of characters: nothing would be held out
            raise ValueError(f"data.exclude is a list of file names, got the string {d.exclude!r}")
        _check_choices(self)


def _check_choices(cfg: Any, prefix: str = "") -> None:
    """Refuse a value outside a Literal field's choices, which the command line offers and Python does not
    check (data.direction "AB" would train as "AtoB")."""
    hints = typing.get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        value, hint = getattr(cfg, f.name), hints[f.name]
        if dataclasses.is_dataclass(value):
            _check_choices(value, f"{prefix}{f.name}.")
        elif typing.get_origin(hint) is Literal and value not in (choices := typing.get_args(hint)):
            raise ValueError(f"{prefix}{f.name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def smallest_crop(d_layers: int) -> int:
    """The PatchGAN halves the crop `d_layers` times; its last two 4x4 convs then need 3 px (2 for
    InstanceNorm's statistics, 1 for the patch map)."""
    return 3 * 2**d_layers


def named(path: str) -> str:
    """A config field as errors name it, for Python and command-line users alike: "train.lr (--lr)"."""
    return f"{path} (--{path.rsplit('.', 1)[-1].replace('_', '-')})"


def _check_crop(crop: int, d_layers: int) -> None:
    if crop % GENERATOR_MULTIPLE:
        raise ValueError(f"{named('data.crop_size')} must be a multiple of {GENERATOR_MULTIPLE} (the generator halves "
                         f"it twice and doubles it back), got {crop}")
    smallest = smallest_crop(d_layers)
    if crop < smallest:
        raise ValueError(f"{named('data.crop_size')} must be at least {smallest} (the discriminator halves it "
                         f"{d_layers} times), got {crop}")


def _cyclegan() -> RunConfig:
    return RunConfig(
        preset="cyclegan",
        model=CycleGANModelConfig(
            generator=ResnetGeneratorConfig(antialias_down=False, antialias_up=False),
            discriminator=PatchGANConfig(antialias=False),
            init="normal",
        ),
        data=DataConfig(whole_images_when_decaying=False),
        train=TrainConfig(epochs=100, epochs_decay=100),
    )


def _cut(preset: str, **model: Any) -> RunConfig:
    return RunConfig(preset=preset, model=CUTModelConfig(**model))


def _fastcut(preset: str, **model: Any) -> RunConfig:
    run = RunConfig(preset=preset,
                    model=CUTModelConfig(lambda_nce=10.0, nce_idt=False, flip_equivariance=True, **model))
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
    """A fresh config of the named CUT-family or CycleGAN preset (SinCUT's: `cutcore.sincut.sincut_preset`)."""
    if name not in PRESETS:
        sincut = " (SinCUT presets come from cutcore.sincut.sincut_preset)" if name.startswith("sincut") else ""
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}{sincut}")
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
        hint = _by_kind(hints[key], value)
        kwargs[key] = from_dict(hint, value) if dataclasses.is_dataclass(hint) and isinstance(value, dict) else value
    return cls(**kwargs)


def _by_kind(hint: Any, value: Any) -> Any:
    """For a union of config classes (ModelConfig), the one whose `kind` the saved dict names."""
    options = [t for t in typing.get_args(hint) if dataclasses.is_dataclass(t)]
    if not options or not isinstance(value, dict):
        return hint
    for cls in options:
        if value.get("kind") == cls.kind:
            return cls
    raise ValueError(f"unknown model kind {value.get('kind')!r}; expected one of {[c.kind for c in options]}")


def config_options(cls: type = RunConfig, prefix: str = "") -> list[tuple[str, dataclasses.Field, Any]]:
    """Every field of `cls` that carries `option` metadata, recursively, as (dotted path, field, type).

    Fields of both model kinds are listed (once, where their paths coincide): the command line is
    built from this list and a flag the chosen preset's model lacks is refused when applied.
    """
    found: dict[str, tuple[str, dataclasses.Field, Any]] = {}
    for klass in [t for t in typing.get_args(cls) if dataclasses.is_dataclass(t)] or [cls]:
        hints = typing.get_type_hints(klass)
        for f in dataclasses.fields(klass):
            path, hint = f"{prefix}{f.name}", hints[f.name]
            if f.metadata.get("help"):
                found.setdefault(path, (path, f, hint))
            elif dataclasses.is_dataclass(hint) or any(dataclasses.is_dataclass(t) for t in typing.get_args(hint)):
                for item in config_options(hint, f"{path}."):
                    found.setdefault(item[0], item)
    return list(found.values())


def resume_policy(cfg: RunConfig, path: str) -> str | None:
    """What `--resume` may do with the field at `path`: "runtime", "schedule" or None (fixed)."""
    if path.startswith("runtime."):
        return "runtime"
    target, name = config_field(cfg, path)
    return next(f for f in dataclasses.fields(target) if f.name == name).metadata.get("resume")
