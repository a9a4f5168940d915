"""PatchNCE (CE, focal, PUT pruning, minibatch negatives) and GAN losses against hand-computed values."""
from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch

from cutcore.config import NCEConfig
from cutcore.losses import gan_loss, nce_logits, patch_nce_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def _unit(rows) -> torch.Tensor:
    t = torch.tensor(rows, dtype=torch.float64)
    return t / t.norm(dim=1, keepdim=True)


def _angles(*degrees) -> torch.Tensor:
    r = np.deg2rad(degrees)
    return torch.tensor(np.stack([np.cos(r), np.sin(r)], 1), dtype=torch.float64)


def reference_nce(q: np.ndarray, k: np.ndarray, groups: int, temperature: float, prune_k: int | None = None,
                  focal: tuple[float, float] | None = None) -> np.ndarray:
    """Per-query loss written out from the definitions, one query at a time (no vectorised tricks).

    Row i's negatives are the keys j != i of its own group; PUT keeps the prune_k most similar of
    them (for this query); the self-similarity is a logit of -10 (before the temperature) when
    nothing is pruned, as in the reference.
    """
    n = q.shape[0]
    per = n // groups
    out = []
    for i in range(n):
        g0 = (i // per) * per
        pos = float(q[i] @ k[i])
        negs = [float(q[i] @ k[j]) for j in range(g0, g0 + per) if j != i]
        if prune_k is not None and prune_k < len(negs):
            negs = sorted(negs)[-prune_k:]
        else:
            negs = negs + [-10.0]
        logits = np.array([pos] + negs) / temperature
        m = logits.max()
        log_p = logits[0] - (m + math.log(np.exp(logits - m).sum()))
        if focal is None:
            out.append(-log_p)
        else:
            gamma, alpha = focal
            out.append(-alpha * (1 - math.exp(log_p)) ** gamma * log_p)
    return np.array(out)


# --- cross-entropy PatchNCE ----------------------------------------------------------------


def test_ce_two_orthogonal_patches_literal_value():
    # q = k = e1, e2; T = 1. Row 0: pos 1, negatives [masked -10, e1.e2 = 0].
    q = torch.eye(2, dtype=torch.float64)
    loss = patch_nce_loss(q, q.clone(), 1, NCEConfig(temperature=1.0))
    expected = math.log(1 + math.exp(-1) + math.exp(-11))  # -log(e / (e + e^-10 + e^0))
    assert loss.shape == (2,)
    assert loss.tolist() == pytest.approx([expected, expected], rel=1e-6)


def test_ce_logits_layout_three_patches_dim2():
    q = _angles(0, 30, 100)
    k = _angles(10, 40, 180)
    cfg = NCEConfig(temperature=0.5)
    logits = nce_logits(q, k, 1, cfg).numpy()
    qn, kn = q.numpy(), k.numpy()
    sim = qn @ kn.T
    # Column 0 is the positive q_i.k_i; columns 1.. are q_i.k_j with the diagonal set to -10.
    expected = np.concatenate([np.diag(sim)[:, None], np.where(np.eye(3, dtype=bool), -10.0, sim)], 1) / 0.5
    np.testing.assert_allclose(logits, expected, rtol=1e-12, atol=1e-12)
    # And the loss is the cross-entropy of those logits with target 0.
    loss = patch_nce_loss(q, k, 1, cfg).numpy()
    by_hand = -(expected[:, 0] - np.log(np.exp(expected).sum(1)))
    np.testing.assert_allclose(loss, by_hand, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, reference_nce(qn, kn, 1, 0.5), rtol=1e-5, atol=1e-6)


def test_ce_default_temperature_random():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(8, 5, generator=g, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(8, 5, generator=g, dtype=torch.float64), dim=1)
    loss = patch_nce_loss(q, k, 2, NCEConfig())
    np.testing.assert_allclose(loss.numpy(), reference_nce(q.numpy(), k.numpy(), 2, 0.07), rtol=1e-5, atol=1e-6)


def test_keys_get_no_gradient_queries_do():
    g = torch.Generator().manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=1).requires_grad_()
    k = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=1).requires_grad_()
    patch_nce_loss(q, k, 2, NCEConfig()).sum().backward()
    assert k.grad is None
    assert q.grad is not None and q.grad.abs().sum() > 0


