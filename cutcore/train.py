"""The training loop: data, LR schedule, logging, sample grids, atomic checkpoints, exact resume.

Multi-process (torchrun) training averages gradients with one all-reduce per optimiser step:
the same update as DistributedDataParallel, without DDP's wrapper, which cannot follow the
several generator calls that PatchNCE makes before one backward.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from .checkpoint import (
    load_optimizer_state,
    load_tensors,
    module_state,
    optimizer_state,
    read_json,
    save_tensors,
    split_state,
    write_json,
)
from .config import RunConfig, config_field, from_dict, lr_factor
from .data import StepSampler, UnpairedDataset
from .imageio import tensor_grid
from .models import CycleGANModel, build_model
from .models.common import apply_lr


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class _Dist:
    """torch.distributed when launched by torchrun (WORLD_SIZE > 1), else a no-op."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

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


def read_log(path: Path) -> list[dict]:
    """log.jsonl records by step; a resumed run logs some steps twice and the later record wins."""
    if not path.is_file():
        return []
    by_step: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            by_step[rec["step"]] = rec
    return [by_step[s] for s in sorted(by_step)]


def training_seconds(records: Sequence[dict], until: int) -> float:
    """Wall time of the training loop up to step `until`: each record's sec_per_iter covers the
    steps since the previous record (evaluations and checkpoints in between included)."""
    total, prev = 0.0, 0
    for r in records:
        if r["step"] > until:
            break
        if isinstance(r.get("sec_per_iter"), (int, float)):
            total += r["sec_per_iter"] * (r["step"] - prev)
        prev = r["step"]
    return total


def checkpoint_dirs(out: Path) -> list[Path]:
    root = out / "checkpoints"
    return sorted(root.glob("step_*"), key=lambda p: int(p.name.split("_")[1])) if root.is_dir() else []


