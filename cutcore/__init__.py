"""cutcore: Contrastive Unpaired Translation (CUT, FastCUT, SinCUT), focal PatchNCE, PUT pruning, CycleGAN.

The configs below come from `cutcore.config` on first use (PEP 562), so that importing a submodule
(`cutcore.cli` for `python -m cutcore --help`) does not also import what it does not need.
"""
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".config", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
