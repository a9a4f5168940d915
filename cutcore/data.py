"""Training data: unpaired crops from the dataset folders (`cutcore.folders`).

Sampling is a pure function of (seed, item index): any step of any run can be reproduced
exactly, which is what makes `--resume` and multi-process training deterministic.

Two ways to feed a run: `UnpairedDataset` behind a DataLoader decodes, resizes and crops every
item on the CPU; `DeviceImages` decodes and resizes the training images once into uint8
tensors on the training device and cuts each step's crops there, from the same draws, so both
give the same batches (issue 12: no data loader can starve a GPU).
"""
from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from .config import DataConfig, named
from .folders import ImageSource, domain_sources
from .imageio import resize_square, to_tensor


class Crop(NamedTuple):
    """Where one training crop lies in its load_size² image (x: column, y: row) and whether it is mirrored."""

    x: int
    y: int
    flip: bool


def draw_crop(rng: random.Random, load_size: int, crop_size: int, flip: bool) -> Crop:
    """The random part of the CUT paper's augmentation: a crop_size² window of a load_size² image and a coin
    for a horizontal flip (`apply_crop` applies it to the image `resize_square` made)."""
    x, y = rng.randint(0, load_size - crop_size), rng.randint(0, load_size - crop_size)
    return Crop(x, y, bool(flip and rng.random() < 0.5))


def apply_crop(img: Image.Image, crop: Crop, crop_size: int) -> torch.Tensor:
    img = img.crop((crop.x, crop.y, crop.x + crop_size, crop.y + crop_size))
    if crop.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return to_tensor(img)


