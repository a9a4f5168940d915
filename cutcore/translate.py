"""Inference: load a trained generator and translate images of any size.

Whole-image translation pads to the generator's size multiple (reflect) and crops back. The
tiled mode runs overlapping tiles and blends them with a raised-cosine window, so memory is
bounded by the tile size, not the image size (a 4096² image needs one float canvas, not a
4096² activation stack).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .checkpoint import load_tensors, read_json, split_state
from .imageio import list_images, load_rgb, rescale, to_pil, to_tensor
from .nets import PatchProjector, ResnetGenerator, ResnetGeneratorConfig
from .train import checkpoint_dirs, resolve_device

Progress = Callable[[int, int], None]


@dataclass
class LoadedModel:
    generator: nn.Module
    heads: PatchProjector | None
    config: dict  # the saved config.json
    nce_layers: list[int]
    path: Path

    @property
    def size_multiple(self) -> int:
        return getattr(self.generator, "size_multiple", 4)

    @property
    def input_scale(self) -> float:
        """Resize factor that brings an input to the ground resolution the model was trained at
        (e.g. 0.25 for 512² satellite tiles trained at 128²); 1 when the config does not say."""
        return float(self.config.get("inference", {}).get("scale", 1.0))


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A model folder (model.safetensors + config.json), a checkpoint, or a run folder (newest checkpoint);
    a folder's model.safetensors or config.json stands for the folder."""
    path = Path(path)
    if path.is_file() and path.name in ("model.safetensors", "config.json"):
        path = path.parent
    if (path / "model.safetensors").is_file():
        return path
    ckpts = checkpoint_dirs(path)
    if ckpts:
        return ckpts[-1]
    raise FileNotFoundError(f"{path}: no model.safetensors here and no checkpoints/step_* below it (give a model "
                            "folder, a checkpoint, a run folder, or an official generator file such as latest_net_G.pth)")


def is_official_file(path: str | os.PathLike) -> bool:
    """A file other than a model folder's own: read as an official generator (`torch.save(state_dict)`)."""
    path = Path(path)
    return path.is_file() and path.name not in ("model.safetensors", "config.json")


def build_generator(config: dict) -> nn.Module:
    """The generator a saved config describes (ResNet for CUT/CycleGAN, StyleGAN2 for SinCUT)."""
    model = config.get("model", {})
    if config.get("preset") == "sincut" or model.get("kind") == "sincut":
        from .sincut import build_sincut_generator

        return build_sincut_generator(config)
    return ResnetGenerator(ResnetGeneratorConfig(**model.get("generator", {})))


def load_model(path: str | os.PathLike, device: str | torch.device = "auto", direction: str = "AtoB") -> LoadedModel:
    """Load a generator (and its PatchNCE heads when present) from safetensors, or from an official
    generator file such as `latest_net_G.pth` (read with weights_only=True, architecture inferred as
    `official convert` does, `latest_net_F.pth` beside it as the heads); never unpickles objects."""
    dev = resolve_device(str(device))
    if is_official_file(path):
        from .official import load_official_file

        generator, heads, config = load_official_file(path, direction)
        return LoadedModel(generator.eval().to(dev), heads.eval().to(dev) if heads is not None else None, config,
                           _nce_layers(config), Path(path))
    folder = resolve_model_dir(path)
    config = read_json(folder / "config.json")
    tensors = load_tensors(folder / "model.safetensors")
    name = "G" if direction == "AtoB" else "G_BA"
    g_state = split_state(tensors, name)
    if not g_state:
        raise ValueError(f"{folder}: this model has no {direction} generator")
    generator = build_generator(config)
    generator.load_state_dict({k: v.float() for k, v in g_state.items()})
    generator.eval().to(dev)
    f_state = split_state(tensors, "F")
    heads = None
    if f_state and direction == "AtoB":
        n_layers = len({k.split(".")[0] for k in f_state})
        channels = [f_state[f"mlp_{i}.0.weight"].shape[1] for i in range(n_layers)]
        heads = PatchProjector(channels, f_state["mlp_0.0.weight"].shape[0])
        heads.load_state_dict({k: v.float() for k, v in f_state.items()})
        heads.eval().to(dev)
    return LoadedModel(generator, heads, config, _nce_layers(config), folder)


def _nce_layers(config: dict) -> list[int]:
    return config.get("model", {}).get("nce_layers", [0, 4, 8, 12, 16])


def _pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, int, int]:
    """Pad to multiples of m, and to at least 2m: the generator's innermost reflection pads need 2 px."""
    h, w = x.shape[-2:]
    ph, pw = max(2 * m, h + (-h) % m) - h, max(2 * m, w + (-w) % m) - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


