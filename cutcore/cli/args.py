"""Argument types shared by several commands: a bad value is argparse's one-line usage error."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..tiling import MIN_TILE


def at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value: 'x'"
    return parse


def zero_or_at_least(low: int):
    """0 (the flag's "as given") or at least `low`."""
    def parse(text: str) -> int:
        value = int(text)
        if value != 0 and value < low:
            raise argparse.ArgumentTypeError(f"must be 0 or at least {low}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def png_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() != ".png":
        raise argparse.ArgumentTypeError(f"{text}: the file written is a PNG, name it .png")
    return path


positive = at_least(1)
tile_size = at_least(MIN_TILE)

TILE_HELP = f"translate in tiles of this size, at least {MIN_TILE} px (bounded memory for huge images)"
