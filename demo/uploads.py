"""Uploads in the demo: every bad file becomes one short, readable sentence (a UserError).

The app uploads through `gr.File` (not `gr.Image`), so no byte of a user's file is decoded by
Gradio: this module does the decoding, with limits suited to a shared CPU server.

    img = open_upload(path)            # -> Upload(image=RGB PIL image, name, notes)
    ...                                # UserError(message) on anything unusable
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from cutcore.imageio import MAX_PIXELS, to_rgb

from .errors import UserError
from .settings import env_int

# Set once for the process (the app's own), not per upload: warnings.catch_warnings() is not thread-safe, and
# uploads are decoded concurrently. Any image large enough to warn is refused by open_upload's size check anyway;
# PIL's own refusal (twice the limit) comes only above the largest upload CUTCORE_DEMO_MAX_PIXELS may allow.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# Defaults for the demo (a shared CPU server), overridable by environment variables.
DEFAULT_MAX_PIXELS = 40_000_000  # ~6300 x 6300: a few minutes tiled on two cores
DEFAULT_MIN_SIDE = 16


def max_pixels() -> int:
    return min(env_int("CUTCORE_DEMO_MAX_PIXELS", DEFAULT_MAX_PIXELS), MAX_PIXELS)


def min_side() -> int:
    return env_int("CUTCORE_DEMO_MIN_SIDE", DEFAULT_MIN_SIDE)


@dataclass
class Upload:
    image: Image.Image  # 8-bit RGB
    name: str  # the file's name as uploaded (no server path)
    path: Path  # where the server keeps it
    notes: list[str] = field(default_factory=list)  # conversions made, e.g. "16-bit grayscale → 8-bit RGB"

    @property
    def summary(self) -> str:
        w, h = self.image.size
        text = f"**{self.name}**: {w}×{h} px"
        return text + (f" ({'; '.join(self.notes)})" if self.notes else "")


_MODE_NOTES = {
    "1": "1-bit black and white → RGB",
    "L": "grayscale → RGB",
    "LA": "grayscale with transparency → RGB on white",
    "P": "palette image → RGB",
    "PA": "palette image with transparency → RGB on white",
    "RGBA": "transparency flattened onto white",
    "CMYK": "CMYK → RGB",
    "YCbCr": "YCbCr → RGB",
    "LAB": "Lab → RGB",
    "HSV": "HSV → RGB",
    "I;16": "16-bit grayscale scaled to 8-bit RGB",
    "I;16B": "16-bit grayscale scaled to 8-bit RGB",
    "I;16L": "16-bit grayscale scaled to 8-bit RGB",
    "I": "32-bit integer image scaled to 8-bit RGB",
    "F": "floating-point image scaled to 8-bit RGB",
}


def _path_of(file: Any) -> str | None:
    """A path from whatever Gradio hands over: str, NamedString, FileData-like dict, or None."""
    if file is None:
        return None
    if isinstance(file, dict):
        return file.get("path") or file.get("name")
    return str(getattr(file, "path", None) or file)


def upload_name(file: Any) -> str:
    """The uploaded file's name ("" for none), without decoding it."""
    path = _path_of(file)
    return Path(path).name if path else ""


def open_upload(file: Any, what: str = "an image") -> Upload:
    """Decode an uploaded file to RGB, or raise UserError saying what is wrong with it."""
    path_str = _path_of(file)
    if not path_str:
        raise UserError(f"Please upload {what} first.")
    path = Path(path_str)
    name = path.name
    max_px, min_px = max_pixels(), min_side()
    if not path.is_file():
        raise UserError(f"“{name}” is no longer on the server (uploads expire); please upload it again.")
    if path.stat().st_size == 0:
        raise UserError(f"“{name}” is empty (0 bytes).")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_px:
                raise UserError(
                    f"“{name}” is {w}×{h} px ({w * h / 1e6:.0f} megapixels); this demo accepts up to "
                    f"{max_px / 1e6:.0f} megapixels. Downscale it, or translate it with the command line "
                    "(`python -m cutcore translate --tile 512 ...`)."
                )
            if min(w, h) < min_px:
                raise UserError(f"“{name}” is only {w}×{h} px; images need at least {min_px} px on each side.")
            mode, frames = img.mode, getattr(img, "n_frames", 1)
            img.load()
            rgb = to_rgb(img)
    except UserError:
        raise
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else f"over {2 * MAX_PIXELS / 1e6:.0f} megapixels"
        raise UserError(
            f"“{name}” claims to be {size}: refused as a possible decompression bomb (this demo accepts up to "
            f"{max_px / 1e6:.0f} megapixels)."
        ) from None
    except UnidentifiedImageError:
        raise UserError(
            f"“{name}” is not an image this app can read. Upload a PNG, JPEG, TIFF, WebP or BMP file."
        ) from None
    except MemoryError:
        raise UserError(f"“{name}” is too large to decode on this server.") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        reason = "it is truncated" if "truncated" in str(e).lower() else "it is corrupt or truncated"
        raise UserError(f"“{name}” could not be decoded: {reason}.") from None
    notes = []
    if mode in _MODE_NOTES:
        notes.append(_MODE_NOTES[mode])
    if frames > 1:
        notes.append(f"first of {frames} frames used")
    return Upload(rgb, name, path, notes)


def checked_upload(file: Any) -> tuple[Upload | None, str]:
    """A file as it arrives in an upload box: (the upload, ""); for an unusable one a toast saying why and
    (None, "⚠️ why"); (None, "") for none."""
    if file is None:
        return None, ""
    try:
        return open_upload(file, "an image"), ""
    except UserError as e:
        import gradio as gr

        gr.Warning(str(e), title="Unusable file")
        return None, f"⚠️ {e}"
