"""One prepared GPU window for issue 14: live SinCUT on CUDA, headless, with style yardsticks.

Runs `cutcore.sincut.live.LiveTrainer.launch(..., device="cuda")` on the Monet/Étretat pair and a few
style pairs, the way the app does (a training thread, a preview of the whole photo every few
iterations), and writes at most 2 + runs files to --out (a run: a pair, or a pair at each --lambda-nce weight):

  sincut_gpu.json          environment; a throughput probe (it/s at batch 16 and 32 in fp32, batch 16
                           in bf16); per pair: iterations, seconds, it/s, time to the first preview,
                           the four style yardsticks of the sheet's previews against the clock, and
                           those of the photo's translation at the working size (`sincut`'s translation.png;
                           where the preset ships G's weight average, also of G itself: translation_of_G)
  sheet_<run>.png          the kept previews side by side (photo, previews at ~8/15/30/45/60/90 s
                           and the last, artwork), each labelled with its time and iteration
  previews.tar             every preview of every run (JPEG, <run>/it<iteration>_<seconds>s.jpg): the whole
                           sequence, scored at home (`--score previews.tar`), shows where along the schedule
                           each yardstick was met (a run's scores drift late in the schedule: GPU_NOTES.md)

Usage on the GPU machine (the data travels in a git-ignored folder, e.g. the run tool's
carry=["tmp/single_image"] after `cp -r ../shared/data/single_image tmp/`):

  python scripts/sincut_gpu.py --data tmp/single_image --out $OUT
  python scripts/sincut_gpu.py --data ../shared/data/single_image --out /tmp/o --smoke   # CPU, seconds
  python scripts/sincut_gpu.py --data ../shared/data/single_image --score FILES_AT/previews.tar   # at home

Budget: --budget-s (default 220 s) covers everything after start-up; the first pair (Monet)
gets up to --first-s (default 100 s) of training, the others share what is left, each stopped
by time if its schedule is longer (the preset's LR schedule is kept, as the app's Stop keeps it).
Needs only torch, numpy, pillow, scipy (the yardsticks) — no gradio, no pytest.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tarfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from cutcore.metrics.style import style_report  # noqa: E402
from cutcore.sincut.config import sincut_preset, with_recipe  # noqa: E402
from cutcore.sincut.live import LiveTrainer  # noqa: E402
from cutcore.translate import translate_with  # noqa: E402

# name -> (photo, artwork), relative to --data (the layout of ../shared/data/single_image)
PAIRS = {
    "monet": ("monet_etretat/etretat_photo.jpg", "monet_etretat/monet_painting.jpg"),
    "tubingen_starry": ("style_pairs/photos/tubingen.jpg", "style_pairs/artworks/starry_night.jpg"),
    "goldengate_scream": ("style_pairs/photos/golden_gate.jpg", "style_pairs/artworks/the_scream.jpg"),
    "hoover_matisse": ("style_pairs/photos/hoovertowernight.jpg", "style_pairs/artworks/woman-with-hat-matisse.jpg"),
    "tubingen_shipwreck": ("style_pairs/photos/tubingen.jpg", "style_pairs/artworks/shipwreck.jpg"),
    "hoover_starry": ("style_pairs/photos/hoovertowernight.jpg", "style_pairs/artworks/starry_night.jpg"),
    # the two pairs on which sincut-gpu's 1,360-iteration schedule missed its goals on a CPU (GPU_NOTES.md, session 16)
    "goldengate_matisse": ("style_pairs/photos/golden_gate.jpg", "style_pairs/artworks/woman-with-hat-matisse.jpg"),
    "tubingen_scream": ("style_pairs/photos/tubingen.jpg", "style_pairs/artworks/the_scream.jpg"),
}
SHEET_TIMES = (8, 15, 30, 45, 60, 90)  # seconds of training whose previews go on the sheet (and the last)
THUMB = 192  # height of a sheet cell


def environment(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, memory_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe(photo: Image.Image, art: Image.Image, preset: str, device: torch.device, variants: list[tuple[int, str]],
          iters: int, rows: list[dict], warmup: int = 5) -> None:
    """Training it/s of the preset at a few (batch size, precision) pairs (no previews; after `warmup` its),
    appended to `rows` as each is measured; a row that fails says so and the next one runs."""
    for b, precision in variants:
        try:
            rows.append(probe_row(photo, art, preset, device, b, precision, iters, warmup))
        except Exception:  # noqa: BLE001 - e.g. out of memory at one batch size: the other rows still count
            rows.append({"batch": b, "precision": precision, "error": traceback.format_exc()})
            if device.type == "cuda":
                torch.cuda.empty_cache()
        row = rows[-1]  # a failed row shows the last line of its traceback
        print("probe", {**row, "error": row["error"].strip().splitlines()[-1]} if "error" in row else row, flush=True)


def probe_row(photo: Image.Image, art: Image.Image, preset: str, device: torch.device, b: int, precision: str,
              iters: int, warmup: int) -> dict:
    """One probe row: `iters` iterations timed after `warmup`, and the peak GPU memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # not the peak of a row before (one that failed, say)
    cfg = sincut_preset(preset)
    cfg.train.batch_size = b
    tr = LiveTrainer(photo, art, cfg, device=device, max_iters=iters + warmup, preview_size=64, precision=precision)
    t = [time.perf_counter()]

    def on_step(res, t=t):
        if res.step == warmup:
            sync(device)
            t[0] = time.perf_counter()

    try:
        tr.loop.run(on_step)
        sync(device)
    finally:
        tr.close()
    dt = time.perf_counter() - t[0]
    row = {"batch": b, "precision": tr.precision, "iters": iters, "seconds": round(dt, 3),
           "its_per_sec": round(iters / dt, 2), "crops_per_sec": round(iters * b / dt, 1)}
    if device.type == "cuda":
        row["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return row


def run_pair(name: str, photo: Image.Image, art: Image.Image, preset: str, device: torch.device, seconds: float,
             event_every: int, preview_size: int, max_iters: int | None, precision: str,
             lambda_nce: float | None = None) -> tuple[dict, list]:
    """Train like the app until the schedule ends or `seconds` of wall clock; previews with timestamps.
    `lambda_nce`: the preset's PatchNCE weight replaced (None: the preset's own)."""
    t0 = time.perf_counter()  # the user's clock: building the networks counts
    cfg = with_recipe(sincut_preset(preset), lambda_nce=lambda_nce)
    tr = LiveTrainer.launch(photo, art, cfg, device=device, event_every=event_every, preview_size=preview_size,
                            max_iters=max_iters, precision=precision)
    previews: list[tuple[float, int, Image.Image]] = []
    first = None
    last = None
    while True:
        ev = tr.events.get()
        now = time.perf_counter() - t0
        last = ev
        if ev.kind == "progress":
            if first is None:
                first = (now, ev.iteration)
            if ev.preview is not None:
                previews.append((now, ev.iteration, ev.preview))
            if now >= seconds and tr.running:
                tr.stop()  # after the current iteration, as the app's Stop button; the last event stays queued
        if ev.kind in ("stopped", "finished", "error"):
            break
    tr.wait()
    wall = time.perf_counter() - t0
    final = tr.preview()
    previews.append((wall, tr.iteration, final))
    result = {"pair": name, "preset": preset, "lambda_nce": cfg.model.lambda_nce, "precision": tr.precision,
              "end": last.kind, "message": last.message,
              "iterations": tr.iteration,
              "schedule_iters": tr.cfg.train.total_iters, "seconds": round(wall, 2),
              "its_per_sec": round(tr.iteration / wall, 2) if wall > 0 else None,
              "first_event": {"seconds": round(first[0], 2), "iteration": first[1]} if first else None,
              "preview_size": list(final.size)}
    # What `sincut` writes as translation.png (and scores): the photo at the working size. The yardsticks
    # depend on the size G translates at, so the previews' scores alone do not tell the product's.
    t1 = time.perf_counter()
    translation = tr.translate()  # a PIL image: the copy to the host waits for the GPU
    result["translation"] = {"size": list(translation.size), "seconds": round(time.perf_counter() - t1, 2),
                             **{k: round(v, 4) for k, v in style_report(photo, art, translation).items()}}
    if tr.model.G_ema is not None:  # the preset ships G's weight average: G itself too, for the comparison
        raw = translate_with(tr.model.G, tr.content, 1024)
        result["translation_of_G"] = {k: round(v, 4) for k, v in style_report(photo, art, raw).items()}
    if device.type == "cuda":
        result["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        torch.cuda.reset_peak_memory_stats(device)
    tr.close()
    # The yardsticks of the sheet's previews (CPU, after training so they do not slow it).
    chosen = pick(previews)
    result["previews"] = [{"seconds": round(s, 2), "iteration": i,
                           **{k: round(v, 4) for k, v in style_report(photo, art, img).items()}}
                          for s, i, img in chosen]
    result["preview_times"] = [[round(s, 2), i] for s, i, _ in previews]
    return result, chosen, previews


def add_to_tar(tar_path: Path, label: str, previews: list) -> None:
    """Append a run's previews to `tar_path` as JPEG (q 90: ~40 kB at 384 px, so six runs stay far below
    what a device call brings back); the final preview only if its iteration is new (a run that finished)."""
    with tarfile.open(tar_path, "a") as tar:
        for k, (s, i, img) in enumerate(previews):
            if k and i == previews[k - 1][1]:
                continue
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=90)
            info = tarfile.TarInfo(f"{label}/it{i:05d}_{s:.0f}s.jpg")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)


