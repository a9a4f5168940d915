"""SinCUT live tab: train on one photo and one artwork, watching the translation improve.

The training runs in `cutcore.sincut.live.LiveTrainer`'s background thread; the Gradio handler
is a generator that turns its events into UI updates (preview, loss plot, speed, ETA). One
training per process: the Gradio event has concurrency_limit=1 (later users wait in Gradio's
queue and see their position) and a lock guards the trainer against any other caller.
"""
from __future__ import annotations

import logging
import math
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr

from cutcore.official_urls import offline

from . import models
from .errors import UserError, error_text, to_gr_error, user_errors
from .settings import env_flag, env_int, output_dir
from .torch_thread import on_own_thread
from .uploads import Upload, checked_upload, open_upload

log = logging.getLogger("cutcore.demo")

PHOTO_TO_ART = "photo → art style"
ART_TO_PHOTO = "art → photo"
PHOTO, ART = "photo", "artwork"  # the domains a live model records (the upload label says them)
PREVIEW_SIDE = 384
PLOTTED = ("G", "D", "NCE", "G_GAN", "idt")  # loss keys shown when present (others only if none of these are)
DEFAULT_MIN_EXPORT_ITERS = 25
DEFAULT_MAX_ITERS = 200_000


def max_iters() -> int:
    """The largest iteration budget the app accepts (env CUTCORE_DEMO_MAX_ITERS)."""
    return env_int("CUTCORE_DEMO_MAX_ITERS", DEFAULT_MAX_ITERS, minimum=2)


def min_export_iters() -> int:
    """A run stopped earlier than this (and short of its budget) is not exported (env CUTCORE_DEMO_MIN_EXPORT_ITERS)."""
    return env_int("CUTCORE_DEMO_MIN_EXPORT_ITERS", DEFAULT_MIN_EXPORT_ITERS)


def preset_choices() -> list[tuple[str, str]]:
    choices = [("CPU-quick (about 5 minutes on 2 CPU cores)", "sincut-cpu"),
               ("GPU-quick (under a minute on a data-centre GPU)", "sincut-gpu"),
               ("Paper (the full schedule: hours, GPU only)", "sincut")]
    if env_flag("CUTCORE_DEMO_TINY_SINCUT"):
        choices.insert(0, ("Tiny (tests: seconds, meaningless results)", "tiny"))
    return choices


def content_and_style(direction: str, photo, art) -> tuple:
    """(content, style) for `direction`: the photo takes the artwork's look, unless ART_TO_PHOTO."""
    return (art, photo) if direction == ART_TO_PHOTO else (photo, art)


def refuse_on_cpu(preset: str, device) -> None:
    """The paper's schedule on a CPU would run for days (its networks take ~8 s an iteration on two cores)."""
    if preset == "sincut" and device.type == "cpu":
        raise UserError("The Paper preset is for a GPU: its full-size networks take about 8 s an iteration on two "
                        "CPU cores, days for its 100000 iterations. Choose CPU-quick, or run the app on a GPU.")


def default_iterations(preset: str) -> int:
    from cutcore.sincut import sincut_preset

    if preset == "tiny":
        return 12
    return sincut_preset(preset).train.total_iters


def make_config(preset: str, iterations: float | None):
    """The preset for its own length; for another count, its LR schedule (constant, then linear decay) laid over
    exactly `iterations` steps, all trained."""
    from cutcore.sincut.config import SinCUTDataConfig, sincut_preset, trained_for

    # An emptied number box arrives as None (and the API may send NaN): the same message as 0.
    most = max_iters()
    if not isinstance(iterations, int | float) or not 2 <= iterations <= most:
        raise UserError(f"The iteration budget must be between 2 and {most}.")
    iterations = int(iterations)
    if preset == "tiny":
        cfg = sincut_preset("sincut-cpu")
        cfg.preset = "sincut-tiny"
        cfg.model.generator = replace(cfg.model.generator, ngf=4, n_blocks=4, base_size=256)  # 8-16 channels
        cfg.model.discriminator = replace(cfg.model.discriminator, ndf=4, size=16)
        cfg.model.head_dim = 16
        cfg.data = SinCUTDataConfig(crop_size=16, scale_min=0.5)
        cfg.train.batch_size = 2
    else:
        try:
            cfg = sincut_preset(preset)
        except ValueError as e:
            raise UserError(str(e)) from None
    if iterations != cfg.train.total_iters:  # a count the user chose: trained in full, as `sincut --iters`
        return trained_for(cfg, iterations)
    return cfg  # the preset as `sincut` trains it (its LR stepped per epoch, its time budget)


