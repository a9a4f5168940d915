"""`cutcore.evaluate` and `cutcore.report`: pair selection, hand-checkable scores, the CLI's output
contract, periodic evaluation files, and the Table 5.1 report."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import (
    REPO_ROOT,
    SHARED,
    domain_a_image,
    domain_b_image,
    make_ab,
    make_unpaired,
    subprocess_env,
    tiny_run_config,
)
from PIL import Image

from cutcore.checkpoint import module_state, save_tensors, write_json
from cutcore.cli import main
from cutcore.evaluate import (
    GRID_PAIRS,
    PeriodicEvaluator,
    evaluate_generator,
    evaluate_model,
    evaluation_size,
    orient,
    parse_metrics,
    read_split,
    select_metrics,
    select_pairs,
)
from cutcore.metrics import FIDWeightsUnavailable, most_common_colour_baseline, resize_rgb
from cutcore.model_folder import load_model
from cutcore.models import build_model
from cutcore.nets import ResnetGenerator, ResnetGeneratorConfig
from cutcore.report import METHODS, build_report

SAT2MAP = SHARED / "data" / "sat2map"
N_PAIRS = 4


def _make_paired(root: Path, same: bool = False) -> Path:
    """<root>/{test,train}{A,B}/pNN.png, 64x64; with `same`, B is A (a perfect translator scores exactly)."""
    for phase in ("test", "train"):
        for domain in "AB":
            (root / f"{phase}{domain}").mkdir(parents=True)
    for i in range(N_PAIRS):
        # Values kept inside [30, 210]: a brightness shift of a few levels never clips.
        a = Image.fromarray((np.asarray(domain_a_image(i, (64, 64))) * 0.7 + 30).astype(np.uint8))
        b = a if same else domain_b_image(i, (64, 64))
        for phase in ("test", "train"):
            a.save(root / f"{phase}A" / f"p{i:02d}.png")
            b.save(root / f"{phase}B" / f"p{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def paired(tmp_path_factory) -> Path:
    return _make_paired(tmp_path_factory.mktemp("paired") / "data")


@pytest.fixture(scope="module")
def same_pairs(tmp_path_factory) -> list:
    return select_pairs(_make_paired(tmp_path_factory.mktemp("same") / "data", same=True))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A model folder in the trainer's format: model.safetensors (G., F. keys) + config.json."""
    folder = tmp_path_factory.mktemp("model")
    cfg = tiny_run_config("cut", folder)
    torch.manual_seed(0)
    model = build_model(cfg.model)
    save_tensors(folder / "model.safetensors", module_state(model.inference_modules()))
    write_json(folder / "config.json", cfg)
    return folder


def _offline_env(tmp: Path) -> dict[str, str]:
    """No FID weights anywhere and no download attempt, whatever this machine has cached."""
    return {"CUTCORE_OFFLINE": "1", "TORCH_HOME": str(tmp / "torch_home")}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.delenv("CUTCORE_FID_WEIGHTS", raising=False)
    for key, value in _offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module", autouse=True)
def cli_json_run(model_dir, paired, tmp_path_factory):
    """`evaluate --json --out`, started with the module so its interpreter start-up overlaps the
    in-process tests; test_cli_subprocess_... waits for it."""
    tmp = tmp_path_factory.mktemp("cli")
    cmd = [sys.executable, "-m", "cutcore", "evaluate", "--model", str(model_dir), "--data", str(paired),
           "--json", "--size", "64", "--device", "cpu", "--out", str(tmp / "eval")]
    env = subprocess_env(**_offline_env(tmp))
    env.pop("CUTCORE_FID_WEIGHTS", None)
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield proc, tmp / "eval"
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


class Shift(nn.Module):
    """Adds `levels` grey levels (of 255) to every channel; records the mode it was called in."""

    def __init__(self, levels: float):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(levels / 127.5))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return x + self.offset


# --- inputs ------------------------------------------------------------------------------------


