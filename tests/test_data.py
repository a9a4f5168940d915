"""Datasets and image loading: layouts, odd image modes, errors that name the file, determinism."""
from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, make_ab, make_unpaired, subprocess_env
from PIL import Image

from cutcore.config import DataConfig
from cutcore.data import (
    DEVICE_DATA_FRACTION,
    DeviceImages,
    StepSampler,
    UnpairedDataset,
    apply_crop,
    decoded_bytes,
    draw_crop,
    resolve_data_on_device,
)
from cutcore.folders import ImageSource, domain_sources, paired_sources
from cutcore.imageio import ImageLoadError, list_images, load_rgb, resize_square, to_pil, to_tensor

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(root: Path, **kw) -> DataConfig:
    base = {"root": str(root), "load_size": 40, "crop_size": 32}
    base.update(kw)
    return DataConfig(**base)


# --- layouts -----------------------------------------------------------------------------------


def test_cyclegan_layout_discovery(unpaired_dir):
    a, b = domain_sources(unpaired_dir)
    assert [s.path.name for s in a] == ["a00.png", "a01.png", "a02.png", "a03.png"]
    assert [s.path.name for s in b] == ["b00.png", "b01.png", "b02.png"]
    assert {s.half for s in a + b} == {"full"}


def test_cyclegan_layout_other_phase_and_nested_and_non_images(tmp_path):
    root = make_unpaired(tmp_path / "d", n_a=2, n_b=2, phase="test")
    (root / "testA" / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(root / "testA" / "sub" / "deep.JPG")
    (root / "testA" / "notes.txt").write_text("not an image")
    a, b = domain_sources(root, "test")
    assert sorted(s.path.name for s in a) == ["a00.png", "a01.png", "deep.JPG"]
    assert len(b) == 2
    with pytest.raises(FileNotFoundError, match="trainA"):
        domain_sources(root, "train")


def test_ab_layout_discovery_and_halves(ab_dir):
    a, b = domain_sources(ab_dir)
    assert [s.half for s in a] == ["left"] * 3 and [s.half for s in b] == ["right"] * 3
    assert [s.path for s in a] == [s.path for s in b]
    full = np.asarray(load_rgb(a[1].path))
    assert full.shape == (40, 80, 3)
    np.testing.assert_array_equal(np.asarray(a[1].load()), full[:, :40])
    np.testing.assert_array_equal(np.asarray(b[1].load()), full[:, 40:])


def test_ab_layout_odd_width_halves_have_equal_size(tmp_path):
    (tmp_path / "train").mkdir()
    Image.new("RGB", (41, 20), (10, 20, 30)).save(tmp_path / "train" / "odd.png")
    a, b = domain_sources(tmp_path)
    assert a[0].load().size == b[0].load().size == (20, 20)


def test_ab_layout_rejects_non_side_by_side(tmp_path):
    (tmp_path / "train").mkdir()
    Image.new("RGB", (30, 30)).save(tmp_path / "train" / "square.png")
    a, _ = domain_sources(tmp_path)
    with pytest.raises(ImageLoadError, match="square.png"):
        a[0].load()


def test_paired_sources(tmp_path):
    root = make_unpaired(tmp_path / "p", n_a=3, n_b=3, phase="test")
    # B gets the same names as A for two of them.
    for i in range(2):
        (root / "testB" / f"b{i:02d}.png").rename(root / "testB" / f"a{i:02d}.png")
    pairs = paired_sources(root, "test")
    assert [(a.path.name, b.path.name) for a, b in pairs] == [("a00.png", "a00.png"), ("a01.png", "a01.png")]
    ab = paired_sources(make_ab(tmp_path / "ab", n=2, phase="test"), "test")
    assert [(a.half, b.half) for a, b in ab] == [("left", "right")] * 2


def test_missing_and_empty_dataset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        domain_sources(tmp_path / "nope")
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "trainA" / "x.png")
    with pytest.raises(FileNotFoundError, match="no images"):
        domain_sources(tmp_path)
    with pytest.raises(FileNotFoundError):
        UnpairedDataset(_cfg(tmp_path / "nope"))


# --- image modes ---------------------------------------------------------------------------------


