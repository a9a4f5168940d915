"""Image loading that accepts what users actually have, and fails with the file's name otherwise."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".gif"}
# Refuse decompression bombs early, but allow large aerial tiles (e.g. 16k x 16k).
MAX_PIXELS = 300_000_000
_pil_limit_lock = threading.Lock()
_raised = 0  # decodes in flight under large_images_allowed
_limit_before: int | None = None  # PIL's limit before the first of them


class ImageLoadError(ValueError):
    """An input file is not a usable image; the message names the file and the reason."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (L, LA, P, RGBA, I;16, I, F, CMYK) to 8-bit RGB, honouring EXIF rotation."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


@contextmanager
def large_images_allowed() -> Iterator[None]:
    """PIL's decompression-bomb limit at MAX_PIXELS while the body runs, then as it was. PIL reads the limit from
    a module global and has no per-call one: raised for the whole process, it would relax the check for a library
    user's own PIL calls for good; raised here, only while one of our decodes is in flight (other threads' PIL calls
    see it meanwhile). Decodes in flight are counted, so that threads decoding at once (the training set's decoding
    pool) neither wait for one another nor restore the limit under each other."""
    global _raised, _limit_before
    with _pil_limit_lock:
        if _raised == 0:
            _limit_before = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        _raised += 1
    try:
        yield
    finally:
        with _pil_limit_lock:
            _raised -= 1
            if _raised == 0:
                Image.MAX_IMAGE_PIXELS = _limit_before


def load_rgb(path: str | os.PathLike, min_side: int = 1) -> Image.Image:
    """Open `path` as an RGB image, raising ImageLoadError with the file name on any problem."""
    path = Path(path)
    try:
        with large_images_allowed(), Image.open(path) as img:
            img.load()
            rgb = to_rgb(img)
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: image is too large ({e})") from None
    except FileNotFoundError:
        raise ImageLoadError(f"{path}: file not found") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageLoadError(f"{path}: not a readable image ({e})") from None
    if min(rgb.size) < min_side:
        raise ImageLoadError(f"{path}: image is {rgb.size[0]}x{rgb.size[1]}, smaller than the {min_side}px minimum")
    return rgb


def to_tensor(img: Image.Image):
    """PIL RGB -> float tensor (3, H, W) in [-1, 1]."""
    import torch

    a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return a.float().div(127.5).sub(1.0)


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(w, h) resized by `scale` on both axes, as `rescale` makes it (rounded, at least 1 px each)."""
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def rescale(img: Image.Image, scale: float, resample: int = Image.BICUBIC) -> Image.Image:
    """`img` resized by `scale` on both axes (at least 1 px each)."""
    return img.resize(scaled_size(img.size, scale), resample)


def resize_square(img: Image.Image, side: int) -> Image.Image:
    """`img` as a side² image (PIL bicubic, as the reference's loader resizes), unchanged if it already is one."""
    return img if img.size == (side, side) else img.resize((side, side), Image.BICUBIC)


def fit_within(img: Image.Image, side: int, resample: int = Image.BICUBIC) -> Image.Image:
    """`img` shrunk, keeping its aspect, so its longer side is at most `side` (never enlarged)."""
    return img if max(img.size) <= side else rescale(img, side / max(img.size), resample)


def tensor_grid(t, nrow: int, pad: int = 2) -> Image.Image:
    """(N, 3, H, W) in [-1, 1] as one image, `nrow` per row, `pad` black pixels around each."""
    n, _, h, w = t.shape
    rows = -(-n // nrow)
    grid = Image.new("RGB", (nrow * (w + pad) + pad, rows * (h + pad) + pad))
    for i in range(n):
        grid.paste(to_pil(t[i]), (pad + (i % nrow) * (w + pad), pad + (i // nrow) * (h + pad)))
    return grid


def to_pil(t) -> Image.Image:
    """Float tensor (3, H, W) in [-1, 1] -> PIL RGB."""
    a = ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(a, "RGB")