def preview_interval(every: float | None) -> int:
    """The preview interval in whole iterations (an emptied number box arrives as None)."""
    if not isinstance(every, int | float) or not 1 <= every < math.inf:
        raise UserError("The preview interval must be 1 or more iterations.")
    return int(every)


def expectations(on_gpu: bool) -> str:
    """What to expect of a run on this server, said before anyone presses Start."""
    if on_gpu:
        return ("This server trains on a **GPU**: *GPU-quick* runs the paper's networks on both images shrunk to "
                "512 px, on a schedule sized for under a minute on a data-centre GPU (a smaller GPU takes longer; "
                "the progress line shows the time left); *Paper* runs the published schedule (hours).")
    return ("This server trains on its **CPU**: *CPU-quick* takes about 5 minutes (a slower CPU gets fewer "
            "iterations in that time; the progress line shows the time left). It trains narrow versions of the "
            "paper's networks on both images shrunk to 512 px and learns the artwork's palette and a soft brush "
            "texture, not its shapes. For more, run the app on a GPU, where *GPU-quick* trains the paper's "
            "full-width networks in under a minute and learns more of the artwork's texture; here it would take "
            "about 40 minutes (~3.6 s an iteration on two cores), and *Paper* days.")


def _live_trainer(content, style, cfg, *, event_every: int, preview_size: int):
    """A LiveTrainer already training, built on its own thread (LiveTrainer.launch: faster on a CPU)."""
    from cutcore.sincut.live import LiveTrainer

    return LiveTrainer.launch(content, style, cfg, event_every=event_every, preview_size=preview_size,
                              device=models.device())


# Tests replace this with a fake: factory(content PIL, style PIL, cfg, event_every=, preview_size=) -> a trainer
# that is training.
TRAINER_FACTORY: Callable[..., Any] = _live_trainer

_train_lock = threading.Lock()
_state_lock = threading.Lock()
_current: dict[str, Any] = {"session": None, "trainer": None}
_pending: set[str] = set()  # sessions that pressed Start and wait for their turn in the queue
_saving_abandoned = threading.Event()  # a run whose page went away is being saved (it holds _train_lock)
SAVE_WAIT_S = 120.0  # how long a new run waits for that save
_stop_requested: set[str] = set()  # sessions that pressed Stop before their trainer was running


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "—"
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


@dataclass
class Update:
    status: str
    preview: Any = None  # PIL image of the whole content image translated
    history: list[dict] = field(default_factory=list)  # rows {iteration, loss, value}
    iteration: int = 0
    total: int = 0
    model_dir: Path | None = None
    archive: Path | None = None
    done: bool = False


def progress_line(iteration: int, total: int, its_per_sec: float, eta: float | None) -> str:
    return f"Iteration **{iteration}/{total}** · {its_per_sec:.2f} it/s · ETA {fmt_seconds(eta)}"


def pace_line(iteration: int, total: int, since: tuple[float, int]) -> str:
    """The progress line between two events, the speed measured since the last one (`since`: time, iteration)."""
    seconds = time.perf_counter() - since[0]
    speed = (iteration - since[1]) / seconds if seconds > 0 else 0.0
    return progress_line(iteration, total, speed, (total - iteration) / speed if speed > 0 else None)


def _plot_rows(iteration: int, losses: dict[str, float]) -> list[dict]:
    keys = [k for k in PLOTTED if k in losses] or sorted(losses)
    return [{"iteration": iteration, "loss": k, "value": float(losses[k])} for k in keys]