def test_grayscale_loads_as_rgb(tmp_path):
    g = (np.arange(6 * 10).reshape(6, 10) * 4).astype(np.uint8)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    rgb = load_rgb(tmp_path / "g.png")
    assert rgb.mode == "RGB" and rgb.size == (10, 6)
    a = np.asarray(rgb)
    for c in range(3):
        np.testing.assert_array_equal(a[..., c], g)


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((4, 6, 4), np.uint8)
    a[..., 0] = 200  # red-ish
    a[:, :3, 3] = 255  # left half opaque, right half fully transparent
    Image.fromarray(a, "RGBA").save(tmp_path / "rgba.png")
    rgb = np.asarray(load_rgb(tmp_path / "rgba.png"))
    assert rgb.shape == (4, 6, 3)
    np.testing.assert_array_equal(rgb[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(rgb[0, 5], [255, 255, 255])


def test_palette_and_palette_with_transparency(tmp_path):
    p = Image.new("P", (5, 3))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * (256 * 3 - 6))
    p.putpixel((1, 1), 1)
    p.save(tmp_path / "p.png")
    rgb = load_rgb(tmp_path / "p.png")
    assert rgb.mode == "RGB" and rgb.size == (5, 3)
    assert rgb.getpixel((1, 1)) == (10, 200, 30) and rgb.getpixel((0, 0)) == (0, 0, 0)
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    rgbt = load_rgb(tmp_path / "pt.png")
    assert rgbt.getpixel((0, 0)) == (255, 255, 255)  # transparent index -> white background
    assert rgbt.getpixel((1, 1)) == (10, 200, 30)


def test_16bit_png_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 12 * 7).reshape(7, 12).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    rgb = np.asarray(load_rgb(tmp_path / "ramp16.png"))
    assert rgb.shape == (7, 12, 3)
    np.testing.assert_allclose(rgb[..., 1].astype(float), ramp / 257.0, atol=1.0)
    # A dark 16-bit image stays dark (not mistaken for 8-bit data).
    Image.fromarray(np.full((4, 4), 200, np.uint16)).save(tmp_path / "dark16.png")
    assert np.asarray(load_rgb(tmp_path / "dark16.png")).max() <= 1


def test_exif_rotated_jpeg_is_upright(tmp_path):
    stored = Image.new("RGB", (40, 20), (255, 0, 0))
    stored.paste((0, 0, 255), (20, 0, 40, 20))  # stored: left red, right blue
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 deg clockwise to display
    stored.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img = load_rgb(tmp_path / "rot.jpg")
    assert img.size == (20, 40)
    top, bottom = np.asarray(img)[3, 10].astype(int), np.asarray(img)[36, 10].astype(int)
    assert top[0] > 200 and top[2] < 60  # the stored left (red) is now on top
    assert bottom[2] > 200 and bottom[0] < 60


@pytest.mark.parametrize("mode", ["LA", "CMYK", "I", "F"])
def test_other_modes_load_as_rgb(tmp_path, mode):
    img = Image.new(mode, (7, 5))
    ext = ".tif" if mode in ("I", "F", "CMYK") else ".png"
    img.save(tmp_path / f"x{ext}")
    rgb = load_rgb(tmp_path / f"x{ext}")
    assert rgb.mode == "RGB" and rgb.size == (7, 5)


# --- errors name the file --------------------------------------------------------------------


def test_truncated_png_raises_image_load_error(tmp_path):
    path = tmp_path / "trunc.png"
    make_unpaired(tmp_path / "src", n_a=1, n_b=1)
    data = (tmp_path / "src" / "trainA" / "a00.png").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageLoadError, match="trunc.png"):
        load_rgb(path)


@pytest.mark.parametrize("content", [b"", b"this is not an image at all", b"\xff\xd8\xff\xe0garbage"])
def test_garbage_raises_image_load_error(tmp_path, content):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError) as err:
        load_rgb(path)
    assert str(path) in str(err.value)
    assert isinstance(err.value, ValueError)


def test_missing_file_raises_image_load_error(tmp_path):
    with pytest.raises(ImageLoadError, match="missing.png"):
        load_rgb(tmp_path / "missing.png")


