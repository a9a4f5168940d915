"""Helpers the tests import: repo paths, synthetic images and datasets, tiny run configs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
# A git checkout (or bare mirror) of taesungp/contrastive-unpaired-translation for the side-by-side
# tests: $CUTCORE_REFERENCE, else where this workspace's `fetch` puts it beside the checkout.
REFERENCE_REPO = Path(os.environ.get("CUTCORE_REFERENCE")
                      or REPO_ROOT.parent / ".mirror" / "taesungp+contrastive-unpaired-translation" / "repo")


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for `python -m cutcore ...` children: the repo importable, one thread each."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["OMP_NUM_THREADS"] = "1"
    env.pop("WORLD_SIZE", None)
    env.pop("RANK", None)
    env.update(extra)
    return env


def domain_a_image(seed: int, size: tuple[int, int] = (48, 48)) -> Image.Image:
    """Smooth blobs on a gradient: domain A."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = xx / w
    img[..., 1] = yy / h
    for _ in range(3):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 12)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(0.2, 1.0, 3)
    img = img / img.max()
    return Image.fromarray((img * 255).astype(np.uint8), "RGB")


def domain_b_image(seed: int, size: tuple[int, int] = (48, 48)) -> Image.Image:
    """Oriented stripes with noise: domain B."""
    w, h = size
    rng = np.random.default_rng(1000 + seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 0.6)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))
    colour = rng.uniform(0.3, 1.0, 3)
    img = stripes[..., None] * colour + 0.05 * rng.standard_normal((h, w, 3))
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


def make_unpaired(root: Path, n_a: int = 4, n_b: int = 3, size: tuple[int, int] = (48, 48),
                  phase: str = "train") -> Path:
    """CycleGAN layout: <root>/<phase>A/*.png, <root>/<phase>B/*.png (different counts on purpose)."""
    (root / f"{phase}A").mkdir(parents=True, exist_ok=True)
    (root / f"{phase}B").mkdir(parents=True, exist_ok=True)
    for i in range(n_a):
        domain_a_image(i, size).save(root / f"{phase}A" / f"a{i:02d}.png")
    for i in range(n_b):
        domain_b_image(i, size).save(root / f"{phase}B" / f"b{i:02d}.png")
    return root


def make_ab(root: Path, n: int = 3, size: tuple[int, int] = (40, 40), phase: str = "train") -> Path:
    """pix2pix layout: <root>/<phase>/*.png, each A|B side by side (width 2*w)."""
    (root / phase).mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(n):
        canvas = Image.new("RGB", (2 * w, h))
        canvas.paste(domain_a_image(i, size), (0, 0))
        canvas.paste(domain_b_image(i, size), (w, 0))
        canvas.save(root / phase / f"p{i:02d}.png")
    return root


def tiny_run_config(preset_name: str, root: Path, *, ngf: int = 4, ndf: int = 4, load: int = 40, crop: int = 32,
                    max_steps: int = 2, num_patches: int = 16, head_dim: int = 16, n_blocks: int = 2, seed: int = 0):
    """A preset shrunk to something that trains in well under a second per step on a CPU."""
    from cutcore.config import preset

    cfg = preset(preset_name)
    cfg.data.root = str(root)
    cfg.data.load_size, cfg.data.crop_size = load, crop
    g = cfg.model.generator
    g.ngf, g.n_blocks = ngf, n_blocks
    cfg.model.discriminator.ndf = ndf
    if cfg.model.kind == "cut":
        cfg.model.num_patches, cfg.model.head_dim = num_patches, head_dim
        # With 2 residual blocks the layer indices of the 9-block default past 12 do not exist.
        cfg.model.nce_layers = [layer for layer in cfg.model.nce_layers if layer < 12 + n_blocks]
    cfg.train.seed, cfg.train.precision = seed, "fp32"  # the same arithmetic on every CPU
    r = cfg.runtime
    r.max_steps, r.num_workers, r.device = max_steps, 0, "cpu"
    r.log_every, r.sample_every, r.save_every = 1, 10_000, 10_000
    return cfg


class ComputedDtypes:
    """The dtypes the layers of `modules` compute in, collected while inside `with` (forward hooks on
    every submodule): bf16 autocast shows as torch.bfloat16 among them, fp32 arithmetic does not."""

    def __init__(self, *modules):
        self.modules, self.seen, self.hooks = modules, set(), []

    def _record(self, module, inputs, output) -> None:
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if hasattr(t, "dtype"):
                self.seen.add(t.dtype)

    def __enter__(self) -> set:
        self.hooks = [m.register_forward_hook(self._record) for top in self.modules for m in top.modules()]
        return self.seen

    def __exit__(self, *exc) -> None:
        for h in self.hooks:
            h.remove()
