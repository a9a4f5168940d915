"""The command line end to end: every preset trains and translates; user errors are one clean line.

Each `python -m cutcore` process spends ~5 CPU-seconds importing torch and torchvision, so the full
matrix (every preset, every error) runs in-process through `cutcore.cli.main` -- the same function
`python -m cutcore` calls -- and a few real subprocesses check the module entry point, exit codes and
stderr of the actual program. The subprocesses of one wave run concurrently.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from helpers import domain_a_image, make_unpaired, subprocess_env
from PIL import Image

from cutcore.hardware import no_cuda_reason

pytestmark = pytest.mark.usefixtures("one_thread")

PRESETS = ["cut", "fastcut", "cut-focal", "fastcut-focal", "put", "cyclegan"]
TINY = ["--max-steps", "2", "--load-size", "40", "--crop-size", "32", "--ngf", "4", "--ndf", "4", "--num-workers", "0"]


@dataclass
class Result:
    args: list[str]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (f"$ {' '.join(self.args)}\nexit {self.code}\n--- stdout\n{self.stdout}\n"
                f"--- stderr\n{self.stderr[-3000:]}")


def _cutcore(*args: str) -> list[str]:
    return [sys.executable, "-m", "cutcore", *map(str, args)]


def run_all(commands: dict[str, list[str]], cwd: Path, timeout: float = 420) -> dict[str, Result]:
    procs = {
        name: subprocess.Popen(cmd, cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True)
        for name, cmd in commands.items()
    }
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[name] = Result(commands[name], proc.returncode, out, err)
    return results


def _error_lines(stderr: str) -> list[str]:
    """What stderr says besides tqdm's progress bar (redrawn with \\r; an error may follow it directly),
    the trainer's one "training on ..." line once its first step is done, and the checkpoint it saves
    when a batch fails ("checkpoint of step N saved ...")."""
    lines = []
    for seg in re.split(r"[\r\n]+", stderr):
        if "error: " in seg:
            lines.append(seg[seg.index("error: "):])
        elif seg.strip() and not re.search(r"\d+/\d+ \[", seg) and not seg.startswith(("training on ",
                                                                                      "checkpoint of step ")):
            lines.append(seg)
    return lines


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    make_unpaired(work / "data")
    # Past the first 8, which the Trainer decodes up front (the inference scale): read when drawn, mid-run.
    bad = make_unpaired(work / "bad_img", n_a=9, n_b=2)
    (bad / "trainA" / "a08.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    domain_a_image(7, (37, 53)).save(work / "photo.png")
    (work / "broken.png").write_bytes(b"not really a png")
    (work / "notes.txt").write_text("hello")
    (work / "empty").mkdir()
    return work


def _main(capsys, *args) -> Result:
    from cutcore.cli import main

    argv = [str(a) for a in args]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    return Result(["cutcore", *argv], code, out, err)


@pytest.fixture(scope="module")
def trained(work):
    """Every preset trained through the CLI (in-process), once for the module."""
    from cutcore.cli import main

    codes = {p: main(["train", "--preset", p, "--data", str(work / "data"), "--out", str(work / p), *TINY])
             for p in PRESETS}
    return work, codes


@pytest.mark.parametrize("preset", PRESETS)
def test_train_every_preset(trained, preset):
    work, codes = trained
    assert codes[preset] == 0
    ckpt = work / preset / "checkpoints" / "step_00000002"
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "training.safetensors", "config.json",
                                                "state.json"}
    log = [json.loads(line) for line in (work / preset / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2
    assert ("cycle" in log[-1]) == (preset == "cyclegan")
    assert ("NCE" in log[-1]) == (preset != "cyclegan")
    assert ("NCE_Y" in log[-1]) == (preset in ("cut", "cut-focal", "put"))
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["preset"] == preset
    assert cfg["model"]["generator"]["ngf"] == 4 and cfg["model"]["discriminator"]["ndf"] == 4
    assert (cfg["data"]["load_size"], cfg["data"]["crop_size"], cfg["runtime"]["max_steps"]) == (40, 32, 2)
    assert cfg["runtime"]["num_workers"] == 0
    assert cfg["model"]["kind"] == ("cyclegan" if preset == "cyclegan" else "cut")
    if preset == "cyclegan":  # the saved model section holds only what CycleGAN uses
        assert "nce" not in cfg["model"] and cfg["model"]["lambda_cycle"] == 10.0
        return
    nce = cfg["model"]["nce"]
    assert nce["loss"] == ("focal" if "focal" in preset else "ce")
    assert nce["prune_k"] == (5 if preset == "put" else None)
    assert cfg["model"]["flip_equivariance"] == preset.startswith("fastcut")
    assert cfg["model"]["lambda_nce"] == (10.0 if preset.startswith("fastcut") else 1.0)
    assert (work / preset / "samples" / "step_00000002.png").is_file()


@pytest.mark.parametrize("preset", PRESETS)
def test_translate_every_preset(trained, capsys, preset):
    work, _ = trained
    r = _main(capsys, "translate", "--model", work / preset, "--input", work / "photo.png",
              "--output", work / f"t_{preset}")
    assert r.code == 0, r
    out = work / f"t_{preset}" / "photo.png"
    assert r.stdout.split() == [str(out)]
    assert Image.open(out).size == (37, 53)


def test_translate_cyclegan_btoa_tiled_and_folder(trained, capsys):
    work, _ = trained
    r = _main(capsys, "translate", "--model", work / "cyclegan" / "checkpoints" / "step_00000002", "--input",
              work / "photo.png", "--output", work / "t_btoa", "--direction", "BtoA", "--tile", "32", "--overlap", "8")
    assert r.code == 0, r
    written = Image.open(work / "t_btoa" / "photo.png")
    assert written.size == (37, 53)
    # G_BA, tiled as asked: the library's own answer for the same model, direction and tiles.
    from cutcore.model_folder import load_model
    from cutcore.translate import translate_image

    ckpt, photo = work / "cyclegan" / "checkpoints" / "step_00000002", Image.open(work / "photo.png")
    want = translate_image(load_model(ckpt, "cpu", "BtoA"), photo, tile=32, overlap=8)
    assert np.array_equal(np.asarray(written), np.asarray(want))
    assert not np.array_equal(np.asarray(written), np.asarray(translate_image(load_model(ckpt, "cpu"), photo)))
    assert not np.array_equal(np.asarray(written), np.asarray(translate_image(load_model(ckpt, "cpu", "BtoA"), photo)))
    # A small --tile without --overlap: the overlap follows the tile (64 would be over half of it).
    r = _main(capsys, "translate", "--model", ckpt, "--input", work / "photo.png", "--output", work / "t_small",
              "--direction", "BtoA", "--tile", "32")
    assert r.code == 0, r
    assert np.array_equal(np.asarray(Image.open(work / "t_small" / "photo.png")), np.asarray(want))  # 32 // 4 = 8
    r = _main(capsys, "translate", "--model", work / "cut", "--input", work / "data" / "trainB",
              "--output", work / "t_dir")
    assert r.code == 0, r
    assert sorted(p.name for p in (work / "t_dir").iterdir()) == ["b00.png", "b01.png", "b02.png"]


def test_train_overrides_and_exclude(work, capsys, tmp_path):
    (tmp_path / "exclude.txt").write_text("a00.png\n\n  b01.png  \n")
    r = _main(capsys, "train", "--preset", "put", "--data", work / "data", "--out", tmp_path / "run", *TINY[:-2],
              "--num-workers", "0", "--batch-size", "2", "--seed", "7", "--lr", "0.001", "--gan-mode", "hinge",
              "--nce-loss", "focal", "--focal-gamma", "1.5", "--focal-alpha", "0.5", "--prune-k", "3",
              "--num-patches", "32", "--n-blocks", "2", "--lambda-nce", "2", "--no-flip", "--direction", "BtoA",
              "--exclude", tmp_path / "exclude.txt", "--max-items", "3", "--log-every", "1")
    assert r.code == 0, r
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["train"]["batch_size"] == 2 and cfg["train"]["seed"] == 7 and cfg["train"]["lr"] == 0.001
    m = cfg["model"]
    assert (m["gan_mode"], m["num_patches"], m["generator"]["n_blocks"], m["lambda_nce"]) == ("hinge", 32, 2, 2.0)
    assert m["nce"] == {**m["nce"], "loss": "focal", "focal_gamma": 1.5, "focal_alpha": 0.5, "prune_k": 3}
    d = cfg["data"]
    assert (d["flip"], d["direction"], d["max_items"]) == (False, "BtoA", 3)
    assert d["exclude"] == ["a00.png", "b01.png"]
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2


def test_resume_via_cli(trained, capsys, tmp_path):
    work, _ = trained
    shutil.copytree(work / "fastcut", tmp_path / "run")
    # --resume continues the saved run (fastcut, ngf 4) and refuses flags that would change it.
    for flags, needle in ((("--preset", "cut"), "preset is 'fastcut'"), (("--ngf", "8"), "ngf is 4")):
        r = _main(capsys, "train", *flags, "--data", work / "data", "--out", tmp_path / "run", "--resume")
        assert r.code == 2 and needle in r.stderr and "cannot change mid-run" in r.stderr, r
    # A flag the saved run's model has no use for (CycleGAN has no PatchNCE): one line, not a traceback.
    shutil.copytree(work / "cyclegan", tmp_path / "cyclegan")
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "cyclegan", "--resume", "--lambda-nce", "2")
    assert r.code == 2 and "model.lambda_nce does not apply to this run (preset cyclegan)" in r.stderr, r
    assert "Traceback" not in r.stderr
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "run", "--resume",
              "--max-steps", "3", "--ngf", "4", "--num-workers", "0")
    assert r.code == 0, r
    ckpt = tmp_path / "run" / "checkpoints" / "step_00000003"
    assert f"checkpoint: {ckpt}" in r.stdout
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in log] == [2, 3]  # log_every 10: only each run's last step
    cfg = json.loads((ckpt / "config.json").read_text())
    assert (cfg["preset"], cfg["model"]["generator"]["ngf"], cfg["runtime"]["max_steps"]) == ("fastcut", 4, 3)
    # --data defaults to the checkpoint's; a run at its end says so rather than nothing.
    again = _main(capsys, "train", "--out", tmp_path / "run", "--resume", "--num-workers", "0")
    assert again.code == 0 and "nothing to train: the checkpoint is at step 3 and the run ends at step 3" in (
        again.stderr), again
    assert f"--resume: training data from {(work / 'data').resolve()} (the checkpoint's --data" in again.stderr
    moved = shutil.copytree(work / "data", tmp_path / "moved")
    on = _main(capsys, "train", "--data", moved, "--out", tmp_path / "run", "--resume", "--max-steps", "4",
               "--num-workers", "0")
    assert on.code == 0 and f"--resume: training data from {moved} (the checkpoint's run used" in on.stderr, on
    r2 = _main(capsys, "train", "--out", tmp_path / "new")
    assert r2.code == 2 and "--data is required (with --resume the checkpoint's is used)" in r2.stderr, r2


@pytest.mark.parametrize("args,needle", [
    (("train", "--data", "{work}/no_such_dir", "--out", "{tmp}/o", *TINY), "no_such_dir"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--load-size", "32", "--crop-size", "40"),
     "data.crop_size (--crop-size) 40 is larger than data.load_size (--load-size) 32"),
    (("train", "--data", "{work}/bad_img", "--out", "{tmp}/o", *TINY, "--max-steps", "12"), "a08.png"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", "--resume", *TINY), "no checkpoint"),
    (("translate", "--model", "{tmp}/nope", "--input", "{work}/photo.png", "--output", "{tmp}/o"), "nope: not found"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/broken.png", "--output", "{tmp}/o"), "broken.png"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/missing.png", "--output", "{tmp}/o"), "missing.png"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/photo.png", "--output", "{tmp}/o",
      "--direction", "BtoA"),
     "BtoA"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/photo.png", "--output", "{tmp}/o", "--tile", "16",
      "--overlap", "8"), "overlap"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/photo.png", "--output", "{tmp}/o", "--device", "gpu"),
     "--device gpu: unknown device 'gpu': use auto, cpu, cuda or cuda:N"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/photo.png", "--output", "{work}/photo.png"),
     "photo.png (an input) would be replaced by its own translation"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/photo.png", "--output", "{work}/notes.txt"),
     "notes.txt is a file, not a folder"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--exclude", "{work}/nope.txt"),
     "split file not found"),
    (("train", "--data", "{work}/data", "--out", "{work}/notes.txt/run", *TINY), "notes.txt is a file, not a folder"),
    (("translate", "--model", "{work}/notes.txt", "--input", "{work}/photo.png", "--output", "{tmp}/o"),
     "notes.txt: not a PyTorch state-dict file"),
    (("translate", "--model", "{work}/cut", "--input", "{work}/empty", "--output", "{tmp}/o"),
     "empty: no images here (accepted: .bmp, .gif, .jpeg, .jpg, .png"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--crop-size", "30"), "multiple of 4"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--batch-size", "0"),
     "train.batch_size (--batch-size) must be at least 1"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--epochs", "0", "--epochs-decay", "0"),
     "at least 1 epoch"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--num-patches", "0"),
     "model.num_patches (--num-patches) must be"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--load-size", "30000"), "is over 8192"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--lr", "-1"),
     "train.lr (--lr) must be above 0, got -1.0"),
    (("train", "--data", "{work}/data", "--out", "{tmp}/o", *TINY, "--max-steps", "0"),
     "runtime.max_steps (--max-steps) must be at least 1 (leave it out for the whole schedule), got 0"),
], ids=["bad-data", "crop>load", "bad-image", "resume-nothing", "no-model", "bad-input", "missing-input", "no-BtoA",
        "overlap", "device-typo", "output-is-the-input", "output-is-a-file", "no-exclude-file",
        "out-under-a-file", "model-is-text", "no-images",
        "crop-not-multiple", "batch-0", "no-epochs", "no-patches", "huge-load", "negative-lr", "max-steps-0"])
def test_user_errors_are_one_clean_line(trained, capsys, tmp_path, args, needle):
    work, _ = trained
    r = _main(capsys, *(a.format(work=work, tmp=tmp_path) for a in args))
    assert r.code == 2, r
    lines = _error_lines(r.stderr)
    assert len(lines) == 1, r
    assert lines[0].startswith("error: ") and needle in lines[0], r



def test_a_model_folder_without_its_config_is_named_as_such(trained, capsys, tmp_path):
    work, _ = trained
    (tmp_path / "m").mkdir()
    shutil.copy(work / "cut" / "checkpoints" / "step_00000002" / "model.safetensors", tmp_path / "m")
    r = _main(capsys, "translate", "--model", tmp_path / "m", "--input", work / "photo.png", "--output", tmp_path / "o")
    assert r.code == 2 and _error_lines(r.stderr) == [
        f"error: {tmp_path / 'm' / 'config.json'} is missing: a model folder holds model.safetensors and the "
        "config.json that describes its networks (python -m cutcore export writes both)"], r


@pytest.mark.parametrize("flag,value,needle", [("--tile", "8", "argument --tile: must be at least 16, got 8"),
                                               ("--tile", "0", "argument --tile: must be at least 16, got 0"),
                                               ("--overlap", "-1", "argument --overlap: must be at least 0, got -1")])
def test_tile_and_overlap_are_checked_where_they_are_given(trained, capsys, tmp_path, flag, value, needle):
    """--tile 0 translated untiled without a word, --tile 1 ran the generator once per pixel, -1 was a traceback."""
    work, _ = trained
    r = _main(capsys, "translate", "--model", work / "cut", "--input", work / "photo.png", "--output", tmp_path / "o",
              flag, value)
    assert r.code == 2 and r.stderr.splitlines()[-1].endswith(needle), r
    assert not (tmp_path / "o").exists()

@pytest.mark.parametrize("args,needle", [
    (("evaluate", "--model", "m", "--data", "d", "--size", "3"), "argument --size: must be 0 or at least 16, got 3"),
    (("evaluate", "--model", "m", "--data", "d", "--size", "-5"), "argument --size: must be 0 or at least 16, got -5"),
    (("report", "--runs", "r", "--plot", "charts.txt"), "argument --plot: charts.txt: the file written is a PNG, name "
                                                         "it .png"),
    (("sincut", "--data", "d", "--out", "o", "--preview-size", "-1"),
     "argument --preview-size: must be 0 or at least 16, got -1"),
    (("sincut", "--data", "d", "--out", "o", "--preview-every", "0"), "argument --preview-every: must be at least 1, "
                                                                        "got 0"),
])
def test_sizes_and_file_kinds_are_checked_where_they_are_given(capsys, args, needle):
    """evaluate --size 3 scored 3² translations, report --plot x.txt wrote a PNG named x.txt, sincut --preview-size -1
    trained with 4 px previews and --preview-every 0 named an internal field."""
    r = _main(capsys, *args)
    assert r.code == 2 and r.stderr.splitlines()[-1].endswith(needle), r


def test_translate_folder_skips_unreadable_images_and_says_so(trained, capsys, tmp_path):
    work, _ = trained
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # first: nothing after it was written
    for name in ("b.png", "c.jpg"):
        domain_a_image(1, (20, 16)).save(tmp_path / "in" / name)
    r = _main(capsys, "translate", "--model", work / "cut", "--input", tmp_path / "in", "--output", tmp_path / "o")
    assert r.code == 2, r
    assert r.stdout.split() == [str(tmp_path / "o" / "b.png"), str(tmp_path / "o" / "c.png")], r
    bad = tmp_path / "in" / "a.png"
    assert r.stderr.splitlines() == [f"warning: {bad}: not a readable image ({_reason(bad)}); skipped",
                                     f"error: 1 of 3 images could not be read (skipped): {bad}"], r


def _reason(path: Path) -> str:
    from cutcore.imageio import ImageLoadError, load_rgb

    with pytest.raises(ImageLoadError) as caught:
        load_rgb(path)
    return str(caught.value).split(" (", 1)[1][:-1]


def test_device_cuda_without_cuda_is_one_line(trained, capsys, tmp_path, monkeypatch):
    import torch

    work, _ = trained
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for args in (("translate", "--model", work / "cut", "--input", work / "photo.png", "--output", tmp_path / "o"),
                 ("train", "--data", work / "data", "--out", tmp_path / "run", *TINY)):
        r = _main(capsys, *args, "--device", "cuda")
        assert r.code == 2, r
        assert _error_lines(r.stderr) == [f"error: --device cuda: {no_cuda_reason()}; use --device cpu or auto"], r
    assert not (tmp_path / "o").exists() and not (tmp_path / "run").exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    r = _main(capsys, "translate", "--model", work / "cut", "--input", work / "photo.png", "--output", tmp_path / "o",
              "--device", "cuda:2")
    assert r.code == 2 and _error_lines(r.stderr) == [
        "error: --device cuda:2: this machine has 2 CUDA device(s): cuda:0 to cuda:1"], r


def test_scale_past_the_pixel_limit_is_one_line(trained, capsys, tmp_path, monkeypatch):
    from cutcore import translate

    work, _ = trained
    monkeypatch.setattr(translate, "MAX_PIXELS", 10_000)  # so that without the check the image stays small
    r = _main(capsys, "translate", "--model", work / "cut", "--input", work / "photo.png", "--output", tmp_path / "o",
              "--scale", "4")
    assert r.code == 2, r
    assert _error_lines(r.stderr) == ["error: scale 4 would make a 37x53 image 148x212 px, more than the 10,000 px an "
                                      "image may have"], r


def test_broken_model_folders_are_one_line(trained, capsys, tmp_path):
    work, _ = trained
    checkpoint = work / "cut" / "checkpoints" / "step_00000002"
    for name, damage, needle in (
        ("truncated", lambda f: f.joinpath("model.safetensors").write_bytes(b"\0" * 100),
         "model.safetensors: not a readable safetensors file, truncated or corrupt?"),
        ("other_ngf", lambda f: f.joinpath("config.json").write_text(
            f.joinpath("config.json").read_text().replace('"ngf": 4', '"ngf": 8')),
         "model.safetensors: does not match the config.json beside it: G.model.1.weight is (4, 3, 7, 7) in the "
         "weights, (8, 3, 7, 7)"),
        ("bad_json", lambda f: f.joinpath("config.json").write_text("{'preset': 'cut'}"),
         "config.json: not valid JSON"),
    ):
        folder = shutil.copytree(checkpoint, tmp_path / name)
        damage(folder)
        r = _main(capsys, "translate", "--model", folder, "--input", work / "photo.png", "--output", tmp_path / "o")
        lines = _error_lines(r.stderr)
        assert r.code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {folder}") and needle in lines[0], r


def test_bad_image_with_loader_workers_is_one_clean_line(trained, capsys, tmp_path):
    work, _ = trained
    r = _main(capsys, "train", "--data", work / "bad_img", "--out", tmp_path / "o", *TINY[:-2], "--num-workers", "1",
              "--max-steps", "12")
    assert r.code == 2, r
    lines = _error_lines(r.stderr)
    assert len(lines) == 1 and "a08.png" in lines[0] and "Traceback" not in r.stderr, r


def test_error_during_training_starts_its_own_line(trained, capsys, tmp_path):
    work, _ = trained
    r = _main(capsys, "train", "--data", work / "bad_img", "--out", tmp_path / "o", *TINY, "--max-steps", "12")
    assert r.code == 2, r
    assert re.search(r"(^|\n)error: .*a08\.png", r.stderr), r


@pytest.mark.parametrize("flag,value", [("--direction", "btoa"), ("--precision", "fp16"), ("--data-on-device", "yes"),
                                        ("--channels-last", "maybe")])
def test_train_rejects_invalid_choices(work, capsys, tmp_path, flag, value):
    """The words of a Literal field are the flag's choices, also where Python may set a bool instead."""
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "o", *TINY, flag, value)
    assert r.code == 2 and f"argument {flag}: invalid choice: '{value}' (choose from " in r.stderr, r