def test_large_images_are_allowed_in_our_reads_only(tmp_path, monkeypatch):
    """load_rgb reads images up to its own limit (16k² aerial tiles), while PIL's process-wide limit, which a
    library user's own PIL calls read, stays as it was; past twice its limit an image is refused, named."""
    import warnings

    from cutcore import imageio

    Image.new("RGB", (40, 30)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL's limit as a user set it: 1,200 px is a bomb to PIL
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.png")
    assert load_rgb(tmp_path / "big.png").size == (40, 30)
    assert Image.MAX_IMAGE_PIXELS == 100
    monkeypatch.setattr(imageio, "MAX_PIXELS", 500)
    with warnings.catch_warnings(), pytest.raises(ImageLoadError, match="big.png: image is too large"):
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        load_rgb(tmp_path / "big.png")
    assert Image.MAX_IMAGE_PIXELS == 100


def test_large_images_decode_at_once_and_split_into_halves(tmp_path, monkeypatch):
    """Two threads decode at once (the training set's decoding pool: a decode must not wait for another one to
    end), PIL's limit comes back after both, and a side-by-side AB file past PIL's limit still splits (Image.crop
    checks the limit too)."""
    import threading

    from cutcore import imageio

    Image.new("RGB", (40, 20)).save(tmp_path / "ab.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    both_decoding = threading.Barrier(2, timeout=20)

    def to_rgb_meeting_the_other(img):  # returns only once the other thread's decode is in flight too
        both_decoding.wait()
        return img.convert("RGB")

    monkeypatch.setattr(imageio, "to_rgb", to_rgb_meeting_the_other)
    sizes, errors = [], []

    def decode():
        try:
            sizes.append(load_rgb(tmp_path / "ab.png").size)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=decode) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sizes == [(40, 20)] * 2
    assert Image.MAX_IMAGE_PIXELS == 100
    monkeypatch.undo()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL's real to_rgb back, the low limit kept
    assert ImageSource(tmp_path / "ab.png", "left").load().size == (20, 20)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_dataset_item_with_bad_file_names_it(tmp_path):
    root = make_unpaired(tmp_path / "d", n_a=1, n_b=1)
    (root / "trainB" / "b00.png").write_bytes(b"broken")
    ds = UnpairedDataset(_cfg(root))
    with pytest.raises(ImageLoadError, match="b00.png"):
        ds[0]


def test_min_side(tmp_path):
    Image.new("RGB", (3, 9)).save(tmp_path / "thin.png")
    with pytest.raises(ImageLoadError, match="thin.png"):
        load_rgb(tmp_path / "thin.png", min_side=4)


def test_tensor_round_trip():
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    t = to_tensor(Image.fromarray(arr))
    assert t.shape == (3, 5, 7) and t.min() >= -1 and t.max() <= 1
    np.testing.assert_array_equal(np.asarray(to_pil(t)), arr)


# --- dataset ------------------------------------------------------------------------------------


def test_items_shapes_and_range(unpaired_dir):
    ds = UnpairedDataset(_cfg(unpaired_dir, load_size=40, crop_size=24))
    assert len(ds) == 4  # max(|A|, |B|)
    a, b = ds[0]
    assert a.shape == b.shape == (3, 24, 24)
    assert a.dtype == torch.float32 and -1 <= a.min() and a.max() <= 1


def test_dataset_determinism_across_instances(unpaired_dir):
    ds1, ds2 = UnpairedDataset(_cfg(unpaired_dir), seed=3), UnpairedDataset(_cfg(unpaired_dir), seed=3)
    for item in (0, 1, 5, 13, 4, 0):
        for x, y in zip(ds1[item], ds2[item], strict=True):
            assert torch.equal(x, y)
    ds3 = UnpairedDataset(_cfg(unpaired_dir), seed=4)
    assert any(not torch.equal(ds1[i][0], ds3[i][0]) or not torch.equal(ds1[i][1], ds3[i][1]) for i in range(6))


def test_dataset_determinism_across_processes(unpaired_dir):
    """Items must not depend on Python's per-process hash seed (DDP ranks, resumed runs)."""
    body = (
        f"ds = UnpairedDataset(DataConfig(root={str(unpaired_dir)!r}, load_size=40, crop_size=32), seed=1)\n"
        "digest = hashlib.sha256(b''.join(t.numpy().tobytes() for i in range(6) for t in ds[i])).hexdigest()\n"
    )
    header = "import hashlib\nfrom cutcore.config import DataConfig\nfrom cutcore.data import UnpairedDataset\n"
    here: dict = {}
    exec(header + body, here)
    child = subprocess.run([sys.executable, "-c", header + body + "print(digest)"], cwd=REPO_ROOT,
                           env=subprocess_env(PYTHONHASHSEED="12345"), capture_output=True, text=True, check=True)
    assert child.stdout.strip() == here["digest"]


def test_every_epoch_visits_every_a_image(unpaired_dir):
    ds = UnpairedDataset(_cfg(unpaired_dir, load_size=48, crop_size=48, flip=False), seed=0)
    originals = [to_tensor(load_rgb(s.path)) for s in ds.a]
    for epoch in range(2):
        seen = []
        for pos in range(len(ds)):
            a, _ = ds[epoch * len(ds) + pos]
            seen.append(next(i for i, o in enumerate(originals) if torch.equal(o, a)))
        assert sorted(seen) == [0, 1, 2, 3]


def test_btoa_swaps_domains(unpaired_dir):
    ab = UnpairedDataset(_cfg(unpaired_dir))
    ba = UnpairedDataset(_cfg(unpaired_dir, direction="BtoA"))
    assert [s.path for s in ba.a] == [s.path for s in ab.b]
    assert [s.path for s in ba.b] == [s.path for s in ab.a]
    # Items of a BtoA dataset come from B's files on the "A" side.
    full = UnpairedDataset(_cfg(unpaired_dir, direction="BtoA", load_size=48, crop_size=48, flip=False))
    b_images = [to_tensor(load_rgb(s.path)) for s in ab.b]
    a_side, b_side = full[0]
    assert any(torch.equal(a_side, t) for t in b_images)
    assert not any(torch.equal(b_side, t) for t in b_images)


def test_exclude_removes_files(unpaired_dir):
    ds = UnpairedDataset(_cfg(unpaired_dir, exclude=["a01.png", "b02.png", "unrelated.png"]))
    assert [s.path.name for s in ds.a] == ["a00.png", "a02.png", "a03.png"]
    assert [s.path.name for s in ds.b] == ["b00.png", "b01.png"]


def test_max_items(unpaired_dir):
    ds = UnpairedDataset(_cfg(unpaired_dir, max_items=2))
    assert len(ds.a) == len(ds.b) == 2 and len(ds) == 2


def test_crop_larger_than_load_is_an_error(unpaired_dir):
    with pytest.raises(ValueError, match="crop_size"):
        UnpairedDataset(_cfg(unpaired_dir, load_size=32, crop_size=40))


def test_ab_dataset_items(ab_dir):
    ds = UnpairedDataset(_cfg(ab_dir, load_size=40, crop_size=40, flip=False))
    a, b = ds[0]
    assert a.shape == b.shape == (3, 40, 40)
    lefts = [to_tensor(s.load()) for s in ds.a]
    rights = [to_tensor(s.load()) for s in ds.b]
    assert any(torch.equal(a, t) for t in lefts) and any(torch.equal(b, t) for t in rights)


# --- augmentation --------------------------------------------------------------------------------


def augment(img: Image.Image, load_size: int, crop_size: int, flip: bool, rng: random.Random) -> torch.Tensor:
    """The CUT paper's augmentation from the loader's three pieces: resize, random crop, random flip."""
    return apply_crop(resize_square(img, load_size), draw_crop(rng, load_size, crop_size, flip), crop_size)


def test_augment_resize_crop_flip():
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8))
    resized = img.resize((40, 40), Image.BICUBIC)
    for seed in range(6):
        rng, probe = random.Random(seed), random.Random(seed)
        out = augment(img, 40, 24, False, rng)
        x, y = probe.randint(0, 16), probe.randint(0, 16)
        assert out.shape == (3, 24, 24)
        assert torch.equal(out, to_tensor(resized.crop((x, y, x + 24, y + 24))))
    # load == crop: no resize and no crop; with flip the result is the image or its mirror, both seen.
    square = img.resize((32, 32))
    plain, mirror = to_tensor(square), to_tensor(square.transpose(Image.FLIP_LEFT_RIGHT))
    outcomes = set()
    for seed in range(20):
        out = augment(square, 32, 32, True, random.Random(seed))
        assert torch.equal(out, plain) or torch.equal(out, mirror)
        outcomes.add(torch.equal(out, mirror))
    assert outcomes == {True, False}
    for seed in range(5):
        assert torch.equal(augment(square, 32, 32, False, random.Random(seed)), plain)