class Trainer:
    def __init__(self, cfg: RunConfig, out: str | Path):
        self.cfg, self.out = cfg, Path(out)
        t = cfg.train
        self.device = resolve_device(t.device)
        if self.device.type == "cuda" and "LOCAL_RANK" in os.environ:
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        self.dist = _Dist(self.device)
        torch.manual_seed(t.seed)
        self.dataset = UnpairedDataset(cfg.data, seed=t.seed)
        self.model = build_model(cfg.model).to(self.device)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.dist.broadcast(self.model)
        self.opts = self.model.make_optimizers(t)
        self.evaluator = self._make_evaluator() if t.eval_every and self.dist.main else None
        self.step = 0
        per_step = t.batch_size * self.dist.world
        self.steps_per_epoch = max(1, math.ceil(self.dataset.epoch_size / per_step))
        self.total_steps = (t.epochs + t.epochs_decay) * self.steps_per_epoch
        if t.max_steps is not None:
            if t.max_steps < 1:
                raise ValueError(f"max_steps must be at least 1, got {t.max_steps}")
            self.total_steps = min(self.total_steps, t.max_steps)

    def _make_evaluator(self):
        from .evaluate import PeriodicEvaluator, read_split

        t = self.cfg.train
        return PeriodicEvaluator(
            t.eval_data or self.cfg.data.root, "train" if t.eval_split else "test",
            read_split(t.eval_split) if t.eval_split else None, t.eval_metrics, self.out, t.eval_max_images,
            size=self.cfg.data.load_size, direction=self.cfg.data.direction, device=self.device,
        )

    # --- checkpoints -------------------------------------------------------------------
    def save(self) -> Path:
        """Write checkpoints/step_N/ via a temporary folder and a rename: never a half checkpoint."""
        root = self.out / "checkpoints"
        final = root / f"step_{self.step:08d}"
        for stale in root.glob(".tmp_step_*"):  # left by a crash mid-save
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f".tmp_step_{self.step:08d}"
        tmp.mkdir(parents=True)
        try:
            self._write_checkpoint(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        kept = checkpoint_dirs(self.out)
        for old in kept[: len(kept) - max(1, self.cfg.train.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _write_checkpoint(self, folder: Path) -> None:
        save_tensors(folder / "model.safetensors", module_state(self.model.inference_modules()))
        training = module_state(self.model.training_modules())
        skeletons = {}
        for name, opt in self.opts.items():
            tensors, skeletons[name] = optimizer_state(opt, f"opt_{name}")
            training.update(tensors)
        if isinstance(self.model, CycleGANModel):
            training.update({f"pool.{k}": v for k, v in self.model.pool_state().items()})
        save_tensors(folder / "training.safetensors", training)
        write_json(folder / "config.json", self.cfg)
        # steps_per_epoch pins the data (size, exclude list, processes) the LR schedule was laid out on
        write_json(folder / "state.json", {"step": self.step, "steps_per_epoch": self.steps_per_epoch,
                                           "optimizers": skeletons})

    def load(self, ckpt: Path) -> None:
        state = read_json(ckpt / "state.json")
        weights = load_tensors(ckpt / "model.safetensors", self.device)
        training = load_tensors(ckpt / "training.safetensors", self.device)
        for name, module in {**self.model.inference_modules(), **self.model.training_modules()}.items():
            module.load_state_dict(split_state(weights if name in self.model.inference_modules() else training, name))
        for name, opt in self.opts.items():
            load_optimizer_state(opt, state["optimizers"][name], training)
        if isinstance(self.model, CycleGANModel):
            self.model.load_pool_state(split_state(training, "pool"))
        self.step = state["step"]
        saved_spe = state.get("steps_per_epoch", self.steps_per_epoch)  # absent in older checkpoints
        if saved_spe != self.steps_per_epoch:
            raise ValueError(f"{ckpt}: trained with {saved_spe} steps per epoch, the data now gives "
                             f"{self.steps_per_epoch} (another dataset, exclude list or number of processes); "
                             "resuming would shift the LR schedule and the data order")

    # --- loop --------------------------------------------------------------------------
    def set_lr(self) -> float:
        t = self.cfg.train
        lr = t.lr * lr_factor(self.step // self.steps_per_epoch, t.epochs, t.epochs_decay)
        apply_lr(self.opts, lr)
        return lr

    def save_samples(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        real_a, real_b = batch
        self.model.eval()
        fake = self.model.translate(real_a)
        self.model.train()
        rows = torch.cat([real_a, fake, real_b]).float()
        tensor_grid(rows, nrow=real_a.shape[0]).save(self.out / "samples" / f"step_{self.step:08d}.png")

    def fit(self) -> Path:
        t, out = self.cfg.train, self.out
        if self.dist.main:
            (out / "samples").mkdir(parents=True, exist_ok=True)
            write_json(out / "config.json", self.cfg)
        loader = DataLoader(
            self.dataset,
            batch_size=t.batch_size,
            sampler=StepSampler(self.step, t.batch_size, self.dist.rank, self.dist.world),
            num_workers=t.num_workers,
            persistent_workers=False,
        )
        log = open(out / "log.jsonl", "a") if self.dist.main else None
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.dist.main, desc=self.cfg.preset, unit="it")
        try:
            ckpt = self._loop(loader, log, bar)
        finally:  # an error message must not land on the progress bar's line
            bar.close()
            if log:
                log.close()
        return ckpt if ckpt is not None else checkpoint_dirs(out)[-1]

    def _loop(self, loader: DataLoader, log, bar: tqdm) -> Path | None:
        t = self.cfg.train
        sample_batch, ckpt = None, None
        last_time, last_step = time.perf_counter(), self.step
        for real_a, real_b in loader:
            if self.step >= self.total_steps:
                break
            real_a, real_b = real_a.to(self.device), real_b.to(self.device)
            if t.channels_last:
                real_a, real_b = real_a.contiguous(memory_format=torch.channels_last), real_b.contiguous(memory_format=torch.channels_last)
            if sample_batch is None:
                sample_batch = (real_a, real_b)
            lr = self.set_lr()
            rng = torch.Generator().manual_seed(t.seed * 1_000_003 + self.step)
            losses = self.model.train_step(real_a, real_b, self.opts, rng, t.precision, self.dist.sync_grads)
            self.step += 1
            bar.update(1)
            if self.dist.main:
                if self.step % t.log_every == 0 or self.step == self.total_steps:
                    now = time.perf_counter()
                    rec = {"step": self.step, "epoch": self.step / self.steps_per_epoch, "lr": lr, **losses,
                           "sec_per_iter": (now - last_time) / (self.step - last_step)}
                    last_time, last_step = now, self.step
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                    bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
                if self.step % t.sample_every == 0 or self.step == self.total_steps:
                    self.save_samples(sample_batch)
                if self.step % t.save_every == 0 or self.step == self.total_steps:
                    ckpt = self.save()
                if self.evaluator and (self.step % t.eval_every == 0 or self.step == self.total_steps):
                    self.evaluator(self.model.G, self.step, self.step / self.steps_per_epoch)
            self.dist.barrier()
        return ckpt


# What a resume may change: where and how the run executes and reports, never what it learns.
RUNTIME_FIELDS = {"data.root"} | {f"train.{f}" for f in (
    "max_steps", "device", "num_workers", "channels_last", "log_every", "sample_every", "save_every",
    "keep_checkpoints", "eval_every", "eval_data", "eval_split", "eval_metrics", "eval_max_images")}
SCHEDULE_FIELDS = {"train.epochs", "train.epochs_decay"}  # allowed while the LR so far is unchanged


def resume_config(saved: RunConfig, changes: dict[str, object]) -> RunConfig:
    """The checkpoint's config with the requested `changes` ({"train.device": "cpu", ...}) applied;
    a change to anything that shapes the model or its data is refused rather than ignored."""
    cfg = from_dict(RunConfig, asdict(saved))
    for path, value in changes.items():
        target, name = config_field(cfg, path)
        if getattr(target, name) == value:
            continue
        if path not in RUNTIME_FIELDS | SCHEDULE_FIELDS:
            raise ValueError(f"--resume: {path} is {getattr(target, name)!r} in the checkpoint and cannot change "
                             f"mid-run (asked for {value!r}); start a new run instead")
        setattr(target, name, value)
    return cfg


def train(cfg: RunConfig, out: str | Path, resume: bool = False, changes: dict[str, object] | None = None) -> Path:
    """Train `cfg` into `out`; with `resume`, continue from the newest checkpoint there, applying
    `changes` (run-time settings, or a longer schedule; see resume_config)."""
    out = Path(out)
    if resume:
        ckpts = checkpoint_dirs(out)
        if not ckpts:
            raise FileNotFoundError(f"--resume: no checkpoint in {out / 'checkpoints'}")
        saved = from_dict(RunConfig, read_json(ckpts[-1] / "config.json"))
        resumed = resume_config(saved, changes or {})
        trainer = Trainer(resumed, out)
        trainer.load(ckpts[-1])
        old, new = saved.train, resumed.train
        for epoch in range(math.ceil(trainer.step / trainer.steps_per_epoch)):  # every epoch trained so far
            if lr_factor(epoch, old.epochs, old.epochs_decay) != lr_factor(epoch, new.epochs, new.epochs_decay):
                raise ValueError(f"--resume: epochs {new.epochs}+{new.epochs_decay} would change the learning rate "
                                 f"of epoch {epoch}, already trained with {old.epochs}+{old.epochs_decay}")
    else:
        trainer = Trainer(cfg, out)
    return trainer.fit()
