"""Training in several processes: torch.distributed when torchrun launched the run, else nothing."""
from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


class Dist:
    """torch.distributed when launched by torchrun (WORLD_SIZE > 1), else a no-op."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.owned = self.world > 1 and not dist.is_initialized()
        if self.owned:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    def close(self) -> None:
        """Destroys the process group this object started, after a finished run. Left to the interpreter's
        exit, gloo's worker threads can be torn down while still joinable ("terminate called without an
        active exception": the rank aborts after a finished run) and NCCL warns of leaked resources. Not
        after a failure: NCCL's destroy waits for collectives queued for a peer that may never join them."""
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
        self.owned = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def broadcast(self, module: torch.nn.Module) -> None:
        if self.world > 1:
            for t in module.state_dict().values():
                dist.broadcast(t, 0)

    def sync_grads(self, params: Iterable[torch.nn.Parameter]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if self.world == 1 or not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()
