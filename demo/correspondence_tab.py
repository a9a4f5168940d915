"""Correspondence tab: click the translation, see where PatchNCE finds that patch in the input.

The analysis and its pictures are `cutcore.correspondence`'s; this module lays them out and wires the clicks."""
from __future__ import annotations

import gradio as gr

from cutcore.correspondence import (
    DEFAULT_MAX_SIDE,
    caption,
    correspondence_maps,
    display_scale,
    embeddings,
    mark_point,
    percent_above,
    prepare_image,
    render_overlay,
    similarity_decimals,
)

from . import models
from .errors import UserError, error_text, to_gr_error
from .settings import env_int
from .torch_thread import on_own_thread
from .uploads import checked_upload, open_upload

K_NEGATIVES = 5

READING = (
    "**Reading the numbers.** Training shows each query only a few negatives: 255 other places of the same "
    "image for CUT and FastCUT; for SinCUT one place per crop, contrasted with the same place in the 7 "
    "(`sincut-cpu`) or 15 (paper) other crops of its batch. Here every place of the image competes, so a few "
    "of them can match the query better than the positive (often where the colour is the same, far from the "
    "click) without anything being wrong: what the loss asks is that the positive beat most places, which "
    "*above* measures."
)
SINCUT_READING = (
    " SinCUT shows this most: telling 8-16 random crops apart needs little, and its heads learn an almost "
    "two-dimensional embedding (mostly colour and brightness; on the Monet/Étretat `sincut-cpu` model two "
    "components carry 97-98% of the variance on every layer), so among the tens of thousands of patches of a "
    "whole image the hardest negatives reach 0.99-1.00 on every layer, above the positive. In its training "
    "batches the same model scores the positive 0.95 on average and the 7 negatives 0.46-0.78 (the hardest of "
    "the 7: 0.88-0.93)."
)


def max_side() -> int:
    return env_int("CUTCORE_DEMO_CORR_SIDE", DEFAULT_MAX_SIDE, minimum=16)


def analysis_side(model, image) -> int:
    """At most max_side(), and no larger than the model's training scale makes the image."""
    return max(16, min(max_side(), round(max(image.size) * model.input_scale)))


def analyse(model_key: str | None, file) -> tuple:
    """Translate the (downsized) image; returns (clickable output view, state)."""
    if not model_key:
        if not models.scan().choices(heads_only=True):  # the same pointer as the first screen's notes
            raise UserError("No model with PatchNCE heads is installed yet: make one in a few minutes in the "
                            "SinCUT live tab (a photo and an artwork), or see the note above.")
        raise UserError("Choose a model with PatchNCE heads first (CUT, FastCUT, PUT or SinCUT models have them).")
    upload = open_upload(file, "an image")
    model = models.load(model_key)
    if model.heads is None:
        raise UserError("This model has no PatchNCE heads (CycleGAN models have none); choose another one.")
    image = prepare_image(upload.image, analysis_side(model, upload.image))
    emb = embeddings(model, image)
    s = display_scale(image)
    view = emb.output.resize((image.width * s, image.height * s)) if s > 1 else emb.output
    state = {"key": model_key, "file": str(upload.path), "scale": s}
    resized = f"; analysed at {image.width}×{image.height} px" if image.size != upload.image.size else ""
    return view, state, upload.summary + resized


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
    return mark_point(output, (px, py)), gallery, details(maps, (px, py), image.size, model.config.kind)


def details(maps, point: tuple[int, int], size: tuple[int, int], kind: str | None = None) -> str:
    """The click's table of cosine similarities, and how to read hardest negatives above the positive."""
    rows = ["| layer | patches | positive | above | median | 5 hardest negatives |", "|---:|---:|---:|---:|---:|---|"]
    d = similarity_decimals(maps, 3)
    rows += [f"| {m.layer} | {m.grid[0]}×{m.grid[1]} | {m.positive_sim:.{d}f} | {percent_above(m)} | "
             f"{m.median_sim:.{d}f} | " + ", ".join(f"{v:.{d}f}" for v in m.negative_sims) + " |" for m in maps]
    note = READING + (SINCUT_READING if kind == "sincut" else "")
    return (f"Query at ({point[0]}, {point[1]}) of the {size[0]}×{size[1]} analysis image. Cosine similarities "
            "(*above*: share of the other patches of the image less similar than the positive; *median*: "
            "their median):\n\n" + "\n".join(rows) + "\n\n" + note)


def build(ctx) -> None:
    gr.Markdown(
        "PatchNCE makes each patch of the translation **G(x)** match the patch of the input **x** at the same place "
        "(the *positive*) against all other input patches (the *negatives*). Click a point on the translation: the "
        "heatmaps show, per PatchNCE layer, the cosine similarity of that output patch's embedding to every input "
        "patch. Green ring: the positive; numbered cyan crosses: the 5 hardest negatives (the most similar other "
        "places — what PUT keeps). The hardest of all places can score above the positive: the table under the "
        "maps says why."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            with gr.Row():
                model_dd = ctx.model_dropdown(True, label="Model (with PatchNCE heads)", scale=8, elem_id="corr-model")
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

    # Generators: on an error the message goes to the tab's own text line first (what the user reads after the
    # toast is gone), then the gr.Error to the caller (an API client gets an error, not a result). Progress and
    # the error badge stay on the picture being computed; the other outputs keep what they showed.
    def do_analyse(key, file):
        try:
            view, st, text = on_own_thread(analyse, key, file)
        except Exception as e:  # noqa: BLE001 - every error: one line in the info and a toast
            err = to_gr_error(e, "do_analyse")
            yield gr.update(), gr.update(), f"⚠️ {error_text(err)}", gr.update(), gr.update()
            raise err from None
        yield view, st, text, [], ""

    def do_click(st, evt: gr.SelectData):
        x, y = evt.index
        try:
            yield on_own_thread(on_click, st, x, y)
        except Exception as e:  # noqa: BLE001 - every error: one line under the maps and a toast
            err = to_gr_error(e, "do_click")
            yield gr.update(), gr.update(), f"⚠️ {error_text(err)}"
            raise err from None

    def check_upload(file):
        """As the other tabs: a file is checked as soon as it arrives."""
        upload, warning = checked_upload(file)
        return warning if upload is None else upload.summary + " — press **Translate**, then click the translation."

    run.click(do_analyse, [model_dd, upload], [output, state, info, gallery, details], concurrency_id="analyse",
              concurrency_limit=2, show_progress_on=[output])
    output.select(do_click, state, [output, gallery, details], concurrency_id="analyse", show_progress_on=[gallery])
    upload.upload(check_upload, upload, info)
    upload.clear(lambda: "", None, info)
    refresh.click(ctx.refresh_one(True), model_dd, model_dd)
