"""SinCUT: StyleGAN2 nets, R1 / identity terms, zoom-and-patch sampling, live trainer, export."""

from __future__ import annotations

import gc
import json
import math
import os
import queue
import re
import signal
import threading
import time
import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import SHARED, ComputedDtypes, domain_a_image, domain_b_image, reference_case, reference_stylegan2_pair
from PIL import Image

from cutcore.imageio import ImageLoadError, to_pil
from cutcore.metrics.style import YARDSTICKS
from cutcore.model_folder import load_model
from cutcore.nets.stylegan2 import (
    StyleGAN2Discriminator,
    StyleGAN2DiscriminatorConfig,
    StyleGAN2Generator,
    StyleGAN2GeneratorConfig,
)
from cutcore.sincut import sincut_preset
from cutcore.sincut.config import trained_for
from cutcore.sincut.data import ZoomPatchSampler
from cutcore.sincut.live import LiveTrainer, TrainEvent
from cutcore.sincut.model import SinCUTModel, identity_loss, r1_penalty
from cutcore.translate import seeded_noise, translate_image
from cutcore.translate import translate_with as translate

MONET_ETRETAT = SHARED / "data" / "single_image" / "monet_etretat"


def tiny_config(iters_per_epoch: int = 4, epochs: int = 1, epochs_decay: int = 1, crop: int = 16, batch: int = 4):
    """The paper preset shrunk to milliseconds per step (same losses and layer indices)."""
    cfg = sincut_preset("sincut")
    cfg.model.generator = StyleGAN2GeneratorConfig(ngf=2)  # 16 / 32 channels
    cfg.model.discriminator = StyleGAN2DiscriminatorConfig(ndf=2, size=crop)
    cfg.model.head_dim = 32
    cfg.data.crop_size = crop
    t = cfg.train
    t.batch_size, t.iters_per_epoch, t.epochs, t.epochs_decay = batch, iters_per_epoch, epochs, epochs_decay
    return cfg


def gradient_image(w: int, h: int) -> Image.Image:
    """Pixel (x, y) = (x mod 256, y mod 256, 0): crops reveal where they came from."""
    yy, xx = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([xx % 256, yy % 256, np.zeros_like(xx)], -1).astype(np.uint8), "RGB")


# --- networks ---------------------------------------------------------------------------------------


def test_generator_shapes_and_paper_layers():
    g = StyleGAN2Generator()  # ngf 10: 80 channels at full, 160 at half resolution
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        y, feats = g(x, [0, 2, 4])
        assert y.shape == x.shape
        assert [tuple(f.shape) for f in feats] == [(2, 3, 64, 64), (2, 160, 32, 32), (2, 160, 32, 32)]
        assert torch.equal(feats[0], x)  # layer 0 is the identity: PatchNCE on raw pixels
        assert g.layer_channels([1, 2, 5]) == [80, 160, 160]
        assert len(g.encoder) == 6  # identity, 1x1 conv, down block, 3 residual blocks
    assert g.size_multiple == 2
    assert sum(p.numel() for p in g.parameters()) == 3_068_404  # the reference's count at ngf 10


def test_encode_matches_forward_and_stops_after_the_deepest_layer():
    torch.manual_seed(0)
    g = StyleGAN2Generator(StyleGAN2GeneratorConfig(ngf=4))
    called = []
    for i, layer in enumerate(g.encoder):
        layer.register_forward_hook(lambda *_, i=i: called.append(i))
    x = torch.randn(1, 3, 32, 48)  # not square
    with torch.no_grad():
        feats = g.encode(x, [4, 0, 2])
        assert called == [0, 1, 2, 3, 4]
        _, ref = g(x, [0, 2, 4])
    assert [f.shape[1] for f in feats] == [ref[2].shape[1], 3, ref[1].shape[1]]  # order as requested
    torch.testing.assert_close(feats[0], ref[2])
    torch.testing.assert_close(feats[2], ref[1])
    with torch.no_grad():
        assert torch.is_tensor(g(x)) and g(x).shape == x.shape


@pytest.mark.parametrize("n_down", [1, 2])
def test_encode_window_is_exact(n_down):
    torch.manual_seed(0)
    g = StyleGAN2Generator(StyleGAN2GeneratorConfig(ngf=2, n_downsampling=n_down, n_blocks=4))
    x = torch.randn(1, 3, 32, 48)
    rnd = np.random.default_rng(0)
    with torch.no_grad():
        full = g.encode(x, list(range(len(g.encoder))))
        for _ in range(12):
            layer = int(rnd.integers(len(g.encoder)))
            h, w = full[layer].shape[-2:]
            r0, c0 = int(rnd.integers(h)), int(rnd.integers(w))  # includes boxes on the border
            rows, cols = (r0, min(h, r0 + int(rnd.integers(1, 4)))), (c0, min(w, c0 + int(rnd.integers(1, 4))))
            torch.testing.assert_close(
                g.encode_window(x, layer, rows, cols),
                full[layer][:, :, rows[0] : rows[1], cols[0] : cols[1]],
                rtol=1e-5,
                atol=1e-5,
            )
    y0, y1, x0, x1 = StyleGAN2Generator().input_window(4, (10, 11), (0, 1), (64, 64))
    assert (y0, y1, x0, x1) == (8, 34, 0, 14)  # layer 4 of the paper G: a 26-pixel receptive field


@pytest.mark.parametrize("num_patches", [1, 48])
def test_windowed_queries_give_the_full_encoders_loss_and_gradients(num_patches):
    from cutcore.losses import patch_nce_loss

    cfg = tiny_config(crop=32)
    cfg.model.num_patches = num_patches  # 48: the windows would cover the crop, so the full path runs
    torch.manual_seed(0)
    model = SinCUTModel(cfg.model)
    fake = model.G(torch.rand(4, 3, 32, 32) * 2 - 1)
    keys = [f.detach() for f in model.G.encode(torch.rand(4, 3, 32, 32) * 2 - 1, [0, 2, 4])]
    params = list(model.G.parameters()) + list(model.F.parameters())
    loss = model.nce_loss(keys, fake, torch.Generator().manual_seed(3))
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    with torch.no_grad():
        k, ids = model.F(keys, num_patches, generator=torch.Generator().manual_seed(3))
    q, _ = model.F(model.G.encode(fake, [0, 2, 4]), num_patches, ids)
    ref = torch.stack([patch_nce_loss(a, b, 4, cfg.model.nce).mean() for a, b in zip(q, k, strict=True)]).mean() * 4.0
    ref_grads = torch.autograd.grad(ref, params, allow_unused=True)
    torch.testing.assert_close(loss, ref)
    for a, b in zip(grads, ref_grads, strict=True):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_discriminator_tiles_crops_and_checks_sizes():
    torch.manual_seed(0)
    d_tile = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(ndf=4, size=16, tile=True))
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        out = d_tile(x)
        assert out.shape == (2 * 2 * 3, 1)
        # Tile (row 1, column 2) of crop 1 is scored on its own.
        torch.testing.assert_close(out[6 + 1 * 3 + 2], d_tile(x[1:, :, 16:32, 32:48])[0])
    d = StyleGAN2Discriminator(StyleGAN2DiscriminatorConfig(ndf=4, size=16))
    with pytest.raises(ValueError, match="enable tiling"):
        d(x)
    with pytest.raises(ValueError, match="tiles"):
        d_tile(torch.randn(1, 3, 24, 24))
    assert StyleGAN2Discriminator().final_linear[0].weight.shape == (384, 384 * 16)  # ndf 8 at 64²


