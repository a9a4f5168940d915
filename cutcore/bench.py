"""Speed and memory benchmark, in the form of the thesis's Table 5.1 (method | sec/iter | memory).

    python -m cutcore.bench                                    # all presets + inference rows
    python -m cutcore.bench --preset cut --size 256 --device cpu --iters 6 --json
    python -m cutcore.bench --preset cut,fastcut --reference /path/to/reference/checkout

Every row runs in a fresh subprocess, so peak memory (max RSS on CPU, max allocated on CUDA)
belongs to that row alone. Time is the median of `--iters` iterations after one warm-up.
Given a read-only checkout of the reference CUT repository, the same rows are measured for it
in the same run and the ratios printed (nothing from it is copied or imported into cutcore).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TRAIN_PRESETS = ["cyclegan", "cut", "cut-focal", "fastcut", "fastcut-focal", "put"]


# --- measurements (run inside the worker subprocess) ---------------------------------------
def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn, iters: int, device) -> tuple[float, float | None]:
    """(median seconds per call after one warm-up, GFLOP of one call when countable)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    fn()
    gflop = None
    try:
        with FlopCounterMode(display=False) as counter:
            fn()
        gflop = counter.get_total_flops() / 1e9
    except RuntimeError:  # the flop counter cannot follow double backward (SinCUT's R1 penalty)
        pass
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), gflop


def _ours_sincut(spec: dict):
    """SinCUT at its preset's own crop size and batch (the paper: 16 crops of 64²), channels-last as trained live."""
    import torch

    from .sincut import SinCUTModel, sincut_preset

    cfg = sincut_preset(spec["preset"])
    device = torch.device(spec["device"])
    model = SinCUTModel(cfg.model).to(device).to(memory_format=torch.channels_last)
    model.configure_training(cfg.train.lr, cfg.train.beta1, cfg.train.beta2)
    shape = (cfg.train.batch_size, 3, cfg.data.crop_size, cfg.data.crop_size)
    a, b = (torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last) for _ in range(2))
    spec["size"] = cfg.data.crop_size
    counter = iter(range(10**9))
    return lambda: model.train_step(a, b, torch.Generator().manual_seed(next(counter))), device


def _ours_train(spec: dict):
    import torch

    from .config import preset

    if spec["preset"].startswith("sincut"):
        return _ours_sincut(spec)
    from .models import build_model

    cfg = preset(spec["preset"])
    device = torch.device(spec["device"])
    model = build_model(cfg.model).to(device)
    model.configure_training(cfg.train.lr, cfg.train.beta1, cfg.train.beta2, spec["precision"])
    a, b = (torch.randn(1, 3, spec["size"], spec["size"], device=device) for _ in range(2))
    if spec.get("channels_last"):
        model.to(memory_format=torch.channels_last)
        a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    counter = iter(range(10**9))
    return lambda: model.train_step(a, b, torch.Generator().manual_seed(next(counter))), device


def _ours_inference(spec: dict):
    import torch

    from .nets import ResnetGenerator

    device = torch.device(spec["device"])
    g = ResnetGenerator().to(device).eval()
    x = torch.randn(1, 3, spec["size"], spec["size"], device=device)

    def run():
        with torch.no_grad():
            g(x)

    return run, device


def _ours_tiled(spec: dict):
    import numpy as np
    import torch
    from PIL import Image

    from .nets import ResnetGenerator
    from .translate import translate_tiled

    device = torch.device(spec["device"])
    g = ResnetGenerator().to(device).eval()
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (spec["size"], spec["size"], 3), dtype=np.uint8))
    return lambda: translate_tiled(g, img, tile=512, overlap=32), device


def _reference_train(spec: dict):
    """The reference CUT/CycleGAN optimisation step, driven through its own option parser."""
    import torch

    ref = spec["reference"]
    sys.path.insert(0, ref)
    os.chdir(ref)
    sincut = spec["preset"].startswith("sincut")
    if sincut:  # the reference's SinCUT calls .cuda() unconditionally: make it a no-op on CPU
        torch.Tensor.cuda = lambda self, *a, **k: self
        torch.nn.Module.cuda = lambda self, *a, **k: self
    model_name = "sincut" if sincut else "cycle_gan" if spec["preset"] == "cyclegan" else "cut"
    argv = ["--dataroot", ref, "--name", "bench", "--checkpoints_dir", "/tmp/cutcore_bench_ref", "--gpu_ids", "-1",
            "--model", model_name]
    if not sincut:
        argv += ["--load_size", str(spec["size"]), "--crop_size", str(spec["size"])]
    if model_name == "cut":
        argv += ["--CUT_mode", "FastCUT" if spec["preset"].startswith("fastcut") else "CUT"]
    sys.argv = ["train.py"] + argv
    from models import create_model  # noqa: E402  (the reference checkout)
    from options.train_options import TrainOptions  # noqa: E402

    opt = TrainOptions().parse()
    model = create_model(opt)
    shape = (opt.batch_size, 3, opt.crop_size, opt.crop_size)
    spec["size"] = opt.crop_size
    a, b = (torch.randn(shape) for _ in range(2))
    data = {"A": a, "B": b, "A_paths": ["a"], "B_paths": ["b"]}
    model.data_dependent_initialize(data)
    model.setup(opt)
    model.parallelize()

    def run():
        model.set_input(data)
        model.optimize_parameters()

    return run, torch.device("cpu")


