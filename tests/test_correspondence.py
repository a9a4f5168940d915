"""The correspondence view against the training loss (issue 16.5).

On a live SinCUT model the view's "5 hardest negatives" scored 0.997-1.000 on every layer, above the
positive. These tests recompute, with the training code (the model's own G and F, `nce_logits`), the
similarities PatchNCE would give the clicked query against every location of the image, and require
the view's positive, negatives, median and rank to be those numbers: the view must show what the loss
sees. (It did not for SinCUT: the view clamped G(x) to [-1, 1] before encoding it; the loss encodes
SinCUT's unbounded output as it is.) The numbers themselves are genuine; `details` explains them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import domain_a_image, tiny_run_config
from torch import nn

from cutcore import correspondence
from cutcore.checkpoint import module_state, save_tensors, write_json
from cutcore.correspondence import LayerMap, _Geometry, caption, correspondence_maps
from cutcore.losses import nce_logits
from cutcore.model_folder import load_model
from cutcore.translate import seeded_noise
from demo.correspondence_tab import details

pytestmark = pytest.mark.usefixtures("one_thread")

POINTS = [(5, 7), (20, 13), (35, 27)]  # corners and middle of a 36x28 image


def _cut(folder: Path):
    cfg = tiny_run_config("cut", Path("unused"))
    from cutcore.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.model)
    for p in model.parameters():  # more contrast than the 0.02-gain init
        nn.init.normal_(p, 0, 0.2)
    save_tensors(folder / "model.safetensors", module_state(model.inference_modules()))
    write_json(folder / "config.json", cfg)
    return model.G, model.F, cfg.model.nce


def _sincut(folder: Path):
    from cutcore.nets.stylegan2 import StyleGAN2DiscriminatorConfig, StyleGAN2GeneratorConfig
    from cutcore.sincut.config import sincut_preset
    from cutcore.sincut.live import export_generator
    from cutcore.sincut.model import SinCUTModel

    cfg = sincut_preset("sincut-cpu")
    cfg.model.generator = StyleGAN2GeneratorConfig(ngf=2)
    cfg.model.discriminator = StyleGAN2DiscriminatorConfig(ndf=2, size=16)
    cfg.model.head_dim = 32
    torch.manual_seed(0)
    model = SinCUTModel(cfg.model)
    with torch.no_grad():
        for p in model.F.parameters():
            nn.init.normal_(p, 0, 0.2)
        model.G.decoder[-2].noise.weight.fill_(0.3)  # the trained generator's noise is on
        model.G.decoder[-1][0].weight.mul_(5)  # no tanh: a trained G leaves [-1, 1] in places; here often
    export_generator(model, cfg, folder, 0)
    return model.G, model.F, cfg.model.nce


def _loss_row(g, f, nce, x: torch.Tensor, layers: list[int], layer_i: int, q: int) -> torch.Tensor:
    """Similarities (h*w,) of the output's query at location `q` to the input's key at every location, as
    training computes them: keys from G's forward pass on x, queries from G's encoder on G(x), both through
    F at the same patch ids, then `nce_logits` (row 0: positive, the masked self, the others) times the
    temperature. G's noise (SinCUT) as a translation draws it."""
    with torch.no_grad(), seeded_noise(g, x.device):
        fake, feats = g(x, layers)
        h, w = feats[layer_i].shape[-2:]
        order = torch.cat([torch.tensor([q]), torch.arange(h * w)[torch.arange(h * w) != q]])
        ids = [order if j == layer_i else torch.arange(1) for j in range(len(layers))]
        keys, _ = f(feats, h * w, ids)
        queries, _ = f(g.encode(fake, layers), h * w, ids)
        logits = nce_logits(queries[layer_i], keys[layer_i], 1, nce)[0] * nce.temperature
        sims = torch.empty(h * w)
        sims[q] = logits[0]
        sims[order[1:]] = logits[2:]  # logits[1] is the query's own location, masked
        return sims


