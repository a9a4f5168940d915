"""Image-quality metrics: FID (pytorch-fid), Laplacian SWD (PGGAN), paired map metrics (GcGAN) and the
style yardsticks of a photo / artwork / output triple (colour and texture ratios, content, foreign colours).

The FID names load on first use: pytorch-fid pulls in torchvision (seconds of start-up) and
most callers — every CLI start among them — only need the paired metrics.
"""
from cutcore.metrics.fid_errors import FIDWeightsUnavailable, PytorchFIDMissing
from cutcore.metrics.paired import (
    colour_breakdown,
    most_common_colour_baseline,
    paired_metrics,
    pixel_accuracy,
    resize_rgb,
    rmse,
    to_rgb_uint8,
)
from cutcore.metrics.style import (
    foreign_colour_fraction,
    foreign_colour_mask,
    style_report,
)
from cutcore.metrics.swd import laplacian_pyramid, sliced_wasserstein, swd

_FID_NAMES = {
    "FIDFeatureExtractor", "compute_fid", "extract_features", "fid_from_features", "frechet_distance",
    "load_fid_inception", "resolve_fid_weights",
}


def __getattr__(name: str):
    if name in _FID_NAMES:
        from cutcore.metrics import fid

        return getattr(fid, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FIDFeatureExtractor",
    "FIDWeightsUnavailable",
    "PytorchFIDMissing",
    "colour_breakdown",
    "compute_fid",
    "extract_features",
    "fid_from_features",
    "foreign_colour_fraction",
    "foreign_colour_mask",
    "frechet_distance",
    "laplacian_pyramid",
    "load_fid_inception",
    "most_common_colour_baseline",
    "paired_metrics",
    "pixel_accuracy",
    "resize_rgb",
    "resolve_fid_weights",
    "rmse",
    "sliced_wasserstein",
    "style_report",
    "swd",
    "to_rgb_uint8",
]
