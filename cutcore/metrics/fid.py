"""Fréchet Inception Distance, computed exactly as pytorch-fid does (pool3, 2048 dims).

Only the standard FID Inception weights (pt_inception-2015-12-05-6726825d.pth, a port of
TensorFlow's 2015 Inception) give comparable numbers, so there is deliberately no fallback
to other weights: if they cannot be found, `FIDWeightsUnavailable` says where to put them.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn
from torch.nn.functional import adaptive_avg_pool2d

from cutcore.metrics.fid_errors import FIDWeightsUnavailable, PytorchFIDMissing
from cutcore.metrics.paired import ImageLike, to_rgb_uint8
from cutcore.official_urls import offline

FID_WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_ENV = "CUTCORE_FID_WEIGHTS"
FID_DIMS = 2048
_HASH_PREFIX = "6726825d"  # torch.hub convention: start of the file's sha256
# Building InceptionV3 briefly swaps a pytorch-fid module attribute; serialise that.
_BUILD_LOCK = threading.Lock()

FeatureExtractor = Callable[[torch.Tensor], np.ndarray]


try:  # in requirements.txt; where it is missing (the GPU image), the other metrics still work and FID says why
    from pytorch_fid import inception as pfid_inception
    from pytorch_fid.fid_score import calculate_frechet_distance
    from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
except ImportError as e:
    pfid_inception = calculate_frechet_distance = InceptionV3 = None
    _PYTORCH_FID_MISSING: ImportError | None = e
    FID_WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_FILENAME
else:
    _PYTORCH_FID_MISSING = None


def _require_pytorch_fid() -> None:
    if _PYTORCH_FID_MISSING is not None:
        raise PytorchFIDMissing(f"FID needs pytorch-fid, which is not installed here ({_PYTORCH_FID_MISSING}).\n"
                                    "pip install pytorch-fid, or leave fid out of the metrics.")


def default_weights_path() -> Path:
    """Where torch.hub (and so pytorch-fid) caches the weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS_FILENAME


def _how_to_fix() -> str:
    return (
        f"Download {FID_WEIGHTS_URL}\nand either save it as {default_weights_path()}\n"
        f"or give its path: --fid-weights on the command line, fid_weights= in Python, or the {FID_WEIGHTS_ENV} "
        "environment variable."
    )


def resolve_fid_weights(weights_path: str | os.PathLike | None = None) -> Path:
    """Path of the FID weights: explicit argument, $CUTCORE_FID_WEIGHTS, hub cache, download.

    The download is skipped when CUTCORE_OFFLINE=1 or HF_HUB_OFFLINE=1.
    """
    explicit = weights_path if weights_path is not None else os.environ.get(FID_WEIGHTS_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        raise FIDWeightsUnavailable(f"FID Inception weights not found at {path}.\n{_how_to_fix()}")
    cached = default_weights_path()
    if cached.is_file():
        return cached
    if offline():
        raise FIDWeightsUnavailable("FID Inception weights not found and downloads are disabled (offline).\n"
                                    f"{_how_to_fix()}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(FID_WEIGHTS_URL, str(cached), hash_prefix=_HASH_PREFIX)
    except (OSError, RuntimeError) as e:  # no network (URLError is an OSError), bad hash, disk
        raise FIDWeightsUnavailable(f"Could not download the FID Inception weights ({e}).\n{_how_to_fix()}") from e
    return cached


def load_fid_inception(weights_path: str | os.PathLike | None = None) -> InceptionV3:
    """pytorch-fid's InceptionV3 (pool3 block) with weights from `resolve_fid_weights`, in eval mode."""
    _require_pytorch_fid()
    path = resolve_fid_weights(weights_path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state_dict, dict):
            raise TypeError(f"holds a {type(state_dict).__name__}, not a state dict")
    except Exception as e:  # a truncated or foreign file fails in many ways (even KeyError)
        raise FIDWeightsUnavailable(f"{path} is not a readable checkpoint ({e}).\n{_how_to_fix()}") from e

    def from_resolved_file(url: str, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        if url != FID_WEIGHTS_URL:
            raise FIDWeightsUnavailable(f"pytorch-fid asked for unexpected weights {url}")
        return state_dict

    # pytorch-fid's fid_inception_v3() builds the network and then fetches the weights with
    # load_state_dict_from_url; substituting that one call keeps its exact architecture and
    # key mapping while loading from our resolved path instead of the network.
    with _BUILD_LOCK, mock.patch.object(pfid_inception, "load_state_dict_from_url", from_resolved_file):
        try:
            model = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FID_DIMS]])
        except RuntimeError as e:  # load_state_dict(strict=True): wrong keys or shapes
            raise FIDWeightsUnavailable(f"{path} does not hold the FID Inception weights ({e}).\n"
                                        f"{_how_to_fix()}") from e
    return model.eval()


