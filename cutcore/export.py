"""`python -m cutcore export`: turn a training run into a shippable model folder with a model card.

    python -m cutcore export runs/sat2map/cut weights/cut \\
        --eval-data ../shared/data/sat2map --eval-phase train --eval-split weights/sat2map_val.txt

The folder holds what the app and `translate` load — model.safetensors (the generators and
PatchNCE heads of the checkpoint, fp16 by default; discriminators and optimiser state stay
behind) and config.json — plus what a reader needs to trust it: metrics.json/metrics.md/
samples.png from the evaluation, metrics.jsonl (the held-out curve during training, read by
`report`) with its plot, losses.png, and README.md, the model card. The folder is assembled
aside and renamed into place, so a failed export never leaves a half model behind.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import checkpoint_dirs, load_tensors, read_json
from .config import DataConfig
from .files import UMASK
from .folders import domain_sources, has_phase, input_sides
from .model_folder import CONFIG, WEIGHTS, ModelCard, read_config, write_card, write_model_folder
from .results import save_figure
from .runlog import read_log, training_hardware, training_seconds
from .saved_config import CardText, InferenceSettings, SavedModelConfig, TrainingRecord, measured_inference

LOSS_KEYS = ("D", "G_GAN", "NCE", "NCE_Y", "G", "cycle", "idt")  # as the models log them


@dataclass
class Evaluation:
    data: str
    phase: str | None = None  # None: "test" where `data` has that phase and no split is given, else "train"
    split: Path | None = None
    metrics: str | None = None
    fid_weights: Path | None = None


def pick_checkpoint(run: Path, step: int | None) -> Path:
    ckpts = checkpoint_dirs(run)
    if not ckpts:
        raise FileNotFoundError(f"{run}: no checkpoints/step_* to export")
    if step is None:
        return ckpts[-1]
    for c in ckpts:
        if int(c.name.split("_")[1]) == step:
            return c
    raise FileNotFoundError(f"{run}: no checkpoint of step {step} (have {', '.join(c.name for c in ckpts)})")


def plot_losses(records: Sequence[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    keys = [k for k in LOSS_KEYS if any(k in r for r in records)]
    if not keys:
        return
    fig = Figure(figsize=(3.2 * len(keys), 2.6), layout="constrained")
    for ax, key in zip(fig.subplots(1, len(keys), squeeze=False)[0], keys, strict=True):
        steps = [r["step"] for r in records if key in r]
        values = np.array([r[key] for r in records if key in r], dtype=float)
        ax.plot(steps, values, lw=0.6, alpha=0.4)
        if len(values) >= 10:  # a moving average: GAN losses are noisy step to step
            k = max(5, len(values) // 20)
            ax.plot(steps[k - 1:], np.convolve(values, np.ones(k) / k, mode="valid"), lw=1.4)
        ax.set_title(key, fontsize="medium")
        ax.set_xlabel("iteration")
    save_figure(fig, path, dpi=90)


def measure_inference(data: DataConfig) -> InferenceSettings:
    """For a run whose checkpoints do not record it (older runs): measured on its training images as
    training now does; ValueError when they cannot be read (a model without its scale would translate
    differently)."""
    try:
        a, b = domain_sources(data.root, data.phase)
        sides = input_sides(b if data.direction == "BtoA" else a)
    except (TypeError, OSError, ValueError) as e:  # data moved, unreadable, or a path relative to another folder
        raise ValueError(
            f"cannot read the training images at {data.root!r} ({e}), which set the model's inference scale: "
            "run export from the folder the run was trained in, or pass --source-side N (the side in pixels "
            "of the images the model is for)") from None
    if len(sides) != 1:
        print(f"note: {data.root}: training images not of one size; the model card gives no inference scale "
              "(inputs are translated as they are)", file=sys.stderr)  # a note, not the command's output
    return measured_inference(data, sides)


def check_replaceable(out: Path, run: Path) -> None:
    """Export replaces `out` whole: refuse anything but a new or empty folder or an exported model, and
    never the run itself, a folder holding it or one inside it."""
    if out.is_symlink():  # rmtree refuses links, and the link's target is not what it names
        raise ValueError(f"{out} is a symbolic link; give the folder itself")
    o, r = out.resolve(), run.resolve()
    if o == r or o in r.parents or r in o.parents:
        raise ValueError(f"{out}: export would replace the run {run} or a folder with it; choose a folder outside it")
    if o.exists() and not o.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the model")
    exported = (o / WEIGHTS).is_file() and (o / CONFIG).is_file() and not (o / "state.json").exists() \
        and not (o / "checkpoints").exists()
    if o.is_dir() and any(o.iterdir()) and not exported:
        raise ValueError(f"{out} holds other files and is not an exported model folder (export replaces the "
                         "folder whole); choose a new or empty folder")


def exported_tensors(ckpt: Path, precision: str) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint's model file (G, F, and CycleGAN's G_BA), floats in `precision`."""
    dtype = torch.float16 if precision == "fp16" else torch.float32
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in load_tensors(ckpt / "model.safetensors").items()}


