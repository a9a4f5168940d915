"""CUDA checks for issue 12 that need no pytest (the GPU machine has none): plain asserts, one JSON.

    python scripts/gpu_checks.py --out checks.json [--device cuda]
    python scripts/gpu_checks.py --env --out env.json        # the machine: GPU, driver, versions

Each check records ok/detail; the exit status is 0 only when every check passed. Imports stay
inside the checks, so nothing here needs gradio, pytorch-fid or huggingface_hub.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


@check
def environment(device: str) -> dict:
    import torch

    from cutcore.hardware import bf16_support, resolve_precision

    dev = torch.device(device)
    info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "cuda": torch.version.cuda}
    if dev.type == "cuda":
        assert torch.cuda.is_available(), "CUDA is not available"
        info.update(name=torch.cuda.get_device_name(), capability=list(torch.cuda.get_device_capability()),
                    memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    native, why = bf16_support(dev)
    info.update(native_bf16=native, why=why, auto=list(resolve_precision("auto", dev)))
    if dev.type == "cuda" and tuple(info["capability"]) >= (8, 0):
        assert native and info["auto"][0] == "bf16", f"an sm_{info['capability']} GPU should resolve to bf16: {why}"
    return info


@check
def patchnce_fp32_under_autocast(device: str) -> dict:
    """New code: logits equal fp32; the old bf16 similarities (reproduced inline) are measurably off."""
    import torch

    from cutcore.config import NCEConfig
    from cutcore.losses import nce_logits, patch_nce_loss

    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    n, dim = 2 * 256, 256  # CUT: 256 patches per image, 256-d heads
    q = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1).to(dev)
    k = torch.nn.functional.normalize(
        q.cpu() + 0.35 * torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1), dim=1
    ).to(dev)
    out = {}
    for name, cfg in (("ce", NCEConfig()), ("put", NCEConfig(prune_k=5))):
        ref = nce_logits(q, k, 2, cfg)
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            got = nce_logits(q, k, 2, cfg)
            loss = patch_nce_loss(q, k, 2, cfg)
            # What the old code computed: the same similarities as a bf16 bmm under autocast.
            old = torch.bmm(q.view(2, -1, dim), k.view(2, -1, dim).transpose(1, 2)) / cfg.temperature
        exact = torch.bmm(q.view(2, -1, dim), k.view(2, -1, dim).transpose(1, 2)) / cfg.temperature
        err = (got - ref).abs().max().item()
        out[name] = {"max_logit_error": err, "loss_error": (loss - patch_nce_loss(q, k, 2, cfg)).abs().max().item(),
                     "old_bf16_max_logit_error": (old.float() - exact).abs().max().item(), "dtype": str(got.dtype)}
        assert got.dtype == torch.float32 and err < 1e-4, out[name]
    # PUT near tie: 0.9001 vs 0.9030 are one bf16 value; k = 1 must keep 0.9030.
    sims = torch.tensor([0.9001, 0.9030])
    qt = torch.zeros(3, 2)
    qt[:, 0] = 1.0
    kt = torch.stack([torch.tensor([1.0, 0.0]), *[torch.stack([s, (1 - s * s).sqrt()]) for s in sims]])
    with torch.autocast(dev.type, dtype=torch.bfloat16):
        tie = nce_logits(qt.to(dev), kt.to(dev), 1, NCEConfig(prune_k=1))
    out["put_near_tie_kept"] = tie[0, 1].item() * 0.07
    assert abs(out["put_near_tie_kept"] - 0.9030) < 1e-5, out["put_near_tie_kept"]
    return out


def _steps(preset_name: str, device: str, precision: str, size: int, batch: int, steps: int) -> dict:
    import torch

    from cutcore.bench import _train_step

    dev = torch.device(device)
    torch.manual_seed(0)
    if preset_name.startswith("sincut"):
        from cutcore.sincut.config import sincut_preset
        from cutcore.sincut.model import SinCUTModel

        cfg = sincut_preset(preset_name)
        model = SinCUTModel(cfg.model).to(dev)
        size = cfg.data.crop_size
    else:
        from cutcore.config import preset
        from cutcore.models import build_model

        cfg = preset(preset_name)
        model = build_model(cfg.model).to(dev)
    a, b = (torch.randn(batch, 3, size, size, device=dev) for _ in range(2))
    assert steps >= 2, "the first step is not timed"
    step = _train_step(model, cfg.train, a, b, precision)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    logs = step()  # the first step allocates and picks kernels: not timed
    sync()
    t = time.perf_counter()
    for _ in range(steps - 1):
        logs = step()
    sync()
    losses = {key: float(v) for key, v in logs.items()}
    assert all(math.isfinite(v) for v in losses.values()), losses
    return {"losses": losses, "sec_per_step_after_the_first": (time.perf_counter() - t) / max(1, steps - 1)}


@check
def training_steps_fp32_and_bf16(device: str) -> dict:
    out = {}
    for name in ("cut", "put", "cyclegan", "sincut-cpu"):
        for precision in ("fp32", "bf16"):
            out[f"{name}/{precision}"] = _steps(name, device, precision, 64, 2, 3)
    return out


@check
def bench_worker_row(device: str) -> dict:
    from cutcore.bench import _worker

    spec = {"device": device, "precision": "bf16", "iters": 3, "channels_last": False, "impl": "ours",
            "kind": "inference", "preset": "generator", "size": 256, "batch_size": 4}
    row = _worker(spec)
    for key in ("sec_per_iter", "images_per_s", "peak_mem_mib", "device_name", "torch_version", "gflops"):
        assert row.get(key) is not None, key
    if device.startswith("cuda"):
        assert row["peak_mem_kind"] == "cuda_max_allocated" and row["peak_reserved_mib"] >= row["peak_mem_mib"] > 0
    return row


@check
def gemm_ceilings(device: str) -> dict:
    from cutcore.bench import gemm_peak_gflops

    out = {dtype: gemm_peak_gflops(device, dtype=dtype) for dtype in ("fp32", "bf16")}
    if device.startswith("cuda"):
        import torch

        before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            out["tf32"] = gemm_peak_gflops(device, dtype="fp32")
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
    return out


def environment_report(device: str) -> dict:
    import subprocess

    import torch

    from cutcore.hardware import resolve_precision

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cuda_available": torch.cuda.is_available(),
            "precision_auto": resolve_precision("auto", device)}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                    sms=p.multi_processor_count)
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit,mig.mode.current",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:  # noqa: BLE001  (no nvidia-smi: say so)
        info["nvidia_smi"] = f"unavailable: {e}"
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--only", help="comma-separated check names")
    p.add_argument("--env", action="store_true", help="only describe the machine")
    args = p.parse_args(argv)
    if args.env:
        args.out.write_text(json.dumps(environment_report(args.device), indent=2, default=str))
        print(args.out.read_text())
        return 0
    results = {}
    for fn in CHECKS:
        if args.only and fn.__name__ not in args.only.split(","):
            continue
        t = time.perf_counter()
        try:
            detail, ok = fn(args.device), True
        except Exception as e:  # noqa: BLE001  (every failure is recorded, the other checks still run)
            detail, ok = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}, False
        results[fn.__name__] = {"ok": ok, "seconds": round(time.perf_counter() - t, 2), "detail": detail}
        print(f"{'PASS' if ok else 'FAIL'} {fn.__name__} ({results[fn.__name__]['seconds']} s)", flush=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))  # partial results survive a timeout
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
