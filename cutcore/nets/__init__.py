from .heads import PatchProjector
from .patchgan import PatchGANConfig, PatchGANDiscriminator
from .resnet import ResnetGenerator, ResnetGeneratorConfig

__all__ = ["PatchProjector", "PatchGANConfig", "PatchGANDiscriminator", "ResnetGenerator", "ResnetGeneratorConfig"]