def test_a_domain_emptied_by_exclude_is_refused_naming_it(tmp_path):
    """It trained on until a loader worker divided by zero, naming no flag."""
    root = tmp_path / "d"
    for d in "AB":
        (root / f"train{d}").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 40)).save(root / f"train{d}" / f"{d}{i}.png")
    with pytest.raises(ValueError, match=r"no training images left in domain A after --exclude \(2 names\)"):
        UnpairedDataset(_cfg(root, exclude=["A0.png", "A1.png"]))
    assert len(UnpairedDataset(_cfg(root, exclude=["A0.png"], max_items=1)).a) == 1


def test_list_images_sorted_and_filtered(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "d.webp"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "none")


# --- step sampler --------------------------------------------------------------------------------


def _take(it, n):
    return [next(it) for _ in range(n)]


@pytest.mark.parametrize("batch", [1, 2])
def test_step_sampler_ranks_partition_the_single_process_stream(batch):
    steps = 5
    single = _take(iter(StepSampler(0, 2 * batch)), steps * 2 * batch)
    r0 = _take(iter(StepSampler(0, batch, rank=0, world=2)), steps * batch)
    r1 = _take(iter(StepSampler(0, batch, rank=1, world=2)), steps * batch)
    assert not set(r0) & set(r1)  # ranks see different items
    merged = []
    for s in range(steps):
        merged += r0[s * batch : (s + 1) * batch] + r1[s * batch : (s + 1) * batch]
    assert merged == single


