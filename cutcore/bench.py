"""Speed and memory benchmark, in the form of the thesis's Table 5.1 (method | sec/iter | memory).

    python -m cutcore.bench                                    # all presets + inference rows
    python -m cutcore.bench --preset cut --size 256 --device cpu --iters 6 --json
    python -m cutcore.bench --preset cut,fastcut --reference /path/to/reference/checkout
    python -m cutcore.bench --device cuda --iters 20           # cut, fastcut, cyclegan, sincut + G at 256/512/1024
    python -m cutcore.bench --device cuda --batch-size 8 --precision bf16 --preset cut --infer-sizes 512

Every row runs in a fresh subprocess, so peak memory (max RSS on CPU, max allocated on CUDA)
belongs to that row alone. Time is the median of `--iters` iterations after warm-up (one on
CPU; three on CUDA, where cuDNN autotuning runs, each timed iteration between two
torch.cuda.synchronize() calls). On CUDA the peak is torch.cuda.max_memory_allocated over the
timed iterations (after reset_peak_memory_stats; weights and optimiser state included).
Given a read-only checkout of the reference CUT repository, the same rows are measured for it
in the same run and the ratios printed (nothing from it is copied or imported into cutcore).

Each row's model FLOP/s (torch's FLOP counter over one step) is set against the GEMM ceiling
measured in the same run, for the row's precision: fp32 (`gemm_peak_gflops`, a 2048² matmul on
CPU, 8192² on CUDA) and, with bf16 rows, bf16 (`gemm_peak_gflops_bf16`). `--precision auto`
picks bf16 where the device multiplies it natively (cutcore.hardware).
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

TRAIN_PRESETS = ["cyclegan", "cut", "cut-focal", "fastcut", "fastcut-focal", "put"]
# Issue 12's CUDA table: the default rows with --device cuda.
CUDA_TRAIN_PRESETS = ["cut", "fastcut", "cyclegan", "sincut"]
CUDA_INFER_SIZES = "256,512,1024"


# --- measurements (run inside the worker subprocess) ---------------------------------------
def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def _count_gflop(fn) -> float | None:
    from torch.utils.flop_counter import FlopCounterMode

    try:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / 1e9
    except RuntimeError:  # the flop counter cannot follow double backward (SinCUT's R1 penalty)
        return None


def _timed(fn, iters: int, device, warmup: int = 1, clock=time.perf_counter, sync=_sync,
           count_flops=_count_gflop, before_timing=None) -> tuple[float, float | None]:
    """(median seconds per call after `warmup` calls, GFLOP of one call when countable).

    Each timed call sits between two `sync(device)` calls, so queued GPU work is neither left out
    nor charged to the next call. `before_timing()` runs once after warm-up (the CUDA peak reset).
    """
    for _ in range(warmup):
        fn()
    gflop = count_flops(fn)
    sync(device)
    if before_timing is not None:
        before_timing()
    times = []
    for _ in range(iters):
        sync(device)
        t = clock()
        fn()
        sync(device)
        times.append(clock() - t)
    return statistics.median(times), gflop


def _train_step(model, train_cfg, a, b, precision: str):
    """A no-argument training step: the model takes the precision (and its own autocast) in
    `configure_training` and steps with `train_step(a, b, rng)`, a new seed each call."""
    import torch

    counter = iter(range(10**9))
    model.configure_training(train_cfg.lr, train_cfg.beta1, train_cfg.beta2, precision)

    def step():
        return model.train_step(a, b, torch.Generator().manual_seed(next(counter)))

    return step


def _ours_sincut(spec: dict):
    """SinCUT at its preset's own crop size and batch (the paper: 16 crops of 64²), channels-last as trained live."""
    import torch

    from .sincut.config import sincut_preset
    from .sincut.model import SinCUTModel

    cfg = sincut_preset(spec["preset"])
    device = torch.device(spec["device"])
    model = SinCUTModel(cfg.model).to(device).to(memory_format=torch.channels_last)
    spec["batch_size"] = spec.get("batch_size") or cfg.train.batch_size
    spec["channels_last"] = True
    shape = (spec["batch_size"], 3, cfg.data.crop_size, cfg.data.crop_size)
    a, b = (torch.randn(shape, device=device).contiguous(memory_format=torch.channels_last) for _ in range(2))
    spec["size"] = cfg.data.crop_size
    return _train_step(model, cfg.train, a, b, spec["precision"]), device


