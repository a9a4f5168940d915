"""`python -m cutcore export`: turn a training run into a shippable model folder with a model card.

    python -m cutcore export runs/sat2map/cut weights/cut \\
        --eval-data ../shared/data/sat2map --eval-phase train --eval-split weights/sat2map_val.txt

The folder holds what the app and `translate` load — model.safetensors (the A→B generator and
the PatchNCE heads, fp16 by default; discriminators and optimiser state stay behind) and
config.json — plus what a reader needs to trust it: metrics.json/metrics.md/samples.png from
the evaluation command, metrics.jsonl (the held-out curve during training, read by `report`),
losses.png, and README.md, the model card (data, split, recipe, training time, metrics).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import load_tensors, read_json, save_tensors, write_bytes, write_json
from .data import domain_sources
from .metrics.paired import paired_metrics, resize_rgb
from .train import checkpoint_dirs

SHIPPED = ("G", "F")  # A→B generator and PatchNCE heads: what translation and the correspondence view use
LOSS_KEYS = ("D", "G_GAN", "NCE", "NCE_Y", "G", "cycle_A", "cycle_B", "idt_A", "idt_B")


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


def read_log(path: Path) -> list[dict]:
    """log.jsonl records by step; a resumed run logs some steps twice and the later record wins."""
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def training_seconds(records: Sequence[dict], until: int) -> float:
    """Compute time of the logged iterations up to step `until` (each record: mean sec/iter since the last)."""
    total, prev = 0.0, 0
    for r in records:
        if r["step"] > until:
            break
        if isinstance(r.get("sec_per_iter"), (int, float)):
            total += r["sec_per_iter"] * (r["step"] - prev)
        prev = r["step"]
    return total


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
    fig.savefig(path, dpi=90)


def most_common_colour_baseline(targets: Sequence[np.ndarray]) -> dict[str, float]:
    """Accuracy/RMSE of painting every pixel the single most common colour of the target maps."""
    maps = [resize_rgb(t, 256) for t in targets]
    packed = np.concatenate([(m.astype(np.int64) * [65536, 256, 1]).sum(-1).ravel() for m in maps])
    mode = int(np.bincount(packed).argmax())
    colour = np.array([mode >> 16, (mode >> 8) & 255, mode & 255], np.uint8)
    return paired_metrics([np.broadcast_to(colour, (256, 256, 3)).copy()] * len(maps), maps)


def inference_scale(config: dict) -> float | None:
    """load_size / side of the training images (when they share one): the resize new inputs need so
    the model sees them at its training ground resolution. None when the data is not at hand."""
    d = config.get("data", {})
    try:
        a, _ = domain_sources(d["root"], d.get("phase", "train"))
        sides = {max(src.load().size) for src in a[:8]}
    except (KeyError, OSError, ValueError):  # data moved or unreadable: the card just omits the scale
        return None
    side = sides.pop() if len(sides) == 1 else None
    if not side or not d.get("load_size"):
        return None
    return d["load_size"] / side


def export_weights(ckpt: Path, out: Path, precision: str = "fp16") -> list[str]:
    tensors = load_tensors(ckpt / "model.safetensors")
    dtype = torch.float16 if precision == "fp16" else torch.float32
    kept = {k: v.to(dtype) for k, v in tensors.items() if k.split(".")[0] in SHIPPED}
    save_tensors(out / "model.safetensors", kept, metadata={"format": "cutcore", "exported_from": str(ckpt)})
    return sorted({k.split(".")[0] for k in kept})


def _fmt(name: str, value: float) -> str:
    return f"{100 * value:.1f}%" if name == "accuracy" else f"{value:.2f}"


def model_card(out: Path, config: dict) -> str:
    """README.md: Hub front matter, then data, split, recipe, training, metrics, samples, use."""
    name, t, d, m = config["name"], config.get("training", {}), config.get("data", {}), config.get("model", {})
    g = m.get("generator", {})
    evaluation = read_json(out / "metrics.json") if (out / "metrics.json").is_file() else {}
    lines = ["---", "library_name: cutcore", "pipeline_tag: image-to-image",
             "tags: [image-to-image, contrastive-unpaired-translation, satellite, maps]", "---", "",
             f"# {name}", "",
             f"A `{config.get('preset')}` model trained with cutcore {__version__} to translate satellite tiles "
             "into OpenStreetMap-style maps.", "", "## Data and split", "",
             f"- Training data: `{d.get('root')}`, phase `{d.get('phase')}`, trained **unpaired** (satellite "
             "and map tiles drawn independently).",
             f"- Held out: {len(d.get('exclude') or [])} tiles (`weights/sat2map_val.txt`), never seen in training.",
             "", "## Recipe", "",
             f"- Tiles resized to {d.get('load_size')}², random {d.get('crop_size')}² crops"
             + (", horizontal flips" if d.get("flip") else ""),
             f"- Generator: ResNet, ngf {g.get('ngf')}, {g.get('n_blocks')} residual blocks; "
             f"discriminator ndf {m.get('discriminator', {}).get('ndf')}",
             f"- {t.get('steps')} iterations × batch {config.get('train', {}).get('batch_size')} "
             f"= {t.get('images')} images; LR {config.get('train', {}).get('lr')}, constant for "
             f"{config.get('train', {}).get('epochs')} epochs, then linear decay over "
             f"{config.get('train', {}).get('epochs_decay')}",
             *([f"- Inputs are resized by {config['inference']['scale']:g} before translation (the training "
                "scale) and the map back to the input's size; `translate` and the app do this by themselves"]
               if config.get("inference", {}).get("scale") else []),
             f"- Training time: {t.get('seconds', 0) / 3600:.2f} h on {t.get('hardware', 'CPU')} (sum of the logged "
             "iteration times; evaluations and restarts not counted)", ""]
    values = evaluation.get("metrics", {})
    if values:
        base = evaluation.get("baseline", {})
        cols = [k for k in ("accuracy", "rmse", "swd", "fid") if k in values]
        arrows = {"accuracy": "accuracy ↑", "rmse": "RMSE ↓", "swd": "SWD ↓", "fid": "FID ↓"}
        lines += ["## Metrics", "",
                  f"On the {evaluation.get('n_images')} held-out tiles, translated at {evaluation.get('size')}², "
                  "compared at 256² (GcGAN protocol: accuracy = share of pixels within 5 of the truth in every "
                  "channel).", "",
                  "| | " + " | ".join(arrows[c] for c in cols) + " |", "|---|" + "---:|" * len(cols),
                  "| this model | " + " | ".join(_fmt(c, values[c]) for c in cols) + " |"]
        if base:
            lines.append("| every pixel the most common map colour | "
                         + " | ".join(_fmt(c, base[c]) if c in base else "—" for c in cols) + " |")
        lines.append("")
    if (out / "samples.png").is_file():
        lines += ["## Samples", "", "Satellite input · this model · true map (held-out tiles):", "",
                  "![samples](samples.png)", ""]
    if (out / "metrics.png").is_file() or (out / "losses.png").is_file():
        lines += ["## Training curves", ""]
        lines += ["![held-out metrics during training](metrics.png)", ""] if (out / "metrics.png").is_file() else []
        lines += ["![training losses](losses.png)", ""] if (out / "losses.png").is_file() else []
    lines += ["## Use", "", "```bash",
              f"python -m cutcore translate --model weights/{out.name} --input SATELLITE.jpg --output OUT_DIR", "```",
              "", "## Licence and attribution", "",
              "Map data © OpenStreetMap contributors (ODbL); aerial imagery © its provider. The tiles come from "
              "the public repository maksimandrianov/pix2pix and were used for training and evaluation only.", ""]
    return "\n".join(lines)


def export_run(
    run: str | os.PathLike, out: str | os.PathLike, *, step: int | None = None, name: str | None = None,
    precision: str = "fp16", hardware: str = "2 CPU cores", eval_data: str | None = None,
    eval_phase: str = "train", eval_split: str | os.PathLike | None = None, eval_metrics: str | None = None,
) -> Path:
    from .evaluate import (
        evaluate_model,
        metrics_table,
        plot_curves,
        read_split,
        select_metrics,
        select_pairs,
        training_size,
        write_evaluation,
    )
    from .translate import load_model

    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, not {precision!r}")
    run, out = Path(run), Path(out)
    ckpt = pick_checkpoint(run, step)
    config = read_json(ckpt / "config.json")
    done = int(read_json(ckpt / "state.json")["step"])
    records = read_log(run / "log.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    export_weights(ckpt, out, precision)
    config.update(name=name or out.name, source="ours", training={
        "steps": done, "images": done * config["train"]["batch_size"],
        "seconds": round(training_seconds(records, done), 1), "hardware": hardware, "precision": precision,
    })
    scale = inference_scale(config)
    if scale and scale != 1:
        config["inference"] = {"scale": scale}
    write_json(out / "config.json", config)
    if records:
        plot_losses(records, out / "losses.png")
    curve = run / "metrics.jsonl"
    if curve.is_file():
        shutil.copyfile(curve, out / "metrics.jsonl")
        plot_curves({"": [json.loads(x) for x in curve.read_text().splitlines() if x.strip()]}, out / "metrics.png")
    if eval_data:
        model = load_model(out, "cpu")
        pairs = select_pairs(eval_data, eval_phase, read_split(eval_split) if eval_split else None)
        metrics, fid_extractor = select_metrics(eval_metrics, None, "cpu")
        size = training_size(config)
        values = evaluate_model(model, pairs, metrics, size=size, fid_extractor=fid_extractor)
        info = {"data": str(eval_data), "phase": eval_phase, "split": str(eval_split) if eval_split else None,
                "direction": "AtoB", "size": size,
                "baseline": most_common_colour_baseline([np.asarray(b.load().convert("RGB")) for _, b in pairs])}
        write_evaluation(out, model, pairs, values, info, f"{config['name']}\n\n{metrics_table(values)}")
    write_bytes(out / "README.md", model_card(out, config).encode())
    return out


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="turn a training run into a model folder (weights, config, model card)")
    p.add_argument("run", type=Path, help="training run folder (checkpoints/step_*)")
    p.add_argument("out", type=Path, help="model folder to write, e.g. weights/cut")
    p.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    p.add_argument("--name", help="model name (default: the folder name)")
    p.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    p.add_argument("--hardware", default="2 CPU cores", help="what it was trained on, for the model card")
    p.add_argument("--eval-data", help="paired dataset to evaluate on (writes metrics.json, samples.png)")
    p.add_argument("--eval-phase", default="train")
    p.add_argument("--eval-split", type=Path, help="file names of the held-out split")
    p.add_argument("--eval-metrics", help="comma-separated metrics (default: all available)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    out = export_run(args.run, args.out, step=args.step, name=args.name, precision=args.precision,
                     hardware=args.hardware, eval_data=args.eval_data, eval_phase=args.eval_phase,
                     eval_split=args.eval_split, eval_metrics=args.eval_metrics)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0
