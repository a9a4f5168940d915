"""`evaluate`, `export`, `report` and `style`: scoring models and presenting the results."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..tiling import MIN_TILE
from .args import TILE_HELP, png_path, positive, tile_size, zero_or_at_least


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model on a paired test set (accuracy, RMSE, SWD, FID)")
    p.add_argument("--model", required=True, help="model folder, checkpoint, or run folder")
    p.add_argument("--data", required=True,
                   help="paired dataset: <phase>A/ + <phase>B/ with matching file names, or <phase>/ of AB images")
    p.add_argument("--phase", default="test",
                   help="which pairs of --data: <phase>A/ + <phase>B/ (default: test; train with --split for a "
                        "held-out part of the training folders)")
    p.add_argument("--split", type=Path,
                   help="text file of file names to evaluate, e.g. the held-out validation split with --phase train")
    p.add_argument("--metrics", help="comma-separated subset of accuracy,rmse,swd,fid "
                                     "(default: all, FID only when its weights are available)")
    p.add_argument("--json", action="store_true", help="print one JSON object {metric: value} instead of a table")
    p.add_argument("--out", type=Path, help="folder for metrics.json, metrics.md and samples.png")
    p.add_argument("--max-images", type=positive, help="evaluate only the first N pairs")
    p.add_argument("--size", type=zero_or_at_least(MIN_TILE),
                   help="resize inputs to size² before translating (default: the size the model's config.json "
                        "records under inference.size, else the size its training translated at, else 256 as CUT's "
                        f"test protocol); 0 keeps their size, else at least {MIN_TILE}. "
                        "Translations and targets are always compared at 256² (GcGAN)")
    p.add_argument("--tile", type=tile_size, help=TILE_HELP)
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"], help="BtoA: CycleGAN's second generator")
    p.add_argument("--device", default="auto")
    p.add_argument("--fid-weights", type=Path,
                   help="pt_inception-2015-12-05-6726825d.pth (default: $CUTCORE_FID_WEIGHTS or the torch hub cache)")
    p.set_defaults(func=_evaluate)


def _evaluate(args) -> int:
    from ..evaluate import evaluate_saved_model
    from ..metrics import FIDWeightsUnavailable

    try:
        values, markdown, seen = evaluate_saved_model(
            args.model, args.data, phase=args.phase, split=args.split, metrics=args.metrics,
            max_images=args.max_images, size=args.size, tile=args.tile, direction=args.direction, device=args.device,
            fid_weights=args.fid_weights, out=args.out)
    except FIDWeightsUnavailable as e:  # a RuntimeError, with advice on its own lines
        print(f"error: {e}", file=sys.stderr)
        return 2
    if seen:  # also under --json, where the table's own line is not printed
        were = "was a training image" if len(seen) == 1 else "were training images"
        print(f"note: {len(seen)} of the evaluated images {were} of this model (e.g. {seen[0]}); "
              "train with --exclude for held-out scores", file=sys.stderr)
    if args.out and _exported_here(args.out):
        from ..export import refresh_card

        print(f"model card updated: {refresh_card(args.out)}", file=sys.stderr)
    elif args.out and (args.out / "README.md").is_file():
        print(f"note: {args.out / 'README.md'} left as it is (export it again to have its card show these metrics)",
              file=sys.stderr)
    print(json.dumps(values) if args.json else markdown)
    return 0


def _exported_here(folder: Path) -> bool:
    """A folder `export` wrote since it keeps its card texts (so the card can be written again without
    losing them), not a run, an official model or an older export."""
    from ..model_folder import read_config

    try:
        config = read_config(folder)
    except (OSError, ValueError):
        return False
    return config.source == "ours" and config.card is not None and (folder / "README.md").is_file()


def add_export(sub) -> None:
    p = sub.add_parser("export", help="turn a training run into a model folder (weights, config, model card)")
    p.add_argument("run", type=Path, help="training run folder (checkpoints/step_*)")
    p.add_argument("out", type=Path,
                   help="model folder to write, e.g. weights/cut: new, empty or an earlier export (replaced)")
    p.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
    p.add_argument("--name", help="model name (default: the folder name)")
    p.add_argument("--precision", default="fp16", choices=["fp16", "fp32"])
    p.add_argument("--hardware", help="what it was trained on, for the model card (default: the GPU or CPU the "
                                      "run's log recorded)")
    p.add_argument("--source-side", type=int,
                   help="side of the images the model is for, when it trained on resized copies (e.g. 512 for "
                        "512 px tiles packed at 256), or when its training images cannot be read from here: sets the "
                        "inference scale")
    p.add_argument("--about", default="", help="model card: a sentence on what the model translates")
    p.add_argument("--attribution", default="", help="model card: the data's source and licence")
    p.add_argument("--eval-data", help="paired dataset to evaluate on (writes metrics.json, samples.png)")
    p.add_argument("--eval-phase",
                   help="which pairs of --eval-data (default: test where it has a test split and no --eval-split is "
                        "given, else train, with --eval-split naming the held-out ones)")
    p.add_argument("--eval-split", type=Path, help="file names of the held-out split (without it: every pair of "
                                                   "--eval-phase)")
    p.add_argument("--eval-metrics", help="comma-separated metrics (default: all available)")
    p.add_argument("--fid-weights", type=Path, help="pt_inception-2015-12-05-6726825d.pth, for FID")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from ..export import CardText, Evaluation, export_run

    if not args.eval_data:  # the other --eval-* flags would be ignored without a word
        given = [f"--{k.replace('_', '-')}" for k in ("eval_split", "eval_metrics", "fid_weights") if getattr(args, k)]
        if args.eval_phase is not None:
            given.insert(0, "--eval-phase")
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --eval-data (the paired data to score the model on)")
    evaluation = (Evaluation(args.eval_data, args.eval_phase, args.eval_split, args.eval_metrics, args.fid_weights)
                  if args.eval_data else None)
    out = export_run(args.run, args.out, step=args.step, name=args.name, precision=args.precision,
                     hardware=args.hardware, evaluation=evaluation, text=CardText(args.about, args.attribution),
                     source_side=args.source_side)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    return 0


def add_report(sub) -> None:
    p = sub.add_parser("report", help="one table (and charts) of every method's metrics and speed")
    p.add_argument("--runs", nargs="+", required=True, type=Path,
                   help="run or model folders, each with metrics.json (from evaluate --out) and/or config.json; "
                        "of two folders of one method, the one with held-out metrics is shown (else the later one)")
    p.add_argument("--bench", type=Path,
                   help="speed benchmark JSON: a list of {preset, sec_per_iter, peak_mem_mib, ...}")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    p.add_argument("--plot", type=png_path,
                   help="bar charts PNG; the runs' metrics.jsonl curves go next to it as <name>-curves.png")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from ..checkpoint import write_bytes
    from ..report import build_report, curves_path, plot_bars
    from ..results import plot_curves

    report = build_report(args.runs, args.bench)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    if not any(r.values for r in report.rows):
        raise ValueError("nothing to report: no metrics and no benchmark entries were found (see the notes above)")
    if args.out:
        write_bytes(args.out, (report.markdown + "\n").encode())
    if args.plot:
        plot_bars(report.rows, args.plot, report.baseline)
        curves = {r.method: r.curve for r in report.rows if r.curve}
        if curves:
            plot_curves(curves, curves_path(args.plot))
    print(report.markdown)
    return 0



def add_style(sub) -> None:
    p = sub.add_parser("style", help="style yardsticks of a photo / artwork / output triple",
                       description="Style yardsticks for one photo / artwork / output triple (SinCUT, issue 14).")
    p.add_argument("--photo", required=True, help="the content photo")
    p.add_argument("--artwork", required=True, help="the style image")
    p.add_argument("--output", required=True, help="the translation of the photo")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_style)


def _style(args) -> int:
    from ..imageio import load_rgb
    from ..metrics.style import FOREIGN_DELTA_E, style_report

    photo, artwork, output = (load_rgb(getattr(args, k)) for k in ("photo", "artwork", "output"))
    result = style_report(photo, artwork, output)
    if args.json:
        print(json.dumps(result))
        return 0
    notes = {"colour_ratio": "< 1: colours closer to the artwork than the photo's",
             "texture_ratio": "< 1: texture closer to the artwork than the photo's",
             "content": "1: the photo's edges kept, 0: unrelated",
             "foreign_colour_fraction": f"share of pixels in colours of neither image (ΔE > {FOREIGN_DELTA_E:g})",
             "colour_distance_output": "colour ratio's numerator: the output's SWD to the artwork",
             "colour_distance_photo": "colour ratio's denominator: the photo's SWD to the artwork",
             "texture_distance_output": "texture ratio's numerator: the output's SWD to the artwork",
             "texture_distance_photo": "texture ratio's denominator: the photo's SWD to the artwork (where small, "
                                       "the photo already has the artwork's texture and the ratio swings widely)"}
    print("| score | value | meaning |\n|---|---:|---|")
    for key, value in result.items():
        print(f"| {key} | {value:.3f} | {notes[key]} |")
    return 0
