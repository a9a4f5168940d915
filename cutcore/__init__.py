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
    if name in __all__:
        value = getattr(importlib.import_module(".config", __name__), name)
    else:  # a submodule not imported yet (`import cutcore; cutcore.config.preset(...)`)
        value = _submodule(__name__, name)
    globals()[name] = value
    return value


def _submodule(package: str, name: str) -> Any:
    try:
        return importlib.import_module(f".{name}", package)
    except ModuleNotFoundError as e:
        if e.name != f"{package}.{name}":  # the submodule exists but something it imports does not
            raise
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
