"""`python -m cutcore sincut`: train SinCUT on one photo and one artwork from the command line.

    python -m cutcore sincut --content etretat_photo.jpg --style monet_painting.jpg --out runs/etretat
    python -m cutcore sincut --data datasets/single_image_monet_etretat --preset sincut --out runs/etretat

The run folder gets the preview sequence (previews/iter_NNNNN.png: the whole content image
translated as training goes), losses.jsonl, and the exported model (model.safetensors +
config.json) that `translate` and the app load; the full-resolution translation goes to
translation.png. Ctrl-C stops after the current iteration and still exports.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from ..imageio import list_images
from .config import SINCUT_PRESETS
from .live import LiveTrainer, TrainEvent


def single_images(data: Path) -> tuple[Path, Path]:
    """The official single-image layout: trainA/ holds the content image, trainB/ the style image."""
    if not data.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {data}")
    found = []
    for domain in "AB":
        folder = data / f"train{domain}"
        files = list_images(folder) if folder.is_dir() else []
        if len(files) != 1:
            raise ValueError(f"{folder}: SinCUT needs exactly one image here, found {len(files)}")
        found.append(files[0])
    return found[0], found[1]


def add_parser(sub) -> None:
    p = sub.add_parser("sincut", help="train SinCUT from one content image and one style image")
    p.add_argument("--content", type=Path, help="the image to translate (e.g. a photo)")
    p.add_argument("--style", type=Path, help="the image whose look to learn (e.g. a painting)")
    p.add_argument("--data", type=Path, help="instead of --content/--style: a folder with trainA/ and trainB/, "
                                             "one image each (the official single-image layout)")
    p.add_argument("--out", type=Path, required=True, help="run folder: previews/, losses.jsonl, the model")
    p.add_argument("--preset", default="sincut-cpu", choices=sorted(SINCUT_PRESETS),
                   help="sincut-cpu: minutes on a CPU; sincut: the paper's setting (a GPU)")
    p.add_argument("--iters", type=int, help="stop after this many iterations (default: the preset's schedule)")
    p.add_argument("--preview-every", type=int, default=20, help="iterations between previews")
    p.add_argument("--preview-size", type=int, default=384, help="longer side of the previews (0: full size)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.data:
        content, style = single_images(args.data)
    elif args.content and args.style:
        content, style = args.content, args.style
    else:
        raise ValueError("give --content and --style, or --data")
    trainer = LiveTrainer(content, style, args.preset, event_every=args.preview_every,
                          preview_size=args.preview_size or None, device=args.device, max_iters=args.iters)
    out = args.out
    (out / "previews").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=trainer.total, desc=args.preset, unit="it")
    last: TrainEvent | None = None
    trainer.start()
    try:
        with open(out / "losses.jsonl", "w") as log:
            while True:
                ev = trainer.events.get()
                last = ev
                if ev.kind == "progress":
                    bar.update(ev.iteration - bar.n)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in ev.losses.items()})
                    log.write(json.dumps({"iteration": ev.iteration, "its_per_sec": ev.its_per_sec,
                                          **ev.losses}) + "\n")
                    log.flush()
                    if ev.preview is not None:
                        ev.preview.save(out / "previews" / f"iter_{ev.iteration:05d}.png")
                if ev.kind in ("stopped", "finished", "error"):
                    break
    except KeyboardInterrupt:
        trainer.stop()
    bar.close()
    if last is not None and last.kind == "error":
        print(f"error: SinCUT training failed at iteration {last.iteration}: {last.message}", file=sys.stderr)
        return 1
    trainer.export(out)
    trainer.translate().save(out / "translation.png")
    print(f"model: {out} (iteration {trainer.iteration}); previews: {out / 'previews'}")
    return 0