def _ours_train(spec: dict):
    import torch

    from .config import preset

    if spec["preset"].startswith("sincut"):
        return _ours_sincut(spec)
    from .models import build_model

    cfg = preset(spec["preset"])
    device = torch.device(spec["device"])
    model = build_model(cfg.model).to(device)
    spec["batch_size"] = spec.get("batch_size") or 1
    a, b = (torch.randn(spec["batch_size"], 3, spec["size"], spec["size"], device=device) for _ in range(2))
    if spec.get("channels_last"):
        model.to(memory_format=torch.channels_last)
        a, b = a.contiguous(memory_format=torch.channels_last), b.contiguous(memory_format=torch.channels_last)
    return _train_step(model, cfg.train, a, b, spec["precision"]), device


def _ours_inference(spec: dict):
    import torch

    from .hardware import autocast
    from .nets import ResnetGenerator

    device = torch.device(spec["device"])
    g = ResnetGenerator().to(device).eval()
    spec["batch_size"] = spec.get("batch_size") or 1
    x = torch.randn(spec["batch_size"], 3, spec["size"], spec["size"], device=device)
    if spec.get("channels_last"):
        g.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.no_grad(), autocast(device, spec["precision"]):
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
    spec["batch_size"] = 1
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (spec["size"], spec["size"], 3), dtype=np.uint8))
    return lambda: translate_tiled(g, img, tile=512, overlap=32), device


def _gpu_ids(device: str) -> str:
    """The reference's --gpu_ids for a torch device string: cpu -> -1, cuda -> 0, cuda:1 -> 1."""
    if not device.startswith("cuda"):
        return "-1"
    return device.partition(":")[2] or "0"


def reference_options(ref: str | os.PathLike, argv: list[str]):
    """The reference checkout's training options for `argv`, parsed by its own TrainOptions; the checkout goes
    first on sys.path, so its `models`, `options` and `data` packages are the ones imported afterwards."""
    sys.path.insert(0, str(ref))
    sys.argv = ["train.py", *argv]
    from options.train_options import TrainOptions  # noqa: E402  (the reference checkout)

    opt = TrainOptions().parse()
    if not hasattr(opt, "amp"):  # the reference's CycleGAN reads an apex option its parser no longer defines
        opt.amp = False
    return opt


def start_reference_model(opt, data: dict):
    """The reference's model for `opt`, initialised on a first batch as its train.py does."""
    from models import create_model  # noqa: E402  (the reference checkout)

    model = create_model(opt)
    # The reference's CycleGAN overrides it without the `data` argument (its own train.py fails there)
    if inspect.signature(model.data_dependent_initialize).parameters:
        model.data_dependent_initialize(data)
    else:
        model.data_dependent_initialize()
    model.setup(opt)
    model.parallelize()
    return model


