"""`official list | convert | download`: the reference repos' pretrained models."""
from __future__ import annotations

import sys
from pathlib import Path

from ..official_urls import DEFAULT_TIMEOUT, OFFICIAL_MODELS, DownloadError, official_models_dir


def add_official(sub) -> None:
    p = sub.add_parser("official", help="use official CUT/FastCUT/CycleGAN pretrained models")
    cmds = p.add_subparsers(dest="official_command", required=True)

    ls = cmds.add_parser("list", help="the official models `download` knows")
    ls.set_defaults(func=_list)

    conv = cmds.add_parser("convert", help="convert official .pth files into a cutcore model folder")
    conv.add_argument("--generator", required=True, type=Path, help="latest_net_G.pth (CycleGAN: latest_net_G_A.pth)")
    conv.add_argument("--heads", type=Path, help="latest_net_F.pth (CUT's PatchNCE heads)")
    conv.add_argument("--generator-ba", type=Path, help="CycleGAN's latest_net_G_B.pth (for --direction BtoA)")
    conv.add_argument("--out", type=Path, help=f"model folder (default: {official_models_dir()}/NAME)")
    conv.add_argument("--name", help="model name (default: the --out folder's name)")
    conv.add_argument("--source", help="where the files came from (written to config.json and the model card)")
    conv.add_argument("--kind", choices=["cut", "cyclegan", "fastcut"], help="require this method's official layout")
    conv.add_argument("--nce-layers", help="generator layers the heads embed (default 0,4,8,12,16)")
    conv.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    conv.set_defaults(func=_convert)

    dl = cmds.add_parser("download", help="download, verify and convert an official pretrained model")
    dl.add_argument("name", help="a name from `official list`")
    dl.add_argument("--out", type=Path, help=f"model folder (default: {official_models_dir()}/NAME)")
    dl.add_argument("--file", type=Path, help="an already downloaded copy (the .tar or .pth); if absent, download "
                                              "to this path and keep it")
    dl.add_argument("--sha256", help="refuse the download unless its sha256 is this")
    dl.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    dl.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per network operation")
    dl.set_defaults(func=_download)


def _list(args) -> int:
    root = official_models_dir()
    print(f"converted models go to {root} (set CUTCORE_MODELS to change)")
    width = max(len(m.name) for m in OFFICIAL_MODELS.values())
    converted = False
    for m in OFFICIAL_MODELS.values():
        here = (root / m.name / "config.json").is_file()  # config.json is written last
        converted |= here
        print(f"{'*' if here else ' '} {m.name:<{width}} {m.method:<8} {m.description}")
    if converted:
        print("(* already converted)")
    return 0


def _convert(args) -> int:
    from ..official import convert_official

    if args.out is None and args.name is None:
        raise ValueError("give --out DIR or --name NAME (then the folder is official_models_dir()/NAME)")
    layers = [int(x) for x in args.nce_layers.split(",")] if args.nce_layers else None
    out = convert_official(args.generator, args.out or official_models_dir(args.name), args.heads, args.name,
                           args.source, layers, args.generator_ba, kind=args.kind,
                           precision="fp16" if args.fp16 else "fp32")
    print(out)
    return 0


def _download(args) -> int:
    from tqdm import tqdm

    from ..official import download_official

    try:
        with tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=args.name, disable=None) as bar:  # None: tty only

            def progress(done: int, total: int | None) -> None:
                bar.total = total
                bar.update(done - bar.n)

            out = download_official(args.name, args.out, file=args.file, sha256=args.sha256,
                                    precision="fp16" if args.fp16 else "fp32", timeout=args.timeout, progress=progress)
    except DownloadError as e:  # the bar is closed by now, so the message gets its own line
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0
