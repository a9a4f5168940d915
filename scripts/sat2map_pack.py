"""Issue 13: build the compact sat2map training pack that travels to the GPU machine.

    python scripts/sat2map_pack.py                                    # packs/sat2map_256 (the GPU recipe)
    python scripts/sat2map_pack.py --out packs/sat2map_smoke --size 64 --limit 24   # a tiny pack for SMOKE=1
    python scripts/sat2map_pack.py --measure 100                      # quality vs size of the encodings, no pack

The pack holds the training tiles of both domains (all of trainA/ and trainB/ minus the held-out
split, weights/sat2map_val.txt), resized once to the training size exactly as the trainer's
loader resizes them (`cutcore.imageio.resize_square`: PIL bicubic), so `train --load-size SIZE` reads
them unchanged. Layout: OUT/trainA/N.jpg, OUT/trainB/N.jpg (same names), OUT/heldout/testA|testB/N.jpg
(the held-out pairs as they are, for the held-out curve during training), OUT/PACK.json (how it was
made, the source tile side for the inference scale, sizes).

Encodings (measured on 103 training tiles at 256 px, `--measure`; see GPU_NOTES.md):
- satellite: JPEG quality 85 (4:2:0), ~22.7 MiB for the 1,226 tiles, PSNR 38.6 dB against the
  lossless resize (q90: 27.6 MiB, 40.3 dB). The source tiles are ~39 KB JPEGs at 512 px already.
- maps: JPEG quality 90 with full-resolution chroma (4:4:4), ~26 MiB. Lossless PNG would be the
  natural choice for flat colours, but these maps are JPEGs at the source: their noise and the
  resize's edges leave ~2 distinct colours per 3 pixels, and PNG takes 98 MiB (WebP lossless
  70 MiB), more than the 64 MiB the GPU call carries. 4:4:4 JPEG keeps 89.5% of pixels within the
  accuracy metric's 5 levels of the lossless resize (99.3% in flat areas) where default 4:2:0
  JPEG at the same quality keeps 71.2%, and PNG quantised to 64 colours 78.6%.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cutcore.imageio import list_images, load_rgb, resize_square  # noqa: E402  (the trainer's own resize)
from cutcore.metrics.paired import pixel_accuracy, resize_rgb, rmse  # noqa: E402

MiB = 2**20
CARRY_LIMIT = 64 * MiB  # what one device call carries: tracked files, untracked files, carried paths
SAT = {"format": "JPEG", "quality": 85, "subsampling": 2}  # 4:2:0
MAP = {"format": "JPEG", "quality": 90, "subsampling": 0}  # 4:4:4: chroma at full resolution


def tile_number(name: str) -> tuple[int, str]:
    stem = Path(name).stem
    return (int(stem), name) if stem.isdigit() else (1 << 30, name)


def training_names(data: Path, split: Path) -> tuple[list[str], set[str]]:
    """File names in both trainA/ and trainB/, minus the held-out split (sorted by tile number)."""
    held = {Path(ln.strip()).name for ln in split.read_text().splitlines() if ln.strip()}
    a = {p.name for p in list_images(data / "trainA")}
    b = {p.name for p in list_images(data / "trainB")}
    return sorted((a & b) - held, key=tile_number), held


def encode(img: Image.Image, spec: dict) -> bytes:
    buf = io.BytesIO()
    kw = {k: v for k, v in spec.items() if k != "format"}
    img.save(buf, spec["format"], optimize=True, **kw)
    return buf.getvalue()


def repo_bytes() -> int:
    """Bytes of the tracked files (what travels besides the pack, untracked files aside)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in files if f and (ROOT / f.decode()).is_file())


