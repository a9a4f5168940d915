"""Training runs: data, LR schedule, logging, sample grids, atomic checkpoints, exact resume.

The steps themselves run in `cutcore.loop.TrainingLoop`; a `Trainer` feeds it batches of the
dataset and, after each step, logs, saves samples and checkpoints, and calls the evaluator it
was handed (`train` and `resume` hand it `cutcore.evaluate`'s held-out evaluation unless given another).

Multi-process (torchrun) training averages gradients with one all-reduce per optimiser step:
the same update as DistributedDataParallel, without DDP's wrapper, which cannot follow the
several generator calls that PatchNCE makes before one backward.

On a GPU (issue 12) a run by default keeps its training images on the device (`DeviceImages`),
trains channels_last and lets cuDNN autotune its convolutions; nothing in a step waits for the
device except the steps that log, save or evaluate. On the CPU all of this stays off.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from .budget import TimeBudget
from .checkpoint import (
    checkpoint_dirs,
    existing_run,
    load_optimizer_state,
    load_tensors,
    module_state,
    optimizer_state,
    read_json,
    save_tensors,
    split_state,
    write_json,
)
from .config import RunConfig, config_field, from_dict, lr_factor, named, parse_duration, resume_policy
from .data import DeviceImages, StepSampler, UnpairedDataset, decoded_bytes, resolve_data_on_device
from .distributed import Dist
from .folders import input_sides
from .hardware import device_name, resolve_channels_last, resolve_device, resolve_precision, tune_backends
from .imageio import tensor_grid
from .interrupt import first_ctrl_c_calls
from .loop import StepResult, TrainingLoop
from .models import build_model
from .models.common import seeded_init
from .runlog import trim_log
from .saved_config import SavedModelConfig, measured_inference

# Called as evaluator(generator, step, epoch) every `runtime.eval_every` steps (see cutcore.evaluate).
Evaluator = Callable[[torch.nn.Module, int, float], None]
EvaluatorFactory = Callable[[RunConfig, Path, torch.device], Evaluator]


class Trainer:
    def __init__(self, cfg: RunConfig, out: str | Path, make_evaluator: EvaluatorFactory | None = None):
        cfg.validate()  # a value that cannot train is one clear error now, not a traceback steps later
        cfg = copy.deepcopy(cfg)  # the run resolves some fields ("auto" precision): the caller's config stays as given
        self.cfg, self.out = cfg, Path(out)
        t, r = cfg.train, cfg.runtime
        if r.time_budget and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # before a process group exists
            raise ValueError(f"{named('runtime.time_budget')} runs in one process (each rank would measure its "
                             "own rate)")
        self.device = resolve_device(r.device)
        if self.device.type == "cuda" and "LOCAL_RANK" in os.environ:
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        self.dist = Dist(self.device)
        name = device_name(self.device)  # logged with every record: export's model card names it
        self.hardware = name if self.dist.world == 1 else f"{self.dist.world} × {name}"
        # The run records the precision it trains in ("auto" resolved), so a resume elsewhere keeps it.
        t.precision, self.precision_note = resolve_precision(t.precision, self.device)
        # Layout and data path are how the run executes, not what it learns: saved as asked ("auto"),
        # decided again by each invocation on its own device.
        self.channels_last = resolve_channels_last(r.channels_last, self.device)
        self.backends = tune_backends(self.device)
        self.dataset = UnpairedDataset(cfg.data, seed=t.seed)
        # Measured once here and saved with every checkpoint, so a run folder translates as its export does
        # and export needs neither the data nor the folder the run was started in.
        self.inference = measured_inference(cfg.data, input_sides(self.dataset.a))
        with seeded_init(t.seed):
            self.model = build_model(cfg.model)
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.dist.broadcast(self.model)
        self.model.configure_training(t.lr, t.beta1, t.beta2, t.precision, self.dist.sync_grads)
        wanted = make_evaluator and r.eval_every and self.dist.main
        self.evaluator = make_evaluator(cfg, self.out, self.device) if wanted else None
        self.step = 0
        sync = (lambda: torch.cuda.synchronize(self.device)) if self.device.type == "cuda" else None
        self.budget = TimeBudget(parse_duration(r.time_budget), sync=sync) if r.time_budget else None
        # After the budget starts: decoding the images is part of the run's time.
        on_device, self.data_note = resolve_data_on_device(r.data_on_device, self.device, decoded_bytes(self.dataset))
        self.device_images = DeviceImages(self.dataset, self.device) if on_device else None
        self.schedule_steps: int | None = None  # the steps a time budget laid the schedule over
        per_step = t.batch_size * self.dist.world
        self.steps_per_epoch = max(1, math.ceil(self.dataset.epoch_size / per_step))
        self.total_steps = (t.epochs + t.epochs_decay) * self.steps_per_epoch
        if r.max_steps is not None:  # at least 1: RunConfig.validate
            self.total_steps = min(self.total_steps, r.max_steps)
        self._place_whole_images()

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
        for old in kept[: len(kept) - max(1, self.cfg.runtime.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def saved_config(self) -> dict:
        """config.json of the run and its checkpoints: the run's config and how new inputs meet the model
        (recorded even when it is "as they are", which tells export it was measured)."""
        return {**asdict(self.cfg), "inference": asdict(self.inference)}

    def _write_checkpoint(self, folder: Path) -> None:
        save_tensors(folder / "model.safetensors", module_state(self.model.inference_modules()))
        training = module_state(self.model.training_modules())
        skeletons = {}
        for name, opt in self.model.optimizers.items():
            tensors, skeletons[name] = optimizer_state(opt, f"opt_{name}")
            training.update(tensors)
        training.update(self.model.extra_state())
        save_tensors(folder / "training.safetensors", training)
        write_json(folder / "config.json", self.saved_config())
        # steps_per_epoch pins the data (size, exclude list, processes) the LR schedule was laid out on
        write_json(folder / "state.json", {"step": self.step, "steps_per_epoch": self.steps_per_epoch,
                                           "schedule_steps": self.schedule_steps, "optimizers": skeletons})

    def load(self, ckpt: Path) -> None:
        state = read_json(ckpt / "state.json")
        weights = load_tensors(ckpt / "model.safetensors", self.device)
        training = load_tensors(ckpt / "training.safetensors", self.device)
        for name, module in {**self.model.inference_modules(), **self.model.training_modules()}.items():
            module.load_state_dict(split_state(weights if name in self.model.inference_modules() else training, name))
        for name, opt in self.model.optimizers.items():
            load_optimizer_state(opt, state["optimizers"][name], training)
        self.model.load_extra_state(training)
        self.step = state["step"]
        if state.get("schedule_steps"):  # a budgeted run keeps the schedule it was laid on
            self.plan_schedule(state["schedule_steps"])
        saved_spe = state.get("steps_per_epoch", self.steps_per_epoch)  # absent in older checkpoints
        if saved_spe != self.steps_per_epoch:
            raise ValueError(f"{ckpt}: trained with {saved_spe} steps per epoch, the data now gives "
                             f"{self.steps_per_epoch} (another dataset, exclude list or number of processes); "
                             "resuming would shift the LR schedule and the data order")

    # --- loop --------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """The preset's policy per epoch of data, or per equal share of a time budget's steps."""
        t = self.cfg.train
        per_epoch = self.schedule_steps / (t.epochs + t.epochs_decay) if self.schedule_steps else self.steps_per_epoch
        return t.lr * lr_factor(int(step // per_epoch), t.epochs, t.epochs_decay)

    def plan_schedule(self, steps: int) -> None:
        """Lay the schedule (constant LR, then linear decay, in the preset's proportions) over `steps`."""
        self.schedule_steps = max(1, steps)
        r = self.cfg.runtime
        self.total_steps = min(self.schedule_steps, r.max_steps) if r.max_steps else self.schedule_steps
        self._place_whole_images()

    def budget_plan_refusal(self, steps: int, resumed_at: int) -> str | None:
        """Why laying the schedule over `steps` would change the LR of the steps a resumed run had trained before
        this invocation (they must all be at the full LR under both schedules); None when it would not."""
        if resumed_at > (start := self.decay_start()):
            return f"the checkpoint (step {resumed_at}) is past the decay start of its epochs' schedule (step {start})"
        if resumed_at > (planned := self.decay_start(steps)):
            return (f"{steps} steps fit, so the LR would decay from step {planned}, before the {resumed_at} steps "
                    "the checkpoint had trained")
        return None

    def decay_start(self, schedule_steps: int | None = None) -> int:
        """The first step whose learning rate is below the constant phase's: of the schedule laid over
        `schedule_steps` (default: the run's, if a budget laid one), else of the preset's epochs."""
        t = self.cfg.train
        if schedule_steps := schedule_steps or self.schedule_steps:
            return math.ceil(t.epochs * schedule_steps / (t.epochs + t.epochs_decay))
        return t.epochs * self.steps_per_epoch

    def _place_whole_images(self) -> None:
        if self.cfg.data.whole_images_when_decaying:
            self.dataset.whole_images_from = self.decay_start() * self.cfg.train.batch_size * self.dist.world

    def batches(self, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's batches from `start_step` on: cut on the device, or from a DataLoader."""
        t, r = self.cfg.train, self.cfg.runtime
        if self.device_images is not None:
            return self.device_images.batches(start_step, t.batch_size, self.dist.rank, self.dist.world)
        return iter(DataLoader(
            self.dataset,
            batch_size=t.batch_size,
            sampler=StepSampler(start_step, t.batch_size, self.dist.rank, self.dist.world),
            num_workers=r.num_workers,
            worker_init_fn=_ignore_ctrl_c,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",  # lets the loop's non_blocking copy overlap
            # Its workers' base seed from here, not from torch's global generator (the draws themselves are
            # functions of (seed, item): see UnpairedDataset).
            generator=torch.Generator().manual_seed(t.seed),
        ))

    def save_samples(self, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        real_a, real_b = batch
        self.model.eval()
        fake = self.model.translate(real_a)
        self.model.train()
        rows = torch.cat([real_a, fake, real_b]).float()
        tensor_grid(rows, nrow=real_a.shape[0]).save(self.out / "samples" / f"step_{self.step:08d}.png")

    def execution_summary(self) -> str:
        layout = "channels_last" if self.channels_last else "NCHW"
        tuned = "".join(f", {k}" for k in self.backends)
        return f"training on {self.device}: {self.precision_note}; {layout}{tuned}; data: {self.data_note}"

    def fit(self) -> Path:
        """Train to the end, or until the time budget or a Ctrl-C stops it: either way the newest
        checkpoint holds every step taken (after a Ctrl-C, KeyboardInterrupt is raised once it is saved).
        A training image that cannot be read also leaves one."""
        t, out = self.cfg.train, self.out
        if self.step == 0:
            refuse_existing_run(out)
        if self.dist.main:
            (out / "samples").mkdir(parents=True, exist_ok=True)
            write_json(out / "config.json", self.saved_config())
            for name in ("log.jsonl", "metrics.jsonl"):  # what was logged past the checkpoint is trained again
                trim_log(out / name, self.step)
        loop = TrainingLoop(self.model, self.batches(self.step), self.lr_at, self.total_steps, seed=t.seed,
                            step=self.step, device=self.device, channels_last=self.channels_last)
        log = open(out / "log.jsonl", "a") if self.dist.main else None
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.dist.main,
                   desc=f"{self.cfg.preset} ({t.precision})", unit="it")
        reporter = _Reporter(self, loop, log, bar)
        ctrl_c = threading.Event()
        alone = self.dist.world == 1  # torchrun's ranks must stop at the same step: Ctrl-C ends them at once

        def should_stop() -> bool:
            return ctrl_c.is_set() or bool(self.budget and self.budget.exhausted())

        try:
            with first_ctrl_c_calls(ctrl_c.set) if alone else contextlib.nullcontext():
                loop.run(reporter, should_stop=should_stop)
            if self.step < self.total_steps and self.dist.main:  # out of time or stopped: keep what was learnt
                reporter.checkpoint = self._save_once(reporter.checkpoint)
            if ctrl_c.is_set():  # saved; still an interruption, so `train ... && export ...` goes no further
                tqdm.write(f"stopped by Ctrl-C at step {self.step}, checkpoint saved; continue with --resume",
                           file=sys.stderr)
                raise KeyboardInterrupt
        except Exception:
            # Outside an update (drawing a batch, or logging, evaluating, saving samples after one) the state
            # is whole: keep it.
            if not loop.updating and alone and self.step:
                try:
                    ckpt = self._save_once(reporter.checkpoint)
                except Exception as e:  # noqa: BLE001 - e.g. the disk is full: the first error is the one to see
                    tqdm.write(f"could not save a checkpoint of step {self.step} either ({e})", file=sys.stderr)
                else:
                    tqdm.write(f"checkpoint of step {self.step} saved ({ckpt}); once the cause below is mended, "
                               "continue with --resume", file=sys.stderr)
            raise
        finally:  # an error message must not land on the progress bar's line
            bar.close()
            if log:
                log.close()
        return reporter.checkpoint if reporter.checkpoint is not None else checkpoint_dirs(out)[-1]

    def _save_once(self, newest: Path | None) -> Path:
        """A checkpoint of the current step: `newest` when it already is one."""
        if newest is not None and newest.name == f"step_{self.step:08d}":
            return newest
        return self.save()


def read_run_config(path: Path) -> RunConfig:
    """The run's config from a run's or checkpoint's config.json."""
    return SavedModelConfig.from_json(read_json(path)).run


def _ignore_ctrl_c(_worker: int) -> None:
    """A terminal's Ctrl-C reaches the loader workers too: they must live on while the main process
    finishes its step and saves (it shuts them down itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def refuse_existing_run(out: Path) -> None:
    """A new run in a folder that holds one would overwrite and prune its checkpoints; in a model folder (an
    export, a SinCUT run) it would replace the config.json that the model's weights are read with."""
    match existing_run(out):
        case ("training run", what):
            raise ValueError(f"{out} already holds a run ({what}): continue it with --resume, or train into another "
                             "--out")
        case ("model", what):
            raise ValueError(f"{out} holds a model or a SinCUT run ({what}): a run there would replace its "
                             "config.json; train into another --out")


class _Reporter:
    """What a Trainer does after each step: log, samples, checkpoints, evaluation (on rank 0)."""

    def __init__(self, trainer: Trainer, loop: TrainingLoop, log, bar: tqdm):
        self.trainer, self.loop, self.log, self.bar = trainer, loop, log, bar
        self.sample_batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.checkpoint: Path | None = None
        self.last_time, self.last_step = time.perf_counter(), trainer.step
        self.resumed_at = trainer.step

    def __call__(self, result: StepResult) -> None:
        tr, r = self.trainer, self.trainer.cfg.runtime
        tr.step = step = result.step
        if tr.budget and tr.schedule_steps is None and (fit := tr.budget.steps_that_fit(step)) is not None:
            if (refusal := tr.budget_plan_refusal(fit, self.resumed_at)) is None:
                tr.plan_schedule(fit)
                self.loop.total = self.bar.total = tr.total_steps
                self.loop.batches = tr.batches(step)  # loader workers hold a copy of the dataset's whole-image step
                self.bar.refresh()
            elif tr.dist.main:
                tqdm.write(f"--time-budget: {refusal}; the run keeps its epochs' schedule and stops on time with a "
                           "checkpoint", file=sys.stderr)
        last = step == tr.total_steps
        if self.sample_batch is None:  # the first step: the run is under way, say how it executes
            self.sample_batch = result.batch
            if tr.dist.main:
                tqdm.write(tr.execution_summary(), file=sys.stderr)
        self.bar.update(1)
        saving = step % r.save_every == 0 or last
        evaluating = bool(r.eval_every) and (step % r.eval_every == 0 or last)
        if tr.dist.main:
            if step % r.log_every == 0 or last:
                losses = result.loss_values()  # the one host synchronisation, when logging
                now = time.perf_counter()
                rec = {"step": step, "epoch": step / tr.steps_per_epoch, "lr": result.lr, **losses,
                       "sec_per_iter": (now - self.last_time) / (step - self.last_step), "precision": tr.precision_note,
                       "hardware": tr.hardware, "data": "device" if tr.device_images is not None else "loader"}
                self.last_time, self.last_step = now, step
                self.log.write(json.dumps(rec) + "\n")
                self.log.flush()
                self.bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
            if step % r.sample_every == 0 or last:
                tr.save_samples(self.sample_batch)
            if saving:
                self.checkpoint = tr.save()
            if tr.evaluator and evaluating:
                tr.evaluator(tr.model.G, step, step / tr.steps_per_epoch)
        if saving or evaluating:  # the other ranks wait for rank 0's checkpoint, not on every step
            tr.dist.barrier()


def _long_list(value: object) -> bool:
    """A list a one-line message shows only the start of (an --exclude file's names)."""
    return isinstance(value, (list, tuple)) and len(value) > 4


def _brief(value: object) -> str:
    """repr for a one-line message: a long list as its start and its length."""
    if _long_list(value):
        return f"[{', '.join(map(repr, value[:3]))}, … ({len(value)} items)]"
    return repr(value)


def _list_difference(old: object, new: object) -> str:
    """What two lists differ by, when a message shows only the start of one of them."""
    if not (isinstance(old, list) and isinstance(new, list) and (_long_list(old) or _long_list(new))):
        return ""
    added, dropped = sorted(set(new) - set(old), key=str), sorted(set(old) - set(new), key=str)
    return "".join(f", {len(xs)} {what} (e.g. {xs[0]!r})" for xs, what in ((added, "more"), (dropped, "fewer")) if xs)


def resume_config(saved: RunConfig, changes: dict[str, object]) -> RunConfig:
    """The checkpoint's config with the requested `changes` ({"runtime.device": "cpu", ...}) applied;
    a change to anything that shapes the model or its data is refused rather than ignored (what may
    change is declared on the config fields: see `cutcore.config.option`)."""
    cfg = from_dict(RunConfig, asdict(saved))
    for path, value in changes.items():
        try:
            target, name = config_field(cfg, path)
            current = getattr(target, name)
        except AttributeError:  # e.g. model.lambda_nce for a CycleGAN run
            raise ValueError(f"--resume: {path} does not apply to this run (preset {cfg.preset})") from None
        if current == value or (path == "data.exclude" and set(current) == set(value)):  # names, in any order
            continue
        if resume_policy(cfg, path) is None:
            raise ValueError(f"--resume: {path} is {_brief(current)} in the checkpoint and cannot change "
                             f"mid-run (asked for {_brief(value)}{_list_difference(current, value)}); start a new "
                             "run instead")
        setattr(target, name, value)
    return cfg


def train(cfg: RunConfig, out: str | Path, make_evaluator: EvaluatorFactory | None = None) -> Path:
    """Train `cfg` into `out`, a new run (a folder that holds one is refused: continue it with `resume`), and
    return its last checkpoint. `make_evaluator` builds the periodic held-out evaluation when
    `runtime.eval_every` asks for one (default: `cutcore.evaluate.periodic_evaluator`)."""
    out = Path(out)
    refuse_existing_run(out)  # before decoding data or loading FID weights: the answer comes at once
    return _fit(Trainer(cfg, out, make_evaluator or _held_out_evaluator()))


def resume(out: str | Path, changes: dict[str, object] | None = None,
           make_evaluator: EvaluatorFactory | None = None) -> Path:
    """Continue the run in `out` exactly from its newest checkpoint, with the config saved there and `changes`
    applied ({"runtime.max_steps": 5000, ...}: run-time settings, or a longer or shorter schedule; anything
    else is refused, see resume_config); returns the last checkpoint."""
    out = Path(out)
    ckpts = checkpoint_dirs(out)
    if not ckpts:
        raise FileNotFoundError(f"--resume: no checkpoint in {out / 'checkpoints'}")
    changes = changes or {}
    saved = read_run_config(ckpts[-1] / "config.json")
    resumed = resume_config(saved, changes)
    data, was = Path(resumed.data.root), Path(saved.data.root)
    if os.environ.get("RANK", "0") == "0":  # the data is named, as a relative root is read from here
        if "data.root" not in changes:
            tqdm.write(f"--resume: training data from {data.resolve()} (the checkpoint's --data {was})",
                       file=sys.stderr)
        elif data.resolve() != was.resolve():  # allowed (the data moved), but said
            tqdm.write(f"--resume: training data from {data} (the checkpoint's run used {was})", file=sys.stderr)
    trainer = Trainer(resumed, out, make_evaluator or _held_out_evaluator())
    trainer.load(ckpts[-1])
    old, new = saved.train, resumed.train
    for epoch in range(math.ceil(trainer.step / trainer.steps_per_epoch)):  # every epoch trained so far
        if lr_factor(epoch, old.epochs, old.epochs_decay) != lr_factor(epoch, new.epochs, new.epochs_decay):
            raise ValueError(f"--resume: epochs {new.epochs}+{new.epochs_decay} would change the learning rate "
                             f"of epoch {epoch}, already trained with {old.epochs}+{old.epochs_decay}")
    if trainer.step >= trainer.total_steps and trainer.dist.main:
        tqdm.write(f"--resume: nothing to train: the checkpoint is at step {trainer.step} and the run ends at step "
                   f"{trainer.total_steps} (a longer --epochs/--epochs-decay or a higher --max-steps goes on)",
                   file=sys.stderr)
    return _fit(trainer)


def _held_out_evaluator() -> EvaluatorFactory:
    from .evaluate import periodic_evaluator  # here: the trainer itself runs any evaluator it is given

    return periodic_evaluator


def _fit(trainer: Trainer) -> Path:
    checkpoint = trainer.fit()
    trainer.dist.close()  # a failure above exits the process instead (see Dist.close)
    return checkpoint
