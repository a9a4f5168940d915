"""Paired metrics for aligned test sets (GcGAN's protocol on maps): pixel accuracy and RMSE.

Both images of a pair are resized to `size` x `size` as GcGAN's evaluate_maps.py does it:
OpenCV's INTER_LINEAR, i.e. bilinear over the 2x2 nearest source pixels with half-pixel
centres and no antialiasing (a 512 -> 256 downscale samples, it does not average), then
compared in 0..255 units. Accuracy is a fraction in [0, 1], not a percentage.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cutcore.imageio import to_rgb

ImageLike = Image.Image | np.ndarray


def to_rgb_uint8(image: ImageLike) -> np.ndarray:
    """A PIL image (any mode) or a uint8 HxWx3 array as a uint8 HxWx3 array.

    Shared by all metrics so they accept the same inputs. Floats are refused rather than
    guessed at: [0, 1], [-1, 1] and [0, 255] conventions would give silently wrong scores.
    """
    if isinstance(image, Image.Image):
        return np.asarray(to_rgb(image), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a PIL image or a uint8 HxWx3 array, got {arr.dtype} array of shape {arr.shape}")
    return arr


def resize_rgb(image: ImageLike, size: int) -> np.ndarray:
    """`image` as uint8 (size, size, 3), resized like GcGAN's `cv2.resize(img, (size, size),
    interpolation=cv2.INTER_LINEAR)`; images already that size are left untouched.

    torch's bilinear with align_corners=False and antialias=False uses OpenCV's half-pixel
    convention (source x = (x + 0.5) * in / out - 0.5, clamped at the borders); results are
    rounded half up like OpenCV's (its 11-bit fixed-point weights can still differ by 1 on rare pixels).
    """
    arr = to_rgb_uint8(image)
    if arr.shape[:2] == (size, size):
        return arr
    t = torch.from_numpy(np.ascontiguousarray(arr).copy()).permute(2, 0, 1)[None].float()
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return out[0].add(0.5).floor().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()  # halves up, as OpenCV


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")


def pixel_accuracy(pred: np.ndarray, target: np.ndarray, delta: int = 5) -> float:
    """Share of pixels whose largest channel difference is < `delta` (uint8 HxWx3 inputs)."""
    _check_pair(pred, target)
    return float(_within(pred, target, delta).mean())


def _within(a: np.ndarray, b: np.ndarray, delta: int) -> np.ndarray:
    """Whether RGB colours (last axis) differ by less than `delta` in every channel: the accuracy's tolerance."""
    # int16: uint8 subtraction would wrap around (asarray: no copy of what is int16 already).
    return np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max(-1) < delta


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    """sqrt(sum of squared differences over pixels *and* channels / number of pixels).

    Dividing by pixels rather than pixels x channels is GcGAN's definition; it makes the value
    sqrt(3) times the per-channel RMSE.
    """
    _check_pair(pred, target)
    diff = pred.astype(np.int64) - target.astype(np.int64)
    return float(np.sqrt((diff * diff).sum() / (diff.shape[0] * diff.shape[1])))


def paired_metrics(
    pred_images: Iterable[ImageLike],
    target_images: Iterable[ImageLike],
    size: int = 256,
    delta: int = 5,
) -> dict[str, float]:
    """Mean pixel accuracy (fraction in [0, 1]) and mean per-image RMSE over aligned pairs.

    Returns dict(accuracy=..., rmse=..., n=number of pairs).
    """
    accs, errs = [], []
    for pred, target in zip(pred_images, target_images, strict=True):
        p, t = resize_rgb(pred, size), resize_rgb(target, size)
        accs.append(pixel_accuracy(p, t, delta))
        errs.append(rmse(p, t))
    if not accs:
        raise ValueError("no image pairs given")
    return {"accuracy": float(np.mean(accs)), "rmse": float(np.mean(errs)), "n": len(accs)}


def colour_breakdown(
    pred_images: Iterable[ImageLike],
    target_images: Iterable[ImageLike],
    size: int = 256,
    delta: int = 5,
    top: int = 6,
) -> list[dict]:
    """Pixel accuracy per map colour, largest share first: for `top` colours of the targets, the share
    of all pixels near one (less than `delta` from it in every channel, the accuracy's tolerance), the
    accuracy on them and the mean predicted colour there. It says which map classes (buildings, roads,
    water, parks...) a model gets right and what it paints instead, which one accuracy cannot.

    The colours are the commonest exact ones taken at least 2·delta - 1 apart (so no pixel counts
    twice and the JPEG noise around one class makes no second row), then the `top` with most pixels near.
    """
    preds, targets = [], []
    for pred, target in zip(pred_images, target_images, strict=True):
        preds.append(resize_rgb(pred, size))
        targets.append(resize_rgb(target, size))
    if not preds:
        raise ValueError("no image pairs given")
    # The targets' colour histogram, an image at a time (a pooled int64 copy of 138 maps is ~0.5 GiB).
    per_image = [np.unique(_codes(t), return_counts=True) for t in targets]
    codes, inverse = np.unique(np.concatenate([c for c, _ in per_image]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([n for _, n in per_image]))
    common = counts >= 1e-5 * counts.sum()  # the colours that matter for a share; 138 maps have ~1M in all
    codes, counts = codes[common], counts[common]
    colours = _colours(codes).astype(np.int16)
    # Candidates: the commonest exact colours at least 2·delta - 1 apart; kept: the `top` with most pixels near.
    candidates = np.empty((0, 3), np.int16)
    for colour in colours[np.argsort(-counts, kind="stable")]:
        if not len(candidates) or np.abs(candidates - colour).max(1).min() >= 2 * delta - 1:
            candidates = np.vstack([candidates, colour])
            if len(candidates) == 4 * top:
                break
    near_counts = [counts[_within(colours, c, delta)].sum() for c in candidates]
    chosen = [candidates[i] for i in np.argsort(-np.asarray(near_counts), kind="stable")[:top]]
    pixels, near, hits, painted = 0, np.zeros(len(chosen)), np.zeros(len(chosen)), np.zeros((len(chosen), 3))
    for pred, target in zip(preds, targets, strict=True):
        p, t = pred.reshape(-1, 3).astype(np.int16), target.reshape(-1, 3).astype(np.int16)
        pixels += len(t)
        for k, colour in enumerate(chosen):
            mask = _within(t, colour, delta)
            near[k] += mask.sum()
            hits[k] += _within(p[mask], t[mask], delta).sum()
            painted[k] += p[mask].sum(0)
    rows = [{"colour": c.tolist(), "share": float(n / pixels), "accuracy": float(h / n),
             "predicted": (m / n).round(1).tolist()} for c, n, h, m in zip(chosen, near, hits, painted, strict=True)]
    return sorted(rows, key=lambda r: -r["share"])


def _codes(image: np.ndarray) -> np.ndarray:
    """Each pixel's RGB as one integer (r << 16 | g << 8 | b)."""
    return (image.reshape(-1, 3).astype(np.int64) * [65536, 256, 1]).sum(-1)  # int64: what bincount takes


def _colours(codes: np.ndarray) -> np.ndarray:
    """`_codes` back to uint8 RGB, one row per code."""
    return np.stack([codes >> 16, (codes >> 8) & 255, codes & 255], -1).astype(np.uint8)


def most_common_colour_baseline(targets: Iterable[ImageLike], size: int = 256) -> dict[str, float]:
    """The scores of painting every pixel the single most common colour of the target maps:
    the floor a map translator has to beat (shared/data/README.md's calibration)."""
    maps = [resize_rgb(t, size) for t in targets]
    mode = np.bincount(np.concatenate([_codes(m) for m in maps])).argmax()
    colour = _colours(mode)
    return paired_metrics([np.broadcast_to(colour, (size, size, 3)).copy()] * len(maps), maps, size=size)
