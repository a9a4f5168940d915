"""Results tab: the evaluation report (cutcore.report) over our models and a benchmark JSON."""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from cutcore.report import build_report, curves_path, plot_bars, speed_table
from cutcore.results import METRICS, plot_curves

from . import models


def no_results() -> str:
    """The empty state, with the folders this server reads (CUTCORE_WEIGHTS, CUTCORE_BENCH)."""
    weights, bench = models.weights_dir(), bench_path()
    model = shlex.quote(str(weights / "MODEL"))
    speed = (f"`{bench}` gives no speed table (see the notes)" if bench.is_file()
             else f"there is no benchmark file `{bench}`")
    return (
        "### No results yet\n\n"
        f"None of the models in `{weights}` has a `metrics.json`, and {speed}. Evaluate a model (MODEL: its "
        "folder) on a paired test set with\n\n"
        f"```bash\npython -m cutcore evaluate --model {model} --data DATA --out {model}\n```\n\n"
        f"and put speed benchmarks in `{bench}` (`python -m cutcore.bench --out DIR` writes one; a hand-written "
        f"list of `{{preset, sec_per_iter, peak_mem_mib}}` works too), GPU ones in `{gpu_bench_path()}`."
    )


def unscored_note() -> str:
    """Above the speed tables while no model has held-out metrics: why there is no method table."""
    model = shlex.quote(str(models.weights_dir() / "MODEL"))
    return ("### Methods\n\n"
            f"No model in `{models.weights_dir()}` has held-out metrics (`metrics.json`) yet, so there is no method "
            f"table: `python -m cutcore evaluate --model {model} --data DATA --out {model}` scores one on a paired "
            "test set. Models trained in the **SinCUT live** tab are judged by their style yardsticks instead, "
            "shown in their model cards.")


def bench_path() -> Path:
    env = os.environ.get("CUTCORE_BENCH")
    return Path(env).expanduser() if env else models.weights_dir() / "bench.json"


def gpu_bench_path() -> Path:
    """The GPU speed table (`python -m cutcore.bench --device cuda`, ours beside the reference)."""
    return models.weights_dir() / "bench_gpu.json"


def speed_tables(notes: list[str]) -> dict[Path, tuple[str, str]]:
    """{benchmark file: (title, its own table)}, CPU first; files that give no table are left out."""
    paths = [p for p in (bench_path(), gpu_bench_path()) if p.is_file()]
    return {p: table for p in paths if (table := speed_table(p, notes))}


def speed_markdown(tables: dict[Path, tuple[str, str]]) -> str:
    """The tables, each headed by its device, torch version and date."""
    if not tables:
        return ""
    return "\n\n".join(["### Speed", *(f"**{title}**\n\n{table}" for title, table in tables.values())])


@dataclass
class Results:
    markdown: str
    plots: list[tuple[str, str]] = field(default_factory=list)  # (png path, caption)
    notes: list[str] = field(default_factory=list)
    empty: bool = True


def _drawn(path: Path, draw) -> bool:
    """Whether `path` holds its picture, drawing it first if not (to a temporary name, then renamed: a
    page loading at the same moment never serves half a PNG)."""
    if not path.is_file():
        tmp = path.with_name(f".{uuid.uuid4().hex}{path.suffix}")
        draw(tmp)
        if tmp.is_file():
            os.replace(tmp, path)
    return path.is_file()


def build_results() -> Results:
    reg = models.scan()
    runs = [e.path for e in reg.entries if e.source in ("ours", "hub")]
    bench = bench_path()
    report = build_report(runs, bench if bench.is_file() else None)
    tables = speed_tables(report.notes)
    speed = speed_markdown(tables)
    # No model scored: the method table would only repeat bench.json's own speed table beside dashes, so the
    # speed tables appear alone; it stays for a hand-written bench list, which has no table of its own.
    scored = any(r.values.keys() & set(METRICS) for r in report.rows)
    if not scored and (bench in tables or not any(r.values for r in report.rows)):
        if not speed:
            return Results(no_results(), notes=report.notes)
        return Results(f"{unscored_note()}\n\n{speed}", notes=report.notes, empty=False)
    curves = {r.method: r.curve for r in report.rows if r.curve}
    # Named by what they show: every page load builds this tab, and the same results draw into the same folder
    # instead of a new one each time.
    key = hashlib.sha1(json.dumps([report.markdown, report.baseline, curves], default=str).encode()).hexdigest()
    out = Path(tempfile.gettempdir()) / "cutcore-demo" / f"results-{key[:16]}"
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    bars = out / "metrics.png"
    if _drawn(bars, lambda path: plot_bars(report.rows, path, report.baseline)):
        plots.append((str(bars), "metrics per method"))
    if curves and _drawn(curves_path(bars), lambda path: plot_curves(curves, path)):
        plots.append((str(curves_path(bars)), "metrics during training"))
    sources = f"{len(runs)} model folder(s) under `{models.weights_dir()}`" + (
        f" and `{bench.name}`" if bench.is_file() else "")
    markdown = f"{report.markdown}\n\n_From {sources}._" + (f"\n\n{speed}" if speed else "")
    return Results(markdown, plots, report.notes, False)


def build(ctx) -> None:
    def render():
        res = build_results()
        notes = "\n".join(f"- {n}" for n in res.notes) or "_none_"
        images = [gr.update(value=path, label=label, visible=True) for path, label in res.plots[:2]]
        images += [gr.update(value=None, visible=False)] * (2 - len(images))
        return res.markdown, *images, notes

    with gr.Row():
        refresh = gr.Button("↻ Refresh", size="sm", scale=0, elem_id="results-refresh")
    table = gr.Markdown(elem_id="results-table")
    bars = gr.Image(label="metrics", interactive=False, visible=False, elem_id="results-bars")
    curves = gr.Image(label="curves", interactive=False, visible=False, elem_id="results-curves")
    with gr.Accordion("Notes (missing files, skipped folders)", open=False):
        notes = gr.Markdown()
    refresh.click(render, None, [table, bars, curves, notes])
    ctx.on_load.append((render, None, [table, bars, curves, notes]))