def test_step_sampler_resume_continues_the_stream():
    full = _take(iter(StepSampler(0, 3)), 30)
    assert _take(iter(StepSampler(4, 3)), 18) == full[12:]


def test_image_source_is_hashable_and_frozen(tmp_path):
    s = ImageSource(tmp_path / "x.png")
    assert {s: 1}[ImageSource(tmp_path / "x.png")] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.half = "left"  # type: ignore[misc]


# --- the training set decoded on the device -------------------------------------------------------


def _loader_batches(ds: UnpairedDataset, batch: int, steps: int, start: int = 0, rank: int = 0, world: int = 1):
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, sampler=StepSampler(start, batch, rank, world))
    it = iter(loader)
    return [next(it) for _ in range(steps)]


def _device_batches(images: DeviceImages, batch: int, steps: int, start: int = 0, rank: int = 0, world: int = 1):
    it = images.batches(start, batch, rank, world)
    return [next(it) for _ in range(steps)]


@pytest.mark.parametrize("layout,kw", [("unpaired", {}), ("unpaired", {"direction": "BtoA"}), ("ab", {}),
                                       ("unpaired", {"load_size": 48, "crop_size": 48, "flip": False})])
@pytest.mark.parametrize("batch", [1, 3])
def test_device_batches_are_the_dataloader_batches(unpaired_dir, ab_dir, layout, kw, batch):
    """Same draws, same PIL resize (once, up front), crop/flip/scaling as tensor ops: bit-identical batches,
    across epoch boundaries (4 items per epoch) and for both layouts and directions."""
    ds = UnpairedDataset(_cfg(unpaired_dir if layout == "unpaired" else ab_dir, **kw), seed=5)
    images = DeviceImages(ds, "cpu", workers=2)
    a, b = images.images(ds.cfg.load_size)
    assert a.dtype == b.dtype == torch.uint8
    assert a.numel() + b.numel() == (len(ds.a) + len(ds.b)) * 3 * ds.cfg.load_size**2
    assert a.shape == (len(ds.a), 3, ds.cfg.load_size, ds.cfg.load_size)
    crop = ds.cfg.crop_size
    for (la, lb), (da, db) in zip(_loader_batches(ds, batch, 6), _device_batches(images, batch, 6), strict=True):
        for loaded, cut in ((la, da), (lb, db)):
            assert cut.shape == (batch, 3, crop, crop) and cut.dtype == torch.float32 and cut.device.type == "cpu"
            assert -1 <= cut.min() and cut.max() <= 1
            assert torch.equal(cut, loaded)


