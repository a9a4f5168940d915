"""CycleGAN baseline (Zhu et al., ICCV 2017) with the reference defaults: cycle λ=10, identity 0.5, pool 50."""
from __future__ import annotations

import random

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..config import CycleGANModelConfig
from ..losses import discriminator_loss, gan_loss
from ..nets import PatchGANDiscriminator, ResnetGenerator
from .common import TrainableModel, frozen, init_weights


class ImagePool:
    """History of generated images shown to D (Shrivastava et al. 2017)."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, batch: torch.Tensor, rng: random.Random) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif rng.random() < 0.5:
                i = rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)


class CycleGANModel(TrainableModel):
    def __init__(self, cfg: CycleGANModelConfig):
        super().__init__()
        self.cfg = cfg
        self.G_A, self.G_B = ResnetGenerator(cfg.generator), ResnetGenerator(cfg.generator)  # A->B, B->A
        self.D_A, self.D_B = PatchGANDiscriminator(cfg.discriminator), PatchGANDiscriminator(cfg.discriminator)
        for net in (self.G_A, self.G_B, self.D_A, self.D_B):
            init_weights(net, cfg.init, cfg.init_gain)
        self.pools = {"A": ImagePool(cfg.pool_size), "B": ImagePool(cfg.pool_size)}

    @property
    def G(self) -> ResnetGenerator:
        return self.G_A

    def inference_modules(self) -> dict[str, nn.Module]:
        return {"G": self.G_A, "G_BA": self.G_B}

    def training_modules(self) -> dict[str, nn.Module]:
        return {"D_A": self.D_A, "D_B": self.D_B}

    def optimizer_params(self) -> dict[str, list[nn.Parameter]]:
        return {"G": [*self.G_A.parameters(), *self.G_B.parameters()],
                "D": [*self.D_A.parameters(), *self.D_B.parameters()]}

    def extra_state(self) -> dict[str, torch.Tensor]:
        """The image pools, as `pool.A` / `pool.B` stacks: a resume shows D the same history."""
        return {f"pool.{k}": torch.stack(p.images) for k, p in self.pools.items() if p.images}

    def load_extra_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for k, p in self.pools.items():
            p.images = list(tensors[f"pool.{k}"].unbind(0)) if f"pool.{k}" in tensors else []

    def train_step(self, real_a: torch.Tensor, real_b: torch.Tensor, rng: torch.Generator) -> dict[str, torch.Tensor]:
        c, n = self.cfg, real_a.shape[0]
        lam_idt = c.lambda_identity * c.lambda_cycle
        with self.autocast(real_a.device):
            # Batched passes (instance norm is per sample): G_B(B, A) -> fake_A, idt_B;
            # G_A(A, fake_A, B) -> fake_B, rec_B, idt_A; G_B(fake_B) -> rec_A.
            fake_a, idt_b = self.G_B(torch.cat([real_b, real_a])).split(n)
            fake_b, rec_b, idt_a = self.G_A(torch.cat([real_a, fake_a, real_b])).split(n)
            rec_a = self.G_B(fake_b)
            with frozen(self.D_A, self.D_B):
                loss_gan_a = gan_loss(self.D_A(fake_b), True, c.gan_mode, for_discriminator=False)
                loss_gan_b = gan_loss(self.D_B(fake_a), True, c.gan_mode, for_discriminator=False)
            loss_cycle = c.lambda_cycle * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
            loss_idt = lam_idt * (F.l1_loss(idt_a, real_b) + F.l1_loss(idt_b, real_a))
            loss_g = loss_gan_a + loss_gan_b + loss_cycle + loss_idt
        self.update("G", loss_g)

        pool_rng = random.Random(int(torch.randint(2**31, (), generator=rng)))
        with self.autocast(real_a.device):
            pa = self.D_A(torch.cat([self.pools["B"].query(fake_b, pool_rng), real_b]))
            pb = self.D_B(torch.cat([self.pools["A"].query(fake_a, pool_rng), real_a]))
            loss_d_a, loss_d_b = discriminator_loss(pa, n, c.gan_mode), discriminator_loss(pb, n, c.gan_mode)
        self.update("D", loss_d_a + loss_d_b)
        return {
            "G": loss_g.detach(), "G_GAN": (loss_gan_a + loss_gan_b).detach(), "cycle": loss_cycle.detach(),
            "idt": loss_idt.detach(), "D": (loss_d_a + loss_d_b).detach(),
        }
