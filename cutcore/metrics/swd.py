"""Sliced Wasserstein distance between image sets on Laplacian-pyramid patches (PGGAN).

Follows Karras et al. 2018 (metrics/sliced_wasserstein.py of progressive_growing_of_gans):
a Laplacian pyramid of each image (5-tap [1, 4, 6, 4, 1] / 16 Gaussian, mirror borders) down
to 16 px, 128 random 7x7 patches per image and level, descriptors normalised per channel over
each set and level, SWD over 4 x 128 random unit directions, reported x 1e3 per level plus
their average. Needs no pretrained weights.

Deliberate differences, for reproducibility:
- a seeded RNG instead of numpy's global one. Patch positions depend only on (seed, set, level,
  image index): `batch_size` does not change results, and every model scored against the same
  targets meets the same target patches and the same positions in its own images (less variance
  between models). The two sets draw positions independently, as in PGGAN: a translation and its
  own target are not sampled at the same places, which would make coarse levels reward the pairing
  (a paired metric) instead of measuring how far the distributions are apart; identical sets
  therefore score PGGAN's sampling floor, not 0;
- non-square images are allowed: levels are made while the shorter side is >= 16;
- sets of different sizes are allowed: the larger set's descriptors are randomly subsampled.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from cutcore.metrics.paired import ImageLike, to_rgb_uint8

_TAPS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
_GAUSS = torch.outer(_TAPS, _TAPS)


def _blur(x: torch.Tensor, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """Depthwise 5x5 Gaussian; torch's 'reflect' padding is scipy.ndimage's 'mirror' (PGGAN)."""
    c = x.shape[1]
    weight = (_GAUSS * gain).to(x).expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), weight, stride=stride, groups=c)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur and keep even rows/columns (as cv2.pyrDown); (N, C, H, W) -> ceil halves."""
    return _blur(x, stride=2)  # = blur then [::2, ::2], without computing the dropped outputs


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-stuff to `size` and blur with gain 4 (as cv2.pyrUp); inverse of pyr_down's sampling."""
    up = x.new_zeros(*x.shape[:2], *size)
    up[:, :, ::2, ::2] = x
    return _blur(up, gain=4.0)


