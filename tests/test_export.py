"""`cutcore.export`: a training run becomes a model folder that translates like the run's generator,
with a model card whose numbers are the evaluation's, and the evaluation scale is the training scale."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import domain_a_image, domain_b_image, make_unpaired, tiny_run_config
from PIL import Image
from safetensors import safe_open

from cutcore.checkpoint import load_tensors, split_state
from cutcore.cli import main
from cutcore.export import CardText, Evaluation, export_run
from cutcore.metrics import most_common_colour_baseline
from cutcore.model_folder import load_model
from cutcore.nets import ResnetGenerator
from cutcore.runlog import read_log, training_hardware, training_seconds
from cutcore.train import Trainer, checkpoint_dirs

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def paired(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("paired") / "data"
    for d in "AB":
        (root / f"train{d}").mkdir(parents=True)
    for i in range(5):
        domain_a_image(i, (48, 48)).save(root / "trainA" / f"{i}.png")
        domain_b_image(i, (48, 48)).save(root / "trainB" / f"{i}.png")
    (root / "val.txt").write_text("3.png\n4.png\n")
    return root


@pytest.fixture(scope="module")
def run(paired, tmp_path_factory) -> Path:
    cfg = tiny_run_config("cut", paired, load=40, crop=24, max_steps=4)  # patches of 48 px images resized to 40
    cfg.data.exclude = ["3.png", "4.png"]
    cfg.runtime.save_every = 2
    out = tmp_path_factory.mktemp("run") / "cut"
    Trainer(cfg, out).fit()
    return out


@pytest.fixture(scope="module")
def exported(run, paired, tmp_path_factory) -> Path:
    return export_run(run, tmp_path_factory.mktemp("weights") / "tiny-cut",
                      evaluation=Evaluation(str(paired), split=paired / "val.txt", metrics="accuracy,rmse"),
                      text=CardText("Stripes to blobs.", "Synthetic test images."))


def test_generator_and_heads_ship_in_fp16_without_discriminators(exported):
    with safe_open(str(exported / "model.safetensors"), "pt") as f:
        keys = list(f.keys())  # noqa: SIM118 - safe_open is no dict
        assert {k.split(".")[0] for k in keys} == {"G", "F"}
        assert {f.get_tensor(k).dtype for k in keys} == {torch.float16}


def test_exported_model_translates_like_the_checkpoint(run, exported):
    ckpt = checkpoint_dirs(run)[-1]
    reference = ResnetGenerator(load_model(exported, "cpu").generator.cfg)
    reference.load_state_dict(split_state(load_tensors(ckpt / "model.safetensors"), "G"))
    x = torch.rand(1, 3, 40, 40) * 2 - 1
    with torch.no_grad():
        want = reference.eval()(x)
        got = load_model(exported, "cpu").generator(x)
    assert (got - want).abs().max() < 2e-2  # fp16 weights, fp32 maths
    assert load_model(exported, "cpu").heads is not None


def test_config_records_training_and_evaluation_runs_at_the_training_scale(run, exported):
    config = json.loads((exported / "config.json").read_text())
    assert config["name"] == "tiny-cut" and config["source"] == "ours"
    assert config["training"]["steps"] == 4 and config["training"]["images"] == 4
    assert config["training"]["seconds"] > 0
    # what the run's log recorded (this CPU, one thread: the fixture's), not a default
    assert config["training"]["hardware"] == read_log(run / "log.jsonl")[-1]["hardware"]
    assert config["training"]["hardware"].endswith("(1 thread)")
    assert f"wall-clock on {config['training']['hardware']}" in (exported / "README.md").read_text()
    # What the weights are stored as, apart from what training computed in (config["train"]["precision"]).
    assert config["training"]["weights_dtype"] == "fp16" and "precision" not in config["training"]
    assert "in fp32 arithmetic; the weights ship in fp16" in (exported / "README.md").read_text()
    evaluation = json.loads((exported / "metrics.json").read_text())
    assert evaluation["size"] == 40 and evaluation["n_images"] == 2
    assert set(evaluation["metrics"]) == {"accuracy", "rmse"}
    assert 0 <= evaluation["baseline"]["accuracy"] <= 1


def test_a_run_resumed_elsewhere_names_each_machine_once_and_an_old_log_none():
    log = [{"step": 10, "hardware": "CPU A"}, {"step": 20, "hardware": "NVIDIA H200"},
           {"step": 30, "hardware": "CPU A"}, {"step": 40, "hardware": "Other GPU"}]
    assert training_hardware(log, 30) == "CPU A then NVIDIA H200"
    assert training_hardware([{"step": 10, "sec_per_iter": 1.0}], 10) is None


def test_model_card_quotes_the_evaluation(exported):
    card = (exported / "README.md").read_text()
    values = json.loads((exported / "metrics.json").read_text())["metrics"]
    assert card.startswith("---\nlibrary_name: cutcore")
    assert "Stripes to blobs." in card and "Synthetic test images." in card
    assert "the 2 images of `val.txt`, translated at 40²" in card and "not all held out" not in card
    assert f"| this model | {100 * values['accuracy']:.1f}% | {values['rmse']:.2f} |" in card
    assert "most common colour of the targets" in card and "![samples](samples.png)" in card
    assert "Accuracy per map colour" in card and "| accuracy there |" in card
    assert "4 iterations × batch 1 = 4 images" in card
    assert Image.open(exported / "samples.png").size[0] == 3 * 256
    assert (exported / "losses.png").is_file()


def test_re_export_replaces_the_folder_and_a_failed_one_changes_nothing(run, paired, tmp_path, capsys):
    out = export_run(run, tmp_path / "m", evaluation=Evaluation(str(paired), split=paired / "val.txt",
                                                                metrics="rmse"))
    assert (out / "metrics.json").is_file()
    export_run(run, out, step=2)  # no evaluation this time: the old one must not linger
    assert json.loads((out / "config.json").read_text())["training"]["steps"] == 2
    assert not (out / "metrics.json").exists() and not (out / "samples.png").exists()
    assert "## Metrics" not in (out / "README.md").read_text()
    before = sorted(p.name for p in out.iterdir())
    bad_split = tmp_path / "bad.txt"
    bad_split.write_text("not-there.png\n")
    assert main(["export", str(run), str(out), "--eval-data", str(paired), "--eval-split", str(bad_split)]) == 2
    assert "split names have no" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before  # untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_missing_step_or_run_is_a_one_line_error(run, tmp_path, capsys):
    assert main(["export", str(run), str(tmp_path / "x"), "--step", "3"]) == 2
    assert "no checkpoint of step 3 (have step_00000002, step_00000004)" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "y")]) == 2
    assert "nothing: no checkpoints/step_* to export" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # An --eval-* flag without --eval-data would be ignored: refused instead.
    assert main(["export", str(run), str(tmp_path / "z"), "--eval-split", "val.txt", "--eval-phase", "test"]) == 2
    assert "--eval-phase, --eval-split only apply with --eval-data" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_cyclegan_export_keeps_both_generators(paired, tmp_path):
    from cutcore.translate import translate_image

    cfg = tiny_run_config("cyclegan", paired, load=48, crop=32, max_steps=1)
    Trainer(cfg, tmp_path / "run").fit()
    out = export_run(tmp_path / "run", tmp_path / "cg", precision="fp32")
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert {k.split(".")[0] for k in f.keys()} == {"G", "G_BA"}  # noqa: SIM118
    assert "inference" not in json.loads((out / "config.json").read_text())  # trained at the images' own size
    back = load_model(out, "cpu", direction="BtoA")
    assert back.heads is None and translate_image(back, domain_b_image(0, (48, 48))).size == (48, 48)


def test_read_log_keeps_the_latest_record_of_a_step_and_sums_time(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [{"step": 50, "sec_per_iter": 1.0}, {"step": 100, "sec_per_iter": 9.0},  # killed, resumed from 50
             {"step": 100, "sec_per_iter": 2.0}, {"step": 150, "sec_per_iter": 3.0}]
    log.write_text("\n".join(json.dumps(r) for r in lines) + '\n{"step": 20')  # a line cut short
    records = read_log(log)
    assert [r["step"] for r in records] == [50, 100, 150] and records[1]["sec_per_iter"] == 2.0
    assert training_seconds(records, 100) == 50 * 1.0 + 50 * 2.0
    assert training_seconds(records, 150) == 50 * 1.0 + 50 * 2.0 + 50 * 3.0


def test_most_common_colour_baseline_by_hand():
    a = np.zeros((256, 256, 3), np.uint8)
    a[:, :192] = (200, 190, 180)  # 3/4 of this map
    b = np.full((256, 256, 3), 10, np.uint8)  # its own colour covers more of b than C does...
    b[:128] = (200, 190, 180)  # ...but over both maps C is the most common
    values = most_common_colour_baseline([a, b])
    assert values["accuracy"] == pytest.approx((0.75 + 0.5) / 2)
    # RMSE per image: sqrt(sum over pixels and channels / pixels).
    rmse_a = np.sqrt(0.25 * (200**2 + 190**2 + 180**2))
    rmse_b = np.sqrt(0.5 * (190**2 + 180**2 + 170**2))
    assert values["rmse"] == pytest.approx((rmse_a + rmse_b) / 2, rel=1e-6)


def test_translation_happens_at_the_training_scale(exported):
    """Trained on 48 px images resized to 40: new inputs are resized by 40/48, the result back."""
    from cutcore.translate import translate_image, translate_with

    model = load_model(exported, "cpu")
    assert json.loads((exported / "config.json").read_text())["inference"]["scale"] == pytest.approx(40 / 48)
    img = domain_a_image(7, (96, 96))
    out = translate_image(model, img)
    want = translate_with(model.generator, img.resize((80, 80), Image.BICUBIC)).resize((96, 96), Image.BICUBIC)
    assert out.size == (96, 96) and np.array_equal(np.asarray(out), np.asarray(want))
    native = translate_image(model, img, scale=1)
    assert native.size == (96, 96) and not np.array_equal(np.asarray(native), np.asarray(out))
    with pytest.raises(ValueError, match="scale must be positive"):
        translate_image(model, img, scale=0)


@pytest.mark.parametrize("load, crop, inference", [
    (54, 48, None),  # a 256² dataset at 286/256, scaled to 48 px: translated at the images' own size, 48
    (27, 24, {"scale": 0.5, "size": 24}),  # 600² maps at 286/256, scaled: translated at the crop size
])
def test_inference_size_follows_the_reference_test_protocol(paired, tmp_path, load, crop, inference):
    """Issue 16.6: export recorded the load size (286 for a 256² dataset trained at 286/256), so evaluate
    translated at 286 and resized back where the reference translates at 256 (load_size = crop_size).
    Patches of a deliberately resized image (the `run` fixture: 24² crops at 40) keep the load size."""
    from cutcore.evaluate import evaluation_size

    cfg = tiny_run_config("cut", paired, load=load, crop=crop, max_steps=1)
    Trainer(cfg, tmp_path / "run").fit()
    config = json.loads((export_run(tmp_path / "run", tmp_path / "m") / "config.json").read_text())
    assert config.get("inference") == (pytest.approx(inference) if inference else None)
    # evaluate scores at the size the held-out curve during training used (it scored 256 here: 48 px images x 5)
    assert evaluation_size(load_model(tmp_path / "m", "cpu").config) == (inference or {}).get("size", 48)


def test_source_side_sets_the_scale_of_a_model_trained_on_resized_copies(tmp_path):
    """A pack of 48 px copies of 96 px tiles: the data says nothing of the 96, the flag does."""
    cfg = tiny_run_config("cut", make_unpaired(tmp_path / "data", size=(48, 48)), load=48, crop=32, max_steps=1)
    Trainer(cfg, tmp_path / "run").fit()
    plain = json.loads((export_run(tmp_path / "run", tmp_path / "plain", precision="fp32") / "config.json").read_text())
    assert "inference" not in plain  # the training images are the size the model sees: scale 1
    out = export_run(tmp_path / "run", tmp_path / "m", precision="fp32", source_side=96)
    config = json.loads((out / "config.json").read_text())
    assert config["inference"] == {"scale": 0.5, "size": 48}


def test_export_never_replaces_the_run_or_a_folder_that_is_not_a_model(run, exported, tmp_path):
    """Export replaces its output whole: the run itself, a folder holding it, a folder inside it, a file
    or a folder of other files are refused, and nothing of them is touched."""
    before = sorted(p.relative_to(run.parent) for p in run.parent.rglob("*"))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(exported, target_is_directory=True)
    for out in (run, run.parent, run / "checkpoints", run / "new", other, other / "keep.txt", link):
        with pytest.raises(ValueError):
            export_run(run, out, precision="fp32")
    assert sorted(p.relative_to(run.parent) for p in run.parent.rglob("*")) == before
    assert (other / "keep.txt").read_text() == "mine"
    assert main(["export", str(run), str(run.parent)]) == 2
    # An exported model folder (or a new or empty one) is what it replaces.
    again = tmp_path / "again"
    (again / "empty").mkdir(parents=True)
    export_run(run, again / "empty", precision="fp32")
    assert export_run(run, again / "empty", precision="fp32") == again / "empty"


def test_exported_files_are_readable_as_open_would_create_them(exported):
    """Staged with mkdtemp/mkstemp (0700/0600), a model must not stay unreadable to a web server."""
    from cutcore.files import UMASK

    assert exported.stat().st_mode & 0o777 == 0o777 & ~UMASK
    for f in ("model.safetensors", "config.json", "README.md", "metrics.json"):
        assert (exported / f).stat().st_mode & 0o777 == 0o666 & ~UMASK


def test_metrics_name_the_exported_folder_not_the_staging_one(exported):
    assert json.loads((exported / "metrics.json").read_text())["model"] == str(exported)


def test_the_scale_is_measured_in_training_so_a_run_translates_as_its_export_from_any_folder(tmp_path, monkeypatch,
                                                                                          capsys):
    """data.root is recorded as typed, relative to where the run was trained. The training records the
    scale in every checkpoint: the run folder and its export made elsewhere translate alike. A run from
    before that (no record) needs its data: unreadable from here, export says so rather than write a
    model without its scale."""
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    make_unpaired(Path("data"), size=(48, 48))
    Trainer(tiny_run_config("cut", Path("data"), load=40, crop=24, max_steps=1), Path("run")).fit()
    ckpt = checkpoint_dirs(Path("run"))[-1].resolve()
    assert json.loads((ckpt / "config.json").read_text())["data"]["root"] == "data"
    monkeypatch.chdir(tmp_path)
    exported = json.loads((export_run("here/run", "m", precision="fp32") / "config.json").read_text())
    assert exported["inference"] == {"scale": pytest.approx(40 / 48), "size": 40}
    assert load_model("here/run", "cpu").input_scale == load_model("m", "cpu").input_scale == pytest.approx(40 / 48)
    old = json.loads((ckpt / "config.json").read_text())
    del old["inference"]  # a run trained before the scale was recorded
    (ckpt / "config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="--source-side"):
        export_run("here/run", "m2", precision="fp32")
    assert not Path("m2").exists()
    assert json.loads((export_run("here/run", "m2", precision="fp32", source_side=48) / "config.json").read_text()
                      )["inference"] == {"scale": pytest.approx(40 / 48), "size": 40}
    monkeypatch.chdir(tmp_path / "here")  # where its data can be read: measured there, as training does
    assert json.loads((export_run("run", "m3", precision="fp32") / "config.json").read_text()
                      )["inference"] == {"scale": pytest.approx(40 / 48), "size": 40}
    first = sorted(Path("data/trainA").iterdir())[0]
    Image.open(first).resize((64, 64)).save(first)  # inputs of two sides: nothing to measure a scale on
    assert "inference" not in json.loads((export_run("run", "m3", precision="fp32") / "config.json").read_text())
    assert "training images not of one size" in capsys.readouterr().err  # a note: stdout carries results


def test_evaluate_into_an_exported_folder_rewrites_its_card(exported, paired, tmp_path, capsys):
    """The app's hint for a model without metrics is `evaluate --out` into its folder: the card then shows
    the new numbers, and keeps export's texts (kept in config.json)."""

    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["card"] == {"about": "Stripes to blobs.", "attribution": "Synthetic test images."}
    assert load_model(folder, "cpu").config.card.about == "Stripes to blobs."
    assert main(["evaluate", "--model", str(folder), "--data", str(paired), "--phase", "train",
                 "--split", str(paired / "val.txt"), "--metrics", "rmse", "--out", str(folder)]) == 0
    assert "model card updated" in capsys.readouterr().err
    card = (folder / "README.md").read_text()
    rmse = json.loads((folder / "metrics.json").read_text())["metrics"]["rmse"]
    assert f"| this model | {rmse:.2f} |" in card
    assert "Stripes to blobs." in card and "Synthetic test images." in card
    assert "Training time: " in card and " 0.00 h" not in card  # a seconds-long run in seconds
    # An export from before the card texts were kept: its card is left as it is, not rewritten without them.
    older = tmp_path / "older"
    shutil.copytree(exported, older)
    config.pop("card")
    (older / "config.json").write_text(json.dumps(config))
    before = (older / "README.md").read_text()
    assert main(["evaluate", "--model", str(older), "--data", str(paired), "--phase", "train",
                 "--split", str(paired / "val.txt"), "--metrics", "rmse", "--out", str(older)]) == 0
    assert "left as it is" in capsys.readouterr().err and (older / "README.md").read_text() == before


