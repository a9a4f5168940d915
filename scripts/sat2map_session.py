"""Issue 13 helpers for scripts/sat2map_gpu.sh and for bringing its models home (no gradio, no pytorch-fid).

    python scripts/sat2map_session.py calibrate --runs runs/sat2map_gpu --presets cut,...,cyclegan --seconds 380
        the calibration steps' rates (log.jsonl, all six runs sharing the device) -> one common number of
        epochs that fits `seconds`; prints "preset epochs epochs_decay max_steps" lines for the shell
    python scripts/sat2map_session.py card weights/cut
        after `python -m cutcore evaluate ... --out weights/cut` (which writes the most-common-colour
        baseline into metrics.json): move samples.png (held-out tiles) to runs/sat2map_samples/, rewrite
        the model card, say whether the model beats the baseline
    python scripts/sat2map_session.py summary --runs runs/sat2map_gpu --models OUT/models --json summary.json
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 2**20
FILE_CAP = 10 * MiB  # issue 13: every file in weights/
ABOUT = ("It turns 512 px satellite tiles of central Moscow (zoom 17) into OpenStreetMap-style maps. Trained on "
         "one GPU beside the five other sat2map models, with the same image budget, from a copy of the 1,226 "
         "training tiles resized to 256 px (satellite JPEG q85, maps JPEG q90 4:4:4; scripts/sat2map_pack.py); "
         "the 138 tiles of weights/sat2map_val.txt were held out.")
ATTRIBUTION = ("Map data © OpenStreetMap contributors (ODbL); aerial imagery © its provider. No sample grid ships "
               "with the model: the held-out tiles are not ours to redistribute. `python -m cutcore evaluate "
               "--model . --data DATA --split ../sat2map_val.txt --out DIR` draws one (input · model · truth) locally.")


# --- calibration ------------------------------------------------------------------------------


def run_rate(run: Path, skip: int) -> dict:
    """Median seconds per step of a run's log records after step `skip` (the first records hold start-up and
    cuDNN autotuning), its steps so far and its steps per epoch."""
    from cutcore.checkpoint import checkpoint_dirs, read_json
    from cutcore.runlog import read_log

    records = [r for r in read_log(run / "log.jsonl") if isinstance(r.get("sec_per_iter"), (int, float))]
    late = [r["sec_per_iter"] for r in records if r["step"] > skip] or [r["sec_per_iter"] for r in records[1:]] \
        or [r["sec_per_iter"] for r in records]
    if not late:
        raise ValueError(f"{run}: no timed log records")
    ckpts = checkpoint_dirs(run)
    if not ckpts:
        raise ValueError(f"{run}: no checkpoint")
    state = read_json(ckpts[-1] / "state.json")
    return {"sec_per_step": statistics.median(late), "records": len(late), "step": state["step"],
            "steps_per_epoch": state["steps_per_epoch"]}


def plan_epochs(rates: dict[str, dict], seconds: float, safety: float, epochs: int | None, max_epochs: int) -> dict:
    """One total number of epochs E for every preset (the same image budget), the largest whose remaining
    steps fit `seconds` at the slowest run's shared-device rate (conservative: the others finish first and
    leave it the device), split as each preset splits its own schedule (CUT 1:1, FastCUT 3:1, CycleGAN 1:1)."""
    from cutcore.config import preset

    spe = {r["steps_per_epoch"] for r in rates.values()}
    done = {r["step"] for r in rates.values()}
    if len(spe) != 1 or len(done) != 1:
        raise ValueError(f"runs differ in steps per epoch {spe} or steps done {done}: not one image budget")
    spe, done = spe.pop(), done.pop()
    slowest = max(r["sec_per_step"] for r in rates.values())
    fit_steps = int(max(0.0, seconds) * safety / slowest)
    fitted = (done + fit_steps) // spe
    total = epochs if epochs else max(2, min(max_epochs, fitted))
    first = math.ceil(done / spe)  # epochs already trained at the constant LR
    plan = {}
    for name in rates:
        t = preset(name).train
        constant = min(total - 1, max(first, round(total * t.epochs / (t.epochs + t.epochs_decay))))
        plan[name] = {"epochs": constant, "epochs_decay": total - constant, "max_steps": total * spe}
    return {"steps_per_epoch": spe, "steps_done": done, "slowest_sec_per_step": slowest, "seconds": seconds,
            "safety": safety, "steps_that_fit": fit_steps, "epochs_that_fit": fitted, "epochs": total,
            "predicted_seconds": round((total * spe - done) * slowest, 1),
            "plan": plan}


def calibrate(args) -> int:
    presets = args.presets.split(",")
    rates = {p: run_rate(args.runs / p, args.skip) for p in presets}
    result = plan_epochs(rates, args.seconds, args.safety, args.epochs, args.max_epochs)
    result["rates"] = rates
    result["images_each"] = result["epochs"] * result["steps_per_epoch"] * args.batch
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    for p in presets:
        q = result["plan"][p]
        print(p, q["epochs"], q["epochs_decay"], q["max_steps"])
    print(f"# {result['epochs']} epochs × {result['steps_per_epoch']} steps; slowest run "
          f"{result['slowest_sec_per_step'] * 1000:.0f} ms/step on the shared device; predicted "
          f"{result['predicted_seconds']:.0f} s of the {args.seconds:.0f} s left", file=sys.stderr)
    return 0


# --- model folders ----------------------------------------------------------------------------


def rewrite_card(folder: Path) -> None:
    """The card with this task's texts, kept in config.json so that a later `evaluate --out` keeps them too."""
    from cutcore.checkpoint import read_json, write_json
    from cutcore.export import refresh_card

    write_json(folder / "config.json", {**read_json(folder / "config.json"),
                                        "card": {"about": ABOUT, "attribution": ATTRIBUTION}})
    refresh_card(folder)


