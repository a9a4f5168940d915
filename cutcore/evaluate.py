"""Score a translation model on aligned (A, B) pairs: GcGAN accuracy/RMSE, SWD and FID.

`evaluate_generator` scores any generator (PeriodicEvaluator uses it during training),
`evaluate_model` a loaded model folder (with the accuracy per map colour), and
`python -m cutcore evaluate` wraps them with a table or JSON and result files. pytorch-fid and
matplotlib are imported inside the functions that need them: only FID and plots pay for them, and the
GPU machine, which has no pytorch-fid, evaluates without it.
"""
from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from tqdm import tqdm

from .checkpoint import write_bytes, write_json
from .config import RunConfig, named
from .folders import ImageSource, domain_sources, has_phase, paired_sources
from .imageio import resize_square
from .model_folder import LoadedModel, load_model
from .results import METRICS, colour_table, metrics_table, plot_curves, preview_grid
from .runlog import read_log
from .saved_config import SavedModelConfig, translation_size
from .translate import translate_with

if TYPE_CHECKING:
    from .metrics.fid import FeatureExtractor

PAIRED_SIZE = 256  # GcGAN compares maps at 256², whatever resolution the model translated at
GRID_PAIRS = 4


class Loadable(Protocol):
    """An image decoded when needed: ImageSource (a file), Scored (a target already resized)."""

    def load(self) -> Image.Image: ...


Pair = tuple[Loadable | Image.Image, Loadable | Image.Image]  # (input, target)


def _loaded(item: Loadable | Image.Image) -> Image.Image:
    return item if isinstance(item, Image.Image) else item.load()


# --- inputs ------------------------------------------------------------------------------------


