"""The reference repos' checkpoint files, read without unpickling: `<epoch>_net_G.pth` generators
(CUT/FastCUT, and CycleGAN's `_net_G_A`/`_net_G_B`) and `<epoch>_net_F.pth` PatchNCE heads, mapped
1:1 onto cutcore's networks with the architecture read off the tensors.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .config import CUTModelConfig, preset
from .nets import PatchProjector, ResnetGenerator, ResnetGeneratorConfig
from .official_urls import Method
from .saved_config import SavedModelConfig

# What the official code fixes per method: (anti-aliased downsampling, anti-aliased upsampling).
_METHOD_LAYOUT = {"cut": (True, True), "fastcut": (True, True), "cyclegan": (False, False)}
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
_BLOCK_KEY = re.compile(r"model\.(\d+)\.conv_block\.(\d+)\.weight$")
_CONV_KEY = re.compile(r"model\.(\d+)\.weight$")


class OfficialCheckpointError(ValueError):
    """A file that is not an official generator/heads state dict we can map 1:1."""



def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain {name: tensor} file; 'module.' prefixes (DataParallel) removed. Never unpickles objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any failure to parse an untrusted file (a text file gives a KeyError)
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(e))
        if found:
            raise OfficialCheckpointError(
                f"{path}: refused: it contains a pickled Python object ({found.group(1)}), not a plain state dict "
                "of tensors, and cutcore never unpickles code. Where you trust the file, re-save it with "
                "torch.save(net.state_dict(), path)."
            ) from None
        raise OfficialCheckpointError(f"{path}: not a PyTorch state-dict file ({_last_line(e)})") from None
    if not isinstance(obj, Mapping):
        raise OfficialCheckpointError(f"{path}: refused: expected a state dict (name -> tensor), "
                                      f"found a {type(obj).__name__}")
    odd = [k for k, v in obj.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if odd:
        raise OfficialCheckpointError(f"{path}: refused: not a plain state dict; "
                                      f"entries that are not tensors: {odd[:5]}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _last_line(e: Exception) -> str:
    """The error's type and the last line of its message: torch.load's may span many lines."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[-1]}" if lines else type(e).__name__