def _coordinate_images(root: Path, n: int, side: int) -> Path:
    """trainA/trainB images whose pixel (x, y) is (4x, 4y, 40·i): a crop reveals where it came from."""
    yy, xx = np.mgrid[0:side, 0:side]
    for domain in ("A", "B"):
        (root / f"train{domain}").mkdir(parents=True)
        for i in range(n):
            img = np.stack([4 * xx, 4 * yy, np.full_like(xx, 40 * i + (20 if domain == "B" else 0))], -1)
            Image.fromarray(img.astype(np.uint8)).save(root / f"train{domain}" / f"{i:02d}.png")
    return root


def test_device_crops_lie_inside_the_image_and_flip_about_half_the_time(tmp_path):
    side, crop, n = 48, 20, 5
    ds = UnpairedDataset(_cfg(_coordinate_images(tmp_path / "coords", n, side), load_size=side, crop_size=crop), seed=0)
    images = DeviceImages(ds, "cpu", workers=1)
    flips, corners, pictures = [], set(), set()
    for a, b in _device_batches(images, 8, 25):  # 200 items, 400 crops
        for t in torch.cat([a, b]):
            u8 = ((t + 1) * 127.5).round().long()  # back to the stored integers
            xs, ys, ids = u8[0] // 4, u8[1] // 4, u8[2]
            assert (ids == ids[0, 0]).all()  # one picture per crop
            pictures.add(int(ids[0, 0]))
            y0 = int(ys[0, 0])
            assert torch.equal(ys, (y0 + torch.arange(crop))[:, None].expand(crop, crop))  # rows in order
            row = xs[0]
            flipped = bool(row[0] > row[-1])
            x0 = int(row.min())
            assert torch.equal(row, (x0 + torch.arange(crop)).flip(0) if flipped else x0 + torch.arange(crop))
            assert (xs == row).all()
            assert 0 <= x0 <= side - crop and 0 <= y0 <= side - crop  # the whole window inside the image
            flips.append(flipped)
            corners.add((x0, y0))
    assert pictures == {40 * i + d for i in range(n) for d in (0, 20)}  # every image of both domains is drawn
    assert 0.4 < sum(flips) / len(flips) < 0.6, sum(flips)  # 400 fair coins: 0.5 ± 0.025 (1 sd)
    assert len(corners) > 100  # crops all over the 29 x 29 possible corners, not a few fixed ones
    no_flip = DeviceImages(UnpairedDataset(dataclasses.replace(ds.cfg, flip=False)), "cpu", workers=1)
    for a, b in _device_batches(no_flip, 8, 5):
        for t in torch.cat([a, b]):
            assert ((t[0, 0, 1:] - t[0, 0, :-1]) > 0).all()  # columns left to right: never mirrored


def test_device_batches_are_deterministic_and_a_resume_continues_the_stream(unpaired_dir):
    first = _device_batches(DeviceImages(UnpairedDataset(_cfg(unpaired_dir), seed=2), "cpu"), 2, 9)
    again = _device_batches(DeviceImages(UnpairedDataset(_cfg(unpaired_dir), seed=2), "cpu"), 2, 9)
    for (a1, b1), (a2, b2) in zip(first, again, strict=True):
        assert torch.equal(a1, a2) and torch.equal(b1, b2)
    # A run resumed at step 5 (a fresh process: new dataset, new decode) cuts the batches of steps 5-8.
    resumed = _device_batches(DeviceImages(UnpairedDataset(_cfg(unpaired_dir), seed=2), "cpu"), 2, 4, start=5)
    for (a1, b1), (a2, b2) in zip(first[5:], resumed, strict=True):
        assert torch.equal(a1, a2) and torch.equal(b1, b2)
    other = _device_batches(DeviceImages(UnpairedDataset(_cfg(unpaired_dir), seed=3), "cpu"), 2, 9)
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(first, other, strict=True))


