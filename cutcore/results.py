"""How evaluation results are shown: metric labels and formats, tables, curves, preview grids.

Shared by `evaluate`, `report`, `export`'s model cards and the app's Results tab; pure
presentation (scores are computed in `cutcore.evaluate`).
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .checkpoint import write_bytes
from .imageio import resize_square

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRICS = ("accuracy", "rmse", "swd", "fid")  # the column order of the thesis's Table 5.1
LABELS = {"accuracy": "accuracy ↑", "rmse": "RMSE ↓", "swd": "SWD ↓", "fid": "FID ↓"}
PLOT_LABELS = {**LABELS, "accuracy": "accuracy (%) ↑"}  # plots show accuracy in %, as the tables do


def numbers(obj: object, keys: Sequence[str]) -> dict[str, float]:
    """The entries of `keys` that are numbers in the dict `obj` (parsed JSON: bools, strings, nulls left out)."""
    if not isinstance(obj, dict):
        return {}
    return {k: float(obj[k]) for k in keys if isinstance(obj.get(k), (int, float)) and not isinstance(obj[k], bool)}


def metric_values(doc: object) -> dict[str, float]:
    """The metrics of a parsed metrics.json: nested under "metrics" (evaluate --out, export) or flat."""
    return numbers(doc.get("metrics", doc) if isinstance(doc, dict) else None, METRICS)


def format_metric(name: str, value: float) -> str:
    return f"{plotted(name, value):.1f}%" if name == "accuracy" else f"{value:.2f}"


def plotted(name: str, value: float) -> float:
    """The value as tables and plots show it: accuracy in %, the rest as they are."""
    return 100 * value if name == "accuracy" else value


def metrics_table(values: dict[str, float]) -> str:
    rows = [f"| {LABELS[m]} | {format_metric(m, v)} |" for m, v in values.items()]
    return "\n".join(["| metric | value |", "|---|---:|", *rows])


def colour_table(by_colour: list[dict]) -> str:
    """`metrics.colour_breakdown` rows as markdown: per map colour, its share, the accuracy there, what is painted."""
    def rgb(c) -> str:
        r, g, b = (round(v) for v in c)
        return f"#{r:02x}{g:02x}{b:02x} ({r}, {g}, {b})"

    rows = [f"| {rgb(r['colour'])} | {100 * r['share']:.1f}% | {100 * r['accuracy']:.1f}% | {rgb(r['predicted'])} |"
            for r in by_colour]
    return "\n".join(["| map colour (targets' most common) | share of pixels | accuracy there | painted there "
                      "(mean) |", "|---|---:|---:|---|", *rows])


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 100) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # Agg without pyplot: no global backend switch, no GUI, thread-safe
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    write_bytes(path, buf.getvalue())


def plot_curves(curves: dict[str, list[dict]], path: str | os.PathLike) -> None:
    """One panel per metric: value against epoch, one line per labelled curve of records."""
    from matplotlib.figure import Figure

    names = [m for m in METRICS if any(m in r for records in curves.values() for r in records)]
    if not names:
        return
    fig = Figure(figsize=(3.6 * len(names), 3.0), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        for label, records in curves.items():
            # Keyed by epoch: a run resumed from before its last evaluation logs an epoch again; the latest wins.
            by_epoch = {r["epoch"]: r[name] for r in records if "epoch" in r and isinstance(r.get(name), (int, float))}
            if by_epoch:
                epochs = sorted(by_epoch)
                values = [plotted(name, by_epoch[e]) for e in epochs]
                ax.plot(epochs, values, marker="o", markersize=3, label=label or None)
        ax.set(title=PLOT_LABELS[name], xlabel="epoch")
        ax.grid(alpha=0.3)
        if any(curves):
            ax.legend(fontsize="small")
    save_figure(fig, path)


def preview_grid(rows: Sequence[Sequence[Image.Image]], thumb: int = 256) -> Image.Image:
    """Rows of input | translation | target, each image as a thumb² square."""
    def square(img: Image.Image) -> np.ndarray:
        return np.asarray(resize_square(img.convert("RGB"), thumb))

    return Image.fromarray(np.concatenate([np.concatenate([square(i) for i in row], axis=1) for row in rows], axis=0))


def speed_table_markdown(rows: list[dict], peak: float | None, peak_bf16: float | None = None,
                         gemm_n: int = 2048) -> str:
    """A `cutcore.bench` file's rows as one markdown table, ours beside the reference where both were measured, and
    the device's GEMM ceilings."""
    lines = ["| method | impl | kind | size | batch | device | precision | sec/iter | images/s | peak memory | GFLOP/s "
             "| vs reference |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    key = lambda r: (r["preset"], r["kind"], r["size"], r.get("batch_size"))  # noqa: E731
    ref = {key(r): r for r in rows if r["impl"] == "reference" and "error" not in r}
    for r in rows:
        batch = r.get("batch_size") or "—"
        precision = r["precision"] + (" NHWC" if r.get("channels_last") else "")  # layout beside the reference's
        if "error" in r:
            lines.append(f"| {r['preset']} | {r['impl']} | {r['kind']} | {r['size']} | {batch} | {r['device']} | "
                         f"{precision} | failed: {r['error'].splitlines()[-1][:80]} | | | | |")
            continue
        base = ref.get(key(r))
        ratio = ""
        if base and r["impl"] == "ours":
            ratio = (f"{r['sec_per_iter'] / base['sec_per_iter']:.2f}× time, "
                     f"{r['peak_mem_mib'] / base['peak_mem_mib']:.2f}× mem")
        gflops = "—" if r["gflops"] is None else f"{r['gflops']:.0f}"
        if r.get("peak_fraction") is not None:
            gflops += f" ({100 * r['peak_fraction']:.0f}% of {r['precision']} GEMM)"
        ips = "—" if r.get("images_per_s") is None else f"{r['images_per_s']:.2f}"
        lines.append(f"| {r['preset']} | {r['impl']} | {r['kind']} | {r['size']} | {batch} | {r['device']} | "
                     f"{precision} | {r['sec_per_iter']:.3f} s | {ips} | {r['peak_mem_mib'] / 1024:.2f} GiB | {gflops} "
                     f"| {ratio} |")
    if peak:
        lines.append(f"\nfp32 GEMM ceiling of this device: {peak:.0f} GFLOP/s ({gemm_n}² matmul).")
    if peak_bf16:
        lines.append(f"bf16 GEMM ceiling of this device: {peak_bf16:.0f} GFLOP/s ({gemm_n}² matmul).")
    named = next((r for r in rows if "device_name" in r), None)
    if named:
        lines.append(f"Device: {named['device_name']}; torch {named['torch_version']}.")
    return "\n".join(lines)
