"""`python -m cutcore report`: every method's quality and speed in one table (the thesis's Table 5.1).

Quality comes from each run or model folder's metrics.json (written by `evaluate --out`), the
method from its config.json, speed from a benchmark JSON. Anything missing becomes "—" and a
note on stderr, so a partial set of runs still gives a table.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import (
    LABELS,
    METRICS,
    PLOT_LABELS,
    format_metric,
    metric_values,
    numbers,
    plotted,
    save_figure,
    speed_table_markdown,
)

METHODS = ("cut", "cut-focal", "fastcut", "fastcut-focal", "put", "cyclegan")
BENCH = {"sec_per_iter": "sec/iter", "peak_mem_mib": "memory"}  # benchmark key -> column
CONDITIONS = ("size", "device", "precision")  # benchmark keys that qualify the speed columns
MISSING = "—"


@dataclass
class MethodRow:
    method: str
    values: dict[str, float] = field(default_factory=dict)  # metric names and BENCH keys
    curve: list[dict] = field(default_factory=list)  # the run's metrics.jsonl records
    baseline: dict[str, float] = field(default_factory=dict)  # most-common-colour scores on the same pairs
    evaluated_on: tuple = ()  # (data, phase, split, n_images, size, paired_size) of its metrics.json


BASELINE = "every pixel the most common colour"


@dataclass
class Report:
    markdown: str
    rows: list[MethodRow]
    notes: list[str]
    baseline: dict[str, float] = field(default_factory=dict)


def _load_json(path: Path, notes: list[str]) -> Any:
    """The parsed file, or None (with a note when it exists but is unreadable)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        notes.append(f"{path}: unreadable JSON ({e}), ignored")
        return None


def _read_curve(path: Path, notes: list[str]) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if line.strip():  # a line cut short by a crash mid-write: keep the rest
                notes.append(f"{path}:{i}: not JSON, skipped")
    return [r for r in records if isinstance(r, dict)]


def read_run(folder: str | os.PathLike, notes: list[str]) -> MethodRow | None:
    """The method and metrics of a run or model folder; None (with a note) if its method is unknown."""
    folder = Path(folder)
    if not folder.is_dir():
        notes.append(f"{folder}: not a folder, skipped")
        return None
    doc = _load_json(folder / "metrics.json", notes)
    config = _load_json(folder / "config.json", notes)
    doc = doc if isinstance(doc, dict) else {}
    method = doc.get("preset") or (config.get("preset") if isinstance(config, dict) else None)
    if not method:
        notes.append(f"{folder}: no preset in metrics.json or config.json, skipped")
        return None
    if not doc:
        notes.append(f"{folder}: no metrics.json (write one: evaluate --model {folder} --data ... --out {folder})")
    values = metric_values(doc)
    baseline = numbers(doc.get("baseline"), METRICS)  # written by `evaluate --out` and `export --eval-data`
    evaluated_on = tuple(doc.get(k) for k in ("data", "phase", "split", "n_images", "size", "paired_size"))
    return MethodRow(method, values, _read_curve(folder / "metrics.jsonl", notes), baseline, evaluated_on)


def read_bench(path: str | os.PathLike, notes: list[str]) -> tuple[dict[str, dict], str]:
    """{preset: benchmark entry} (the first entry of each preset) and a footnote on its conditions."""
    path = Path(path)
    if not path.is_file():
        notes.append(f"{path}: benchmark file not found; sec/iter and memory left empty")
        return {}, ""
    entries = _load_json(path, notes)
    if not isinstance(entries, list):
        if entries is not None:
            notes.append(f"{path}: expected a JSON list of benchmark entries, ignored")
        return {}, ""
    by_preset: dict[str, dict] = {}
    for entry in entries:
        preset = entry.get("preset") if isinstance(entry, dict) else None
        if preset and not _our_training_row(entry):
            continue  # a side-by-side file's reference, inference and failed rows: not a method's training speed
        if not preset:
            notes.append(f"{path}: entry without a preset skipped: {entry!r}"[:200])
        elif preset in by_preset:  # another precision or size (a speed table's other rows) is no conflict
            first = by_preset[preset]
            if all(first.get(k) == entry.get(k) for k in (*CONDITIONS, "batch_size", "channels_last")):
                notes.append(f"{path}: several entries for {preset}; the first one is shown")
        else:
            by_preset[preset] = entry
    conditions = []
    for key in CONDITIONS:
        seen = sorted({str(e[key]) for e in by_preset.values() if key in e})
        if seen:
            conditions.append(f"{key} {'/'.join(seen)}")
    footnote = f"sec/iter and memory (peak MiB) from {path.name}" + (f": {', '.join(conditions)}" if conditions else "")
    return by_preset, footnote


def _our_training_row(entry: dict) -> bool:
    return entry.get("impl", "ours") == "ours" and entry.get("kind", "train") == "train" and "error" not in entry


