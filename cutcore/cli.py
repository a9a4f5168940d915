"""`python -m cutcore <command>`: train, translate (more commands register in COMMANDS)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import PRESETS, config_field, preset

# Overrides of the preset, as (flag, config section, field, type or list of choices).
_TRAIN_OVERRIDES = [
    ("--load-size", "data", "load_size", int),
    ("--crop-size", "data", "crop_size", int),
    ("--direction", "data", "direction", ["AtoB", "BtoA"]),
    ("--max-items", "data", "max_items", int),
    ("--batch-size", "train", "batch_size", int),
    ("--epochs", "train", "epochs", int),
    ("--epochs-decay", "train", "epochs_decay", int),
    ("--lr", "train", "lr", float),
    ("--seed", "train", "seed", int),
    ("--device", "train", "device", str),
    ("--precision", "train", "precision", ["fp32", "bf16"]),
    ("--num-workers", "train", "num_workers", int),
    ("--log-every", "train", "log_every", int),
    ("--sample-every", "train", "sample_every", int),
    ("--save-every", "train", "save_every", int),
    ("--keep-checkpoints", "train", "keep_checkpoints", int),
    ("--eval-every", "train", "eval_every", int),
    ("--eval-data", "train", "eval_data", str),
    ("--eval-split", "train", "eval_split", str),
    ("--eval-metrics", "train", "eval_metrics", str),
    ("--eval-max-images", "train", "eval_max_images", int),
    ("--gan-mode", "model", "gan_mode", ["lsgan", "vanilla", "nonsaturating", "hinge"]),
    ("--lambda-nce", "model", "lambda_nce", float),
    ("--num-patches", "model", "num_patches", int),
    ("--lambda-l1-idt", "model", "lambda_l1_idt", float),
    ("--ngf", "model.generator", "ngf", int),
    ("--n-blocks", "model.generator", "n_blocks", int),
    ("--ndf", "model.discriminator", "ndf", int),
    ("--nce-loss", "model.nce", "loss", ["ce", "focal"]),
    ("--focal-gamma", "model.nce", "focal_gamma", float),
    ("--focal-alpha", "model.nce", "focal_alpha", float),
    ("--prune-k", "model.nce", "prune_k", int),
]


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a preset")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: cut (with --resume: the checkpoint's)")
    p.add_argument("--data", required=True, help="dataset folder (trainA/ + trainB/, or train/ of AB images)")
    p.add_argument("--out", required=True, help="run folder: log.jsonl, samples/, checkpoints/")
    p.add_argument("--max-steps", type=int, help="stop after this many iterations (total, across resumes)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the newest checkpoint in --out")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory layout (faster convs on many CPUs/GPUs)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--exclude", type=Path, help="text file of file names to hold out (one per line)")
    for flag, section, field, typ in _TRAIN_OVERRIDES:
        kind = {"choices": typ} if isinstance(typ, list) else {"type": typ}
        p.add_argument(flag, dest=f"{section}.{field}", **kind)
    p.set_defaults(func=_train)


def _train(args) -> int:
    from .train import train

    changes: dict[str, object] = {"data.root": args.data}  # what the command line asks for
    if args.max_steps is not None:
        changes["train.max_steps"] = args.max_steps
    if args.channels_last:
        changes["train.channels_last"] = True
    if args.no_flip:
        changes["data.flip"] = False
    if args.exclude:
        changes["data.exclude"] = [ln.strip() for ln in args.exclude.read_text().splitlines() if ln.strip()]
    for _, section, field, _ in _TRAIN_OVERRIDES:
        value = getattr(args, f"{section}.{field}")
        if value is not None:
            changes[f"{section}.{field}"] = value
    cfg = preset(args.preset or "cut")
    for path, value in changes.items():
        setattr(*config_field(cfg, path), value)
    if args.resume and args.preset:
        changes["preset"] = args.preset
    ckpt = train(cfg, args.out, resume=args.resume, changes=changes if args.resume else None)
    print(f"checkpoint: {ckpt}")
    return 0


def _add_translate(sub) -> None:
    p = sub.add_parser("translate", help="translate an image or a folder with a trained model")
    p.add_argument("--model", required=True, help="model folder, checkpoint, or run folder")
    p.add_argument("--input", required=True, help="image file or folder")
    p.add_argument("--output", required=True, help="output folder (PNG files)")
    p.add_argument("--tile", type=int, help="translate in tiles of this size (bounded memory for huge images)")
    p.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels, blended")
    p.add_argument("--scale", type=float,
                   help="resize inputs by this factor before translating, the result back (default: the model's "
                        "inference scale from its config.json, else 1)")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"], help="BtoA: CycleGAN's second generator")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_translate)


def _translate(args) -> int:
    from .translate import load_model, translate_path

    model = load_model(args.model, args.device, args.direction)
    for path in translate_path(model, args.input, args.output, args.tile, args.overlap, args.scale):
        print(path)
    return 0


def _add_lazy(module: str):
    """Commands whose parser lives in their own module (imported only when the CLI starts)."""

    def add(sub) -> None:
        import importlib

        importlib.import_module(f"cutcore.{module}").add_parser(sub)

    return add


COMMANDS = [_add_train, _add_translate, _add_lazy("evaluate"), _add_lazy("export"), _add_lazy("sincut.command"),
            _add_lazy("report"), _add_lazy("official")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cutcore", description="Contrastive unpaired translation (CUT family).")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:  # user errors: one clear line, no traceback
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    """The message alone: an error re-raised from a DataLoader worker embeds the worker's traceback."""
    text = str(e).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


if __name__ == "__main__":
    sys.exit(main())
