"""Losses: PatchNCE (cross-entropy, focal, PUT-pruned) and the GAN objectives."""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .config import GANMode, NCEConfig

# Logit given to a query's own location in the negative set, as the reference
# implementation does: after division by the temperature it is ~-143, i.e. zero weight.
_MASKED_LOGIT = -10.0


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 -> fp32; fp32 and fp64 unchanged (the tests compare against fp64 hand values)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _autocast_off(device: torch.device):
    """Autocast disabled for `device`'s type (a no-op context where autocast does not exist)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):
        return contextlib.nullcontext()


def nce_logits(query: torch.Tensor, key: torch.Tensor, batch_size: int, cfg: NCEConfig) -> torch.Tensor:
    """Logits (N, 1 + M): column 0 is the positive, the rest are negatives.

    `query`/`key` are (N, D) L2-normalised patch embeddings where N = batch_size * patches and
    row i of `key` is the positive of row i of `query`. Keys carry no gradient.

    The similarities are always computed in (at least) fp32, also under bf16/fp16 autocast:
    divided by tau = 0.07, a bf16 dot product's rounding (spacing 2^-8 near 1) becomes logit errors
    of up to ~0.14 (measured), enough to reorder PUT's top-k near ties. The matmul is small (N x N x D per
    image), so fp32 costs little; the gradient flows back to `query` in its own dtype.
    """
    with _autocast_off(query.device):
        return _nce_logits_fp32(_at_least_fp32(query), _at_least_fp32(key.detach()), batch_size, cfg)


def _nce_logits_fp32(query: torch.Tensor, key: torch.Tensor, batch_size: int, cfg: NCEConfig) -> torch.Tensor:
    n, dim = query.shape
    pos = (query * key).sum(dim=1, keepdim=True)
    groups = 1 if cfg.negatives_from_minibatch else batch_size
    q = query.view(groups, -1, dim)
    k = key.view(groups, -1, dim)
    neg = torch.bmm(q, k.transpose(1, 2))  # (groups, P, P)
    eye = torch.eye(neg.shape[1], dtype=torch.bool, device=neg.device)
    neg = neg.masked_fill(eye, _MASKED_LOGIT).view(n, -1)
    if cfg.prune_k is not None and cfg.prune_k < neg.shape[1] - 1:
        # Per query (row): the k hardest negatives. The masked self-similarity can never win.
        neg = neg.topk(cfg.prune_k, dim=1).values
    return torch.cat([pos, neg], dim=1) / cfg.temperature


def patch_nce_loss(query: torch.Tensor, key: torch.Tensor, batch_size: int, cfg: NCEConfig) -> torch.Tensor:
    """Per-query PatchNCE loss, shape (N,)."""
    logits = nce_logits(query, key, batch_size, cfg)
    log_p = F.log_softmax(logits.float(), dim=1)[:, 0]
    if cfg.loss == "ce":
        return -log_p
    if cfg.loss == "focal":
        # FL = -alpha (1-p)^gamma log p; the target is always the positive, so alpha is a plain scale.
        p = log_p.exp()
        return -cfg.focal_alpha * (1.0 - p).pow(cfg.focal_gamma) * log_p
    raise ValueError(f"unknown PatchNCE loss {cfg.loss!r}; use 'ce' or 'focal'")


def layered_patch_nce(
    queries: list[torch.Tensor], keys: list[torch.Tensor], batch_size: int, cfg: NCEConfig, weight: float
) -> torch.Tensor:
    """CUT's L_PatchNCE: the mean over encoder layers of the mean per-query loss, times `weight`."""
    losses = [patch_nce_loss(q, k, batch_size, cfg).mean() for q, k in zip(queries, keys, strict=True)]
    return torch.stack(losses).mean() * weight


def gan_loss(pred: torch.Tensor, target_is_real: bool, mode: GANMode, for_discriminator: bool = True) -> torch.Tensor:
    """Scalar GAN loss of discriminator logits `pred`.

    Hinge differs between D (margin) and G (-D(fake)); the others are symmetric.
    """
    pred = pred.float()
    if mode == "lsgan":
        return F.mse_loss(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(pred, torch.full_like(pred, 1.0 if target_is_real else 0.0))
    if mode == "nonsaturating":
        return F.softplus(-pred).mean() if target_is_real else F.softplus(pred).mean()
    if mode == "hinge":
        if not for_discriminator:
            return -pred.mean()
        return F.relu(1.0 - pred).mean() if target_is_real else F.relu(1.0 + pred).mean()
    raise ValueError(f"unknown GAN mode {mode!r}")


def discriminator_loss(pred: torch.Tensor, n_fake: int, mode: GANMode) -> torch.Tensor:
    """D's loss on one pass over fakes then reals (the first `n_fake` rows fake): half of each half's GAN
    loss, as the reference weighs D's two terms."""
    return 0.5 * (gan_loss(pred[:n_fake], False, mode) + gan_loss(pred[n_fake:], True, mode))
