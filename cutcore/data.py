"""Unpaired image datasets (CycleGAN folder layout or pix2pix side-by-side AB files).

Sampling is a pure function of (seed, item index): any step of any run can be reproduced
exactly, which is what makes `--resume` and multi-process training deterministic.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Literal

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .config import DataConfig
from .imageio import ImageLoadError, list_images, load_rgb, to_tensor

Half = Literal["full", "left", "right"]


@dataclass(frozen=True)
class ImageSource:
    path: Path
    half: Half = "full"  # pix2pix AB files hold A on the left and B on the right

    def load(self) -> Image.Image:
        img = load_rgb(self.path)
        if self.half == "full":
            return img
        w, h = img.size
        if w < 2 * h * 0.9:
            raise ImageLoadError(f"{self.path}: expected a side-by-side AB image (width ≈ 2×height), got {w}x{h}")
        return img.crop((0, 0, w // 2, h) if self.half == "left" else (w - w // 2, 0, w, h))


def domain_sources(root: str | Path, phase: str = "train") -> tuple[list[ImageSource], list[ImageSource]]:
    """Images of domains A and B under `root`: `<phase>A/` + `<phase>B/`, or `<phase>/` of AB files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    a_dir, b_dir, ab_dir = root / f"{phase}A", root / f"{phase}B", root / phase
    if a_dir.is_dir() and b_dir.is_dir():
        a, b = [ImageSource(p) for p in list_images(a_dir)], [ImageSource(p) for p in list_images(b_dir)]
    elif ab_dir.is_dir():
        files = list_images(ab_dir)
        a, b = [ImageSource(p, "left") for p in files], [ImageSource(p, "right") for p in files]
    else:
        raise FileNotFoundError(
            f"{root}: expected {phase}A/ and {phase}B/ folders (CycleGAN layout) or a {phase}/ folder of side-by-side AB images"
        )
    if not a or not b:
        raise FileNotFoundError(f"{root}: no images found for phase {phase!r} (A: {len(a)}, B: {len(b)})")
    return a, b


def paired_sources(root: str | Path, phase: str = "test") -> list[tuple[ImageSource, ImageSource]]:
    """Aligned (A, B) pairs: same file name in `<phase>A/` and `<phase>B/`, or AB files."""
    a, b = domain_sources(root, phase)
    if a[0].half != "full":
        return list(zip(a, b))
    by_name = {s.path.name: s for s in b}
    pairs = [(s, by_name[s.path.name]) for s in a if s.path.name in by_name]
    if not pairs:
        raise FileNotFoundError(f"{root}: no file names shared by {phase}A/ and {phase}B/")
    return pairs


def augment(img: Image.Image, load_size: int, crop_size: int, flip: bool, rng: random.Random) -> torch.Tensor:
    """Resize to load_size², random crop_size² crop, random horizontal flip (as the CUT paper)."""
    if load_size != img.size[0] or load_size != img.size[1]:
        img = img.resize((load_size, load_size), Image.BICUBIC)
    x, y = rng.randint(0, load_size - crop_size), rng.randint(0, load_size - crop_size)
    img = img.crop((x, y, x + crop_size, y + crop_size))
    if flip and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor(img)


class UnpairedDataset(Dataset):
    """Item i of the infinite stream: epoch i // N walks A in a seeded permutation, B at random."""

    def __init__(self, cfg: DataConfig, seed: int = 0):
        if cfg.crop_size > cfg.load_size:
            raise ValueError(f"crop_size {cfg.crop_size} is larger than load_size {cfg.load_size}")
        a, b = domain_sources(cfg.root, cfg.phase)
        if cfg.direction == "BtoA":
            a, b = b, a
        excluded = set(cfg.exclude)
        a = [s for s in a if s.path.name not in excluded]
        b = [s for s in b if s.path.name not in excluded]
        if cfg.max_items:
            a, b = a[: cfg.max_items], b[: cfg.max_items]
        self.a, self.b, self.cfg, self.seed = a, b, cfg, seed

    @property
    def epoch_size(self) -> int:
        return max(len(self.a), len(self.b))

    @lru_cache(maxsize=2)
    def _order(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        return torch.randperm(self.epoch_size, generator=g).tolist()

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, pos = divmod(item, self.epoch_size)
        rng = random.Random(f"{self.seed}:{item}")
        ia = self._order(epoch)[pos] % len(self.a)
        ib = rng.randrange(len(self.b))
        c = self.cfg
        return (
            augment(self.a[ia].load(), c.load_size, c.crop_size, c.flip, rng),
            augment(self.b[ib].load(), c.load_size, c.crop_size, c.flip, rng),
        )


class StepSampler(Sampler[int]):
    """Yields this rank's item indices from `start_step` on, forever.

    Global item of (step, rank, j) = (step * world + rank) * batch + j, so the union over ranks
    is the same stream a single process would see.
    """

    def __init__(self, start_step: int, batch_size: int, rank: int = 0, world: int = 1):
        self.start, self.batch, self.rank, self.world = start_step, batch_size, rank, world

    def __iter__(self) -> Iterator[int]:
        step = self.start
        while True:
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)
            step += 1