def laplacian_pyramid(x: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Band-pass levels, finest first; the last level is the low-pass residual."""
    levels = [x]
    for _ in range(num_levels - 1):
        low = pyr_down(levels[-1])
        levels[-1] = levels[-1] - pyr_up(low, tuple(levels[-1].shape[-2:]))
        levels.append(low)
    return levels


def _num_levels(height: int, width: int, min_resolution: int) -> int:
    n, side = 0, min(height, width)
    while side >= min_resolution:
        n, side = n + 1, side // 2
    return n


def _patches(level: np.ndarray, first_index: int, seed: tuple[int, int], lod: int, per_image: int,
             size: int) -> np.ndarray:
    """`per_image` random size x size patches of each image: (B * per_image, C, size, size)."""
    b, c, h, w = level.shape
    r = size // 2
    # Centres in [r, h - r) x [r, w - r) so patches stay inside, as in PGGAN.
    centres = np.stack(
        [np.random.default_rng([*seed, lod, first_index + i]).integers(r, (h - r, w - r), size=(per_image, 2))
         for i in range(b)]
    )
    offsets = np.arange(-r, r + 1)
    ys = centres[:, :, 0, None, None] + offsets[:, None]  # (B, P, size, 1)
    xs = centres[:, :, 1, None, None] + offsets[None, :]  # (B, P, 1, size)
    patches = level.transpose(0, 2, 3, 1)[np.arange(b)[:, None, None, None], ys, xs]  # (B, P, size, size, C)
    return patches.transpose(0, 1, 4, 2, 3).reshape(b * per_image, c, size, size)


def _normalise(desc: np.ndarray) -> np.ndarray:
    """Zero mean, unit std per channel over the whole set; flatten to (N, C * size * size)."""
    desc = desc - desc.mean(axis=(0, 2, 3), keepdims=True)
    # Guard only for flat (e.g. constant) levels, where PGGAN would divide by zero.
    desc /= np.maximum(desc.std(axis=(0, 2, 3), keepdims=True), 1e-8)
    return desc.reshape(len(desc), -1)


def _batches(images: Iterable[ImageLike], batch_size: int) -> Iterator[np.ndarray]:
    """uint8 (B, H, W, 3) stacks; all images of the set must share one size."""
    batch: list[np.ndarray] = []
    first: tuple[int, ...] | None = None
    for image in images:
        arr = to_rgb_uint8(image)
        first = first or arr.shape
        if arr.shape != first:
            raise ValueError(f"all images must have the same size, got {first} and {arr.shape}")
        batch.append(arr)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def _set_descriptors(
    images: Iterable[ImageLike], seed: tuple[int, int], per_image: int, size: int, min_resolution: int,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Normalised descriptors per pyramid level, keyed 'HxW' (finest first); `seed` is (seed, which set)."""
    per_level: list[list[np.ndarray]] = []
    keys: list[str] = []
    count = 0
    for batch in _batches(images, batch_size):
        if not per_level:
            n_levels = _num_levels(batch.shape[1], batch.shape[2], min_resolution)
            if n_levels == 0:
                raise ValueError(f"images of {batch.shape[1]}x{batch.shape[2]} are smaller than {min_resolution} px")
            per_level = [[] for _ in range(n_levels)]
        pyramid = laplacian_pyramid(torch.from_numpy(batch).permute(0, 3, 1, 2).float(), len(per_level))
        keys = [f"{lv.shape[2]}x{lv.shape[3]}" for lv in pyramid]
        for lod, lv in enumerate(pyramid):
            per_level[lod].append(_patches(lv.numpy(), count, seed, lod, per_image, size))
        count += len(batch)
    if not per_level:
        raise ValueError("no images given")
    return {k: _normalise(np.concatenate(d)) for k, d in zip(keys, per_level, strict=True)}


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, repeats: int, directions: int) -> float:
    """Mean 1-D Wasserstein distance of (N, D) point sets over random unit directions."""
    results = []
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], directions))
        dirs = (dirs / np.linalg.norm(dirs, axis=0, keepdims=True)).astype(np.float32)
        # Sorted projections pair up quantiles: the 1-D optimal transport plan.
        proj_a, proj_b = np.sort(a @ dirs, axis=0), np.sort(b @ dirs, axis=0)
        results.append(np.abs(proj_a - proj_b).mean())
    return float(np.mean(results))


def swd(
    images_a: Iterable[ImageLike],
    images_b: Iterable[ImageLike],
    seed: int = 0,
    *,
    patches_per_image: int = 128,
    patch_size: int = 7,
    dir_repeats: int = 4,
    dirs_per_repeat: int = 128,
    min_resolution: int = 16,
    batch_size: int = 32,
) -> dict[str, float]:
    """SWD x 1e3 per pyramid level (keys 'HxW', finest first) and their mean under 'avg'.

    Images are PIL images or uint8 HxWx3 arrays, all of one size. Lower is better. With few images the
    values carry sampling noise, and even identical sets score a floor above 0 (PGGAN used 16k images).
    """
    if patch_size % 2 == 0 or patch_size > min_resolution:
        raise ValueError("patch_size must be odd and no larger than min_resolution")
    args = (patches_per_image, patch_size, min_resolution, batch_size)
    desc_a, desc_b = _set_descriptors(images_a, (seed, 0), *args), _set_descriptors(images_b, (seed, 1), *args)
    if list(desc_a) != list(desc_b):
        raise ValueError(f"the two sets have different image sizes (levels {list(desc_a)} vs {list(desc_b)})")
    rng = np.random.default_rng(seed)  # projection directions; positions use [seed, set, lod, index]
    result: dict[str, float] = {}
    for key, a in desc_a.items():
        b = desc_b[key]
        n = min(len(a), len(b))
        a, b = (d if len(d) == n else d[np.sort(rng.choice(len(d), n, replace=False))] for d in (a, b))
        result[key] = 1e3 * sliced_wasserstein(a, b, rng, dir_repeats, dirs_per_repeat)
    result["avg"] = float(np.mean(list(result.values())))
    return result