def speed_table(path: str | os.PathLike, notes: list[str]) -> tuple[str, str] | None:
    """A `python -m cutcore.bench` file as (title, its own markdown table: every row, ours beside the
    reference where both were measured); None when the file is missing or holds other rows."""
    rows = _load_json(Path(path), notes)
    needed = {"preset", "impl", "kind", "size", "device", "precision"}
    if not rows or not isinstance(rows, list) or not all(isinstance(r, dict) and needed <= r.keys() for r in rows):
        return None  # a hand-written {preset, sec_per_iter, peak_mem_mib} list still fills the method table
    named = next((r for r in rows if "device_name" in r), {})
    title = " · ".join(str(x) for x in (named.get("device_name") or f"device {rows[0]['device']}",
                                         named.get("torch_version") and f"torch {named['torch_version']}",
                                         named.get("date")) if x)
    cuda = str(rows[0]["device"]).startswith("cuda")
    # Files merged from several bench runs: each ceiling from whichever run measured it.
    peaks = (next((r[k] for r in rows if r.get(k)), None) for k in ("gemm_peak_gflops", "gemm_peak_gflops_bf16"))
    try:
        return title, speed_table_markdown(rows, *peaks, 8192 if cuda else 2048)
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as e:  # edited by hand, say
        notes.append(f"{path}: rows the bench table cannot show ({type(e).__name__}: {e}); no speed table")
        return None


def _cell(key: str, value: float | None) -> str:
    if value is None:
        return MISSING
    if key == "sec_per_iter":
        return f"{value:.3f}"
    if key == "peak_mem_mib":
        return f"{value:.0f} MiB"
    return format_metric(key, value)


def markdown_table(rows: Sequence[MethodRow], baseline: dict[str, float] | None = None) -> str:
    keys = [*METRICS, *BENCH]
    header = ["method", *(LABELS[m] for m in METRICS), *BENCH.values()]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(keys)]
    lines += ["| " + " | ".join([r.method, *(_cell(k, r.values.get(k)) for k in keys)]) + " |" for r in rows]
    if baseline:
        lines.append("| " + " | ".join([f"*{BASELINE}*", *(_cell(k, baseline.get(k)) for k in keys)]) + " |")
    return "\n".join(lines)


def common_baseline(rows: Sequence[MethodRow], notes: list[str]) -> dict[str, float]:
    """The baseline scores, when every evaluated run was scored on the same pairs at the same size;
    otherwise none, with a note (the table then compares unlike things anyway)."""
    evaluated = [r for r in rows if r.values.keys() & set(METRICS)]
    if not evaluated or not all(r.baseline for r in evaluated):
        return {}
    if len({r.evaluated_on for r in evaluated}) > 1:
        notes.append("the runs were evaluated on different data, splits or sizes; no baseline row")
        return {}
    return evaluated[0].baseline


def _second_run(earlier: Path, earlier_row: MethodRow, later: Path, later_row: MethodRow) -> tuple[Path, str]:
    """Which of two folders of one method to show, and why: the one with held-out metrics, so that
    `--runs weights/* runs/x` gives the same table in any order; else the later one."""
    if bool(earlier_row.values) != bool(later_row.values):
        return (later if later_row.values else earlier), "the one with held-out metrics"
    return later, f"the later one ({'both have' if later_row.values else 'neither has'} held-out metrics)"


def build_report(run_dirs: Sequence[str | os.PathLike], bench: str | os.PathLike | None = None) -> Report:
    """One row per method: METHODS in their fixed order, then any other preset found."""
    notes: list[str] = []
    rows = {m: MethodRow(m) for m in METHODS}
    sources: dict[str, Path] = {}
    for folder in map(Path, run_dirs):
        run = read_run(folder, notes)
        if run is None:
            continue
        if run.method in sources:
            earlier = sources[run.method]
            shown, why = _second_run(earlier, rows[run.method], folder, run)
            notes.append(f"{folder}: a second run of {run.method} (after {earlier}); {shown} is shown, {why}")
            if shown != folder:
                continue
        sources[run.method] = folder
        rows[run.method] = run  # a METHODS entry keeps its place; other presets go last
    footnote = ""
    if bench is not None:
        by_preset, footnote = read_bench(bench, notes)
        for preset, entry in by_preset.items():
            rows.setdefault(preset, MethodRow(preset)).values.update(numbers(entry, list(BENCH)))
    baseline = common_baseline(list(rows.values()), notes)
    markdown = markdown_table(list(rows.values()), baseline) + (f"\n\n{footnote}" if footnote else "")
    return Report(markdown, list(rows.values()), notes, baseline)


def plot_bars(rows: Sequence[MethodRow], path: str | os.PathLike, baseline: dict[str, float] | None = None) -> None:
    """One bar chart per column that has any value, methods side by side; the baseline as a dashed line."""
    from matplotlib.figure import Figure

    titles = {**PLOT_LABELS, "sec_per_iter": "sec/iter ↓", "peak_mem_mib": "memory (MiB) ↓"}
    keys = [k for k in [*METRICS, *BENCH] if any(k in r.values for r in rows)]
    if not keys:
        return
    colour = {r.method: f"C{i % 10}" for i, r in enumerate(rows)}  # a method keeps its colour in every panel
    fig = Figure(figsize=(3.2 * len(keys), 3.4), layout="constrained")
    for ax, key in zip(fig.subplots(1, len(keys), squeeze=False)[0], keys, strict=True):
        shown = [r for r in rows if key in r.values]
        heights = [plotted(key, r.values[key]) for r in shown]
        ax.bar(range(len(shown)), heights, color=[colour[r.method] for r in shown])
        ax.set_xticks(range(len(shown)), [r.method for r in shown], rotation=35, ha="right")
        if baseline and key in baseline:
            ax.axhline(plotted(key, baseline[key]), color="0.3", ls="--", lw=1, label="most common colour")
            ax.legend(fontsize="x-small", loc="best")
        ax.set_title(titles[key])
        ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def curves_path(plot: Path) -> Path:
    return plot.with_name(f"{plot.stem}-curves{plot.suffix or '.png'}")
