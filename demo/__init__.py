"""The cutcore Gradio demo: Translate, SinCUT live, Correspondence and Results tabs.

    from demo import build_demo
    build_demo().launch(**launch_kwargs())      # what app.py does (build_demo sets up the queue)

Environment (all optional; a value the app cannot use stops its start with one line naming it):
  CUTCORE_WEIGHTS        our model folders (default: <repo>/weights)
  CUTCORE_MODELS         converted official models (default: ~/.cache/cutcore/models)
  CUTCORE_HUB_REPO       Hub model repo used when weights/ is empty (default: cutcore/sat2map)
  CUTCORE_LIVE_DIR       where SinCUT models trained in the app go (default: <tmp>/cutcore-live)
  CUTCORE_EXAMPLES       example images folder ("" disables; default ../shared/data/sat2map/trainA if present)
  CUTCORE_BENCH          CPU benchmark JSON for the Results tab (default: bench.json in CUTCORE_WEIGHTS)
  CUTCORE_DEMO_TILE      tile size for large images (default 512)
  CUTCORE_DEMO_MAX_PIXELS  largest accepted upload (default 40 megapixels)
  CUTCORE_DEMO_MIN_SIDE  smallest accepted side in px (default 16)
  CUTCORE_DEMO_CORR_SIDE   Correspondence analysis size, longer side in px (default 256)
  CUTCORE_DEMO_MAX_ITERS   largest SinCUT iteration budget (default 200000)
  CUTCORE_DEMO_MIN_EXPORT_ITERS  a SinCUT run stopped before this many iterations (and before its
                         budget) is not exported or listed (default 25)
  CUTCORE_DEMO_TINY_SINCUT=1  adds a seconds-long SinCUT preset (for tests)
  CUTCORE_DEVICE         device for translation and SinCUT training (default: the GPU when CUDA is present, else cpu)
  HF_HUB_OFFLINE / CUTCORE_OFFLINE  no Hub access (the app still starts)
  GRADIO_SERVER_NAME / GRADIO_SERVER_PORT / GRADIO_SHARE  read by Gradio's launch()
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import models, settings

__all__ = ["AppContext", "accept_current_models", "build_demo", "launch_kwargs", "model_dropdown"]

TITLE = "cutcore — contrastive unpaired translation"

# Which models a model list offers: False = all, True = those with PatchNCE heads, "live" = trained in the app.
Kind = bool | str


def _model_key_api_info() -> dict[str, Any]:
    return {"type": "string", "description": "a model key (folder) as the model lists show it now; see /refresh"}


def accept_current_models(dd):
    """Make a gr.Dropdown of model keys accept the models that exist *now*, not only those at start-up.

    A plain Dropdown rejects any value outside the choices it was built with ("… is not in the list
    of choices: []"), and its API schema is an enum of them (`Literal[]` when it started empty).
    With `allow_custom_value` it passes any string on; the handlers check it against the current
    registry (`models.require`: one readable line for an unknown model). The API schema says
    "string". (Gradio rebuilds a component from its constructor arguments whenever an event updates
    it, so the flag goes there too; not a subclass: Gradio writes a .pyi stub next to the source
    file of every Component subclass.)
    """
    dd.allow_custom_value = True
    args = getattr(dd, "_constructor_args", None)
    if args:
        args[0]["allow_custom_value"] = True
    dd.api_info = _model_key_api_info  # the schema is read once, from the start-up config
    dd._api_info_cache = None
    return dd


def model_dropdown(**kwargs):
    """A gr.Dropdown for model keys (see `accept_current_models`)."""
    import gradio as gr

    return accept_current_models(gr.Dropdown(allow_custom_value=True, **kwargs))


@dataclass
class AppContext:
    """What the tabs share: the model registry, the model dropdowns to refresh, the page's overview."""

    model_dropdowns: list[tuple[Any, Kind]] = field(default_factory=list)  # (dropdown, kind)
    after_build: list[Callable[[], None]] = field(default_factory=list)
    on_load: list[tuple[Callable, Any, Any]] = field(default_factory=list)
    overview: list[Any] = field(default_factory=list)  # header, missing-models accordion, its text
    # Other components drawn from the registry: (component, its update for a registry), refreshed with the lists.
    registry_views: list[tuple[Any, Callable[[models.Registry], Any]]] = field(default_factory=list)

    def registry(self) -> models.Registry:
        return models.scan()

    @staticmethod
    def choices(kind: Kind, reg: models.Registry) -> list[tuple[str, str]]:
        if kind == "live":
            return reg.choices(source="live")
        return reg.choices(bool(kind))

    def model_dropdown(self, kind: Kind = False, reg: models.Registry | None = None, **kwargs):
        """A model list of `kind`, filled from the registry and refreshed with the others."""
        choices = self.choices(kind, reg or self.registry())
        kwargs.setdefault("value", choices[0][1] if choices else None)
        dd = model_dropdown(choices=choices, **kwargs)
        self.model_dropdowns.append((dd, kind))
        return dd

    def refresh_one(self, kind: Kind) -> Callable:
        def refresh(current):
            return self._list_update(kind, self.registry(), current)

        return refresh

    def _list_update(self, kind: Kind, reg: models.Registry, current: str | None):
        """A model list's new choices, keeping `current` selected while it still exists (else the first)."""
        import gradio as gr

        choices = self.choices(kind, reg)
        keys = [k for _, k in choices]
        return gr.update(choices=choices, value=current if current in keys else (keys[0] if keys else None))

    def overview_updates(self, reg: models.Registry) -> list:
        """New values for the header, the missing-models accordion and its text (in `overview` order)."""
        import gradio as gr

        status = reg.status_markdown()
        return [header_markdown(reg), gr.update(open=not reg.entries, visible=bool(status)), status]

    def _view_updates(self, reg: models.Registry) -> dict:
        """{component: update} for the overview and the other registry views."""
        out: dict = dict(zip(self.overview, self.overview_updates(reg), strict=True))
        out.update((component, update(reg)) for component, update in self.registry_views)
        return out

    def model_list_updates(self, select: str | None = None) -> dict:
        """{component: update} for every model list and the overview, after a model was added: `select` (its key)
        becomes the choice of every list that offers it (a user who just trained a model wants to use it)."""
        import gradio as gr

        reg = self.registry()
        out: dict = {}
        for dd, kind in self.model_dropdowns:
            choices = self.choices(kind, reg)
            offered = select is not None and select in (k for _, k in choices)
            out[dd] = gr.update(choices=choices, value=select) if offered else gr.update(choices=choices)
        out.update(self._view_updates(reg))
        return out

    def refresh_lists(self, values) -> dict:
        """{component: update} for every model list (keeping each one's value `values[i]` if it still exists),
        the overview and the other registry views."""
        reg = self.registry()
        out = self._view_updates(reg)
        for (dd, kind), value in zip(self.model_dropdowns, values, strict=True):
            out[dd] = self._list_update(kind, reg, value)
        return out

    def model_outputs(self) -> list:
        return [*self.overview, *[dd for dd, _ in self.model_dropdowns], *[c for c, _ in self.registry_views]]


def header_markdown(reg: models.Registry) -> str:
    counts = {}
    for e in reg.entries:
        counts[e.source] = counts.get(e.source, 0) + 1
    have = ", ".join(f"{n} {src}" for src, n in counts.items()) or "none"
    text = (f"# {TITLE}\n"
            "Satellite → map translation with CUT, FastCUT, focal PatchNCE, PUT and CycleGAN models; "
            f"SinCUT trained live on two images. Models available: **{have}**.")
    if not reg.entries:
        text += (" Make one in a few minutes in the **SinCUT live** tab (a photo and an artwork), "
                 "or see how to get ours below.")
    return text


def _check_settings() -> None:
    """Read every setting once (settings.SettingError on the first bad one)."""
    from . import correspondence_tab, sincut_tab, translate_tab, uploads

    for read in (settings.device, translate_tab.tile_size, uploads.max_pixels, uploads.min_side,
                 correspondence_tab.max_side, sincut_tab.max_iters, sincut_tab.min_export_iters,
                 sincut_tab.preset_choices):
        read()


def build_demo():
    import gradio as gr

    from . import correspondence_tab, results_tab, sincut_tab, translate_tab

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("cutcore.demo").setLevel(logging.INFO)
    _check_settings()  # a bad CUTCORE_* value stops the start with one line (app.py), not every request
    ctx = AppContext()
    reg = ctx.registry()
    with gr.Blocks(title="cutcore demo", analytics_enabled=False) as demo:
        header = gr.Markdown(header_markdown(reg), elem_id="header")
        status = reg.status_markdown()
        with gr.Accordion("Missing models and how to get them", open=not reg.entries, visible=bool(status),
                          elem_id="models-box") as box:
            status_md = gr.Markdown(status, elem_id="models-status")
        ctx.overview = [header, box, status_md]
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
        # A fresh page (or another user) sees models trained or deleted since the server started.
        dropdowns = [dd for dd, _ in ctx.model_dropdowns]

        def refresh_all(*values):
            return ctx.refresh_lists(values)

        demo.load(refresh_all, dropdowns, ctx.model_outputs(), queue=False)
        for fn, inputs, outputs in ctx.on_load:  # what a fresh page shows: not an API of its own
            demo.load(fn, inputs, outputs, api_visibility="private")
    demo.queue(default_concurrency_limit=1, max_size=32)
    return demo


def launch_kwargs() -> dict:
    """Arguments for launch(): host, port and share come from Gradio's own env variables."""
    from . import translate_tab

    allowed = [str(p) for p in (translate_tab.examples_dir(),) if p is not None]
    return {"allowed_paths": allowed, "max_file_size": "200mb", "show_error": False}
