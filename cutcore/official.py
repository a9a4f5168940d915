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
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from . import __version__
from .checkpoint import module_state
from .config import CUTModelConfig
from .model_folder import ModelCard, write_model_folder
from .nets import PatchProjector, ResnetGeneratorConfig
from .official_files import (
    OfficialCheckpointError,
    check_heads_fit,
    describe,
    load_official_generator,
    load_official_heads,
    official_config,
)
from .official_urls import (
    CUT_REPO,
    CYCLEGAN_REPO,
    DEFAULT_TIMEOUT,
    Method,
    Progress,
    fetch,
    lookup,
    official_models_dir,
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


def _model_card(name: str, source: str | None, method: str, notes: Sequence[str], cfg: ResnetGeneratorConfig,
                heads: PatchProjector | None, layers: list[int], originals: dict[str, Path],
                precision: Precision) -> ModelCard:
    repo = CYCLEGAN_REPO if method == "cyclegan" else CUT_REPO
    about = [f"- Source: {source}"] if source else []
    about += [f"- {note}" for note in notes]
    about.append(f"- Method: {method} ({_PAPERS[method]})")
    about.append(f"- Generator: {describe(cfg)}")
    if heads is not None:
        about.append(f"- PatchNCE heads: {len(heads.channels)} MLPs ({heads.dim}-d) on generator layers {layers}")
    about += [f"- Converted from `{path.name}` ({role}), sha256 `{sha256_file(path)}`"
              for role, path in originals.items()]
    about.append(f"- Stored as {precision}")
    licence = [(f"The official code ({repo}) is released under a BSD-style licence; see its LICENSE file. No separate "
                "licence is stated for the pretrained weights, and they were trained on third-party images with their "
                "own terms (Cityscapes and AFHQ, for example, are for non-commercial use only). Check those terms "
                "before any commercial use, and cite the paper above.")]
    summary = (f"Converted by `cutcore.official` (cutcore {__version__}) from official checkpoint files. The weights "
               "are unchanged, only the container is new (safetensors instead of pickle), and cutcore's networks "
               "compute the same function as the official ones (checked side by side against the reference code).")
    return ModelCard(name, summary, [("Origin", about), ("Licence", licence)])


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
        check_heads_fit(generator, heads, layers, Path(heads_path))
        modules["F"] = heads
        originals["PatchNCE heads"] = Path(heads_path)

    method: Method = kind or ("cut" if cfg.antialias_down and generator_ba_path is None else "cyclegan")
    name = name or out.name
    # Always labelled as official, so the app lists it apart from the models we trained.
    source = source or f"official: converted from {Path(generator_path).name}"
    config = official_config(cfg, method, layers, heads, name, source)
    dtype = torch.float16 if precision == "fp16" else None
    card = _model_card(name, source, method, card_notes, cfg, heads, layers, originals, precision).render(out)
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

