"""Does bf16 autocast change what CUT learns? Train one small run in fp32 and bf16, and compare.

    python -m cutcore.precision --data ../shared/data/sat2map --steps 300 --out runs/precision

Both runs share the seed, the data order and the initial weights, so any gap comes from the
arithmetic. GAN losses are noisy step to step, so the curves are compared as means over
windows of steps, and against the yardstick that matters: a third run, fp32 with the next seed.
bf16 "tracks" fp32 when its gap is no larger than what a change of seed does anyway. The model
is small (default ngf 8, 32² crops) because on CPUs without native bf16 (AVX2 only) bf16 maths
is emulated and very slow; the question is numerical, not about speed. Prints a markdown table
and writes precision.json and precision.png to --out.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from .checkpoint import write_bytes, write_json
from .config import preset
from .results import save_figure
from .runlog import read_log
from .train import Trainer, read_run_config

LOSSES = ("D", "G_GAN", "NCE", "NCE_Y")


def train_once(data: str, out: Path, precision: str, steps: int, ngf: int, crop: int, seed: int) -> list[dict]:
    name = f"{precision}-seed{seed}"
    cfg = preset("cut")
    cfg.data.root, cfg.data.load_size, cfg.data.crop_size = data, 2 * crop, crop
    cfg.model.generator.ngf, cfg.model.generator.n_blocks, cfg.model.discriminator.ndf = ngf, 6, ngf
    cfg.train.precision, cfg.train.seed = precision, seed
    r = cfg.runtime
    r.max_steps, r.device, r.num_workers = steps, "cpu", 0
    r.log_every, r.sample_every, r.save_every = 1, 10**9, 10**9
    saved = out / name / "config.json"
    done = read_log(out / name / "log.jsonl")
    if saved.is_file() and read_run_config(saved) == cfg and len(done) >= steps:
        return done[:steps]  # the same run finished before (bf16 is slow on AVX2 CPUs): reuse it
    shutil.rmtree(out / name, ignore_errors=True)  # an unfinished attempt would mix into the log
    Trainer(cfg, out / name).fit()
    return read_log(out / name / "log.jsonl")


def _gap(a: float, b: float) -> float:
    return abs(b - a) / max(abs(a), 1e-8)


def compare(fp32: list[dict], bf16: list[dict], other_seed: list[dict], window: int) -> list[dict]:
    """Per window of steps and loss: the three runs' means, bf16's relative gap and the seed's."""
    rows = []
    steps = min(len(fp32), len(bf16), len(other_seed))
    for start in range(0, steps - window + 1, window):
        row: dict = {"steps": f"{start + 1}-{start + window}"}
        for key in LOSSES:
            a, b, c = (float(np.mean([r[key] for r in log[start:start + window]])) for log in (fp32, bf16, other_seed))
            row[key] = {"fp32": a, "bf16": b, "fp32_other_seed": c, "bf16_gap": _gap(a, b), "seed_gap": _gap(a, c)}
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per loss: mean relative gap over the windows, bf16 and seed."""
    return {k: {g: float(np.mean([r[k][g] for r in rows])) for g in ("bf16_gap", "seed_gap")} for k in LOSSES}


def markdown(rows: list[dict]) -> str:
    head = "| steps | " + " | ".join(f"{k}: fp32 / bf16 (gap; seed gap)" for k in LOSSES) + " |"
    lines = [head, "|---|" + "---:|" * len(LOSSES)]
    for r in rows:
        lines.append(f"| {r['steps']} | " + " | ".join(
            f"{r[k]['fp32']:.3f} / {r[k]['bf16']:.3f} ({100 * r[k]['bf16_gap']:.0f}%; {100 * r[k]['seed_gap']:.0f}%)"
            for k in LOSSES) + " |")
    mean = summary(rows)
    lines.append("| mean gap | " + " | ".join(
        f"bf16 {100 * mean[k]['bf16_gap']:.1f}% · seed {100 * mean[k]['seed_gap']:.1f}%" for k in LOSSES) + " |")
    return "\n".join(lines)


def plot(logs: dict[str, list[dict]], path: Path, window: int) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(LOSSES), 2.6), layout="constrained")
    for ax, key in zip(fig.subplots(1, len(LOSSES)), LOSSES, strict=True):
        for label, records in logs.items():
            values = np.array([r[key] for r in records])
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window, len(values) + 1), smooth, label=label, lw=1.2)
        ax.set_title(key, fontsize="medium")
        ax.set_xlabel("iteration")
    fig.axes[0].legend(fontsize="small")
    save_figure(fig, path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cutcore.precision", description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="unpaired dataset (trainA/ + trainB/)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--window", type=int, default=50, help="steps per compared mean")
    p.add_argument("--ngf", type=int, default=8)
    p.add_argument("--crop", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if not 1 <= args.window <= args.steps:
        p.error(f"--window must be between 1 and --steps ({args.steps})")
    runs = {"fp32": ("fp32", args.seed), "bf16": ("bf16", args.seed),
            f"fp32 seed {args.seed + 1}": ("fp32", args.seed + 1)}
    logs = {label: train_once(args.data, args.out, prec, args.steps, args.ngf, args.crop, seed)
            for label, (prec, seed) in runs.items()}
    rows = compare(*logs.values(), args.window)
    table = markdown(rows)
    write_json(args.out / "precision.json", {"steps": args.steps, "window": args.window, "ngf": args.ngf,
                                             "crop": args.crop, "rows": rows, "mean_gap": summary(rows)})
    write_bytes(args.out / "precision.md", (table + "\n").encode())
    plot(logs, args.out / "precision.png", args.window)
    print(table)
    print(json.dumps(summary(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
