"""Generator, PatchGAN, blur resampling and PatchNCE heads: shapes, layer selection, and the reference."""
from __future__ import annotations

import functools

import pytest
import torch
from helpers import reference_case
from torch import nn

from cutcore.nets import PatchGANConfig, PatchGANDiscriminator, PatchProjector, ResnetGenerator, ResnetGeneratorConfig
from cutcore.nets.blur import BlurDownsample, BlurUpsample
from cutcore.nets.resnet import ResnetBlock

pytestmark = pytest.mark.usefixtures("one_thread")


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- ResnetGenerator -----------------------------------------------------------------------


@pytest.mark.parametrize("ngf", [4, 8])
def test_default_nce_layers_shapes(ngf):
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=ngf))
    h = 32
    feats = g.encode(_randn(2, 3, h, h), [0, 4, 8, 12, 16])
    shapes = [tuple(f.shape[1:]) for f in feats]
    # As for ngf 64: (3, H+6), (128, H), (256, H/2), (256, H/4), (256, H/4), with 128 = 2 ngf, 256 = 4 ngf.
    assert shapes == [(3, h + 6, h + 6), (2 * ngf, h, h), (4 * ngf, h // 2, h // 2), (4 * ngf, h // 4, h // 4),
                      (4 * ngf, h // 4, h // 4)]
    assert all(f.shape[0] == 2 for f in feats)


def test_default_layers_are_what_the_docstring_says():
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=4))
    names = [type(g.model[i]).__name__ for i in (0, 4, 8, 12, 16)]
    assert names == ["ReflectionPad2d", "Conv2d", "Conv2d", "ResnetBlock", "ResnetBlock"]
    assert len(g.model) == 4 + 2 * 4 + 9 + 2 * 4 + 3


def test_encode_equals_forward_features_and_stops_early():
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=4, n_blocks=3))
    x = _randn(1, 3, 24, 24)
    layers = [0, 4, 8, 12]
    out, feats = g(x, layers)
    assert out.shape == x.shape
    called = []
    hooks = [m.register_forward_hook(lambda mod, i, o, idx=idx: called.append(idx)) for idx, m in enumerate(g.model)]
    enc = g.encode(x, layers)
    for h in hooks:
        h.remove()
    assert called == list(range(13)), "encode() must stop right after its last requested layer"
    assert len(enc) == len(feats) == 4
    for a, b in zip(enc, feats, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # And the plain forward equals the forward that also collects features.
    torch.testing.assert_close(g(x), out, rtol=0, atol=0)


@pytest.mark.parametrize("aa", [True, False])
@pytest.mark.parametrize("hw", [(16, 16), (20, 36), (44, 28)])
def test_output_shape_equals_input_for_multiples_of_4(aa, hw):
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=4, n_blocks=1, antialias_down=aa, antialias_up=aa))
    assert g.size_multiple == 4
    x = _randn(2, 3, *hw)
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0  # tanh


def test_generator_channels_and_dropout():
    g = ResnetGenerator(ResnetGeneratorConfig(in_channels=1, out_channels=2, ngf=4, n_blocks=1, dropout=True))
    assert g(_randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)
    # As the reference's ResnetBlock: Dropout(0.5) after the first conv's ReLU, before the second conv, so the
    # second conv keeps the reference's state-dict index (conv_block.6).
    blocks = [m for m in g.modules() if isinstance(m, ResnetBlock)]
    assert len(blocks) == 1
    layers = list(blocks[0].conv_block)
    assert isinstance(layers[3], nn.ReLU) and isinstance(layers[4], nn.Dropout) and layers[4].p == 0.5
    assert isinstance(layers[6], nn.Conv2d) and "conv_block.6.weight" in blocks[0].state_dict()


# --- PatchGAN --------------------------------------------------------------------------------


@pytest.mark.parametrize("aa", [True, False])
def test_patchgan_256_gives_30x30(aa):
    d = PatchGANDiscriminator(PatchGANConfig(ndf=2, antialias=aa))
    with torch.no_grad():
        out = d(torch.zeros(1, 3, 256, 256))
    assert out.shape == (1, 1, 30, 30)


def test_patchgan_channels():
    d = PatchGANDiscriminator(PatchGANConfig(ndf=4, n_layers=3))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 1]
    assert sum(isinstance(m, BlurDownsample) for m in d.modules()) == 3


# --- blur resampling ------------------------------------------------------------------------


