"""Image-quality metrics: FID (pytorch-fid), Laplacian SWD (PGGAN) and paired map metrics (GcGAN)."""
from cutcore.metrics.fid import (
    FIDFeatureExtractor,
    FIDWeightsUnavailable,
    compute_fid,
    extract_features,
    fid_from_features,
    frechet_distance,
    load_fid_inception,
    resolve_fid_weights,
)
from cutcore.metrics.paired import paired_metrics, pixel_accuracy, resize_rgb, rmse, to_rgb_uint8
from cutcore.metrics.swd import laplacian_pyramid, sliced_wasserstein, swd

__all__ = [
    "FIDFeatureExtractor",
    "FIDWeightsUnavailable",
    "compute_fid",
    "extract_features",
    "fid_from_features",
    "frechet_distance",
    "laplacian_pyramid",
    "load_fid_inception",
    "paired_metrics",
    "pixel_accuracy",
    "resize_rgb",
    "resolve_fid_weights",
    "rmse",
    "sliced_wasserstein",
    "swd",
    "to_rgb_uint8",
]