def _reference_train(spec: dict):
    """The reference CUT/CycleGAN optimisation step, driven through its own option parser."""
    import torch

    ref = spec["reference"]
    os.chdir(ref)
    sincut = spec["preset"].startswith("sincut")
    on_cuda = spec["device"].startswith("cuda")
    if sincut and not on_cuda:  # the reference's SinCUT calls .cuda() unconditionally: make it a no-op on CPU
        torch.Tensor.cuda = lambda self, *a, **k: self
        torch.nn.Module.cuda = lambda self, *a, **k: self
    model_name = "sincut" if sincut else "cycle_gan" if spec["preset"] == "cyclegan" else "cut"
    argv = ["--dataroot", ref, "--name", "bench", "--checkpoints_dir", "/tmp/cutcore_bench_ref",
            "--gpu_ids", _gpu_ids(spec["device"]), "--model", model_name]
    if not sincut:
        argv += ["--load_size", str(spec["size"]), "--crop_size", str(spec["size"])]
    if spec.get("batch_size"):
        argv += ["--batch_size", str(spec["batch_size"])]
    if model_name == "cut":
        argv += ["--CUT_mode", "FastCUT" if spec["preset"].startswith("fastcut") else "CUT"]
    if model_name == "cycle_gan":  # CycleGAN's own networks (stride-2 and transposed convolutions), as our preset
        argv += ["--no_antialias", "--no_antialias_up"]
    opt = reference_options(ref, argv)
    shape = (opt.batch_size, 3, opt.crop_size, opt.crop_size)
    spec["size"], spec["batch_size"] = opt.crop_size, opt.batch_size
    a, b = (torch.randn(shape) for _ in range(2))
    data = {"A": a, "B": b, "A_paths": ["a"] * opt.batch_size, "B_paths": ["b"] * opt.batch_size}
    model = start_reference_model(opt, data)

    def run():
        model.set_input(data)
        model.optimize_parameters()

    return run, torch.device(spec["device"] if on_cuda else "cpu")


def _reference_inference(spec: dict):
    import torch

    sys.path.insert(0, spec["reference"])
    from models.networks import define_G  # noqa: E402

    device = torch.device(spec["device"] if spec["device"].startswith("cuda") else "cpu")
    g = define_G(3, 3, 64, "resnet_9blocks", "instance", False, "xavier", 0.02, False, False, [], None)
    g = g.to(device).eval()
    spec["batch_size"] = spec.get("batch_size") or 1
    x = torch.randn(spec["batch_size"], 3, spec["size"], spec["size"], device=device)

    def run():
        with torch.no_grad():
            g(x)

    return run, device


_BUILDERS = {
    ("ours", "train"): _ours_train,
    ("ours", "inference"): _ours_inference,
    ("ours", "tiled"): _ours_tiled,
    ("reference", "train"): _reference_train,
    ("reference", "inference"): _reference_inference,
}


def device_info(device) -> dict:
    """Keys naming the hardware and software of a row (measured in the worker)."""
    import torch

    from .hardware import cpu_name

    info = {"torch_version": torch.__version__, "date": datetime.now(UTC).date().isoformat()}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info.update(device_name=torch.cuda.get_device_name(index), cuda_version=torch.version.cuda,
                    peak_mem_kind="cuda_max_allocated",
                    tf32_conv=bool(torch.backends.cudnn.allow_tf32),
                    tf32_matmul=bool(torch.backends.cuda.matmul.allow_tf32))
    else:
        info.update(device_name=cpu_name(), peak_mem_kind="max_rss", threads=torch.get_num_threads())
    return info


def assemble_row(spec: dict, sec: float, gflop: float | None, peak_mib: float, info: dict | None = None) -> dict:
    """One result row: the spec (less the reference path) plus the measurements and what follows from them."""
    batch = spec.get("batch_size") or 1
    return {**{k: v for k, v in spec.items() if k != "reference"}, "batch_size": batch, "sec_per_iter": sec,
            "peak_mem_mib": peak_mib, "gflop_per_iter": gflop,
            "gflops": gflop / sec if gflop is not None and sec > 0 else None,
            "images_per_s": batch / sec if sec > 0 else None, **(info or {})}


def _worker(spec: dict) -> dict:
    import torch

    torch.manual_seed(0)
    cuda = spec["device"].startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    run, device = _BUILDERS[(spec["impl"], spec["kind"])](spec)
    reset = (lambda: torch.cuda.reset_peak_memory_stats(device)) if cuda else None
    sec, gflop = _timed(run, spec["iters"], device, warmup=3 if cuda else 1, before_timing=reset)
    info = device_info(device)
    if cuda:
        info["peak_reserved_mib"] = torch.cuda.max_memory_reserved(device) / 2**20
    return assemble_row(spec, sec, gflop, _peak_mib(device), info)