def _check_exact(state: dict[str, torch.Tensor], module: nn.Module, path: Path, what: str, hints: list[str]) -> None:
    """Every key and shape of `module` in `state` and nothing else, or an error listing the differences."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [f"{k}: {tuple(state[k].shape)} != {expected[k]}" for k in sorted(set(state) & set(expected))
              if tuple(state[k].shape) != expected[k]]
    if missing or extra or shapes:
        parts = [f"missing {missing[:4]}" if missing else "", f"unexpected {extra[:4]}" if extra else "",
                 f"shapes {shapes[:4]}" if shapes else ""]
        raise OfficialCheckpointError(
            f"{path}: not a layout cutcore can load as {what}: " + "; ".join(p for p in parts if p) + "".join(hints))


# --- generators ---------------------------------------------------------------------------------


def describe(cfg: ResnetGeneratorConfig) -> str:
    down = "anti-aliased" if cfg.antialias_down else "strided-conv"
    up = "anti-aliased" if cfg.antialias_up else "transposed-conv"
    return (f"ResNet generator, {cfg.n_blocks} residual blocks, ngf {cfg.ngf}, {down} downsampling, {up} upsampling, "
            f"{'with' if cfg.dropout else 'no'} dropout")


def _infer_config(state: dict[str, torch.Tensor], path: Path) -> tuple[ResnetGeneratorConfig, list[str]]:
    """The ResnetGeneratorConfig an official state dict was built with (read off its keys and shapes),
    and hints on why a layout may not fit; the caller checks every key and shape against it."""
    first = state.get("model.1.weight")
    if first is None or first.ndim != 4 or tuple(first.shape[2:]) != (7, 7):
        if any(k.startswith("model.model.") for k in state):
            raise OfficialCheckpointError(f"{path}: a U-Net generator (netG unet_128/unet_256); only ResNet generators "
                                          "(resnet_9blocks/resnet_6blocks) are supported")
        raise OfficialCheckpointError(f"{path}: not an official ResNet generator (no 7x7 conv model.1.weight; "
                                      f"keys start {sorted(state)[:4]})")
    blocks: dict[int, set[int]] = {}
    for key in state:
        if m := _BLOCK_KEY.match(key):
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    convs = sorted(int(m.group(1)) for k in state if (m := _CONV_KEY.match(k)))
    # Anti-aliased: [conv, norm, relu, blur] per downsampling, blur (a `filt` buffer) at index 7; strided: a conv there.
    antialias_down = "model.7.filt" in state
    first_up = max(blocks) + 1 if blocks else (12 if antialias_down else 10)
    cfg = ResnetGeneratorConfig(
        in_channels=first.shape[1],
        out_channels=state[f"model.{convs[-1]}.weight"].shape[0],
        ngf=first.shape[0],
        n_blocks=len(blocks),
        antialias_down=antialias_down,
        antialias_up=f"model.{first_up}.filt" in state,
        # Block layout [pad, conv, norm, relu, (dropout,) pad, conv, norm]: dropout moves the 2nd conv to 6.
        dropout=any(6 in idx for idx in blocks.values()),
    )
    hints = []
    if "model.2.weight" in state or any(k.endswith("running_mean") for k in state):
        hints.append(" (it has normalisation parameters, e.g. batch norm: only the official default, instance norm "
                     "without affine parameters, is supported)")
    elif "model.1.bias" not in state:
        hints.append(" (its convs have no biases: trained with --normG batch or none; only instance norm is supported)")
    if any(0 in idx for idx in blocks.values()):
        hints.append(" (its residual blocks use zero padding; "
                     "only reflection padding, the official default, is supported)")
    return cfg, hints


def _drop_instance_norm_stats(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Checkpoints of PyTorch < 0.4 store running stats for InstanceNorm; the CycleGAN repo's loader
    # drops them (instance norm normalises with each image's own statistics), and so do we. A norm
    # with a `weight` beside its stats is a BatchNorm and is left for the layout check to refuse.
    def is_stale(key: str) -> bool:
        prefix, _, leaf = key.rpartition(".")
        return leaf in _NORM_STATS and f"{prefix}.weight" not in state

    return {k: v for k, v in state.items() if not is_stale(k)}


def load_official_generator(
    path: str | os.PathLike, kind: Method | None = None
) -> tuple[ResnetGenerator, ResnetGeneratorConfig]:
    """Our ResnetGenerator (eval mode, fp32) holding the weights of an official `latest_net_G*.pth`.

    `kind` ("cut", "fastcut", "cyclegan"), when given, requires the layout the official code uses
    for that method (anti-aliased resampling for CUT/FastCUT, strided and transposed convs for the
    CycleGAN zoo); leave it unset to accept any ResNet variant.
    """
    path = Path(path)
    state = _drop_instance_norm_stats(read_state_dict(path))
    if kind is not None and kind not in _METHOD_LAYOUT:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(_METHOD_LAYOUT)}")
    cfg, hints = _infer_config(state, path)
    generator = ResnetGenerator(cfg)
    _check_exact(state, generator, path, describe(cfg), hints)
    if kind is not None and (cfg.antialias_down, cfg.antialias_up) != _METHOD_LAYOUT[kind]:
        raise OfficialCheckpointError(f"{path}: a {describe(cfg)}, not the official {kind} layout; "
                                      "leave kind unset to accept it anyway")
    generator.load_state_dict({k: v.float() for k, v in state.items()})
    return generator.eval(), cfg


# --- PatchNCE heads -----------------------------------------------------------------------------


def load_official_heads(path: str | os.PathLike) -> PatchProjector:
    """Our PatchProjector (eval mode, fp32) holding an official `latest_net_F.pth` (PatchSampleF MLPs)."""
    path = Path(path)
    state = read_state_dict(path)
    if not state:
        raise OfficialCheckpointError(f"{path}: an empty state dict: heads trained without MLPs (--netF sample) "
                                      "have no weights to convert")
    try:
        heads = PatchProjector.for_state(state)
    except ValueError as e:
        raise OfficialCheckpointError(f"{path}: {e}; PatchSampleF's heads have mlp_<i>.0/.2 keys") from None
    _check_exact(state, heads, path, f"PatchNCE heads ({len(heads.channels)} layers, {heads.dim}-d)", [])
    heads.load_state_dict({k: v.float() for k, v in state.items()})
    return heads.eval()


@torch.no_grad()
def check_heads_fit(generator: ResnetGenerator, heads: PatchProjector, layers: list[int], path: Path) -> None:
    """The heads must embed the features the generator produces at `layers` (channel counts match)."""
    if len(layers) != len(heads.channels) or max(layers) >= len(generator.model):
        raise OfficialCheckpointError(f"{path}: {len(heads.channels)} heads do not fit nce_layers {layers} of a "
                                      f"{len(generator.model)}-layer generator; "
                                      "pass the nce_layers it was trained with")
    feats = generator.encode(torch.zeros(1, generator.cfg.in_channels, 16, 16), layers)
    channels = [f.shape[1] for f in feats]
    if channels != heads.channels:
        raise OfficialCheckpointError(f"{path}: heads for {heads.channels} channels, but the generator's features at "
                                      f"nce_layers {layers} have {channels}; pass the nce_layers it was trained with")


# --- conversion ---------------------------------------------------------------------------------


def official_config(cfg: ResnetGeneratorConfig, method: Method, layers: list[int], heads: PatchProjector | None,
                    name: str, source: str) -> SavedModelConfig:
    """The saved config of an official model: the method's preset with the generator the file holds."""
    run = preset(method)
    run.model.generator = cfg
    if run.model.kind == "cut":
        run.model.nce_layers = layers
        if heads is not None:
            run.model.head_dim = heads.dim
    return SavedModelConfig(run, name=name, source=source)


