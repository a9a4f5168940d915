"""Official CUT/FastCUT/CycleGAN checkpoints: load them, convert them to cutcore model folders.

The official repos save `torch.save(net.state_dict())` files whose keys are our keys (our
generator mirrors their `model.<i>` layout, our heads their `mlp_<i>.0/.2`). Files are read with
`weights_only=True`, so a file holding pickled objects is refused instead of executed. The
architecture variant is read off the keys, then checked exactly: every key and shape must match
the generator we build, so a file either loads 1:1 or is refused with the differences.

    python -m cutcore official list
    python -m cutcore official download horse2zebra_cut
    python -m cutcore official convert --generator latest_net_G.pth --heads latest_net_F.pth --out DIR

`cutcore.translate.load_model` (so `translate`, `evaluate` and `--model`) also takes a generator
file as it is (`load_official_file`), converting it in memory.
"""
from __future__ import annotations

import os
import pickle
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from . import __version__
from .checkpoint import module_state, save_tensors, write_json
from .config import CUTModelConfig, preset
from .nets import PatchProjector, ResnetGenerator, ResnetGeneratorConfig
from .official_urls import (
    CUT_REPO,
    CYCLEGAN_REPO,
    DEFAULT_TIMEOUT,
    OFFICIAL_MODELS,
    DownloadError,
    Method,
    Progress,
    fetch,
    lookup,
    sha256_file,
)

Precision = Literal["fp32", "fp16"]
# What the official code fixes per method: (anti-aliased downsampling, anti-aliased upsampling).
_METHOD_LAYOUT = {"cut": (True, True), "fastcut": (True, True), "cyclegan": (False, False)}
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
_BLOCK_KEY = re.compile(r"model\.(\d+)\.conv_block\.(\d+)\.weight$")
_CONV_KEY = re.compile(r"model\.(\d+)\.weight$")
_MLP_KEY = re.compile(r"mlp_(\d+)\.0\.weight$")
_CUT_PAPER = "Park, Efros, Zhang, Zhu. Contrastive Learning for Unpaired Image-to-Image Translation. ECCV 2020."
_PAPERS = {
    "cut": _CUT_PAPER,
    "fastcut": _CUT_PAPER,
    "cyclegan": ("Zhu, Park, Isola, Efros. Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial "
                 "Networks. ICCV 2017."),
}


class OfficialCheckpointError(ValueError):
    """A file that is not an official generator/heads state dict we can map 1:1."""


def official_models_dir(name: str | None = None) -> Path:
    """Where converted official models go: $CUTCORE_MODELS, else ~/.cache/cutcore/models (`name` below it)."""
    env = os.environ.get("CUTCORE_MODELS")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "cutcore" / "models"
    return root / name if name else root