def test_select_pairs_split_and_max_images(paired, tmp_path):
    split = tmp_path / "val.txt"
    split.write_text("p03.png\n\ntrainA/p01.png\n")
    assert read_split(split) == ["p03.png", "p01.png"]
    pairs = select_pairs(paired, "train", read_split(split))
    assert [(a.path.parent.name, a.path.name, b.path.parent.name) for a, b in pairs] == [
        ("trainA", "p01.png", "trainB"), ("trainA", "p03.png", "trainB")]
    assert [a.path.name for a, _ in select_pairs(paired, "test", max_images=2)] == ["p00.png", "p01.png"]
    with pytest.raises(ValueError, match="1 of 2 split names .*nope.png"):
        select_pairs(paired, "train", ["p00.png", "nope.png"])
    with pytest.raises(FileNotFoundError, match="split file not found"):
        read_split(tmp_path / "missing.txt")


@pytest.mark.parametrize("layout", ["cyclegan", "pix2pix"])
def test_a_dataset_without_a_test_split_points_to_its_training_folders(tmp_path, layout):
    """sat2map has trainA/ + trainB/ only: the default phase 'test' says how to score its held-out pairs."""
    root = make_unpaired(tmp_path / "d", n_a=2, n_b=2) if layout == "cyclegan" else make_ab(tmp_path / "d", n=2)
    with pytest.raises(FileNotFoundError, match=r"expected testA/ and testB/.*scored as phase 'train' with a split"):
        select_pairs(root)
    (root / "testA").mkdir()
    (root / "testB").mkdir()
    with pytest.raises(FileNotFoundError, match="no images found for phase 'test'") as err:  # it has a test split
        select_pairs(root)
    assert "phase 'train'" not in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="expected testA/") as err:  # no training folders: no hint
        select_pairs(tmp_path / "empty")
    assert "phase 'train'" not in str(err.value)


def test_select_pairs_reads_pix2pix_ab_files(tmp_path):
    pairs = select_pairs(make_ab(tmp_path / "ab", n=2, phase="test"))
    assert [(a.half, b.half) for a, b in pairs] == [("left", "right")] * 2
    assert pairs[0][0].load().size == (40, 40)


def test_orient_follows_training_and_generator_direction():
    pairs = [("a", "b")]
    assert orient(pairs, "AtoB", "AtoB") == [("a", "b")]
    assert orient(pairs, "AtoB", "BtoA") == [("b", "a")]  # CycleGAN's G_BA
    assert orient(pairs, "BtoA", "AtoB") == [("b", "a")]  # trained on B -> A
    assert orient(pairs, "BtoA", "BtoA") == [("a", "b")]


def test_metric_selection(offline, capsys):
    assert parse_metrics(" RMSE,swd ") == ["rmse", "swd"] == parse_metrics(["swd", "rmse"])
    with pytest.raises(ValueError, match="unknown metrics psnr"):
        parse_metrics("rmse,psnr")
    assert select_metrics(None) == (["accuracy", "rmse", "swd"], None)
    assert "note: FID skipped" in capsys.readouterr().err
    with pytest.raises(FIDWeightsUnavailable, match="not found"):
        select_metrics("fid")
    with pytest.raises(FIDWeightsUnavailable, match="not found at"):
        select_metrics(None, fid_weights=Path("/nonexistent/inception.pth"))


# --- scores ------------------------------------------------------------------------------------


def test_perfect_translation_scores_exactly(same_pairs):
    from cutcore.metrics import swd

    values = evaluate_generator(nn.Identity(), same_pairs, ["rmse", "swd", "accuracy"], size=64, progress=False)
    assert list(values) == ["accuracy", "rmse", "swd"]
    assert values["accuracy"] == 1.0 and values["rmse"] == 0.0
    # SWD samples the two sets at independent positions (PGGAN): a perfect translation scores the targets'
    # distance to themselves, the sampling floor, not 0.
    targets = [np.asarray(Image.open(b.path).convert("RGB").resize((256, 256), Image.BICUBIC)) for _, b in same_pairs]
    assert values["swd"] == pytest.approx(swd(targets, targets)["avg"], rel=1e-9) and values["swd"] > 0


