"""Tests for cutcore.metrics: FID (no real weights needed), Laplacian SWD, paired map metrics."""
from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image, ImageFilter
from pytorch_fid import fid_score
from pytorch_fid import inception as pfid_inception
from torch import nn

from cutcore.metrics import (
    FIDFeatureExtractor,
    FIDWeightsUnavailable,
    colour_breakdown,
    compute_fid,
    extract_features,
    fid_from_features,
    frechet_distance,
    laplacian_pyramid,
    load_fid_inception,
    most_common_colour_baseline,
    paired_metrics,
    pixel_accuracy,
    resize_rgb,
    resolve_fid_weights,
    rmse,
    sliced_wasserstein,
    swd,
)
from cutcore.metrics.swd import pyr_down, pyr_up

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
SAT2MAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "sat2map"


def random_images(n: int, h: int = 32, w: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def textures(n: int, h: int = 64, w: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Smooth colour blobs plus mild grain: structure at every pyramid level."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        low = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(low).resize((w, h), Image.BICUBIC)) + rng.normal(0, 12, (h, w, 3))
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


# ---------------------------------------------------------------- paired metrics


def test_pixel_accuracy_threshold_is_strict_and_overflow_safe():
    target = np.zeros((2, 2, 3), np.uint8)
    pred = target.copy()
    pred[0, 0, 1] = 4  # off by 4 in one channel: correct
    pred[0, 1, 2] = 5  # off by exactly delta: wrong
    pred[1, 0] = (2, 0, 0)
    target[1, 0] = (254, 0, 0)  # uint8 subtraction would wrap 2 - 254 to 4: must be wrong
    # pixel (1, 1) identical: correct
    assert pixel_accuracy(pred, target, delta=5) == 0.5
    assert pixel_accuracy(pred, target, delta=6) == 0.75


def test_rmse_divides_by_pixels_not_channels():
    target = np.full((2, 2, 3), 100, np.uint8)
    pred = target.copy()
    pred[0, 0] = (103, 96, 100)  # 9 + 16 = 25
    pred[1, 1] = (100, 100, 90)  # 100, and pred < target exercises signed arithmetic
    assert rmse(pred, target) == pytest.approx(np.sqrt(125 / 4))


def test_paired_metrics_resizes_and_averages_over_images():
    # Uniform 512x512 images stay uniform after the resize to 256.
    pred = [np.full((512, 512, 3), 10, np.uint8), np.full((300, 200, 3), 10, np.uint8)]
    target = [np.full((512, 512, 3), (10, 10, 16), np.uint8), np.full((256, 256, 3), (10, 12, 10), np.uint8)]
    out = paired_metrics(pred, target)
    assert out["n"] == 2
    assert out["accuracy"] == pytest.approx(0.5)  # 0 for the first pair (diff 6), 1 for the second (diff 2)
    assert out["rmse"] == pytest.approx((6 + 2) / 2)  # per pixel sqrt(36) and sqrt(4), averaged over images


def test_paired_metrics_accepts_pil_and_rejects_bad_input():
    img = random_images(1, 16, 16)[0]
    out = paired_metrics([Image.fromarray(img)], [img], size=16)
    assert out == {"accuracy": 1.0, "rmse": 0.0, "n": 1}
    assert resize_rgb(Image.fromarray(img).convert("L"), 16).shape == (16, 16, 3)
    with pytest.raises(ValueError):
        paired_metrics([img, img], [img], size=16)
    with pytest.raises(ValueError):
        paired_metrics([img.astype(np.float32) / 255], [img], size=16)
    with pytest.raises(ValueError):
        paired_metrics([], [])


def opencv_inter_linear(img: np.ndarray, size: int) -> np.ndarray:
    """`cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR)` written out (GcGAN's
    evaluate_maps.py resize): each output pixel blends the 2x2 source pixels around
    (x + 0.5) * in / out - 0.5, clamped at the borders; no antialiasing when shrinking."""

    def taps(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        return lo, np.minimum(lo + 1, n_in - 1), src - np.floor(src)

    y0, y1, fy = taps(img.shape[0])
    x0, x1, fx = taps(img.shape[1])
    a = img.astype(np.float64)
    rows = a[y0] * (1 - fy)[:, None, None] + a[y1] * fy[:, None, None]
    out = rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("side", [512, 600, 300, 100])
def test_paired_resize_is_gcgans_opencv_bilinear(side):
    """Issue 16.6: GcGAN resizes maps with OpenCV's INTER_LINEAR (no antialiasing), not bicubic: on
    fine detail (noise, 1-px roads) a shrink that samples and one that averages differ by tens of levels."""
    img = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    ours, want = resize_rgb(img, 256).astype(int), opencv_inter_linear(img, 256).astype(int)
    assert ours.shape == (256, 256, 3)
    assert np.abs(ours - want).max() <= 1  # rounding of the last bit (OpenCV works in 11-bit fixed point)
    assert (ours == want).mean() > 0.99
    if side == 512:  # exactly 2x: every output pixel is the mean of a 2x2 block, a 4x4-tap bicubic is not
        block = img.reshape(256, 2, 256, 2, 3).astype(float).mean(axis=(1, 3))
        assert np.abs(ours - block).max() <= 0.5 + 1e-9


@pytest.mark.skipif(not SAT2MAP.is_dir(), reason="sat2map data not present")
def test_paired_metrics_match_the_dataset_calibration():
    """README (GcGAN protocol on this source): most common colour ~20.4% / 43.1; satellite ~0.1% / 221."""
    names = [f"{i}.jpg" for i in range(24)]
    maps = [resize_rgb(Image.open(SAT2MAP / "trainB" / n), 256) for n in names]
    sats = [resize_rgb(Image.open(SAT2MAP / "trainA" / n), 256) for n in names]
    flat = most_common_colour_baseline(maps)
    assert 0.15 < flat["accuracy"] < 0.26 and 38 < flat["rmse"] < 50
    sat = paired_metrics(sats, maps)
    assert sat["accuracy"] < 0.01 and 205 < sat["rmse"] < 240


# ---------------------------------------------------------------- FID: Fréchet distance


def test_colour_breakdown_says_which_map_colours_a_model_gets_right():
    building, road, park = (216, 209, 201), (255, 255, 255), (211, 249, 208)
    target = np.zeros((64, 64, 3), np.uint8)
    target[:, :32], target[:, 32:52], target[:, 52:] = building, road, park
    target[0, 0] = (218, 210, 200)  # a near-building pixel (JPEG noise): counted with the buildings, not a colour
    pred = target.copy()
    pred[:, 32:52] = (230, 230, 230)  # roads painted grey
    pred[:, 52:58] = (213, 250, 205)  # half the park within 5 levels, half not
    pred[:, 58:] = (190, 230, 190)
    rows = colour_breakdown([pred], [target], size=64, top=5)
    assert [r["colour"] for r in rows] == [list(building), list(road), list(park)]  # 3 colours, most common first
    assert [r["share"] for r in rows] == pytest.approx([0.5, 0.3125, 0.1875])
    assert [r["accuracy"] for r in rows] == pytest.approx([1.0, 0.0, 0.5])
    assert rows[1]["predicted"] == [230.0, 230.0, 230.0]
    assert sum(r["share"] * r["accuracy"] for r in rows) == pytest.approx(pixel_accuracy(pred, target))
    with pytest.raises(ValueError, match="no image pairs"):
        colour_breakdown([], [])


def test_colour_breakdown_counts_each_pixel_once_and_each_noisy_class_once():
    # Greys 2, 3 and 5 levels apart: one row, of the commonest, with the pixels near it (not 105); none twice.
    grey = np.zeros((40, 40, 3), np.uint8)
    grey[:20], grey[20:32], grey[32:] = 100, 105, 102
    rows = colour_breakdown([grey], [grey], size=40)
    assert [(r["colour"], r["share"]) for r in rows] == [([100, 100, 100], 0.7)]
    assert sum(r["share"] * r["accuracy"] for r in rows) <= pixel_accuracy(grey, grey)
    # A palette under JPEG-like noise (40% of pixels off by up to 3 levels): one row per class, not two rows
    # of the commonest ones.
    rng = np.random.default_rng(0)
    palette = np.array([(216, 209, 201), (223, 223, 223), (239, 219, 218), (255, 255, 255), (178, 210, 221),
                        (211, 249, 208)], np.int16)
    labels = rng.choice(len(palette), size=(96, 96), p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1])
    noise = rng.integers(-3, 4, size=(96, 96, 3)) * (rng.random((96, 96, 1)) < 0.4)
    noisy = np.clip(palette[labels] + noise, 0, 255).astype(np.uint8)
    rows = colour_breakdown([noisy], [noisy], size=96)
    assert len(rows) == len(palette)
    for row in rows:  # each row is one class: its palette colour and that class's share
        k = int(np.abs(palette - row["colour"]).max(1).argmin())
        assert row["colour"] == palette[k].tolist() and row["share"] == pytest.approx((labels == k).mean())


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_zero_for_equal_full_covariance_gaussians():
    a = np.random.default_rng(1).normal(size=(5, 5))
    sigma = a @ a.T + np.eye(5)
    mu = np.arange(5.0)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-9)
    assert frechet_distance(mu, sigma, mu + 2, sigma) == pytest.approx(4 * 5, rel=1e-9)


def test_fid_from_features_shift_and_scale():
    f = np.random.default_rng(2).normal(size=(200, 4)) + [1, 0, -1, 2]
    shift = np.array([1.0, 2.0, 0.0, 0.0])
    assert fid_from_features(f, f + shift) == pytest.approx(5.0, rel=1e-6)  # equal covariances
    # Doubling: |mu - 2 mu|^2 + Tr(S + 4 S - 2 * 2 S) = |mu|^2 + Tr(S).
    expected = np.sum(f.mean(0) ** 2) + np.trace(np.cov(f, rowvar=False))
    assert fid_from_features(f, 2 * f) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError):
        fid_from_features(f[:1], f)


