"""Does bf16 autocast change what CUT learns? Train one run twice, fp32 and bf16, and compare.

    python -m cutcore.precision --data ../shared/data/sat2map --steps 300 --out runs/precision

Both runs share the seed, the data order and the initial weights, so any gap comes from the
arithmetic. GAN losses are noisy step to step, so the curves are compared as means over
windows of steps. The model is small (default ngf 8, 32² crops) because on CPUs without
native bf16 (AVX2 only) bf16 maths is emulated and very slow; the question is numerical, not
about speed. Prints a markdown table and writes precision.json and precision.png to --out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .checkpoint import write_bytes, write_json
from .config import preset
from .export import read_log
from .train import Trainer

LOSSES = ("D", "G_GAN", "NCE", "NCE_Y")


def train_once(data: str, out: Path, precision: str, steps: int, ngf: int, crop: int, seed: int) -> list[dict]:
    cfg = preset("cut")
    cfg.data.root, cfg.data.load_size, cfg.data.crop_size = data, 2 * crop, crop
    cfg.model.generator.ngf, cfg.model.generator.n_blocks, cfg.model.discriminator.ndf = ngf, 6, ngf
    t = cfg.train
    t.max_steps, t.precision, t.seed, t.device, t.num_workers = steps, precision, seed, "cpu", 0
    t.log_every, t.sample_every, t.save_every = 1, 10**9, 10**9
    Trainer(cfg, out / precision).fit()
    return read_log(out / precision / "log.jsonl")


def compare(fp32: list[dict], bf16: list[dict], window: int) -> list[dict]:
    """Per window of steps: each loss's fp32 and bf16 means and their relative gap."""
    rows = []
    steps = min(len(fp32), len(bf16))
    for start in range(0, steps - window + 1, window):
        row: dict = {"steps": f"{start + 1}-{start + window}"}
        for key in LOSSES:
            a = float(np.mean([r[key] for r in fp32[start:start + window]]))
            b = float(np.mean([r[key] for r in bf16[start:start + window]]))
            row[key] = {"fp32": a, "bf16": b, "rel_gap": abs(b - a) / max(abs(a), 1e-8)}
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    head = "| steps | " + " | ".join(f"{k} fp32 / bf16" for k in LOSSES) + " |"
    lines = [head, "|---|" + "---:|" * len(LOSSES)]
    for r in rows:
        lines.append(f"| {r['steps']} | " + " | ".join(
            f"{r[k]['fp32']:.3f} / {r[k]['bf16']:.3f} ({100 * r[k]['rel_gap']:.1f}%)" for k in LOSSES) + " |")
    return "\n".join(lines)


def plot(fp32: list[dict], bf16: list[dict], path: Path, window: int) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.2 * len(LOSSES), 2.6), layout="constrained")
    for ax, key in zip(fig.subplots(1, len(LOSSES)), LOSSES, strict=True):
        for label, records in (("fp32", fp32), ("bf16", bf16)):
            values = np.array([r[key] for r in records])
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            ax.plot(np.arange(window, len(values) + 1), smooth, label=label, lw=1.2)
        ax.set_title(key, fontsize="medium")
        ax.set_xlabel("iteration")
    fig.axes[0].legend(fontsize="small")
    fig.savefig(path, dpi=90)


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
    logs = {prec: train_once(args.data, args.out, prec, args.steps, args.ngf, args.crop, args.seed)
            for prec in ("fp32", "bf16")}
    rows = compare(logs["fp32"], logs["bf16"], args.window)
    table = markdown(rows)
    write_json(args.out / "precision.json", {"steps": args.steps, "window": args.window, "ngf": args.ngf,
                                             "crop": args.crop, "rows": rows})
    write_bytes(args.out / "precision.md", (table + "\n").encode())
    plot(logs["fp32"], logs["bf16"], args.out / "precision.png", args.window)
    print(table)
    print(json.dumps({k: max(r[k]["rel_gap"] for r in rows) for k in LOSSES}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
