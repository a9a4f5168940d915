"""A run's JSON-lines logs (log.jsonl: losses and step times; metrics.jsonl: held-out scores), read and trimmed.

Shared by training (which writes and trims them), export (which sums their time and names their hardware) and
scripts, without importing the training stack.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from .checkpoint import write_bytes


def read_log(path: Path) -> list[dict]:
    """log.jsonl records by step; a resumed run logs some steps twice and the later record wins."""
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def training_seconds(records: Sequence[dict], until: int) -> float:
    """Wall time of the training loop up to step `until`: each record's sec_per_iter covers the
    steps since the previous record (evaluations and checkpoints in between included)."""
    total, prev = 0.0, 0
    for r in records:
        if r["step"] > until:
            break
        if isinstance(r.get("sec_per_iter"), (int, float)):
            total += r["sec_per_iter"] * (r["step"] - prev)
        prev = r["step"]
    return total


def training_hardware(records: Sequence[dict], until: int) -> str | None:
    """What the records up to step `until` trained on (each machine of a resumed run once, in order);
    None when the log predates the "hardware" key."""
    names = dict.fromkeys(r["hardware"] for r in records if r["step"] <= until and isinstance(r.get("hardware"), str))
    return " then ".join(names) or None


def trim_log(path: Path, step: int) -> None:
    """Keep the records of a JSON-lines log up to `step`: a run resumed from an older checkpoint (or
    started afresh, step 0) redoes the steps after it, and its log must not hold them twice."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if _record_step(ln) <= step]
    if len(kept) != len(lines):
        write_bytes(path, "".join(ln if ln.endswith("\n") else ln + "\n" for ln in kept).encode())


def _record_step(line: str) -> float:
    """A log line's step; a line torn by a kill mid-write, or blank, counts as past every checkpoint."""
    try:
        step = json.loads(line).get("step", 0)
    except (ValueError, AttributeError):
        return math.inf
    return step if isinstance(step, int | float) else math.inf