def untracked_bytes() -> int:
    """Bytes of untracked files git does not ignore (they travel too)."""
    out = subprocess.run(["git", "ls-files", "-z", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         check=True).stdout.split(b"\0")
    return sum((ROOT / f.decode()).stat().st_size for f in out if f and (ROOT / f.decode()).is_file())


def _shown(path: Path) -> str:
    """`path` relative to the repository when it can be (the pack travels; absolute paths mean nothing there)."""
    return os.path.relpath(path.resolve(), ROOT)


def build(data: Path, split: Path, out: Path, size: int, limit: int | None, workers: int) -> dict:
    names, held = training_names(data, split)
    if limit:
        names = names[:limit]
    sides = {load_rgb(data / "trainA" / names[0]).size}
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for d in ("trainA", "trainB"):
        (tmp / d).mkdir(parents=True)

    def one(name: str) -> tuple[int, int]:
        stem = Path(name).stem
        sat = load_rgb(data / "trainA" / name)
        sides.add(sat.size)
        sat_bytes = encode(resize_square(sat, size), SAT)
        map_bytes = encode(resize_square(load_rgb(data / "trainB" / name), size), MAP)
        (tmp / "trainA" / f"{stem}.jpg").write_bytes(sat_bytes)
        (tmp / "trainB" / f"{stem}.jpg").write_bytes(map_bytes)
        return len(sat_bytes), len(map_bytes)

    t0 = time.time()
    with ThreadPoolExecutor(workers) as pool:
        sizes = list(pool.map(one, names))
    # The held-out tiles as they are, for the held-out curve during training (`train --eval-data OUT/heldout`
    # scores every testA/testB pair exactly as `evaluate` scores the originals at home).
    heldout = sorted((n for n in held if (data / "trainA" / n).is_file() and (data / "trainB" / n).is_file()),
                     key=tile_number)[:limit]
    heldout_bytes = 0
    for domain, folder in (("trainA", "testA"), ("trainB", "testB")):
        (tmp / "heldout" / folder).mkdir(parents=True)
        for name in heldout:
            shutil.copyfile(data / domain / name, tmp / "heldout" / folder / name)
            heldout_bytes += (data / domain / name).stat().st_size
    if len(sides) != 1:
        raise ValueError(f"source tiles of several sizes: {sorted(sides)}; the inference scale needs one")
    (side_w, side_h), = sides
    sat_total, map_total = sum(s for s, _ in sizes), sum(m for _, m in sizes)
    info = {
        "what": "sat2map training pack (issue 13): training tiles minus the held-out split, resized once as "
                "cutcore.imageio.resize_square does (PIL bicubic)",
        "source": _shown(data), "held_out_split": _shown(split), "held_out": len(held), "tiles": len(names),
        "source_side": side_w, "size": size, "satellite": SAT, "maps": MAP,
        "heldout": len(heldout),
        "bytes": {"trainA": sat_total, "trainB": map_total, "heldout": heldout_bytes,
                  "total": sat_total + map_total + heldout_bytes},
        "seconds": round(time.time() - t0, 1),
    }
    (tmp / "PACK.json").write_text(json.dumps(info, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return info


def measure(data: Path, split: Path, size: int, n: int) -> list[dict]:
    """Bytes (extrapolated to every training tile) and fidelity of candidate encodings on n tiles."""
    names, _ = training_names(data, split)
    sample = names[:: max(1, len(names) // n)][:n]
    scale = len(names) / len(sample)
    sat_specs = {f"sat JPEG q{q}": {"format": "JPEG", "quality": q, "subsampling": 2} for q in (75, 85, 90, 95)}
    map_specs = {
        "map PNG lossless": {"format": "PNG"},
        "map WebP lossless": {"format": "WEBP", "lossless": True, "quality": 100, "method": 6},
        "map JPEG q90 4:2:0": {"format": "JPEG", "quality": 90, "subsampling": 2},
        "map JPEG q95 4:2:0": {"format": "JPEG", "quality": 95, "subsampling": 2},
        "map JPEG q90 4:4:4": {"format": "JPEG", "quality": 90, "subsampling": 0},
        "map JPEG q95 4:4:4": {"format": "JPEG", "quality": 95, "subsampling": 0},
        "map PNG 64 colours": {"format": "PNG", "colors": 64},
    }
    acc: dict[str, dict] = {k: {"bytes": 0, "psnr": []} for k in sat_specs}
    acc.update({k: {"bytes": 0, "acc": [], "rmse": [], "acc_target": []} for k in map_specs})
    for name in sample:
        sat = resize_square(load_rgb(data / "trainA" / name), size)
        ref = np.asarray(sat, dtype=np.float64)
        for key, spec in sat_specs.items():
            blob = encode(sat, spec)
            dec = np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"), dtype=np.float64)
            acc[key]["bytes"] += len(blob)
            acc[key]["psnr"].append(10 * np.log10(255**2 / max(1e-9, ((ref - dec) ** 2).mean())))
        original = load_rgb(data / "trainB" / name)
        mp = resize_square(original, size)
        lossless, target = resize_rgb(mp, 256), resize_rgb(original, 256)  # at the metric's 256²
        for key, spec in map_specs.items():
            img = mp.quantize(colors=spec["colors"], dither=Image.Dither.NONE) if "colors" in spec else mp
            blob = encode(img, {k: v for k, v in spec.items() if k != "colors"})
            dec = resize_rgb(Image.open(io.BytesIO(blob)).convert("RGB"), 256)
            acc[key]["bytes"] += len(blob)
            acc[key]["acc"].append(pixel_accuracy(dec, lossless))
            acc[key]["rmse"].append(rmse(dec, lossless))
            acc[key]["acc_target"].append(pixel_accuracy(dec, target))
    rows = []
    for key, v in acc.items():
        row = {"encoding": key, "mib_all_tiles": round(v["bytes"] * scale / MiB, 1)}
        if "psnr" in v:
            row["psnr_db"] = round(float(np.mean(v["psnr"])), 2)
        else:
            row.update(acc_vs_lossless=round(100 * float(np.mean(v["acc"])), 1),
                       rmse_vs_lossless=round(float(np.mean(v["rmse"])), 2),
                       acc_vs_eval_target=round(100 * float(np.mean(v["acc_target"])), 1))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sat2map")
    ap.add_argument("--split", type=Path, default=ROOT / "weights" / "sat2map_val.txt")
    ap.add_argument("--out", type=Path, default=ROOT / "packs" / "sat2map_256")
    ap.add_argument("--size", type=int, default=256, help="training (load) size the tiles are resized to")
    ap.add_argument("--limit", type=int, help="only the first N training tiles and held-out pairs (a smoke pack)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--measure", type=int, metavar="N", help="compare encodings on N tiles instead of building")
    args = ap.parse_args(argv)

    if args.measure:
        for row in measure(args.data, args.split, args.size, args.measure):
            print(json.dumps(row))
        return 0
    info = build(args.data, args.split, args.out, args.size, args.limit, args.workers)
    b = info["bytes"]
    repo, untracked = repo_bytes(), untracked_bytes()
    total = b["total"] + repo + untracked
    print(f"{args.out}: {info['tiles']} tiles at {info['size']} px (held out: {info['held_out']}): "
          f"trainA {b['trainA'] / MiB:.1f} MiB + trainB {b['trainB'] / MiB:.1f} MiB + the {info['heldout']} held-out "
          f"pairs as they are {b['heldout'] / MiB:.1f} MiB = {b['total'] / MiB:.1f} MiB")
    print(f"with the tracked files ({repo / MiB:.1f} MiB) and untracked ones ({untracked / MiB:.1f} MiB) a device "
          f"call carries {total / MiB:.1f} MiB of its {CARRY_LIMIT // MiB} MiB")
    if total > CARRY_LIMIT:
        print("error: over the carry limit; lower the qualities or the size", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