# --- reading ------------------------------------------------------------------------------------


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A plain {name: tensor} file; 'module.' prefixes (DataParallel) removed. Never unpickles objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        found = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(e))
        if found:
            raise OfficialCheckpointError(
                f"{path}: refused: it contains a pickled Python object ({found.group(1)}), not a plain state dict "
                "of tensors, and cutcore never unpickles code. Where you trust the file, re-save it with "
                "torch.save(net.state_dict(), path)."
            ) from None
        raise OfficialCheckpointError(f"{path}: not a PyTorch state-dict file ({str(e).strip().splitlines()[-1]})") from None
    if not isinstance(obj, Mapping):
        raise OfficialCheckpointError(f"{path}: refused: expected a state dict (name -> tensor), found a {type(obj).__name__}")
    odd = [k for k, v in obj.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if odd:
        raise OfficialCheckpointError(f"{path}: refused: not a plain state dict; entries that are not tensors: {odd[:5]}")
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


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
        hints.append(" (its residual blocks use zero padding; only reflection padding, the official default, is supported)")
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
    n = len([k for k in state if _MLP_KEY.match(k)])
    if "mlp_0.0.weight" not in state or any(f"mlp_{i}.0.weight" not in state for i in range(n)):
        raise OfficialCheckpointError(f"{path}: not PatchSampleF heads (expected mlp_<i>.0/.2 keys; "
                                      f"keys start {sorted(state)[:4]})")
    heads = PatchProjector([state[f"mlp_{i}.0.weight"].shape[1] for i in range(n)], state["mlp_0.0.weight"].shape[0])
    _check_exact(state, heads, path, f"PatchNCE heads ({n} layers, {heads.dim}-d)", [])
    heads.load_state_dict({k: v.float() for k, v in state.items()})
    return heads.eval()


@torch.no_grad()
def _check_heads_fit(generator: ResnetGenerator, heads: PatchProjector, layers: list[int], path: Path) -> None:
    """The heads must embed the features the generator produces at `layers` (channel counts match)."""
    if len(layers) != len(heads.channels) or max(layers) >= len(generator.model):
        raise OfficialCheckpointError(f"{path}: {len(heads.channels)} heads do not fit nce_layers {layers} of a "
                                      f"{len(generator.model)}-layer generator; pass the nce_layers it was trained with")
    feats = generator.encode(torch.zeros(1, generator.cfg.in_channels, 16, 16), layers)
    channels = [f.shape[1] for f in feats]
    if channels != heads.channels:
        raise OfficialCheckpointError(f"{path}: heads for {heads.channels} channels, but the generator's features at "
                                      f"nce_layers {layers} have {channels}; pass the nce_layers it was trained with")


# --- conversion ---------------------------------------------------------------------------------


def _model_card(name: str, source: str | None, method: str, notes: Sequence[str], cfg: ResnetGeneratorConfig,
                heads: PatchProjector | None, layers: list[int], originals: dict[str, Path], precision: Precision,
                out_dir: Path) -> str:
    repo = CYCLEGAN_REPO if method == "cyclegan" else CUT_REPO
    lines = [f"# {name}", "",
             (f"Converted by `cutcore.official` (cutcore {__version__}) from official checkpoint files. The weights "
              "are unchanged, only the container is new (safetensors instead of pickle), and cutcore's networks "
              "compute the same function as the official ones (checked side by side against the reference code)."), ""]
    if source:
        lines.append(f"- Source: {source}")
    lines += [f"- {note}" for note in notes]
    lines.append(f"- Method: {method} ({_PAPERS[method]})")
    lines.append(f"- Generator: {describe(cfg)}")
    if heads is not None:
        lines.append(f"- PatchNCE heads: {len(heads.channels)} MLPs ({heads.dim}-d) on generator layers {layers}")
    for role, path in originals.items():
        lines.append(f"- Converted from `{path.name}` ({role}), sha256 `{sha256_file(path)}`")
    lines.append(f"- Stored as {precision}")
    lines += ["", "## Use", "", "```bash", f"python -m cutcore translate --model {out_dir} --input IMAGE_OR_DIR --output OUT_DIR",
              "```", "", "## Licence", "",
              (f"The official code ({repo}) is released under a BSD-style licence; see its LICENSE file. No separate "
               "licence is stated for the pretrained weights, and they were trained on third-party images with their "
               "own terms (Cityscapes and AFHQ, for example, are for non-commercial use only). Check those terms "
               "before any commercial use, and cite the paper above."), ""]
    return "\n".join(lines)


def convert_official(
    generator_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    heads_path: str | os.PathLike | None = None,
    name: str | None = None,
    source: str | None = None,
    nce_layers: list[int] | None = None,
    generator_ba_path: str | os.PathLike | None = None,
    *,
    kind: Method | None = None,
    precision: Precision = "fp32",
    card_notes: Sequence[str] = (),
) -> Path:
    """Write a cutcore model folder (model.safetensors, config.json, README.md) from official files.

    `generator_ba_path`: CycleGAN's second generator (`latest_net_G_B.pth`), used by
    `translate --direction BtoA`; it must have the same architecture. `nce_layers` (default
    0,4,8,12,16, CUT's) says which generator layers the heads embed. `card_notes`: extra lines
    for the model card (what it translates, where it was downloaded).
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be fp32 or fp16, not {precision!r}")
    out = Path(out_dir)
    generator, cfg = load_official_generator(generator_path, kind)
    modules: dict[str, nn.Module] = {"G": generator}
    originals = {"generator": Path(generator_path)}
    if generator_ba_path is not None:
        generator_ba, cfg_ba = load_official_generator(generator_ba_path, kind)
        if cfg_ba != cfg:
            raise OfficialCheckpointError(f"{generator_ba_path}: a {describe(cfg_ba)}, but {generator_path} is a "
                                          f"{describe(cfg)}; both generators of a model must match")
        modules["G_BA"] = generator_ba
        originals["generator B->A"] = Path(generator_ba_path)
    layers = list(nce_layers) if nce_layers else CUTModelConfig().nce_layers
    heads = None
    if heads_path is not None:
        heads = load_official_heads(heads_path)
        _check_heads_fit(generator, heads, layers, Path(heads_path))
        modules["F"] = heads
        originals["PatchNCE heads"] = Path(heads_path)

    method: Method = kind or ("cut" if cfg.antialias_down and generator_ba_path is None else "cyclegan")
    name = name or out.name
    # Always labelled as official, so the app lists it apart from the models we trained.
    source = source or f"official: converted from {Path(generator_path).name}"
    config = _official_config(cfg, method, layers, heads, name, source)
    dtype = torch.float16 if precision == "fp16" else None
    save_tensors(out / "model.safetensors", module_state(modules, dtype),
                 metadata={"format": "cutcore", "converted_from": source})
    (out / "README.md").write_text(_model_card(name, source, method, card_notes, cfg, heads, layers, originals,
                                               precision, out))
    write_json(out / "config.json", config)  # last: marks the folder complete
    return out


def _official_config(cfg: ResnetGeneratorConfig, method: Method, layers: list[int], heads: PatchProjector | None,
                     name: str, source: str) -> dict:
    """The config.json of an official model: the method's preset with the generator the file holds."""
    run = preset(method)
    run.model.generator = cfg
    run.model.nce_layers = layers
    if heads is not None:
        run.model.head_dim = heads.dim
    return {"name": name, "source": source, **asdict(run)}


# The official repos name their files <epoch>_net_G.pth (CUT/FastCUT, with <epoch>_net_F.pth beside it)
# or <epoch>_net_G_A.pth and <epoch>_net_G_B.pth (CycleGAN).
_OFFICIAL_FILE = re.compile(r"^(?P<prefix>.*)_net_G(?P<side>_[AB])?\.pth$")


def load_official_file(
    path: str | os.PathLike, direction: str = "AtoB"
) -> tuple[ResnetGenerator, PatchProjector | None, dict]:
    """An official generator file used as it is: (generator, PatchNCE heads or None, config dict).

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
            _check_heads_fit(generator, heads, layers, heads_path)
        except OfficialCheckpointError:
            heads = None  # translating needs no heads; `official convert --nce-layers` takes odd layer choices
    method: Method = "cut" if cfg.antialias_down and not (match and match["side"]) else "cyclegan"
    config = _official_config(cfg, method, layers, heads, path.stem, f"official: {path.name}")
    return generator, heads, config


def download_official(
    name: str,
    out_dir: str | os.PathLike | None = None,
    *,
    file: str | os.PathLike | None = None,
    sha256: str | None = None,
    precision: Precision = "fp32",
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> Path:
    """Download (or take from `file`), verify and convert an official model; returns its folder.

    Raises DownloadError when offline (CUTCORE_OFFLINE=1 / HF_HUB_OFFLINE=1) or the server cannot
    be reached within `timeout` seconds.
    """
    model = lookup(name)
    out = Path(out_dir) if out_dir is not None else official_models_dir(model.name)
    with tempfile.TemporaryDirectory(prefix="cutcore-official-") as tmp:
        files, digest = fetch(model, Path(tmp), Path(file) if file is not None else None, sha256, timeout, progress)
        notes = [f"Translates: {model.description}", f"Downloaded from {model.url} (sha256 `{digest}`)"]
        return convert_official(files["G"], out, heads_path=files.get("F"), name=model.name, source=model.source,
                                kind=model.method, precision=precision, card_notes=notes)


# --- command line -------------------------------------------------------------------------------


def add_parser(sub) -> None:
    p = sub.add_parser("official", help="use official CUT/FastCUT/CycleGAN pretrained models")
    cmds = p.add_subparsers(dest="official_command", required=True)

    ls = cmds.add_parser("list", help="the official models `download` knows")
    ls.set_defaults(func=_list)

    conv = cmds.add_parser("convert", help="convert official .pth files into a cutcore model folder")
    conv.add_argument("--generator", required=True, type=Path, help="latest_net_G.pth (CycleGAN: latest_net_G_A.pth)")
    conv.add_argument("--heads", type=Path, help="latest_net_F.pth (CUT's PatchNCE heads)")
    conv.add_argument("--generator-ba", type=Path, help="CycleGAN's latest_net_G_B.pth (for --direction BtoA)")
    conv.add_argument("--out", type=Path, help=f"model folder (default: {official_models_dir()}/NAME)")
    conv.add_argument("--name", help="model name (default: the --out folder's name)")
    conv.add_argument("--source", help="where the files came from (written to config.json and the model card)")
    conv.add_argument("--kind", choices=sorted(_METHOD_LAYOUT), help="require this method's official layout")
    conv.add_argument("--nce-layers", help="generator layers the heads embed (default 0,4,8,12,16)")
    conv.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    conv.set_defaults(func=_convert)

    dl = cmds.add_parser("download", help="download, verify and convert an official pretrained model")
    dl.add_argument("name", help="a name from `official list`")
    dl.add_argument("--out", type=Path, help=f"model folder (default: {official_models_dir()}/NAME)")
    dl.add_argument("--file", type=Path, help="an already downloaded copy (the .tar or .pth); if absent, download "
                                              "to this path and keep it")
    dl.add_argument("--sha256", help="refuse the download unless its sha256 is this")
    dl.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    dl.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per network operation")
    dl.set_defaults(func=_download)


def _list(args) -> int:
    root = official_models_dir()
    print(f"converted models go to {root} (set CUTCORE_MODELS to change)")
    for m in OFFICIAL_MODELS.values():
        mark = "*" if (root / m.name / "config.json").is_file() else " "  # config.json is written last
        print(f"{mark} {m.name:<30} {m.method:<8} {m.description}")
    print("(* already converted)")
    return 0


def _convert(args) -> int:
    if args.out is None and args.name is None:
        raise ValueError("give --out DIR or --name NAME (then the folder is official_models_dir()/NAME)")
    layers = [int(x) for x in args.nce_layers.split(",")] if args.nce_layers else None
    out = convert_official(args.generator, args.out or official_models_dir(args.name), args.heads, args.name,
                           args.source, layers, args.generator_ba, kind=args.kind,
                           precision="fp16" if args.fp16 else "fp32")
    print(out)
    return 0


def _download(args) -> int:
    from tqdm import tqdm

    try:
        with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=args.name, disable=None) as bar:  # None: tty only

            def progress(done: int, total: int | None) -> None:
                bar.total = total
                bar.update(done - bar.n)

            out = download_official(args.name, args.out, file=args.file, sha256=args.sha256,
                                    precision="fp16" if args.fp16 else "fp32", timeout=args.timeout, progress=progress)
    except DownloadError as e:  # the bar is closed by now, so the message gets its own line
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0
