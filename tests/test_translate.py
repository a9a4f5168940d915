"""Inference: loading saved generators, any-size translation, tiled translation, errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import domain_a_image, domain_b_image, tiny_run_config
from PIL import Image
from torch import nn

from cutcore import translate
from cutcore.checkpoint import module_state, save_tensors, write_json
from cutcore.imageio import ImageLoadError, load_rgb, to_pil, to_tensor
from cutcore.model_folder import load_model
from cutcore.models import build_model
from cutcore.nets import ResnetGenerator, ResnetGeneratorConfig
from cutcore.translate import (
    SkippedImages,
    _starts,
    check_scale,
    run_generator,
    translate_image,
    translate_path,
    translate_tiled,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _save_model(folder: Path, preset_name: str = "cut", dtype: torch.dtype | None = None, seed: int = 0):
    cfg = tiny_run_config(preset_name, Path("unused"))
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    for p in model.parameters():  # more contrast than the 0.02-gain init: outputs that can differ visibly
        nn.init.normal_(p, 0, 0.2)
    save_tensors(folder / "model.safetensors", module_state(model.inference_modules(), dtype))
    write_json(folder / "config.json", cfg)
    return model


@pytest.fixture
def cut_dir(tmp_path):
    folder = tmp_path / "model"
    model = _save_model(folder)
    return folder, model


def _as_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int16)


# --- loading ------------------------------------------------------------------------------------


def test_load_model_reproduces_the_saved_generator(cut_dir):
    folder, model = cut_dir
    loaded = load_model(folder, "cpu")
    assert loaded.path == folder and loaded.size_multiple == 4
    assert not loaded.generator.training
    x = torch.rand(1, 3, 24, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(x), model.G(x), rtol=0, atol=0)
    assert loaded.heads is not None and loaded.heads.channels == model.F.channels
    assert loaded.nce_layers == model.cfg.nce_layers


def test_load_fp16_export(tmp_path):
    model = _save_model(tmp_path / "m16", dtype=torch.float16)
    loaded = load_model(tmp_path / "m16", "cpu")
    assert all(p.dtype == torch.float32 for p in loaded.generator.parameters())
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(x), model.G(x), rtol=0, atol=2e-2)


def test_load_model_errors(tmp_path, cut_dir):
    with pytest.raises(FileNotFoundError, match="nothing: not found"):
        load_model(tmp_path / "nothing", "cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no model.safetensors here and no checkpoints"):
        load_model(tmp_path / "empty", "cpu")
    with pytest.raises(ValueError, match="BtoA"):
        load_model(cut_dir[0], "cpu", "BtoA")
    with pytest.raises(ValueError, match="direction must be AtoB or BtoA, not 'AB'"):
        load_model(cut_dir[0], "cpu", "AB")


def test_truncated_weights_are_one_line_naming_the_file(tmp_path, cut_dir):
    weights = cut_dir[0] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"model.safetensors: not a readable safetensors file, truncated or corrupt"):
        load_model(cut_dir[0], "cpu")


def test_weights_that_do_not_fit_the_config_name_the_first_difference(tmp_path, cut_dir):
    config = json.loads((cut_dir[0] / "config.json").read_text())
    config["model"]["generator"]["ngf"] = 8  # the weights are ngf 4
    (cut_dir[0] / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as caught:
        load_model(cut_dir[0], "cpu")
    message = str(caught.value)
    assert message.startswith(f"{cut_dir[0] / 'model.safetensors'}: does not match the config.json beside it: "
                               "G.model.1.weight is (4, 3, 7, 7) in the weights, (8, 3, 7, 7)")
    assert "\n" not in message and message.count("G.model") == 1  # not torch's dump of every tensor


def test_heads_with_a_gap_in_their_layers_are_one_line(tmp_path, cut_dir):
    """It was a bare KeyError traceback (mlp_1 missing while mlp_2 is there)."""
    from safetensors.torch import load_file, save_file

    weights = cut_dir[0] / "model.safetensors"
    tensors = load_file(weights)
    tensors["F.mlp_9.0.weight"] = tensors.pop("F.mlp_1.0.weight")
    save_file(tensors, weights)
    with pytest.raises(ValueError, match=r"model.safetensors: its F.\* tensors are not PatchNCE heads"):
        load_model(cut_dir[0], "cpu")


@pytest.mark.parametrize("text, needle", [("{'model': 1}", "not valid JSON"), ('{"preset": "cut", "colour": 1}',
                                                                               "not a cutcore model config")])
def test_broken_config_json_names_the_file(tmp_path, cut_dir, text, needle):
    (cut_dir[0] / "config.json").write_text(text)
    with pytest.raises(ValueError, match=f"config.json: {needle}"):
        load_model(cut_dir[0], "cpu")


def test_cyclegan_directions(tmp_path):
    model = _save_model(tmp_path / "cg", "cyclegan")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(load_model(tmp_path / "cg", "cpu", "AtoB").generator(x), model.G_A(x))
        torch.testing.assert_close(load_model(tmp_path / "cg", "cpu", "BtoA").generator(x), model.G_B(x))


# --- any size -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(53, 37), (37, 53), (16, 16), (7, 5), (101, 9)])
def test_any_size_gives_same_size_output(cut_dir, size):
    loaded = load_model(cut_dir[0], "cpu")
    img = domain_a_image(1, size)
    out = translate_image(loaded, img)
    assert out.size == img.size and out.mode == "RGB"
    # It is the generator applied to the reflect-padded image, cropped back.
    x = to_tensor(img)[None]
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, (-w) % 4, 0, (-h) % 4), mode="reflect" if (-h) % 4 < h and (-w) % 4 < w else "replicate")
    with torch.no_grad():
        expected = to_pil(loaded.generator(padded)[0, :, :h, :w])
    assert np.abs(_as_array(out) - _as_array(expected)).max() == 0


@pytest.mark.parametrize("size", [(3, 40), (4, 4), (1, 1)])
def test_tiny_images_translate(cut_dir, size):
    """Padded to at least two size multiples (the innermost reflection pads need 2 px), then cropped back."""
    loaded = load_model(cut_dir[0], "cpu")
    img = domain_a_image(1, size)
    out = translate_image(loaded, img)
    assert out.size == img.size and out.mode == "RGB"
    x = to_tensor(img)[None]
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, max(8, w) - w, 0, max(8, h) - h), mode="replicate")  # 8 = 2 multiples of 4
    with torch.no_grad():
        expected = to_pil(loaded.generator(padded)[0, :, :h, :w])
    assert np.abs(_as_array(out) - _as_array(expected)).max() == 0


@pytest.mark.parametrize("make", [lambda x: x[0], lambda x: x.add(1).mul(127.5).to(torch.uint8)], ids=["3-d", "uint8"])
def test_the_generator_runner_says_what_tensor_it_takes(cut_dir, make):
    """A (3, H, W) tensor failed deep in a convolution ("expected weight..."), a uint8 one in a dtype check."""
    loaded = load_model(cut_dir[0], "cpu")
    with pytest.raises(ValueError, match=r"^expected a float \(N, 3, H, W\) tensor in \[-1, 1\], got "):
        translate.run_generator(loaded.generator, make(to_tensor(domain_a_image(1, (20, 16)))[None]))

@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "P", "CMYK", "I;16"])
def test_any_pil_mode_translates_as_the_file_loaded_from_disk(cut_dir, tmp_path, mode):
    """An image straight from Image.open (not through load_rgb) is made RGB the same way, at any scale."""
    folder, _ = cut_dir
    model = load_model(folder, "cpu")
    rgb = domain_a_image(0, (24, 20))
    img = rgb.convert("I;16") if mode == "I;16" else rgb.convert(mode)
    path = tmp_path / ("x.tif" if mode in ("CMYK", "I;16") else "x.png")
    img.save(path)
    for scale in (1.0, 0.5):
        want = translate_image(model, load_rgb(path), scale=scale)
        assert np.array_equal(_as_array(translate_image(model, Image.open(path), scale=scale)), _as_array(want))


def test_progress_untiled(cut_dir):
    calls = []
    translate_image(load_model(cut_dir[0], "cpu"), domain_a_image(0, (20, 12)),
                    progress=lambda d, t: calls.append((d, t)))
    assert calls == [(1, 1)]


# --- tiling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length,tile,stride", [(300, 64, 48), (64, 64, 48), (40, 64, 48), (161, 32, 24), (100, 48, 1)])
def test_tile_starts_cover_the_image(length, tile, stride):
    starts = _starts(length, tile, stride)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert min(starts[-1] + tile, length) == length  # the last tile ends at the border
    assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))  # no gaps, overlap >= tile - stride
    assert all(s + tile <= length for s in starts) or starts == [0]


def _local_conv() -> nn.Module:
    """A 3x3 'generator' without normalisation: its output at a pixel depends on its 3x3 neighbourhood only."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), nn.Tanh())
    nn.init.normal_(net[0].weight, 0, 0.5)
    return net.eval()


