"""cutcore: Contrastive Unpaired Translation (CUT, FastCUT, SinCUT), focal PatchNCE, PUT pruning, CycleGAN."""
from .config import (
    CUTModelConfig,
    CycleGANModelConfig,
    DataConfig,
    ModelConfig,
    NCEConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
    preset,
)

__all__ = ["CUTModelConfig", "CycleGANModelConfig", "DataConfig", "ModelConfig", "NCEConfig", "RunConfig",
           "RuntimeConfig", "TrainConfig", "preset"]
__version__ = "0.1.0"
