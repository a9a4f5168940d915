"""Issue 13: choose the sat2map generator width and resolution within the size and speed limits.

    python scripts/sat2map_plan.py sizes                     # fp16 file size of every model kind vs the 10 MiB cap
    python scripts/sat2map_plan.py flops --crop 128 --batch 8 --ngf 32 --n-blocks 6   # + the H200 estimate
    python scripts/sat2map_plan.py cpu-infer --size 256 --ngf 32 --n-blocks 6 [--threads 2]
    python scripts/sat2map_plan.py all --json plan.json      # the three, plus an H200 throughput estimate

`sizes` builds each generator (and CUT's PatchNCE heads, CycleGAN's second generator) with
cutcore.nets and counts what `export` writes in fp16. `flops` counts one training step of each
preset with torch's FLOP counter (on the CPU; FLOPs scale with batch × crop²). `cpu-infer`
writes a randomly initialised model folder that records the inference scale (size/512) and times
`translate_image` on a 512 px tile, the app's path: wall seconds, and the CPU seconds the process
used (on a machine shared with other jobs the wall time overstates what a quiet 2-core machine
takes: with `threads` cores free it would take about cpu_s / threads). Nothing here needs data or a GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 2**20
PRESETS = ["cut", "cut-focal", "fastcut", "fastcut-focal", "put", "cyclegan"]
H200_BF16_PEAK_TFLOPS = 790.0  # KINDS.md: 8192³ bf16 matmul measured at 769–798 TFLOP/s
TILE = 512  # the sat2map tiles


def _generator_config(preset: str, ngf: int, n_blocks: int):
    from cutcore.config import preset as make_preset

    cfg = make_preset(preset)
    cfg.model.generator.ngf, cfg.model.generator.n_blocks = ngf, n_blocks
    return cfg


def export_bytes(preset: str, ngf: int, n_blocks: int) -> dict:
    """Parameters and fp16 bytes of what `export` ships for `preset`: G and F (CUT family), G and G_BA (CycleGAN)."""
    from cutcore.models import build_model

    model = build_model(_generator_config(preset, ngf, n_blocks).model)
    shipped = {name: m for name, m in model.inference_modules().items()}
    tensors = {f"{n}.{k}": v for n, m in shipped.items() for k, v in m.state_dict().items()}
    n_params = sum(v.numel() for v in tensors.values())
    return {"preset": preset, "ngf": ngf, "n_blocks": n_blocks, "modules": sorted(shipped),
            "params_m": round(n_params / 1e6, 3), "fp16_mib": round(2 * n_params / MiB, 2)}


def sizes(ngfs: list[int], blocks: list[int]) -> list[dict]:
    rows = []
    for ngf in ngfs:
        for nb in blocks:
            cut, cyc = export_bytes("cut", ngf, nb), export_bytes("cyclegan", ngf, nb)
            rows.append({"ngf": ngf, "n_blocks": nb, "cut_params_m": cut["params_m"], "cut_fp16_mib": cut["fp16_mib"],
                         "cyclegan_params_m": cyc["params_m"], "cyclegan_fp16_mib": cyc["fp16_mib"],
                         "all_six_mib": round(5 * cut["fp16_mib"] + cyc["fp16_mib"], 1),
                         "fits": cut["fp16_mib"] <= 10 and cyc["fp16_mib"] <= 10})
    return rows


def step_gflop(preset: str, crop: int, batch: int, ngf: int, n_blocks: int, lambda_l1_idt: float = 0.0) -> float:
    """GFLOP of one training step (forward, backward, optimiser) counted by torch on the CPU."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cutcore.models import build_model

    cfg = _generator_config(preset, ngf, n_blocks)
    if lambda_l1_idt and cfg.model.kind == "cut":
        cfg.model.lambda_l1_idt = lambda_l1_idt
    torch.manual_seed(0)
    model = build_model(cfg.model)
    model.configure_training(2e-4, 0.5, 0.999, "fp32")
    a, b = (torch.rand(batch, 3, crop, crop) * 2 - 1 for _ in range(2))
    model.train_step(a, b, torch.Generator().manual_seed(0))  # CycleGAN's pool fills on the first step
    with FlopCounterMode(display=False) as counter:
        model.train_step(a, b, torch.Generator().manual_seed(1))
    return counter.get_total_flops() / 1e9


