"""SinCUT: contrastive unpaired translation between two single images (Park et al. 2020, Sec. 5)."""

from .config import (
    SINCUT_PRESETS,
    SinCUTConfig,
    SinCUTDataConfig,
    SinCUTModelConfig,
    SinCUTTrainConfig,
    sincut_preset,
)
from .data import ZoomPatchSampler
from .live import (
    LiveTrainer,
    TrainEvent,
    build_sincut_generator,
    export_generator,
    sincut_config_from_dict,
    translate,
)
from .model import SinCUTModel, identity_loss, r1_penalty

__all__ = [
    "SINCUT_PRESETS",
    "LiveTrainer",
    "SinCUTConfig",
    "SinCUTDataConfig",
    "SinCUTModel",
    "SinCUTModelConfig",
    "SinCUTTrainConfig",
    "TrainEvent",
    "ZoomPatchSampler",
    "build_sincut_generator",
    "export_generator",
    "identity_loss",
    "r1_penalty",
    "sincut_config_from_dict",
    "sincut_preset",
    "translate",
]
