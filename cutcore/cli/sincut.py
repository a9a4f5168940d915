"""`sincut`: SinCUT from one photo and one artwork, headless."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..sincut.config import SINCUT_PRESETS, default_sincut_preset
from ..tiling import MIN_TILE
from .args import positive, zero_or_at_least


def add_sincut(sub) -> None:
    p = sub.add_parser("sincut", help="train SinCUT from one content image and one style image")
    p.add_argument("--content", type=Path, help="the image to translate (e.g. a photo)")
    p.add_argument("--style", type=Path, help="the image whose look to learn (e.g. a painting)")
    p.add_argument("--data", type=Path, help="instead of --content/--style: a folder with trainA/ and trainB/, "
                                             "one image each (the official single-image layout)")
    p.add_argument("--out", type=Path, required=True, help="run folder: previews/, losses.jsonl, the model")
    p.add_argument("--preset", choices=sorted(SINCUT_PRESETS),
                   help="sincut-cpu: ~5 minutes on 2 CPU cores; sincut-gpu: the paper's networks on 512 px images, "
                        "under a minute on a data-centre GPU; sincut: the paper's schedule (hours on a GPU). Default: "
                        "sincut-gpu when training on CUDA, else sincut-cpu")
    p.add_argument("--iters", type=int, help="train this many iterations, the preset's LR schedule (constant, "
                                             "then linear decay) laid over them, all trained (default: the "
                                             "preset's schedule, within its time budget if it has one)")
    p.add_argument("--lambda-nce", type=float, help="weight of the PatchNCE loss (default: the preset's; the "
                                                    "paper's 4, sincut-gpu's 1): lower frees G from the photo")
    p.add_argument("--max-side", type=int, help="shrink both images so that their longer side is at most this "
                                                "many px, 0: as given (default: the preset's; 512 for sincut-cpu "
                                                "and sincut-gpu, as given for sincut)")
    p.add_argument("--preview-every", type=positive, default=20, help="iterations between previews")
    p.add_argument("--preview-size", type=zero_or_at_least(MIN_TILE), default=384,
                   help=f"longer side of the previews, at least {MIN_TILE} (0: full size)")
    p.add_argument("--device", default="auto", help="auto (default): the GPU when CUDA is present, else the CPU")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="fp32 (default, as the paper; sincut-cpu was measured so, sincut-gpu's CPU measurements "
                        "in bf16); auto: bf16 where the device runs it natively")
    p.set_defaults(func=_sincut)


def _sincut(args: argparse.Namespace) -> int:
    from ..hardware import resolve_device
    from ..sincut.headless import single_images, train_to_folder

    if args.iters is not None and args.iters < 1:
        raise ValueError(f"--iters must be at least 1, got {args.iters}")
    if args.data and (args.content or args.style):
        raise ValueError("--data and --content/--style are alternatives: give --data, or --content and --style")
    if args.data:
        content, style = single_images(args.data)
    elif args.content and args.style:
        content, style = args.content, args.style
    else:
        raise ValueError("give --content and --style, or --data")
    preset = args.preset or default_sincut_preset(resolve_device(args.device))
    return train_to_folder(content, style, args.out, preset, iters=args.iters, preview_every=args.preview_every,
                           preview_size=args.preview_size or None, device=args.device,
                           precision=args.precision, lambda_nce=args.lambda_nce, max_side=args.max_side)