# --- orchestration ---------------------------------------------------------------------------
def gemm_peak_gflops(device: str, n: int | None = None, repeats: int = 5, dtype: str = "fp32") -> float:
    """Achieved GFLOP/s of an n×n matrix multiply in `dtype`: the machine's practical ceiling.

    CPU: n = 2048, the median of `repeats` single products. CUDA: n = 8192 (a 2048² product is
    over in microseconds), after a synchronised warm-up, `repeats` x 10 products between two
    synchronisations. fp32 on CUDA follows torch's TF32 matmul setting (off by default).
    """
    import torch

    dev = torch.device(device)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    cuda = dev.type == "cuda"
    n = n or (8192 if cuda else 2048)
    a, b = torch.randn(n, n, device=dev).to(torch_dtype), torch.randn(n, n, device=dev).to(torch_dtype)
    a @ b
    if cuda:
        torch.cuda.synchronize(dev)
        per = 10
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(per):
                a @ b
            torch.cuda.synchronize(dev)
            times.append((time.perf_counter() - t) / per)
    else:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def add_peaks(rows: list[dict], peaks: dict[str, float]) -> None:
    """Put the GEMM ceilings (by precision) on every row and each row's share of its own precision's."""
    for r in rows:
        r["gemm_peak_gflops"] = peaks.get("fp32")
        if "bf16" in peaks:
            r["gemm_peak_gflops_bf16"] = peaks["bf16"]
        peak = peaks.get(r.get("precision", "fp32"))
        r["peak_fraction"] = r["gflops"] / peak if r.get("gflops") is not None and peak else None


