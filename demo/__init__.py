"""The cutcore Gradio demo: Translate, SinCUT live, Correspondence and Results tabs.

    from demo import build_demo
    build_demo().queue().launch()      # what app.py does

Environment (all optional):
  CUTCORE_WEIGHTS        our model folders (default: <repo>/weights)
  CUTCORE_MODELS         converted official models (default: ~/.cache/cutcore/models)
  CUTCORE_HUB_REPO       Hub model repo used when weights/ is empty (default: cutcore/sat2map)
  CUTCORE_LIVE_DIR       where SinCUT models trained in the app go (default: <tmp>/cutcore-live)
  CUTCORE_EXAMPLES       example images folder ("" disables; default ../shared/data/sat2map/trainA if present)
  CUTCORE_BENCH          benchmark JSON for the Results tab (default: weights/bench.json)
  CUTCORE_DEMO_TILE      tile size for large images (default 512)
  CUTCORE_DEMO_MAX_PIXELS  largest accepted upload (default 40 megapixels)
  CUTCORE_DEMO_MIN_SIDE  smallest accepted side in px (default 16)
  CUTCORE_DEMO_CORR_SIDE   Correspondence analysis size, longer side in px (default 256)
  CUTCORE_DEMO_MAX_ITERS   largest SinCUT iteration budget (default 200000)
  CUTCORE_DEMO_TINY_SINCUT=1  adds a seconds-long SinCUT preset (for tests)
  CUTCORE_DEVICE         device for inference (default cpu; e.g. cuda)
  HF_HUB_OFFLINE / CUTCORE_OFFLINE  no Hub access (the app still starts)
  GRADIO_SERVER_NAME / GRADIO_SERVER_PORT / GRADIO_SHARE  read by Gradio's launch()
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import models

__all__ = ["AppContext", "build_demo", "launch_kwargs"]

TITLE = "cutcore — contrastive unpaired translation"


@dataclass
class AppContext:
    """What the tabs share: the model registry and the model dropdowns to refresh."""

    model_dropdowns: list[tuple[Any, bool]] = field(default_factory=list)  # (dropdown, heads_only)
    after_build: list[Callable[[], None]] = field(default_factory=list)
    on_load: list[tuple[Callable, Any, Any]] = field(default_factory=list)

    def registry(self) -> models.Registry:
        return models.scan()

    def refresh_one(self, heads_only: bool) -> Callable:
        def refresh(current):
            import gradio as gr

            choices = self.registry().choices(heads_only)
            keys = [k for _, k in choices]
            value = current if current in keys else (keys[0] if keys else None)
            return gr.update(choices=choices, value=value)

        return refresh


def header_markdown(reg: models.Registry) -> str:
    counts = {}
    for e in reg.entries:
        counts[e.source] = counts.get(e.source, 0) + 1
    have = ", ".join(f"{n} {src}" for src, n in counts.items()) or "none"
    text = (f"# {TITLE}\n"
            "Satellite → map translation with CUT, FastCUT, focal PatchNCE, PUT and CycleGAN models; "
            f"SinCUT trained live on two images. Models available: **{have}**.")
    return text


def build_demo():
    import gradio as gr

    from . import correspondence_tab, results_tab, sincut_tab, translate_tab

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("cutcore.demo").setLevel(logging.INFO)
    ctx = AppContext()
    reg = ctx.registry()
    with gr.Blocks(title="cutcore demo", analytics_enabled=False) as demo:
        header = gr.Markdown(header_markdown(reg), elem_id="header")
        status = reg.status_markdown()
        with gr.Accordion("Missing models and how to get them", open=not reg.entries, visible=bool(status)):
            gr.Markdown(status, elem_id="models-status")
        with gr.Tabs():
            with gr.Tab("Translate", id="translate"):
                translate_tab.build(ctx)
            with gr.Tab("SinCUT live", id="sincut"):
                sincut_tab.build(ctx)
            with gr.Tab("Correspondence", id="correspondence"):
                correspondence_tab.build(ctx)
            with gr.Tab("Results", id="results"):
                results_tab.build(ctx)
        for wire in ctx.after_build:
            wire()
        # A fresh page (or another user) sees models trained since the server started.
        dropdowns = [dd for dd, _ in ctx.model_dropdowns]
        if dropdowns:
            def refresh_all(*values):
                updates = [ctx.refresh_one(h)(v) for (_, h), v in zip(ctx.model_dropdowns, values)]
                return (header_markdown(ctx.registry()), *updates)

            demo.load(refresh_all, dropdowns, [header, *dropdowns], queue=False)
        for fn, inputs, outputs in ctx.on_load:
            demo.load(fn, inputs, outputs)
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def launch_kwargs() -> dict:
    """Arguments for launch(): host, port and share come from Gradio's own env variables."""
    from . import translate_tab

    allowed = [str(p) for p in (translate_tab.examples_dir(),) if p is not None]
    return {"allowed_paths": allowed, "max_file_size": "200mb", "show_error": False}