def _reference_inference(spec: dict):
    import torch

    sys.path.insert(0, spec["reference"])
    from models.networks import define_G  # noqa: E402

    g = define_G(3, 3, 64, "resnet_9blocks", "instance", False, "xavier", 0.02, False, False, [], None).eval()
    x = torch.randn(1, 3, spec["size"], spec["size"])

    def run():
        with torch.no_grad():
            g(x)

    return run, torch.device("cpu")


_BUILDERS = {
    ("ours", "train"): _ours_train,
    ("ours", "inference"): _ours_inference,
    ("ours", "tiled"): _ours_tiled,
    ("reference", "train"): _reference_train,
    ("reference", "inference"): _reference_inference,
}


def _worker(spec: dict) -> dict:
    import torch

    torch.manual_seed(0)
    run, device = _BUILDERS[(spec["impl"], spec["kind"])](spec)
    sec, gflop = _timed(run, spec["iters"], device)
    return {**{k: v for k, v in spec.items() if k != "reference"}, "sec_per_iter": sec, "peak_mem_mib": _peak_mib(device),
            "gflop_per_iter": gflop, "gflops": gflop / sec if gflop is not None and sec > 0 else None}


# --- orchestration ---------------------------------------------------------------------------
def gemm_peak_gflops(device: str, n: int = 2048, repeats: int = 5) -> float:
    """Achieved fp32 GFLOP/s of an n×n matrix multiply: the machine's practical ceiling."""
    import torch

    dev = torch.device(device)
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def measure(spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "cutcore.bench", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {**{k: v for k, v in spec.items() if k != "reference"}, "error": tail or f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict], peak: float | None) -> str:
    lines = ["| method | impl | kind | size | device | precision | sec/iter | peak memory | GFLOP/s | vs reference |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    ref = {(r["preset"], r["kind"], r["size"]): r for r in rows if r["impl"] == "reference" and "error" not in r}
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['impl']} | {r['kind']} | {r['size']} | {r['device']} | {r['precision']} | failed: {r['error'].splitlines()[-1][:80]} | | | |")
            continue
        base = ref.get((r["preset"], r["kind"], r["size"]))
        ratio = ""
        if base and r["impl"] == "ours":
            ratio = f"{r['sec_per_iter'] / base['sec_per_iter']:.2f}× time, {r['peak_mem_mib'] / base['peak_mem_mib']:.2f}× mem"
        gflops = "—" if r["gflops"] is None else f"{r['gflops']:.0f}"
        lines.append(f"| {r['preset']} | {r['impl']} | {r['kind']} | {r['size']} | {r['device']} | {r['precision']} | "
                     f"{r['sec_per_iter']:.3f} s | {r['peak_mem_mib'] / 1024:.2f} GiB | {gflops} | {ratio} |")
    if peak:
        lines.append(f"\nfp32 GEMM ceiling of this device: {peak:.0f} GFLOP/s (2048² matmul).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cutcore.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", help=f"comma-separated training presets (default: {','.join(TRAIN_PRESETS)} plus inference rows)")
    p.add_argument("--size", type=int, default=256, help="training crop size")
    p.add_argument("--infer-sizes", default=None, help="generator inference sizes, e.g. 256,512 (default with no --preset)")
    p.add_argument("--tiled", type=int, default=None, help="also time tiled translation of an N×N image (e.g. 4096)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--reference", type=Path, help="read-only checkout of the reference CUT repo, measured side by side")
    p.add_argument("--json", action="store_true", help="print one JSON list of rows to stdout, nothing else")
    p.add_argument("--out", type=Path, help="write bench.json and bench.md here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0

    presets = args.preset.split(",") if args.preset else TRAIN_PRESETS
    infer = [int(s) for s in (args.infer_sizes or ("" if args.preset else "256,512")).split(",") if s]
    common = {"device": args.device, "precision": args.precision, "iters": args.iters, "channels_last": args.channels_last}
    specs = [{**common, "impl": "ours", "kind": "train", "preset": name, "size": args.size} for name in presets]
    specs += [{**common, "impl": "ours", "kind": "inference", "preset": "generator", "size": s} for s in infer]
    if args.tiled:
        specs.append({**common, "impl": "ours", "kind": "tiled", "preset": "generator", "size": args.tiled, "iters": 1})
    if args.reference:
        ref = {"reference": str(args.reference.resolve()), "impl": "reference", "precision": "fp32", "channels_last": False}
        specs += [{**s, **ref} for s in specs if (s["kind"], s["preset"]) != ("tiled", "generator") and s["device"] == "cpu"]
    rows = []
    for spec in specs:
        if not args.json:
            print(f"measuring {spec['impl']} {spec['kind']} {spec['preset']} {spec['size']}...", file=sys.stderr)
        rows.append(measure(spec))
    peak = gemm_peak_gflops(args.device)
    for r in rows:
        r["gemm_peak_gflops"] = peak
    table = markdown(rows, peak)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps(rows, indent=2))
        (args.out / "bench.md").write_text(table + "\n")
    print(json.dumps(rows, indent=2) if args.json else table)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