def score_tar(tar_path: Path, data: Path) -> int:
    """Print the yardsticks of every preview in `tar_path` (from a GPU run), run by run."""
    runs: dict[str, list] = {}
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            if m.isfile():
                label, name = m.name.split("/", 1)
                runs.setdefault(label, []).append((name, Image.open(tar.extractfile(m)).convert("RGB")))
    for label, previews in runs.items():
        pair = next(n for n in sorted(PAIRS, key=len, reverse=True) if label == n or label.startswith(n + "_l"))
        photo, art = (Image.open(data / p).convert("RGB") for p in PAIRS[pair])
        print(f"{label}: preview  colour texture content foreign")
        for name, img in sorted(previews):
            r = style_report(photo, art, img)
            print(f"  {name[:-4]:>14} " + " ".join(f"{v:.3f}" for v in r.values()), flush=True)
    return 0


def pick(previews: list, times=SHEET_TIMES) -> list:
    """The first preview at or after each time in `times` (distinct), plus the last."""
    chosen = []
    for t in times:
        p = next((p for p in previews if p[0] >= t), None)
        if p is not None and all(p is not c for c in chosen) and p is not previews[-1]:
            chosen.append(p)
    return chosen + [previews[-1]]


def sheet(photo: Image.Image, art: Image.Image, chosen: list, scores: dict) -> Image.Image:
    def thumb(img):
        return img.resize((max(1, round(img.width * THUMB / img.height)), THUMB), Image.BICUBIC)

    cells = [(thumb(photo), "photo")]
    for s, i, img in chosen:
        r = scores.get(i, {})
        cells.append((thumb(img), f"{s:.0f}s it{i} c{r.get('colour_ratio', float('nan')):.2f} "
                                  f"t{r.get('texture_ratio', float('nan')):.2f} e{r.get('content', float('nan')):.2f}"))
    cells.append((thumb(art), "artwork"))
    out = Image.new("RGB", (sum(c.width for c, _ in cells) + 4 * (len(cells) - 1), THUMB + 16), "white")
    draw, x = ImageDraw.Draw(out), 0
    for img, label in cells:
        out.paste(img, (x, 16))
        draw.text((x + 2, 2), label, fill="black")
        x += img.width + 4
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with monet_etretat/ and style_pairs/")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "sincut_gpu_out")))
    ap.add_argument("--preset", default="sincut-gpu")
    ap.add_argument("--pairs", default="monet,tubingen_starry,goldengate_scream")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget-s", type=float, default=220.0, help="seconds for the probe and all pairs")
    ap.add_argument("--first-s", type=float, default=100.0, help="training seconds of the first pair at most")
    ap.add_argument("--precision", default="fp32", help="fp32, bf16 or auto (the pairs' runs)")
    ap.add_argument("--probe", default="16:fp32,32:fp32,16:bf16",
                    help="batch:precision pairs of the throughput probe ('' = none)")
    ap.add_argument("--probe-iters", type=int, default=40)
    ap.add_argument("--event-every", type=int, default=50, help="iterations between previews")
    ap.add_argument("--preview-size", type=int, default=384)
    ap.add_argument("--max-iters", type=int, default=None, help="stop each pair after this many iterations")
    ap.add_argument("--lambda-nce", default="",
                    help="PatchNCE weights to train each pair with, e.g. '1,2' (runs named pair_l1, pair_l2); "
                         "'' = the preset's")
    ap.add_argument("--cudnn-benchmark", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="CPU, the sincut-cpu preset, a few iterations")
    ap.add_argument("--score", type=Path, metavar="TAR",
                    help="train nothing: print the yardsticks of every preview in a run's previews.tar")
    args = ap.parse_args(argv)
    if args.score:
        return score_tar(args.score, args.data)
    if args.smoke:
        args.device, args.preset = "cpu", "sincut-cpu"
        args.max_iters, args.event_every, args.probe_iters, args.preview_size = 4, 2, 1, 96
        args.probe, args.budget_s = "2:fp32,2:bf16", max(args.budget_s, 600)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "environment": environment(device),
                    "pairs": []}
    path = args.out / "sincut_gpu.json"

    def save():
        path.write_text(json.dumps(report, indent=1))

    start = time.perf_counter()
    names = [n for n in args.pairs.split(",") if n]
    images = {}
    for n in names:
        photo, art = (Image.open(args.data / p).convert("RGB") for p in PAIRS[n])
        images[n] = (photo, art)
    variants = [(int(v.split(":")[0]), v.split(":")[1]) for v in args.probe.split(",") if v]
    if variants:
        report["probe"] = []  # filled row by row: what was measured stays if a later row fails
        probe(*images[names[0]], args.preset, device, variants, args.probe_iters, report["probe"],
              1 if args.smoke else 5)
        save()
    weights = [float(w) for w in args.lambda_nce.split(",") if w] or [None]
    runs = [(n, w, n if w is None else f"{n}_l{w:g}") for n in names for w in weights]  # pair by pair, each weight
    for k, (n, weight, label) in enumerate(runs):
        left = args.budget_s - (time.perf_counter() - start)
        # Each run: what is left shared by the runs still to go, ~8 s of each kept for scoring.
        seconds = min(args.first_s, left / (len(runs) - k)) if k == 0 else left / (len(runs) - k)
        seconds -= 8
        if seconds < 10:
            report["pairs"].append({"pair": label, "skipped": f"{left:.0f} s left"})
            continue
        photo, art = images[n]
        try:
            result, previews, sequence = run_pair(label, photo, art, args.preset, device, seconds,
                                                  args.event_every, args.preview_size, args.max_iters,
                                                  args.precision, weight)
        except Exception:  # noqa: BLE001 - one failed pair must not lose the others
            report["pairs"].append({"pair": label, "error": traceback.format_exc()})
            save()
            continue
        scores = {p["iteration"]: p for p in result["previews"]}
        sheet(photo, art, previews, scores).save(args.out / f"sheet_{label}.png")
        add_to_tar(args.out / "previews.tar", label, sequence)
        report["pairs"].append(result)
        ended = "" if result["end"] in ("stopped", "finished") else f" [ended: {result['end']}: {result['message']}]"
        shown = [("last preview", result["previews"][-1]), ("translation", result["translation"])]
        shown += [("translation of G", result["translation_of_G"])] if "translation_of_G" in result else []
        for what, s in shown:
            print(f"{label}: {result['iterations']} it in {result['seconds']} s ({result['its_per_sec']} it/s){ended}; "
                  f"{what}: "
                  f"colour {s['colour_ratio']:.2f} texture {s['texture_ratio']:.2f} content {s['content']:.2f} "
                  f"foreign {s['foreign_colour_fraction']:.3f}", flush=True)
        save()
    report["total_seconds"] = round(time.perf_counter() - start, 1)
    save()
    failed = [p["pair"] for p in report["pairs"] if "error" in p or p.get("end") == "error"]
    failed += [f"probe {r['batch']}:{r['precision']}" for r in report.get("probe", []) if "error" in r]
    if failed:
        print("failed:", ", ".join(failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