def test_scores_on_training_images_are_named_as_such(run, exported, paired, tmp_path, capsys):
    """The run held out 3.png and 4.png only: scored on 0.png-2.png too, evaluate says so (under --json as
    well), metrics.json counts them and the card refuses to call them held out. The same names in another
    folder are other images: not flagged."""

    folder = tmp_path / "m"
    shutil.copytree(exported, folder)
    assert main(["evaluate", "--model", str(folder), "--data", str(paired), "--phase", "train", "--metrics", "rmse",
                 "--json", "--out", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "note: 3 of the evaluated images were training images of this model (e.g. 0.png)" in err
    assert json.loads((folder / "metrics.json").read_text())["seen_in_training"] == 3
    assert "(**not all held out from training**)" in (folder / "README.md").read_text()
    assert "were training images" in (folder / "metrics.md").read_text()
    # The held-out split alone: nothing to say.
    assert main(["evaluate", "--model", str(folder), "--data", str(paired), "--phase", "train", "--metrics", "rmse",
                 "--split", str(paired / "val.txt"), "--out", str(folder)]) == 0
    assert "training images" not in capsys.readouterr().err
    assert json.loads((folder / "metrics.json").read_text())["seen_in_training"] == 0
    assert "not all held out" not in (folder / "README.md").read_text()
    # Another dataset with the same file names.
    other = tmp_path / "other"
    shutil.copytree(paired, other)
    assert main(["evaluate", "--model", str(folder), "--data", str(other), "--phase", "train", "--metrics", "rmse",
                 "--json"]) == 0
    assert "training images" not in capsys.readouterr().err
    # export evaluates as evaluate --out does: the same record and the same line.
    whole = export_run(run, tmp_path / "whole", evaluation=Evaluation(str(paired), metrics="rmse"))
    assert json.loads((whole / "metrics.json").read_text())["seen_in_training"] == 3
    assert json.loads((whole / "metrics.json").read_text())["model"] == str(whole)
    assert "**3 of these 5 pairs were training images of this model.**" in (whole / "metrics.md").read_text()
    assert "(**not all held out from training**)" in (whole / "README.md").read_text()


def test_export_scores_the_test_pairs_by_default_where_there_are_some(run, paired, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(paired, data)
    for d in "AB":
        (data / f"test{d}").mkdir()
        shutil.copy(paired / f"train{d}" / "3.png", data / f"test{d}" / "3.png")
    folder = export_run(run, tmp_path / "m", evaluation=Evaluation(str(data), metrics="rmse"))
    scored = json.loads((folder / "metrics.json").read_text())
    assert (scored["phase"], scored["n_images"], scored["seen_in_training"]) == ("test", 1, 0)
    # A split names pairs of the training folders; without a test phase, the training pairs (flagged in the card).
    split = export_run(run, tmp_path / "s", evaluation=Evaluation(str(data), split=paired / "val.txt", metrics="rmse"))
    assert json.loads((split / "metrics.json").read_text())["phase"] == "train"


def test_an_export_from_before_weights_dtype_reads_its_old_key(exported):
    from cutcore.saved_config import SavedModelConfig

    config = json.loads((exported / "config.json").read_text())
    config["training"]["precision"] = config["training"].pop("weights_dtype")  # as exports wrote it before
    assert SavedModelConfig.from_json(config).training.weights_dtype == "fp16"