@pytest.mark.parametrize("make", [_cut, _sincut], ids=["cut", "sincut"])
def test_the_view_shows_the_training_loss_similarities(make, tmp_path):
    g, f, nce = make(tmp_path / "m")
    model = load_model(tmp_path / "m", "cpu")
    img = domain_a_image(3, (36, 28))
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float().div(127.5).sub(1)
    with torch.no_grad():
        torch.manual_seed(1)
        y = g(x)
    if make is _sincut:  # the case the view got wrong: G(x) outside [-1, 1] where the loss encodes it as it is
        assert (y.abs() > 1).float().mean() > 0.2
    for point in POINTS:
        correspondence._cache.clear()
        state = torch.get_rng_state()
        maps = correspondence_maps(model, img, point, k=5)
        assert torch.equal(torch.get_rng_state(), state)  # SinCUT's noise drawn as a translation draws it
        assert [m.layer for m in maps] == model.nce_layers
        for i, m in enumerate(maps):
            w, h = m.grid
            geo = _Geometry(h, w, 28, 36)
            gx, gy = geo.to_grid(*point)
            sims = _loss_row(g, f, nce, x, model.nce_layers, i, gy * w + gx).view(h, w)
            inside = geo.inside(36, 28).clone()
            inside[gy, gx] = False
            others = sims[inside]
            assert m.positive_sim == pytest.approx(float(sims[gy, gx]), abs=1e-5), (point, m.layer)
            assert m.negative_sims == pytest.approx(others.topk(5).values.tolist(), abs=1e-5), (point, m.layer)
            for (px, py), v in zip(m.negatives, m.negative_sims, strict=True):
                assert float(sims[geo.to_grid(px, py)[::-1]]) == pytest.approx(v, abs=1e-5)
            assert m.median_sim == pytest.approx(float(others.median()), abs=1e-5)
            assert m.above == pytest.approx(float((others < sims[gy, gx]).float().mean()), abs=2 / others.numel())



@pytest.mark.parametrize("size", [(3, 3), (2, 7)])
def test_images_smaller_than_the_generator_needs_are_padded_as_translate_pads_them(size, tmp_path):
    """Padded only to the size multiple, a 3 px side reached the innermost reflection pads at 1 px."""
    _cut(tmp_path / "m")
    model = load_model(tmp_path / "m", "cpu")
    img = domain_a_image(1, size)
    maps = correspondence_maps(model, img, (size[0] - 1, size[1] - 1), k=2)
    assert [m.layer for m in maps] == model.nce_layers
    for m in maps:
        assert m.heatmap.shape == (size[1], size[0]) and np.isfinite(m.heatmap).all()

def test_details_explain_negatives_above_the_positive():
    m = LayerMap(2, np.zeros((4, 4), np.float32), (1, 1), [(2, 2)], 0.84, [1.0, 0.999], (128, 96), 0.759, 0.56)
    assert caption(m) == ("layer 2 (128×96 patches): positive 0.84, above 75.9% of the other patches (median 0.56); "
                          "hardest negatives 1.00, 1.00")
    text = details([m], (60, 40), (256, 192), "sincut")
    assert "| 2 | 128×96 | 0.840 | 75.9% | 0.560 | 1.000, 0.999 |" in text
    assert "every place of the image competes" in text and "SinCUT shows this most" in text
    cut = details([m], (60, 40), (256, 192), "cut")
    assert "every place of the image competes" in cut and "SinCUT shows this most" not in cut
    almost = LayerMap(0, m.heatmap, (1, 1), [], 0.9, [], (4, 4), 0.9996, 0.5)
    assert "above 99.9%" in caption(almost)  # a miss never rounds up to 100%
    # A trained model's positive and hardest negatives near 1.0 printed alike ("1.000, above 100%" beside 1.000):
    # as many decimals as it takes to tell the positive from each negative, for the whole table.
    near = LayerMap(4, m.heatmap, (1, 1), [(2, 2)] * 3, 0.99996, [0.99991, 0.99996, 0.9990], (32, 24), 0.9, 0.7)
    assert caption(near) == ("layer 4 (32×24 patches): positive 1.0000, above 90.0% of the other patches "
                             "(median 0.7000); hardest negatives 0.9999, 1.0000, 0.9990")
    table = details([m, near], (60, 40), (256, 192))
    assert "| 4 | 32×24 | 1.0000 | 90.0% | 0.7000 | 0.9999, 1.0000, 0.9990 |" in table
    assert "| 2 | 128×96 | 0.8400 | 75.9% | 0.5600 | 1.0000, 0.9990 |" in table  # one precision per table
