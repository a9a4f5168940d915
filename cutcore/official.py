"""Official CUT/FastCUT/CycleGAN checkpoints: load them, convert them to cutcore model folders.

The official repos save `torch.save(net.state_dict())` files whose keys are our keys (our
generator mirrors their `model.<i>` layout, our heads their `mlp_<i>.0/.2`). Files are read with
`weights_only=True`, so a file holding pickled objects is refused instead of executed. The
architecture variant is read off the keys, then checked exactly: every key and shape must match
the generator we build, so a file either loads 1:1 or is refused with the differences.

    python -m cutcore official list
    python -m cutcore official download horse2zebra_cut
    python -m cutcore official convert --generator latest_net_G.pth --heads latest_net_F.pth --out DIR

`cutcore.model_folder.load_model` (so `translate`, `evaluate` and `--model`) also takes a generator
file as it is (`load_official_file`), converting it in memory.
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from . import __version__
from .checkpoint import module_state
from .config import CUTModelConfig
from .model_folder import write_model_folder
from .nets import PatchProjector, ResnetGeneratorConfig
from .official_files import (
    _METHOD_LAYOUT,
    OfficialCheckpointError,
    _check_heads_fit,
    describe,
    load_official_generator,
    load_official_heads,
    official_config,
)
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
_CUT_PAPER = "Park, Efros, Zhang, Zhu. Contrastive Learning for Unpaired Image-to-Image Translation. ECCV 2020."
_PAPERS = {
    "cut": _CUT_PAPER,
    "fastcut": _CUT_PAPER,
    "cyclegan": ("Zhu, Park, Isola, Efros. Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial "
                 "Networks. ICCV 2017."),
}


def official_models_dir(name: str | None = None) -> Path:
    """Where converted official models go: $CUTCORE_MODELS, else ~/.cache/cutcore/models (`name` below it)."""
    env = os.environ.get("CUTCORE_MODELS")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "cutcore" / "models"
    return root / name if name else root


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
    config = official_config(cfg, method, layers, heads, name, source)
    dtype = torch.float16 if precision == "fp16" else None
    card = _model_card(name, source, method, card_notes, cfg, heads, layers, originals, precision, out)
    return write_model_folder(out, module_state(modules, dtype), config, card,
                              {"format": "cutcore", "converted_from": source})


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