class FIDFeatureExtractor:
    """Callable: float batch (N, 3, H, W) with values in [0, 1] -> (N, D) float64 features.

    Inputs are in [0, 1] like pytorch-fid's (it resizes to 299 and rescales to [-1, 1] itself);
    convert generator outputs in [-1, 1] with (x + 1) / 2 first. `model` may replace the
    Inception network (tests); it must follow pytorch-fid's contract: return a list whose first
    entry is (N, D, h, w), which is global-average-pooled when h or w is not 1.
    """

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        model: nn.Module | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = (model if model is not None else load_fid_inception(weights_path)).to(self.device).eval()

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        if batch.min() < 0 or batch.max() > 1:
            raise ValueError("FIDFeatureExtractor expects values in [0, 1]; map [-1, 1] images with (x + 1) / 2")
        pred = self.model(batch.to(self.device, torch.float32))[0]
        if pred.shape[2] != 1 or pred.shape[3] != 1:
            pred = adaptive_avg_pool2d(pred, output_size=(1, 1))
        return pred.flatten(1).cpu().numpy().astype(np.float64)


def _to_unit_tensor(image: ImageLike) -> torch.Tensor:
    """uint8 HxWx3 -> float (3, H, W) in [0, 1], as torchvision's ToTensor in pytorch-fid."""
    return torch.from_numpy(to_rgb_uint8(image).copy()).permute(2, 0, 1).float().div(255)


def extract_features(images: Iterable[ImageLike], extractor: FeatureExtractor, batch_size: int = 50) -> np.ndarray:
    """Features (N, D) of all images; consecutive images of equal size are batched together."""
    feats: list[np.ndarray] = []
    batch: list[torch.Tensor] = []
    for image in images:
        t = _to_unit_tensor(image)
        if batch and (len(batch) == batch_size or t.shape != batch[0].shape):
            feats.append(extractor(torch.stack(batch)))
            batch = []
        batch.append(t)
    if batch:
        feats.append(extractor(torch.stack(batch)))
    if not feats:
        raise ValueError("no images given")
    return np.concatenate(feats).astype(np.float64)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (pytorch-fid's implementation)."""
    _require_pytorch_fid()
    return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two (N, D) feature sets: Fréchet distance of their Gaussian fits."""
    for f in (feats1, feats2):
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"need (N >= 2, D) features, got shape {f.shape}")
    stats = [(f.mean(axis=0), np.cov(f, rowvar=False)) for f in (feats1, feats2)]
    return frechet_distance(*stats[0], *stats[1])


def compute_fid(
    images_a: Iterable[ImageLike],
    images_b: Iterable[ImageLike],
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    weights_path: str | os.PathLike | None = None,
    extractor: FeatureExtractor | None = None,
) -> float:
    """FID between two image sets (PIL images or uint8 HxWx3 arrays).

    Uses the standard FID Inception unless `extractor` (batch in [0, 1] -> (N, D) array) is given.
    Like any FID, values from a few hundred images are biased upward; compare only equal-size sets.
    """
    extractor = extractor or FIDFeatureExtractor(weights_path, device)
    return fid_from_features(
        extract_features(images_a, extractor, batch_size), extract_features(images_b, extractor, batch_size)
    )