def test_device_batches_of_ranks_are_disjoint_and_together_the_single_process_stream(unpaired_dir):
    images = DeviceImages(UnpairedDataset(_cfg(unpaired_dir, load_size=44, crop_size=24), seed=1), "cpu")
    steps = 6
    single = _device_batches(images, 4, steps)
    r0 = _device_batches(images, 2, steps, rank=0, world=2)
    r1 = _device_batches(images, 2, steps, rank=1, world=2)
    for s in range(steps):
        for side in (0, 1):
            assert torch.equal(torch.cat([r0[s][side], r1[s][side]]), single[s][side])
        # different items: no crop of rank 0 repeats on rank 1 (random 24² crops of a 44² image)
        assert not any(torch.equal(x, y) for x in r0[s][0] for y in r1[s][0])


def test_device_decode_error_names_the_file(tmp_path):
    root = make_unpaired(tmp_path / "d", n_a=2, n_b=2)
    (root / "trainA" / "a01.png").write_bytes(b"broken")
    with pytest.raises(ImageLoadError, match="a01.png"):
        DeviceImages(UnpairedDataset(_cfg(root)), "cpu")


def test_data_on_device_resolution_and_memory_guard():
    gib = 2**30
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert resolve_data_on_device("auto", cpu, 1, capacity=gib)[0] is False  # the CPU keeps the DataLoader
    assert resolve_data_on_device("off", cuda, 1, capacity=gib)[0] is False
    on, note = resolve_data_on_device("auto", cuda, gib, capacity=8 * gib)
    assert on and "decoded on cuda:0" in note
    assert resolve_data_on_device("on", cpu, gib, capacity=8 * gib)[0] is True
    assert resolve_data_on_device(True, cpu, 1)[0] is True and resolve_data_on_device(False, cuda, 1)[0] is False
    limit = int(DEVICE_DATA_FRACTION * 8 * gib)
    assert resolve_data_on_device("auto", cuda, limit, capacity=8 * gib)[0] is True
    # Too large: auto falls back to the DataLoader and says why; on refuses with what to do.
    on, note = resolve_data_on_device("auto", cuda, limit + 1, capacity=8 * gib)
    assert not on and note.startswith("DataLoader") and "25%" in note and "8.00 GiB" in note
    with pytest.raises(ValueError, match=r"^runtime.data_on_device \(--data-on-device\) on: "
                                         r"the decoded training set would take 2.00 GiB.*\(--load-size\)"):
        resolve_data_on_device("on", cpu, 2 * gib, capacity=4 * gib)
    with pytest.raises(ValueError, match="auto, on, off"):
        resolve_data_on_device("yes", cpu, 1)


def test_decoded_bytes_counts_both_domains_at_the_sizes_used(unpaired_dir):
    ds = UnpairedDataset(_cfg(unpaired_dir, load_size=40, crop_size=32))
    assert decoded_bytes(ds) == (4 + 3) * 3 * (40 * 40 + 32 * 32)  # load size, and crop size for whole images
    ds = UnpairedDataset(_cfg(unpaired_dir, load_size=40, crop_size=32, whole_images_when_decaying=False))
    assert decoded_bytes(ds) == (4 + 3) * 3 * 40 * 40


def test_whole_images_from_the_decay_on_the_loader_and_the_device(unpaired_dir):
    """The CUT reference's load_size = crop_size once the LR decays: whole images resized to the crop
    size (crops at the origin, flips still drawn), the same on both data paths."""
    ds = UnpairedDataset(_cfg(unpaired_dir, load_size=40, crop_size=32), seed=3)
    ds.whole_images_from = 5
    plans = [ds.plan(i) for i in range(10)]
    assert [p.side for p in plans] == [40] * 5 + [32] * 5
    assert all(p.crop_a[:2] == (0, 0) and p.crop_b[:2] == (0, 0) for p in plans[5:])
    whole = ds[7][0]
    expected = ds.a[plans[7].a].load().resize((32, 32), Image.BICUBIC)
    if plans[7].crop_a.flip:
        expected = expected.transpose(Image.FLIP_LEFT_RIGHT)
    assert torch.equal(whole, to_tensor(expected))
    images = DeviceImages(ds, "cpu", workers=1)
    for (la, lb), (da, db) in zip(_loader_batches(ds, 2, 5), _device_batches(images, 2, 5), strict=True):
        assert torch.equal(la, da) and torch.equal(lb, db)
    assert set(images.decoded) == {40, 32}