def keep_samples_local(folder: Path, samples_dir: Path) -> None:
    """evaluate's samples.png shows held-out tiles (../shared, never committed): out of weights/, into a run folder."""
    grid = folder / "samples.png"
    if grid.is_file():
        samples_dir.mkdir(parents=True, exist_ok=True)
        grid.replace(samples_dir / f"{folder.name}.png")


def card(args) -> int:
    """After `evaluate --out FOLDER` (metrics.json with the baseline): sample grid out, card rewritten, verdict."""
    from cutcore.checkpoint import read_json

    for folder in args.folders:
        path = folder / "metrics.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: run `python -m cutcore evaluate --model {folder} ... "
                                    f"--out {folder}` first")
        metrics = read_json(path)
        if "baseline" not in metrics:
            raise ValueError(f"{path} has no baseline: evaluate it again (`evaluate --out` writes one since session 4)")
        keep_samples_local(folder, args.samples)
        rewrite_card(folder)
        values, base = metrics["metrics"], metrics["baseline"]
        beats = values.get("accuracy", 0) > base["accuracy"] and values.get("rmse", 1e9) < base["rmse"]
        print(f"{folder}: accuracy {100 * values.get('accuracy', float('nan')):.1f}% (baseline "
              f"{100 * base['accuracy']:.1f}%), RMSE {values.get('rmse', float('nan')):.1f} (baseline "
              f"{base['rmse']:.1f}): {'beats the baseline on both' if beats else 'does NOT beat the baseline'}")
    return 0


# --- summary ------------------------------------------------------------------------------------


def summary(args) -> int:
    from cutcore.checkpoint import checkpoint_dirs, read_json
    from cutcore.runlog import read_log

    out = {}
    for run in sorted(p for p in args.runs.iterdir() if (p / "log.jsonl").is_file()):
        records = read_log(run / "log.jsonl")
        ckpts = checkpoint_dirs(run)
        state = read_json(ckpts[-1] / "state.json") if ckpts else {}
        cfg = read_json(ckpts[-1] / "config.json") if ckpts else {}
        batch = cfg.get("train", {}).get("batch_size", 1)
        total = (cfg.get("train", {}).get("epochs", 0) + cfg.get("train", {}).get("epochs_decay", 0)) \
            * state.get("steps_per_epoch", 0)
        last = records[-1] if records else {}
        row = {"step": state.get("step"), "planned_steps": total, "completed": state.get("step") == total,
               "images": (state.get("step") or 0) * batch, "batch": batch,
               "epochs": [cfg.get("train", {}).get("epochs"), cfg.get("train", {}).get("epochs_decay")],
               "seconds": round(sum(r["sec_per_iter"] * (r["step"] - p) for p, r in
                                    zip([0] + [x["step"] for x in records], records, strict=False)
                                    if isinstance(r.get("sec_per_iter"), (int, float))), 1),
               "last_losses": {k: round(v, 4) for k, v in last.items()
                               if k not in ("step", "epoch", "lr", "sec_per_iter", "precision", "data")
                               and isinstance(v, (int, float))},
               "precision": last.get("precision")}
        model = args.models / run.name if args.models else None
        if model and (model / "model.safetensors").is_file():
            sizes = {p.name: p.stat().st_size for p in model.iterdir() if p.is_file()}
            row["model_files"] = sizes
            row["model_mib"] = round(sum(sizes.values()) / MiB, 2)
            row["files_over_10_mib"] = [n for n, s in sizes.items() if s > FILE_CAP]
        out[run.name] = row
    text = json.dumps(out, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    for name, r in out.items():
        print(f"{name:14s} step {r['step']}/{r['planned_steps']} ({'done' if r['completed'] else 'CUT SHORT'}), "
              f"{r['images']} images, {r['seconds']:.0f} s, {r.get('model_mib', '-')} MiB, losses {r['last_losses']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate")
    c.add_argument("--runs", type=Path, required=True)
    c.add_argument("--presets", required=True)
    c.add_argument("--seconds", type=float, required=True, help="training seconds left for the rest of the runs")
    c.add_argument("--safety", type=float, default=0.9)
    c.add_argument("--skip", type=int, default=20, help="ignore log records up to this step (warm-up)")
    c.add_argument("--epochs", type=int, help="force this many epochs in all (SMOKE)")
    c.add_argument("--max-epochs", type=int, default=400)
    c.add_argument("--batch", type=int, default=1, help="for the images count")
    c.add_argument("--json", type=Path)
    c.set_defaults(func=calibrate)
    k = sub.add_parser("card")
    k.add_argument("folders", nargs="+", type=Path)
    k.add_argument("--samples", type=Path, default=Path("runs/sat2map_samples"),
                   help="where evaluate's sample grids go (they show held-out tiles: never into weights/)")
    k.set_defaults(func=card)
    s = sub.add_parser("summary")
    s.add_argument("--runs", type=Path, required=True)
    s.add_argument("--models", type=Path)
    s.add_argument("--json", type=Path)
    s.set_defaults(func=summary)
    args = ap.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