def test_ctrl_c_exits_130_without_a_traceback(work, capsys, tmp_path, monkeypatch):
    """train saves its checkpoint before it lets the interruption through; the command says so and exits 130."""
    import cutcore.train

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(cutcore.train, "train", interrupted)
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "o", *TINY)
    assert r.code == 130 and r.stderr.strip() == "interrupted", r


def test_max_steps_zero_is_a_clear_error(work, capsys, tmp_path):
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "o", *TINY, "--max-steps", "0")
    assert r.code == 2 and _error_lines(r.stderr)[0].startswith("error: "), r


def test_unknown_preset_is_a_usage_error(work, capsys):
    r = _main(capsys, "train", "--preset", "cut++", "--data", work / "data", "--out", work / "x")
    assert r.code == 2 and "invalid choice" in r.stderr


# --- the real program ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def programs(trained):
    """`python -m cutcore` as a user runs it: a training, a translation (of the in-process CycleGAN) and a
    user error, concurrently."""
    work, _ = trained
    return run_all({
        "cyclegan": _cutcore("train", "--preset", "cyclegan", "--data", work / "data", "--out", work / "p_cg", *TINY),
        "translate": _cutcore("translate", "--model", work / "cyclegan", "--input", work / "photo.png", "--output",
                              work / "p_t", "--direction", "BtoA"),
        "bad_data": _cutcore("train", "--data", work / "no_such_dir", "--out", work / "p_x", *TINY),
    }, work)