@pytest.mark.parametrize("size,tile,overlap", [((160, 64), 48, 8), ((300, 40), 64, 16), ((70, 130), 40, 12)])
def test_tiled_equals_untiled_for_a_local_generator(size, tile, overlap):
    net = _local_conv()
    img = domain_b_image(2, size)
    full = _as_array(to_pil(run_generator(net, to_tensor(img)[None])[0]))
    calls = []
    tiled_img = translate_tiled(net, img, tile=tile, overlap=overlap, progress=lambda d, t: calls.append((d, t)))
    tiled = _as_array(tiled_img)
    assert tiled_img.size == img.size
    w, h = size
    n_tiles = len(_starts(h, tile, tile - overlap)) * len(_starts(w, tile, tile - overlap))
    assert n_tiles > 1 and calls == [(i + 1, n_tiles) for i in range(n_tiles)]
    assert full.std() > 20  # the output has content, so equality means something
    assert np.abs(full - tiled).max() <= 2  # the 1-px tile borders carry only a ramp's tail of weight
    assert np.mean(np.abs(full - tiled) <= 1) > 0.99


def _without_instance_norm(g: nn.Module) -> nn.Module:
    for module in list(g.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.InstanceNorm2d):
                setattr(module, name, nn.Identity())
    return g


def _far_columns(width: int, tile: int, overlap: int, margin: int) -> np.ndarray:
    """Columns where every tile with weight there is at least `margin` px from its own inner edges."""
    far = np.ones(width, bool)
    starts = _starts(width, tile, tile - overlap)
    for s in starts:
        inner = [e for e in (s if s > 0 else None, s + tile if s + tile < width else None) if e is not None]
        for x in range(s, min(s + tile, width)):
            if any(abs(x - e) < margin for e in inner):
                far[x] = False
    return far