class ItemPlan(NamedTuple):
    """Everything about one item: which A and B images, the side both are resized to, where each is cropped."""

    a: int
    b: int
    crop_a: Crop
    crop_b: Crop
    side: int


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
        if cfg.max_items is not None:
            a, b = a[: cfg.max_items], b[: cfg.max_items]
        if not a or not b:  # else a ZeroDivisionError in a loader worker, naming nothing
            cut = f"--exclude ({len(excluded)} names)" + (f" and --max-items {cfg.max_items}" if cfg.max_items else "")
            raise ValueError(f"{cfg.root}: no training images left in domain {'A' if not a else 'B'} after {cut}")
        self.a, self.b, self.cfg, self.seed = a, b, cfg, seed
        # From this item on, whole images resized to the crop size (the trainer sets it where the LR decays).
        self.whole_images_from: int | None = None
        self._orders: dict[int, list[int]] = {}  # epoch -> permutation of A, see _order

    @property
    def epoch_size(self) -> int:
        return max(len(self.a), len(self.b))

    def _order(self, epoch: int) -> list[int]:
        order = self._orders.get(epoch)
        if order is None:
            g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            order = torch.randperm(self.epoch_size, generator=g).tolist()
            # Two epochs' orders at most (a batch may straddle two): the newest so far and this one. Per instance,
            # unlike an lru_cache on the method (shared by every dataset, and keeping each alive).
            newest = list(self._orders.items())[-1:]
            self._orders = dict(newest + [(epoch, order)])
        return order

    def __len__(self) -> int:
        return self.epoch_size

    def plan(self, item: int) -> ItemPlan:
        """The draws of item `item`, a pure function of (seed, item): A in the epoch's permutation, B at random."""
        epoch, pos = divmod(item, self.epoch_size)
        rng = random.Random(f"{self.seed}:{item}")
        ia = self._order(epoch)[pos] % len(self.a)
        ib = rng.randrange(len(self.b))
        c = self.cfg
        whole = self.whole_images_from is not None and item >= self.whole_images_from
        side = c.crop_size if whole else c.load_size
        crop_a = draw_crop(rng, side, c.crop_size, c.flip)
        return ItemPlan(ia, ib, crop_a, draw_crop(rng, side, c.crop_size, c.flip), side)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        p, c = self.plan(item), self.cfg
        return (
            apply_crop(resize_square(self.a[p.a].load(), p.side), p.crop_a, c.crop_size),
            apply_crop(resize_square(self.b[p.b].load(), p.side), p.crop_b, c.crop_size),
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


# --- the training set on the device ---------------------------------------------------------------

# The decoded set may take at most this share of the device's memory (the rest is the model's).
DEVICE_DATA_FRACTION = 0.25
DATA_ON_DEVICE = ("auto", "on", "off")


def decoded_bytes(dataset: UnpairedDataset) -> int:
    """Bytes of both domains decoded as uint8 RGB images at load_size² (and crop_size² for whole-image training)."""
    c = dataset.cfg
    area = c.load_size**2 + (c.crop_size**2 if c.whole_images_when_decaying and c.crop_size != c.load_size else 0)
    return (len(dataset.a) + len(dataset.b)) * 3 * area


def device_memory(device: torch.device) -> int | None:
    """Total memory of `device` in bytes (a GPU's, or the host's RAM for the CPU); None if unknown."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "cpu":
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def resolve_data_on_device(setting: str | bool, device: str | torch.device, nbytes: int,
                           capacity: int | None = None) -> tuple[bool, str]:
    """(decode the training set onto `device`?, one line for the log) for `runtime.data_on_device`.

    "auto" is on for CUDA devices and off elsewhere (the CPU keeps its DataLoader); "on" forces it
    (tests, or a CPU run that wants it). Either way the decoded set (`nbytes`) must fit in
    DEVICE_DATA_FRACTION of the device's memory (`capacity`, default: as `device_memory` reads it):
    "auto" falls back to the DataLoader with the reason, "on" refuses with a ValueError.
    """
    device = torch.device(device)
    setting = {True: "on", False: "off"}.get(setting, setting)  # type: ignore[call-overload]
    if setting not in DATA_ON_DEVICE:
        raise ValueError(f"data_on_device must be one of {', '.join(DATA_ON_DEVICE)}, not {setting!r}")
    if setting == "off":
        return False, "DataLoader (data_on_device off)"
    if setting == "auto" and device.type != "cuda":
        return False, f"DataLoader (data_on_device auto: on for CUDA only, this run is on {device.type})"
    capacity = device_memory(device) if capacity is None else capacity
    if capacity is not None and nbytes > DEVICE_DATA_FRACTION * capacity:
        why = (f"the decoded training set would take {_gib(nbytes)}, more than {DEVICE_DATA_FRACTION:.0%} of "
               f"{device}'s {_gib(capacity)}")
        if setting == "on":
            raise ValueError(f"{named('runtime.data_on_device')} on: {why}; lower {named('data.load_size')} or "
                             f"{named('data.max_items')}, or set it off (the DataLoader)")
        return False, f"DataLoader ({why})"
    return True, f"decoded on {device} ({_gib(nbytes)}, {setting})"


def _decode(sources: Sequence[ImageSource], load_size: int, workers: int) -> torch.Tensor:
    """The images as one (N, 3, load_size, load_size) uint8 tensor, resized exactly as `resize_square` resizes."""
    out = torch.empty((len(sources), 3, load_size, load_size), dtype=torch.uint8)

    def decode(i: int) -> None:  # PIL decodes and resizes without the GIL: threads overlap
        img = resize_square(sources[i].load(), load_size)
        out[i] = torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for _ in pool.map(decode, range(len(sources))):
            pass
    return out


class DeviceImages:
    """An `UnpairedDataset`'s images decoded once into uint8 tensors on `device`; each batch is cut there.

    A batch is the DataLoader's batch of the same items, bit for bit: the same draws
    (`UnpairedDataset.plan`: A in the epoch's seeded permutation, B at random, crops and flips from
    a generator keyed by (seed, item)), the same PIL bicubic resize to load_size (done once here),
    and crop, flip and the [-1, 1] conversion as tensor ops on the device. The draws are a few
    Python integers per image, made on the host: slicing by them needs no transfer and no
    synchronisation with the device. `batches` walks the items as `StepSampler` does, so a
    resumed run and the ranks of a multi-process run see what they would with the DataLoader.
    """

    def __init__(self, dataset: UnpairedDataset, device: str | torch.device, workers: int | None = None):
        self.dataset, self.device = dataset, torch.device(device)
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.decoded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.images(dataset.cfg.load_size)
        # uint8 -> [-1, 1] by table, computed as imageio.to_tensor computes it on the CPU: CUDA divides by a
        # scalar through its reciprocal, 1 ulp off for 111 of the 256 values.
        self.byte_to_unit = torch.arange(256, dtype=torch.uint8).float().div(127.5).sub(1.0).to(self.device)

    def images(self, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Both domains at side² (load_size; crop_size too once whole images are used), decoded on first use."""
        if side not in self.decoded:
            self.decoded[side] = tuple(_decode(s, side, self.workers).to(self.device)
                                       for s in (self.dataset.a, self.dataset.b))
        return self.decoded[side]

    def _cut(self, images: torch.Tensor, index: int, crop: Crop) -> torch.Tensor:
        size = self.dataset.cfg.crop_size
        view = images[index, :, crop.y : crop.y + size, crop.x : crop.x + size]
        return view.flip(-1) if crop.flip else view

    def batch(self, items: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Items `items` of the dataset's stream as two float (N, 3, crop, crop) batches in [-1, 1] on the device."""
        plans = [self.dataset.plan(i) for i in items]
        a = torch.stack([self._cut(self.images(p.side)[0], p.a, p.crop_a) for p in plans])
        b = torch.stack([self._cut(self.images(p.side)[1], p.b, p.crop_b) for p in plans])
        return self.byte_to_unit[a.long()], self.byte_to_unit[b.long()]

    def batches(self, start_step: int, batch_size: int, rank: int = 0,
                world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This rank's batches from `start_step` on, forever (the items `StepSampler` gives the DataLoader)."""
        items = iter(StepSampler(start_step, batch_size, rank, world))
        while True:
            yield self.batch([next(items) for _ in range(batch_size)])
