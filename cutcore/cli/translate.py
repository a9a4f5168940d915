"""`translate`: a file or a folder through a trained model."""
from __future__ import annotations

import sys
from pathlib import Path

from .args import TILE_HELP, at_least, tile_size


def add_translate(sub) -> None:
    p = sub.add_parser("translate", help="translate an image or a folder with a trained model")
    p.add_argument("--model", required=True,
                   help="model folder, checkpoint, run folder, or an official generator file (latest_net_G.pth, "
                        "read without unpickling objects; latest_net_F.pth beside it is used as the heads)")
    p.add_argument("--input", required=True, help="image file or folder")
    p.add_argument("--output", required=True,
                   help="output folder (PNG files named after the inputs); for one input file also an image path "
                        "(e.g. map.png)")
    p.add_argument("--tile", type=tile_size, help=TILE_HELP)
    p.add_argument("--overlap", type=at_least(0), help="tile overlap in pixels, blended (default: 64, a quarter "
                                                       "of --tile for tiles of 256 and under)")
    p.add_argument("--scale", type=float,
                   help="resize inputs by this factor before translating, the result back (default: the model's "
                        "inference scale from its config.json, else 1)")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"], help="BtoA: CycleGAN's second generator")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_translate)


def _translate(args) -> int:
    from ..model_folder import load_model
    from ..translate import translate_path

    model = load_model(args.model, args.device, args.direction)
    translate_path(model, args.input, args.output, args.tile, args.overlap, args.scale, report=_show)
    return 0


def _show(source: Path, result) -> None:
    """Each written PNG on stdout as it is done; an input skipped as unreadable, on stderr."""
    if isinstance(result, Path):
        print(result, flush=True)
    else:
        print(f"warning: {result}; skipped", file=sys.stderr, flush=True)
