"""config.json of a model folder, typed: the run's config and what was added when it was saved."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .config import RunConfig, from_dict
from .sincut.config import SinCUTConfig


@dataclass
class InferenceSettings:
    """How new inputs meet the model: resized by `scale` to the ground resolution it was trained at
    (0.25 for 512² tiles trained at 128²), and `size`, the side it was trained at (evaluation size)."""

    scale: float = 1.0
    size: int | None = None


@dataclass
class TrainingRecord:
    """What training cost, as `export` measures it from the run's log."""

    steps: int
    images: int
    seconds: float
    hardware: str
    precision: str


@dataclass
class Domains:
    """What a model translates, in words a person uses: its input ("photo") and its output ("artwork")."""

    input: str
    output: str


@dataclass
class SavedModelConfig:
    """config.json of a model folder, typed: the run's config and what was added when it was saved."""

    run: RunConfig | SinCUTConfig
    name: str = ""
    source: str = ""  # "ours", or where an official model came from
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    training: TrainingRecord | None = None
    domains: Domains | None = None  # recorded where the writer knows them (the app's SinCUT tab); else unknown

    @property
    def kind(self) -> str:
        return self.run.model.kind

    @property
    def preset(self) -> str:
        return self.run.preset

    @property
    def nce_layers(self) -> list[int]:
        return list(getattr(self.run.model, "nce_layers", []))

    def to_json(self) -> dict:
        data = asdict(self.run)
        data.update({k: v for k, v in (("name", self.name), ("source", self.source)) if v})
        if self.inference != InferenceSettings():
            data["inference"] = asdict(self.inference)
        if self.training is not None:
            data["training"] = asdict(self.training)
        if self.domains is not None:
            data["domains"] = asdict(self.domains)
        return data

    @classmethod
    def from_json(cls, data: dict) -> SavedModelConfig:
        data = dict(data)
        extras = {k: data.pop(k) for k in ("name", "source", "inference", "training", "domains") if k in data}
        is_sincut = data.get("model", {}).get("kind") == "sincut"
        return cls(
            run=from_dict(SinCUTConfig if is_sincut else RunConfig, data),
            name=extras.get("name", ""), source=extras.get("source", ""),
            inference=InferenceSettings(**extras.get("inference", {})),
            training=TrainingRecord(**extras["training"]) if extras.get("training") else None,
            domains=Domains(**extras["domains"]) if extras.get("domains") else None,
        )
