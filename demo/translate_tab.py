"""Translate tab: pick a model, upload an image of any size, compare before/after, download a PNG.

Sharing a CPU server: up to `CONCURRENCY` translations run at once, but only one *large* (tiled)
one, with at most one more waiting for it: a small image is answered at once even while someone
translates a 6000² image. A translation stops within one tile when its user presses Cancel or
goes away (closes the tab, disconnects, or cancels the API job); nothing is written then.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from PIL import Image

from cutcore.imageio import IMAGE_EXTENSIONS, fit_within
from cutcore.translate import TranslationCancelled, translate_image, will_tile

from . import models
from .errors import UserError, error_text, event_alive, to_gr_error
from .settings import env_int, output_dir
from .torch_thread import on_own_thread
from .uploads import Upload, checked_upload, open_upload, upload_name

log = logging.getLogger("cutcore.demo")

DEFAULT_TILE = 512
VIEW_SIDE = 1600  # the before/after view is downscaled to this; the download is full size
N_EXAMPLES = 6
CONCURRENCY = 3  # translations at once: one large running, one large waiting, and room for small ones
NEUTRAL_LABEL = "Input image"
FORMATS = "(PNG, JPEG, TIFF, WebP, BMP — any size)"
GET_OFFICIAL = ("⬇ Try the official CycleGAN satellite → map model (a 45 MB download; trained by its "
                "authors on Google Maps of New York)")


def tile_size() -> int:
    return env_int("CUTCORE_DEMO_TILE", DEFAULT_TILE, minimum=16)


def examples_dir() -> Path | None:
    env = os.environ.get("CUTCORE_EXAMPLES")
    if env is not None:
        return Path(env).expanduser() if env else None  # CUTCORE_EXAMPLES="" disables the gallery
    default = models.REPO_ROOT.parent / "shared" / "data" / "sat2map" / "trainA"
    return default if default.is_dir() else None


def examples_label() -> str:
    """The default examples are satellite tiles: say so, since a photo → art model is offered beside them."""
    if os.environ.get("CUTCORE_EXAMPLES") is None:
        return "Satellite tiles to try with the satellite → map models (click one to use it)"
    return "Examples (click one to use it)"


def example_images(n: int = N_EXAMPLES) -> list[Path]:
    folder = examples_dir()
    if folder is None or not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return files[:n]


def view(img: Image.Image) -> Image.Image:
    return fit_within(img, VIEW_SIDE, Image.BILINEAR)


class Cancelled(TranslationCancelled):
    """A translation stopped on request (`reason`: "cancelled" or "client gone") after `done` of `total` tiles."""

    def __init__(self, reason: str, done: int = 0, total: int = 0):
        super().__init__(done, total)
        self.reason = reason
        self.args = (reason,)


# The large-image lane: one tiled translation runs, one more may wait; others are refused.
_large_running = threading.Lock()
_large_slots = threading.BoundedSemaphore(2)


@contextmanager
def large_lane(check: Callable[[], None], waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the large-image lane while translating; `check` (raising Cancelled) is polled while waiting."""
    if not _large_slots.acquire(blocking=False):
        raise UserError("Two large images are already being translated or waiting on this server; please try again "
                        "in a few minutes (small images are translated at once).")
    try:
        told = False
        while not _large_running.acquire(timeout=0.25):
            if not told and waiting is not None:
                waiting()
                told = True
            check()
        try:
            yield
        finally:
            _large_running.release()
    finally:
        _large_slots.release()


@dataclass
class Job:
    """A running translation of one browser session (or API client): what Cancel stops."""

    session: str | None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: int = 0
    total: int = 0


_jobs_lock = threading.Lock()
_jobs: list[Job] = []


def start_job(session: str | None) -> Job:
    job = Job(session)
    with _jobs_lock:
        _jobs.append(job)
    return job


def end_job(job: Job) -> None:
    with _jobs_lock:
        if job in _jobs:
            _jobs.remove(job)


def jobs_of(session: str | None) -> list[Job]:
    """The translations of `session` under way."""
    with _jobs_lock:
        return [j for j in _jobs if session is not None and j.session == session]


def request_cancel(session: str | None) -> str:
    """Cancel the running translations of `session`; returns a status line."""
    mine = jobs_of(session)
    for job in mine:
        job.cancel.set()
    if not mine:
        return "Nothing of yours is being translated."
    job = mine[0]
    where = f" after {job.done} of {job.total} tiles" if job.total > 1 else ""
    return f"Translation cancelled{where}; nothing was saved."


def input_label(entry: models.ModelEntry | None) -> str:
    """The upload box's label: what the chosen model translates, when its config says so."""
    if entry is None or not entry.domain:
        return f"{NEUTRAL_LABEL} {FORMATS}"
    return f"{entry.domain[:1].upper()}{entry.domain[1:]} to translate {FORMATS}"