# The official repos name their files <epoch>_net_G.pth (CUT/FastCUT, with <epoch>_net_F.pth beside it)
# or <epoch>_net_G_A.pth and <epoch>_net_G_B.pth (CycleGAN).
_OFFICIAL_FILE = re.compile(r"^(?P<prefix>.*)_net_G(?P<side>_[AB])?\.pth$")


def load_official_file(
    path: str | os.PathLike, direction: str = "AtoB"
) -> tuple[ResnetGenerator, PatchProjector | None, SavedModelConfig]:
    """An official generator file used as it is: (generator, PatchNCE heads or None, saved config).

    What `convert_official` would write, without writing it: the architecture is read off the file
    (weights_only=True). Beside `<epoch>_net_G.pth`, an `<epoch>_net_F.pth` that fits CUT's
    nce_layers becomes the heads; `direction="BtoA"` on a CycleGAN `<epoch>_net_G_A.pth` takes the
    `<epoch>_net_G_B.pth` beside it (and the other way round).
    """
    path = Path(path)
    match = _OFFICIAL_FILE.match(path.name)
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, not {direction!r}")
    if direction == "BtoA":
        if not (match and match["side"]):
            raise ValueError(f"{path}: one generator file translates one way only; for BtoA pass the generator of the "
                             "other direction (CycleGAN: latest_net_G_B.pth)")
        other = path.with_name(f"{match['prefix']}_net_G_{'B' if match['side'] == '_A' else 'A'}.pth")
        if not other.is_file():
            raise FileNotFoundError(f"{other}: no such file (the BtoA generator beside {path.name})")
        path = other
    generator, cfg = load_official_generator(path)
    layers = CUTModelConfig().nce_layers
    heads = None
    heads_path = path.with_name(f"{match['prefix']}_net_F.pth") if match and not match["side"] else None
    if heads_path is not None and heads_path.is_file():
        try:
            heads = load_official_heads(heads_path)
            check_heads_fit(generator, heads, layers, heads_path)
        except OfficialCheckpointError:
            heads = None  # translating needs no heads; `official convert --nce-layers` takes odd layer choices
    method: Method = "cut" if cfg.antialias_down and not (match and match["side"]) else "cyclegan"
    config = official_config(cfg, method, layers, heads, path.stem, f"official: {path.name}")
    return generator, heads, config


