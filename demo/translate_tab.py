"""Translate tab: pick a model, upload an image of any size, compare before/after, download a PNG."""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from cutcore.imageio import IMAGE_EXTENSIONS, fit_within
from cutcore.translate import translate_image

from . import models
from .errors import Upload, UserError, open_upload, user_errors

DEFAULT_TILE = 512
VIEW_SIDE = 1600  # the before/after view is downscaled to this; the download is full size
N_EXAMPLES = 6


def tile_size() -> int:
    return int(os.environ.get("CUTCORE_DEMO_TILE", DEFAULT_TILE))


def output_dir() -> Path:
    root = Path(tempfile.gettempdir()) / "cutcore-demo" / uuid.uuid4().hex[:12]
    root.mkdir(parents=True, exist_ok=True)
    return root


def examples_dir() -> Path | None:
    env = os.environ.get("CUTCORE_EXAMPLES")
    if env is not None:
        return Path(env).expanduser() if env else None  # CUTCORE_EXAMPLES="" disables the gallery
    default = models.REPO_ROOT.parent / "shared" / "data" / "sat2map" / "trainA"
    return default if default.is_dir() else None


def example_images(n: int = N_EXAMPLES) -> list[Path]:
    folder = examples_dir()
    if folder is None or not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return files[:n]


def view(img: Image.Image, side: int | None = None) -> Image.Image:
    return fit_within(img, side or VIEW_SIDE, Image.BILINEAR)


@dataclass
class TranslateResult:
    input_view: Image.Image
    output_view: Image.Image
    png_path: Path
    info: str
    output: Image.Image


def translate_upload(model_key: str | None, file, progress: Callable[[int, int], None] | None = None) -> TranslateResult:
    """The whole Translate action without the UI: validate, load, translate (tiled if large), save."""
    if not model_key:
        raise UserError("No model selected. " + ("Choose one in the list." if models.scan().entries
                                                  else "No models are installed yet (see the note above)."))
    upload: Upload = open_upload(file, "a satellite image")
    entry_name = Path(model_key).name
    model = models.load(model_key)
    img = upload.image
    tile = tile_size()
    tiled = max(img.size) * model.input_scale > tile  # the size the generator will see
    start = time.perf_counter()
    out = translate_image(
        model, img, tile=tile if tiled else None, overlap=min(64, tile // 4), progress=progress)
    seconds = time.perf_counter() - start
    stem = Path(upload.name).stem or "image"
    png = output_dir() / f"{stem}_{entry_name}.png"
    out.save(png, compress_level=1 if img.width * img.height > 4_000_000 else 6)
    how = f"in {tile}px tiles" if tiled else "in one pass"
    if model.input_scale != 1:
        how += f" at ×{model.input_scale:g} (the scale the model was trained at)"
    info = f"{upload.summary} → translated {how} in {seconds:.1f} s with `{entry_name}`."
    return TranslateResult(view(img), view(out), png, info, out)


def on_upload(file):
    """Validate as soon as a file arrives: (input preview or None, status markdown)."""
    if file is None:
        return None, ""
    try:
        upload = open_upload(file, "a satellite image")
    except UserError as e:
        gr.Warning(str(e), title="Unusable file")
        return None, f"⚠️ {e}"
    return view(upload.image), upload.summary + " — press **Translate**."


def describe_model(key: str | None) -> str:
    entry = models.scan().get(key)
    return entry.describe() if entry else ""


def build(ctx) -> None:
    reg = ctx.registry()
    choices = reg.choices()
    with gr.Row():
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                model_dd = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None, label="Model",
                                       scale=8, elem_id="translate-model")
                refresh = gr.Button("↻", scale=0, min_width=44, size="sm", elem_id="translate-refresh")
            model_md = gr.Markdown(describe_model(choices[0][1]) if choices else "", elem_id="translate-model-card")
            upload = gr.File(label="Satellite image (PNG, JPEG, TIFF, WebP, BMP — any size)", file_count="single",
                             type="filepath", height=140, elem_id="translate-upload")
            info = gr.Markdown("", elem_id="translate-info")
            run = gr.Button("Translate", variant="primary", elem_id="translate-run")
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

    examples = example_images()
    if examples:
        gallery = gr.Gallery([(str(p), p.name) for p in examples], label="Examples (click one to use it)",
                             columns=len(examples), height=160, allow_preview=False, buttons=[],
                             elem_id="translate-examples")

        def pick(evt: gr.SelectData):
            path = str(examples[evt.index])
            return (path, *show_input(path))

        gallery.select(pick, None, [upload, *shown_input])

    upload.upload(show_input, upload, shown_input)
    upload.clear(lambda: show_input(None), None, shown_input)
    model_dd.change(describe_model, model_dd, model_md)

    @user_errors
    def do_translate(key, file, progress=gr.Progress()):  # noqa: B008 - Gradio's documented pattern
        def report(done: int, total: int) -> None:
            progress((done, total), desc="Translating tiles" if total > 1 else "Translating", unit="tiles")

        result = translate_upload(key, file, report)
        return (gr.update(visible=False), gr.update(value=(result.input_view, result.output_view), visible=True),
                gr.update(value=str(result.png_path), visible=True), result.info)

    run.click(do_translate, [model_dd, upload], shown_input, concurrency_limit=2, concurrency_id="translate",
              show_progress_on=[preview, slider])
    ctx.model_dropdowns.append((model_dd, False))
    refresh.click(ctx.refresh_one(False), model_dd, model_dd)