def test_tiled_resnet_without_norm_matches_far_from_seams():
    torch.manual_seed(0)
    g = _without_instance_norm(ResnetGenerator(ResnetGeneratorConfig(ngf=8, n_blocks=1)))
    last = [m for m in g.modules() if isinstance(m, nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.mul_(40)  # contrast: the un-normalised random net is nearly flat otherwise
    g.eval()
    img = domain_a_image(3, (300, 64))  # wide: tiles along x only (height < tile)
    full = _as_array(to_pil(run_generator(g, to_tensor(img)[None])[0]))
    tiled = _as_array(translate_tiled(g, img, tile=128, overlap=48))
    assert tiled.shape == full.shape and full.std() > 10
    far = _far_columns(300, 128, 48, margin=48)
    assert far.sum() > 100
    assert np.abs(full[:, far] - tiled[:, far]).max() <= 1
    # Near seams the two differ (tiles see less context) -- but only mildly, thanks to blending.
    assert np.abs(full - tiled).mean() < 3


def _seam_ratio(a: np.ndarray, columns: list[int]) -> float:
    """Worst jump across a seam column relative to the jumps in the 8 columns around it."""
    gx = np.abs(np.diff(a.astype(float), axis=1)).mean(axis=(0, 2))
    worst = 0.0
    for c in columns:
        around = np.concatenate([gx[c - 5 : c - 1], gx[c + 1 : c + 5]])
        worst = max(worst, gx[c - 1] / max(around.mean(), 1e-6))
    return worst


def test_tiled_resnet_with_instance_norm_has_no_visible_seams():
    torch.manual_seed(0)
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=8, n_blocks=2)).eval()
    img = domain_a_image(3, (160, 64))
    x = to_tensor(img)[None]
    full = _as_array(to_pil(run_generator(g, x)[0]))
    tiled = _as_array(translate_tiled(g, img, tile=64, overlap=16))
    assert tiled.shape == full.shape
    # Instance norm sees per-tile statistics, so tiles differ from the full image (for this random net the
    # correlation is only ~0.4-0.6). What tiling must get right: inside each tile's full-weight interior
    # the result is exactly that tile's translation, at the right place.
    starts = _starts(160, 64, 48)
    assert starts == [0, 48, 96]
    per_tile = [_as_array(to_pil(run_generator(g, x[..., s : s + 64])[0])) for s in starts]
    interiors = [(0, 48), (64, 96), (112, 160)]  # full weight: image borders, or past the 16-px ramps
    for s, t, (a, b) in zip(starts, per_tile, interiors, strict=True):
        assert np.abs(tiled[:, a:b] - t[:, a - s : b - s]).max() <= 1
    # Between them the blend is smooth: no jump at any tile edge.
    seams = [s for s in starts if s > 0] + [s + 64 for s in starts if s + 64 < 160]
    assert _seam_ratio(tiled, seams) < 2.0
    # The metric does see hard seams: paste the same tiles without blending.
    hard = full.copy()
    for s, t in zip(starts, per_tile, strict=True):
        hard[:, s : s + 64] = t
    assert _seam_ratio(hard, [s for s in starts if s > 0]) > 2.5


