"""cutcore: Contrastive Unpaired Translation (CUT, FastCUT, SinCUT), focal PatchNCE, PUT pruning, CycleGAN."""
from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, preset
from .losses import NCEConfig, gan_loss, patch_nce_loss

__all__ = ["DataConfig", "ModelConfig", "NCEConfig", "RunConfig", "TrainConfig", "gan_loss", "patch_nce_loss", "preset"]
__version__ = "0.1.0"