def yardsticks(content, style, output) -> str:
    """The style yardsticks of a result (cutcore.metrics.style) in one markdown line; "" if there is no output."""
    if output is None:
        return ""
    from cutcore.metrics.style import style_report

    try:
        r = style_report(content, style, output)
    except Exception:  # noqa: BLE001 - numbers beside the result, never a reason to lose it
        log.warning("style yardsticks failed", exc_info=True)
        return ""
    return (f"{models.STYLE_YARDSTICKS} colour **{r['colour_ratio']:.2f}**, texture **{r['texture_ratio']:.2f}** "
            "(distance to the style image as a share of the input's: below 1 is closer), content "
            f"**{r['content']:.2f}** (edges kept; 1 = all), colour in neither image "
            f"**{100 * r['foreign_colour_fraction']:.1f}%**.")


def model_card(name: str, cfg, photo: str, art: str, direction: str, iteration: int, total: int,
               scores: str = "") -> str:
    from cutcore.model_folder import ModelCard

    side = cfg.data.max_side
    content, style = content_and_style(direction, photo, art)
    shrunk = (f"; both images shrunk to {side} px on their longer side, so `translate` meets an image at the "
              "content image's scale (config.json `inference.scale`)") if side else ""
    training = [f"- Preset: `{cfg.preset}`; {iteration} of {total} iterations"
                f"{' (stopped early)' if iteration < total else ''}{shrunk}",
                "- Files: `model.safetensors` (generator `G.*`, PatchNCE heads `F.*`) and `config.json`"]
    sections = [("Training", training)]
    if scores:  # models.ModelEntry finds this line by its first words (STYLE_YARDSTICKS)
        sections.append(("Style", [f"{scores} (`python -m cutcore style` scores any result.)"]))
    summary = ("SinCUT (Park et al. 2020, single-image contrastive unpaired translation) trained live in the cutcore "
               f"demo: **{direction}**, content image `{content}`, style image `{style}`.")
    return ModelCard(name, summary, sections, tags=("sincut", "contrastive-unpaired-translation", "single-image")
                     ).render(".")


def mark_pending(session: str | None) -> bool:
    """Start was pressed: the run is queued (Gradio runs it when the previous one ends). False, and nothing
    marked, while this session's own run trains: its page sends no second run until the first has ended."""
    if session is None:
        return True
    with _state_lock:
        if _current["session"] == session:
            return False
        _pending.add(session)
        _stop_requested.discard(session)
    return True


def request_stop(session: str | None) -> str:
    """Stop the training of `session`, or withdraw its queued request; returns a status line."""
    with _state_lock:
        trainer = None
        if session is not None and _current["session"] == session:
            trainer = _current["trainer"]
            if trainer is None:  # still building the networks: stop as soon as they exist
                _stop_requested.add(session)
                return "Stopping…"
        elif session is not None and session in _pending:
            _stop_requested.add(session)
            return "Your queued request has been withdrawn."
        if trainer is None:
            return "Nothing of yours is training or waiting."
    trainer.stop(timeout=0)  # returns at once; the thread ends after its current iteration
    return "Stopping after the current iteration…"


def _take_stop_request(session: str | None) -> bool:
    with _state_lock:
        if session is not None and session in _stop_requested:
            _stop_requested.discard(session)
            return True
        return False


def check_crops(cfg, content: Upload, style: Upload) -> None:
    """UserError when an image, at the preset's working size, is smaller than its training crops."""
    from cutcore.imageio import ImageLoadError
    from cutcore.sincut.data import check_crop_fits

    try:
        for up in (content, style):
            check_crop_fits(up.image.size, cfg.data.max_side, cfg.data.crop_size, f"“{up.name}”")
    except ImageLoadError as e:  # the library's sentence, before the trainer is built (on its own thread)
        raise UserError(f"{e}.") from None