def test_diagonal_is_masked_even_when_self_similarity_is_highest():
    # Query 0 is identical to key 0 *and* key 1 is far away: without the mask the self-similarity
    # would appear as a negative with logit 1/T. With the mask its weight is exp(-10/T) ~ 0.
    q = _angles(0, 90)
    k = _angles(0, 90)
    cfg = NCEConfig(temperature=0.07)
    logits = nce_logits(q, k, 1, cfg)
    assert logits[0, 1].item() == pytest.approx(-10.0 / 0.07)
    assert logits[1, 2].item() == pytest.approx(-10.0 / 0.07)
    assert logits[0, 2].item() == pytest.approx(0.0, abs=1e-12)
    loss = patch_nce_loss(q, k, 1, cfg)
    # -log(e^{1/T} / (e^{1/T} + e^{0} + e^{-10/T}))
    expected = math.log1p(math.exp(-1 / 0.07) + math.exp(-11 / 0.07))
    assert loss.tolist() == pytest.approx([expected, expected], abs=5e-8)
    assert (loss < 1e-5).all()  # unmasked, the self-similarity would tie the positive: loss ~ log 2


# --- negatives: per image vs whole minibatch -------------------------------------------------


def test_negatives_grouped_per_image_vs_minibatch():
    # 2 images x 2 patches. Image 0: patches at 0 and 90 deg; image 1: at 10 and 100 deg.
    q = _angles(0, 90, 10, 100)
    k = _angles(0, 90, 10, 100)
    t = 1.0
    per_image = nce_logits(q, k, 2, NCEConfig(temperature=t))
    assert per_image.shape == (4, 1 + 2)  # each query: positive + 2 same-image slots (one masked)
    # Query 0 (0 deg): the only real negative is key 1 (90 deg), cos = 0.
    np.testing.assert_allclose(per_image[0].numpy(), [1.0, -10.0, 0.0], atol=1e-12)
    # Query 2 (image 1, 10 deg): its negatives are image 1's keys only -> key 3 (100 deg), cos 90 = 0.
    np.testing.assert_allclose(per_image[2].numpy(), [1.0, -10.0, 0.0], atol=1e-12)

    pooled = nce_logits(q, k, 2, NCEConfig(temperature=t, negatives_from_minibatch=True))
    assert pooled.shape == (4, 1 + 4)
    c10, c80, c100 = (math.cos(math.radians(a)) for a in (10, 80, 100))
    # Query 0 now also sees image 1's keys (10 and 100 deg).
    np.testing.assert_allclose(pooled[0].numpy(), [1.0, -10.0, 0.0, c10, c100], atol=1e-12)
    np.testing.assert_allclose(pooled[2].numpy(), [1.0, c10, c80, -10.0, 0.0], atol=1e-12)

    l_img = patch_nce_loss(q, k, 2, NCEConfig(temperature=t)).numpy()
    l_all = patch_nce_loss(q, k, 2, NCEConfig(temperature=t, negatives_from_minibatch=True)).numpy()
    np.testing.assert_allclose(l_img, reference_nce(q.numpy(), k.numpy(), 2, t), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l_all, reference_nce(q.numpy(), k.numpy(), 1, t), rtol=1e-5, atol=1e-6)
    # The close negatives of the other image make the pooled task harder.
    assert (l_all > l_img + 0.1).all()


# --- focal PatchNCE ---------------------------------------------------------------------------