@dataclass
class TranslateResult:
    input_view: Image.Image
    output_view: Image.Image
    png_path: Path
    info: str
    output: Image.Image


def translate_upload(model_key: str | None, file, progress: Callable[[int, int], None] | None = None,
                     should_stop: Callable[[], str | None] | None = None,
                     waiting: Callable[[], None] | None = None) -> TranslateResult:
    """The whole Translate action without the UI: validate, load, translate (the library tiles it if large), save.

    `should_stop()` returns a reason to stop (or None); it is asked before starting, before every tile
    (the library's cancel hook) and before saving, and a reason raises Cancelled with nothing written.
    `waiting()` is called once if the large-image lane is busy."""
    if not model_key:
        raise UserError("No model selected. " + ("Choose one in the list." if models.scan().entries
                                                  else "No models are installed yet (see the note above)."))
    entry = models.require(model_key)  # an unknown model is said before a bad upload
    upload: Upload = open_upload(file, "an image")
    entry_name = Path(model_key).name
    model = models.load(entry)  # one registry scan a click, not two
    img = upload.image
    tile = tile_size()
    tiled = will_tile(model, img, tile)  # translate_image decides; a large one waits for the large-image lane
    reason: list[str | None] = [None]
    seen = [0, 0]  # tiles done, total

    def stop() -> bool:
        reason[0] = should_stop() if should_stop is not None else None
        return bool(reason[0])

    def check() -> None:
        if stop():
            raise Cancelled(reason[0], *seen)

    def report(done: int, total: int) -> None:
        seen[:] = [done, total]
        if progress is not None:
            progress(done, total)

    check()
    with large_lane(check, waiting) if tiled else nullcontext():
        start = time.perf_counter()
        try:
            out = translate_image(model, img, tile=tile, progress=report, should_stop=stop)
        except TranslationCancelled as c:
            raise Cancelled(reason[0] or "cancelled", c.done, c.total) from None
    seconds = time.perf_counter() - start
    check()  # nothing is written for a client that has gone
    stem = Path(upload.name).stem or "image"
    png = output_dir() / f"{stem}_{entry_name}.png"
    out.save(png, compress_level=1 if img.width * img.height > 4_000_000 else 6)
    how = f"in {tile}px tiles" if tiled else "in one pass"
    if model.input_scale != 1:  # the result is resized back to the input's size
        how += f" at ×{model.input_scale:.3g} (the scale this model translates at)"
    took = "in under 0.1 s" if seconds < 0.1 else f"in {seconds:.1f} s"
    info = f"{upload.summary} → translated {how} {took} with `{entry_name}`."
    return TranslateResult(view(img), view(out), png, info, out)


def on_upload(file):
    """Validate as soon as a file arrives: (input preview or None, status markdown)."""
    upload, warning = checked_upload(file)
    if upload is None:
        return None, warning
    if not models.scan().entries:  # "press Translate" would only lead to "no model selected"
        return view(upload.image), upload.summary + " — no model is installed yet (see the note above)."
    return view(upload.image), upload.summary + " — press **Translate**."


def model_changed(key: str | None):
    """The model card and the upload box's label for the chosen model."""
    entry = models.scan().get(key) if key else None
    return (entry.describe() if entry else ""), gr.update(label=input_label(entry))


