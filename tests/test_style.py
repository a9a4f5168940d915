"""Style yardsticks (issue 14): colour/texture ratios, content, colours in neither image, the CLI."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from cutcore.cli import main
from cutcore.metrics import style
from cutcore.metrics.style import YARDSTICKS, foreign_colour_fraction, foreign_colour_mask, style_report

REPORT_KEYS = {*YARDSTICKS, "colour_distance_output", "colour_distance_photo", "texture_distance_output",
               "texture_distance_photo"}

H, W = 192, 256
LIME = (50, 205, 50)


def photo(h: int = H, w: int = W) -> np.ndarray:
    """A 'photo': grey-blue sky gradient, a dark cliff, a sea band and a few hard-edged shapes."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.zeros((h, w, 3))
    img[:] = np.stack([0.55 + 0.2 * yy, 0.62 + 0.15 * yy, 0.75 + 0.1 * yy], -1)  # sky
    img[yy > 0.65] = (0.20, 0.32, 0.45)  # sea
    cliff = (xx < 0.45) & (yy > 0.3 + 0.3 * xx)
    img[cliff] = (0.38, 0.35, 0.30)
    for cy, cx, r in ((0.2, 0.7, 0.06), (0.5, 0.8, 0.08)):
        img[(yy - cy) ** 2 + ((xx - cx) * w / h) ** 2 < r * r] = (0.85, 0.85, 0.82)
    return (img * 255).round().astype(np.uint8)