def test_tile_larger_than_image_is_untiled(cut_dir):
    loaded = load_model(cut_dir[0], "cpu")
    img = domain_a_image(4, (40, 28))
    assert np.array_equal(_as_array(translate_image(loaded, img, tile=64)), _as_array(translate_image(loaded, img)))


def test_tiled_through_translate_image(cut_dir):
    loaded = load_model(cut_dir[0], "cpu")
    img = domain_b_image(5, (150, 36))
    reported = []
    out = translate_image(loaded, img, tile=48, overlap=8, progress=lambda done, total: reported.append(total))
    assert out.size == img.size
    assert reported and reported[-1] > 1  # tiled, in several tiles
    assert np.array_equal(_as_array(out), _as_array(translate_tiled(loaded.generator, img, tile=48, overlap=8)))


def test_translate_image_reads_a_file_it_is_given(cut_dir, tmp_path):
    """A path is read as `load_rgb` reads it (a str path failed with "'str' object has no attribute 'size'")."""
    loaded = load_model(cut_dir[0], "cpu")
    img = domain_a_image(2, (40, 24))
    img.save(tmp_path / "tile.png")
    expected = _as_array(translate_image(loaded, img))
    for given in (tmp_path / "tile.png", str(tmp_path / "tile.png")):
        assert np.array_equal(_as_array(translate_image(loaded, given)), expected)
    with pytest.raises(ImageLoadError, match="missing.png: file not found"):
        translate_image(loaded, tmp_path / "missing.png")

def test_a_scale_past_the_pixel_limit_says_the_size_it_would_make():
    with pytest.raises(ValueError, match="scale 1e[+]06 would make a 512x384 image 512000000x384000000 px, more than "
                                         "the 300,000,000 px an image may have"):
        check_scale((512, 384), 1e6)
    check_scale((512, 384), 4.0)


@pytest.mark.parametrize("scale, needle", [(20, "would make a 4x3 image 80x60 px"), (0, "positive"), (-1, "positive"),
                                           (float("nan"), "positive"), (float("inf"), "positive")])
def test_absurd_scales_are_refused_before_resizing(cut_dir, monkeypatch, scale, needle):
    # A lower limit, so that without the check the resize is small (the real limit's would exhaust memory).
    monkeypatch.setattr(translate, "MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match=needle):
        translate_image(load_model(cut_dir[0], "cpu"), domain_a_image(0, (4, 3)), scale=scale)


def test_overlap_too_large_is_an_error():
    with pytest.raises(ValueError, match="overlap"):
        translate_tiled(_local_conv(), domain_a_image(0, (80, 80)), tile=32, overlap=16)


# --- files and folders -------------------------------------------------------------------------------


def test_translate_path_folder(cut_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    domain_a_image(0, (37, 53)).save(src / "one.png")
    domain_a_image(1, (20, 24)).convert("L").save(src / "two.jpg")
    (src / "readme.txt").write_text("ignored")
    written = translate_path(load_model(cut_dir[0], "cpu"), src, tmp_path / "out")
    assert sorted(p.name for p in written) == ["one.png", "two.png"]
    assert Image.open(tmp_path / "out" / "one.png").size == (37, 53)
    assert Image.open(tmp_path / "out" / "two.png").size == (20, 24)


def test_translate_path_single_file_and_bad_file(cut_dir, tmp_path):
    loaded = load_model(cut_dir[0], "cpu")
    domain_a_image(0, (30, 22)).save(tmp_path / "img.png")
    assert translate_path(loaded, tmp_path / "img.png", tmp_path / "o") == [tmp_path / "o" / "img.png"]
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ImageLoadError, match="bad.png"):
        translate_path(loaded, tmp_path / "bad.png", tmp_path / "o")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageLoadError, match="notes.txt"):
        translate_path(loaded, tmp_path / "notes.txt", tmp_path / "o")
    with pytest.raises(ImageLoadError, match="missing.png"):
        translate_path(loaded, tmp_path / "missing.png", tmp_path / "o")


