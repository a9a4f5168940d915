"""`python -m cutcore <command>`: every command line of the library is parsed here.

Each module of this package holds the parsers of a few commands and thin handlers that import
the library lazily; the work itself happens in library functions. Building the parsers imports
neither torch nor numpy nor PIL (they need only torch-free modules: `config`, `nets.configs`, `tiling`,
`official_urls`), so `--help` and usage errors stay quick; tests/test_cli.py checks it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import evaluate, official, sincut, train, translate

COMMANDS = [train.add_train, translate.add_translate, evaluate.add_evaluate, evaluate.add_export, sincut.add_sincut,
            evaluate.add_report, official.add_official, evaluate.add_style]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # the benchmark keeps its own command line (python -m cutcore.bench)
        from ..bench import main as bench

        return bench(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m cutcore",
                                     description="Contrastive unpaired translation (CUT family).")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    sub.add_parser("bench", help="speed and memory of training and inference, optionally beside the reference "
                                 "implementation (python -m cutcore bench --help)")
    args = parser.parse_args(argv)
    return run(args.func, args)


def run(func, args) -> int:
    """A handler's exit code; user errors become one clear line on stderr, no traceback."""
    try:
        return func(args)
    except (FileNotFoundError, ValueError) as e:
        return _fail(_one_line(e))
    except KeyboardInterrupt:  # Ctrl-C: what could be kept is kept (train saves first) and says so
        print("interrupted", file=sys.stderr)
        return 130
    except (FileExistsError, NotADirectoryError) as e:  # e.g. --out names an existing file
        file = _file_in_the_way(e.filename)
        if file is None:
            raise
        return _fail(f"{file} is a file, not a folder (an output folder was expected)")


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _file_in_the_way(path: str | None) -> Path | None:
    """The file at `path` or above it that stops a folder being made there, if any."""
    if path is None:
        return None
    for p in [Path(path), *Path(path).parents]:
        if p.exists():
            return None if p.is_dir() else p
    return None


def _one_line(e: BaseException) -> str:
    """The message alone: an error re-raised from a DataLoader worker embeds the worker's traceback;
    a device error names the flag, as `python -m cutcore.bench` does."""
    hardware = sys.modules.get("cutcore.hardware")  # not loaded: the error is no DeviceError
    if hardware and isinstance(e, hardware.DeviceError):
        return f"--device {e.name}: {e}"
    text = str(e).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text
