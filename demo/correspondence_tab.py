"""Correspondence tab: click the translation, see where PatchNCE finds that patch in the input."""
from __future__ import annotations

import os

import gradio as gr

from . import models
from .correspondence import (
    DEFAULT_MAX_SIDE,
    caption,
    correspondence_maps,
    display_scale,
    embeddings,
    mark_point,
    prepare_image,
    render_overlay,
)
from .errors import UserError, open_upload, user_errors

K_NEGATIVES = 5


def max_side() -> int:
    return int(os.environ.get("CUTCORE_DEMO_CORR_SIDE", DEFAULT_MAX_SIDE))


def analysis_side(model, image) -> int:
    """At most max_side(), and no larger than the model's training scale makes the image."""
    return max(16, min(max_side(), round(max(image.size) * model.input_scale)))


def analyse(model_key: str | None, file) -> tuple:
    """Translate the (downsized) image; returns (clickable output view, state)."""
    if not model_key:
        raise UserError("Choose a model with PatchNCE heads first (CUT, FastCUT, PUT or SinCUT models have them).")
    upload = open_upload(file, "an image")
    model = models.load(model_key)
    if model.heads is None:
        raise UserError("This model has no PatchNCE heads (CycleGAN models have none); choose another one.")
    image = prepare_image(upload.image, analysis_side(model, upload.image))
    emb = embeddings(model, image)
    s = display_scale(image)
    view = emb.output.resize((image.width * s, image.height * s)) if s > 1 else emb.output
    state = {"key": model_key, "file": str(getattr(file, "path", None) or file), "scale": s}
    return view, state, upload.summary + (f"; analysed at {image.width}×{image.height} px" if image.size != upload.image.size else "")


def on_click(state: dict | None, x: float, y: float) -> tuple:
    """Heatmaps for a click at display pixel (x, y); returns (marked output, gallery items, details markdown)."""
    if not state:
        raise UserError("Press “Translate” first, then click on the translation.")
    model = models.load(state["key"])
    original = open_upload(state["file"]).image
    image = prepare_image(original, analysis_side(model, original))
    s = state.get("scale", 1)
    px = min(max(int(x / s), 0), image.width - 1)
    py = min(max(int(y / s), 0), image.height - 1)
    maps = correspondence_maps(model, image, (px, py), k=K_NEGATIVES)
    output = embeddings(model, image).output
    gallery = [(render_overlay(image, m), caption(m)) for m in maps]
    rows = ["| layer | patches | positive | 5 hardest negatives |", "|---:|---:|---:|---|"]
    rows += [f"| {m.layer} | {m.grid[0]}×{m.grid[1]} | {m.positive_sim:.3f} | "
             + ", ".join(f"{v:.3f}" for v in m.negative_sims) + " |" for m in maps]
    text = (f"Query at ({px}, {py}) of the {image.width}×{image.height} analysis image. Cosine similarities:\n\n"
            + "\n".join(rows))
    return mark_point(output, (px, py)), gallery, text


def build(ctx) -> None:
    choices = ctx.registry().choices(heads_only=True)
    gr.Markdown(
        "PatchNCE makes each patch of the translation **G(x)** match the patch of the input **x** at the same place "
        "(the *positive*) against all other input patches (the *negatives*). Click a point on the translation: the "
        "heatmaps show, per PatchNCE layer, the cosine similarity of that output patch's embedding to every input "
        "patch. Green ring: the positive; numbered cyan crosses: the 5 hardest negatives (the most similar other "
        "places — what PUT keeps)."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            with gr.Row():
                model_dd = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None,
                                       label="Model (with PatchNCE heads)", scale=8, elem_id="corr-model")
                refresh = gr.Button("↻", scale=1, min_width=40, size="sm", elem_id="corr-refresh")
            upload = gr.File(label="Image", type="filepath", height=110, elem_id="corr-upload")
            info = gr.Markdown("", elem_id="corr-info")
            run = gr.Button("Translate", variant="primary", elem_id="corr-run")
        with gr.Column(scale=1, min_width=300):
            output = gr.Image(label="Translation — click a point", interactive=False, height=384,
                              elem_id="corr-output")
    gallery = gr.Gallery(label="Similarity to the query, per PatchNCE layer (brighter = more similar)", columns=5,
                         height=340, object_fit="contain", buttons=["fullscreen"], elem_id="corr-maps")
    details = gr.Markdown("", elem_id="corr-details")
    state = gr.State(None)

    @user_errors
    def do_analyse(key, file):
        return (*analyse(key, file), [], "")

    @user_errors
    def do_click(st, evt: gr.SelectData):
        x, y = evt.index
        return on_click(st, x, y)

    run.click(do_analyse, [model_dd, upload], [output, state, info, gallery, details], concurrency_id="analyse",
              concurrency_limit=2)
    output.select(do_click, state, [output, gallery, details], concurrency_id="analyse")
    ctx.model_dropdowns.append((model_dd, True))
    refresh.click(ctx.refresh_one(True), model_dd, model_dd)
