"""SinCUT training model: StyleGAN2 G and D, PatchNCE heads F, and one training step.

Losses (reference `SinCUTModel`):
  D: 0.5 * (GAN(D(G(x)), fake) + GAN(D(y), real)) + R1, with R1 = 0.5 * lambda_R1 * |grad_y D(y)|².
  G: GAN(D(G(x)), real) + 0.5 * (PatchNCE(x, G(x)) + PatchNCE(y, G(y))) + lambda_idt * L1(G(y), y).

Same maths as the reference, less work:
  * PatchNCE keys are the encoder features G's forward pass already computed for (x, y) (the
    reference encodes x and y again; keys carry no gradient, so nothing changes).
  * SinCUT samples one location per layer, so each query is encoded on just its receptive field
    (a 26x26 input window for layer 4 of a 64x64 crop) instead of the whole crop; the features,
    and so the loss and its gradients, are the same.
  * D's weights are frozen while G's loss back-propagates through it.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import gan_loss, layered_patch_nce
from ..models.common import TrainableModel, frozen, init_weights
from ..nets.heads import PatchProjector, sample_locations, to_device
from ..nets.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from .config import SinCUTModelConfig


def r1_penalty(pred_real: torch.Tensor, real: torch.Tensor, weight: float) -> torch.Tensor:
    """0.5 * weight * E_batch |d sum(D(real)) / d real|², differentiable w.r.t. D (create_graph).

    `real` must require grad and `pred_real` must be D(real). With tiling, the logits of all
    tiles of a crop are summed, as the reference does.
    """
    (grad,) = torch.autograd.grad(pred_real.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean() * (0.5 * weight)


def identity_loss(idt: torch.Tensor, real: torch.Tensor, weight: float) -> torch.Tensor:
    """weight * L1(G(y), y): keeps target-domain content unchanged."""
    return F.l1_loss(idt, real) * weight


class SinCUTModel(TrainableModel):
    def __init__(self, cfg: SinCUTModelConfig):
        super().__init__()
        self.cfg = cfg
        self.G = StyleGAN2Generator(cfg.generator)  # StyleGAN2 nets keep their N(0,1) init
        self.D = StyleGAN2Discriminator(cfg.discriminator)
        self.F = PatchProjector(self.G.layer_channels(cfg.nce_layers), cfg.head_dim)
        init_weights(self.F, "xavier", cfg.head_init_gain)
        self._noise: torch.Generator | None = None  # G's noise generator in training, on the training device
        self.G_ema: StyleGAN2Generator | None = None  # see average_generator
        self._ema_beta, self._ema_steps = 0.0, 0

    def average_generator(self, half_life: float) -> None:
        """Keep `G_ema`, an exponential moving average of G's weights with this half-life in iterations, updated
        after every step: what `inference_generator` translates with. At the end of a short schedule G itself is
        one draw of a noisy process (its picture swings from one preview to the next); the average settles."""
        if not 0 < half_life < math.inf:
            raise ValueError(f"the half-life of G's weight average must be a finite number of iterations above 0, "
                             f"got {half_life}")
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self._ema_beta, self._ema_steps = 0.5 ** (1 / half_life), 0

    @property
    def inference_generator(self) -> StyleGAN2Generator:
        """The generator previews, translations and exports use: G's weight average where one is kept, else G."""
        return self.G if self.G_ema is None else self.G_ema

    @torch.no_grad()
    def _update_average(self) -> None:
        self._ema_steps += 1
        t = self._ema_steps
        # Early on, the mean of roughly the last tenth of the steps: the random start fades out within a few.
        beta = min(self._ema_beta, (1 + t) / (10 + t))
        torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1 - beta)

    def optimizer_params(self) -> dict[str, list[nn.Parameter]]:
        # The reference gives F its own Adam with G's settings; Adam is per-parameter, so one is the same.
        return {"G": [*self.G.parameters(), *self.F.parameters()], "D": list(self.D.parameters())}

    def inference_modules(self) -> dict[str, nn.Module]:
        return {"G": self.inference_generator, "F": self.F}

    def training_modules(self) -> dict[str, nn.Module]:
        return {"D": self.D}

    def nce_loss(
        self, key_feats: list[torch.Tensor], images: torch.Tensor, rng: torch.Generator | None
    ) -> torch.Tensor:
        """Mean over layers of lambda_NCE * PatchNCE between `images` (queries) and the keys.

        Fresh random locations on every call, as the reference. A query only needs the encoder
        features at its few locations, so each layer is encoded on just their receptive field
        (`encode_window`, exact) unless that would cost more than encoding everything.
        """
        c = self.cfg
        # The locations are drawn on the CPU, where the windows below are worked out (no device round trip).
        host_ids = [sample_locations(f.shape[-2] * f.shape[-1], c.num_patches, rng) for f in key_feats]
        ids = [to_device(idx, images.device) for idx in host_ids]
        with torch.no_grad():  # keys are detached in PatchNCE anyway: no graph needed
            keys, _ = self.F(key_feats, c.num_patches, ids)
        size = tuple(images.shape[-2:])
        # Per layer: the sampled locations as (row, col) on the device and their bounding box.
        boxes = []
        for host, idx, feat in zip(host_ids, ids, key_feats, strict=True):
            w = feat.shape[-1]
            r, col = idx // w, idx % w
            hr, hc = host // w, host % w
            boxes.append((r, col, (int(hr.min()), int(hr.max()) + 1), (int(hc.min()), int(hc.max()) + 1)))
        windows = [self.G.input_window(layer, b[2], b[3], size) for layer, b in zip(c.nce_layers, boxes, strict=True)]
        if sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in windows) < size[0] * size[1]:
            queries = []
            for i, (layer, (r, col, rows, cols)) in enumerate(zip(c.nce_layers, boxes, strict=True)):
                win = self.G.encode_window(images, layer, rows, cols)
                local = (r - rows[0]) * win.shape[-1] + (col - cols[0])
                vec = win.flatten(2)[:, :, local].transpose(1, 2)  # (B, P, C), as PatchProjector orders them
                queries.append(self.F.project(i, vec.reshape(-1, vec.shape[-1])))
        else:
            queries, _ = self.F(self.G.encode(images, c.nce_layers), c.num_patches, ids)
        return layered_patch_nce(queries, keys, images.shape[0], c.nce, c.lambda_nce)

    def _noise_generator(self, rng: torch.Generator, device: torch.device) -> torch.Generator:
        """G's noise for this step, on `device`, seeded from the step's generator without drawing from it (its
        draws, the PatchNCE locations, stay as they were): a run repeats exactly with its seed, resumed or not."""
        if self._noise is None or self._noise.device != device:
            self._noise = torch.Generator(device=device)
        return self._noise.manual_seed(rng.initial_seed() ^ 0x5EED)

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict[str, torch.Tensor]:
        """One D update then one G (+F) update; returns the loss values."""
        c, layers, n, device = self.cfg, self.cfg.nce_layers, real_a.shape[0], real_a.device
        use_nce = c.lambda_nce > 0
        with_b = (c.nce_idt and use_nce) or c.lambda_idt > 0
        with self.autocast(device), self.G.noise_from(self._noise_generator(rng, device)):
            real = torch.cat([real_a, real_b]) if with_b else real_a
            fake, feats = self.G(real, layers)
            fake_b = fake[:n]

            # Discriminator: non-saturating GAN + R1 on the real images only.
            pred_fake = self.D(fake_b.detach())
            real_b_d = real_b.detach().requires_grad_(c.lambda_r1 > 0)
            pred_real = self.D(real_b_d)
            loss_d_fake = gan_loss(pred_fake, False, c.gan_mode)
            loss_d_real = gan_loss(pred_real, True, c.gan_mode)
            loss_d = 0.5 * (loss_d_fake + loss_d_real)
            logs = {"D_fake": loss_d_fake.detach(), "D_real": loss_d_real.detach()}
            if c.lambda_r1 > 0:
                loss_r1 = r1_penalty(pred_real, real_b_d, c.lambda_r1)
                loss_d = loss_d + loss_r1
                logs["D_R1"] = loss_r1.detach()
        self.update("D", loss_d)
        logs["D"] = loss_d.detach()

        # Generator (+ heads).
        with self.autocast(device):
            with frozen(self.D):
                loss_g = gan_loss(self.D(fake_b), True, c.gan_mode, for_discriminator=False) * c.lambda_gan
            logs["G_GAN"] = loss_g.detach()
            if use_nce:
                keys = [f.detach() for f in feats]
                loss_nce = self.nce_loss([k[:n] for k in keys], fake_b, rng)
                logs["NCE"] = loss_nce.detach()
                if c.nce_idt:
                    loss_nce_y = self.nce_loss([k[n:] for k in keys], fake[n:], rng)
                    logs["NCE_Y"] = loss_nce_y.detach()
                    loss_nce = 0.5 * (loss_nce + loss_nce_y)
                loss_g = loss_g + loss_nce
            if c.lambda_idt > 0:
                loss_idt = identity_loss(fake[n:], real_b, c.lambda_idt)
                logs["idt"] = loss_idt.detach()
                loss_g = loss_g + loss_idt
        self.update("G", loss_g)
        logs["G"] = loss_g.detach()
        if self.G_ema is not None:
            self._update_average()
        return logs
