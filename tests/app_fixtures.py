"""Helpers for the app tests: tiny model folders, bad image files, an app server on a free port.

Nothing here is committed data: every image and model is generated into a temp folder.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_model(folder: Path, preset: str = "cut", *, seed: int = 0, metrics: dict | None = None,
               source: str | None = None, card: str | None = None, domains=None) -> Path:
    """A tiny but complete model folder (model.safetensors + config.json + README.md [+ metrics.json]),
    written by the library's one model-folder writer, without training (seconds -> milliseconds)."""
    import torch
    from torch import nn

    from cutcore.checkpoint import module_state
    from cutcore.config import preset as make_preset
    from cutcore.model_folder import write_model_folder
    from cutcore.models import build_model
    from cutcore.saved_config import SavedModelConfig

    cfg = make_preset(preset)
    g = cfg.model.generator
    g.ngf, g.n_blocks = 4, 2
    cfg.model.discriminator.ndf = 4
    if hasattr(cfg.model, "nce_layers"):  # CUT family only (CycleGAN's config has no PatchNCE settings)
        cfg.model.num_patches, cfg.model.head_dim = 16, 16
        cfg.model.nce_layers = [layer for layer in cfg.model.nce_layers if layer < 14]
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    for p in model.parameters():  # more contrast than the default init: outputs that differ visibly
        nn.init.normal_(p, 0, 0.2)
    card = card if card is not None else f"---\ntags: [test]\n---\n# {folder.name}\n\nTiny test model.\n"
    write_model_folder(folder, module_state(model.inference_modules()),
                       SavedModelConfig(cfg, source=source or "", domains=domains), card)
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps({"metrics": metrics, "preset": preset}))
    return folder


def satellite_like(size: tuple[int, int] = (96, 64), seed: int = 0) -> Image.Image:
    """Smooth blobs on a gradient (a stand-in for an aerial photo)."""
    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0], img[..., 1] = xx / w, yy / h
    for _ in range(4):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, max(6, min(w, h) / 4))
        img += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None] * rng.uniform(0.2, 1.0, 3)
    img /= img.max()
    return Image.fromarray((img * 255).astype(np.uint8), "RGB")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims width x height (a gigapixel claim costs no memory here)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))
    return path


def bad_files(folder: Path) -> dict[str, Path]:
    """One file per bad-input case, named by case."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["text"] = folder / "notes.txt"
    files["text"].write_text("this is not an image\n")
    files["fake_png"] = folder / "fake.png"
    files["fake_png"].write_bytes(b"GIF89a but not really" * 10)
    files["empty"] = folder / "empty.png"
    files["empty"].write_bytes(b"")
    good = folder / "_good.png"
    satellite_like((128, 128), 3).save(good)
    data = good.read_bytes()
    files["truncated"] = folder / "truncated.png"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["tiny"] = folder / "one_pixel.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(files["tiny"])
    files["gigapixel"] = png_header_only(folder / "gigapixel.png", 40_000, 30_000)  # 1.2 GP header
    files["too_large"] = png_header_only(folder / "too_large.png", 9_000, 9_000)  # 81 MP: over the demo limit
    # A real decompression bomb: 81 MP of zeros compressed to well under a megabyte.
    files["bomb"] = folder / "bomb.png"
    Image.new("1", (9_000, 9_000)).save(files["bomb"], optimize=True)
    good.unlink()
    return files


def odd_mode_files(folder: Path) -> dict[str, Path]:
    """Valid images in modes that must be converted: grayscale, RGBA, 16-bit, palette, CMYK."""
    folder.mkdir(parents=True, exist_ok=True)
    base = satellite_like((64, 48), 5)
    files = {}
    files["gray"] = folder / "gray.png"
    base.convert("L").save(files["gray"])
    files["rgba"] = folder / "rgba.png"
    rgba = base.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(files["rgba"])
    files["gray16"] = folder / "gray16.png"
    a16 = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(a16).save(files["gray16"])
    files["palette"] = folder / "palette.gif"
    base.convert("P").save(files["palette"])
    files["cmyk"] = folder / "cmyk.jpg"
    base.convert("CMYK").save(files["cmyk"])
    return files


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env_extra: dict[str, str], log_path: Path, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """`python app.py` on 127.0.0.1:<free port>; returns (process, url) once it answers."""
    port = free_port()
    env = dict(os.environ)
    env.update({"GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
                "HF_HUB_OFFLINE": "1", "CUTCORE_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(env_extra)
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "app.py")], cwd=str(REPO_ROOT), env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"the app did not answer within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