def model_card(folder: Path, config: SavedModelConfig) -> ModelCard:
    """The card for the files in `folder`: data, recipe, training, metrics, samples, curves, licence."""
    from .evaluate import read_split, seen_in_training
    from .results import LABELS, colour_table, format_metric

    d, m, train, t = config.run.data, config.run.model, config.run.train, config.training
    text = config.card or CardText()
    evaluation = read_json(folder / "metrics.json") if (folder / "metrics.json").is_file() else {}
    held_out = set(d.exclude or [])
    card = ModelCard(config.name, f"A `{config.preset}` model trained with cutcore {__version__}."
                     + (f" {text.about}" if text.about else ""))
    data = [f"- Training data: `{d.root}`, phase `{d.phase}`, direction {d.direction}, "
            "trained **unpaired** (the two domains drawn independently)."]
    if held_out:
        data.append(f"- Held out from training: {len(held_out)} file names (`data.exclude` in config.json).")
    card.sections.append(("Data", data))
    recipe = [f"- Images resized to {d.load_size}², random {d.crop_size}² crops"
              + (", horizontal flips" if d.flip else ""),
              f"- Generator: ResNet, ngf {m.generator.ngf}, {m.generator.n_blocks} residual blocks; "
              f"discriminator ndf {m.discriminator.ndf}"]
    if t is not None:
        recipe.append(f"- {t.steps} iterations × batch {train.batch_size} = {t.images} images; LR {train.lr}, "
                      f"constant for {train.epochs} epochs, then linear decay over {train.epochs_decay}")
    if config.inference.scale != 1:
        recipe.append(f"- New inputs are resized by {config.inference.scale:g} (to the ground resolution the model "
                      "learnt) and the result back to the input's size; `translate` and the app do this themselves")
    if t is not None:
        recipe.append(f"- Training time: {_duration(t.seconds)} wall-clock on {t.hardware} (the training loop, "
                      f"periodic evaluation and checkpoints included), in {train.precision} arithmetic; the weights "
                      f"ship in {t.weights_dtype}")
    card.sections.append(("Recipe", recipe))
    values = evaluation.get("metrics", {})
    if values:
        split = evaluation.get("split")
        names = read_split(split) if split and Path(split).is_file() else []
        scope = (f"the {evaluation.get('n_images')} images of `{Path(split).name}`" if split
                 else f"{evaluation.get('n_images')} images of phase `{evaluation.get('phase')}`")
        seen = evaluation.get("seen_in_training")  # counted by evaluate; else (an older metrics.json) the split's
        if seen is None and evaluation.get("data"):
            seen = len(seen_in_training(config, evaluation["data"], evaluation.get("phase", "test"), names))
        if seen:
            scope += " (**not all held out from training**)"
        cols = [k for k in LABELS if k in values]
        base = evaluation.get("baseline", {})
        metrics = [f"On {scope}, translated at {evaluation.get('size')}², compared at 256² (GcGAN protocol: accuracy "
                   "= share of pixels within 5 of the truth in every channel).", "",
                   "| | " + " | ".join(LABELS[c] for c in cols) + " |", "|---|" + "---:|" * len(cols),
                   "| this model | " + " | ".join(format_metric(c, values[c]) for c in cols) + " |"]
        if base:
            metrics.append("| every pixel the most common colour of the targets | "
                           + " | ".join(format_metric(c, base[c]) if c in base else "—" for c in cols) + " |")
        if evaluation.get("by_colour"):
            metrics += ["", "Accuracy per map colour (pixels of the targets within 5 of it):", "",
                        colour_table(evaluation["by_colour"])]
        card.sections.append(("Metrics", metrics))
    if (folder / "samples.png").is_file():
        card.sections.append(("Samples", ["Input · this model · ground truth:", "", "![samples](samples.png)"]))
    curves = [(f, alt) for f, alt in (("metrics.png", "held-out metrics during training"),
                                      ("losses.png", "training losses")) if (folder / f).is_file()]
    if curves:
        card.sections.append(("Training curves", [line for f, alt in curves for line in (f"![{alt}]({f})", "")][:-1]))
    if text.attribution:
        card.sections.append(("Data licence and attribution", [text.attribution]))
    return card


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _evaluate_into(folder: Path, final: Path, ev: Evaluation) -> None:
    """Evaluate the model staged in `folder` into it, as `evaluate --out` would; its results name `final`,
    where it will live."""
    from .evaluate import evaluate_saved_model
    from .metrics import FIDWeightsUnavailable, PytorchFIDMissing

    # Without a split, the test pairs where there are some: the training pairs would score what the model has seen.
    phase = ev.phase or ("test" if ev.split is None and has_phase(ev.data, "test") else "train")
    try:
        evaluate_saved_model(folder, ev.data, phase=phase, split=ev.split, metrics=ev.metrics, device="cpu",
                             fid_weights=ev.fid_weights, out=folder, recorded_as=final)
    except FIDWeightsUnavailable as e:
        fix = "leave fid out of --eval-metrics" if isinstance(e, PytorchFIDMissing) else \
            "pass --fid-weights, or leave fid out of --eval-metrics"
        raise ValueError(f"{str(e).splitlines()[0]} ({fix})") from e