def read_split(path: str | os.PathLike) -> list[str]:
    """File names listed in a split file, one a line (paths are reduced to their file name)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}")
    names = [Path(line.strip()).name for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: the split file lists no file names")
    return names


def select_pairs(
    root: str | os.PathLike, phase: str = "test", split: Sequence[str] | None = None, max_images: int | None = None
) -> list[tuple[ImageSource, ImageSource]]:
    """Aligned (A, B) pairs of `root`/`phase`, restricted to the `split` file names, first `max_images`."""
    try:
        pairs = paired_sources(root, phase)
    except FileNotFoundError as e:
        if phase == "train" or has_phase(root, phase) or not has_phase(root, "train"):
            raise
        # A dataset without a test split (sat2map): its held-out pairs lie in the training folders.
        raise FileNotFoundError(f"{e}; it has training folders: pairs held out from training are scored as phase "
                                "'train' with a split file of their names") from None
    if split is not None:
        wanted = set(split)
        pairs = [p for p in pairs if p[0].path.name in wanted]
        missing = sorted(wanted - {a.path.name for a, _ in pairs})
        if missing:  # a split of another dataset would otherwise evaluate a silent subset
            raise ValueError(
                f"{len(missing)} of {len(wanted)} split names have no {phase}A/{phase}B pair in {root}, "
                f"e.g. {', '.join(missing[:3])}"
            )
    if max_images is not None:
        if max_images < 1:
            raise ValueError(f"max_images must be at least 1, got {max_images}")
        pairs = pairs[:max_images]
    return pairs


def orient(pairs: Sequence[Pair], trained_direction: str, direction: str = "AtoB") -> list[Pair]:
    """Pairs as (generator input, target).

    G maps the dataset's A to B unless it was trained with data.direction BtoA; CycleGAN's
    second generator (direction BtoA) maps the other way.
    """
    swap = (trained_direction == "BtoA") != (direction == "BtoA")
    return [(b, a) for a, b in pairs] if swap else list(pairs)


def model_pairs(model: LoadedModel, pairs: Sequence[Pair], direction: str = "AtoB") -> list[Pair]:
    """`orient` for a loaded model (its config records the training direction)."""
    return orient(pairs, getattr(model.config.run.data, "direction", "AtoB"), direction)


def parse_metrics(requested: str | Sequence[str]) -> list[str]:
    """Metric names from "rmse,fid" or a list, validated, in METRICS order."""
    names = [n.strip().lower() for n in (requested.split(",") if isinstance(requested, str) else requested)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        what = f"unknown metrics {', '.join(unknown)}" if unknown else "no metrics given"
        raise ValueError(f"{what}; choose from {','.join(METRICS)}")
    return [m for m in METRICS if m in names]


def select_metrics(
    requested: str | Sequence[str] | None,
    fid_weights: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
) -> tuple[list[str], FeatureExtractor | None]:
    """The metrics to compute and, when FID is among them, its loaded Inception feature extractor.

    `requested=None` means all metrics, FID only if its weights are available (else a note on
    stderr). FID asked for by name, or weights given by path, raise FIDWeightsUnavailable
    instead: a silently missing number is worse than an error.
    """
    names = list(METRICS) if requested is None else parse_metrics(requested)
    if "fid" not in names:
        return names, None
    from .metrics import FIDFeatureExtractor, FIDWeightsUnavailable, PytorchFIDMissing  # pytorch-fid: seconds

    try:
        return names, FIDFeatureExtractor(fid_weights, device)
    except FIDWeightsUnavailable as e:
        if requested is not None or fid_weights is not None:
            raise
        hint = "" if isinstance(e, PytorchFIDMissing) else " (see --fid-weights)"
        print(f"note: FID skipped: {str(e).splitlines()[0].rstrip('.')}{hint}", file=sys.stderr)
        return [n for n in names if n != "fid"], None


# --- translation and scoring -------------------------------------------------------------------


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode without autograd, restoring the previous mode (training continues afterwards)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _resize(img: Image.Image, size: int | None) -> Image.Image:
    return resize_square(img, size) if size else img


@dataclass(frozen=True)
class Scored:
    """An image at PAIRED_SIZE² both ways the metrics resize it: `paired` as GcGAN's accuracy/RMSE
    script does (OpenCV bilinear, no antialiasing: `metrics.resize_rgb`), `image` bicubic (PIL, as the
    reference's data loader resizes real images) for SWD, FID and previews."""

    paired: np.ndarray
    image: np.ndarray

    @classmethod
    def of(cls, img: Image.Image) -> Scored:
        from .metrics import resize_rgb

        return cls(resize_rgb(img, PAIRED_SIZE), np.asarray(_resize(img.convert("RGB"), PAIRED_SIZE)))

    def load(self) -> Image.Image:  # a Loadable too: PeriodicEvaluator keeps its targets like this
        return Image.fromarray(self.image)


def translate_pairs(
    generator: nn.Module,
    pairs: Sequence[Pair],
    size: int | None = 256,
    tile: int | None = None,
    progress: bool = True,
) -> Iterator[tuple[Image.Image, Scored, Scored]]:
    """(input, translation, target) per pair: the input resized to size² (None: as it is) and
    translated — the CUT/CycleGAN test protocol — then translation and target at PAIRED_SIZE²
    (`Scored`: resized from the translation's and the target's own resolutions).

    The target is resized from its own resolution, never via `size`: a model that translates at
    128² must not be compared against targets blurred to 128² (every model faces the same maps).
    """
    with _eval_mode(generator):
        for src, tgt in tqdm(pairs, desc="translate", unit="img", disable=not progress, leave=False):
            img = _resize(_loaded(src), size)
            fake = translate_with(generator, img, tile)
            yield img, Scored.of(fake), tgt if isinstance(tgt, Scored) else Scored.of(_loaded(tgt))


def _score(
    fakes: Sequence[Scored], reals: Sequence[Scored], metrics: Sequence[str], fid_extractor: FeatureExtractor | None
) -> dict[str, float]:
    from .metrics import paired_metrics, swd  # not compute_fid: pytorch-fid only when FID is asked for

    if not fakes:
        raise ValueError("no image pairs to evaluate")
    metrics = parse_metrics(metrics)
    result: dict[str, float] = {}
    if "accuracy" in metrics or "rmse" in metrics:
        paired = paired_metrics([f.paired for f in fakes], [r.paired for r in reals], size=PAIRED_SIZE)
        result.update({m: paired[m] for m in ("accuracy", "rmse") if m in metrics})
    if "swd" in metrics:
        result["swd"] = swd([f.image for f in fakes], [r.image for r in reals])["avg"]
    if "fid" in metrics:  # compute_fid loads the default weights itself when no extractor is given
        from .metrics import compute_fid

        result["fid"] = compute_fid([f.image for f in fakes], [r.image for r in reals], extractor=fid_extractor)
    return {m: float(result[m]) for m in metrics}


def evaluate_generator(
    generator: nn.Module,
    pairs: Sequence[Pair],
    metrics: Sequence[str],
    *,
    size: int | None = 256,
    tile: int | None = None,
    fid_extractor: FeatureExtractor | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Translate each pair's first image with `generator` and score it against the second.

    Runs in eval mode without gradients and restores the generator's mode. Returns
    {metric: value} in METRICS order; accuracy is a fraction in [0, 1].
    """
    metrics = parse_metrics(metrics)  # before translating: a typo should not cost a pass over the data
    fakes, reals, _ = _translations(generator, pairs, size, tile, progress)
    return _score(fakes, reals, metrics, fid_extractor)


def _translations(generator: nn.Module, pairs: Sequence[Pair], size: int | None, tile: int | None,
                  progress: bool) -> tuple[list[Scored], list[Scored], list[tuple]]:
    """Translations and targets of every pair, and the first GRID_PAIRS (input, translation, target) rows."""
    fakes, reals, samples = [], [], []
    for row in translate_pairs(generator, pairs, size, tile, progress):
        fakes.append(row[1])
        reals.append(row[2])
        if len(samples) < GRID_PAIRS:
            samples.append(row)
    return fakes, reals, samples


@dataclass(frozen=True)
class ModelScores:
    """A model's scores on `n_images` pairs: {metric: value} in METRICS order; when accuracy is among them,
    the accuracy per map colour (`metrics.colour_breakdown`: which classes it gets right); the
    most-common-colour baseline on the same targets (the floor to beat); and the first GRID_PAIRS
    (input, translation, target) rows for a preview grid, so writing the results translates and
    decodes nothing again."""

    values: dict[str, float]
    n_images: int
    by_colour: list[dict]
    baseline: dict[str, float]
    samples: list[tuple[Image.Image, Scored, Scored]]

    def markdown(self) -> str:
        """The metrics table, then the per-colour one when there is one."""
        return metrics_table(self.values) + (f"\n\n{colour_table(self.by_colour)}" if self.by_colour else "")


def evaluate_model(
    model: LoadedModel,
    pairs: Sequence[Pair],
    metrics: Sequence[str],
    *,
    direction: str = "AtoB",
    size: int | None = None,
    tile: int | None = None,
    fid_extractor: FeatureExtractor | None = None,
    progress: bool = True,
) -> ModelScores:
    """`evaluate_generator` for a loaded model, with the per-colour accuracy, the baseline and samples;
    `pairs` are the dataset's (A, B) pairs and `direction` is the one `load_model` was given. `size` as in
    `input_size` (None: the model's own)."""
    from .metrics import colour_breakdown, most_common_colour_baseline

    metrics = parse_metrics(metrics)
    fakes, reals, samples = _translations(model.generator, model_pairs(model, pairs, direction),
                                          input_size(model.config, size), tile, progress)
    by_colour = colour_breakdown([f.paired for f in fakes], [r.paired for r in reals], PAIRED_SIZE) \
        if "accuracy" in metrics else []
    baseline = most_common_colour_baseline([r.paired for r in reals], PAIRED_SIZE)
    return ModelScores(_score(fakes, reals, metrics, fid_extractor), len(fakes), by_colour, baseline, samples)


# --- periodic evaluation during training -------------------------------------------------------


class PeriodicEvaluator:
    """Scores the generator being trained on held-out pairs: metric curves over epochs (thesis Fig. 5.2).

    Each call appends {"step", "epoch", <metric>: value, ...} to `out_dir/metrics.jsonl` and
    redraws `out_dir/metrics.png`. Pairs are decoded and resized once, and FID's Inception is
    loaded here, so missing FID weights fail before training starts rather than hours later.
    `split_names=None` means every pair of the phase; `metrics=None` all metrics, FID only when
    its weights are available. `direction` is the training data's (cfg.data.direction).
    """

    def __init__(
        self,
        data_root: str | os.PathLike,
        phase: str,
        split_names: Sequence[str] | None,
        metrics: str | Sequence[str] | None,
        out_dir: str | os.PathLike,
        max_images: int | None = None,
        *,
        size: int | None = 256,
        direction: str = "AtoB",
        device: str | torch.device = "cpu",
        fid_weights: str | os.PathLike | None = None,
    ):
        pairs = orient(select_pairs(data_root, phase, split_names, max_images), direction)
        self.pairs = [(_resize(a.load(), size), Scored.of(b.load())) for a, b in pairs]
        self.metrics, self.fid_extractor = select_metrics(metrics, fid_weights, device)
        self.size, self.out_dir = size, Path(out_dir)

    @property
    def log_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def __call__(self, generator: nn.Module, step: int, epoch: float) -> dict[str, float]:
        values = evaluate_generator(
            generator, self.pairs, self.metrics, size=self.size, fid_extractor=self.fid_extractor, progress=False
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as f:
            f.write(json.dumps({"step": step, "epoch": epoch, **values}) + "\n")
        plot_curves({"": read_log(self.log_path)}, self.out_dir / "metrics.png")
        return values


def periodic_evaluator(cfg, out: Path, device: torch.device) -> PeriodicEvaluator:
    """The held-out evaluation a training run's config asks for (`runtime.eval_*`), handed to the trainer."""
    r = cfg.runtime
    if r.eval_metrics:  # the flags' own errors first, before any data is read
        try:
            parse_metrics(r.eval_metrics)
        except ValueError as e:
            raise ValueError(f"{named('runtime.eval_metrics')}: {e}") from None
    if r.eval_max_images is not None and r.eval_max_images < 1:
        raise ValueError(f"{named('runtime.eval_max_images')} must be at least 1, got {r.eval_max_images}")
    try:
        return PeriodicEvaluator(
            r.eval_data or cfg.data.root, "train" if r.eval_split else "test",
            read_split(r.eval_split) if r.eval_split else None, r.eval_metrics, out, r.eval_max_images,
            size=translation_size(cfg.data.load_size, cfg.data.crop_size), direction=cfg.data.direction, device=device,
        )
    except (FileNotFoundError, ValueError) as e:  # say which flag asked for these pairs: not --data's training
        cls = FileNotFoundError if isinstance(e, FileNotFoundError) else ValueError
        raise cls(f"held-out evaluation (--eval-every {r.eval_every}): {e} (--eval-data names paired data, "
                      "--eval-split the file names to score; --eval-every 0, runtime.eval_every = 0 from Python, "
                      "trains without it)") from e


# --- a model folder's evaluation (what the evaluate command runs) -----------------------------


def evaluation_size(config: SavedModelConfig) -> int:
    """Square size inputs are resized to before translating: the model's own when it records one
    (`export` writes its training size as inference.size), else the size its training translated at
    (what the held-out curve during training used), else CUT's test protocol, 256."""
    if config.inference.size:
        return int(config.inference.size)
    if isinstance(config.run, RunConfig):
        return translation_size(config.run.data.load_size, config.run.data.crop_size)
    return 256


def input_size(config: SavedModelConfig, size: int | None) -> int | None:
    """The square size a model's inputs are resized to for an evaluation asked at `size`: None asks for the
    model's own (`evaluation_size`), 0 for the inputs as they are (returned as None)."""
    if size is not None and size < 0:
        raise ValueError(f"size must be 0 or positive, got {size}")
    return evaluation_size(config) if size is None else size or None


def write_evaluation(out: str | os.PathLike, model: LoadedModel, scores: ModelScores, info: dict,
                     markdown: str) -> None:
    """metrics.json ({"metrics": values, preset, model, n_images, baseline, by_colour, **info}), metrics.md
    and a samples.png grid of `scores.samples`."""
    out = Path(out)
    write_json(out / "metrics.json", {"metrics": scores.values, "preset": model.config.preset,
                                      "model": str(model.path), "n_images": scores.n_images,
                                      "paired_size": PAIRED_SIZE, "baseline": scores.baseline,
                                      "by_colour": scores.by_colour, **info})  # paired_size: the protocol
    write_bytes(out / "metrics.md", (markdown + "\n").encode())
    buf = io.BytesIO()
    preview_grid([[img if isinstance(img, Image.Image) else img.load() for img in row] for row in scores.samples]
                 ).save(buf, format="png")
    write_bytes(out / "samples.png", buf.getvalue())


def _same_folder(recorded: str, data: str | os.PathLike) -> bool:
    """Whether a run's recorded data root (as typed where it trained: often relative to a folder we do not
    know) names the folder `data`: the same absolute path, or a relative one that `data` ends with."""
    if not recorded:  # official models record none
        return False
    root, here = Path(recorded), Path(data).resolve()
    if root.resolve() == here:
        return True
    if root.is_absolute():
        return False
    tail = [part for part in root.parts if part not in ("..", ".")]
    return bool(tail) and list(here.parts[-len(tail):]) == tail


def seen_in_training(config: SavedModelConfig, data: str | os.PathLike, phase: str, names: Sequence[str]) -> list[str]:
    """Those of `names` (files of `data`/`phase`) the model trained on, as far as its config tells: its run
    trained on the same folder and phase, its `data.exclude` did not hold them out, and they are among the first
    `data.max_items` of their domain left after that (as training takes them). Scores on them are not held-out
    scores."""
    run = config.run
    if not isinstance(run, RunConfig) or run.data.phase != phase or not _same_folder(run.data.root, data):
        return []
    held_out = set(run.data.exclude or [])
    if run.data.max_items is None:
        return [n for n in names if n not in held_out]
    seen: set[str] = set()
    for domain in domain_sources(data, phase):
        seen.update([s.path.name for s in domain if s.path.name not in held_out][: run.data.max_items])
    return [n for n in names if n in seen]


class SavedModelEvaluation(NamedTuple):
    values: dict[str, float]  # {metric: value}
    markdown: str  # the summary: what was scored, the metrics table, accuracy per map colour
    seen: list[str]  # the evaluated file names the model trained on (see seen_in_training)


def evaluate_saved_model(
    model_path: str | os.PathLike, data: str | os.PathLike, *, phase: str = "test", split: Path | None = None,
    metrics: str | None = None, max_images: int | None = None, size: int | None = None, tile: int | None = None,
    direction: str = "AtoB", device: str = "auto", fid_weights: Path | None = None, out: Path | None = None,
    recorded_as: Path | None = None,
) -> SavedModelEvaluation:
    """Score a saved model on a paired dataset; with `out`, also metrics.json, metrics.md and samples.png
    there, naming the model `recorded_as` (default: where it is read from; the card of an exported folder is
    written again by `cutcore.export.refresh_card`, as the evaluate command does). `size` as in `input_size`."""
    pairs = select_pairs(data, phase, read_split(split) if split else None, max_images)
    model = load_model(model_path, device, direction)
    chosen, fid_extractor = select_metrics(metrics, fid_weights, next(model.generator.parameters()).device)
    scores = evaluate_model(model, pairs, chosen, direction=direction, size=size, tile=tile,
                            fid_extractor=fid_extractor)
    seen = seen_in_training(model.config, data, phase, [a.path.name for a, _ in pairs])
    scope = phase + (f", split {Path(split).name}" if split else "")
    markdown = f"{model.config.preset} · {recorded_as or model.path} · {len(pairs)} pairs of {data} ({scope})\n\n"
    if seen:
        markdown += f"**{len(seen)} of these {len(pairs)} pairs were training images of this model.**\n\n"
    markdown += scores.markdown()
    if out:
        info = {"data": str(data), "phase": phase, "split": str(split) if split else None,
                "direction": direction, "size": input_size(model.config, size), "seen_in_training": len(seen),
                "model": str(recorded_as or model.path)}
        write_evaluation(out, model, scores, info, markdown)
    return SavedModelEvaluation(scores.values, markdown, seen)