def artwork(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """An 'artwork': a pastel palette (teal, pink, cream) in short brush strokes."""
    rng = np.random.default_rng(seed)
    palette = np.array([(120, 190, 180), (230, 180, 190), (240, 228, 200), (90, 150, 160)], np.float64)
    img = np.zeros((h, w, 3))
    img[:] = palette[2]
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(900):  # strokes: short oriented ellipses of one palette colour with a little jitter
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        a = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)
        v = -(xx - cx) * np.sin(a) + (yy - cy) * np.cos(a)
        img[(u / 7) ** 2 + (v / 1.6) ** 2 < 1] = palette[rng.integers(0, 4)] + rng.normal(0, 6, 3)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def match_histograms(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per-channel histogram matching of src to ref: a recolouring toward ref's palette."""
    out = np.empty_like(src)
    for c in range(3):
        s_vals, s_idx, s_cnt = np.unique(src[..., c].ravel(), return_inverse=True, return_counts=True)
        r_vals, r_cnt = np.unique(ref[..., c].ravel(), return_counts=True)
        mapped = np.interp(np.cumsum(s_cnt) / s_cnt.sum(), np.cumsum(r_cnt) / r_cnt.sum(), r_vals)
        out[..., c] = mapped[s_idx].reshape(src.shape[:2]).round().astype(np.uint8)
    return out


def with_door(img: np.ndarray, colour=LIME) -> np.ndarray:
    out = img.copy()
    out[100:170, 150:190] = colour  # 70 x 40 px = 5.7% of the image
    return out


@pytest.fixture(scope="module")
def triple():
    return photo(), artwork()


def test_identity_output_is_the_photo(triple):
    p, a = triple
    s = style_report(p, a, p)
    # Ratios of equal SWDs, not the 1 that a photo already in the artwork's palette gets: the pair really
    # differs, as the artwork itself scoring exactly 0 in test_output_is_the_artwork shows.
    assert s["colour_ratio"] == 1.0 and s["texture_ratio"] == 1.0
    assert s["content"] == pytest.approx(1.0, abs=1e-9)
    assert foreign_colour_fraction(p, a, p) == 0.0


def test_output_is_the_artwork(triple):
    p, a = triple
    s = style_report(p, a, a)  # same size as the photo: identical samples, exactly 0
    assert s["colour_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert s["texture_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert s["content"] < 0.3  # the artwork's strokes share nothing with the photo's edges
    assert foreign_colour_fraction(p, a, a) == 0.0
    # The artwork at another size and aspect, the output resized to the photo's: still ~0.
    big = artwork(300, 280, seed=0)
    out = np.asarray(Image.fromarray(big).resize((W, H), Image.BILINEAR))
    assert style_report(p, big, out)["colour_ratio"] < 0.1


def test_recolouring_toward_the_palette_lowers_colour_ratio(triple):
    p, a = triple
    recoloured = match_histograms(p, a)
    s = style_report(p, a, recoloured)
    assert s["colour_ratio"] < 0.6
    assert s["content"] > 0.6  # same shapes; edge contrasts change with the colours
    assert foreign_colour_fraction(p, a, recoloured) < 0.01


def test_a_foreign_colour_raises_colour_ratio_and_is_flagged(triple):
    p, a = triple
    door = with_door(p)
    # A photo is already far from the artwork's palette, so 6% of lime moves the ratio a little...
    assert style_report(p, a, door)["colour_ratio"] > 1.002
    # ...and an output in the artwork's palette a lot. (Not every recolouring: replacing pixels of a
    # colour the output has too much of can even lower the SWD; foreign_colour_fraction is the check.)
    assert style_report(p, a, with_door(a))["colour_ratio"] > 0.05
    share = 70 * 40 / (H * W)
    assert foreign_colour_fraction(p, a, door) == pytest.approx(share, abs=0.01)
    mask = foreign_colour_mask(p, a, door)
    assert mask.shape == (H, W) and mask[110:160, 155:185].all() and not mask[:90].any()
    # The same door in the artwork's pink is a colour of the artwork: not foreign.
    assert foreign_colour_fraction(p, a, with_door(p, (230, 180, 190))) < 0.005
    # Recoloured toward the palette but with a lime door: the door is still caught.
    assert foreign_colour_fraction(p, a, with_door(match_histograms(p, a))) == pytest.approx(share, abs=0.01)


def test_stray_pixels_do_not_legitimise_a_colour(triple):
    p, a = triple
    speck = p.copy()
    speck[0, 0] = LIME  # one pixel of lime in the photo (< 1e-4 of it)
    assert foreign_colour_fraction(speck, a, with_door(p)) == pytest.approx(70 * 40 / (H * W), abs=0.01)
    lime_in_art = a.copy()
    lime_in_art[:40, :40] = LIME  # a real patch of it in the artwork: now it belongs
    assert foreign_colour_fraction(p, lime_in_art, with_door(p)) < 0.005


def test_report_scores_foreign_colours_with_foreign_colour_fraction(triple):
    p, a = triple
    # Noise spreads the output's ΔEs across the threshold: another threshold or share would give another share.
    noisy = np.clip(p + np.random.default_rng(1).normal(0, 30, p.shape), 0, 255).astype(np.uint8)
    assert style_report(p, a, noisy)["foreign_colour_fraction"] == foreign_colour_fraction(p, a, noisy) > 0.1

def test_noise_lowers_content(triple):
    p, a = triple
    rng = np.random.default_rng(1)
    contents = []
    for sigma in (10, 30, 60):
        noisy = np.clip(p + rng.normal(0, sigma, p.shape), 0, 255).astype(np.uint8)
        contents.append(style_report(p, a, noisy)["content"])
    assert contents[0] < 0.99 and contents[2] < 0.6
    assert contents[0] > contents[1] > contents[2]
    # A blurred photo keeps its structure better than a noisy one.
    blurred = np.asarray(Image.fromarray(p).filter(ImageFilter.GaussianBlur(1.5)))
    assert style_report(p, a, blurred)["content"] > contents[1]


def test_brush_texture_lowers_texture_ratio(triple):
    p, a = triple
    high_pass = a.astype(np.float64) - np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(2)), np.float64)
    textured = np.clip(p + high_pass, 0, 255).astype(np.uint8)
    s = style_report(p, a, textured)
    assert s["texture_ratio"] < 0.3
    assert s["colour_ratio"] == pytest.approx(1.0, abs=0.05)  # texture without recolouring
    # A blurred photo has even less texture than the photo: further from the artwork.
    blurred = np.asarray(Image.fromarray(p).filter(ImageFilter.GaussianBlur(1.0)))
    assert style_report(p, a, blurred)["texture_ratio"] > 1.0


