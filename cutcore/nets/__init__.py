"""The networks: PatchGAN and ResNet (CUT, CycleGAN), StyleGAN2 (SinCUT), PatchNCE heads.

The configs (`configs`) are plain dataclasses; the networks import torch, so they are imported
on first use (PEP 562): `import cutcore.nets` and its configs stay torch-free.
"""
import importlib
from typing import TYPE_CHECKING, Any

from .configs import PatchGANConfig, ResnetGeneratorConfig

if TYPE_CHECKING:
    from .heads import PatchProjector
    from .patchgan import PatchGANDiscriminator
    from .resnet import ResnetGenerator

_LAZY = {"PatchProjector": "heads", "PatchGANDiscriminator": "patchgan", "ResnetGenerator": "resnet"}

__all__ = ["PatchProjector", "PatchGANConfig", "PatchGANDiscriminator", "ResnetGenerator", "ResnetGeneratorConfig"]


def __getattr__(name: str) -> Any:
    from .. import _submodule

    # A network class, or a submodule not imported yet (`import cutcore.nets; cutcore.nets.resnet`).
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name) if name in _LAZY \
        else _submodule(__name__, name)
    globals()[name] = value  # imported once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
