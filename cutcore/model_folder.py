"""The model folder: the one format every trained model is saved in and loaded from.

    model.safetensors  the generator(s) "G" (and CycleGAN's "G_BA") and PatchNCE heads "F"
    config.json        a SavedModelConfig: the run's typed config, plus name, source, inference
                       settings and what training cost (written last: it marks the folder complete)
    README.md          the model card (what it is, data, recipe, metrics)

`export` (our runs), `official convert` (the reference repos' checkpoints), SinCUT's live
trainer and the app write folders with `write_model_folder`; `translate`, `evaluate`, the app
and the correspondence view read them with `load_model`. A training checkpoint (and a run
folder, its newest checkpoint) has the same two files and loads the same way.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError

from .checkpoint import checkpoint_dirs, load_tensors, read_json, save_tensors, split_state, write_bytes, write_json
from .hardware import resolve_device
from .nets import PatchProjector, ResnetGenerator
from .nets.stylegan2 import StyleGAN2Generator, StyleGAN2GeneratorConfig
from .official_files import load_official_file
from .saved_config import SavedModelConfig

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"


# The generator each model kind trains, built from its saved config.
GENERATORS: dict[str, Callable[[SavedModelConfig], nn.Module]] = {
    "cut": lambda c: ResnetGenerator(c.run.model.generator),
    "cyclegan": lambda c: ResnetGenerator(c.run.model.generator),
    "sincut": lambda c: StyleGAN2Generator(StyleGAN2GeneratorConfig(**asdict(c.run.model.generator))),
}


def build_generator(config: SavedModelConfig) -> nn.Module:
    if config.kind not in GENERATORS:
        raise ValueError(f"unknown model kind {config.kind!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[config.kind](config)


# --- writing ------------------------------------------------------------------------------------


def write_model_folder(folder: str | os.PathLike, tensors: dict[str, torch.Tensor], config: SavedModelConfig,
                       card: str | None = None, metadata: dict[str, str] | None = None) -> Path:
    """Weights, the model card, and config.json last (a folder with a config is complete)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(folder / WEIGHTS, tensors, metadata)
    if card is not None:
        write_card(folder, card)
    write_json(folder / CONFIG, config.to_json())
    return folder


def write_card(folder: str | os.PathLike, card: str) -> None:
    write_bytes(Path(folder) / CARD, card.encode())


@dataclass
class ModelCard:
    """README.md of a model folder, as every writer lays it out: Hub front matter, title, a summary,
    the writer's own sections (heading, lines), and how to use the folder."""

    title: str
    summary: str
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    tags: tuple[str, ...] = ("image-to-image", "contrastive-unpaired-translation")

    def render(self, shown_path: str | os.PathLike) -> str:
        lines = ["---", "library_name: cutcore", "pipeline_tag: image-to-image", f"tags: [{', '.join(self.tags)}]",
                 "---", "", f"# {self.title}", "", self.summary, ""]
        for heading, body in self.sections:
            lines += [f"## {heading}", "", *body, ""]
        lines += ["## Use", "", "```bash",
                  f"python -m cutcore translate --model {shown_path} --input IMAGE_OR_FOLDER --output OUT_DIR",
                  "```", ""]
        return "\n".join(lines)


def read_config(folder: str | os.PathLike) -> SavedModelConfig:
    """`folder`'s config.json, typed; a file that is not one is a ValueError naming it."""
    path = Path(folder) / CONFIG
    try:
        return SavedModelConfig.from_json(read_json(path))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: a model folder holds {WEIGHTS} and the {CONFIG} that describes "
                                "its networks (python -m cutcore export writes both)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    except (ValueError, TypeError, KeyError, AttributeError) as e:  # valid JSON, but not a config's fields
        raise ValueError(f"{path}: not a cutcore model config ({e})") from None


