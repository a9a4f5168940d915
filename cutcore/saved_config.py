"""config.json of a model folder, typed: the run's config and what was added when it was saved."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .config import DataConfig, RunConfig, from_dict
from .sincut.config import SinCUTConfig

# A crop at least this share of the resized training image is the whole image up to scale jitter (the
# reference's 256 of 286: 0.895); smaller crops are patches of an image resized on purpose (64 of 128).
WHOLE_IMAGE_CROP = 0.8


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
    weights_dtype: str  # what the shipped weights are stored as (fp16, fp32); the arithmetic is run.train.precision


@dataclass
class Domains:
    """What a model translates, in words a person uses: its input ("photo") and its output ("artwork")."""

    input: str
    output: str


@dataclass
class CardText:
    """What the model card says about the task and the data, beyond what the config holds (kept in
    config.json, so the card can be written again when the metrics change)."""

    about: str = ""  # a sentence: what the model translates
    attribution: str = ""  # the data's licence and source


@dataclass
class SavedModelConfig:
    """config.json of a model folder, typed: the run's config and what was added when it was saved."""

    run: RunConfig | SinCUTConfig
    name: str = ""
    source: str = ""  # "ours", or where an official model came from
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    training: TrainingRecord | None = None
    domains: Domains | None = None  # recorded where the writer knows them (the app's SinCUT tab); else unknown
    card: CardText | None = None  # export's texts for the model card

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
        if self.card is not None:
            data["card"] = asdict(self.card)
        return data

    @classmethod
    def from_json(cls, data: dict) -> SavedModelConfig:
        data = dict(data)
        extras = {k: data.pop(k) for k in ("name", "source", "inference", "training", "domains", "card") if k in data}
        is_sincut = data.get("model", {}).get("kind") == "sincut"
        return cls(
            run=from_dict(SinCUTConfig if is_sincut else RunConfig, data),
            name=extras.get("name", ""), source=extras.get("source", ""),
            inference=InferenceSettings(**extras.get("inference", {})),
            training=_training_record(extras["training"]) if extras.get("training") else None,
            domains=Domains(**extras["domains"]) if extras.get("domains") else None,
            card=CardText(**extras["card"]) if extras.get("card") else None,
        )


def translation_size(load_size: int, crop_size: int) -> int:
    """The square size the reference's test protocol translates at, for a model trained on random
    `crop_size` crops of images resized to `load_size`.

    The reference tests with load_size = crop_size: a standard 256² dataset trained at 286/256 is
    translated at 256, as it is, not at 286 and resized back (a perfect model loses 7-12 points of
    accuracy to that detour on sat2map maps). That holds while the crop is the whole image up to
    scale jitter (crop >= WHOLE_IMAGE_CROP of the load size); smaller crops are patches of an image
    resized to load_size on purpose (512 px tiles at 128 in 64² crops), translated at load_size so
    new images come at the ground resolution the model learned (at the crop size a perfect model
    would cap at 47% accuracy instead of 62%).
    """
    return crop_size if crop_size >= WHOLE_IMAGE_CROP * load_size else load_size


def measured_inference(data: DataConfig, input_sides: set[int]) -> InferenceSettings:
    """How new inputs meet a model trained on `data`, whose input images had `input_sides`: resized by
    the training's own resize when they all had one side (512 px tiles at load 128: scale 0.25), as
    they are when not (nothing to tell from)."""
    if len(input_sides) != 1:
        return InferenceSettings()
    size = translation_size(data.load_size, data.crop_size)
    scale = size / next(iter(input_sides))
    return InferenceSettings() if scale == 1 else InferenceSettings(scale, size)


def _training_record(data: dict) -> TrainingRecord:
    data = dict(data)
    if "precision" in data and "weights_dtype" not in data:  # its name before: it read as training's arithmetic
        data["weights_dtype"] = data.pop("precision")
    return TrainingRecord(**data)
