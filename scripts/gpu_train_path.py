"""Issue 12, the GPU training path: correctness, host synchronisations, throughput. Plain Python, one JSON.

    python scripts/gpu_train_path.py --out $OUT/train_path.json [--data tmp/sat2map300] [--smoke]

1. equal_batches    DeviceImages on the GPU cuts the DataLoader's batches (max |difference|, expected 0)
2. host_syncs       steps 3-8 of cut/fastcut/cyclegan under torch.cuda.set_sync_debug_mode("warn"):
                    every synchronising call inside a non-logging step, with the Python line it came from
3. throughput       sec/step of preset cut at 286/256 (bf16 auto), batch 1 and 8: data on the device vs the
                    DataLoader (2 and 8 workers), channels_last on vs off; cuDNN autotuning on throughout
4. time_budget      a 45 s --time-budget run with data on the device: steps laid, ended on time
--smoke runs tiny sizes on the CPU (checks the script, measures nothing).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(os.environ.get("CUTCORE_ROOT") or Path(__file__).resolve().parents[1])
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402
from helpers import make_unpaired, tiny_run_config  # noqa: E402

from cutcore.config import DataConfig, preset  # noqa: E402
from cutcore.data import DeviceImages, StepSampler, UnpairedDataset  # noqa: E402
from cutcore.loop import TrainingLoop  # noqa: E402
from cutcore.runlog import read_log  # noqa: E402
from cutcore.train import Trainer  # noqa: E402


def equal_batches(device, work, smoke):
    root = make_unpaired(work / "eq", n_a=6, n_b=5, size=(72, 72))
    ds = UnpairedDataset(DataConfig(root=str(root), load_size=64, crop_size=48), seed=3)
    images = DeviceImages(ds, device)
    loader = iter(torch.utils.data.DataLoader(ds, batch_size=3, sampler=StepSampler(0, 3)))
    cut = images.batches(0, 3)
    worst = 0.0
    for _ in range(8):
        (la, lb), (da, db) = next(loader), next(cut)
        assert da.device.type == torch.device(device).type and da.dtype == torch.float32
        worst = max(worst, (la.to(device) - da).abs().max().item(), (lb.to(device) - db).abs().max().item())
    assert worst == 0.0, worst
    return {"max_abs_difference": worst}


def host_syncs(device, work, smoke):
    """Synchronising calls in steps that neither log nor save (CUDA only: the debug mode is CUDA's)."""
    if torch.device(device).type != "cuda":
        return {"skipped": "set_sync_debug_mode is CUDA's"}
    root = make_unpaired(work / "sync", n_a=8, n_b=8, size=(96, 96))
    out = {}
    for name in ("cut", "fastcut", "cyclegan"):
        for data in ("on", "off"):
            cfg = tiny_run_config(name, root, ngf=16, ndf=16, load=80, crop=64, max_steps=None)
            cfg.runtime.device, cfg.train.precision, cfg.runtime.data_on_device = device, "auto", data
            cfg.runtime.num_workers = 2
            tr = Trainer(cfg, work / f"sync_{name}_{data}")
            if tr.device_images is not None:
                batches = tr.device_images.batches(0, 2)
            else:
                batches = iter(torch.utils.data.DataLoader(tr.dataset, batch_size=2, sampler=StepSampler(0, 2),
                                                           num_workers=2, pin_memory=True))
            loop = TrainingLoop(tr.model, batches, tr.lr_at, 2, seed=0, device=tr.device,
                                channels_last=tr.channels_last)
            loop.run()  # warm-up: allocation, autotuning
            torch.cuda.synchronize()
            loop.total = 8
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    loop.run()
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            places: dict[str, int] = {}
            for w in caught:
                if "synchroniz" in str(w.message).lower():
                    key = f"{Path(w.filename).name}:{w.lineno}"
                    places[key] = places.get(key, 0) + 1
            out[f"{name}/data_{data}"] = {"syncs_in_6_steps": sum(places.values()), "where": places}
    return out


def _run(cfg, work, tag):
    t0 = time.perf_counter()
    tr = Trainer(cfg, work / tag)
    setup = time.perf_counter() - t0
    tr.fit()
    log = read_log(work / tag / "log.jsonl")
    warm = [r["sec_per_iter"] for r in log if r["step"] > cfg.runtime.log_every * 2]  # after warm-up records
    return tr, setup, log, warm


def throughput(device, work, data, smoke):
    steps, log_every = (6, 2) if smoke else (60, 10)
    load, crop = (72, 64) if smoke else (286, 256)
    if data is None:
        data = make_unpaired(work / "tp", n_a=300, n_b=300, size=(512, 512)) if not smoke else \
            make_unpaired(work / "tp", n_a=8, n_b=8, size=(96, 96))
    rows = []
    batches = (1, 2) if smoke else (1, 8)
    for batch in batches:
        for data_path, workers in (("on", 0), ("off", 2), ("off", 8)):
            for cl in ("auto", "off"):
                cfg = preset("cut")
                cfg.data.root, cfg.data.load_size, cfg.data.crop_size = str(data), load, crop
                if smoke:
                    cfg.model.generator.ngf, cfg.model.generator.n_blocks, cfg.model.discriminator.ndf = 4, 2, 4
                    cfg.model.nce_layers = [0, 4, 8, 12]
                    cfg.model.num_patches, cfg.model.head_dim = 16, 16
                cfg.train.batch_size = batch
                r = cfg.runtime
                r.device, r.max_steps, r.log_every = device, steps, log_every
                r.data_on_device, r.num_workers = data_path, workers
                r.channels_last, r.sample_every, r.save_every = cl, 10**9, 10**9
                tag = f"tp_b{batch}_{data_path}{workers}_cl{cl}"
                try:
                    tr, setup, log, warm = _run(cfg, work, tag)
                    sec = statistics.median(warm) if warm else None
                    rows.append({"batch": batch, "data": data_path, "workers": workers,
                                 "channels_last": tr.channels_last,
                                 "precision": tr.cfg.train.precision, "sec_per_step": sec,
                                 "images_per_s": batch / sec if sec else None, "setup_s": round(setup, 2),
                                 "per_record": [round(r_["sec_per_iter"], 5) for r_ in log]})
                except Exception as e:  # noqa: BLE001  (one failed row must not lose the others)
                    rows.append({"batch": batch, "data": data_path, "workers": workers, "channels_last": cl,
                                 "error": f"{type(e).__name__}: {e}"})
                print(json.dumps(rows[-1]), flush=True)
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    return {"load": load, "crop": crop, "steps": steps, "data": str(data), "rows": rows,
            "peak_allocated_gib": (round(torch.cuda.max_memory_allocated() / 2**30, 2)
                                   if device.startswith("cuda") else None)}


def time_budget(device, work, data, smoke):
    root = data or make_unpaired(work / "tb", n_a=50, n_b=50, size=(512, 512) if not smoke else (96, 96))
    cfg = preset("fastcut")
    cfg.data.root = str(root)
    if smoke:
        cfg.data.load_size, cfg.data.crop_size = 72, 64
        cfg.model.generator.ngf, cfg.model.generator.n_blocks, cfg.model.discriminator.ndf = 4, 2, 4
        cfg.model.nce_layers, cfg.model.num_patches, cfg.model.head_dim = [0, 4, 8, 12], 16, 16
    r = cfg.runtime
    r.device, r.time_budget = device, "20s" if smoke else "45s"
    r.log_every, r.sample_every, r.save_every = 10, 10**9, 10**9
    t0 = time.perf_counter()
    tr = Trainer(cfg, work / "budget")
    ckpt = tr.fit()
    wall = time.perf_counter() - t0
    return {"wall_s": round(wall, 1), "schedule_steps": tr.schedule_steps, "final_step": tr.step,
            "checkpoint": ckpt.name, "data_note": tr.data_note}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--data", type=Path, help="a CycleGAN-layout folder (e.g. a sat2map subset); default synthetic")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--only", help="comma-separated check names")
    args = p.parse_args()
    device = "cpu" if args.smoke else args.device
    work = Path(tempfile.mkdtemp())
    checks = {"equal_batches": lambda: equal_batches(device, work, args.smoke),
              "host_syncs": lambda: host_syncs(device, work, args.smoke),
              "throughput": lambda: throughput(device, work, args.data, args.smoke),
              "time_budget": lambda: time_budget(device, work, args.data, args.smoke)}
    wanted = args.only.split(",") if args.only else list(checks)
    result = {"torch": torch.__version__, "device": device,
              "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None}
    ok = True
    for name in wanted:
        t0 = time.perf_counter()
        try:
            result[name] = {"ok": True, **checks[name]()}
        except Exception:  # noqa: BLE001
            ok = False
            result[name] = {"ok": False, "error": traceback.format_exc()[-3000:]}
        result[name]["seconds"] = round(time.perf_counter() - t0, 1)
        print(name, json.dumps(result[name])[:2000], flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
