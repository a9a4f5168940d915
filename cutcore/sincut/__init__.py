"""SinCUT: contrastive unpaired translation between two single images (Park et al. 2020, Sec. 5).

`config` (presets, typed configs) is what the rest of the library reads; the training side is
imported from its modules: `model.SinCUTModel`, `data.ZoomPatchSampler`, `live.LiveTrainer`.
"""

from .config import (
    SINCUT_PRESETS,
    SinCUTConfig,
    SinCUTDataConfig,
    SinCUTModelConfig,
    SinCUTTrainConfig,
    default_sincut_preset,
    sincut_preset,
)

__all__ = [
    "SINCUT_PRESETS",
    "SinCUTConfig",
    "SinCUTDataConfig",
    "SinCUTModelConfig",
    "SinCUTTrainConfig",
    "default_sincut_preset",
    "sincut_preset",
]
