"""Inference: translate images of any size with a generator (loaded by `cutcore.model_folder`).

Whole-image translation pads to the generator's size multiple (reflect) and crops back. The
tiled mode runs overlapping tiles and blends them with a raised-cosine window, so memory is
bounded by the tile size, not the image size (a 4096² image needs one float canvas, not a
4096² activation stack). `will_tile` says beforehand which of the two a call will do.

A caller can stop a translation: `should_stop()` is asked before each tile (and before a
one-pass translation) and, when it answers True, `TranslationCancelled` is raised there.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from .imageio import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageLoadError,
    list_images,
    load_rgb,
    rescale,
    scaled_size,
    to_pil,
    to_rgb,
    to_tensor,
)
from .tiling import MIN_TILE

if TYPE_CHECKING:
    from .model_folder import LoadedModel

Progress = Callable[[int, int], None]  # (tiles done, total)
Report = Callable[[Path, Path | ImageLoadError], None]  # (input, written PNG or why it was skipped)
ShouldStop = Callable[[], bool]


class TranslationCancelled(Exception):
    """`should_stop()` answered True: the translation stopped before tile `done + 1` of `total`."""

    def __init__(self, done: int = 0, total: int = 0):
        super().__init__(f"translation cancelled after {done} of {total} tiles")
        self.done, self.total = done, total


def _check(should_stop: ShouldStop | None, done: int, total: int) -> None:
    if should_stop is not None and should_stop():
        raise TranslationCancelled(done, total)


def _default_overlap(tile: int) -> int:
    """The blended overlap between tiles when none is asked for: 64 px, less for tiles of 256 px and under
    (an overlap must stay under half a tile)."""
    return min(64, tile // 4)


def is_tiled(size: tuple[int, int], tile: int | None) -> bool:
    """Whether `translate_with` translates an image of `size` (w, h) tile by tile (else in one pass)."""
    return bool(tile) and max(size) > tile


def will_tile(model: LoadedModel, img: Image.Image, tile: int | None, scale: float | None = None) -> bool:
    """Whether `translate_image(model, img, tile, scale=scale)` will run in tiles (the size the generator
    sees is `img`'s at the model's working scale, as `rescale` makes it)."""
    scale = model.input_scale if scale is None else scale
    return is_tiled(img.size if scale == 1 else scaled_size(img.size, scale), tile)


def pad_to_multiple(x: torch.Tensor, m: int) -> tuple[torch.Tensor, int, int]:
    """Pad to multiples of m, and to at least 2m: the generator's innermost reflection pads need 2 px."""
    h, w = x.shape[-2:]
    ph, pw = max(2 * m, h + (-h) % m) - h, max(2 * m, w + (-w) % m) - w
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, h, w


def seeded_noise(generator: nn.Module, device: torch.device, seed: int = 0) -> contextlib.AbstractContextManager:
    """Inside, a generator that injects noise (SinCUT's StyleGAN2 decoder) draws it from `seed` rather than from
    torch's global generator: an image translates the same way every time, and translating draws nothing from the
    global generator (the reference draws from it, so its translations vary from call to call)."""
    noise_from = getattr(generator, "noise_from", None)
    if noise_from is None:
        return contextlib.nullcontext()
    return noise_from(torch.Generator(device=device).manual_seed(seed))


@torch.no_grad()
def run_generator(generator: nn.Module, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """G(x) for an (N, 3, H, W) float tensor in [-1, 1] (`imageio.to_tensor`) of any H, W, padded to the
    generator's `size_multiple` (4 for generators that do not say); injected noise comes from `seed`."""
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float (N, 3, H, W) tensor in [-1, 1], got {x.dtype} of shape {tuple(x.shape)} "
                         "(imageio.to_tensor(img)[None] makes one from a PIL image)")
    padded, h, w = pad_to_multiple(x, getattr(generator, "size_multiple", 4))
    with seeded_noise(generator, x.device, seed):
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
    generator: nn.Module, img: Image.Image, tile: int = 512, overlap: int | None = None,
    progress: Progress | None = None, should_stop: ShouldStop | None = None,
) -> Image.Image:
    """Translate `img` tile by tile; memory stays O(tile²) besides two H×W float canvases. Tiles overlap by
    `overlap` px, blended (None: 64 px, a quarter of tiles of 256 px and under).

    `should_stop()` is asked before each tile; True raises TranslationCancelled."""
    if tile < MIN_TILE:
        raise ValueError(f"tile size {tile} is too small: at least {MIN_TILE} px")
    overlap = _default_overlap(tile) if overlap is None else overlap
    if not 0 <= overlap * 2 < tile:
        raise ValueError(f"overlap {overlap} must be at least 0 and less than half the tile size {tile}")
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    src = np.asarray(img, dtype=np.uint8)
    h, w = src.shape[:2]
    acc = np.zeros((h, w, 3), dtype=np.float32)
    weight = np.zeros((h, w, 1), dtype=np.float32)
    ys, xs = _starts(h, tile, tile - overlap), _starts(w, tile, tile - overlap)
    total, done = len(ys) * len(xs), 0
    for y in ys:
        for x in xs:
            _check(should_stop, done, total)
            patch = src[y : y + tile, x : x + tile]
            th, tw = patch.shape[:2]
            t = torch.from_numpy(patch.copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1).to(device)
            # Each tile its own noise seed, so that no noise pattern repeats from tile to tile.
            out = run_generator(generator, t, seed=done)[0].float().clamp(-1, 1).add(1).mul(127.5)
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
    generator: nn.Module, img: Image.Image, tile: int | None = None, overlap: int | None = None,
    progress: Progress | None = None, should_stop: ShouldStop | None = None,
) -> Image.Image:
    """Translate a PIL image (any mode: made RGB as `load_rgb` makes it) with a bare generator; tiled when
    `tile` is given and the image is larger (`is_tiled`). `should_stop()` is asked before each tile or the
    one pass (True: TranslationCancelled)."""
    img = img if img.mode == "RGB" else to_rgb(img)
    if is_tiled(img.size, tile):
        return translate_tiled(generator, img, tile, overlap, progress, should_stop)
    _check(should_stop, 0, 1)
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    out = run_generator(generator, to_tensor(img)[None].to(device))
    if progress:
        progress(1, 1)
    return to_pil(out[0])


