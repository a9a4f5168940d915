"""SinCUT's training rate in the real app (`python app.py`), alone and after a translation.

Each case starts a fresh app on this machine's cores and trains the `sincut-cpu` preset on a photo and
an artwork through the app's API, reading the iterations per second off the status lines; the
"after" cases first translate or analyse an image in another tab. A difference between the rows is
the cost of the app's handler threads to the training thread (OpenMP pools on a CPU). Prints a table.

    python scripts/bench_app_sincut.py --content ../shared/data/single_image/monet_etretat/etretat_photo.jpg \
        --style ../shared/data/single_image/monet_etretat/monet_painting.jpg
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "tests")]

from app_fixtures import make_model, satellite_like, start_app, stop_app  # noqa: E402

RATE = re.compile(r"Iteration \*\*(\d+)/\d+\*\* · ([\d.]+) it/s")
CASES = {"alone": None, "after a translation": "/do_translate", "after a correspondence analysis": "/do_analyse",
         "after another SinCUT run": "/run"}


def run_case(before: str | None, content: Path, style: Path, iterations: int, every: int, root: Path) -> list[float]:
    """it/s of every progress window after the first (which includes the networks' first steps)."""
    import gradio_client

    for name in ("weights", "official", "live", "tmp"):
        (root / name).mkdir(parents=True, exist_ok=True)
    make_model(root / "weights" / "bench-cut")
    satellite_like((512, 512), 1).save(root / "tile.png")
    env = {"CUTCORE_WEIGHTS": str(root / "weights"), "CUTCORE_MODELS": str(root / "official"),
           "CUTCORE_LIVE_DIR": str(root / "live"), "CUTCORE_EXAMPLES": "", "TMPDIR": str(root / "tmp"),
           "GRADIO_TEMP_DIR": str(root / "gradio"), "CUTCORE_DEVICE": "cpu",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))}
    proc, url = start_app(env, root / "app.log")
    try:
        client = gradio_client.Client(url, verbose=False, download_files=False)
        handle = gradio_client.handle_file
        if before == "/run":  # a short run that is exported (its preview, yardsticks and export)
            client.predict(handle(str(content)), handle(str(style)), "photo → art style", "sincut-cpu", 30, 30,
                           api_name="/run")
        elif before:
            client.predict(str(root / "weights" / "bench-cut"), handle(str(root / "tile.png")), api_name=before)
        job = client.submit(handle(str(content)), handle(str(style)), "photo → art style", "sincut-cpu",
                            iterations, every, api_name="/run")
        rates = []
        for update in job:
            m = RATE.search(str(update[0]))
            if m and int(m.group(1)) > every:
                rates.append(float(m.group(2)))
        return rates
    finally:
        stop_app(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--content", type=Path, required=True)
    ap.add_argument("--style", type=Path, required=True)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--every", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each case, interleaved")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated, of: " + ", ".join(CASES))
    args = ap.parse_args()
    cases = {case: CASES[case] for case in args.cases.split(",")}
    results: dict[str, list[float]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for i, (case, before) in enumerate(cases.items()):
                rates = run_case(before, args.content, args.style, args.iterations, args.every,
                                 Path(tmp) / f"{r}-{i}")
                print(f"# {case}: it/s per window {rates}", flush=True)
                results[case] += rates
    print(f"\nSinCUT (sincut-cpu) in the app, {os.cpu_count()} cores, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', os.cpu_count())}, iterations {args.every + 1}-{args.iterations}\n")
    print("| case | s/iteration (median) | windows |\n|---|---:|---:|")
    for case, rates in results.items():
        print(f"| {case} | {1 / statistics.median(rates):.3f} | {len(rates)} |" if rates else f"| {case} | — | 0 |")


if __name__ == "__main__":
    main()