def test_translating_small_is_scored_against_full_detail_targets(tmp_path):
    """A perfect translator run at 16² loses the detail of 64² noise maps: that must cost it, so the
    target is never shrunk to the translation size (which would score it nearly perfect)."""
    rng = np.random.default_rng(0)
    for d in "AB":
        (tmp_path / f"test{d}").mkdir()
    for i in range(2):
        img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        img.save(tmp_path / "testA" / f"{i}.png")
        img.save(tmp_path / "testB" / f"{i}.png")
    pairs = select_pairs(tmp_path)
    assert evaluate_generator(nn.Identity(), pairs, ["accuracy"], size=64, progress=False)["accuracy"] == 1.0
    values = evaluate_generator(nn.Identity(), pairs, ["accuracy", "rmse"], size=16, progress=False)
    assert values["accuracy"] < 0.2 and values["rmse"] > 50
    periodic = PeriodicEvaluator(tmp_path, "test", None, "accuracy,rmse", tmp_path / "out", size=16)
    assert periodic(nn.Identity(), 1, 0.5) == pytest.approx(values)  # training-time curves: the same protocol


@pytest.mark.parametrize("levels, accuracy, rmse", [(10, 0.0, math.sqrt(3 * 10**2)), (3, 1.0, math.sqrt(3 * 3**2))])
def test_brightness_shift_scores_by_hand(same_pairs, levels, accuracy, rmse):
    """Every channel off by `levels`: accuracy (δ = 5) is all or nothing, RMSE = sqrt(3 levels²)
    (GcGAN sums channels); ±1 from bicubic rounding at 256² is allowed."""
    g = Shift(levels).train()
    values = evaluate_generator(g, same_pairs, ["accuracy", "rmse"], size=64, progress=False)
    assert values["accuracy"] == accuracy
    assert values["rmse"] == pytest.approx(rmse, abs=0.3)
    assert g.calls == [(False, False)] * N_PAIRS  # eval mode, no autograd...
    assert g.training  # ...and training mode restored