# ---------------------------------------------------------------- FID: feature path


class TinyNet(nn.Module):
    """Stand-in for InceptionV3 with pytorch-fid's contract: a list of (N, D, h, w) maps."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 5, stride=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.tanh(self.conv(x))]


def test_compute_fid_equals_pytorch_fid_pipeline(tmp_path):
    sets = [random_images(10, seed=0), textures(10, 32, 32, seed=1)]
    stats = []
    for k, images in enumerate(sets):
        files = []
        for i, img in enumerate(images):
            files.append(tmp_path / f"{k}_{i}.png")
            Image.fromarray(img).save(files[-1])
        stats.append(fid_score.calculate_activation_statistics(files, TinyNet(), 5, 6, "cpu", 0))
    reference = fid_score.calculate_frechet_distance(*stats[0], *stats[1])
    ours = compute_fid(sets[0], sets[1], batch_size=4, extractor=FIDFeatureExtractor(model=TinyNet()))
    assert reference > 0.01
    assert ours == pytest.approx(reference, rel=1e-5)
    assert compute_fid(sets[0], sets[0], extractor=FIDFeatureExtractor(model=TinyNet())) == pytest.approx(0, abs=1e-6)


def test_extract_features_batches_mixed_sizes_and_inputs():
    extractor = FIDFeatureExtractor(model=TinyNet())
    small, large = random_images(3, 32, 32), random_images(2, 40, 24, seed=3)
    images = [small[0], Image.fromarray(small[1]), large[0], small[2], large[1]]
    feats = extract_features(images, extractor, batch_size=2)
    singles = np.concatenate([extract_features([img], extractor) for img in images])
    assert feats.shape == (5, 6) and feats.dtype == np.float64
    np.testing.assert_allclose(feats, singles, rtol=1e-5, atol=1e-6)


def test_feature_extractor_rejects_minus_one_to_one_inputs():
    extractor = FIDFeatureExtractor(model=TinyNet())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        extractor(torch.rand(2, 3, 16, 16) * 2 - 1)


# ---------------------------------------------------------------- FID: weights


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """An empty torch hub dir, no CUTCORE_FID_WEIGHTS, no offline flags, downloads forbidden."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    for var in ("CUTCORE_FID_WEIGHTS", "CUTCORE_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "hub"


