from ..config import ModelConfig
from .cut import CUTModel
from .cyclegan import CycleGANModel


def build_model(cfg: ModelConfig) -> CUTModel | CycleGANModel:
    if cfg.kind == "cut":
        return CUTModel(cfg)
    if cfg.kind == "cyclegan":
        return CycleGANModel(cfg)
    raise ValueError(f"unknown model kind {cfg.kind!r}")


__all__ = ["CUTModel", "CycleGANModel", "build_model"]
