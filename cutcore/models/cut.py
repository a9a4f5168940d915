"""CUT / FastCUT training model (Park et al., ECCV 2020): G, PatchGAN D and PatchNCE heads F.

Behaviour follows the reference implementation. Two changes make it cheaper without changing
the maths: the PatchNCE keys reuse the encoder features that G's forward pass already computed
(the reference runs the encoder again on the same inputs), and the discriminator sees fake and
real in one batched pass (instance norm is per sample, so the outputs are identical).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..config import CUTModelConfig
from ..losses import discriminator_loss, gan_loss, layered_patch_nce
from ..nets import PatchGANDiscriminator, PatchProjector, ResnetGenerator
from .common import TrainableModel, frozen, init_weights


class CUTModel(TrainableModel):
    def __init__(self, cfg: CUTModelConfig):
        super().__init__()
        self.cfg = cfg
        self.G = ResnetGenerator(cfg.generator)
        self.D = PatchGANDiscriminator(cfg.discriminator)
        with torch.no_grad():
            probe = self.G.encode(torch.zeros(1, cfg.generator.in_channels, 16, 16), cfg.nce_layers)
        self.F = PatchProjector.for_features(probe, cfg.head_dim)
        for net in (self.G, self.D, self.F):
            init_weights(net, cfg.init, cfg.init_gain)

    def inference_modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "F": self.F}

    def training_modules(self) -> dict[str, nn.Module]:
        return {"D": self.D}

    def optimizer_params(self) -> dict[str, list[nn.Parameter]]:
        return {"G": [*self.G.parameters(), *self.F.parameters()], "D": list(self.D.parameters())}

    def nce_loss(self, feat_k: list[torch.Tensor], feat_q: list[torch.Tensor], rng: torch.Generator) -> torch.Tensor:
        """Mean over layers of lambda_NCE * PatchNCE(query patches of the output, key patches of the input)."""
        c = self.cfg
        with torch.no_grad():  # PatchNCE detaches the keys: no graph needed for them
            keys, ids = self.F(feat_k, c.num_patches, generator=rng)
        queries, _ = self.F(feat_q, c.num_patches, ids)
        return layered_patch_nce(queries, keys, feat_q[0].shape[0], c.nce, c.lambda_nce)

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict[str, torch.Tensor]:
        c, layers, n = self.cfg, self.cfg.nce_layers, real_a.shape[0]
        use_idt = c.nce_idt and c.lambda_nce > 0
        with_b = use_idt or c.lambda_l1_idt > 0  # G also translates the real B images
        flipped = c.flip_equivariance and torch.rand((), generator=rng).item() < 0.5
        with self.autocast(real_a.device):
            real = torch.cat([real_a, real_b]) if with_b else real_a
            if flipped:
                real = real.flip(3)
            fake, feats = self.G(real, layers)
            fake_b = fake[:n]

            # Discriminator: fake and real in one pass.
            pred = self.D(torch.cat([fake_b.detach(), real_b]))
            loss_d = discriminator_loss(pred, n, c.gan_mode)
        self.update("D", loss_d)

        with self.autocast(real_a.device):
            with frozen(self.D):
                loss_gan = gan_loss(self.D(fake_b), True, c.gan_mode, for_discriminator=False) * c.lambda_gan
            logs = {"D": loss_d.detach(), "G_GAN": loss_gan.detach()}
            loss_g = loss_gan
            if c.lambda_l1_idt > 0:
                loss_idt = (fake[n:] - real[n:]).abs().mean() * c.lambda_l1_idt
                logs["idt"] = loss_idt.detach()
                loss_g = loss_g + loss_idt
            if c.lambda_nce > 0:
                # Keys: encoder features of the unflipped inputs (detached, as PatchNCE never
                # back-propagates through keys). Reused from the forward pass unless it saw a flip.
                if flipped:
                    with torch.no_grad():
                        key_feats = self.G.encode(torch.cat([real_a, real_b]) if use_idt else real_a, layers)
                else:
                    key_feats = [f.detach() for f in feats]
                query_feats = self.G.encode(fake if use_idt else fake[:n], layers)
                if flipped:
                    query_feats = [f.flip(3) for f in query_feats]
                loss_nce = self.nce_loss([f[:n] for f in key_feats], [f[:n] for f in query_feats], rng)
                logs["NCE"] = loss_nce.detach()
                if use_idt:
                    loss_nce_y = self.nce_loss([f[n:] for f in key_feats], [f[n:] for f in query_feats], rng)
                    logs["NCE_Y"] = loss_nce_y.detach()
                    loss_nce = 0.5 * (loss_nce + loss_nce_y)
                loss_g = loss_g + loss_nce
        self.update("G", loss_g)
        logs["G"] = loss_g.detach()
        return logs
