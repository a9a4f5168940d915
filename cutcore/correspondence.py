"""What PatchNCE sees: the similarity of one output patch to every input patch, per layer.

For a query location q on the translated image G(x), PatchNCE embeds the output there,
z_q = H_l(G_enc^l(G(x)))[q], and contrasts it with the embeddings of the input,
z_k = H_l(G_enc^l(x))[k]: the positive is k = q (the same place), every other location is a
negative, and the hardest negatives (the most similar other locations) are the ones PUT keeps.

`correspondence_maps` computes that per PatchNCE layer as an image-sized heatmap of cosine
similarities (`LayerMap`, `caption` says its numbers in a line); `render_overlay` draws one over
the input with the positive and the negatives marked, `mark_point` the query on the translation.
All are pure (no UI; the app's Correspondence tab lays them out) and run on CPU in well under a
second at 256 px. `model` is a `cutcore.model_folder.LoadedModel` with PatchNCE heads (or anything
with its `generator`, `heads`, `nce_layers` and `size_multiple`).

The similarities are the training loss's own (tests/test_correspondence.py checks them against
`nce_logits` on the model's heads): the same heads and L2 normalisation, and the output encoded
as the loss encodes it, unclamped (SinCUT's generator has no tanh, so G(x) can leave [-1, 1]).
A model saved from an average of G's weights (`sincut-gpu`) pairs that encoder with the heads trained
beside G, which the loss never saw together: close, as the average stays near G, not the same.
What differs is the competition: the loss shows a query a few negatives (255 other places of
the image for CUT; the same place in the 7 or 15 other crops of a batch for SinCUT), this view
every place of the image, so a handful of places can be more similar than the positive while
the positive still beats nearly all of them (`LayerMap.above`).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from .imageio import fit_within, to_pil, to_tensor
from .translate import pad_to_multiple, seeded_noise

DISPLAY_SIDE = 384  # the clickable translation and the heatmaps are shown about this large
DEFAULT_MAX_SIDE = 256  # the analysis runs on the image resized to this (layer 0 has one location per pixel)


@dataclass
class LayerMap:
    """One PatchNCE layer: iterate/unpack as (layer, heatmap, positive, negatives)."""

    layer: int
    heatmap: np.ndarray  # (H, W) float32 cosine similarity to the query, at image resolution
    positive: tuple[int, int]  # (x, y) pixel of the positive: the query's own location
    negatives: list[tuple[int, int]]  # (x, y) pixels of the k hardest negatives, hardest first
    positive_sim: float = 0.0
    negative_sims: list[float] = field(default_factory=list)
    grid: tuple[int, int] = (0, 0)  # (w, h) of the layer's feature map
    above: float = 0.0  # share of the other on-image locations less similar than the positive
    median_sim: float = 0.0  # median similarity of the other on-image locations

    def __iter__(self):
        return iter((self.layer, self.heatmap, self.positive, self.negatives))


@dataclass
class _Geometry:
    """How a feature map of size (h, w) lies over the padded input (hp, wp)."""

    h: int
    w: int
    hp: int
    wp: int

    @property
    def padded(self) -> bool:  # e.g. ResNet layer 0: the input after ReflectionPad2d(3)
        return self.h >= self.hp and self.w >= self.wp

    @property
    def offset(self) -> tuple[int, int]:
        return ((self.w - self.wp) // 2, (self.h - self.hp) // 2) if self.padded else (0, 0)

    def to_grid(self, x: float, y: float) -> tuple[int, int]:
        if self.padded:
            ox, oy = self.offset
            gx, gy = math.floor(x) + ox, math.floor(y) + oy
        else:
            gx, gy = math.floor(x * self.w / self.wp), math.floor(y * self.h / self.hp)
        return min(max(gx, 0), self.w - 1), min(max(gy, 0), self.h - 1)

    def to_pixel(self, gx: int, gy: int, width: int, height: int) -> tuple[int, int]:
        if self.padded:
            ox, oy = self.offset
            px, py = gx - ox, gy - oy
        else:
            px = int(round((gx + 0.5) * self.wp / self.w - 0.5))
            py = int(round((gy + 0.5) * self.hp / self.h - 0.5))
        return min(max(px, 0), width - 1), min(max(py, 0), height - 1)

    def inside(self, width: int, height: int) -> torch.Tensor:
        """(h, w) bool mask of locations whose centre lies on the (unpadded) image."""
        ys, xs = torch.arange(self.h), torch.arange(self.w)
        if self.padded:
            ox, oy = self.offset
            my, mx = (ys >= oy) & (ys < oy + height), (xs >= ox) & (xs < ox + width)
        else:
            my = (ys + 0.5) * self.hp / self.h < height
            mx = (xs + 0.5) * self.wp / self.w < width
        return my[:, None] & mx[None, :]

    def upsample(self, sim: torch.Tensor, width: int, height: int) -> np.ndarray:
        """(h, w) map -> (height, width) array over the image."""
        if self.padded:
            ox, oy = self.offset
            out = sim[oy : oy + height, ox : ox + width]
        else:
            out = F.interpolate(sim[None, None], size=(self.hp, self.wp), mode="bilinear", align_corners=False)[0, 0]
            out = out[:height, :width]
        return out.float().cpu().numpy().astype(np.float32)


def prepare_image(image: Image.Image, max_side: int = DEFAULT_MAX_SIDE) -> Image.Image:
    """The image in RGB, resized (keeping its aspect) so its longer side is at most `max_side`."""
    return fit_within(image.convert("RGB"), max_side)


@dataclass
class Embeddings:
    output: Image.Image  # G(image), same size as the image
    inputs: list[torch.Tensor]  # per layer (dim, h, w), L2-normalised
    outputs: list[torch.Tensor]
    padded_size: tuple[int, int]  # (hp, wp)


_cache_lock = threading.Lock()
_cache: list[tuple[object, bytes, tuple[int, int], Embeddings]] = []


@torch.no_grad()
def embeddings(model, image: Image.Image) -> Embeddings:
    """The translation and the per-layer patch embeddings of input and output (cached, 2 entries)."""
    if model.heads is None:
        raise ValueError("this model has no PatchNCE heads (CycleGAN, or a checkpoint saved without F)")
    image = image.convert("RGB")
    digest = image.tobytes()
    with _cache_lock:
        for m, d, size, emb in _cache:
            if m is model and size == image.size and d == digest:
                return emb
    g, heads = model.generator, model.heads
    device = next(g.parameters()).device
    x, _, _ = pad_to_multiple(to_tensor(image)[None].to(device), model.size_multiple)
    h, w = image.height, image.width
    with seeded_noise(g, x.device):  # SinCUT's noise as `translate` draws it: the same translation
        y = g(x).float()
    layers = list(model.nce_layers)
    emb_in, _ = heads(g.encode(x, layers), 0)
    emb_out, _ = heads(g.encode(y, layers), 0)  # unclamped, as the loss encodes G(x)
    result = Embeddings(to_pil(y[0, :, :h, :w].clamp(-1, 1)), [e[0] for e in emb_in], [e[0] for e in emb_out],
                        (x.shape[-2], x.shape[-1]))
    with _cache_lock:
        _cache.insert(0, (model, digest, image.size, result))
        del _cache[2:]
    return result


@torch.no_grad()
def correspondence_maps(model, image: Image.Image, point: tuple[float, float], k: int = 5) -> list[LayerMap]:
    """Per PatchNCE layer: cosine similarity of the output's embedding at `point` (x, y pixels of
    the translated image, which has the input's size) to the input's embedding everywhere.

    Returns one LayerMap per layer in `model.nce_layers`: the heatmap (H, W), the positive
    (the clicked location, as that layer resolves it), the k most similar other locations, and
    how the positive ranks among all other locations (`above`, `median_sim`).
    """
    emb = embeddings(model, image)
    width, height = image.size
    x, y = float(point[0]), float(point[1])
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"point {point} is outside the {width}x{height} image")
    hp, wp = emb.padded_size
    maps = []
    for layer, e_in, e_out in zip(model.nce_layers, emb.inputs, emb.outputs, strict=True):
        _, h, w = e_in.shape
        geo = _Geometry(h, w, hp, wp)
        gx, gy = geo.to_grid(x, y)
        query = e_out[:, gy, gx]
        sim = torch.einsum("c,chw->hw", query, e_in)
        # Hardest negatives: the most similar locations other than the positive, on the image itself.
        candidates = sim.masked_fill(~geo.inside(width, height).to(sim.device), float("-inf"))
        candidates[gy, gx] = float("-inf")
        others = candidates[torch.isfinite(candidates)]
        n = others.numel()
        top = torch.topk(candidates.flatten(), min(k, n)) if n else None
        negatives, neg_sims = [], []
        if top is not None:
            for value, idx in zip(top.values.tolist(), top.indices.tolist(), strict=True):
                negatives.append(geo.to_pixel(idx % w, idx // w, width, height))
                neg_sims.append(float(value))
        positive = sim[gy, gx]
        maps.append(LayerMap(int(layer), geo.upsample(sim, width, height), geo.to_pixel(gx, gy, width, height),
                             negatives, float(positive), neg_sims, (w, h),
                             float((others < positive).float().mean()) if n else 1.0,
                             float(others.median()) if n else float("nan")))
    return maps


# --- drawing ------------------------------------------------------------------------------------


def _colormap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def display_scale(image: Image.Image, side: int = DISPLAY_SIDE) -> int:
    """Integer upscale that brings a small analysis image to about `side` px for display."""
    return max(1, -(-side // max(1, max(image.size))))


def render_overlay(image: Image.Image, layer_map: LayerMap, *, alpha: float = 0.6, cmap: str = "inferno",
                   display_side: int = DISPLAY_SIDE) -> Image.Image:
    """The heatmap (min-max scaled) blended over a grayscale copy of `image`, upscaled to about
    `display_side` px, with the positive as a green ring and the negatives as numbered cyan crosses."""
    heat = layer_map.heatmap
    lo, hi = float(heat.min()), float(heat.max())
    norm = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    colours = (_colormap(cmap)(norm)[..., :3] * 255).astype(np.float32)
    gray = np.asarray(image.convert("L").convert("RGB"), dtype=np.float32)
    blended = Image.fromarray(np.clip(alpha * colours + (1 - alpha) * gray, 0, 255).astype(np.uint8), "RGB")
    s = display_scale(image, display_side)
    if s > 1:
        blended = blended.resize((image.width * s, image.height * s), Image.NEAREST)
    draw = ImageDraw.Draw(blended)
    r = max(4, round(max(blended.size) / 45))

    def centre(p: tuple[int, int]) -> tuple[float, float]:
        return (p[0] + 0.5) * s, (p[1] + 0.5) * s

    for i, p in enumerate(layer_map.negatives, 1):
        cx, cy = centre(p)
        for colour, width in (("black", 4), ("#00e5ff", 2)):
            draw.line((cx - r, cy - r, cx + r, cy + r), fill=colour, width=width)
            draw.line((cx - r, cy + r, cx + r, cy - r), fill=colour, width=width)
        draw.text((cx + r, cy - 2 * r), str(i), fill="#00e5ff", stroke_width=2, stroke_fill="black")
    cx, cy = centre(layer_map.positive)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline="black", width=5)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline="#39ff14", width=3)
    return blended


def mark_point(image: Image.Image, point: tuple[float, float], display_side: int = DISPLAY_SIDE) -> Image.Image:
    """`image` upscaled like the overlays, with a crosshair at `point` (the query)."""
    s = display_scale(image, display_side)
    out = image.convert("RGB").resize((image.width * s, image.height * s), Image.NEAREST) if s > 1 else image.copy()
    draw = ImageDraw.Draw(out)
    cx, cy = (point[0] + 0.5) * s, (point[1] + 0.5) * s
    r = max(5, round(max(out.size) / 35))
    for colour, width in (("black", 5), ("#39ff14", 2)):
        draw.line((cx - r, cy, cx + r, cy), fill=colour, width=width)
        draw.line((cx, cy - r, cx, cy + r), fill=colour, width=width)
    return out


def caption(m: LayerMap) -> str:
    d = similarity_decimals([m], 2)
    negs = ", ".join(f"{v:.{d}f}" for v in m.negative_sims)
    return (f"layer {m.layer} ({m.grid[0]}×{m.grid[1]} patches): positive {m.positive_sim:.{d}f}, above "
            f"{percent_above(m)} of the other patches (median {m.median_sim:.{d}f}); hardest negatives {negs or '—'}")


def similarity_decimals(maps: Sequence[LayerMap], least: int, most: int = 5) -> int:
    """Decimals (from `least` to `most`) at which every positive prints unlike its negatives that differ from it:
    near 1.0 a trained model's positive and hardest negatives all read "1.000" at three."""
    for d in range(least, most):
        if all(f"{m.positive_sim:.{d}f}" != f"{v:.{d}f}" for m in maps for v in m.negative_sims if v != m.positive_sim):
            return d
    return most


def percent_above(m: LayerMap) -> str:
    """`m.above` as a percentage that never rounds a miss up to 100% (or a win down to 0%)."""
    p = 100 * m.above
    if 0 < m.above < 1:
        p = min(max(p, 0.1), 99.9)
    return f"{p:.1f}%"