@pytest.mark.parametrize("name,folder", [("cyclegan", "p_cg")])
def test_program_trains(work, programs, name, folder):
    r = programs[name]
    assert r.code == 0, r
    assert f"checkpoint: {work / folder / 'checkpoints' / 'step_00000002'}" in r.stdout, r
    assert "Traceback" not in r.stderr


def test_program_translates(work, programs):
    r = programs["translate"]
    assert r.code == 0, r
    assert r.stdout.split() == [str(work / "p_t" / "photo.png")]
    assert Image.open(work / "p_t" / "photo.png").size == (37, 53)


def test_program_bad_data_exit_2_one_line(programs):
    r = programs["bad_data"]
    assert r.code == 2, r
    lines = _error_lines(r.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no_such_dir" in lines[0], r
    assert "Traceback" not in r.stderr


def test_train_says_once_how_it_executes(trained, capsys, tmp_path):
    work, _ = trained
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "o", *TINY, "--precision", "fp32")
    assert r.code == 0, r
    said = [seg for seg in re.split(r"[\r\n]+", r.stderr) if seg.startswith("training on ")]
    assert len(said) == 1 and said[0].startswith("training on cpu: fp32 (as configured); NCHW; data: DataLoader"), said


@pytest.mark.parametrize("given,layout", [(["--channels-last"], "channels_last"),
                                          (["--channels-last", "on"], "channels_last"),
                                          (["--channels-last", "off"], "NCHW"), ([], "NCHW")])
