"""Dataset folders: the CycleGAN layout (`trainA/` + `trainB/`, `testA/` + `testB/`) or pix2pix's side-by-side AB
images (`train/`), as image sources that decode when loaded. What training, evaluation and export read."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image

from .imageio import ImageLoadError, large_images_allowed, list_images, load_rgb

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
        with large_images_allowed():  # Image.crop checks PIL's bomb limit too
            return img.crop((0, 0, w // 2, h) if self.half == "left" else (w - w // 2, 0, w, h))


def _layout(root: Path, phase: str) -> Literal["cyclegan", "pix2pix"] | None:
    """Which layout holds `phase` under `root`: `<phase>A/` + `<phase>B/`, `<phase>/` of AB files, or neither."""
    if (root / f"{phase}A").is_dir() and (root / f"{phase}B").is_dir():
        return "cyclegan"
    return "pix2pix" if (root / phase).is_dir() else None


def has_phase(root: str | Path, phase: str) -> bool:
    """Whether `root` holds `phase` in a layout `domain_sources` reads."""
    return _layout(Path(root), phase) is not None


def domain_sources(root: str | Path, phase: str = "train") -> tuple[list[ImageSource], list[ImageSource]]:
    """Images of domains A and B under `root`: `<phase>A/` + `<phase>B/`, or `<phase>/` of AB files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    layout = _layout(root, phase)
    if layout == "cyclegan":
        a = [ImageSource(p) for p in list_images(root / f"{phase}A")]
        b = [ImageSource(p) for p in list_images(root / f"{phase}B")]
    elif layout == "pix2pix":
        files = list_images(root / phase)
        a, b = [ImageSource(p, "left") for p in files], [ImageSource(p, "right") for p in files]
    else:
        raise FileNotFoundError(
            f"{root}: expected {phase}A/ and {phase}B/ folders (CycleGAN layout) or a {phase}/ folder of side-by-side "
            "AB images"
        )
    if not a or not b:
        raise FileNotFoundError(f"{root}: no images found for phase {phase!r} (A: {len(a)}, B: {len(b)})")
    return a, b


def paired_sources(root: str | Path, phase: str = "test") -> list[tuple[ImageSource, ImageSource]]:
    """Aligned (A, B) pairs: same file name in `<phase>A/` and `<phase>B/`, or AB files."""
    a, b = domain_sources(root, phase)
    if a[0].half != "full":
        return list(zip(a, b, strict=True))  # the halves of the same files
    by_name = {s.path.name: s for s in b}
    pairs = [(s, by_name[s.path.name]) for s in a if s.path.name in by_name]
    if not pairs:
        raise FileNotFoundError(f"{root}: no file names shared by {phase}A/ and {phase}B/")
    return pairs


def input_sides(sources: Sequence[ImageSource], n: int = 8) -> set[int]:
    """The longer sides of the first `n` input images: what a model's inference scale is measured on
    (one side: new inputs are resized as training resized these; several: translated as they are)."""
    return {max(src.load().size) for src in sources[:n]}