def save_live_model(trainer, cfg, photo: Upload, art: Upload, direction: str, iteration: int, total: int) -> tuple:
    """Export the run into the live models' folder with its card and yardsticks, and zip it for download:
    (name, folder, zip, final preview, yardsticks line)."""
    from cutcore.saved_config import Domains

    content, style = content_and_style(direction, photo, art)
    tag = "art2photo" if direction == ART_TO_PHOTO else "photo2art"
    name = f"sincut-{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = models.live_dir() / name
    domains = Domains(*content_and_style(direction, PHOTO, ART))

    def finish() -> tuple:  # torch work, on a thread of its own as in the other tabs (demo/torch_thread.py)
        final_preview = None
        try:
            final_preview = trainer.preview()
        except Exception:  # noqa: BLE001 - the preview is a nicety
            log.debug("no final preview", exc_info=True)
        scores = yardsticks(content.image, style.image, final_preview)
        card = model_card(name, cfg, photo.name, art.name, direction, iteration, total, scores)
        trainer.export(out, card=card, domains=domains)
        return final_preview, scores

    final_preview, scores = on_own_thread(finish)
    archive = Path(shutil.make_archive(str(output_dir() / name), "zip", root_dir=out.parent, base_dir=out.name))
    return name, out, archive, final_preview, scores


