"""cutcore: Contrastive Unpaired Translation (CUT, FastCUT, SinCUT), focal PatchNCE, PUT pruning, CycleGAN."""
from .config import (
    CUTModelConfig,
    CycleGANModelConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    RuntimeConfig,
    TrainConfig,
    preset,
)
from .losses import NCEConfig, gan_loss, patch_nce_loss

__all__ = ["CUTModelConfig", "CycleGANModelConfig", "DataConfig", "ModelConfig", "NCEConfig", "RunConfig",
           "RuntimeConfig", "TrainConfig", "gan_loss", "patch_nce_loss", "preset"]
__version__ = "0.1.0"