def test_channels_last_flag_forces_the_layout_either_way(trained, capsys, tmp_path, given, layout):
    work, _ = trained
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "o", *TINY, *given)
    assert r.code == 0, r
    said = [seg for seg in re.split(r"[\r\n]+", r.stderr) if seg.startswith("training on ")]
    assert f"; {layout}" in said[0], said
    saved = json.loads((tmp_path / "o" / "config.json").read_text())["runtime"]["channels_last"]
    assert saved == (given[-1] if len(given) == 2 else "on" if given else "auto")


@pytest.mark.parametrize("value,expected", [("off", False), ("on", True)])
def test_bool_config_flags_take_on_or_off(trained, capsys, tmp_path, value, expected):
    work, _ = trained
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "o", *TINY,
              "--whole-images-when-decaying", value)
    assert r.code == 0, r
    cfg = json.loads((tmp_path / "o" / "config.json").read_text())
    assert cfg["data"]["whole_images_when_decaying"] is expected
    r = _main(capsys, "train", "--data", work / "data", "--out", tmp_path / "p", *TINY, "--whole-images-when-decaying",
              "maybe")
    assert r.code == 2 and "expected on or off" in r.stderr


def test_bench_is_a_command_too(monkeypatch):
    """`python -m cutcore bench ...` is `python -m cutcore.bench ...`, its flags untouched."""
    import cutcore.bench
    from cutcore.cli import main

    heard = []
    monkeypatch.setattr(cutcore.bench, "main", lambda argv: heard.append(argv) or 0)
    assert main(["bench", "--preset", "cut", "--device", "cpu"]) == 0
    assert heard == [["--preset", "cut", "--device", "cpu"]]


