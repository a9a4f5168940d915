"""Argument types shared by several commands: a bad value is argparse's one-line usage error."""
from __future__ import annotations

import argparse

from ..translate import MIN_TILE


def at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value: 'x'"
    return parse


positive = at_least(1)
tile_size = at_least(MIN_TILE)

TILE_HELP = f"translate in tiles of this size, at least {MIN_TILE} px (bounded memory for huge images)"