def train_updates(photo_file, art_file, direction: str, preset: str, iterations, every, session: str | None,
                  factory: Callable[..., Any] | None = None) -> Iterator[Update]:
    """The whole SinCUT action without the UI: validate, train, stream updates, export at the end."""
    with _state_lock:
        if session is not None:
            _pending.discard(session)
    if _take_stop_request(session):
        yield Update("Cancelled before it started.", done=True)
        return
    refuse_on_cpu(preset, models.device())
    photo = open_upload(photo_file, "a photo")
    art = open_upload(art_file, "an artwork")
    content, style = content_and_style(direction, photo, art)
    cfg = make_config(preset, iterations)
    # At least two loss records: the plot draws no line through a single point.
    every = min(preview_interval(every), max(1, cfg.train.total_iters // 2))
    check_crops(cfg, content, style)
    if not _train_lock.acquire(blocking=False):
        # Right after a reload the page's previous run may still be being saved: wait for it, not for a training.
        if not _saving_abandoned.is_set():
            raise UserError("Another SinCUT training is running on this server; please try again when it has "
                            "finished.")
        yield Update("Saving the previous run on this server first…")
        if not _train_lock.acquire(timeout=SAVE_WAIT_S):
            raise UserError("The previous run is still being saved; please try again in a minute.")
    trainer = None
    closed = saved = False
    try:
        with _state_lock:
            _current.update(session=session, trainer=None)
        yield Update(f"Preparing the networks ({cfg.preset}, {cfg.train.total_iters} iterations)…")
        trainer = (factory or TRAINER_FACTORY)(content.image, style.image, cfg, event_every=every,
                                               preview_size=PREVIEW_SIDE)
        with _state_lock:
            _current.update(session=session, trainer=trainer)
        if _take_stop_request(session):  # Stop pressed while the networks were being built
            trainer.stop(timeout=0)
        history: list[dict] = []
        last = None
        since: tuple[float, int] | None = None  # (time, iteration) of the last event
        shown = 0  # the iteration the status shows
        while True:
            try:
                ev = trainer.events.get(timeout=0.5)
            except queue.Empty:
                if not trainer.running and trainer.events.empty():
                    raise UserError("The training thread ended without a word; see the server log.") from None
                # Events come with previews only: between them the status follows the trainer's counter.
                if since is not None and (at := trainer.iteration) > shown:
                    shown, total = at, trainer.total
                    yield Update(pace_line(at, total, since), None, list(history), at, total)
                continue
            last = ev
            since, shown = (time.perf_counter(), ev.iteration), ev.iteration
            if ev.kind == "started":
                yield Update(f"Training… iteration {ev.iteration}/{ev.total}", None, list(history), ev.iteration,
                             ev.total)
            elif ev.kind == "progress":
                history += _plot_rows(ev.iteration, ev.losses)
                status = progress_line(ev.iteration, ev.total, ev.its_per_sec, ev.eta_seconds)
                yield Update(status, ev.preview, list(history), ev.iteration, ev.total)
            elif ev.kind == "error":
                raise UserError(f"Training failed: {ev.message}")
            else:  # finished / stopped
                break
        # The last event's total: a preset's time budget may have shortened the schedule on the way.
        iteration, total = (last.iteration, last.total) if last else (0, trainer.total)
        if iteration < total and iteration < min_export_iters():
            yield Update(f"Stopped at iteration **{iteration}/{total}**: too early to be worth keeping (models are "
                         f"kept from iteration {min_export_iters()}, or when the budget is reached), so nothing was "
                         "saved.",
                         None, list(history), iteration, total, done=True)
            return
        name, out, archive, final_preview, scores = save_live_model(trainer, cfg, photo, art, direction, iteration,
                                                                    total)
        saved = True  # a page that goes away at the last yield has its model already
        how = "finished" if iteration >= total else "stopped"
        status = (f"Training {how} at iteration **{iteration}/{total}**. The model `{name}` is in the model lists "
                  "of the other tabs; download it below." + (f"\n\n{scores}" if scores else ""))
        yield Update(status, final_preview, list(history), iteration, total, out, archive, True)
    except GeneratorExit:  # closed by Gradio (the client went away: a reload, a closed tab) or by a caller
        closed = not saved
        log.info("SinCUT run of %s closed at iteration %s (client gone?); stopping it", session,
                 getattr(trainer, "iteration", "?"))
        raise
    finally:
        if closed and trainer is not None:
            # Gradio closes generators on its event loop: wait for the trainer's last iteration elsewhere.
            trainer.stop(timeout=0)
            _saving_abandoned.set()
            threading.Thread(target=_keep_abandoned_run, args=(trainer, session, cfg, photo, art, direction),
                             daemon=True, name="sincut-cleanup").start()
        else:
            _finish_run(trainer, session)


def _keep_abandoned_run(trainer, session: str | None, cfg, photo: Upload, art: Upload, direction: str) -> None:
    """A run whose page went away (a reload, a closed tab): once it has stopped, keep it as Stop would (from
    `min_export_iters`), so that the training is not lost (the live models' list shows it); then free the slot."""
    try:
        trainer.stop(timeout=30)
        iteration, total = trainer.iteration, trainer.total
        failed = trainer.last_event is not None and trainer.last_event.kind == "error"  # as a page would: not kept
        if not trainer.running and not failed and (iteration >= total or iteration >= min_export_iters()):
            name = save_live_model(trainer, cfg, photo, art, direction, iteration, total)[0]
            log.info("SinCUT run of %s kept as %s at iteration %d/%d", session, name, iteration, total)
    except Exception:  # noqa: BLE001 - nobody to tell but the log; the slot must still be freed
        log.exception("keeping the SinCUT run of a page that went away")
    finally:
        try:
            _finish_run(trainer, session)
        finally:
            _saving_abandoned.clear()


def _finish_run(trainer, session: str | None) -> None:
    """Stop the trainer (waiting for its current iteration), forget the run, free the training slot."""
    try:
        if trainer is not None:
            try:
                trainer.stop(timeout=30)
            except Exception:
                log.exception("stopping the SinCUT trainer")
        with _state_lock:
            _current.update(session=None, trainer=None)
            _stop_requested.discard(session)
    finally:
        _train_lock.release()


def push_to_hub(folder: str | None, repo_id: str, token: str) -> str:
    """Upload a trained model folder to a Hub model repo; returns a markdown status line."""
    if offline():
        raise UserError("This server is offline (HF_HUB_OFFLINE/CUTCORE_OFFLINE), so it cannot push to the Hub.")
    if not folder or not Path(folder).is_dir():
        raise UserError("Train a model first: there is nothing to push yet.")
    repo_id, token = (repo_id or "").strip(), (token or "").strip()
    if repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
        raise UserError("Give the repository as `user/name`.")
    if not token:
        raise UserError("A Hugging Face write token is needed (huggingface.co/settings/tokens).")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="model",
                          commit_message="SinCUT model trained in the cutcore demo")
    except Exception as e:  # noqa: BLE001 - never echo the token: the type and a clipped message only
        msg = str(e).replace(token, "***")[:200]
        raise UserError(f"Push failed ({type(e).__name__}): {msg}") from None
    return f"Pushed to [{repo_id}](https://huggingface.co/{repo_id})."


def build(ctx) -> None:
    import pandas as pd

    from cutcore.sincut import default_sincut_preset

    choices = preset_choices()
    device = models.device()
    on_gpu = device.type == "cuda"
    first = default_sincut_preset(device)
    gr.Markdown(
        "Train **SinCUT** on two single images: the translation of the whole content image is previewed while it "
        "learns. One training runs at a time on this server (others wait in the queue and see their position).\n\n"
        + expectations(on_gpu), elem_id="sincut-expectations"
    )
    with gr.Row():
        with gr.Column(min_width=300):
            photo = gr.File(label="Photo", type="filepath", height=110, elem_id="sincut-photo")
            photo_view = gr.Image(label="Photo", interactive=False, height=180, show_label=False,
                                  elem_id="sincut-photo-view")
        with gr.Column(min_width=300):
            art = gr.File(label="Artwork", type="filepath", height=110, elem_id="sincut-art")
            art_view = gr.Image(label="Artwork", interactive=False, height=180, show_label=False,
                                elem_id="sincut-art-view")
        with gr.Column(min_width=300):
            direction = gr.Radio([PHOTO_TO_ART, ART_TO_PHOTO], value=PHOTO_TO_ART, label="Direction",
                                 elem_id="sincut-direction")
            preset = gr.Dropdown(choices, value=first, label="Preset", elem_id="sincut-preset")
            # No minimum/maximum/precision (nor a slider, which has them): Gradio would answer a value outside
            # them (or NaN) with its own error and a traceback; make_config and preview_interval say what is allowed.
            iterations = gr.Number(default_iterations(first), label="Iteration budget", info=f"2 to {max_iters()}",
                                   elem_id="sincut-iterations")
            every = gr.Number(25, label="Preview every N iterations", info="1 or more", elem_id="sincut-every")
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="sincut-start")
                stop = gr.Button("Stop", variant="stop", elem_id="sincut-stop")
    status = gr.Markdown("", elem_id="sincut-status")
    with gr.Row():
        preview = gr.Image(label="Translation of the content image (live)", interactive=False, height=400,
                           elem_id="sincut-preview")
        plot = gr.LinePlot(None, x="iteration", y="value", color="loss", title="Losses", height=400,
                           x_axis_format="d", elem_id="sincut-plot")
    with gr.Row():
        download = gr.File(label="Trained model (zip: model.safetensors + config.json + README.md)",
                           interactive=False, visible=False, elem_id="sincut-download")
        model_state = gr.State(None)
    with gr.Row():
        live_dd = ctx.model_dropdown("live", label="Models trained here", scale=4, elem_id="sincut-live-model",
                                     info="Kept in a temporary folder of this server and offered in every model "
                                          "list until deleted.")
        delete = gr.Button("Delete this model", variant="stop", scale=1, size="sm", min_width=120,
                           elem_id="sincut-delete")
    delete_status = gr.Markdown("", elem_id="sincut-delete-status")
    off = offline()
    with gr.Accordion("Push the trained model to the Hugging Face Hub (optional)", open=False):
        with gr.Column():
            gr.Markdown("_Disabled: this server is offline (HF_HUB_OFFLINE/CUTCORE_OFFLINE)._" if off else
                        "Creates the model repo if needed and uploads the model folder. The token is used for this "
                        "upload only and is not stored.")
            hub_repo = gr.Textbox(label="Model repo (user/name)", interactive=not off, elem_id="sincut-hub-repo")
            hub_token = gr.Textbox(label="Write token", type="password", interactive=not off,
                                   elem_id="sincut-hub-token")
            push = gr.Button("Push", interactive=not off, elem_id="sincut-push")
            push_status = gr.Markdown("")

    def show(file):
        upload, _ = checked_upload(file)
        return upload.image if upload else None

    photo.upload(show, photo, photo_view)
    art.upload(show, art, art_view)
    preset.change(default_iterations, preset, iterations)

    def run(photo_file, art_file, direction_v, preset_v, iterations_v, every_v, request: gr.Request):
        session = getattr(request, "session_hash", None)
        first = True
        plotted = -1  # rows the plot shows: it is sent again only when they change
        try:
            for up in train_updates(photo_file, art_file, direction_v, preset_v, iterations_v, every_v, session):
                out: dict = {status: up.status}
                if first:  # a new run: the previous run's download goes away
                    out[download] = gr.update(value=None, visible=False)
                    first = False
                if up.preview is not None:
                    out[preview] = up.preview
                if len(up.history) != plotted:
                    # None, not an empty frame: a LinePlot first given an empty frame never draws its lines (Gradio 6).
                    out[plot] = pd.DataFrame(up.history) if up.history else None
                    plotted = len(up.history)
                if up.done and up.archive is not None:
                    out[download] = gr.update(value=str(up.archive), visible=True)
                    out[model_state] = str(up.model_dir)
                    out.update(ctx.model_list_updates(select=str(up.model_dir)))  # chosen in every list
                    gr.Info(f"Model {up.model_dir.name} is ready.")
                yield out
        except Exception as e:  # noqa: BLE001 - every error: one line in the status and a toast
            err = to_gr_error(e, "sincut run")
            yield {status: f"⚠️ {error_text(err)}"}  # not "Starting…" beside the error
            raise err from None

    def pending_fn(request: gr.Request) -> str:
        if not mark_pending(getattr(request, "session_hash", None)):
            return "Your training is still running: **Stop** it first to start another."
        if _train_lock.locked():
            return ("Another training is running on this server: yours is queued (its position shows on the panels "
                    "below) and starts when that one ends. **Stop** withdraws it.")
        return "Starting…"

    def wire() -> None:  # after all tabs exist: the other tabs' model lists are outputs too
        outputs = [status, preview, plot, download, model_state, *ctx.model_outputs()]
        # Marking the request as queued runs at once (no queue); the training itself waits its turn.
        # Progress, queue position and an error show on the status line only: the run's outputs include every
        # model list of the app, which would otherwise all wear a red "Error" badge after a bad upload.
        start.click(pending_fn, None, status, queue=False).then(
            run, [photo, art, direction, preset, iterations, every], outputs, concurrency_limit=1,
            concurrency_id="sincut-train", show_progress_on=[status])

    ctx.after_build.append(wire)

    def wire_watch() -> None:
        """A page drawn while a training holds the slot (someone else's, or this user's own, kept after a reload and
        saved in the background) watches it and refreshes the model lists once it is free: the model shows without
        ↻. Made here, outside the tabs: a Timer in a tab not shown is never mounted, so it would never tick."""
        watch = gr.Timer(5.0, active=False)  # a request per page every 5 s, only while a run holds the slot

        def tick():
            if _train_lock.locked():
                return {}
            return {watch: gr.Timer(active=False), **ctx.model_list_updates()}

        watch.tick(tick, None, [watch, *ctx.model_outputs()], concurrency_limit=None, show_progress="hidden",
                   api_visibility="private")
        # This page's own run updates the lists when it ends (choosing its model): nothing to watch then.
        start.click(lambda: gr.Timer(active=False), None, watch, queue=False, api_visibility="private")
        ctx.on_load.append((lambda: gr.Timer(active=_train_lock.locked()), None, watch))

    ctx.after_build.append(wire_watch)

    def stop_fn(request: gr.Request):
        return request_stop(getattr(request, "session_hash", None))

    stop.click(stop_fn, None, status, concurrency_limit=None, queue=False)

    def delete_fn(key, *current):
        """Delete the chosen live model; every model list (and the overview) is refreshed."""
        try:
            entry = models.delete_live(key)
        except UserError as e:
            gr.Warning(str(e), title="Cannot do that")
            return {delete_status: f"⚠️ {e}"}
        out = ctx.refresh_lists(current)
        out[delete_status] = f"Deleted `{entry.name}` (its folder is gone from this server)."
        return out

    def wire_delete() -> None:
        lists = [dd for dd, _ in ctx.model_dropdowns]
        delete.click(delete_fn, [live_dd, *lists], [delete_status, *ctx.model_outputs()], queue=False,
                     api_name="delete_live_model")

    ctx.after_build.append(wire_delete)
    push.click(user_errors(push_to_hub), [model_state, hub_repo, hub_token], push_status)