@pytest.mark.parametrize("flag", ["CUTCORE_OFFLINE", "HF_HUB_OFFLINE"])
def test_missing_weights_offline_raise_with_instructions(hub_dir, monkeypatch, flag):
    monkeypatch.setenv(flag, "1")
    with pytest.raises(FIDWeightsUnavailable) as info:
        compute_fid(random_images(2), random_images(2))
    message = str(info.value)
    assert pfid_inception.FID_WEIGHTS_URL in message
    assert str(hub_dir / "checkpoints" / WEIGHTS_NAME) in message
    assert "CUTCORE_FID_WEIGHTS" in message


def test_explicit_missing_path_raises_without_downloading(hub_dir, tmp_path, monkeypatch):
    with pytest.raises(FIDWeightsUnavailable, match="nowhere.pth"):
        resolve_fid_weights(tmp_path / "nowhere.pth")
    monkeypatch.setenv("CUTCORE_FID_WEIGHTS", str(tmp_path / "nowhere.pth"))
    with pytest.raises(FIDWeightsUnavailable, match="nowhere.pth"):
        resolve_fid_weights()


def test_weights_resolution_order(hub_dir, tmp_path, monkeypatch):
    cached = hub_dir / "checkpoints" / WEIGHTS_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_fid_weights() == cached
    env_file, arg_file = tmp_path / "env.pth", tmp_path / "arg.pth"
    env_file.write_bytes(b"x")
    arg_file.write_bytes(b"x")
    monkeypatch.setenv("CUTCORE_FID_WEIGHTS", str(env_file))
    assert resolve_fid_weights() == env_file
    assert resolve_fid_weights(arg_file) == arg_file


