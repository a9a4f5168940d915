"""Live SinCUT training for interactive front ends: a background thread with progress events.

    trainer = LiveTrainer("photo.jpg", "painting.jpg", "sincut-cpu")
    trainer.start()      # or LiveTrainer.launch(...): built and trained on one new thread; or trainer.run(): here
    while (ev := trainer.events.get()).kind in ("started", "progress"):
        show(ev.preview, ev.losses, ev.eta_seconds)
    trainer.export("my_model")          # model.safetensors + config.json

Events arrive in order: "started", "progress"..., then one of "stopped", "finished" or "error".
`stop()` returns after the current iteration; `start()` again resumes where it stopped.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Self

import torch
from PIL import Image

from ..checkpoint import module_state
from ..hardware import resolve_device, resolve_precision
from ..imageio import rescale, to_pil, to_tensor
from ..loop import StepResult, TrainingLoop
from ..model_folder import write_model_folder
from ..models.common import seeded_init
from ..saved_config import Domains, InferenceSettings, SavedModelConfig
from ..translate import run_generator, translate_with
from .config import SinCUTConfig, default_sincut_preset, sincut_preset, with_total_iters
from .data import ImageInput, ZoomPatchSampler, check_crop_fits, open_image, working_image, working_scale
from .model import SinCUTModel

EventKind = Literal["started", "progress", "stopped", "finished", "error"]


@dataclass
class TrainEvent:
    kind: EventKind
    iteration: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    its_per_sec: float = 0.0
    eta_seconds: float | None = None
    preview: Image.Image | None = None  # current translation of the whole content image
    message: str = ""  # the error, for kind == "error"
    exception: Exception | None = None  # and the exception itself, with its traceback (`raise ev.exception`)


# ---------------------------------------------------------------------------------------------
# Inference and export


def export_generator(model: SinCUTModel, cfg: SinCUTConfig, out_dir: str | os.PathLike, iteration: int,
                     card: str | None = None, domains: Domains | None = None, input_scale: float = 1.0) -> Path:
    """A model folder of G and the PatchNCE heads F (loadable by `translate`, `evaluate` and the app).

    `input_scale`: how much the content image was shrunk for training (`SinCUTDataConfig.max_side`);
    recorded so that `translate` meets a photo of that size at the scale the style was learnt at."""
    saved = SavedModelConfig(cfg, domains=domains, inference=InferenceSettings(scale=input_scale))
    return write_model_folder(out_dir, module_state(model.inference_modules()), saved, card,
                              {"iteration": str(iteration)})


# ---------------------------------------------------------------------------------------------
# Trainer


class LiveTrainer:
    """Trains SinCUT from `content` (domain A, translated) to `style` (domain B) in a thread.

    `config` is a SinCUTConfig or a preset name (default: `sincut-gpu` on CUDA, else `sincut-cpu`). Every
    `event_every` iterations a "progress" event carries the losses, speed, ETA and a preview: the whole content
    image translated at `preview_size` pixels on its longer side (None: full resolution, slow on CPU). Events go to
    the `events` queue (bounded: the oldest are dropped if nobody reads) and to `on_event`, which runs on the
    training thread.
    """

    MAX_QUEUED_EVENTS = 64
    PLAN_AFTER = 10  # iterations before a time budget's rate is measured (allocation, kernel choice)

    def __init__(
        self,
        content: ImageInput,
        style: ImageInput,
        config: SinCUTConfig | str | None = None,
        *,
        event_every: int = 25,
        preview_size: int | None = 384,
        on_event: Callable[[TrainEvent], None] | None = None,
        device: str | torch.device = "auto",  # the GPU when CUDA is present
        channels_last: bool = True,
        max_iters: int | None = None,
        precision: str = "fp32",
    ):
        self.device = resolve_device(device) if isinstance(device, str) else torch.device(device)
        config = default_sincut_preset(self.device) if config is None else config
        cfg = sincut_preset(config) if isinstance(config, str) else config
        if not isinstance(cfg, SinCUTConfig):
            raise TypeError(f"config is a SinCUT preset name or a SinCUTConfig, got {type(cfg).__name__} (CUT and "
                            "CycleGAN runs train with cutcore.train.train)")
        cfg.validate()
        if event_every < 1:
            raise ValueError(f"event_every must be >= 1, got {event_every}")
        if max_iters is not None and max_iters < 1:
            raise ValueError(f"max_iters must be >= 1, got {max_iters}")
        self.max_iters = max_iters  # stop early; the LR schedule stays the preset's
        self.cfg, self.event_every, self.on_event = cfg, event_every, on_event
        content_img, content_name = open_image(content)
        style_img, style_name = open_image(style)
        d, t = cfg.data, cfg.train
        # Both images at the preset's working size; the model is exported with the content's factor.
        self.input_scale = working_scale(content_img.size, d.max_side)
        samplers = []
        for i, (img, name) in enumerate(((content_img, content_name), (style_img, style_name))):
            check_crop_fits(img.size, d.max_side, d.crop_size, name)  # before shrinking: a refusal gives both sizes
            samplers.append(ZoomPatchSampler(working_image(img, d.max_side), d.crop_size, t.batch_size, d.scale_min,
                                             d.flip, t.seed + i, name))
        self.samplers = tuple(samplers)
        self.content = self.samplers[0].image
        with seeded_init(t.seed):
            self.model = SinCUTModel(cfg.model)
        if t.ema_half_life:
            self.model.average_generator(t.ema_half_life)
        self.model.to(self.device)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # "auto": bf16 where the device multiplies it natively (cutcore.hardware); fp32 by default, as the paper.
        self.precision, self.precision_note = resolve_precision(precision, self.device)
        self.model.configure_training(t.lr, t.beta1, t.beta2, self.precision)
        self.loop = TrainingLoop(self.model, self._batches(), t.lr_at, self.total, seed=t.seed, device=self.device,
                                 channels_last=channels_last)
        self.preview_input = self._preview_tensor(preview_size)
        self.last_losses: dict[str, float] = {}
        self._last_event: TrainEvent | None = None
        # A budgeted preset is planned at the first preview after 10 iterations, once that preview is timed
        # (previews count against the budget) and before its event goes out (which then shows the planned total),
        # and planned again at each preview while the LR is still constant: a slowdown (another user's work on
        # the same CPU) shortens the schedule, and the iterations come back once it has passed. Not with
        # max_iters: a count the caller chose.
        self._budget_pending = bool(t.time_budget_s) and max_iters is None
        self._budget_planned = False
        self._rate_marks: list[tuple[int, float]] = []  # set by each run (_run)
        self._preset_cfg = cfg  # a plan lays this schedule over the iterations that fit, never more
        self._plan_at = min(math.ceil(self.PLAN_AFTER / event_every) * event_every, t.epochs * t.iters_per_epoch)
        self._seconds_before = 0.0  # training time of earlier runs (stop, then start again)
        self.events: queue.Queue[TrainEvent] = queue.Queue(self.MAX_QUEUED_EVENTS)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held during a step: export/translate see whole updates

    @classmethod
    def launch(cls, *args, **kwargs) -> Self:
        """`LiveTrainer(*args, **kwargs).start()`, but built on the training thread itself (see `run`: torch's
        workers then keep one OpenMP pool, ~25% faster on a 2-core CPU when the caller has not computed
        with torch before). Returns once built; raises what building raises (an unreadable image...)."""
        built: queue.Queue = queue.Queue(1)

        def body() -> None:
            try:
                trainer = cls(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - handed to the caller, who must not wait forever
                built.put(e)
                return
            trainer._thread = threading.current_thread()
            built.put(trainer)
            trainer._run()

        threading.Thread(target=body, name="sincut-live", daemon=True).start()
        got = built.get()
        if isinstance(got, BaseException):
            raise got
        return got

    # -- control -------------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return min(self.cfg.train.total_iters, self.max_iters or self.cfg.train.total_iters)

    @property
    def iteration(self) -> int:
        return self.loop.step

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start training, or resume it after `stop()`. No-op while already running."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sincut-live", daemon=True)
        self._thread.start()

    def run(self) -> TrainEvent:
        """Train in the calling thread until finished, stopped (`stop()` from a signal handler or another
        thread) or failed; the same events as `start()`, and the last one is returned (after a failure an "error"
        event: `raise event.exception` re-raises it).

        For callers with nothing else to do (the `sincut` command). Torch's OpenMP workers stop spinning
        between operations once a second thread pool exists (libgomp throttles when its threads outnumber
        the cores), so a step on a thread of its own runs ~25% slower on a 2-core CPU whenever the
        constructing thread has computed anything; in the calling thread there is one pool."""
        if self.running:
            raise RuntimeError("already training (start(), launch() or run() elsewhere)")
        self._stop.clear()
        self._thread = threading.current_thread()  # `running`, `wait` and `stop` see this run from other threads
        try:
            self._run()
        finally:
            self._thread = None
        assert self._last_event is not None  # _run always ends with finished, stopped or error
        return self._last_event

    @property
    def last_event(self) -> TrainEvent | None:
        """The newest event emitted (None before the first): after a run, how it ended."""
        return self._last_event

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop after the current iteration and wait for it."""
        self._stop.set()
        self.wait(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the thread ends (finished, stopped or failed); False on timeout. From the training
        thread itself (an `on_event` callback, a signal handler during `run`) it returns at once."""
        if self._thread is threading.current_thread():
            return False
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def close(self) -> None:
        """Stop and release the networks and optimiser state."""
        self.stop()
        self._thread = None
        self.model = self.loop = None  # type: ignore[assignment]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- results ------------------------------------------------------------------------------

    def preview(self) -> Image.Image:
        """The current translation of the whole content image at the preview size."""
        with self._lock:
            return self._preview()

    def translate(self, image: ImageInput | None = None, tile: int = 1024) -> Image.Image:
        """Translate `image` (default: the content image) at the working scale (full resolution unless the
        preset sets `max_side`); the result has the size G worked at."""
        img = self.content if image is None else open_image(image)[0]
        if image is not None and self.input_scale != 1:
            img = rescale(img, self.input_scale)
        with self._lock:
            return translate_with(self.model.inference_generator, img, tile)

    def export(self, out_dir: str | os.PathLike, card: str | None = None, domains: Domains | None = None) -> Path:
        """Save the generator (+ heads) as a model folder (with `card` as README.md and what it translates);
        safe while training."""
        with self._lock:
            return export_generator(self.model, self.cfg, out_dir, self.iteration, card, domains, self.input_scale)

    # -- internals ----------------------------------------------------------------------------

    def _preview_tensor(self, size: int | None) -> torch.Tensor:
        img, m = self.content, self.model.G.size_multiple
        if size is not None and max(img.size) > size:
            s = size / max(img.size)
            img = img.resize(
                (max(m, round(img.width * s / m) * m), max(m, round(img.height * s / m) * m)), Image.BICUBIC
            )
        else:
            img = img.crop((0, 0, img.width - img.width % m, img.height - img.height % m))
        return to_tensor(img)[None].to(self.device)

    def _preview(self) -> Image.Image:
        # The same noise at every preview: the sequence shows what G learnt, not a new draw of its noise.
        return to_pil(run_generator(self.model.inference_generator, self.preview_input)[0])

    def _emit(self, event: TrainEvent) -> None:
        self._last_event = event
        while True:
            try:
                self.events.put_nowait(event)
                break
            except queue.Full:
                try:
                    self.events.get_nowait()  # drop the oldest: a stalled reader must not grow memory
                except queue.Empty:
                    pass
        if self.on_event is not None:
            self.on_event(event)

    def _batches(self):
        while True:
            yield tuple(s.sample() for s in self.samplers)

    def _run(self) -> None:
        started, first = time.perf_counter(), self.iteration
        window = [started, self.iteration, 0.0]  # start time, start iteration, last speed
        self._rate_marks = [(first + 1, started)]  # (iteration, time) of the budget's plans: rates are timed from them

        def on_step(result: StepResult) -> None:
            if result.step == first + 1:
                if self._budget_pending and self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)  # the budget's rate is timed from the end of this step
                self._rate_marks[0] = first + 1, time.perf_counter()  # after the first step (allocation, kernels)
            event = not result.step % self.event_every or result.step >= self.total
            if event:
                self.last_losses = result.loss_values()
                now = time.perf_counter()
                speed = window[2] = (result.step - window[1]) / (now - window[0])
                preview = None if self._stop.is_set() else self.preview()
            if (self._budget_pending and result.step >= self._plan_at and result.step > first + 1
                    and (event or not self._budget_planned)):
                self._fit_to_budget(result.step, started)
            if not event:
                return
            total = self.total
            eta = (total - result.step) / speed
            self._emit(TrainEvent("progress", result.step, total, dict(self.last_losses), speed, eta, preview))
            window[:2] = time.perf_counter(), result.step

        try:
            self._emit(TrainEvent("started", self.iteration, self.total, self.last_losses))
            self.loop.run(on_step, self._stop.is_set, self._lock)
            kind: EventKind = "finished" if self.iteration >= self.total else "stopped"
            self._emit(TrainEvent(kind, self.iteration, self.total, dict(self.last_losses), window[2],
                                  0.0 if kind == "finished" else None))
        except Exception as e:  # noqa: BLE001 - reported to the UI instead of dying silently in the thread
            traceback.clear_frames(e.__traceback__)  # the traceback without the failed step's tensors (GPU memory)
            self._emit(TrainEvent("error", self.iteration, self.total, dict(self.last_losses),
                                  message=f"{type(e).__name__}: {e}", exception=e))
        finally:
            self._seconds_before += time.perf_counter() - started

    def _fit_to_budget(self, step: int, started: float) -> None:
        """The preset's time budget (`train.time_budget_s`): at the measured rate, lay its LR schedule (constant,
        then linear decay) over the iterations that fit, never more than it plans. While the LR is constant any
        plan keeps the steps taken in its constant part; once a plan's decay has begun, only a shorter plan (a
        lower LR from here) is taken, and that one is final."""
        now = time.perf_counter()
        # The faster of the last preview window and the last three: one slow window (another user's translation)
        # does not cut the run for good, a slowdown that lasts does.
        marks = self._rate_marks
        rate = max((step - s) / max(now - t, 1e-9) for s, t in (marks[-1], marks[max(0, len(marks) - 3)]))
        marks.append((step, now))
        spent = self._seconds_before + now - started
        fit = step + int((self.cfg.train.time_budget_s - spent) * rate)
        preset, current = self._preset_cfg, self.cfg.train
        decaying = step > current.epochs * current.iters_per_epoch
        plan = preset if fit >= preset.train.total_iters else with_total_iters(preset, max(step + 1, fit))
        if not decaying or plan.train.total_iters < current.total_iters:
            self.cfg = plan
            self.loop.lr_at, self.loop.total = self.cfg.train.lr_at, self.total
        t = self.cfg.train
        self._budget_planned, self._budget_pending = True, not decaying and step < t.epochs * t.iters_per_epoch