def build(ctx) -> None:
    reg = ctx.registry()
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                model_dd = ctx.model_dropdown(False, reg, label="Model", scale=8, elem_id="translate-model")
                refresh = gr.Button("↻", scale=0, min_width=44, size="sm", elem_id="translate-refresh")
            first = reg.get(model_dd.value)
            get_official = gr.Button(GET_OFFICIAL, visible=models.offer_official_sat2map(reg), size="sm",
                                     elem_id="translate-get-official")
            model_md = gr.Markdown(first.describe() if first else "", elem_id="translate-model-card")
            upload = gr.File(label=input_label(first), file_count="single",
                             type="filepath", height=140, elem_id="translate-upload")
            info = gr.Markdown("", elem_id="translate-info")
            with gr.Row():
                run = gr.Button("Translate", variant="primary", scale=3, elem_id="translate-run")
                cancel = gr.Button("Cancel", variant="stop", scale=1, elem_id="translate-cancel")
            download = gr.File(label="Result (full-size PNG)", interactive=False, visible=False,
                               elem_id="translate-download")
        with gr.Column(scale=3, min_width=360):
            preview = gr.Image(label="Input", type="pil", interactive=False, height=520, elem_id="translate-preview")
            slider = gr.ImageSlider(label="Input ↔ translation (drag the handle)", type="pil", interactive=False,
                                    max_height=640, visible=False, elem_id="translate-slider")
    shown_input = [preview, slider, download, info]

    def show_input(file):
        image, text = on_upload(file)
        return (gr.update(value=image, visible=True), gr.update(visible=False), gr.update(visible=False, value=None),
                text)

    def uploaded(file, request: gr.Request):
        shown = show_input(file)
        # A large upload is still being read when an eager user presses Translate: its "press Translate" would
        # then land on the line that says the translation is under way.
        return (*shown[:3], gr.update()) if jobs_of(getattr(request, "session_hash", None)) else shown

    examples = example_images()
    if examples:
        gallery = gr.Gallery([(str(p), p.name) for p in examples], label=examples_label(),
                             columns=len(examples), height=160, allow_preview=False, buttons=[],
                             elem_id="translate-examples")

        def pick(evt: gr.SelectData):
            path = str(examples[evt.index])
            return (path, *show_input(path))

        gallery.select(pick, None, [upload, *shown_input])

    upload.upload(uploaded, upload, shown_input)
    upload.clear(lambda: show_input(None), None, shown_input)
    model_dd.change(model_changed, model_dd, [model_md, upload])

    def do_translate(key, file, request: gr.Request, progress=gr.Progress()):  # noqa: B008 - Gradio's pattern
        """A generator: the info line says "translating" during the work, and what went wrong after an error."""
        def report(done: int, total: int) -> None:
            progress((done, total), desc="Translating tiles" if total > 1 else "Translating", unit="tiles")
            job.done, job.total = done, total

        def should_stop() -> str | None:
            if job.cancel.is_set():
                return "cancelled"
            return None if event_alive() else "client gone"

        def waiting() -> None:
            progress(0.0, desc="Waiting for another large image to finish")

        job = start_job(getattr(request, "session_hash", None))
        try:
            name = upload_name(file)
            yield gr.update(), gr.update(), gr.update(), f"Translating **{name}**…" if name else "Translating…"
            result = on_own_thread(translate_upload, key, file, report, should_stop, waiting)
        except Cancelled as c:
            log.info("translation %s after %d of %d tiles; nothing saved", c.reason, c.done, c.total)
            where = f" after {c.done} of {c.total} tiles" if c.total > 1 else ""
            yield gr.update(), gr.update(), gr.update(), f"Translation cancelled{where}; nothing was saved."
            return
        except Exception as e:  # noqa: BLE001 - every error: one line in the info and a toast
            err = to_gr_error(e, "do_translate")
            yield gr.update(), gr.update(), gr.update(), f"⚠️ {error_text(err)}"
            raise err from None
        finally:
            end_job(job)
        yield (gr.update(visible=False), gr.update(value=(result.input_view, result.output_view), visible=True),
               gr.update(value=str(result.png_path), visible=True), result.info)

    def fetch_official(*current, progress=gr.Progress()):  # noqa: B008 - Gradio's pattern
        """Download the official satellite → map model, then show it in every model list, chosen here."""
        def report(done: int, total: int | None) -> None:
            mib = f"{done / 2**20:.0f}" + (f" of {total / 2**20:.0f}" if total else "")
            progress(done / total if total else 0.0, desc=f"Downloading the official model: {mib} MiB")

        try:
            entry = models.install_official_sat2map(report)
        except Exception as e:  # noqa: BLE001 - every error: one line in the info and a toast
            err = to_gr_error(e, "fetch_official")
            gr.Warning(error_text(err), title="No download")
            return {info: f"⚠️ {error_text(err)}"}
        out = ctx.refresh_lists(current)  # the offer hides itself: the model is in the registry now
        out[model_dd] = {**out[model_dd], "value": entry.key}
        out[info] = (f"**{entry.name}** is ready: the CycleGAN authors' model, trained on Google Maps of New York, "
                     "so it draws Google-style maps. Upload a satellite image or pick an example.")
        return out

    def wire_official() -> None:  # after all tabs exist: every model list is an output
        lists = [dd for dd, _ in ctx.model_dropdowns]
        get_official.click(fetch_official, lists, [info, *ctx.model_outputs()],
                           concurrency_limit=1, concurrency_id="official-download", show_progress_on=[info])

    ctx.after_build.append(wire_official)
    # Refreshed with the model lists: another user's download (or a model of ours added since) hides it.
    ctx.registry_views.append((get_official, lambda reg: gr.update(visible=models.offer_official_sat2map(reg))))

    def cancel_translation(request: gr.Request) -> str:
        return request_cancel(getattr(request, "session_hash", None))

    running = run.click(do_translate, [model_dd, upload], shown_input, concurrency_limit=CONCURRENCY,
                        concurrency_id="translate", show_progress_on=[preview, slider])
    # The flag stops the work within a tile; `cancels` also withdraws a request still waiting in the queue.
    cancel.click(cancel_translation, None, info, queue=False, cancels=[running])
    refresh.click(ctx.refresh_one(False), model_dd, model_dd)