def test_blur_down_preserves_constants_and_halves():
    x = torch.full((1, 2, 10, 14), 3.0)
    y = BlurDownsample(2)(x)
    assert y.shape == (1, 2, 5, 7)
    torch.testing.assert_close(y, torch.full_like(y, 3.0))


def test_blur_up_preserves_constants_and_doubles():
    x = torch.full((1, 2, 5, 7), -1.5)
    y = BlurUpsample(2)(x)
    assert y.shape == (1, 2, 10, 14)
    torch.testing.assert_close(y, torch.full_like(y, -1.5))


def test_blur_down_hand_value():
    # 1-D behaviour along x of a single row: [1,2,1]/4 blur after reflect padding, stride 2.
    x = torch.tensor([0.0, 4.0, 8.0, 0.0]).view(1, 1, 1, 4).expand(1, 1, 3, 4).contiguous()
    y = BlurDownsample(1)(x)
    # Reflect pad: [4, 0, 4, 8, 0, 8]; windows at 0 and 2: (4+0+4)/4 = 2, (4+16+0)/4 = 5.
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([2.0, 5.0]))


def test_blur_buffers_named_filt():
    assert set(dict(BlurDownsample(3).named_buffers())) == {"filt"}
    assert set(dict(BlurUpsample(3).named_buffers())) == {"filt"}
    assert BlurDownsample(3).filt.shape == (3, 1, 3, 3)
    assert BlurUpsample(3).filt.shape == (3, 1, 4, 4)


# --- against the reference networks.py -------------------------------------------------------


