"""Zoom-and-patch sampling: minibatches of crops from one high-resolution image.

The reference `SingleImageDataset` (`preprocess=zoom_and_patch`) as its comments design it: all
crops of a minibatch share one random zoom (width and height factors drawn independently from
U(scale_min, 1), never below the crop size, bilinear resize); each crop is a cell of a crop-size
grid laid over the zoomed image at its own random offset (as the reference's __patch), with distinct
cells within a batch so that PatchNCE negatives come mostly from different places (two crops may
still overlap by less than a crop, and cells repeat when the batch outnumbers them: a small image);
each crop is flipped with probability 1/2.
(The reference's shuffling DataLoader reorders its precomputed per-batch zooms and cells, so
there the crops of a batch in fact mix zooms and may share a cell; we follow the stated design.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..imageio import ImageLoadError, fit_within, load_rgb, scaled_size

ImageInput = str | os.PathLike | Image.Image  # a path, or an image already in memory (the app's uploads)


def open_image(source: ImageInput) -> tuple[Image.Image, str]:
    """An RGB image and a name for error messages, from a path or an in-memory PIL image."""
    if isinstance(source, Image.Image):
        return source.convert("RGB"), "<in-memory image>"
    return load_rgb(source), str(source)


def working_scale(size: tuple[int, int], max_side: int | None) -> float:
    """The factor that shrinks an image of `size` (w, h) to `max_side` on its longer side (1: as given)."""
    return 1.0 if max_side is None or max(size) <= max_side else max_side / max(size)


def working_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(w, h) of the image SinCUT trains on, as `working_image` makes it."""
    return scaled_size(size, working_scale(size, max_side))


def working_image(img: Image.Image, max_side: int | None) -> Image.Image:
    """`img` shrunk (antialiased, aspect kept) to `max_side` on its longer side; never enlarged."""
    return img if max_side is None else fit_within(img, max_side)


def check_crop_fits(size: tuple[int, int], max_side: int | None, crop_size: int, name: str) -> None:
    """ImageLoadError naming `name` when an image of `size` (w, h), at its working size for `max_side`, is
    smaller than the training crop."""
    w, h = working_size(size, max_side)
    if min(w, h) < crop_size:
        shrunk = "" if (w, h) == tuple(size) else f" (shrunk to {w}×{h} for training: at most {max_side} px a side)"
        raise ImageLoadError(f"{name} is {size[0]}×{size[1]} px{shrunk}; SinCUT trains on {crop_size}×{crop_size} "
                             f"crops, so each side needs at least {crop_size} px")


@dataclass
class BatchPlan:
    """Where one minibatch comes from: the zoomed image size, crop corners and flips."""

    size: tuple[int, int]  # (width, height) after zooming
    corners: list[tuple[int, int]]  # (x, y) top-left of each crop in the zoomed image
    flips: list[bool]


class ZoomPatchSampler:
    def __init__(
        self,
        image: Image.Image,
        crop_size: int = 64,
        batch_size: int = 16,
        scale_min: float = 1 / 3,
        flip: bool = True,
        seed: int = 0,
        name: str = "<in-memory image>",
    ):
        check_crop_fits(image.size, None, crop_size, name)
        self.image = image.convert("RGB")
        self.crop, self.batch, self.scale_min, self.flip = crop_size, batch_size, scale_min, flip
        self.rng = np.random.default_rng(seed)

    def plan(self) -> BatchPlan:
        c, rng = self.crop, self.rng
        w, h = self.image.size
        zw, zh = rng.uniform(self.scale_min, 1.0, size=2)
        zw, zh = max(c, round(w * zw)), max(c, round(h * zh))
        nx, ny = zw // c, zh // c
        # Distinct grid cells within the batch (cycling only when the batch outnumbers the cells).
        reps = -(-self.batch // (nx * ny))
        cells = np.concatenate([rng.permutation(nx * ny) for _ in range(reps)])[: self.batch]
        corners = []
        for cell in cells:
            # A fresh random grid offset per crop, as the reference's __patch does.
            ox, oy = rng.integers(0, zw - nx * c + 1), rng.integers(0, zh - ny * c + 1)
            corners.append((int(ox + (cell // ny) * c), int(oy + (cell % ny) * c)))
        flips = (rng.random(self.batch) < 0.5).tolist() if self.flip else [False] * self.batch
        return BatchPlan((int(zw), int(zh)), corners, flips)

    def render(self, plan: BatchPlan) -> torch.Tensor:
        """The planned crops as a (B, 3, crop, crop) tensor in [-1, 1]."""
        c = self.crop
        zoomed = np.asarray(self.image.resize(plan.size, Image.BILINEAR))
        crops = []
        for (x, y), flip in zip(plan.corners, plan.flips, strict=True):
            crop = zoomed[y : y + c, x : x + c]
            crops.append(crop[:, ::-1] if flip else crop)
        batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
        return batch.float().div(127.5).sub(1.0).contiguous()

    def sample(self) -> torch.Tensor:
        return self.render(self.plan())