def test_deterministic_and_input_types(triple):
    p, a = triple
    out = with_door(match_histograms(p, a))
    first = style_report(p, a, out)
    assert style_report(p, a, out) == first
    assert style_report(Image.fromarray(p), Image.fromarray(a).convert("RGBA"), Image.fromarray(out)) == first
    assert style_report(p, a, with_door(match_histograms(p, a), (0, 255, 0))) != first
    assert set(first) == REPORT_KEYS


def test_resolution_robust(triple):
    p, a = triple
    base = style_report(p, a, with_door(match_histograms(p, a)))
    # The same scene at 3x: photo, artwork and output all bigger; the output at yet another size.
    p3 = np.asarray(Image.fromarray(p).resize((3 * W, 3 * H), Image.NEAREST))
    a3 = np.asarray(Image.fromarray(a).resize((3 * W, 3 * H), Image.BICUBIC))
    o2 = np.asarray(Image.fromarray(with_door(match_histograms(p, a))).resize((2 * W, 2 * H), Image.NEAREST))
    big = style_report(p3, a3, o2)
    for key in ("colour_ratio", "texture_ratio"):
        assert big[key] == pytest.approx(base[key], rel=0.15), key
    assert big["content"] == pytest.approx(base["content"], abs=0.05)
    assert big["foreign_colour_fraction"] == pytest.approx(base["foreign_colour_fraction"], abs=0.01)
    # The output at the photo's size 3x: the output == photo identity holds at any size.
    assert style_report(p3, a, p)["colour_ratio"] == pytest.approx(1.0, abs=0.05)


def test_output_must_have_the_photos_aspect(triple):
    p, a = triple
    with pytest.raises(ValueError, match="aspect ratio"):
        style_report(p, a, p[:, : W // 2])


def test_the_distances_behind_each_ratio(triple):
    p, a = triple
    r = style_report(p, a, with_door(match_histograms(p, a)))
    for kind in ("colour", "texture"):
        out, photo = r[f"{kind}_distance_output"], r[f"{kind}_distance_photo"]
        assert out > 0 and photo > 0 and r[f"{kind}_ratio"] == pytest.approx(out / photo, rel=1e-6)
    # The same output against a photo that is already the artwork: its distance is 0, the ratio undefined.
    same = style_report(a, a, with_door(a))
    assert same["texture_distance_photo"] == 0.0 and same["texture_distance_output"] > 0
    assert math.isnan(same["texture_ratio"])


def test_photo_equal_to_artwork_gives_nan_ratio_not_a_crash():
    p = photo()
    assert style_report(p, p, p)["colour_ratio"] == 1.0
    assert math.isnan(style_report(p, p, with_door(p))["colour_ratio"])


def test_sliced_w1_from_quantile_functions():
    def sliced_w1(a, b, directions):  # as style_report composes them
        return style.quantile_distance(*(style.projected_quantiles(x, directions) for x in (a, b)))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 3)).astype(np.float32)
    assert sliced_w1(x, x, 16) == 0.0
    # A shift by t along every axis: each 1-D projection shifts by t * (d . 1); mean |d . 1| over unit
    # directions in 3-D is sqrt(3)/2.
    assert sliced_w1(x, x + 0.5, 512) == pytest.approx(0.5 * math.sqrt(3) / 2, rel=0.05)
    # Sets of different sizes compare directly.
    assert sliced_w1(x, x[:1000], 64) < 0.1  # sampling noise only, vs 0.43 for the shift


def test_cli(tmp_path, triple, capsys):
    p, a = triple
    paths = {}
    for name, img in (("photo", p), ("artwork", a), ("output", with_door(p))):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(img).save(paths[name])
    argv = ["style", "--photo", str(paths["photo"]), "--artwork", str(paths["artwork"]), "--output",
            str(paths["output"])]
    assert main(argv + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == REPORT_KEYS
    assert result == style_report(p, a, with_door(p))
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| colour_ratio |" in table and "| foreign_colour_fraction |" in table
    assert "| texture_distance_photo |" in table
    assert main(["style", "--photo", str(tmp_path / "missing.png"), "--artwork", str(paths["artwork"]),
                       "--output", str(paths["output"])]) == 2
    assert "missing.png" in capsys.readouterr().err
