"""Helpers the tests import: repo paths, synthetic images and datasets, tiny run configs."""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
# A git checkout (or bare mirror) of taesungp/contrastive-unpaired-translation for the side-by-side
# tests: $CUTCORE_REFERENCE, else where this workspace's `fetch` puts it beside the checkout.
REFERENCE_REPO = Path(os.environ.get("CUTCORE_REFERENCE")
                      or REPO_ROOT.parent / ".mirror" / "taesungp+contrastive-unpaired-translation" / "repo")


def reference_file(path: str) -> str:
    """Text of a file of the reference at HEAD (CalledProcessError/FileNotFoundError without a mirror)."""
    return subprocess.run(["git", "-C", str(REFERENCE_REPO), "show", f"HEAD:{path}"], check=True,
                          capture_output=True, text=True).stdout


def import_reference_networks(folder: Path):
    """The reference's `models/networks.py` (and `stylegan_networks.py` beside it), written into `folder` as
    the package `cut_reference_models` and imported from there: its own imports resolve, nothing else of it runs."""
    name = "cut_reference_models"
    pkg = folder / name
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    for module in ("networks", "stylegan_networks"):
        (pkg / f"{module}.py").write_text(reference_file(f"models/{module}.py"))
    spec = importlib.util.spec_from_file_location(name, pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return importlib.import_module(f"{name}.networks")


# What the reference's networks computed for small networks with fixed weights (tests/reference_outputs.py).
REFERENCE_OUTPUTS = REPO_ROOT / "tests" / "data" / "reference_outputs.safetensors"


def reference_case_network(case: str):
    """Our side of `case` in REFERENCE_OUTPUTS, freshly built (the weights come from the file)."""
    import torch

    from cutcore.nets.heads import PatchProjector
    from cutcore.nets.patchgan import PatchGANConfig, PatchGANDiscriminator
    from cutcore.nets.resnet import ResnetGenerator, ResnetGeneratorConfig
    from cutcore.nets.stylegan2 import (
        StyleGAN2Discriminator,
        StyleGAN2DiscriminatorConfig,
        StyleGAN2Generator,
        StyleGAN2GeneratorConfig,
    )

    kind, _, variant = case.partition("_")
    aa = variant == "aa"
    if kind == "resnet":
        return ResnetGenerator(ResnetGeneratorConfig(ngf=4, n_blocks=3, antialias_down=aa, antialias_up=aa))
    if kind == "patchgan":
        return PatchGANDiscriminator(PatchGANConfig(ndf=4, antialias=aa))
    if case == "projector":
        return PatchProjector.for_features([torch.zeros(1, 3, 1, 1), torch.zeros(1, 8, 1, 1)], dim=16)
    if case == "stylegan_g":
        return StyleGAN2Generator(StyleGAN2GeneratorConfig(ngf=1))
    if case == "stylegan_d":
        return StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(ndf=1))
    raise KeyError(case)


def reference_stylegan2_pair(ngf: int, ndf: int) -> tuple:
    """The reference's SinCUT G and D for 64² crops (built under seed 0) and ours of the same widths holding
    their weights, the decoder's injected noise weighted 0.5 on both sides: (ref_g, ref_d, g, d). Needs the
    reference imported (`import_reference_networks`) and its `.cuda()` kept on the CPU by the caller."""
    from types import SimpleNamespace

    import torch

    from cutcore.nets.stylegan2 import (
        StyleGAN2Discriminator,
        StyleGAN2DiscriminatorConfig,
        StyleGAN2Generator,
        StyleGAN2GeneratorConfig,
    )

    sg = sys.modules["cut_reference_models.stylegan_networks"]
    opt = SimpleNamespace(load_size=1024, crop_size=64, stylegan2_G_num_downsampling=1, netG="stylegan2",
                          netD="stylegan2", D_patch_size=None)
    torch.manual_seed(0)
    ref_g, ref_d = sg.StyleGAN2Generator(3, 3, ngf, opt=opt), sg.StyleGAN2Discriminator(3, ndf, opt=opt)
    g = StyleGAN2Generator(StyleGAN2GeneratorConfig(ngf=ngf))
    d = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(ndf=ndf))
    with torch.no_grad():
        # The same parameters under other names: copied in order, shapes flattened.
        for src, dst in ((ref_g, g), (ref_d, d)):
            for a, b in zip(src.parameters(), dst.parameters(), strict=True):
                b.copy_(a.view_as(b))
        for noise in (ref_g.decoder.convs[3].noise, g.decoder[3].noise):
            noise.weight.fill_(0.5)
    return ref_g, ref_d, g, d


def reference_case(case: str):
    """Our network of `case` with the case's weights loaded (strict), and the case's inputs and reference outputs."""
    from safetensors.torch import load_file

    stored = load_file(str(REFERENCE_OUTPUTS))
    net = reference_case_network(case)
    prefix = f"{case}.w."
    net.load_state_dict({k[len(prefix):]: v for k, v in stored.items() if k.startswith(prefix)}, strict=True)
    return net.eval(), {k[len(case) + 1:]: v for k, v in stored.items() if k.startswith(f"{case}.") and
                        not k.startswith(prefix)}


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