def refresh_card(folder: str | os.PathLike) -> Path:
    """Write an exported model's card again from its files, e.g. after `evaluate --out` into its folder
    changed metrics.json: the card always says what the folder holds."""
    folder = Path(folder)
    write_card(folder, model_card(folder, read_config(folder)).render(folder))
    return folder / "README.md"


def export_run(
    run: str | os.PathLike, out: str | os.PathLike, *, step: int | None = None, name: str | None = None,
    precision: str = "fp16", hardware: str | None = None, evaluation: Evaluation | None = None,
    text: CardText | None = None, source_side: int | None = None,
) -> Path:
    """Write `out` (replacing it) from the run's checkpoint `step` (default: the newest). `source_side`:
    the side of the images the model is for, when its training data was resized copies of them. `hardware`:
    what the card says it trained on (default: what the run's log recorded)."""
    from .results import plot_curves

    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, not {precision!r}")
    run, out = Path(run), Path(out)
    check_replaceable(out, run)
    ckpt = pick_checkpoint(run, step)
    config = read_json(ckpt / "config.json")
    state = read_json(ckpt / "state.json")
    if not isinstance(state.get("step"), int) or not isinstance(config.get("train", {}).get("batch_size"), int):
        raise ValueError(f"{ckpt}: state.json or config.json lacks the step or batch size; not a cutcore checkpoint?")
    done, records = state["step"], read_log(run / "log.jsonl")
    saved = SavedModelConfig.from_json(config)  # typed once: a config that would not load again fails here
    data = saved.run.data
    # Data resized before training (a pack of 256 px copies of 512 px tiles) hides the inputs' real side.
    if source_side:
        inference = measured_inference(data, {source_side})
    elif "inference" in config:  # measured by training
        inference = saved.inference
    else:  # a run from before training measured it
        inference = measure_inference(data)
    training = TrainingRecord(done, done * saved.run.train.batch_size, round(training_seconds(records, done), 1),
                              hardware or training_hardware(records, done) or "hardware not recorded", precision)
    saved = replace(saved, name=name or out.name, source="ours", inference=inference, training=training,
                    card=text or CardText())  # the card texts kept so that refresh_card can write the card again
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    staging.chmod(0o777 & ~UMASK)  # mkdtemp's 0700 would keep the model from a web server or another user
    try:
        write_model_folder(staging, exported_tensors(ckpt, precision), saved,
                           metadata={"format": "cutcore", "exported_from": str(ckpt)})
        if records:
            plot_losses(records, staging / "losses.png")
        curve = run / "metrics.jsonl"
        if curve.is_file():
            shutil.copyfile(curve, staging / "metrics.jsonl")
            plot_curves({"": read_log(curve)}, staging / "metrics.png")
        if evaluation is not None:
            _evaluate_into(staging, out, evaluation)
        write_card(staging, model_card(staging, saved).render(out))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