def step_ops(preset: str, ngf: int, n_blocks: int, lambda_l1_idt: float = 0.0) -> int:
    """Operators one training step dispatches from Python (top-level profiler events): on a GPU each
    launches one kernel or more, so this bounds the step rate of one process by its host overhead."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from cutcore.models import build_model

    cfg = _generator_config(preset, ngf, n_blocks)
    if lambda_l1_idt and cfg.model.kind == "cut":
        cfg.model.lambda_l1_idt = lambda_l1_idt
    model = build_model(cfg.model)
    model.configure_training(2e-4, 0.5, 0.999, "fp32")
    a, b = (torch.rand(2, 3, 32, 32) * 2 - 1 for _ in range(2))
    model.train_step(a, b, torch.Generator().manual_seed(0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        model.train_step(a, b, torch.Generator().manual_seed(1))
    return sum(1 for e in prof.events() if e.cpu_parent is None)


def flops(crop: int, batch: int, ngf: int, n_blocks: int, lambda_l1_idt: float) -> list[dict]:
    rows = []
    for p in PRESETS:
        g = step_gflop(p, crop, batch, ngf, n_blocks, lambda_l1_idt if p != "cyclegan" else 0.0)
        ops = step_ops(p, ngf, n_blocks, lambda_l1_idt if p != "cyclegan" else 0.0)
        rows.append({"preset": p, "crop": crop, "batch": batch, "ngf": ngf, "n_blocks": n_blocks,
                     "gflop_per_step": round(g, 2), "gflop_per_image": round(g / batch, 2), "ops_per_step": ops})
    return rows


def cpu_infer(size: int, ngf: int, n_blocks: int, threads: int, repeats: int, preset: str = "cut") -> dict:
    """Seconds to translate one random 512 px tile with a random model folder that translates at `size`."""
    import numpy as np
    import torch
    from PIL import Image

    from cutcore.model_folder import load_model, write_model_folder
    from cutcore.models import build_model
    from cutcore.saved_config import InferenceSettings, SavedModelConfig
    from cutcore.translate import translate_image

    torch.set_num_threads(threads)
    cfg = _generator_config(preset, ngf, n_blocks)
    cfg.data.load_size, cfg.data.crop_size = size, size
    model = build_model(cfg.model)
    tensors = {f"{n}.{k}": v.half() for n, m in model.inference_modules().items() for k, v in m.state_dict().items()}
    saved = SavedModelConfig(run=cfg, name="plan", source="ours",
                             inference=InferenceSettings(scale=size / TILE, size=size))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (TILE, TILE, 3), dtype=np.uint8))
    with tempfile.TemporaryDirectory() as tmp:
        write_model_folder(tmp, tensors, saved)
        t0 = time.perf_counter()
        loaded = load_model(tmp, "cpu")
        load_s = time.perf_counter() - t0
        translate_image(loaded, img)  # warm-up (oneDNN primitive creation)
        times, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            out = translate_image(loaded, img)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    assert out.size == img.size
    return {"size": size, "scale": size / TILE, "ngf": ngf, "n_blocks": n_blocks, "threads": threads,
            "load_s": round(load_s, 3), "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3), "cpu_s": round(statistics.median(cpu), 3), "repeats": repeats,
            "load_average": round(os.getloadavg()[0], 2)}


def h200_estimate(rows: list[dict], window_s: float, batch: int, us_per_op: float = 15.0,
                  utilisation: tuple[float, ...] = (0.2, 0.4)) -> dict:
    """Steps (and images) each preset could take in `window_s` of one H200 shared by all six runs with the
    same image budget. Two bounds: the device's arithmetic (all six runs' FLOPs per step at `utilisation`
    of the bf16 peak, the runs taking turns on the GPU) and each process's host overhead (`ops_per_step`
    eager operators at `us_per_op` each, the processes running side by side on 16 cores). A step of all
    six takes the larger of the two."""
    per_image = sum(r["gflop_per_image"] for r in rows)
    host_s = max(r["ops_per_step"] for r in rows) * us_per_op * 1e-6
    out = {"window_s": window_s, "batch": batch, "gflop_per_image_all_six": round(per_image, 1),
           "host_ms_per_step_slowest": round(1e3 * host_s, 1), "us_per_op": us_per_op}
    for u in utilisation:
        device_s = batch * per_image / (H200_BF16_PEAK_TFLOPS * 1e3 * u)
        step_s = max(device_s, host_s)
        out[f"at_{int(u * 100)}pct"] = {"device_ms_per_step_all_six": round(1e3 * device_s, 1),
                                        "ms_per_step": round(1e3 * step_s, 1),
                                        "steps_each": int(window_s / step_s),
                                        "images_each": int(window_s / step_s) * batch}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["sizes", "flops", "cpu-infer", "all"])
    ap.add_argument("--ngf", type=int, default=32)
    ap.add_argument("--n-blocks", type=int, default=6)
    ap.add_argument("--crop", type=int, default=128, help="training crop side (flops)")
    ap.add_argument("--batch", type=int, default=8, help="training batch (flops)")
    ap.add_argument("--lambda-l1-idt", type=float, default=5.0, help="the recipe's L1 identity (CUT family)")
    ap.add_argument("--size", type=int, default=256, help="side the model translates at (cpu-infer)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window-s", type=float, default=420.0, help="training seconds on the H200 (estimate)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    result: dict = {}
    if args.what in ("sizes", "all"):
        result["sizes"] = sizes([24, 32, 40, 48, 64], [6, 8, 9])
        print("ngf blocks | CUT G+F fp16 MiB | CycleGAN G+G_BA fp16 MiB | all six MiB | each ≤ 10 MiB")
        for r in result["sizes"]:
            print(f"{r['ngf']:3d} {r['n_blocks']:2d}     | {r['cut_fp16_mib']:6.2f} ({r['cut_params_m']:.2f} M) "
                  f"| {r['cyclegan_fp16_mib']:6.2f} ({r['cyclegan_params_m']:.2f} M) "
                  f"| {r['all_six_mib']:5.1f} | {r['fits']}")
    if args.what in ("flops", "all"):
        result["flops"] = flops(args.crop, args.batch, args.ngf, args.n_blocks, args.lambda_l1_idt)
        for r in result["flops"]:
            print(f"{r['preset']:14s} crop {r['crop']} batch {r['batch']}: {r['gflop_per_step']:8.1f} GFLOP/step "
                  f"{r['gflop_per_image']:7.1f} GFLOP/image, {r['ops_per_step']} operators/step")
        result["h200"] = h200_estimate(result["flops"], args.window_s, args.batch)
        print("H200 estimate:", json.dumps(result["h200"]))
    if args.what in ("cpu-infer", "all"):
        result["cpu_infer"] = cpu_infer(args.size, args.ngf, args.n_blocks, args.threads, args.repeats)
        print("CPU translate of a 512 px tile:", json.dumps(result["cpu_infer"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