def test_networks_match_the_reference(reference_networks, monkeypatch):
    # The reference builds its all-ones style with `.cuda()`; keep it on the CPU.
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *a, **k: self)
    ref_g, ref_d, g, d = reference_stylegan2_pair(ngf=10, ndf=8)  # the paper's widths: our defaults
    assert g.cfg == StyleGAN2GeneratorConfig() and d.cfg == StyleGAN2DiscriminatorConfig()
    with torch.no_grad():
        x = torch.rand(2, 3, 64, 64) * 2 - 1
        torch.manual_seed(1)
        y_ref, f_ref = ref_g(x, [0, 2, 4])
        torch.manual_seed(1)
        y, f = g(x, [0, 2, 4])
        torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
        for a, b in zip(f, f_ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(d(x), ref_d(x), rtol=1e-4, atol=1e-5)


def test_networks_compute_what_the_reference_computed():
    """Narrow (ngf 1, ndf 1) G and D with the reference's weights: its outputs, stored (tests/data), so that this
    runs where the reference is absent, as in CI; the decoder's injected noise drawn as the reference draws it."""
    g, io = reference_case("stylegan_g")
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        if not torch.equal(torch.empty_like(io["noise"]).normal_(), io["noise"]):
            pytest.fail("this torch draws other random numbers for seed 1 than the stored case's: regenerate "
                        "tests/data/reference_outputs.safetensors (python tests/reference_outputs.py)")
        torch.manual_seed(1)
        y, feats = g(io["x"], [0, 2, 4])
    torch.testing.assert_close(y, io["y"], rtol=1e-4, atol=1e-4)
    for i, f in enumerate(feats):
        torch.testing.assert_close(f, io[f"feat{i}"], rtol=1e-4, atol=1e-4)
    d, io = reference_case("stylegan_d")
    with torch.no_grad():
        torch.testing.assert_close(d(io["x"]), io["y"], rtol=1e-4, atol=1e-4)


# --- loss terms ---------------------------------------------------------------------------------------


def test_r1_penalty_hand_checked():
    # D(x) = <w, x> per sample: grad_x = w, so R1 = 0.5 * lambda * |w|², whatever x is.
    w = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    x = torch.randn(4, 3, requires_grad=True)
    pen = r1_penalty(x @ w, x, weight=2.0)
    assert pen.item() == pytest.approx(0.5 * 2.0 * 14.0)
    (gw,) = torch.autograd.grad(pen, w)  # differentiable w.r.t. D's weights (create_graph)
    torch.testing.assert_close(gw, 2.0 * w.detach())
    # D(x) = sum(x²): grad = 2x; per-sample squared norms averaged over the batch.
    x = torch.tensor([[1.0, 2.0], [0.0, 3.0]], requires_grad=True)
    pen = r1_penalty((x**2).sum(1, keepdim=True), x, weight=1.0)
    assert pen.item() == pytest.approx(0.5 * (4 * 5 + 4 * 9) / 2)


def test_identity_loss_hand_checked():
    real = torch.zeros(1, 3, 2, 2)
    idt = torch.full((1, 3, 2, 2), 0.5)
    idt[0, 0, 0, 0] = -1.5
    assert identity_loss(idt, real, 1.0).item() == pytest.approx((11 * 0.5 + 1.5) / 12)
    assert identity_loss(idt, real, 3.0).item() == pytest.approx(3 * (11 * 0.5 + 1.5) / 12)


def test_train_step_losses_add_up_and_only_real_images_get_r1():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = SinCUTModel(cfg.model)
    model.configure_training(cfg.train.lr, cfg.train.beta1, cfg.train.beta2)
    seen = []
    orig = model.D.forward
    model.D.forward = lambda x: (seen.append(x.requires_grad), orig(x))[1]
    a, b = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    logs = {k: float(v) for k, v in model.train_step(a, b, torch.Generator().manual_seed(0)).items()}
    assert set(logs) == {"D", "D_fake", "D_real", "D_R1", "G", "G_GAN", "NCE", "NCE_Y", "idt"}
    assert logs["D"] == pytest.approx(0.5 * (logs["D_fake"] + logs["D_real"]) + logs["D_R1"], rel=1e-5)
    assert logs["G"] == pytest.approx(logs["G_GAN"] + 0.5 * (logs["NCE"] + logs["NCE_Y"]) + logs["idt"], rel=1e-5)
    # D sees: detached fake (no grad), real with grad for R1, fake with grad for G's GAN term.
    assert seen == [False, True, True]
    assert not b.requires_grad


def test_lr_schedule_is_the_reference_per_epoch_linear_policy():
    t = sincut_preset("sincut").train
    assert t.total_iters == 100_000
    assert t.lr_at(0) == t.lr_at(8 * 6250 - 1) == pytest.approx(0.002)
    assert t.lr_at(8 * 6250) == pytest.approx(0.002 * 8 / 9)
    assert t.lr_at(100_000 - 1) == pytest.approx(0.002 / 9)


def test_gpu_preset_paper_networks_nce_weight_1_on_512px_images_for_680_iterations():
    paper, gpu = sincut_preset("sincut"), sincut_preset("sincut-gpu")
    assert gpu.preset == "sincut-gpu"
    # The paper's networks, losses and crops; only the NCE weight (4 -> 1) and the working size differ.
    assert replace(gpu.model, lambda_nce=paper.model.lambda_nce) == paper.model
    assert (gpu.model.lambda_nce, paper.model.lambda_nce) == (1.0, 4.0)
    assert replace(gpu.data, max_side=None) == paper.data and gpu.data.max_side == 512  # 16 crops of 64²
    t = gpu.train
    assert (t.batch_size, t.lr, t.beta1, t.beta2) == (16, 0.002, 0.0, 0.99)
    # The paper's shape, half constant and half linear decay, stepped every iteration as `sincut --iters` lays it.
    assert (t.iters_per_epoch, t.epochs, t.epochs_decay, t.total_iters) == (1, 340, 340, 680)
    longer = replace(gpu, train=replace(t, iters_per_epoch=85, epochs=8, epochs_decay=8))  # sessions 11-17's
    assert trained_for(longer, 680) == gpu  # `sincut --iters 680` on it: what docs/sincut.md measured
    assert t.lr_at(339) == pytest.approx(0.002) and t.lr_at(340) == pytest.approx(0.002 * 340 / 341)
    assert t.lr_at(679) == pytest.approx(0.002 / 341)
    assert t.time_budget_s is None
    # Previews and the model from G's weight average; the paper and the CPU preset use G itself.
    cpu = sincut_preset("sincut-cpu")
    assert (t.ema_half_life, paper.train.ema_half_life, cpu.train.ema_half_life) == (100, None, None)
    gpu.validate()


def test_cpu_preset_narrow_paper_nets_on_512px_images_for_450_iterations():
    paper, cpu = sincut_preset("sincut"), sincut_preset("sincut-cpu")
    assert cpu.preset == "sincut-cpu"
    # The paper's losses and layers; only widths and the D's input size shrink.
    assert replace(cpu.model, generator=paper.model.generator, discriminator=paper.model.discriminator) == paper.model
    assert (cpu.model.generator.ngf, cpu.model.discriminator.size) == (6, 32)
    assert (cpu.data.crop_size, cpu.data.max_side, cpu.data.scale_min) == (32, 512, paper.data.scale_min)
    assert paper.data.max_side is None  # the paper works on the images as given
    t = cpu.train
    assert (t.batch_size, t.lr, t.beta1, t.beta2) == (8, 0.002, 0.0, 0.99)
    assert (t.iters_per_epoch, t.epochs, t.epochs_decay, t.total_iters) == (25, 9, 9, 450)
    assert t.time_budget_s == 285 and paper.train.time_budget_s is None  # the 5 minutes hold on slower CPUs
    assert t.lr_at(9 * 25 - 1) == pytest.approx(0.002) and t.lr_at(449) == pytest.approx(0.0002)
    cpu.validate()
    cpu.data.max_side = 16
    with pytest.raises(ValueError, match="max_side"):
        cpu.validate()


# --- zoom-and-patch sampling -----------------------------------------------------------------------------


def test_zoom_and_patch_statistics():
    img = gradient_image(300, 240)
    s = ZoomPatchSampler(img, crop_size=32, batch_size=8, scale_min=1 / 3, seed=0)
    zw, zh, flips = [], [], []
    for _ in range(400):
        p = s.plan()
        w, h = p.size
        zw.append(w / 300)
        zh.append(h / 240)
        flips += p.flips
        assert all(0 <= x and x + 32 <= w and 0 <= y and y + 32 <= h for x, y in p.corners)
        # Grid offsets are below one crop, so (x // crop, y // crop) is the cell: all distinct.
        assert len({(x // 32, y // 32) for x, y in p.corners}) == min(8, (w // 32) * (h // 32))
    zw, zh = np.array(zw), np.array(zh)
    for z in (zw, zh):
        assert z.min() >= 1 / 3 - 0.01 and z.max() <= 1.0
        assert z.min() < 0.36 and z.max() > 0.97  # covers the range ...
        assert abs(z.mean() - 2 / 3) < 0.03  # ... uniformly
    assert abs(np.corrcoef(zw, zh)[0, 1]) < 0.15  # width and height factors are independent
    assert 0.45 < np.mean(flips) < 0.55


def test_zoom_and_patch_crops_are_cut_from_the_zoomed_image():
    img = gradient_image(200, 120)
    s = ZoomPatchSampler(img, crop_size=16, batch_size=6, scale_min=1.0, seed=3)  # no zoom: exact pixels
    p = s.plan()
    assert p.size == (200, 120)
    p.flips = [False, True] * 3
    batch = s.render(p)
    assert batch.shape == (6, 3, 16, 16) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    px = ((batch + 1) * 127.5).round().to(torch.int64)
    for i, ((x, y), flip) in enumerate(zip(p.corners, p.flips, strict=True)):
        xs = torch.arange(x, x + 16).flip(0) if flip else torch.arange(x, x + 16)
        assert torch.equal(px[i, 0, 0], xs % 256)
        assert torch.equal(px[i, 1, :, 0], torch.arange(y, y + 16) % 256)


def test_zoom_never_goes_below_the_crop_size():
    s = ZoomPatchSampler(gradient_image(40, 36), crop_size=32, batch_size=4, scale_min=0.1, seed=0)
    for _ in range(50):
        w, h = s.plan().size
        assert w >= 32 and h >= 32
    assert s.sample().shape == (4, 3, 32, 32)


def test_bad_inputs_name_the_file(tmp_path):
    small = tmp_path / "tiny.png"
    gradient_image(20, 50).save(small)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    good = tmp_path / "good.png"
    domain_b_image(0, (64, 64)).save(good)
    cfg = tiny_config(crop=32)
    with pytest.raises(ImageLoadError, match="tiny.png.*20×50.*32×32"):
        LiveTrainer(small, good, cfg, device="cpu")
    with pytest.raises(ImageLoadError, match="broken.jpg"):
        LiveTrainer(good, broken, cfg, device="cpu")
    with pytest.raises(ImageLoadError, match="missing.png"):
        LiveTrainer(tmp_path / "missing.png", good, cfg, device="cpu")
    with pytest.raises(ValueError, match="crop_size"):
        LiveTrainer(good, good, replace(cfg, data=replace(cfg.data, crop_size=24)), device="cpu")


# --- live trainer -----------------------------------------------------------------------------------------


def _drain(q: queue.Queue) -> list[TrainEvent]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_live_trainer_start_stop_resume_export(tmp_path):
    content, style = domain_a_image(0, (72, 56)), domain_b_image(1, (64, 64))
    seen = []
    trainer = LiveTrainer(
        content,
        style,
        tiny_config(iters_per_epoch=6),
        event_every=2,
        preview_size=40,
        on_event=lambda ev: seen.append(ev.kind),
        device="cpu",
    )
    assert trainer.total == 12
    trainer.start()
    first = trainer.events.get(timeout=30)
    assert first.kind == "started" and first.iteration == 0
    ev = trainer.events.get(timeout=30)
    assert ev.kind == "progress" and ev.iteration == 2 and ev.total == 12
    assert ev.its_per_sec > 0 and ev.eta_seconds == pytest.approx(10 / ev.its_per_sec)
    assert {"D", "G", "NCE", "idt", "D_R1"} <= set(ev.losses)
    assert ev.preview.size == (40, 32)  # the whole content image (72x56) at the preview size
    trainer.stop(timeout=30)
    assert not trainer.running
    stopped_at = trainer.iteration
    events = events_first_run = [ev] + _drain(trainer.events)
    assert events[-1].kind == "stopped"
    assert all(e.kind == "progress" for e in events[:-1])
    assert 2 <= stopped_at < 12

    out = trainer.export(tmp_path / "model")  # between runs
    trainer.start()  # resume
    assert trainer.wait(timeout=60)
    events = _drain(trainer.events)
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and events[0].iteration == stopped_at
    assert kinds[-1] == "finished" and set(kinds[1:-1]) == {"progress"}
    assert events[-2].iteration == 12 and trainer.iteration == 12
    first_run = ["started", "progress"] + [e.kind for e in events_first_run[1:]]
    assert seen == first_run + kinds  # the callback sees exactly what the queue delivers

    # The export reloads through the generic inference path and reproduces the trainer's G.
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    final = trainer.export(tmp_path / "final")
    loaded = load_model(final, "cpu")
    x = torch.rand(1, 3, 24, 20) * 2 - 1
    with torch.no_grad():
        torch.manual_seed(5)
        expected = trainer.model.G(x)
        torch.manual_seed(5)
        torch.testing.assert_close(loaded.generator(x), expected)
    assert loaded.heads is not None and loaded.nce_layers == [0, 2, 4]
    assert loaded.config.run == trainer.cfg and loaded.config.kind == "sincut"
    assert loaded.input_scale == 1  # trained on the images as given
    trainer.start()  # already finished: reports it at once
    assert trainer.wait(timeout=10)
    assert [e.kind for e in _drain(trainer.events)] == ["started", "finished"]
    trainer.close()


def test_the_weight_average_follows_its_recurrence_and_is_what_previews_and_exports_use(tmp_path):
    cfg = tiny_config(iters_per_epoch=3)
    cfg.train.ema_half_life = 0.5
    trainer = LiveTrainer(domain_a_image(0, (40, 32)), domain_b_image(1), cfg, preview_size=None, device="cpu")
    model = trainer.model
    assert model.inference_generator is model.G_ema and model.inference_modules()["G"] is model.G_ema
    average = [p.detach().clone() for p in model.G.parameters()]  # the copy starts as G
    step = model.train_step

    def recorded_step(*a, **k):
        losses = step(*a, **k)
        t = model._ema_steps
        beta = min(0.5 ** (1 / 0.5), (1 + t) / (10 + t))  # 0.18 (the warm-up), then 0.25 (the half-life)
        for avg, p in zip(average, model.G.parameters(), strict=True):
            avg.mul_(beta).add_(p.detach(), alpha=1 - beta)
        return losses

    model.train_step = recorded_step
    assert trainer.run().kind == "finished" and trainer.iteration == 6
    for avg, p in zip(average, model.G_ema.parameters(), strict=True):
        torch.testing.assert_close(p, avg)
        assert not p.requires_grad
    assert any(not torch.equal(p, g) for p, g in zip(model.G_ema.parameters(), model.G.parameters(), strict=True))
    # Previews, translations and the export come from the average, not from G.
    x = trainer.preview_input
    with torch.no_grad(), seeded_noise(model.G_ema, x.device, 0):
        averaged = to_pil(model.G_ema(x)[0])
    assert np.array_equal(np.asarray(trainer.preview()), np.asarray(averaged))
    assert np.array_equal(np.asarray(trainer.translate()), np.asarray(averaged))
    loaded = load_model(trainer.export(tmp_path / "m"), "cpu")
    saved = loaded.generator.state_dict()
    assert all(torch.equal(saved[name], p) for name, p in model.G_ema.state_dict().items())  # saved as trained (fp32)
    assert not all(torch.equal(saved[name], p) for name, p in model.G.state_dict().items())
    assert loaded.config.run.train.ema_half_life == 0.5
    trainer.close()


@pytest.mark.parametrize("half_life", [0.0, -3.0, math.inf, math.nan])
def test_the_weight_average_needs_a_finite_positive_half_life(half_life):
    cfg = tiny_config()
    cfg.train.ema_half_life = half_life
    with pytest.raises(ValueError, match=r"train.ema_half_life must be a finite number of iterations above 0 "
                                         rf"\(None: G itself\), got {half_life}"):
        cfg.validate()
    with pytest.raises(ValueError, match=r"half-life of G's weight average must be a finite number"):
        SinCUTModel(cfg.model).average_generator(half_life)


def test_max_side_trains_on_both_images_shrunk_and_the_export_records_the_scale(tmp_path):
    cfg = tiny_config()
    cfg.data.max_side = 48
    photo, art = gradient_image(120, 60), gradient_image(40, 96)
    trainer = LiveTrainer(photo, art, cfg, preview_size=None, max_iters=2, device="cpu")
    assert trainer.content.size == (48, 24) and trainer.input_scale == pytest.approx(0.4)
    assert [s.image.size for s in trainer.samplers] == [(48, 24), (20, 48)]  # each image its own factor
    assert trainer.preview_input.shape[-2:] == (24, 48)
    assert trainer.translate().size == (48, 24)
    assert trainer.translate(photo).size == (48, 24)  # another image meets G at the same scale
    trainer.start()
    assert trainer.wait(timeout=60)
    loaded = load_model(trainer.export(tmp_path / "m"), "cpu")
    assert loaded.input_scale == pytest.approx(0.4)
    # The saved model translates the full-size photo at the scale it learnt, back at the photo's size.
    assert translate_image(loaded, photo).size == (120, 60)
    trainer.close()

    # Images already within max_side are used as given.
    small = LiveTrainer(gradient_image(40, 32), art, cfg, preview_size=None, device="cpu")
    assert small.content.size == (40, 32) and small.input_scale == 1
    small.close()


def test_a_run_repeats_exactly_with_its_seed():
    """Every random choice of a step (crops, PatchNCE locations, G's noise) follows the run's seed: the same seed
    gives the same weights, whatever else drew from torch's global generator; another seed does not."""
    content, style = domain_a_image(0, (72, 56)), domain_b_image(1, (64, 64))

    def weights(seed: int) -> dict[str, torch.Tensor]:
        cfg = tiny_config(iters_per_epoch=4)
        cfg.train.seed = seed
        trainer = LiveTrainer(content, style, cfg, event_every=100, preview_size=None, device="cpu")
        torch.randn(7)  # another user of the global generator
        trainer.run()
        return {k: v.clone() for k, v in trainer.model.G.state_dict().items()}

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    noise = [k for k in first if k.endswith("noise.weight")]
    assert noise and any(first[k].abs().item() > 0 for k in noise)  # the noise did take part


def test_previews_change_only_with_training():
    """A preview draws G's noise from a fixed seed: two previews with no step between are the same image, and
    neither draws from torch's global generator."""
    trainer = LiveTrainer(domain_a_image(0, (48, 40)), domain_b_image(1), tiny_config(), preview_size=None,
                          device="cpu")
    with torch.no_grad():
        for name, p in trainer.model.G.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(1.0)
    state = torch.get_rng_state()
    first, again = (np.asarray(trainer.preview()) for _ in range(2))
    assert np.array_equal(first, again) and torch.equal(torch.get_rng_state(), state)
    trainer.close()

def test_a_failing_step_ends_the_run_with_an_error_event_that_carries_the_exception(monkeypatch):
    """The event's one line is for a UI; the exception, traceback included, for a Python caller to raise."""
    from cutcore.config import preset

    trainer = LiveTrainer(domain_a_image(0, (48, 40)), domain_b_image(1), tiny_config(), preview_size=None,
                          device="cpu")

    held = []

    def failing_step(*args):
        big = torch.empty(1000)  # what a failing step holds (activations on a GPU)
        held.append(weakref.ref(big))
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(trainer.model, "train_step", failing_step)
    last = trainer.run()
    assert (last.kind, last.iteration, last.message) == ("error", 0, "RuntimeError: CUDA error: out of memory")
    assert isinstance(last.exception, RuntimeError) and last.exception.__traceback__ is not None
    gc.collect()
    assert held[0]() is None  # the event keeps the traceback, not the failed step's tensors
    trainer.close()
    with pytest.raises(TypeError, match=r"a SinCUT preset name or a SinCUTConfig, got RunConfig"):
        LiveTrainer(domain_a_image(0, (48, 40)), domain_b_image(1), preset("cut"), device="cpu")

def test_run_trains_in_the_calling_thread_with_the_same_events():
    trainer = LiveTrainer(domain_a_image(0, (48, 40)), domain_b_image(1), tiny_config(iters_per_epoch=6),
                          event_every=2, preview_size=32, device="cpu")
    seen, threads = [], set()

    def on_event(ev: TrainEvent) -> None:
        seen.append((ev.kind, ev.iteration))
        threads.add(threading.current_thread())
        if ev.kind == "progress" and ev.iteration == 4:
            trainer.stop(timeout=0)  # as the sincut command's Ctrl-C handler does

    trainer.on_event = on_event
    last = trainer.run()
    assert last.kind == "stopped" and trainer.iteration == 4
    assert seen == [("started", 0), ("progress", 2), ("progress", 4), ("stopped", 4)]
    assert threads == {threading.current_thread()} and trainer._thread is None
    assert trainer.run().kind == "finished" and trainer.iteration == 12  # resumes
    trainer.close()


def _step_seconds(monkeypatch, trainer: LiveTrainer, seconds) -> tuple[list[float], list[float]]:
    """Iteration i takes seconds(i) of a fake clock; returns (the LRs set, the clock)."""
    import cutcore.sincut.live as live

    clock = [0.0]
    monkeypatch.setattr(live.time, "perf_counter", lambda: clock[0])
    step, set_lr, lrs = trainer.model.train_step, trainer.model.set_lr, []

    def timed_step(*a, **k):
        clock[0] += seconds(len(lrs))
        return step(*a, **k)

    trainer.model.train_step = timed_step
    trainer.model.set_lr = lambda lr: (lrs.append(lr), set_lr(lr))[1]
    return lrs, clock


def _one_second_steps(monkeypatch, trainer: LiveTrainer) -> list[float]:
    """Every iteration takes one second of a fake clock; returns the list the LRs set are recorded in."""
    return _step_seconds(monkeypatch, trainer, lambda i: 1.0)[0]


def _budgeted(budget: float, **kw) -> LiveTrainer:
    cfg = tiny_config(iters_per_epoch=50)  # 100 iterations, the first 50 at the full LR
    cfg.train.time_budget_s = budget
    return LiveTrainer(domain_a_image(0, (48, 40)), domain_b_image(1), cfg, preview_size=32, device="cpu", **kw)


@pytest.mark.parametrize("budget,total,last_lr", [(30.0, 30, 0.002 / 16), (500.0, 100, 0.002 / 2)])
def test_a_time_budget_lays_the_schedule_over_the_iterations_that_fit(monkeypatch, budget, total, last_lr):
    trainer = _budgeted(budget, event_every=5)
    lrs = _one_second_steps(monkeypatch, trainer)
    assert trainer.run().kind == "finished"
    assert trainer.iteration == trainer.total == total  # 30 s at 1 it/s; never more than planned
    events = _drain(trainer.events)
    assert [e.total for e in events if e.iteration > 10] == [total] * len([e for e in events if e.iteration > 10])
    assert lrs[:10] == [0.002] * 10  # planned at step 10, still in the constant phase
    assert lrs[-1] == pytest.approx(last_lr)  # decayed to the end of the schedule (the new one: 15 + 15)
    assert trainer.cfg.train.total_iters == total


def test_the_budget_gives_back_the_iterations_a_passing_slowdown_took(monkeypatch):
    """Another user's work slows the first iterations to 2 s: the plan at 10 (~0.5 it/s) says 31 iterations; the
    next previews, back at 1 it/s while the LR is still constant, plan 51, which end on the budget (planned once,
    the run ended at 31 with a third of its time unused)."""
    trainer = _budgeted(60.0, event_every=5)
    lrs, clock = _step_seconds(monkeypatch, trainer, lambda i: 2.0 if 1 <= i < 10 else 1.0)
    assert trainer.run().kind == "finished" and trainer.iteration == trainer.total == 51
    assert clock[0] == 60.0 and lrs[:25] == [0.002] * 25
    totals = [e.total for e in _drain(trainer.events) if e.kind == "progress"]
    assert totals[:3] == [100, 31, 51] and set(totals[2:]) == {51}


def test_a_slowdown_that_lasts_shortens_the_schedule(monkeypatch):
    trainer = _budgeted(60.0, event_every=5)  # 1 it/s plans 60; then 3 s an iteration from the 21st
    lrs, clock = _step_seconds(monkeypatch, trainer, lambda i: 1.0 if i < 20 else 3.0)
    assert trainer.run().kind == "finished" and trainer.iteration == trainer.total == 37
    # Planned once, its 60 iterations took 140 s. The rate is the faster of the last window and the last three (so
    # that one slow window does not cut a run for good), which lets a lasting slowdown overrun a little.
    assert clock[0] <= 75.0
    assert lrs[:20] == [0.002] * 20 and all(a >= b for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[-1] < 0.0005


def test_once_the_lr_decays_a_new_plan_can_only_lower_it(monkeypatch):
    """A slower window at 21-25 plans a decay from 29; a faster one at 30 would plan 94 iterations, whose LR at 30
    is the full one again: the LR went 2.0, 1.93, 1.87, 2.0 (e-3). A plan made while decaying may only shorten."""
    trainer = _budgeted(60.0, event_every=5)
    lrs, _ = _step_seconds(monkeypatch, trainer, lambda i: 1.0 if i < 20 else 1.2 if i < 25 else 0.5)
    assert trainer.run().kind == "finished"
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False)) and lrs[-1] < lrs[0]


def test_the_first_preview_after_ten_iterations_already_shows_the_planned_total(monkeypatch):
    trainer = _budgeted(30.0, event_every=20)  # as the app and the sincut command preview
    _one_second_steps(monkeypatch, trainer)
    assert trainer.run().kind == "finished" and trainer.iteration == 30
    progress = [(e.iteration, e.total, round(e.eta_seconds)) for e in _drain(trainer.events) if e.kind == "progress"]
    assert progress == [(20, 30, 10), (30, 30, 0)]  # not (20, 100, 80) first


def test_the_time_budget_survives_a_stop_and_is_planned_before_the_lr_decays(monkeypatch):
    # Previews every 80 iterations would plan at 81, after the decay begins at 50: planned at 50 instead.
    trainer = _budgeted(80.0, event_every=80)
    lrs = _one_second_steps(monkeypatch, trainer)
    trainer.loop.total = 5  # a first run that ends after 5 iterations (5 s of the budget)...
    assert trainer.run().kind == "stopped" and trainer.iteration == 5
    trainer.loop.total = trainer.total
    assert trainer.run().kind == "finished"  # ...then resumed: at step 50, 50 s spent, 30 left
    assert trainer.iteration == trainer.total == 80  # (85 if the first run's 5 s were forgotten)
    assert lrs[:50] == [0.002] * 50


def test_an_iteration_count_the_caller_chose_is_not_cut_by_the_budget(monkeypatch):
    trainer = _budgeted(30.0, event_every=5, max_iters=60)
    lrs = _one_second_steps(monkeypatch, trainer)
    assert trainer.run().kind == "finished" and trainer.iteration == 60
    assert lrs[:50] == [0.002] * 50  # the preset's own schedule, stopped early


def test_stop_from_an_event_callback_on_the_training_thread_is_a_clean_stop():
    trainer = LiveTrainer(domain_a_image(0, (48, 40)), domain_b_image(1), tiny_config(iters_per_epoch=6),
                          event_every=2, preview_size=32, device="cpu")
    trainer.on_event = lambda ev: ev.kind == "progress" and trainer.stop()  # waits, on its own thread
    trainer.start()
    assert trainer.wait(timeout=60)
    assert [e.kind for e in _drain(trainer.events)] == ["started", "progress", "stopped"]
    trainer.close()


def test_launch_builds_and_trains_on_one_new_thread(monkeypatch, tmp_path):
    import cutcore.sincut.live as live

    built_on = []

    class Recorded(SinCUTModel):
        def __init__(self, *a, **k):
            built_on.append(threading.current_thread())
            super().__init__(*a, **k)

    monkeypatch.setattr(live, "SinCUTModel", Recorded)
    evented_on = set()
    trainer = LiveTrainer.launch(domain_a_image(0, (48, 40)), domain_b_image(1), tiny_config(iters_per_epoch=6),
                                 event_every=2, preview_size=32, device="cpu",
                                 on_event=lambda ev: evented_on.add(threading.current_thread()))
    assert trainer.wait(timeout=60)
    kinds = [e.kind for e in _drain(trainer.events)]
    assert kinds[0] == "started" and kinds[-1] == "finished" and trainer.iteration == 12
    assert built_on == [trainer._thread] and evented_on == {trainer._thread}
    assert trainer._thread is not threading.current_thread()
    with pytest.raises(ImageLoadError, match="missing.png"):  # what building raises reaches the caller
        LiveTrainer.launch(tmp_path / "missing.png", domain_b_image(1), tiny_config())
    trainer.close()


def _interrupt_after_first_preview(out) -> threading.Thread:
    """Sends SIGINT once the first preview is written (the handler is installed by then); join it before the
    test ends, so the signal never lands after `sigint_handler` has put pytest's own handler back."""
    def interrupt() -> None:
        while not list((out / "previews").glob("*.png")):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


def test_sincut_command_stops_on_ctrl_c_after_an_iteration_and_still_exports(tmp_path, sigint_handler, capsys):
    from cutcore.sincut.headless import train_to_folder

    sigint_handler(signal.default_int_handler)
    photo, art = tmp_path / "photo.png", tmp_path / "art.png"
    domain_a_image(0, (64, 48)).save(photo)
    domain_b_image(1, (64, 48)).save(art)
    out = tmp_path / "run"
    interrupter = _interrupt_after_first_preview(out)
    # Exported, and said, but not a success: `sincut ... && next` goes no further (as `train`).
    assert train_to_folder(photo, art, out, "sincut-cpu", preview_every=1, preview_size=32, device="cpu") == 130
    interrupter.join(timeout=10)
    # (of 450, or fewer where the 285 s budget re-laid the schedule on a slow machine)
    assert re.search(r"stopped by Ctrl-C at iteration \d+ of \d+; that model is exported", capsys.readouterr().err)
    logged = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    stopped_at = logged[-1]["iteration"]
    # Within a few iterations of the first preview (its 285 s budget would also end it short of 450 on a slow
    # machine, so "< 450" would not tell a Ctrl-C from the clock).
    assert stopped_at <= 20
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.metadata()["iteration"] == str(stopped_at)  # exported where it stopped
    assert (out / "translation.png").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_sincut_command_run_with_ctrl_c_ignored_does_not_stop_on_it(tmp_path, sigint_handler):
    from cutcore.sincut.headless import train_to_folder

    sigint_handler(signal.SIG_IGN)  # as `python -m cutcore sincut ... &` in a script starts it
    photo, art = tmp_path / "photo.png", tmp_path / "art.png"
    domain_a_image(0, (64, 48)).save(photo)
    domain_b_image(1, (64, 48)).save(art)
    out = tmp_path / "run"
    interrupter = _interrupt_after_first_preview(out)
    assert train_to_folder(photo, art, out, "sincut-cpu", iters=4, preview_every=1, preview_size=32,
                           device="cpu") == 0
    interrupter.join(timeout=10)
    assert not interrupter.is_alive()  # Ctrl-C was sent, and ignored
    assert json.loads((out / "losses.jsonl").read_text().splitlines()[-1])["iteration"] == 4
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_live_trainer_stops_within_an_iteration_and_frees_memory():
    cfg = tiny_config(iters_per_epoch=10_000)
    trainer = LiveTrainer(domain_a_image(2, (48, 48)), domain_b_image(3, (48, 48)), cfg, event_every=1, preview_size=32,
                          device="cpu")
    trainer.start()
    assert trainer.events.get(timeout=30).kind == "started"
    assert trainer.events.get(timeout=30).kind == "progress"
    trainer.stop(timeout=30)
    at = trainer.iteration
    assert not trainer.running and at < 10  # stopped promptly, far from the 20,000 total
    ref = weakref.ref(trainer.model)
    trainer.close()
    del trainer
    gc.collect()
    assert ref() is None  # no thread, queue or closure keeps the networks alive


def test_a_short_run_moves_the_losses():
    # 80 iterations: over seeds 0-5 the NCE loss ends at 0.45-0.69 of its start (at 40: 0.59-0.92, too close to call).
    cfg = tiny_config(iters_per_epoch=40)
    trainer = LiveTrainer(domain_a_image(4, (64, 64)), domain_b_image(5, (64, 64)), cfg, event_every=1, preview_size=32,
                          device="cpu")
    history: list[dict[str, float]] = []
    trainer.on_event = lambda ev: history.append(ev.losses) if ev.kind == "progress" else None
    trainer.start()
    assert trainer.wait(timeout=120)
    assert len(history) == 80
    first = {k: np.mean([h[k] for h in history[:8]]) for k in history[0]}
    last = {k: np.mean([h[k] for h in history[-8:]]) for k in history[0]}
    assert last["NCE"] < 0.8 * first["NCE"]  # G learns to keep the content's patches apart
    assert last["idt"] < first["idt"]
    assert all(np.isfinite(v) for h in history for v in h.values())
    trainer.close()


def test_translate_keeps_the_resolution_whole_and_tiled():
    torch.manual_seed(0)
    g = StyleGAN2Generator(StyleGAN2GeneratorConfig(ngf=2)).eval()
    img = domain_a_image(0, (75, 53))  # odd sides
    whole = translate(g, img)
    tiles = []
    tiled = translate(g, img, tile=32, overlap=8, progress=lambda done, total: tiles.append(total))
    assert whole.size == tiled.size == (75, 53)
    assert tiles and tiles[-1] > 1
    # Noise weights are 0 at init: tiling only changes pixels near seams (zero padding inside tiles).
    diff = np.abs(np.asarray(whole, np.int16) - np.asarray(tiled, np.int16))
    assert np.median(diff) <= 2 and diff.max() > 0



def test_a_translation_repeats_and_leaves_the_global_generator_alone():
    """G's injected noise comes from a fixed seed when translating (each tile its own): the same image translates
    the same way twice, and nothing is drawn from torch's global generator."""
    torch.manual_seed(0)
    g = StyleGAN2Generator(StyleGAN2GeneratorConfig(ngf=2)).eval()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith("noise.weight"):
                p.fill_(1.0)  # trained SinCUT noise weights are not 0
    img = domain_a_image(0, (64, 64))
    state = torch.get_rng_state()
    whole = [np.asarray(translate(g, img), np.int16) for _ in range(2)]
    tiled = [np.asarray(translate(g, img, tile=32, overlap=0), np.int16) for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert np.array_equal(*whole) and np.array_equal(*tiled)
    # The four 32² tiles saw different noise: on a flat image they would otherwise come out alike.
    flat = np.asarray(translate(g, Image.new("RGB", (64, 64), (90, 120, 60)), tile=32, overlap=0), np.int16)
    assert not np.array_equal(flat[:32, :32], flat[:32, 32:])

# --- the real pair (skipped without ../shared) --------------------------------------------------------------


@pytest.mark.skipif(not MONET_ETRETAT.is_dir(), reason=f"shared data not present at {MONET_ETRETAT}")
def test_monet_etretat_batches_at_the_paper_settings():
    cfg = sincut_preset("sincut")
    trainer = LiveTrainer(
        MONET_ETRETAT / "etretat_photo.jpg", MONET_ETRETAT / "monet_painting.jpg", cfg, preview_size=64, device="cpu")
    a, b = (s.sample() for s in trainer.samplers)
    assert a.shape == b.shape == (16, 3, 64, 64)
    assert trainer.preview().size == (64, 48)
    assert trainer.content.size == (1024, 768)
    trainer.close()


# --- the command line ------------------------------------------------------------------------------


def test_sincut_command_writes_previews_losses_and_a_loadable_model(tmp_path, capsys):
    from cutcore.cli import main

    data = tmp_path / "pair"
    for domain, make in (("A", domain_a_image), ("B", domain_b_image)):
        (data / f"train{domain}").mkdir(parents=True)
        make(domain == "B", (80, 64)).save(data / f"train{domain}" / "img.png")
    out = tmp_path / "run"
    assert main(["sincut", "--data", str(data), "--out", str(out), "--iters", "3", "--preview-every", "2",
                 "--preview-size", "0"]) == 0
    # --device auto (the default) is the CPU here; fp32 unless asked.
    assert "training on cpu: fp32 (as configured); content 80×64 px" in capsys.readouterr().err
    assert sorted(p.name for p in (out / "previews").iterdir()) == ["iter_00002.png", "iter_00003.png"]
    assert Image.open(out / "previews" / "iter_00003.png").size == (80, 64)
    logged = [line for line in (out / "losses.jsonl").read_text().splitlines() if line]
    assert len(logged) == 2 and "NCE" in logged[-1]
    model = load_model(out, "cpu")
    assert model.heads is not None
    # --iters 3: the preset's schedule laid over 3 iterations (as the app's budget), recorded as such.
    assert set(json.loads((out / "style.json").read_text())) == {
        *YARDSTICKS, "colour_distance_output", "colour_distance_photo", "texture_distance_output",
        "texture_distance_photo"}
    train = json.loads((out / "config.json").read_text())["train"]
    assert train["iters_per_epoch"] * (train["epochs"] + train["epochs_decay"]) == 3 and train["time_budget_s"] is None
    reloaded = np.asarray(translate_image(model, domain_a_image(0, (80, 64))), dtype=np.int16)
    # Same weights; the trainer runs channels_last (other conv kernels), so a few levels may differ
    # here and there; a wrong export would differ everywhere by tens of levels.
    diff = np.abs(reloaded - np.asarray(Image.open(out / "translation.png")))
    assert diff.mean() < 0.5 and diff.max() <= 8
    # A second run into the same folder would leave this one's previews among its own: refused, nothing touched.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["sincut", "--data", str(data), "--out", str(out), "--iters", "2"]) == 2
    assert "already holds a SinCUT run or a model (previews, losses.jsonl, model.safetensors)" in (
        capsys.readouterr().err)
    # Nor may a CUT run start there (its config.json would replace the model's), nor a SinCUT run in a training run.
    assert main(["train", "--data", str(data), "--out", str(out), "--max-steps", "1"]) == 2
    assert "holds a model or a SinCUT run (previews, losses.jsonl, model.safetensors)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    (tmp_path / "cut_run" / "checkpoints" / "step_00000001").mkdir(parents=True)
    assert main(["sincut", "--data", str(data), "--out", str(tmp_path / "cut_run"), "--iters", "2"]) == 2
    assert "holds a training run (checkpoints up to step_00000001)" in capsys.readouterr().err


def test_a_chosen_iteration_count_is_trained_in_full_on_the_presets_schedule():
    """`sincut --iters N` and the app's budget: N iterations, more or fewer than the preset's, all trained
    (no time budget), the LR constant then decaying to the end as in the preset."""
    preset = sincut_preset("sincut-cpu")
    assert preset.train.total_iters == 450 and preset.train.time_budget_s
    for n in (30, 1000):
        t = trained_for(preset, n).train
        assert t.total_iters == n and t.time_budget_s is None
        assert t.lr_at(0) == preset.train.lr and t.lr_at(n - 1) < t.lr_at(n // 2) <= preset.train.lr


def test_a_recipe_changes_only_the_nce_weight_and_working_size_it_is_given():
    from cutcore.sincut.config import with_recipe

    preset = sincut_preset("sincut-gpu")
    assert with_recipe(preset) == preset
    tuned = with_recipe(preset, lambda_nce=4, max_side=0)
    assert tuned.model.lambda_nce == 4.0 and tuned.data.max_side is None  # 0: the images as given
    assert preset.model.lambda_nce == 1.0 and preset.data.max_side == 512  # the preset is not edited in place
    assert replace(tuned, model=preset.model, data=preset.data) == preset  # nothing else moved
    smaller = with_recipe(preset, max_side=384)
    assert smaller.data.max_side == 384 and smaller.model.lambda_nce == 1
    for bad in ({"lambda_nce": -1}, {"lambda_nce": float("nan")}, {"max_side": -5}):
        with pytest.raises(ValueError):
            with_recipe(preset, **bad)


def test_sincut_command_trains_the_recipe_it_is_given(tmp_path):
    from cutcore.cli import main

    photo, art = tmp_path / "photo.png", tmp_path / "art.png"
    domain_a_image(0, (96, 64)).save(photo)
    domain_b_image(1, (96, 64)).save(art)
    out = tmp_path / "run"
    assert main(["sincut", "--content", str(photo), "--style", str(art), "--out", str(out), "--iters", "2",
                 "--lambda-nce", "0.5", "--max-side", "48", "--device", "cpu", "--preview-size", "0"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["lambda_nce"] == 0.5 and saved["data"]["max_side"] == 48
    assert Image.open(out / "translation.png").size == (48, 32)  # the photo at the working size asked for
    # A working size below the crop is refused before anything is written.
    assert main(["sincut", "--content", str(photo), "--style", str(art), "--out", str(tmp_path / "small"),
                 "--max-side", "16", "--device", "cpu"]) == 2
    assert not (tmp_path / "small").exists()


def test_a_photo_shrunk_below_the_crop_by_the_working_size_is_said_so(tmp_path, capsys):
    from cutcore.cli import main

    photo, art = tmp_path / "photo.png", tmp_path / "art.png"
    domain_a_image(0, (96, 64)).save(photo)
    domain_b_image(1, (96, 96)).save(art)
    # sincut-cpu crops 32 px: a longer side of 40 leaves the 3:2 photo 27 px high.
    assert main(["sincut", "--content", str(photo), "--style", str(art), "--out", str(tmp_path / "run"),
                 "--max-side", "40", "--device", "cpu"]) == 2
    assert (f"{photo} is 96×64 px (shrunk to 40×27 for training: at most 40 px a side); SinCUT trains on 32×32 "
            "crops, so each side needs at least 32 px") in capsys.readouterr().err


def test_sincut_command_refuses_a_count_below_one(tmp_path, capsys):
    from cutcore.cli import main

    assert main(["sincut", "--content", "p.png", "--style", "a.png", "--out", str(tmp_path), "--iters", "0"]) == 2
    assert "--iters must be at least 1, got 0" in capsys.readouterr().err


def test_sincut_command_picks_the_preset_for_the_device(monkeypatch, tmp_path):
    import cutcore.sincut.headless as headless
    from cutcore.cli import main

    chosen = []
    monkeypatch.setattr(headless, "train_to_folder",
                        lambda content, style, out, preset, **kw: chosen.append((preset, kw["device"])) or 0)
    args = ["sincut", "--content", "p.png", "--style", "a.png", "--out", str(tmp_path)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(args) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert main(args) == 0 and main(args + ["--device", "cpu"]) == 0 and main(args + ["--preset", "sincut"]) == 0
    assert chosen == [("sincut-cpu", "auto"), ("sincut-gpu", "auto"), ("sincut-cpu", "cpu"), ("sincut", "auto")]


def test_sincut_command_refuses_a_folder_without_exactly_one_image_per_domain(tmp_path, capsys):
    from cutcore.cli import main

    for domain in "AB":
        (tmp_path / f"train{domain}").mkdir()
    domain_a_image(0).save(tmp_path / "trainA" / "a.png")
    domain_a_image(1).save(tmp_path / "trainA" / "b.png")
    assert main(["sincut", "--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert "exactly one image" in capsys.readouterr().err
    assert main(["sincut", "--out", str(tmp_path / "run")]) == 2
    # The likely mistake: a folder of two loose images (as the Monet pair comes) given as --data.
    loose = tmp_path / "loose"
    loose.mkdir()
    assert main(["sincut", "--data", str(loose), "--out", str(tmp_path / "run")]) == 2
    assert f"{loose} has no trainA/ folder" in capsys.readouterr().err


def test_sincut_command_refuses_data_with_content_or_style(tmp_path, capsys):
    from cutcore.cli import main

    for extra in (["--content", "p.png", "--style", "a.png"], ["--style", "a.png"]):
        assert main(["sincut", "--data", str(tmp_path), *extra, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --data and --content/--style are alternatives") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_bf16_step_runs_and_keeps_fp32_weights():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = SinCUTModel(cfg.model)
    model.configure_training(cfg.train.lr, cfg.train.beta1, cfg.train.beta2, "bf16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b = torch.rand(4, 3, 16, 16) * 2 - 1, torch.rand(4, 3, 16, 16) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False), ComputedDtypes(model.G, model.D) as computed:
        logs = model.train_step(a, b, torch.Generator().manual_seed(0))  # the step turns autocast on itself
    assert torch.bfloat16 in computed
    assert all(torch.isfinite(v) for v in logs.values()) and logs["D_R1"] > 0  # R1 ran: real images have a gradient
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