def measure(spec: dict) -> dict:
    env = {**os.environ,
           "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "cutcore.bench", "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        return {**{k: v for k, v in spec.items() if k != "reference"}, "error": tail or f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _int_list(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


# The generator alone (inference rows) needs 2 pixels for its reflection pad after its two halvings;
# training sizes follow the training configs' own rule (config.smallest_crop, GENERATOR_MULTIPLE).
MIN_INFER_SIZE = 5


def argument_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, found before anything is measured; None if nothing."""
    from .config import GENERATOR_MULTIPLE, PRESETS, smallest_crop
    from .nets.patchgan import PatchGANConfig
    from .sincut.config import SINCUT_PRESETS

    known = [*PRESETS, *SINCUT_PRESETS]
    unknown = [s for s in (args.preset or "").split(",") if s and s not in known]
    if unknown:
        return f"--preset {unknown[0]}: unknown preset; choose from {', '.join(known)}"
    for flag, text in (("--size", args.size), ("--infer-sizes", args.infer_sizes or "")):
        try:
            sizes = _int_list(text)
        except ValueError:
            return f"{flag} {text}: expected whole numbers separated by commas, e.g. 256,512"
        train = flag == "--size"
        least = smallest_crop(PatchGANConfig().n_layers) if train else MIN_INFER_SIZE  # every preset's PatchGAN
        for size in sizes:
            if size < least or (train and size % GENERATOR_MULTIPLE):
                return f"{flag} {size}: must be at least {least}" + (
                    f" and a multiple of {GENERATOR_MULTIPLE}" if train else "")
    for flag, value in (("--iters", args.iters), ("--batch-size", args.batch_size), ("--tiled", args.tiled)):
        if value is not None and value < 1:
            return f"{flag} {value}: must be at least 1"
    if args.out and (args.out / "bench.json").exists():  # an earlier run's table (weights/: the project's)
        return f"--out {args.out}: it already holds a bench.json; choose another folder, or delete it first"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cutcore.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", help=f"comma-separated training presets (default: {','.join(TRAIN_PRESETS)} plus "
                   f"inference rows; with --device cuda: {','.join(CUDA_TRAIN_PRESETS)} and inference at "
                   f"{CUDA_INFER_SIZES})")
    p.add_argument("--size", default="256", help="training crop size(s), e.g. 256 or 256,512,1024")
    p.add_argument("--infer-sizes", default=None,
                   help="generator inference sizes, e.g. 256,512 (default with no --preset)")
    p.add_argument("--tiled", type=int, default=None, help="also time tiled translation of an N×N image (e.g. 4096)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, or auto (the GPU when there is one)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                   help="auto: bf16 where the device multiplies it natively, else fp32")
    p.add_argument("--batch-size", type=int, default=None,
                   help="images per step (default 1; SinCUT: its preset's batch) — e.g. 8 with bf16 for throughput")
    p.add_argument("--channels-last", action="store_true",
                   help="training rows channels-last, as train runs on CUDA (inference rows stay NCHW, as "
                        "translate runs)")
    p.add_argument("--iters", type=int, default=6)
    p.add_argument("--reference", type=Path, help="read-only checkout of the reference CUT repo, measured side by side")
    p.add_argument("--json", action="store_true", help="print one JSON list of rows to stdout, nothing else")
    p.add_argument("--out", type=Path, help="write bench.json and bench.md into this folder (refused if it holds a "
                   "bench.json: an earlier table is not replaced)")
    p.add_argument("--partial", type=Path, help="rewrite this JSON file with the rows so far after every row "
                   "(what a time limit leaves behind); progress goes to stderr")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(json.loads(args.worker))))
        return 0
    error = argument_error(args)
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from .hardware import DeviceError, resolve_device, resolve_precision

    try:
        device = resolve_device(args.device)
    except DeviceError as e:
        print(f"error: --device {args.device}: {e}", file=sys.stderr)
        return 2
    args.device = str(device)  # "auto" -> what it resolved to, in every row
    precision, reason = resolve_precision(args.precision, device)
    if not args.json or args.precision == "auto":
        print(f"precision: {reason}", file=sys.stderr)

    cuda = device.type == "cuda"
    given = args.preset is not None  # --preset "" = inference rows only
    presets = [s for s in args.preset.split(",") if s] if given else CUDA_TRAIN_PRESETS if cuda else TRAIN_PRESETS
    infer = _int_list(args.infer_sizes or ("" if given else CUDA_INFER_SIZES if cuda else "256,512"))
    common = {"device": args.device, "precision": precision, "iters": args.iters, "channels_last": args.channels_last}
    if args.batch_size:
        common["batch_size"] = args.batch_size
    if args.precision == "auto":
        common["precision_reason"] = reason
    specs = [{**common, "impl": "ours", "kind": "train", "preset": name, "size": size}
             for size in _int_list(args.size) for name in presets
             if not (name.startswith("sincut") and size != _int_list(args.size)[0])]  # SinCUT has its own crop size
    nchw = {**common, "channels_last": False}
    specs += [{**nchw, "impl": "ours", "kind": "inference", "preset": "generator", "size": s} for s in infer]
    if args.tiled:
        specs.append({**nchw, "impl": "ours", "kind": "tiled", "preset": "generator", "size": args.tiled, "iters": 1})
    if args.reference:
        ref = {"reference": str(args.reference.resolve()), "impl": "reference", "precision": "fp32",
               "channels_last": False}
        specs += [{**s, **ref} for s in specs if (s["kind"], s["preset"]) != ("tiled", "generator")]
    rows = []
    for spec in specs:
        if not args.json or args.partial:
            print(f"measuring {spec['impl']} {spec['kind']} {spec['preset']} {spec['size']}...",
                  file=sys.stderr, flush=True)
        rows.append(measure(spec))
        if args.partial:
            args.partial.write_text(json.dumps(rows, indent=2))
    peaks = {"fp32": gemm_peak_gflops(args.device)}
    if any(r.get("precision") == "bf16" for r in rows):
        peaks["bf16"] = gemm_peak_gflops(args.device, dtype="bf16")
    add_peaks(rows, peaks)
    from .results import speed_table_markdown

    table = speed_table_markdown(rows, peaks["fp32"], peaks.get("bf16"), 8192 if cuda else 2048)
    if args.partial:
        args.partial.write_text(json.dumps(rows, indent=2))
        if args.json:
            print(table, file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "bench.json").write_text(json.dumps(rows, indent=2))
        (args.out / "bench.md").write_text(table + "\n")
    print(json.dumps(rows, indent=2) if args.json else table)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