def test_download_to_hub_cache_and_failure(hub_dir, monkeypatch):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        Path(dst).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert resolve_fid_weights() == hub_dir / "checkpoints" / WEIGHTS_NAME
    assert calls == [(pfid_inception.FID_WEIGHTS_URL, "6726825d")]

    (hub_dir / "checkpoints" / WEIGHTS_NAME).unlink()

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(FIDWeightsUnavailable, match="Could not download"):
        resolve_fid_weights()


def test_load_fid_inception_from_local_file(hub_dir, tmp_path, monkeypatch):
    # Capture the exact network pytorch-fid builds (random init) and save its state dict,
    # standing in for the real 2015 weights, which tests cannot download.
    built = []
    with monkeypatch.context() as m:
        m.setattr(pfid_inception, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(torch.nn.Module, "load_state_dict", lambda self, sd, *a, **k: built.append(self))
        pfid_inception.fid_inception_v3()
    path = tmp_path / "fid.pth"
    torch.save(built[0].state_dict(), path)

    model = load_fid_inception(path)
    assert not model.training
    torch.testing.assert_close(model.blocks[0][0].conv.weight, built[0].Conv2d_1a_3x3.conv.weight)
    torch.testing.assert_close(model.blocks[3][2].branch_pool.conv.weight, built[0].Mixed_7c.branch_pool.conv.weight)
    # pool3 only (no forward pass: with random weights it crawls through denormal floats).
    assert model.output_blocks == [3] and isinstance(model.blocks[3][2], pfid_inception.FIDInceptionE_2)


def test_wrong_weights_file_is_reported(hub_dir, tmp_path):
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(FIDWeightsUnavailable, match="does not hold"):
        load_fid_inception(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(FIDWeightsUnavailable, match="not a readable checkpoint"):
        load_fid_inception(garbage)


# ---------------------------------------------------------------- SWD


def _pggan_pyr_down(m: np.ndarray) -> np.ndarray:
    """PGGAN's reference pyr_down (scipy, mirror borders)."""
    g = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256
    return scipy.ndimage.convolve(m, g[None, None], mode="mirror")[:, :, ::2, ::2]


def _pggan_pyr_up(m: np.ndarray) -> np.ndarray:
    g = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float32) / 256
    up = np.zeros((*m.shape[:2], m.shape[2] * 2, m.shape[3] * 2), m.dtype)
    up[:, :, ::2, ::2] = m
    return scipy.ndimage.convolve(up, g[None, None] * 4, mode="mirror")


def test_pyramid_matches_pggan_reference_and_reconstructs():
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 32, 48)).astype(np.float32)
    low = pyr_down(torch.from_numpy(x))
    np.testing.assert_allclose(low.numpy(), _pggan_pyr_down(x), atol=1e-3)
    np.testing.assert_allclose(pyr_up(low, (32, 48)).numpy(), _pggan_pyr_up(low.numpy()), atol=1e-3)

    levels = laplacian_pyramid(torch.from_numpy(x), 3)
    assert [tuple(lv.shape[-2:]) for lv in levels] == [(32, 48), (16, 24), (8, 12)]
    band0 = x - _pggan_pyr_up(_pggan_pyr_down(x))
    np.testing.assert_allclose(levels[0].numpy(), band0, atol=1e-3)
    rec = levels[-1]
    for lv in reversed(levels[:-1]):
        rec = pyr_up(rec, tuple(lv.shape[-2:])) + lv
    np.testing.assert_allclose(rec.numpy(), x, atol=1e-3)