# What `python -m cutcore` runs for each command line, in one fresh interpreter: the exit code and which heavy
# modules the command line itself imported (those already loaded before it, e.g. by a sitecustomize, aside).
_IMPORTS_OF = """
import contextlib, io, json, runpy, sys
HEAVY = ("torch", "numpy", "PIL")
before = {m for m in HEAVY if m in sys.modules}
seen = {}
for argv in json.loads(sys.argv[1]):
    sys.argv = ["cutcore", *argv]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = runpy.run_module("cutcore", run_name="__main__")
        except SystemExit as e:
            code = e.code
    seen[" ".join(argv)] = [code, sorted(m for m in HEAVY if m in sys.modules and m not in before)]
print(json.dumps({"before": sorted(before), "seen": seen}))
"""
_COMMANDS = ["train", "translate", "evaluate", "export", "sincut", "report", "official", "style", "bench"]


def test_help_and_usage_errors_import_no_torch():
    """`--help` and argparse's usage errors are answered before torch, numpy or PIL is imported (seconds of the
    user's time each): the parsers are built from torch-free modules, and the work's modules load in the handlers."""
    lines = [["--help"], *([c, "--help"] for c in _COMMANDS), ["official", "download", "--help"],
             [], ["train", "--no-such-flag"], ["train", "--preset", "cut++"], ["evaluate", "--size", "3", "x"],
             ["translate", "--tile", "4"], ["sincut", "--preview-every", "0"]]
    r = subprocess.run([sys.executable, "-c", _IMPORTS_OF, json.dumps(lines)], env=subprocess_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    if report["before"]:
        pytest.skip(f"the interpreter imports {report['before']} at start-up")
    expected = {" ".join(argv): [0 if "--help" in argv else 2, []] for argv in lines}
    assert report["seen"] == expected


def test_the_packages_load_their_modules_when_asked():
    """`import cutcore` loads no submodule (for a quick --help), yet `cutcore.config` and `cutcore.nets.resnet` work
    as when the package imported them itself; a name that is neither a submodule nor an export is an AttributeError."""
    code = ("import cutcore, cutcore.nets; print(cutcore.config.preset('cut').preset, cutcore.preset('put').preset, "
            "cutcore.nets.resnet.SIZE_MULTIPLE, cutcore.nets.ResnetGenerator.__name__); "
            "print(hasattr(cutcore, 'nope'), hasattr(cutcore.nets, 'nope'))")
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cut", "put", "4", "ResnetGenerator", "False", "False"]