def test_paired_metrics_resize_like_gcgan_and_distribution_metrics_like_the_loader(tmp_path):
    """Issue 16.6: accuracy and RMSE see translation and target resized to 256² as GcGAN's script does
    (OpenCV bilinear, no antialiasing), SWD and FID as the reference loader does (bicubic)."""
    from test_metrics import opencv_inter_linear

    from cutcore.metrics import paired_metrics, swd

    rng = np.random.default_rng(1)
    for d in "AB":
        (tmp_path / f"test{d}").mkdir()
    sources, targets = [], []
    for i, side in enumerate((96, 600)):  # a translation at 96² against a 600² map, as for the maps dataset
        sources.append(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
        targets.append(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        Image.fromarray(sources[-1]).save(tmp_path / "testA" / f"{i}.png")
        Image.fromarray(targets[-1]).save(tmp_path / "testB" / f"{i}.png")
    values = evaluate_generator(nn.Identity(), select_pairs(tmp_path), ["accuracy", "rmse", "swd"], size=None,
                                progress=False)
    gcgan = paired_metrics([opencv_inter_linear(s, 256) for s in sources],
                           [opencv_inter_linear(t, 256) for t in targets])
    assert values["rmse"] == pytest.approx(gcgan["rmse"], abs=0.05)  # OpenCV's last-bit rounding
    assert values["accuracy"] == pytest.approx(gcgan["accuracy"], abs=2e-3)
    bicubic = [np.asarray(Image.fromarray(x).resize((256, 256), Image.BICUBIC)) for x in (*sources, *targets)]
    assert values["swd"] == pytest.approx(swd(bicubic[:2], bicubic[2:])["avg"], rel=1e-9)


@pytest.mark.parametrize("load, crop, size", [(286, 256, 256), (143, 128, 128), (40, 32, 32), (256, 256, 256),
                                              (128, 64, 128), (1024, 64, 1024)])
def test_translation_size_follows_the_reference_test_protocol(load, crop, size, tmp_path):
    """Issue 16.6: the reference tests at load_size = crop_size, so a 256² dataset trained at 286/256 is
    translated at 256; crops well under the resized image (64 of 128) are patches of a deliberately
    resized image, translated at that resize. Training-time evaluation uses the same size."""
    from cutcore.evaluate import periodic_evaluator, translation_size

    assert translation_size(load, crop) == size
    cfg = tiny_run_config("cut", _make_paired(tmp_path / "data"), load=load, crop=crop)
    cfg.runtime.eval_metrics = "rmse"
    assert periodic_evaluator(cfg, tmp_path / "run", torch.device("cpu")).size == size



def test_held_out_evaluation_without_pairs_names_its_own_flags(tmp_path):
    """Training data without test pairs: the error is about --eval-every's pairs, not about --data."""
    from cutcore.evaluate import periodic_evaluator

    cfg = tiny_run_config("cut", make_unpaired(tmp_path / "data"))
    cfg.runtime.eval_every, cfg.runtime.eval_metrics = 5, "rmse"
    flags = r"^held-out evaluation \(--eval-every 5\): .*testA/ and testB/.*--eval-data"
    with pytest.raises(FileNotFoundError, match=flags):
        periodic_evaluator(cfg, tmp_path / "run", torch.device("cpu"))
    cfg.runtime.eval_metrics = "rmse,bogus"  # the flags' own mistakes are told as theirs
    with pytest.raises(ValueError,
                       match=r"^runtime.eval_metrics \(--eval-metrics\): unknown metrics bogus; choose from"):
        periodic_evaluator(cfg, tmp_path / "run", torch.device("cpu"))
    cfg.runtime.eval_metrics, cfg.runtime.eval_max_images = "rmse", 0
    with pytest.raises(ValueError, match=r"^runtime.eval_max_images \(--eval-max-images\) must be at least 1, got 0$"):
        periodic_evaluator(cfg, tmp_path / "run", torch.device("cpu"))

def test_evaluate_model_on_a_saved_model(model_dir, paired):
    model = load_model(model_dir, "cpu")
    scores = evaluate_model(model, select_pairs(paired), ["accuracy", "rmse", "swd"], size=64, progress=False)
    values = scores.values
    assert set(values) == {"accuracy", "rmse", "swd"}
    assert not model.generator.training
    # The model's own generator is what was scored: the same numbers as scoring it directly, not the input's.
    direct = evaluate_generator(model.generator, select_pairs(paired), ["accuracy", "rmse", "swd"], size=64,
                                progress=False)
    assert values == pytest.approx(direct, rel=1e-9)
    untranslated = evaluate_generator(torch.nn.Identity(), select_pairs(paired), ["rmse"], size=64, progress=False)
    assert abs(values["rmse"] - untranslated["rmse"]) > 0.5
    # Per map colour: the top colours' pixels, so their hits add up to at most the whole accuracy.
    assert scores.by_colour and all(0 < r["share"] <= 1 for r in scores.by_colour)
    assert sum(r["share"] * r["accuracy"] for r in scores.by_colour) <= values["accuracy"] + 1e-9
    assert evaluate_model(model, select_pairs(paired), ["rmse"], size=64, progress=False).by_colour == []
    # The baseline and the preview rows come from the same pass: the targets as scored, the first pairs in order.
    pairs = select_pairs(paired)
    assert scores.n_images == len(pairs)
    assert scores.baseline == most_common_colour_baseline([b.load() for _, b in pairs])
    assert len(scores.samples) == min(GRID_PAIRS, len(pairs))
    # Without a size, the model's own, as `evaluate` translates (not CUT's 256); pairs may be decoded images.
    own = evaluation_size(model.config)
    assert own != 256
    decoded = [(a.load(), b.load()) for a, b in pairs]
    assert evaluate_model(model, decoded, ["rmse"], progress=False).values == pytest.approx(
        evaluate_generator(model.generator, pairs, ["rmse"], size=own, progress=False), rel=1e-9)
    for (inp, _, target), (_, b) in zip(scores.samples, pairs[:GRID_PAIRS], strict=True):
        assert inp.size == (64, 64) and np.array_equal(target.paired, resize_rgb(b.load(), 256))



def test_evaluate_tiled_with_a_small_tile_overlaps_as_translate_does(model_dir, paired, capsys):
    """--tile 48 failed on every image ("overlap 64 must be less than half the tile size"): evaluate has no
    --overlap flag, and takes translate's default for the tile (a quarter of it)."""
    untiled = main(["evaluate", "--model", str(model_dir), "--data", str(paired), "--metrics", "rmse", "--json",
                    "--size", "64", "--device", "cpu"])
    whole = json.loads(capsys.readouterr().out)["rmse"]
    assert untiled == 0
    assert main(["evaluate", "--model", str(model_dir), "--data", str(paired), "--metrics", "rmse", "--json",
                 "--size", "64", "--device", "cpu", "--tile", "48"]) == 0
    tiled = json.loads(capsys.readouterr().out)["rmse"]
    assert tiled != whole and tiled == pytest.approx(whole, rel=0.2)  # tiled (seams differ), the same model


def test_training_images_are_told_by_data_folder_phase_and_name(model_dir, tmp_path, monkeypatch):
    """A run records its data root as typed where it trained (often relative to a folder unknown here):
    the evaluated folder is its folder when the paths agree or the relative one is the evaluated one's tail."""
    import copy
    from dataclasses import replace

    from cutcore.evaluate import seen_in_training

    config = load_model(model_dir, "cpu").config
    data = tmp_path / "shared" / "data" / "sat2map"
    names = ["0.png", "1.png", "2.png"]
    for domain in "AB":
        (data / f"train{domain}").mkdir(parents=True)
        for n in names:
            domain_a_image(0, (8, 8)).save(data / f"train{domain}" / n)

    def trained_on(root, exclude=(), max_items=None):
        run = copy.deepcopy(config.run)
        run.data.root, run.data.phase, run.data.exclude, run.data.max_items = root, "train", list(exclude), max_items
        return replace(config, run=run)

    monkeypatch.chdir(tmp_path)  # not where it trained
    assert seen_in_training(trained_on("../shared/data/sat2map"), data, "train", names) == names
    assert seen_in_training(trained_on("../shared/data/sat2map", ["1.png"]), data, "train", names) == ["0.png", "2.png"]
    # --max-items: the first images of each domain left after --exclude, as training took them.
    assert seen_in_training(trained_on(str(data), max_items=1), data, "train", names) == ["0.png"]
    assert seen_in_training(trained_on(str(data), ["0.png"], max_items=1), data, "train", names) == ["1.png"]
    assert seen_in_training(trained_on(str(data)), f"{data}/", "train", names) == names
    assert seen_in_training(trained_on("shared/data/sat2map"), "shared/data/sat2map", "train", names) == names
    assert seen_in_training(trained_on("../shared/data/other"), data, "train", names) == []
    assert seen_in_training(trained_on(str(data)), data, "test", names) == []  # another phase
    monkeypatch.chdir(data)
    assert seen_in_training(trained_on(""), ".", "train", names) == []  # official models record no data

# --- CLI ---------------------------------------------------------------------------------------


def test_evaluate_without_pytorch_fid_scores_the_other_metrics_and_says_why_fid_cannot(model_dir, paired, tmp_path):
    # As on the GPU machine's image: pytorch-fid is not installed (an importable stub that fails).
    (tmp_path / "pytorch_fid.py").write_text("raise ImportError('No module named pytorch_fid')\n")
    env = subprocess_env(**_offline_env(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    base = [sys.executable, "-m", "cutcore", "evaluate", "--model", str(model_dir), "--data", str(paired), "--json",
            "--size", "64", "--device", "cpu", "--metrics"]
    procs = [subprocess.Popen([*base, metrics], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for metrics in ("accuracy,rmse,swd", "fid")]
    (out, err), (_, fid_err) = (p.communicate(timeout=120) for p in procs)
    assert procs[0].returncode == 0, err
    assert set(json.loads(out)) == {"accuracy", "rmse", "swd"}
    assert procs[1].returncode == 2, fid_err
    assert "FID needs pytorch-fid" in fid_err and "--fid-weights" not in fid_err  # no weights file would help


def test_evaluate_without_fid_does_not_import_pytorch_fid(model_dir, paired, tmp_path):
    # It pulls in torchvision: ~2 s of start-up for every `evaluate --metrics accuracy,...`.
    code = ("import sys; from cutcore.cli import main; "
            f"code = main(['evaluate', '--model', {str(model_dir)!r}, '--data', {str(paired)!r}, '--json', "
            "'--size', '64', '--device', 'cpu', '--metrics', 'accuracy,rmse']); "
            "print('imported' if 'pytorch_fid' in sys.modules else 'not imported', code)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=subprocess_env(**_offline_env(tmp_path)),
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines()[-1] == "not imported 0", proc.stdout + proc.stderr


def test_cli_json_has_exactly_the_requested_keys(model_dir, paired, capsys):
    code = main(["evaluate", "--model", str(model_dir), "--data", str(paired), "--metrics", "swd,rmse",
                 "--json", "--size", "64", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    values = json.loads(out)
    assert set(values) == {"rmse", "swd"} and all(isinstance(v, float) for v in values.values())


def test_cli_explicit_fid_without_weights_exits_2(model_dir, paired, offline, capsys):
    code = main(["evaluate", "--model", str(model_dir), "--data", str(paired), "--metrics", "fid", "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.startswith("error: FID Inception weights not found")
    assert "CUTCORE_FID_WEIGHTS" in captured.err  # and how to fix it


# --- periodic evaluation -----------------------------------------------------------------------


def test_periodic_evaluator_appends_and_plots(paired, tmp_path):
    g = ResnetGenerator(ResnetGeneratorConfig(ngf=4, n_blocks=1)).train()
    evaluator = PeriodicEvaluator(paired, "train", ["p00.png", "p02.png", "p03.png"], "accuracy,rmse,swd",
                                  tmp_path / "run", max_images=2, size=32)
    first = evaluator(g, step=5, epoch=0.5)
    evaluator(g, step=10, epoch=1.0)
    assert g.training
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["epoch"]) for r in lines] == [(5, 0.5), (10, 1.0)]
    assert set(lines[0]) == {"step", "epoch", "accuracy", "rmse", "swd"} and lines[0]["rmse"] == first["rmse"]
    with Image.open(tmp_path / "run" / "metrics.png") as png:
        assert png.format == "PNG" and png.size[0] > png.size[1]


def test_training_from_python_evaluates_when_asked(paired, tmp_path):
    """runtime.eval_every from Python evaluates as the command does (it silently did nothing without an explicitly
    passed evaluator factory)."""
    from cutcore.train import train

    cfg = tiny_run_config("cut", paired, max_steps=2)
    cfg.runtime.eval_every, cfg.runtime.eval_metrics, cfg.runtime.eval_split = 2, "rmse", None
    train(cfg, tmp_path / "run")
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2] and lines[0]["rmse"] > 0


# --- report ------------------------------------------------------------------------------------


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    cut, put, fastcut = tmp_path / "cut", tmp_path / "put", tmp_path / "fastcut"
    write_json(cut / "config.json", {"preset": "cut"})
    write_json(cut / "metrics.json", {"metrics": {"accuracy": 0.25, "rmse": 40.0, "swd": 12.5, "fid": 80.0},
                                      "preset": "cut", "n_images": 10})
    write_json(put / "metrics.json", {"preset": "put", "rmse": 50.0})  # flat, no config.json
    curve = [{"step": 1, "epoch": 0.5, "rmse": 60}, {"step": 2, "epoch": 1.0, "rmse": 55}]
    (put / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve) + '{"st')  # cut short by a crash
    write_json(fastcut / "config.json", {"preset": "fastcut"})  # trained, not evaluated
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([
        {"preset": "cut", "sec_per_iter": 0.5, "peak_mem_mib": 1024, "size": 256, "device": "cpu", "precision": "fp32"},
        {"preset": "cyclegan", "sec_per_iter": 0.8, "peak_mem_mib": 2048.4, "size": 256, "device": "cpu"},
    ]))
    return {"cut": cut, "put": put, "fastcut": fastcut, "missing": tmp_path / "missing", "bench": bench}


def test_report_table_rows_in_order_with_dashes(runs):
    report = build_report([runs["cut"], runs["missing"], runs["put"], runs["fastcut"]], runs["bench"])
    lines = report.markdown.splitlines()
    assert lines[0] == "| method | accuracy ↑ | RMSE ↓ | SWD ↓ | FID ↓ | sec/iter | memory |"
    assert [ln.split(" | ")[0].lstrip("| ") for ln in lines[2:8]] == list(METHODS)
    assert lines[2:8] == [
        "| cut | 25.0% | 40.00 | 12.50 | 80.00 | 0.500 | 1024 MiB |",
        "| cut-focal | — | — | — | — | — | — |",
        "| fastcut | — | — | — | — | — | — |",
        "| fastcut-focal | — | — | — | — | — | — |",
        "| put | — | 50.00 | — | — | — | — |",
        "| cyclegan | — | — | — | — | 0.800 | 2048 MiB |",
    ]
    assert lines[-1] == "sec/iter and memory (peak MiB) from bench.json: size 256, device cpu, precision fp32"
    notes = "\n".join(report.notes)
    assert "missing: not a folder" in notes and "fastcut: no metrics.json" in notes and "metrics.jsonl:3" in notes
    assert [r["rmse"] for r in report.rows[4].curve] == [60, 55]


def test_report_takes_a_methods_speed_from_our_training_rows_of_a_side_by_side_file(runs, tmp_path):
    from cutcore.report import speed_table

    row = {"device": "cuda", "precision": "fp32", "size": 256, "batch_size": 1, "gflops": 100.0, "peak_fraction": None}
    bench = tmp_path / "bench_gpu.json"
    bench.write_text(json.dumps([
        {**row, "impl": "reference", "kind": "train", "preset": "cut", "sec_per_iter": 0.4, "peak_mem_mib": 3000},
        {**row, "impl": "ours", "kind": "inference", "preset": "cut", "sec_per_iter": 0.01, "peak_mem_mib": 500},
        {**row, "impl": "ours", "kind": "train", "preset": "fastcut", "error": "CUDA out of memory"},
        {**row, "impl": "ours", "kind": "train", "preset": "cut", "sec_per_iter": 0.1, "peak_mem_mib": 2000,
         "device_name": "NVIDIA H200", "torch_version": "2.11.0+cu130", "date": "2026-12-05",
         "gemm_peak_gflops": 50000.0},
        {**row, "impl": "ours", "kind": "train", "preset": "cut", "precision": "bf16", "sec_per_iter": 0.05,
         "peak_mem_mib": 1500},
    ]))
    report = build_report([runs["cut"]], bench)
    assert "| cut | 25.0% | 40.00 | 12.50 | 80.00 | 0.100 | 2000 MiB |" in report.markdown.splitlines()
    assert "| fastcut | — | — | — | — | — | — |" in report.markdown.splitlines()  # its row failed
    # The bf16 row is another measurement of the file's speed table, not a second answer for the method's.
    assert not any("several entries" in n for n in report.notes)
    twice = tmp_path / "twice.json"  # two answers for the same conditions: said
    twice.write_text(json.dumps([{**row, "impl": "ours", "kind": "train", "preset": "cut", "sec_per_iter": t}
                                 for t in (0.1, 0.2)]))
    assert any("several entries for cut" in n for n in build_report([runs["cut"]], twice).notes)
    title, table = speed_table(bench, [])
    assert title == "NVIDIA H200 · torch 2.11.0+cu130 · 2026-12-05"
    assert "0.25× time, 0.67× mem" in table  # ours beside the reference, every row kept
    assert "failed: CUDA out of memory" in table
    assert "fp32 GEMM ceiling of this device: 50000 GFLOP/s (8192² matmul)" in table
    assert speed_table(runs["bench"], []) is None  # a hand-written list: the method table only
    broken = tmp_path / "broken.json"  # bench rows edited by hand: no gflops, no time
    broken.write_text(json.dumps([{**row, "impl": "ours", "kind": "train", "preset": "cut", "sec_per_iter": None}]))
    notes = []
    assert speed_table(broken, notes) is None and "broken.json: rows the bench table cannot show" in notes[0]


def test_report_baseline_row_only_when_the_runs_agree_on_it(runs, tmp_path):
    baseline = {"accuracy": 0.2, "rmse": 45.0, "n": 10}
    where = {"data": "d", "phase": "train", "split": "val.txt", "n_images": 10, "size": 128}
    for name in ("cut", "put"):
        doc = json.loads((runs[name] / "metrics.json").read_text())
        write_json(runs[name] / "metrics.json", {**doc, **where, "baseline": baseline})
    report = build_report([runs["cut"], runs["put"], runs["fastcut"]])  # fastcut: not evaluated, no say
    assert report.markdown.splitlines()[-1] == ("| *every pixel the most common colour* | 20.0% | 45.00 "
                                                "| — | — | — | — |")
    assert report.baseline == {"accuracy": 0.2, "rmse": 45.0}
    write_json(runs["put"] / "metrics.json", {"preset": "put", "rmse": 50.0, **where, "size": 256,
                                              "baseline": baseline})
    report = build_report([runs["cut"], runs["put"]])
    assert "most common" not in report.markdown and not report.baseline
    assert any("different data, splits or sizes" in n for n in report.notes)


def test_report_shows_the_evaluated_one_of_two_runs_of_a_method_in_either_order(runs, tmp_path):
    trained = tmp_path / "trained"  # a second cut run, not evaluated
    write_json(trained / "config.json", {"preset": "cut"})
    for order in ([runs["cut"], trained], [trained, runs["cut"]]):
        report = build_report(order)
        assert "| cut | 25.0% | 40.00 | 12.50 | 80.00 | — | — |" in report.markdown.splitlines()
        assert f"{runs['cut']} is shown, the one with held-out metrics" in "\n".join(report.notes)
    again = tmp_path / "again"  # both evaluated: the later one, as before
    write_json(again / "metrics.json", {"preset": "cut", "rmse": 30.0})
    report = build_report([runs["cut"], again])
    assert "| cut | — | 30.00 | — | — | — | — |" in report.markdown.splitlines()
    assert f"{again} is shown, the later one (both have held-out metrics)" in "\n".join(report.notes)


def test_report_cli_writes_markdown_and_plots(runs, tmp_path, capsys):
    md, png = tmp_path / "out" / "table.md", tmp_path / "out" / "bars.png"
    code = main(["report", "--runs", str(runs["cut"]), str(runs["put"]), "--bench", str(tmp_path / "no_bench.json"),
                 "--out", str(md), "--plot", str(png)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.strip() == md.read_text().strip()
    assert "no_bench.json: benchmark file not found" in captured.err
    for path in (png, tmp_path / "out" / "bars-curves.png"):
        with Image.open(path) as img:
            assert img.format == "PNG"


def test_report_with_nothing_found_is_a_clean_error(tmp_path, capsys):
    assert main(["report", "--runs", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: nothing to report")


# --- real data ---------------------------------------------------------------------------------


@pytest.mark.skipif(not SAT2MAP.is_dir(), reason=f"shared sat2map data not present at {SAT2MAP}")
def test_sat2map_satellite_as_map_matches_the_documented_baseline():
    """shared/data/README.md: the satellite image itself as the map scores accuracy 0.1%, RMSE 221."""
    values = evaluate_generator(nn.Identity(), select_pairs(SAT2MAP, "train", max_images=8), ["accuracy", "rmse"],
                                progress=False)
    assert values["accuracy"] < 0.005 and 200 < values["rmse"] < 240


# --- the CLI as a process (last: it runs while the tests above do) -----------------------------


def test_cli_subprocess_prints_one_json_object_and_writes_files(cli_json_run, paired):
    """Default metrics offline: FID skipped with a note; stdout is the JSON object and nothing else."""
    proc, out = cli_json_run
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, stderr
    assert set(json.loads(stdout)) == {"accuracy", "rmse", "swd"}
    assert stdout.count("\n") == 1
    assert "note: FID skipped" in stderr and "translate" in stderr  # the note and the tqdm bar
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == json.loads(stdout)
    assert saved["preset"] == "cut" and saved["n_images"] == N_PAIRS
    # The floor, beside the scores: the most common colour of these targets.
    assert saved["baseline"] == pytest.approx(most_common_colour_baseline([b.load() for _, b in select_pairs(paired)]))
    assert "| RMSE ↓ |" in (out / "metrics.md").read_text()
    top = saved["by_colour"][0]  # the per-colour accuracy, in the file and the summary
    assert 0 < top["share"] <= 1 and len(top["colour"]) == len(top["predicted"]) == 3
    assert "#{:02x}{:02x}{:02x}".format(*top["colour"]) in (out / "metrics.md").read_text()
    assert Image.open(out / "samples.png").size == (3 * 256, N_PAIRS * 256)