@torch.no_grad()
def run_generator(generator: nn.Module, x: torch.Tensor, multiple: int = 4) -> torch.Tensor:
    """G(x) for an (1, 3, H, W) tensor of any H, W."""
    padded, h, w = _pad_to_multiple(x, multiple)
    return generator(padded)[..., :h, :w]


def _window(size: int, overlap: int) -> np.ndarray:
    """1-D blending weights: raised-cosine ramps of length `overlap` at both ends, 1 inside."""
    w = np.ones(size, dtype=np.float32)
    if overlap > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)
        w[:overlap], w[-overlap:] = ramp, ramp[::-1]
    return w


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / stride) + 1
    return sorted({min(i * stride, length - tile) for i in range(n)})


@torch.no_grad()
def translate_tiled(
    generator: nn.Module, img: Image.Image, tile: int = 512, overlap: int = 64, multiple: int = 4,
    progress: Progress | None = None,
) -> Image.Image:
    """Translate `img` tile by tile; memory stays O(tile²) besides two H×W float canvases."""
    if overlap * 2 >= tile:
        raise ValueError(f"overlap {overlap} must be less than half the tile size {tile}")
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    src = np.asarray(img, dtype=np.uint8)
    h, w = src.shape[:2]
    acc = np.zeros((h, w, 3), dtype=np.float32)
    weight = np.zeros((h, w, 1), dtype=np.float32)
    ys, xs = _starts(h, tile, tile - overlap), _starts(w, tile, tile - overlap)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x in xs:
            patch = src[y : y + tile, x : x + tile]
            th, tw = patch.shape[:2]
            t = torch.from_numpy(patch.copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)
            out = run_generator(generator, t, multiple)[0].float().clamp(-1, 1).add(1).mul(127.5)
            # Full weight at image borders: only seams between tiles are blended.
            wy, wx = _window(th, overlap if th < h else 0), _window(tw, overlap if tw < w else 0)
            if y == 0:
                wy[: th // 2] = 1
            if y + th >= h:
                wy[th // 2 :] = 1
            if x == 0:
                wx[: tw // 2] = 1
            if x + tw >= w:
                wx[tw // 2 :] = 1
            win = (wy[:, None] * wx[None, :])[..., None]
            acc[y : y + th, x : x + tw] += out.permute(1, 2, 0).cpu().numpy() * win
            weight[y : y + th, x : x + tw] += win
            done += 1
            if progress:
                progress(done, total)
    return Image.fromarray(np.clip(acc / np.maximum(weight, 1e-8) + 0.5, 0, 255).astype(np.uint8), "RGB")


def translate_with(
    generator: nn.Module, img: Image.Image, tile: int | None = None, overlap: int = 64, multiple: int = 4,
    progress: Progress | None = None,
) -> Image.Image:
    """Translate a PIL image with a bare generator; tiled when `tile` is given and the image is larger."""
    if tile and max(img.size) > tile:
        return translate_tiled(generator, img, tile, overlap, multiple, progress)
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    out = run_generator(generator, to_tensor(img)[None].to(device), multiple)
    if progress:
        progress(1, 1)
    return to_pil(out[0])


def translate_image(
    model: LoadedModel, img: Image.Image, tile: int | None = None, overlap: int = 64, progress: Progress | None = None,
    scale: float | None = None,
) -> Image.Image:
    """Translate at the model's working scale (`scale`, default `model.input_scale`); the result has `img`'s size."""
    scale = model.input_scale if scale is None else scale
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if scale == 1:
        return translate_with(model.generator, img, tile, overlap, model.size_multiple, progress)
    out = translate_with(model.generator, rescale(img, scale), tile, overlap, model.size_multiple, progress)
    return out.resize(img.size, Image.BICUBIC)


def translate_path(
    model: LoadedModel, inp: str | os.PathLike, out_dir: str | os.PathLike, tile: int | None = None, overlap: int = 64,
    scale: float | None = None,
) -> list[Path]:
    """Translate a file or every image in a folder into `out_dir` as PNG; returns the written paths."""
    inp, out_dir = Path(inp), Path(out_dir)
    files = list_images(inp) if inp.is_dir() else [inp]
    out_dir.mkdir(parents=True, exist_ok=True)
    rel = [f.relative_to(inp) if inp.is_dir() else Path(f.name) for f in files]
    stems = [r.with_suffix("") for r in rel]
    written = []
    for f, r, stem in zip(files, rel, stems):
        # x.png -> x.png; but beside x.jpg, x.png -> x.png.png: never overwrite another input's result.
        dest = out_dir / r.parent / f"{r.stem if stems.count(stem) == 1 else r.name}.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        translate_image(model, load_rgb(f), tile, overlap, scale=scale).save(dest)
        written.append(dest)
    return written