def check_scale(size: tuple[int, int], scale: float) -> None:
    """Refuse a scale that is not a positive number, or that would resize an image of `size` (w, h)
    past the pixel count an input may have (a mistyped --scale 1e6 would ask PIL for terabytes)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be positive and finite, got {scale}")
    w, h = scaled_size(size, scale)
    if w * h > MAX_PIXELS:
        raise ValueError(f"scale {scale:g} would make a {size[0]}x{size[1]} image {w}x{h} px, more than the "
                         f"{MAX_PIXELS:,} px an image may have")


def translate_image(
    model: LoadedModel, img: Image.Image | str | os.PathLike, tile: int | None = None, overlap: int | None = None,
    progress: Progress | None = None, scale: float | None = None, should_stop: ShouldStop | None = None,
) -> Image.Image:
    """Translate an image (or the image file `img` names, read by `load_rgb`) at the model's working scale (`scale`,
    default `model.input_scale`); the result has the image's size.

    Tiled when the image at that scale is larger than `tile` (`will_tile`); `should_stop` as in `translate_with`."""
    img = load_rgb(img) if isinstance(img, (str, os.PathLike)) else img
    scale = model.input_scale if scale is None else scale
    check_scale(img.size, scale)
    img = img if img.mode == "RGB" else to_rgb(img)  # Image.open's RGBA, L, P, CMYK...: before resizing
    if scale == 1:
        return translate_with(model.generator, img, tile, overlap, progress=progress, should_stop=should_stop)
    out = translate_with(model.generator, rescale(img, scale), tile, overlap, progress=progress,
                         should_stop=should_stop)
    return out.resize(img.size, Image.BICUBIC)


class SkippedImages(ValueError):
    """Some images of a folder could not be read (`skipped`); the others were translated (`written`)."""

    def __init__(self, skipped: list[Path], written: list[Path], shown: int = 5):
        names = ", ".join(map(str, skipped[:shown])) + (f" and {len(skipped) - shown} more" if skipped[shown:] else "")
        total = len(skipped) + len(written)
        super().__init__(f"{len(skipped)} of {total} images could not be read (skipped): {names}")
        self.skipped, self.written = skipped, written


def translate_path(
    model: LoadedModel, inp: str | os.PathLike, out: str | os.PathLike, tile: int | None = None,
    overlap: int | None = None, scale: float | None = None, report: Report | None = None,
) -> list[Path]:
    """Translate a file or every image in a folder into the folder `out` as PNG (for one file, `out` may also
    name the image to write: its suffix picks the format); returns the written paths.

    `report(input, written PNG or ImageLoadError)` hears of each input as it is done. In a folder an
    image that cannot be read is skipped so that one bad file does not stop the batch; SkippedImages
    is raised once the rest are translated. A single input file that cannot be read raises its
    ImageLoadError; a folder without images, or a result that would replace an input, is a ValueError."""
    inp, out = Path(inp), Path(out)
    files = list_images(inp) if inp.is_dir() else [inp]
    if not files:
        raise ValueError(f"{inp}: no images here (accepted: {', '.join(sorted(IMAGE_EXTENSIONS))})")
    to_file = out.suffix.lower() in IMAGE_EXTENSIONS and not out.is_dir()
    if to_file and inp.is_dir():
        raise ValueError(f"{out}: a folder of images is translated into a folder, not into one image file")
    rel = [f.relative_to(inp) if inp.is_dir() else Path(f.name) for f in files]
    stems = [r.with_suffix("") for r in rel]
    # x.png -> x.png; but beside x.jpg, x.png -> x.png.png: never overwrite another input's result.
    dests = [out] if to_file else [out / r.parent / f"{r.stem if stems.count(s) == 1 else r.name}.png"
                                   for r, s in zip(rel, stems, strict=True)]
    sources = [f.resolve() for f in files]
    inputs = set(sources)
    for f, source, dest in zip(files, sources, dests, strict=True):
        if (target := dest.resolve()) in inputs:
            by = "its own translation" if target == source else f"the translation of {f}"
            raise ValueError(f"{dest} (an input) would be replaced by {by}: write the results to another folder")
    written, skipped = [], []
    for f, dest in zip(files, dests, strict=True):
        try:
            img = load_rgb(f)
        except ImageLoadError as e:
            if not inp.is_dir():
                raise
            skipped.append(f)
            if report:
                report(f, e)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        translate_image(model, img, tile, overlap, scale=scale).save(dest)
        written.append(dest)
        if report:
            report(f, dest)
    if skipped:
        raise SkippedImages(skipped, written)
    return written