def test_sliced_wasserstein_of_a_1d_shift_is_the_shift():
    a = np.random.default_rng(0).normal(size=(500, 1)).astype(np.float32)
    rng = np.random.default_rng(0)
    assert sliced_wasserstein(a, a + 3, rng, repeats=2, directions=8) == pytest.approx(3, rel=1e-5)
    assert sliced_wasserstein(a, a, rng, repeats=2, directions=8) == 0
    # A distance between distributions, not between paired points: the order of the points does not matter, and
    # N(0, 1) against N(0, 2²) is the quantile coupling's E|Z| = √(2/π).
    assert sliced_wasserstein(a, np.random.default_rng(1).permutation(a), rng, repeats=2, directions=8) == 0
    z = np.random.default_rng(2).normal(size=(20_000, 1)).astype(np.float32)
    wide = 2 * np.random.default_rng(3).normal(size=(20_000, 1)).astype(np.float32)
    assert sliced_wasserstein(z, wide, rng, repeats=1, directions=4) == pytest.approx(np.sqrt(2 / np.pi), abs=0.02)


def test_swd_identical_sets_score_the_sampling_floor_and_levels_are_named():
    images = textures(8)
    out = swd(images, [Image.fromarray(i) for i in images])
    assert list(out) == ["64x64", "32x32", "16x16", "avg"]
    # The sets are sampled at independent positions (PGGAN), so only the draw separates them: above 0 (with 8
    # images, about as far as the finest level of other images of the kind), below the distance to other images.
    assert all(v > 0 for v in out.values()) and out["avg"] < swd(images, textures(8, seed=1))["avg"]