def test_focal_gamma0_alpha1_equals_ce():
    g = torch.Generator().manual_seed(2)
    q = torch.nn.functional.normalize(torch.randn(10, 3, generator=g, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(10, 3, generator=g, dtype=torch.float64), dim=1)
    ce = patch_nce_loss(q, k, 2, NCEConfig(loss="ce"))
    focal = patch_nce_loss(q, k, 2, NCEConfig(loss="focal", focal_gamma=0.0, focal_alpha=1.0))
    torch.testing.assert_close(focal, ce, rtol=1e-12, atol=0)


def test_focal_gamma2_alpha025_literal_value():
    q = torch.eye(2, dtype=torch.float64)
    cfg = NCEConfig(temperature=1.0, loss="focal", focal_gamma=2.0, focal_alpha=0.25)
    loss = patch_nce_loss(q, q.clone(), 1, cfg)
    p = math.e / (math.e + math.exp(-10) + 1.0)
    expected = -0.25 * (1 - p) ** 2 * math.log(p)
    assert loss.tolist() == pytest.approx([expected, expected], rel=1e-6)
    assert expected == pytest.approx(0.00566, abs=2e-5)  # sanity of the hand value itself


def test_focal_downweights_easy_queries_more_than_hard():
    q = _angles(0, 90, 45)
    k = _angles(0, 90, 80)  # query 2 is hard: its positive is 35 deg off, a negative is 45 deg off
    ce = patch_nce_loss(q, k, 1, NCEConfig(temperature=0.2)).numpy()
    fl = patch_nce_loss(q, k, 1, NCEConfig(temperature=0.2, loss="focal", focal_gamma=2.0, focal_alpha=1.0)).numpy()
    ratio = fl / ce
    assert ratio[2] > ratio[0] and ratio[2] > ratio[1]
    np.testing.assert_allclose(fl, reference_nce(q.numpy(), k.numpy(), 1, 0.2, focal=(2.0, 1.0)), rtol=1e-5, atol=1e-6)


# --- PUT negative pruning ---------------------------------------------------------------------

# Four unit keys/queries in 2-D. Similarities q_i.k_j = cos(angle_i - angle_j).
_PUT_ANGLES = (0, 20, 150, 170)


def test_put_keeps_topk_negatives_per_query_row():
    q = _angles(*_PUT_ANGLES)
    k = _angles(*_PUT_ANGLES)
    logits = nce_logits(q, k, 1, NCEConfig(temperature=1.0, prune_k=1))
    assert logits.shape == (4, 2)
    cos = lambda d: math.cos(math.radians(d))
    # Per row: the single most similar *other* key. Row 0 (0 deg) -> 20 deg; row 2 (150) -> 170; ...
    np.testing.assert_allclose(logits[:, 1].numpy(), [cos(20), cos(20), cos(20), cos(20)], atol=1e-12)

    logits2 = nce_logits(q, k, 1, NCEConfig(temperature=1.0, prune_k=2)).numpy()
    # Row 0 (0 deg): negatives at 20, 150, 170 deg -> cos 20 and cos 150 are the top two.
    assert sorted(logits2[0, 1:]) == pytest.approx(sorted([cos(20), cos(150)]), abs=1e-12)
    # Row 2 (150 deg): negatives at 0, 20, 170 deg -> cos 20 (170) and cos 130 (20).
    assert sorted(logits2[2, 1:]) == pytest.approx(sorted([cos(20), cos(130)]), abs=1e-12)


def test_put_pruning_is_per_row_not_along_query_axis():
    # Asymmetric similarities: every query likes key 3 best, so a top-k taken along the query axis
    # (per key column) would keep different values than a per-row top-k.
    q = _angles(0, 30, 60, 90)
    k = _angles(200, 250, 300, 45)
    cfg = NCEConfig(temperature=1.0, prune_k=2)
    got = nce_logits(q, k, 1, cfg)[:, 1:].numpy()
    sim = q.numpy() @ k.numpy().T
    off = np.where(np.eye(4, dtype=bool), -np.inf, sim)
    per_row = np.sort(off, axis=1)[:, -2:]
    np.testing.assert_allclose(np.sort(got, axis=1), per_row, atol=1e-12)
    per_column = np.sort(np.sort(off, axis=0)[-2:, :].T, axis=1)  # what pruning the wrong axis would keep
    assert not np.allclose(np.sort(got, axis=1)[: per_column.shape[0]], per_column)
    loss = patch_nce_loss(q, k, 1, cfg).numpy()
    np.testing.assert_allclose(loss, reference_nce(q.numpy(), k.numpy(), 1, 1.0, prune_k=2), rtol=1e-5, atol=1e-6)


def test_put_pruning_per_image_groups():
    g = torch.Generator().manual_seed(3)
    q = torch.nn.functional.normalize(torch.randn(12, 4, generator=g, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(12, 4, generator=g, dtype=torch.float64), dim=1)
    for groups, pooled in ((3, False), (1, True)):
        cfg = NCEConfig(temperature=0.1, prune_k=2, negatives_from_minibatch=pooled)
        loss = patch_nce_loss(q, k, 3, cfg).numpy()
        np.testing.assert_allclose(loss, reference_nce(q.numpy(), k.numpy(), groups, 0.1, prune_k=2),
                                   rtol=1e-5, atol=1e-6)


def test_put_k_at_least_all_negatives_is_no_pruning():
    g = torch.Generator().manual_seed(4)
    q = torch.nn.functional.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=1)
    k = torch.nn.functional.normalize(torch.randn(6, 3, generator=g, dtype=torch.float64), dim=1)
    full = patch_nce_loss(q, k, 2, NCEConfig())
    for kk in (2, 3, 50):  # 3 patches per image -> 2 real negatives
        torch.testing.assert_close(patch_nce_loss(q, k, 2, NCEConfig(prune_k=kk)), full, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(patch_nce_loss(q, k, 2, NCEConfig(prune_k=1)), full)


def test_put_plus_focal():
    q = _angles(0, 30, 60, 90)
    k = _angles(200, 250, 300, 45)
    cfg = NCEConfig(temperature=0.5, prune_k=2, loss="focal", focal_gamma=2.0, focal_alpha=0.25)
    loss = patch_nce_loss(q, k, 1, cfg).numpy()
    np.testing.assert_allclose(
        loss, reference_nce(q.numpy(), k.numpy(), 1, 0.5, prune_k=2, focal=(2.0, 0.25)), rtol=1e-5, atol=1e-6)
    # Row 0 by hand: positive cos(200), kept negatives cos(45) and cos(60) (300 deg -> 60 deg apart).
    c = [math.cos(math.radians(d)) for d in (200, 45, 60)]
    z = [x / 0.5 for x in c]
    p = math.exp(z[0]) / sum(math.exp(v) for v in z)
    assert loss[0] == pytest.approx(-0.25 * (1 - p) ** 2 * math.log(p), rel=1e-6)


def test_unknown_nce_loss_raises():
    q = torch.eye(2)
    with pytest.raises(ValueError, match="unknown PatchNCE loss"):
        patch_nce_loss(q, q, 1, NCEConfig(loss="bogus"))  # type: ignore[arg-type]


# --- against the reference PatchNCELoss --------------------------------------------------------


@pytest.mark.parametrize("all_negatives", [False, True])
def test_matches_reference_patchnce(reference_source, tmp_path, all_negatives):
    ns: dict = {}
    exec(compile(reference_source("models/patchnce.py"), "reference_patchnce.py", "exec"), ns)
    opt = types.SimpleNamespace(nce_includes_all_negatives_from_minibatch=all_negatives, batch_size=2, nce_T=0.07)
    ref = ns["PatchNCELoss"](opt)
    g = torch.Generator().manual_seed(5)
    q = torch.nn.functional.normalize(torch.randn(2 * 16, 8, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(2 * 16, 8, generator=g), dim=1)
    ours = patch_nce_loss(q, k, 2, NCEConfig(negatives_from_minibatch=all_negatives))
    torch.testing.assert_close(ours, ref(q, k), rtol=1e-5, atol=1e-6)


# --- GAN losses -----------------------------------------------------------------------------

_PRED = torch.tensor([[0.5, -1.0], [2.0, 0.0]])


def _softplus(x):
    return math.log1p(math.exp(x))


@pytest.mark.parametrize(
    "mode,real,fake,gen",
    [
        ("lsgan", (0.25 + 4 + 1 + 1) / 4, (0.25 + 1 + 4 + 0) / 4, (0.25 + 4 + 1 + 1) / 4),
        ("vanilla",
         sum(_softplus(-p) for p in (0.5, -1, 2, 0)) / 4, sum(_softplus(p) for p in (0.5, -1, 2, 0)) / 4,
         sum(_softplus(-p) for p in (0.5, -1, 2, 0)) / 4),
        ("nonsaturating",
         sum(_softplus(-p) for p in (0.5, -1, 2, 0)) / 4, sum(_softplus(p) for p in (0.5, -1, 2, 0)) / 4,
         sum(_softplus(-p) for p in (0.5, -1, 2, 0)) / 4),
        ("hinge", (0.5 + 2 + 0 + 1) / 4, (1.5 + 0 + 3 + 1) / 4, -(0.5 - 1 + 2 + 0) / 4),
    ],
)
def test_gan_loss_hand_values(mode, real, fake, gen):
    assert gan_loss(_PRED, True, mode).item() == pytest.approx(real, rel=1e-6)
    assert gan_loss(_PRED, False, mode).item() == pytest.approx(fake, rel=1e-6)
    assert gan_loss(_PRED, True, mode, for_discriminator=False).item() == pytest.approx(gen, rel=1e-6)


def test_gan_loss_gradients_point_the_right_way():
    for mode in ("lsgan", "vanilla", "nonsaturating", "hinge"):
        # D on reals wants larger logits; G wants its fakes judged real -> larger logits too.
        p = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
        gan_loss(p, True, mode).backward()
        assert (p.grad < 0).all(), mode
        p = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
        gan_loss(p, False, mode).backward()
        assert (p.grad > 0).all(), mode
        p = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
        gan_loss(p, True, mode, for_discriminator=False).backward()
        assert (p.grad < 0).all(), mode


def test_gan_loss_matches_reference(reference_networks):
    g = torch.Generator().manual_seed(6)
    pred = torch.randn(3, 1, 5, 5, generator=g)
    for mode in ("lsgan", "vanilla", "nonsaturating"):
        ref = reference_networks.GANLoss(mode)
        for real in (True, False):
            torch.testing.assert_close(gan_loss(pred, real, mode), ref(pred, real).mean())


def test_gan_loss_unknown_mode():
    with pytest.raises(ValueError, match="unknown GAN mode"):
        gan_loss(_PRED, True, "wgan")  # type: ignore[arg-type]


# --- fp32 similarities under bf16 autocast (issue 12) ----------------------------------------


def _close_pairs(n: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """fp32 unit queries and keys with q_i.k_i ~ 0.9: positives sit where bf16's spacing is 2^-8."""
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
    k = torch.nn.functional.normalize(
        q + 0.35 * torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1), dim=1
    )
    return q, k


@pytest.mark.parametrize("cfg", [NCEConfig(), NCEConfig(prune_k=3), NCEConfig(negatives_from_minibatch=True)],
                         ids=["ce", "put", "minibatch"])
def test_similarities_are_fp32_under_bf16_autocast(cfg):
    q, k = _close_pairs(16, 32, seed=7)  # tiny: bf16 matmul is emulated (slow) on AVX2-only CPUs
    ref_logits = nce_logits(q, k, 2, cfg)
    ref_loss = patch_nce_loss(q, k, 2, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = nce_logits(q, k, 2, cfg)
        loss = patch_nce_loss(q, k, 2, cfg)
    assert logits.dtype == torch.float32
    # A bf16 similarity divided by tau = 0.07 is off by up to ~0.03 here; fp32 agrees to rounding.
    assert (logits - ref_logits).abs().max().item() < 1e-2
    assert (loss - ref_loss).abs().max().item() < 1e-2
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)


def test_put_topk_near_tie_under_bf16_autocast():
    # Query e1; two negatives with similarity 0.9001 and 0.9030, which bf16 (spacing 2^-8 = 0.0039
    # near 0.9) rounds to one value. PUT with k = 1 must keep the 0.9030 one, at its fp32 logit.
    sims = torch.tensor([0.9001, 0.9030])
    q = torch.zeros(3, 2)
    q[:, 0] = 1.0
    k = torch.stack([torch.tensor([1.0, 0.0]), *[torch.stack([s, (1 - s * s).sqrt()]) for s in sims]])
    cfg = NCEConfig(prune_k=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = nce_logits(q, k, 1, cfg)
    assert logits[0, 1].item() == pytest.approx(0.9030 / 0.07, abs=1e-4)
    assert logits[0, 0].item() == pytest.approx(1.0 / 0.07, abs=1e-4)


def test_bf16_embeddings_gradient_flows_in_their_dtype():
    q, k = _close_pairs(8, 16, seed=8)
    qb = q.bfloat16().requires_grad_()
    kb = k.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = nce_logits(qb, kb, 2, NCEConfig())
        loss = patch_nce_loss(qb, kb, 2, NCEConfig()).mean()
    loss.backward()
    assert loss.dtype == torch.float32
    assert qb.grad is not None and qb.grad.dtype == torch.bfloat16 and qb.grad.abs().sum() > 0
    # Only the bf16 rounding of the embeddings themselves remains, not that of their products.
    ref = nce_logits(qb.detach().float(), kb.float(), 2, NCEConfig())
    torch.testing.assert_close(logits, ref, rtol=1e-5, atol=1e-5)
