"""Patch sampler + projection heads H_l of PatchNCE.

Per encoder layer: pick random spatial locations, embed the feature vectors there with a
2-layer MLP, L2-normalise. The same locations are reused for the query and key images.
Parameter names (`mlp_<l>.0/2`) match the reference `PatchSampleF`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def check_layers(layers: list[int], count: int) -> None:
    """Refuse PatchNCE layer indices an encoder of `count` layers does not have (they would be skipped, and
    the loss computed on fewer layers than asked)."""
    if not layers or min(layers) < 0 or max(layers) >= count:
        raise ValueError(f"nce_layers {list(layers)}: the layers of this generator PatchNCE can read are 0-{count - 1}")


class PatchProjector(nn.Module):
    def __init__(self, channels: list[int], dim: int = 256):
        super().__init__()
        self.channels = list(channels)
        self.dim = dim
        for i, ch in enumerate(channels):
            self.add_module(f"mlp_{i}", nn.Sequential(nn.Linear(ch, dim), nn.ReLU(), nn.Linear(dim, dim)))

    @classmethod
    def for_state(cls, state: dict[str, torch.Tensor]) -> PatchProjector:
        """Heads shaped like a saved state dict's `mlp_<i>.0.weight` tensors (layers 0..n-1, each
        (dim, channels)); ValueError when the keys are not such a series."""
        n = sum(1 for k in state if k.startswith("mlp_") and k.endswith(".0.weight"))
        firsts = [state.get(f"mlp_{i}.0.weight") for i in range(n)]
        if not n or any(w is None or w.ndim != 2 for w in firsts):
            raise ValueError(f"not PatchNCE heads (expected mlp_<i>.0.weight for i = 0..n-1; keys start "
                             f"{sorted(state)[:4]})")
        return cls([w.shape[1] for w in firsts], firsts[0].shape[0])

    @classmethod
    def for_features(cls, feats: list[torch.Tensor], dim: int = 256) -> PatchProjector:
        """Heads sized from example features (the lazy creation of the reference, made explicit)."""
        return cls([f.shape[1] for f in feats], dim)

    def project(self, layer: int, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(getattr(self, f"mlp_{layer}")(vectors), dim=-1, eps=1e-7)

    def forward(
        self,
        feats: list[torch.Tensor],
        num_patches: int,
        patch_ids: list[torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Embeddings (B*num_patches, dim) per layer and the location indices used.

        `num_patches` 0 embeds every location and returns (B, dim, H, W) maps instead.
        """
        out, ids = [], []
        for i, feat in enumerate(feats):
            b, c, h, w = feat.shape
            flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
            if num_patches == 0:
                emb = self.project(i, flat)
                out.append(emb.permute(0, 2, 1).reshape(b, self.dim, h, w))
                ids.append(torch.arange(h * w, device=feat.device))
                continue
            idx = patch_ids[i] if patch_ids is not None else to_device(
                sample_locations(h * w, num_patches, generator), feat.device)
            out.append(self.project(i, flat[:, idx].reshape(-1, c)))
            ids.append(idx)
        return out, ids


def sample_locations(count: int, num_patches: int, generator: torch.Generator | None) -> torch.Tensor:
    """`num_patches` distinct locations of `count`, drawn on the CPU (the same draws on every device)."""
    return torch.randperm(count, generator=generator)[: min(num_patches, count)]


def to_device(idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU index tensor on `device`; to a GPU without making the host wait (pinned, non-blocking copy)."""
    if device.type == "cuda":
        return idx.pin_memory().to(device, non_blocking=True)
    return idx.to(device)