# PGGAN's own metrics/sliced_wasserstein.py (tkarras/progressive_growing_of_gans, API fed these sets as uint8 NCHW
# minibatches of 16) on textures(32) against the same textures blurred by 1 px: the mean of 60 seeds of numpy's
# global RNG (standard error 0.2-0.4 per level; ours over the same number of seeds: 108.3, 28.3, 27.0).
PGGAN_TEXTURES_VS_BLURRED = {"64x64": 108.0, "32x32": 27.5, "16x16": 27.2}


def test_swd_does_not_reward_a_translation_for_sitting_on_its_own_target():
    """A distribution distance at PGGAN's scale: pairing each image with its own blurred copy, as `evaluate` pairs
    a translation with its target, must score as the same sets unpaired, and as PGGAN scores them. Sampling both
    sets at the same positions did not: the coarse levels, where a 1 px blur changes little, fell to a third."""
    images = textures(32)
    blurred = _blurred(images, 1)
    shuffled = blurred[1:] + blurred[:1]
    paired = [swd(images, blurred, seed=s) for s in range(3)]
    unpaired = [swd(images, shuffled, seed=s) for s in range(3)]
    for key, pggan in PGGAN_TEXTURES_VS_BLURRED.items():
        mean = np.mean([p[key] for p in paired])
        assert mean == pytest.approx(pggan, rel=0.15)
        assert mean == pytest.approx(np.mean([u[key] for u in unpaired]), rel=0.15)


def _noised(images: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    noise = [np.random.default_rng(k).normal(0, sigma, i.shape) for k, i in enumerate(images)]
    return [np.clip(i + z, 0, 255).astype(np.uint8) for i, z in zip(images, noise, strict=True)]


def _blurred(images: list[np.ndarray], radius: float) -> list[np.ndarray]:
    return [np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(radius))) for i in images]


def test_swd_grows_with_noise_and_blur():
    images = textures(8, 48, 48)
    noisy = [swd(images, _noised(images, s))["avg"] for s in (4, 16, 64)]
    blurred = [swd(images, _blurred(images, r))["avg"] for r in (0.5, 1, 3)]
    assert 0 < noisy[0] < noisy[1] < noisy[2]
    assert 0 < blurred[0] < blurred[1] < blurred[2]


def test_swd_ignores_per_channel_brightness_and_contrast():
    # Descriptors are normalised per channel and set (PGGAN), so an exact affine colour change
    # (even values halved, per-channel offsets) leaves only float rounding.
    images = [i & 0xFE for i in textures(6)]
    shifted = [i // 2 + np.array([64, 0, 100], np.uint8) for i in images]
    assert swd(images, shifted) == pytest.approx(swd(images, images), abs=1e-3)


def test_swd_deterministic_given_seed_and_independent_of_batch_size():
    a, b = textures(5, 48, 48, seed=0), textures(5, 48, 48, seed=1)
    first = swd(a, b, seed=3)
    assert swd(a, b, seed=3, batch_size=4) == first
    assert swd(iter(a), iter(b), seed=3) == first
    other = swd(a, b, seed=4)
    assert other["avg"] != first["avg"]
    assert other["avg"] == pytest.approx(first["avg"], rel=0.5)  # a different draw, not a different metric


def test_swd_non_square_odd_and_unequal_set_sizes():
    out = swd(textures(4, 48, 80), textures(6, 48, 80, seed=1))
    assert list(out) == ["48x80", "24x40", "avg"]
    assert all(np.isfinite(v) and v > 0 for v in out.values())
    odd = textures(3, 50, 35)
    out = swd(odd, odd)
    assert list(out) == ["50x35", "25x18", "avg"] and all(np.isfinite(v) and v > 0 for v in out.values())


def test_swd_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="same size"):
        swd(textures(2, 32, 32) + textures(1, 64, 64), textures(3, 32, 32))
    with pytest.raises(ValueError, match="different image sizes"):
        swd(textures(2, 32, 32), textures(2, 64, 64))
    with pytest.raises(ValueError, match="smaller"):
        swd(random_images(2, 8, 8), random_images(2, 8, 8))