# --- loading ------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    generator: nn.Module
    heads: PatchProjector | None
    config: SavedModelConfig
    path: Path

    @property
    def nce_layers(self) -> list[int]:
        return self.config.nce_layers

    @property
    def size_multiple(self) -> int:
        return self.generator.size_multiple  # every generator a model folder builds says it

    @property
    def input_scale(self) -> float:
        """Resize factor that brings an input to the ground resolution the model was trained at."""
        return self.config.inference.scale


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """A model folder (model.safetensors + config.json), a checkpoint, or a run folder (newest checkpoint);
    a folder's model.safetensors or config.json stands for the folder."""
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS, CONFIG):
        path = path.parent
    if (path / WEIGHTS).is_file():
        return path
    ckpts = checkpoint_dirs(path)
    if ckpts:
        return ckpts[-1]
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found")
    raise FileNotFoundError(f"{path}: no model.safetensors here and no checkpoints/step_* below it (give a model "
                            "folder, a checkpoint, a run folder, or an official generator file such as "
                            "latest_net_G.pth)")


def is_official_file(path: str | os.PathLike) -> bool:
    """A file other than a model folder's own: read as an official generator (`torch.save(state_dict)`)."""
    path = Path(path)
    return path.is_file() and path.name not in (WEIGHTS, CONFIG)


def load_model(path: str | os.PathLike, device: str | torch.device = "auto", direction: str = "AtoB") -> LoadedModel:
    """Load a generator (and its PatchNCE heads when present) from a model folder, checkpoint or run,
    or from an official generator file such as `latest_net_G.pth` (read with weights_only=True,
    architecture inferred as `official convert` does); never unpickles objects."""
    if direction not in ("AtoB", "BtoA"):
        raise ValueError(f"direction must be AtoB or BtoA, not {direction!r}")
    dev = resolve_device(str(device))
    if is_official_file(path):
        generator, heads, config = load_official_file(path, direction)
        return LoadedModel(generator.eval().to(dev), heads.eval().to(dev) if heads is not None else None, config,
                           Path(path))
    folder = resolve_model_dir(path)
    config = read_config(folder)
    tensors = _read_weights(folder / WEIGHTS)
    g_name = "G" if direction == "AtoB" else "G_BA"
    g_state = split_state(tensors, g_name)
    if not g_state:
        raise ValueError(f"{folder}: this model has no {direction} generator")
    generator = build_generator(config)
    _load_state(generator, g_state, folder / WEIGHTS, g_name)
    f_state = split_state(tensors, "F")
    heads = None
    if f_state and direction == "AtoB":
        try:
            heads = PatchProjector.for_state(f_state)
        except ValueError as e:
            raise ValueError(f"{folder / WEIGHTS}: its F.* tensors are {e}") from None
        _load_state(heads, f_state, folder / WEIGHTS, "F")
        heads.eval().to(dev)
    return LoadedModel(generator.eval().to(dev), heads, config, folder)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a model.safetensors; a truncated or corrupt file is a ValueError naming it."""
    try:
        return load_tensors(path)
    except SafetensorError as e:
        raise ValueError(f"{path}: not a readable safetensors file, truncated or corrupt? ({e})") from None


def _load_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    """`module.load_state_dict(state)` (as fp32), where a difference is one short ValueError: the first
    tensor that does not fit, not torch's list of every one."""
    expected = module.state_dict()
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    wrong = next((k for k in expected if k in state and state[k].shape != expected[k].shape), None)
    if wrong:
        problem = (f"{name}.{wrong} is {tuple(state[wrong].shape)} in the weights, {tuple(expected[wrong].shape)} "
                   f"in the network {CONFIG} describes")
    elif missing or unexpected:
        problem = f"no tensor {name}.{missing[0]}" if missing else f"an unexpected tensor {name}.{unexpected[0]}"
    else:
        module.load_state_dict({k: v.float() for k, v in state.items()})
        return
    raise ValueError(f"{path}: does not match the {CONFIG} beside it: {problem}")