def test_blur_matches_reference(reference_networks):
    x = _randn(2, 5, 9, 12)
    torch.testing.assert_close(BlurDownsample(5)(x), reference_networks.Downsample(5)(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(BlurUpsample(5)(x), reference_networks.Upsample(5)(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(BlurDownsample(5).filt, reference_networks.Downsample(5).filt)
    torch.testing.assert_close(BlurUpsample(5).filt, reference_networks.Upsample(5).filt)


def _instance_norm():
    return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)


@pytest.mark.parametrize("aa", [True, False])
def test_generator_matches_reference(reference_networks, aa):
    ours = ResnetGenerator(ResnetGeneratorConfig(ngf=4, n_blocks=3, antialias_down=aa, antialias_up=aa))
    ref = reference_networks.ResnetGenerator(3, 3, 4, norm_layer=_instance_norm(), n_blocks=3,
                                             no_antialias=not aa, no_antialias_up=not aa)
    # Same state-dict keys and shapes: official checkpoints load without remapping.
    ours_sd, ref_sd = ours.state_dict(), ref.state_dict()
    assert list(ours_sd) == list(ref_sd)
    assert {k: tuple(v.shape) for k, v in ours_sd.items()} == {k: tuple(v.shape) for k, v in ref_sd.items()}
    for p in ours.parameters():
        nn.init.normal_(p, 0, 0.3)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = _randn(2, 3, 20, 28, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)
        layers = [0, 4, 8, 12]
        _, ref_feats = ref(x, list(layers), encode_only=False)
        for a, b in zip(ours.encode(x, layers), ref_feats, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("aa", [True, False])
def test_discriminator_matches_reference(reference_networks, aa):
    ours = PatchGANDiscriminator(PatchGANConfig(ndf=4, antialias=aa))
    ref = reference_networks.NLayerDiscriminator(3, 4, n_layers=3, norm_layer=_instance_norm(), no_antialias=not aa)
    assert list(ours.state_dict()) == list(ref.state_dict())
    for p in ours.parameters():
        nn.init.normal_(p, 0, 0.2)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = _randn(2, 3, 64, 64, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


def test_patch_projector_matches_reference(reference_networks):
    feats = [_randn(2, 3, 10, 10, seed=3), _randn(2, 8, 5, 5, seed=4)]
    ours = PatchProjector.for_features(feats, dim=16)
    ref = reference_networks.PatchSampleF(use_mlp=True, init_type="normal", init_gain=0.02, nc=16)
    ref.create_mlp(feats)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert {k for k in ours.state_dict()} == {f"mlp_{i}.{j}.{w}" for i in (0, 1) for j in (0, 2)
                                              for w in ("weight", "bias")}
    for p in ours.parameters():
        nn.init.normal_(p, 0, 0.3)
    ref.load_state_dict(ours.state_dict(), strict=True)
    ids = [torch.tensor([3, 17, 42, 99, 0]), torch.tensor([24, 1, 7])]
    with torch.no_grad():
        ours_out, ours_ids = ours(feats, 5, ids)
        ref_out, _ = ref(feats, 5, [i.numpy() for i in ids])
    for a, b in zip(ours_out, ref_out, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert [i.tolist() for i in ours_ids] == [i.tolist() for i in ids]


# --- against what the reference computed (tests/data; runs where the reference is absent, as in CI) ---------------


@pytest.mark.parametrize("case", ["resnet_aa", "resnet_plain", "patchgan_aa", "patchgan_plain"])
def test_networks_compute_what_the_reference_computed(case):
    net, io = reference_case(case)
    with torch.no_grad():
        torch.testing.assert_close(net(io["x"]), io["y"], rtol=1e-4, atol=1e-4)
        if case.startswith("resnet"):
            feats = net.encode(io["x"], [0, 4, 8, 12])
            for i, f in enumerate(feats):
                torch.testing.assert_close(f, io[f"feat{i}"], rtol=1e-4, atol=1e-4)


def test_patch_projector_computes_what_the_reference_computed():
    f, io = reference_case("projector")
    with torch.no_grad():
        out, ids = f([io["feat0"], io["feat1"]], 5, [io["ids0"], io["ids1"]])
    torch.testing.assert_close(out[0], io["out0"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[1], io["out1"], rtol=1e-4, atol=1e-5)


# --- PatchProjector ---------------------------------------------------------------------------


def _projector_and_feats():
    feats = [_randn(2, 3, 6, 6, seed=5), _randn(2, 8, 4, 4, seed=6)]
    f = PatchProjector.for_features(feats, dim=8)
    for p in f.parameters():
        nn.init.normal_(p, 0, 0.3)
    return f, feats


def test_projector_outputs_unit_norm_and_shapes():
    f, feats = _projector_and_feats()
    out, ids = f(feats, 5, generator=torch.Generator().manual_seed(0))
    assert [tuple(o.shape) for o in out] == [(2 * 5, 8), (2 * 5, 8)]
    for o in out:
        torch.testing.assert_close(o.norm(dim=1), torch.ones(o.shape[0]))
    assert [len(set(i.tolist())) for i in ids] == [5, 5]  # distinct locations
    assert all(int(i.max()) < n for i, n in zip(ids, (36, 16), strict=True))


def test_projector_reuses_ids_for_the_query():
    f, feats = _projector_and_feats()
    _, ids = f(feats, 4, generator=torch.Generator().manual_seed(1))
    other = [x * 2 + 1 for x in feats]
    queries, ids_q = f(other, 4, ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, ids_q, strict=True))
    # Row b*P + p of the query embeds location ids[p] of image b.
    for layer, (x, q) in enumerate(zip(other, queries, strict=True)):
        b, c, h, w = x.shape
        flat = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        manual = f.project(layer, flat[:, ids[layer]].reshape(-1, c))
        torch.testing.assert_close(q, manual)
        torch.testing.assert_close(q.view(b, 4, -1)[1, 2],
                                   f.project(layer, x[1, :, ids[layer][2] // w, ids[layer][2] % w]))


def test_projector_sampling_is_seeded():
    f, feats = _projector_and_feats()
    _, a = f(feats, 4, generator=torch.Generator().manual_seed(7))
    _, b = f(feats, 4, generator=torch.Generator().manual_seed(7))
    _, c = f(feats, 4, generator=torch.Generator().manual_seed(8))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_projector_more_patches_than_locations_takes_all():
    f, feats = _projector_and_feats()
    out, ids = f(feats, 1000, generator=torch.Generator().manual_seed(0))
    assert [sorted(i.tolist()) for i in ids] == [list(range(36)), list(range(16))]
    assert [o.shape[0] for o in out] == [2 * 36, 2 * 16]


def test_projector_num_patches_zero_returns_maps():
    f, feats = _projector_and_feats()
    maps, _ = f(feats, 0)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 6, 6), (2, 8, 4, 4)]
    for m in maps:
        torch.testing.assert_close(m.norm(dim=1), torch.ones(m.shape[0], *m.shape[2:]))
    # Location (y, x) of the map is the embedding of the feature vector there.
    torch.testing.assert_close(maps[1][1, :, 2, 3], f.project(1, feats[1][1, :, 2, 3]))
