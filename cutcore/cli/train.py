"""`train`: its flags come from the config fields that declare them."""
from __future__ import annotations

import argparse
import typing
from pathlib import Path

from ..config import PRESETS, config_field, config_options, preset


def _flag(f) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "true", "yes", "1"):
        return True
    if text.lower() in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def _argument(hint) -> dict:
    """argparse keywords for a config field's type: choices for a Literal, on|off for a bool, the type otherwise."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Literal:
        return {"choices": list(args)}
    if literal := next((a for a in args if typing.get_origin(a) is typing.Literal), None):
        return {"choices": list(typing.get_args(literal))}  # Literal[...] | bool: the words (Python may pass a bool)
    if hint is bool:
        return {"type": _on_off, "metavar": "on|off"}
    return {"type": args[0] if args else hint}


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model from a preset")
    p.add_argument("--preset", choices=sorted(PRESETS), help="default: cut (with --resume: the checkpoint's)")
    p.add_argument("--data", help="dataset folder (trainA/ + trainB/, or train/ of AB images); with --resume "
                                  "default: the checkpoint's (give it where the data has moved)")
    p.add_argument("--out", required=True, help="run folder: log.jsonl, samples/, checkpoints/")
    p.add_argument("--resume", action="store_true", help="continue exactly from the newest checkpoint in --out")
    p.add_argument("--channels-last", nargs="?", const="on", choices=["auto", "on", "off"],
                   help="NHWC memory layout: auto (the default) on CUDA only; on or off to force it "
                        "(the flag alone: on)")
    p.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    p.add_argument("--exclude", type=Path, help="text file of file names to hold out (one per line)")
    # Every other flag is a config field that declares one (cutcore.config.option): the preset's
    # value unless given.
    for path, f, hint in config_options():
        p.add_argument(_flag(f), dest=path, help=f.metadata["help"], **_argument(hint))
    p.set_defaults(func=_train)


def _train(args) -> int:
    from ..evaluate import read_split
    from ..train import resume, train

    if args.data is None and not args.resume:
        raise ValueError("--data is required (with --resume the checkpoint's is used)")
    changes: dict[str, object] = {"data.root": args.data} if args.data else {}  # what the command line asks for
    if args.channels_last:
        changes["runtime.channels_last"] = args.channels_last
    if args.no_flip:
        changes["data.flip"] = False
    if args.exclude:  # file names, one a line, as --eval-split reads them
        changes["data.exclude"] = read_split(args.exclude)
    options = config_options()
    changes |= {path: getattr(args, path) for path, _, _ in options if getattr(args, path) is not None}
    if args.resume:  # the checkpoint's config, with these changes (refused where they would change the model)
        if args.preset:
            changes["preset"] = args.preset
        ckpt = resume(args.out, changes)
    else:
        cfg = preset(args.preset or "cut")
        for path, value in changes.items():
            try:
                target, name = config_field(cfg, path)
                getattr(target, name)
            except AttributeError:  # e.g. --lambda-nce with the cyclegan preset
                flag = next(_flag(f) for p, f, _ in options if p == path)
                raise ValueError(f"{flag} does not apply to the {cfg.preset} preset") from None
            setattr(target, name, value)
        ckpt = train(cfg, args.out)
    print(f"checkpoint: {ckpt}")
    return 0