def test_translate_path_never_replaces_an_input_and_writes_a_named_file(cut_dir, tmp_path):
    loaded = load_model(cut_dir[0], "cpu")
    src = tmp_path / "in"
    src.mkdir()
    domain_a_image(0, (20, 20)).save(src / "x.png")
    domain_a_image(1, (20, 20)).save(src / "y.jpg")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    with pytest.raises(ValueError, match=r"x.png \(an input\) would be replaced by its own translation"):
        translate_path(loaded, src, src)  # x.png -> x.png: refused before anything is written
    with pytest.raises(ValueError, match=r"x.png \(an input\) would be replaced"):
        translate_path(loaded, src / "x.png", src)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before
    # Results in a folder inside the inputs, translated again: out/x.png is an input and x.png's destination.
    translate_path(loaded, src, src / "out")
    with pytest.raises(ValueError, match=r"out/x.png \(an input\) would be replaced by the translation of .*in/x.png"):
        translate_path(loaded, src, src / "out")
    # One file may be written to a named image; its suffix picks the format.
    assert translate_path(loaded, src / "x.png", tmp_path / "res" / "map.jpg") == [tmp_path / "res" / "map.jpg"]
    assert Image.open(tmp_path / "res" / "map.jpg").format == "JPEG"
    with pytest.raises(ValueError, match="a folder of images is translated into a folder"):
        translate_path(loaded, src, tmp_path / "all.png")


def test_translate_path_does_not_overwrite_same_stem_inputs(cut_dir, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    domain_a_image(0, (20, 20)).save(src / "x.png")
    domain_a_image(1, (24, 16)).save(src / "x.jpg")
    domain_a_image(2, (16, 28)).save(src / "sub" / "x.png")
    written = translate_path(load_model(cut_dir[0], "cpu"), src, tmp_path / "out")
    assert len(set(written)) == 3
    assert sorted(Image.open(p).size for p in written) == sorted([(20, 20), (24, 16), (16, 28)])


def test_translate_path_folder_skips_unreadable_images_and_translates_the_rest(cut_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # sorted first
    domain_a_image(0, (20, 24)).save(src / "b.png")
    domain_a_image(1, (16, 16)).save(src / "c.jpg")
    heard = []
    summary = r"^1 of 3 images could not be read \(skipped\): .*a_corrupt.png$"
    with pytest.raises(SkippedImages, match=summary) as caught:
        translate_path(load_model(cut_dir[0], "cpu"), src, tmp_path / "out", report=lambda f, r: heard.append((f, r)))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.png", "c.png"]
    assert caught.value.skipped == [src / "a_corrupt.png"] and len(caught.value.written) == 2
    assert [f.name for f, _ in heard] == ["a_corrupt.png", "b.png", "c.jpg"]
    assert isinstance(heard[0][1], ImageLoadError) and heard[1][1] == tmp_path / "out" / "b.png"


def test_translate_path_folder_without_images_is_an_error(cut_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "notes.txt").write_text("hello")
    for folder in (tmp_path / "empty", tmp_path / "text"):
        with pytest.raises(ValueError, match=f"^{folder}: no images here \\(accepted: .*\\.jpg, .*\\.png"):
            translate_path(load_model(cut_dir[0], "cpu"), folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_inference_and_export_never_import_the_training_stack():
    """Dependencies point one way: loading and translating a model (the app, `translate`), drawing correspondences,
    evaluating and exporting import no losses, training models, loops, trainer or training data."""
    import subprocess
    import sys

    from helpers import subprocess_env

    training = ["train", "loop", "losses", "models", "interrupt", "data", "budget", "distributed"]
    code = ("import sys, cutcore.translate, cutcore.model_folder, cutcore.correspondence, cutcore.evaluate, "
            "cutcore.export, cutcore.nets.resnet, cutcore.nets.stylegan2, cutcore.metrics.style; "
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
            f"{[['cutcore', m] for m in training]}))")
    done = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
