"""The Gradio demo's handlers, without a browser: registry, translate, bad files, correspondence,
SinCUT live (fake and real trainer), Hub push, results, and the Blocks wiring."""
from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch import nn

gr = pytest.importorskip("gradio")
# gr.Warning outside a running app falls back to warnings.warn: expected in these handler tests.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")

from app_fixtures import bad_files, make_model, odd_mode_files, satellite_like  # noqa: E402

from cutcore.correspondence import (  # noqa: E402
    LayerMap,
    correspondence_maps,
    mark_point,
    render_overlay,
)
from cutcore.sincut.config import sincut_preset  # noqa: E402
from demo import AppContext, correspondence_tab, models, results_tab, sincut_tab, translate_tab  # noqa: E402
from demo.errors import UserError, user_errors  # noqa: E402
from demo.uploads import open_upload  # noqa: E402


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """Empty weights/official/live folders, offline, no examples; module caches cleared."""
    dirs = {name: tmp_path / name for name in ("weights", "official", "live")}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv("CUTCORE_WEIGHTS", str(dirs["weights"]))
    monkeypatch.setenv("CUTCORE_MODELS", str(dirs["official"]))
    monkeypatch.setenv("CUTCORE_LIVE_DIR", str(dirs["live"]))
    monkeypatch.setenv("CUTCORE_EXAMPLES", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CUTCORE_OFFLINE", "1")
    monkeypatch.delenv("CUTCORE_BENCH", raising=False)
    models._hub_result.clear()
    models._cache.clear()
    yield dirs
    models._hub_result.clear()
    models._cache.clear()


@pytest.fixture
def cut_model(app_env):
    return make_model(app_env["weights"] / "cut-tiny", "cut",
                      metrics={"accuracy": 0.42, "rmse": 20.5, "swd": 12.0, "fid": 80.25})


def _png(path: Path, size=(96, 64), seed=0) -> Path:
    satellite_like(size, seed).save(path)
    return path


# --- registry -----------------------------------------------------------------------------------


def test_registry_lists_ours_official_and_live_with_metrics_and_heads(app_env, cut_model):
    make_model(app_env["weights"] / "cyclegan-tiny", "cyclegan", seed=1)
    make_model(app_env["official"] / "horse2zebra", "cut", seed=2, source="official (taesungp/CUT)")
    make_model(app_env["live"] / "sincut-x", "cut", seed=3)
    reg = models.scan()
    by_name = {e.name: e for e in reg.entries}
    assert set(by_name) == {"cut-tiny", "cyclegan-tiny", "horse2zebra", "sincut-x"}
    assert by_name["cut-tiny"].source == "ours" and by_name["horse2zebra"].source == "official"
    assert by_name["sincut-x"].source == "live"
    assert by_name["cut-tiny"].metrics == {"accuracy": 0.42, "rmse": 20.5, "swd": 12.0, "fid": 80.25}
    assert by_name["cut-tiny"].has_heads and not by_name["cyclegan-tiny"].has_heads
    assert "42.0%" in by_name["cut-tiny"].label and "[ours, cut]" in by_name["cut-tiny"].label
    assert "FID" in by_name["cut-tiny"].describe() and "80.25" in by_name["cut-tiny"].describe()
    assert not by_name["cut-tiny"].card.startswith("---")  # Hub front matter stripped
    heads_keys = [k for _, k in reg.choices(heads_only=True)]
    assert str(app_env["weights"] / "cyclegan-tiny") not in heads_keys and str(cut_model) in heads_keys
    # Presets the project trains but has no model for are listed as missing.
    assert any("fastcut" in n for n in reg.notes)


def test_models_trained_here_are_listed_newest_first(app_env):
    """After a reload the lists opened on the oldest model trained here (names sort by direction, not age)."""
    older = make_model(app_env["live"] / "sincut-art2photo-20261206-120000", "cut")
    newer = make_model(app_env["live"] / "sincut-photo2art-20261206-130000", "cut", seed=1)
    os.utime(older / "model.safetensors", (1_000_000, 1_000_000))
    assert [k for _, k in models.scan().choices()] == [str(newer), str(older)]


def test_lists_open_on_our_best_model_on_held_out_tiles(app_env):
    make_model(app_env["weights"] / "a-weak", "cut", metrics={"accuracy": 0.25, "rmse": 40.0})
    make_model(app_env["weights"] / "b-unscored", "cut")
    make_model(app_env["weights"] / "c-best", "cut", metrics={"accuracy": 0.38, "rmse": 33.0})
    make_model(app_env["weights"] / "d-tied", "cut", metrics={"accuracy": 0.38, "rmse": 35.0})
    make_model(app_env["official"] / "horse2zebra", "cut", metrics={"accuracy": 0.99, "rmse": 1.0})
    reg = models.scan()
    assert [e.name for e in reg.entries] == ["c-best", "d-tied", "a-weak", "b-unscored", "horse2zebra"]
    with gr.Blocks():
        dd = AppContext().model_dropdown(False, reg)
    assert dd.value == str(app_env["weights"] / "c-best")  # the Translate tab opens on it


def test_run_checkpoint_folders_are_found_and_named_after_the_run(app_env):
    make_model(app_env["weights"] / "sat2map-cut" / "checkpoints" / "step_00000001", "cut")
    make_model(app_env["weights"] / "sat2map-cut" / "checkpoints" / "step_00000010", "cut")
    (entry,) = models.scan().entries  # the newest checkpoint of the run only
    assert entry.name == "sat2map-cut/step_00000010"


def test_a_run_trained_by_the_cli_is_listed_and_translates(app_env, tmp_path):
    """The real trainer's output (python -m cutcore train), not a hand-made folder."""
    import subprocess
    import sys

    from helpers import make_unpaired, subprocess_env

    data = make_unpaired(tmp_path / "data", n_a=2, n_b=2, size=(40, 40))
    run = app_env["weights"] / "sat2map-cut"
    cmd = [sys.executable, "-m", "cutcore", "train", "--preset", "cut", "--data", str(data), "--out", str(run),
           "--max-steps", "1", "--load-size", "40", "--crop-size", "32", "--ngf", "4", "--ndf", "4",
           "--num-workers", "0", "--device", "cpu"]
    done = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (entry,) = models.scan().entries
    assert entry.source == "ours" and entry.preset == "cut" and entry.has_heads
    res = translate_tab.translate_upload(entry.key, str(_png(tmp_path / "x.png", (50, 34))))
    assert res.output.size == (50, 34)
    assert len(correspondence_maps(models.load(entry.key), satellite_like((40, 32)), (3, 4))) == 5


def test_offline_without_models_starts_and_says_how_to_get_them(app_env):
    reg = models.scan()
    assert reg.entries == []
    text = reg.status_markdown()
    assert "offline" in text and "no pretrained sat2map model is published yet" in text  # as the README says
    assert "python -m cutcore export RUN" in text and "SinCUT live" in text and "official download" in text
    assert "hf download" not in text and "checkpoints/step_" not in text


def test_hub_snapshot_is_used_when_weights_is_empty(app_env, tmp_path, monkeypatch):
    snap = tmp_path / "snapshot"
    make_model(snap / "cut", "cut")
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(snap)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setenv("CUTCORE_HUB_REPO", "someone/models")
    reg = models.scan()
    assert [e.source for e in reg.entries] == ["hub"]
    assert calls[0][0] == "someone/models" and calls[0][1]["local_files_only"] is True  # offline: cache only
    models.scan()
    assert len(calls) == 1  # resolved once per process


def test_load_caches_and_reports_broken_models(app_env, cut_model):
    assert models.load(str(cut_model)) is models.load(str(cut_model))
    broken = app_env["weights"] / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    (broken / "config.json").write_text("{}")
    with pytest.raises(UserError, match="could not be loaded"):
        models.load(str(broken))
    with pytest.raises(UserError, match="no model `nope`"):
        models.load(str(app_env["weights"] / "nope"))
    # A folder outside the registry is never loaded, whatever it holds (keys come from the web API).
    stray = make_model(app_env["weights"].parent / "elsewhere", "cut")
    with pytest.raises(UserError, match="no model `elsewhere` on this server"):
        models.load(str(stray))


# --- translate ----------------------------------------------------------------------------------


def test_translate_small_image_in_one_pass(app_env, cut_model, tmp_path):
    calls = []
    res = translate_tab.translate_upload(str(cut_model), str(_png(tmp_path / "in.png", (90, 70))),
                                         lambda d, t: calls.append((d, t)))
    assert res.output.size == (90, 70) and calls == [(1, 1)]
    assert res.png_path.suffix == ".png" and Image.open(res.png_path).size == (90, 70)
    assert "one pass" in res.info and "90×70" in res.info


def test_translate_large_image_tiled_with_progress(app_env, cut_model, tmp_path, monkeypatch):
    monkeypatch.setenv("CUTCORE_DEMO_TILE", "64")
    calls = []
    res = translate_tab.translate_upload(str(cut_model), str(_png(tmp_path / "big.png", (150, 100))),
                                         lambda d, t: calls.append((d, t)))
    assert res.output.size == (150, 100)
    total = calls[-1][1]
    assert total > 1 and calls[-1] == (total, total) and [d for d, _ in calls] == list(range(1, total + 1))
    assert "64px tiles" in res.info
    saved = np.asarray(Image.open(res.png_path))
    assert saved.shape == (100, 150, 3) and saved.std() > 0


def test_the_tab_takes_the_librarys_tiling_decision_and_cancel_hook(app_env, cut_model):
    """The large-image lane follows translate_image's own choice (issue 15), also where a scale rounds the size
    down to the tile (2049 px at ×0.25 is 512 px: one pass); should_stop stops the library between tiles."""
    from cutcore.translate import TranslationCancelled, translate_image, will_tile

    model = models.load(str(cut_model))
    for width, tiled in ((2049, False), (2051, True)):
        img, calls = satellite_like((width, 64)), []
        translate_image(model, img, tile=512, progress=lambda d, t, seen=calls: seen.append((d, t)), scale=0.25)
        assert will_tile(model, img, 512, scale=0.25) is tiled and (calls[-1][1] > 1) is tiled
    calls = []
    with pytest.raises(TranslationCancelled) as c:
        translate_image(model, satellite_like((150, 100)), tile=32, overlap=8,
                        progress=lambda d, t: calls.append((d, t)), should_stop=lambda: len(calls) >= 2)
    assert (c.value.done, len(calls)) == (2, 2) and c.value.total > 2
    with pytest.raises(TranslationCancelled):  # one pass: asked before it
        translate_image(model, satellite_like((30, 20)), tile=32, should_stop=lambda: True)
    assert issubclass(translate_tab.Cancelled, TranslationCancelled)


def test_translate_view_is_downscaled_but_download_is_full_size(app_env, cut_model, tmp_path, monkeypatch):
    monkeypatch.setattr(translate_tab, "VIEW_SIDE", 50)
    res = translate_tab.translate_upload(str(cut_model), str(_png(tmp_path / "in.png", (120, 60))))
    assert max(res.output_view.size) == 50 and Image.open(res.png_path).size == (120, 60)


def test_translate_without_model_or_file_explains(app_env, cut_model, tmp_path):
    with pytest.raises(UserError, match="No model selected"):
        translate_tab.translate_upload(None, str(_png(tmp_path / "a.png")))
    with pytest.raises(UserError, match="upload"):
        translate_tab.translate_upload(str(cut_model), None)


BAD_CASES = {
    "text": "not an image",
    "fake_png": "not an image",
    "empty": "empty",
    "truncated": "truncated",
    "tiny": "1×1",
    "gigapixel": "1200 megapixels",
    "too_large": "81 megapixels",
    "bomb": "81 megapixels",
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return bad_files(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_files_give_a_readable_message(app_env, cut_model, bad, case):
    with pytest.raises(UserError) as info:
        translate_tab.translate_upload(str(cut_model), str(bad[case]))
    msg = str(info.value)
    assert BAD_CASES[case] in msg
    assert bad[case].name in msg and str(bad[case].parent) not in msg  # the name, never a server path
    assert "Traceback" not in msg and len(msg) < 300
    # The upload preview reports the same problem instead of raising.
    preview, text = translate_tab.on_upload(str(bad[case]))
    assert preview is None and BAD_CASES[case] in text


def test_an_upload_says_press_translate_only_when_there_is_a_model(app_env, tmp_path):
    image = str(_png(tmp_path / "x.png"))
    assert translate_tab.on_upload(image)[1].endswith("— no model is installed yet (see the note above).")
    make_model(app_env["weights"] / "cut", "cut")
    assert translate_tab.on_upload(image)[1].endswith("— press **Translate**.")


def test_odd_modes_are_converted_and_noted(app_env, cut_model, tmp_path):
    notes = {"gray": "grayscale", "rgba": "transparency", "gray16": "16-bit", "palette": "palette", "cmyk": "CMYK"}
    for case, path in odd_mode_files(tmp_path / "odd").items():
        up = open_upload(str(path))
        assert up.image.mode == "RGB" and up.image.size == (64, 48)
        assert notes[case] in up.summary, (case, up.summary)
        res = translate_tab.translate_upload(str(cut_model), str(path))
        assert res.output.size == (64, 48)


def test_16bit_image_keeps_its_contrast(tmp_path):
    a = np.tile(np.linspace(0, 65535, 64, dtype=np.uint16), (32, 1))
    Image.fromarray(a).save(tmp_path / "g16.png")
    rgb = np.asarray(open_upload(str(tmp_path / "g16.png")).image)
    assert rgb[..., 0].min() <= 2 and rgb[..., 0].max() >= 253


def test_expired_upload_and_filedata_like_inputs(tmp_path):
    with pytest.raises(UserError, match="upload it again"):
        open_upload(str(tmp_path / "gone.png"))
    p = _png(tmp_path / "x.png")
    assert open_upload({"path": str(p)}).name == "x.png"


def test_user_errors_hides_tracebacks():
    @user_errors
    def fails_for_user():
        raise UserError("bad input")

    @user_errors
    def crashes():
        raise RuntimeError("internal detail /secret/path")

    @user_errors
    def gen():
        yield 1
        raise UserError("late problem")

    with pytest.raises(gr.Error) as e:
        fails_for_user()
    assert e.value.message == "bad input"
    with pytest.raises(gr.Error) as e:
        crashes()
    assert "RuntimeError" in e.value.message and "/secret" not in e.value.message
    g = gen()
    assert next(g) == 1
    with pytest.raises(gr.Error, match="late problem"):
        next(g)


# --- correspondence -----------------------------------------------------------------------------


@dataclass
class _Model:
    generator: nn.Module
    heads: nn.Module | None
    nce_layers: list[int]
    config: dict = field(default_factory=dict)
    path: Path = Path(".")

    @property
    def size_multiple(self) -> int:
        return getattr(self.generator, "size_multiple", 4)


class _IdentityG(nn.Module):
    """G(x) = x, with a real encoder: the output's embedding at q equals the input's at q."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.size_multiple = inner.size_multiple

    def forward(self, x):
        return x

    def encode(self, x, layers):
        return self.inner.encode(x, layers)


def test_correspondence_maps_shapes_and_positive_location(app_env, cut_model):
    model = models.load(str(cut_model))
    img = satellite_like((60, 44), 7)
    maps = correspondence_maps(model, img, (21, 30), k=5)
    assert [m.layer for m in maps] == list(model.nce_layers)
    for m in maps:
        layer, heat, pos, negs = m  # unpacks as (layer, heatmap, positive xy, negatives xy)
        assert heat.shape == (44, 60) and heat.dtype == np.float32
        assert np.all(heat <= 1.0001) and np.all(heat >= -1.0001)
        assert len(negs) == 5 and pos not in negs
        assert all(0 <= x < 60 and 0 <= y < 44 for x, y in [pos, *negs])
        stride = 60 / m.grid[0] if m.grid[0] < 60 else 1
        assert abs(pos[0] - 21) <= stride and abs(pos[1] - 30) <= stride, (layer, pos)
        assert m.negative_sims == sorted(m.negative_sims, reverse=True)
    full_res = [m for m in maps if m.grid[0] >= 60]
    assert full_res and all(m.positive == (21, 30) for m in full_res)


def test_identity_generator_puts_the_maximum_at_the_positive(app_env, cut_model):
    loaded = models.load(str(cut_model))
    model = _Model(_IdentityG(loaded.generator), loaded.heads, loaded.nce_layers)
    img = satellite_like((48, 40), 9)
    for m in correspondence_maps(model, img, (13, 22), k=5):
        assert m.positive_sim == pytest.approx(1.0, abs=1e-4)
        assert all(v <= m.positive_sim + 1e-5 for v in m.negative_sims)
        if m.grid[0] >= 48:  # full resolution: the heatmap peaks exactly at the click
            assert m.positive == (13, 22) and m.heatmap[22, 13] == pytest.approx(m.heatmap.max(), abs=1e-5)


def test_correspondence_rejects_models_without_heads_and_points_outside(app_env, cut_model):
    cyc = make_model(app_env["weights"] / "cyc", "cyclegan")
    with pytest.raises(ValueError, match="heads"):
        correspondence_maps(models.load(str(cyc)), satellite_like((32, 32)), (1, 1))
    with pytest.raises(ValueError, match="outside"):
        correspondence_maps(models.load(str(cut_model)), satellite_like((32, 32)), (40, 1))


def test_overlay_and_marker_drawing():
    heat = np.linspace(-1, 1, 40 * 30, dtype=np.float32).reshape(30, 40)
    m = LayerMap(4, heat, (10, 12), [(1, 1), (30, 20)], 0.9, [0.8, 0.7], (40, 30))
    img = satellite_like((40, 30))
    over = render_overlay(img, m, display_side=120)
    assert over.size == (120, 90) and over.mode == "RGB"
    assert np.asarray(over)[37, 31].tolist() != np.asarray(img.resize((120, 90)))[37, 31].tolist()
    assert mark_point(img, (5, 5), display_side=120).size == (120, 90)


def test_correspondence_tab_handlers(app_env, cut_model, tmp_path):
    path = str(_png(tmp_path / "c.png", (300, 200)))
    view, state, info = correspondence_tab.analyse(str(cut_model), path)
    assert "analysed at 256×171" in info
    s = state["scale"]
    assert view.size == (256 * s, 171 * s)
    marked, gallery, details = correspondence_tab.on_click(state, 100 * s, 50 * s)
    assert marked.size == view.size and len(gallery) == len(models.load(str(cut_model)).nce_layers)
    assert all(isinstance(img, Image.Image) and "layer" in cap for img, cap in gallery)
    assert "(100, 50)" in details
    with pytest.raises(UserError, match="Translate"):
        correspondence_tab.on_click(None, 1, 1)
    cyc = make_model(app_env["weights"] / "cyc", "cyclegan")
    with pytest.raises(UserError, match="no PatchNCE heads"):
        correspondence_tab.analyse(str(cyc), path)


# --- SinCUT live --------------------------------------------------------------------------------


@dataclass
class _Event:
    kind: str
    iteration: int
    total: int
    losses: dict = field(default_factory=dict)
    its_per_sec: float = 0.0
    eta_seconds: float | None = None
    preview: Image.Image | None = None
    message: str = ""


class FakeTrainer:
    """LiveTrainer's interface: a thread that emits an event every `every` fast iterations."""

    instances: list[FakeTrainer] = []

    def __init__(self, content, style, cfg, *, event_every, preview_size, step_seconds=0.01, fail_at=None,
                 replan_to=None):
        self.content, self.cfg, self.every = content, cfg, event_every
        self.total = cfg.train.total_iters
        self.iteration = 0
        self.events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = None
        self.step_seconds, self.fail_at, self.replan_to = step_seconds, fail_at, replan_to  # replan: a time budget
        self.exported: list[Path] = []
        self.last_event = None
        FakeTrainer.instances.append(self)
        self.start()  # the app's factory hands over a trainer that is training (LiveTrainer.launch)

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _put(self, event):
        self.last_event = event
        self.events.put(event)

    def _run(self):
        self._put(_Event("started", 0, self.total))
        while self.iteration < self.total and not self._stop.is_set():
            time.sleep(self.step_seconds)
            self.iteration += 1
            if self.replan_to and self.iteration == self.every:
                self.total = self.replan_to
            if self.fail_at == self.iteration:
                self._put(_Event("error", self.iteration, self.total, message="RuntimeError: boom"))
                return
            if self.iteration % self.every == 0:
                self._put(_Event("progress", self.iteration, self.total, {"G": 1.0 / self.iteration, "D": 0.5},
                                 10.0, 1.0, Image.new("RGB", (32, 24), (self.iteration % 255, 0, 0))))
        self._put(_Event("finished" if self.iteration >= self.total else "stopped", self.iteration, self.total))

    def stop(self, timeout=None):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def preview(self):
        return Image.new("RGB", (32, 24))

    def export(self, out_dir, card=None, domains=None):
        self.exported.append(Path(out_dir))
        return make_model(Path(out_dir), "cut", card=card, domains=domains)


@pytest.fixture
def two_images(tmp_path):
    return str(_png(tmp_path / "photo.png", (80, 64), 1)), str(_png(tmp_path / "art.png", (72, 72), 2))


def _consume(gen, out: list, stop_after_previews: int | None = None, session=None, stopped_at: list | None = None):
    for up in gen:
        out.append(up)
        if stop_after_previews and sum(u.preview is not None for u in out) == stop_after_previews:
            stopped_at.append(time.perf_counter())
            sincut_tab.request_stop(session)


def test_sincut_streams_previews_and_stops_promptly(app_env, two_images, monkeypatch):
    monkeypatch.setenv("CUTCORE_DEMO_MIN_EXPORT_ITERS", "5")  # stopped after 3 previews of 5 iterations: kept
    FakeTrainer.instances.clear()
    updates, stopped_at = [], []
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100_000, 5, "session-a",
                                   factory=lambda *a, **k: FakeTrainer(*a, **k, step_seconds=0.005))
    t = threading.Thread(target=_consume, args=(gen, updates, 3, "session-a", stopped_at))
    t.start()
    t.join(30)
    assert not t.is_alive()
    previews = [u for u in updates if u.preview is not None and not u.done]
    assert len(previews) >= 2
    assert all("it/s" in u.status and "ETA" in u.status for u in previews)
    final = updates[-1]
    assert final.done and "stopped" in final.status and final.iteration < 100_000
    assert time.perf_counter() - stopped_at[0] < 10  # export of a tiny model included
    assert final.archive.suffix == ".zip" and final.archive.is_file()
    assert (final.model_dir / "README.md").is_file() and (final.model_dir / "model.safetensors").is_file()
    import zipfile

    names = zipfile.ZipFile(final.archive).namelist()
    assert any(n.endswith("model.safetensors") for n in names) and any(n.endswith("config.json") for n in names)
    assert {r["loss"] for r in final.history} == {"G", "D"}
    # The model shows up in the other tabs' lists (source "live"), with heads for Correspondence.
    entry = models.scan().get(str(final.model_dir))
    assert entry is not None and entry.source == "live" and entry.has_heads
    assert not sincut_tab._train_lock.locked()


def test_sincut_result_carries_the_style_yardsticks(app_env, two_images):
    photo, art = (Image.open(p).convert("RGB") for p in two_images)
    line = sincut_tab.yardsticks(photo, art, photo)  # the untouched photo: ratios of exactly 1
    assert "colour **1.00**" in line and "texture **1.00**" in line and "content **1.00**" in line
    assert "neither image **0.0%**" in line
    assert sincut_tab.yardsticks(photo, art, None) == ""

    class Painting(FakeTrainer):  # its "translation" is the artwork itself
        def preview(self):
            return art.resize(photo.size)

    final = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 30, 5, None,
                                          factory=Painting))[-1]
    colour = re.search(r"Style yardsticks: colour \*\*(\d\.\d\d)\*\*", final.status)
    assert final.done and colour and float(colour.group(1)) < 0.2  # the artwork's palette: near 0
    assert colour.group(0) in (final.model_dir / "README.md").read_text()


def test_a_run_shortened_by_the_time_budget_is_reported_finished(app_env, two_images):
    final = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 450, 5, None,
                                          factory=lambda *a, **k: FakeTrainer(*a, **k, step_seconds=0.001,
                                                                              replan_to=40)))[-1]
    assert final.done and "Training finished at iteration **40/40**" in final.status
    assert (final.iteration, final.total) == (40, 40)
    card = (final.model_dir / "README.md").read_text()
    assert "40 of 40 iterations" in card and "stopped early" not in card


def test_sincut_direction_swaps_content_and_style(app_env, two_images):
    FakeTrainer.instances.clear()
    list(sincut_tab.train_updates(*two_images, sincut_tab.ART_TO_PHOTO, "sincut-cpu", 4, 2, None, factory=FakeTrainer))
    assert FakeTrainer.instances[-1].content.size == (72, 72)  # the artwork is translated
    list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 4, 2, None, factory=FakeTrainer))
    assert FakeTrainer.instances[-1].content.size == (80, 64)


def _wait_for_the_training_slot():
    deadline = time.time() + 30
    while sincut_tab._train_lock.locked() and time.time() < deadline:
        time.sleep(0.05)
    assert not sincut_tab._train_lock.locked()


def test_sincut_one_training_at_a_time(app_env, two_images):
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100_000, 5, "a",
                                   factory=FakeTrainer)
    next(gen)  # holds the lock
    try:
        with pytest.raises(UserError, match="Another SinCUT training"):
            list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, "b",
                                          factory=FakeTrainer))
    finally:
        gen.close()  # like a client disconnect: the trainer stops and the lock is released
    _wait_for_the_training_slot()
    assert all(not t.running for t in FakeTrainer.instances)


def test_sincut_closed_by_gradio_stops_without_blocking_and_keeps_nothing_before_the_minimum(app_env, two_images,
                                                                                            monkeypatch):
    """Gradio closes the generator of a client that went away on its event loop: close() must not wait for
    the trainer's current iteration (seconds on a CPU), and a run abandoned before the export minimum is not kept."""
    monkeypatch.setenv("CUTCORE_DEMO_MIN_EXPORT_ITERS", "100000")
    release = threading.Event()

    class SlowStop(FakeTrainer):
        def stop(self, timeout=None):
            self._stop.set()
            if timeout != 0:
                release.wait(30)  # the last iteration takes a while
            super().stop(timeout)

    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100_000, 5, "gone",
                                   factory=SlowStop)
    next(gen)
    next(gen)
    gen.close()  # returns although the trainer has not finished its iteration
    assert sincut_tab._train_lock.locked()  # the slot is freed only once the trainer has really stopped
    release.set()
    _wait_for_the_training_slot()
    assert not any(models.live_dir().iterdir())


def test_sincut_run_of_a_page_that_went_away_is_kept_once_worth_keeping(app_env, two_images, monkeypatch):
    """A reload or a closed tab mid-run: the training is not thrown away. Past the export minimum the run is saved
    as Stop would save it (card says it stopped early) and appears in the live models' list; the slot is freed."""
    monkeypatch.setenv("CUTCORE_DEMO_MIN_EXPORT_ITERS", "10")
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100_000, 5, "reloaded",
                                   factory=FakeTrainer)
    while next(gen).iteration < 15:
        pass
    gen.close()
    _wait_for_the_training_slot()
    (kept,) = models.live_dir().iterdir()
    card = (kept / "README.md").read_text()
    assert "stopped early" in card and "of 100000 iterations" in card
    assert [e.key for e in models.scan(use_hub=False).entries if e.source == "live"] == [str(kept)]


def test_sincut_page_gone_at_the_final_update_or_after_a_failure_keeps_no_extra_model(app_env, two_images,
                                                                                     monkeypatch):
    monkeypatch.setenv("CUTCORE_DEMO_MIN_EXPORT_ITERS", "5")
    # Gone while its model was being saved (Gradio closes the generator at the final yield): saved once, not twice.
    FakeTrainer.instances.clear()
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 20, 5, "slow-reader",
                                   factory=FakeTrainer)
    while not next(gen).done:
        pass
    gen.close()
    _wait_for_the_training_slot()
    assert len(FakeTrainer.instances[0].exported) == 1 and len(list(models.live_dir().iterdir())) == 1
    # Gone after the training failed: not kept (a page would have said "Training failed" and kept nothing).
    FakeTrainer.instances.clear()
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100_000, 5, "failed",
                                   factory=lambda *a, **k: FakeTrainer(*a, **k, fail_at=12))
    while next(gen).iteration < 10:
        pass
    (trainer,) = FakeTrainer.instances
    deadline = time.time() + 30
    while trainer.running and time.time() < deadline:
        time.sleep(0.01)
    gen.close()
    _wait_for_the_training_slot()
    assert trainer.exported == [] and len(list(models.live_dir().iterdir())) == 1


def test_sincut_start_right_after_a_reload_waits_for_the_previous_run_to_be_saved(app_env, two_images):
    sincut_tab._train_lock.acquire()  # as _keep_abandoned_run holds it while it saves
    sincut_tab._saving_abandoned.set()

    def saved():
        time.sleep(0.3)
        sincut_tab._saving_abandoned.clear()
        sincut_tab._train_lock.release()

    threading.Thread(target=saved).start()
    ups = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, "reloaded",
                                        factory=FakeTrainer))
    assert "Saving the previous run" in ups[0].status and "finished" in ups[-1].status
    # A training (not a save) holds the slot: refused at once, as before.
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100_000, 5, "a",
                                   factory=FakeTrainer)
    next(gen)
    try:
        with pytest.raises(UserError, match="Another SinCUT training"):
            list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, "b",
                                          factory=FakeTrainer))
    finally:
        gen.close()
    _wait_for_the_training_slot()


def test_sincut_stop_while_queued_cancels_and_others_cannot_stop_you(app_env, two_images):
    sincut_tab.mark_pending("queued-user")  # Start pressed; waiting in Gradio's queue
    assert "withdrawn" in sincut_tab.request_stop("queued-user")
    (only,) = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, "queued-user",
                                            factory=FakeTrainer))
    assert only.done and "Cancelled" in only.status
    # A Stop with nothing running or queued does not cancel the next run.
    assert "Nothing of yours" in sincut_tab.request_stop("queued-user")
    sincut_tab.mark_pending("queued-user")
    ups = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, "queued-user",
                                        factory=FakeTrainer))
    assert "finished" in ups[-1].status
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 200, 50, "owner",
                                   factory=lambda *a, **k: FakeTrainer(*a, **k, step_seconds=0.002))
    ups = [next(gen), next(gen)]
    assert "Nothing of yours" in sincut_tab.request_stop("intruder")  # someone else's Stop does not touch this run
    # Start pressed again by the owner mid-run: not a queued request (its page sends no second run meanwhile).
    assert not sincut_tab.mark_pending("owner")
    ups += list(gen)
    assert ups[-1].done and "finished" in ups[-1].status and ups[-1].iteration == 200
    assert "Nothing of yours" in sincut_tab.request_stop("owner")  # no phantom request left to withdraw


def test_sincut_stop_while_the_networks_are_built(app_env, two_images):
    """Stop pressed between the run's start and the trainer's existence still stops it at once."""
    def slow_factory(*a, **k):
        assert "Stopping" in sincut_tab.request_stop("builder")
        return FakeTrainer(*a, **k, step_seconds=0.01)

    ups = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100_000, 5, "builder",
                                        factory=slow_factory))
    final = ups[-1]
    assert final.done and final.iteration < 100
    # Stopped before the minimum: nothing exported, and the status says why.
    assert "Stopped at iteration" in final.status and "nothing was saved" in final.status
    assert final.model_dir is None and not any(models.live_dir().iterdir())


def test_sincut_errors_are_readable(app_env, two_images, tmp_path):
    with pytest.raises(UserError, match="Training failed: RuntimeError: boom"):
        list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 100, 5, None,
                                      factory=lambda *a, **k: FakeTrainer(*a, **k, fail_at=7)))
    assert not sincut_tab._train_lock.locked()
    with pytest.raises(UserError, match="photo"):
        list(sincut_tab.train_updates(None, two_images[1], sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, None,
                                      factory=FakeTrainer))
    small = str(_png(tmp_path / "small.png", (20, 20)))
    with pytest.raises(UserError, match="at least 32 px"):
        list(sincut_tab.train_updates(small, two_images[1], sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, None,
                                      factory=FakeTrainer))
    # Wide enough as uploaded, too thin once sincut-cpu shrinks it to its 512 px working size.
    sliver = str(_png(tmp_path / "sliver.png", (2000, 100)))
    with pytest.raises(UserError, match="sliver.png” is 2000×100 px \\(shrunk to 512×26 for training"):
        list(sincut_tab.train_updates(sliver, two_images[1], sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, None,
                                      factory=FakeTrainer))
    for emptied_or_odd in (1, None, float("nan"), float("inf"), "12"):  # an emptied number box arrives as None
        with pytest.raises(UserError, match="between 2 and"):
            sincut_tab.make_config("sincut-cpu", emptied_or_odd)


def test_sincut_budget_sets_the_schedule_length():
    for n in (2, 7, 400):
        cfg = sincut_tab.make_config("sincut-cpu", n)
        assert cfg.train.total_iters == n
        lrs = [cfg.train.lr_at(i) for i in range(n)]
        assert lrs == sorted(lrs, reverse=True) and lrs[0] == cfg.train.lr
    assert sincut_tab.make_config("sincut", 10).preset == "sincut"
    # The preset's own length is the preset as `sincut` trains it (LR stepped per epoch, its time budget); a
    # count the user chose is trained in full.
    assert sincut_tab.make_config("sincut-cpu", 450) == sincut_preset("sincut-cpu")
    assert sincut_tab.make_config("sincut-cpu", 450).train.time_budget_s == 285
    assert sincut_tab.make_config("sincut-cpu", 400).train.time_budget_s is None


def test_sincut_real_trainer_tiny_preset_exports_a_loadable_model(app_env, two_images, tmp_path):
    """The real LiveTrainer end to end: previews stream, the export loads and translates."""
    pytest.importorskip("cutcore.sincut.live")
    ups = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "tiny", 4, 2, None))
    previews = [u for u in ups if u.preview is not None and not u.done]
    assert len(previews) >= 2 and ups[-1].done and ups[-1].iteration == 4
    res = translate_tab.translate_upload(str(ups[-1].model_dir), two_images[0])
    assert res.output.size == (80, 64)
    maps = correspondence_maps(models.load(str(ups[-1].model_dir)), satellite_like((40, 32)), (5, 5))
    assert len(maps) == 3
    # One writer (LiveTrainer.export) wrote the card; config.json says what the model translates.
    from cutcore.model_folder import read_config

    folder = ups[-1].model_dir
    assert "trained live in the cutcore" in (folder / "README.md").read_text()
    domains = read_config(folder).domains
    assert (domains.input, domains.output) == ("photo", "artwork")
    assert models.scan().get(str(folder)).domain == "photo"


def test_push_to_hub_offline_and_online(app_env, cut_model, monkeypatch):
    with pytest.raises(UserError, match="offline"):
        sincut_tab.push_to_hub(str(cut_model), "me/model", "hf_token")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("CUTCORE_OFFLINE", "0")
    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kw):
            calls.append(("create", repo_id))

        def upload_folder(self, folder_path, repo_id, **kw):
            calls.append(("upload", folder_path, repo_id))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert "me/model" in sincut_tab.push_to_hub(str(cut_model), "me/model", " hf_token ")
    assert calls == [("token", "hf_token"), ("create", "me/model"), ("upload", str(cut_model), "me/model")]
    with pytest.raises(UserError, match="user/name"):
        sincut_tab.push_to_hub(str(cut_model), "noslash", "t")
    with pytest.raises(UserError, match="token"):
        sincut_tab.push_to_hub(str(cut_model), "me/model", "")

    class FailingApi(FakeApi):
        def upload_folder(self, *a, **k):
            raise PermissionError("401 for token hf_secret")

    monkeypatch.setattr(huggingface_hub, "HfApi", FailingApi)
    with pytest.raises(UserError) as e:
        sincut_tab.push_to_hub(str(cut_model), "me/model", "hf_secret")
    assert "hf_secret" not in str(e.value) and "PermissionError" in str(e.value)


# --- results ------------------------------------------------------------------------------------


def test_results_without_metrics_says_so(app_env):
    make_model(app_env["weights"] / "cut", "cut")
    res = results_tab.build_results()
    assert res.empty and "No results yet" in res.markdown, res.markdown


def test_results_table_and_plots(app_env, cut_model):
    (app_env["weights"] / "bench.json").write_text(json.dumps([{"preset": "cut", "sec_per_iter": 0.5,
                                                                 "peak_mem_mib": 900, "size": 256}]))
    res = results_tab.build_results()
    assert not res.empty
    assert "| cut |" in res.markdown and "42.0%" in res.markdown and "0.500" in res.markdown
    assert res.plots and all(Path(p).is_file() for p, _ in res.plots)
    # Every page load builds this tab: the same results reuse their pictures instead of a new folder each time.
    assert results_tab.build_results().plots == res.plots
    make_model(app_env["weights"] / "fastcut", "fastcut", metrics={"accuracy": 0.30, "rmse": 30.0})
    assert Path(results_tab.build_results().plots[0][0]).parent != Path(res.plots[0][0]).parent


def test_results_show_the_cpu_and_the_gpu_speed_tables(app_env, cut_model):
    def row(impl, sec, **more):
        return {"device": more.pop("device", "cuda"), "precision": "fp32", "impl": impl, "kind": "train",
                "preset": "cut", "size": 256, "batch_size": 1, "sec_per_iter": sec, "peak_mem_mib": 2048,
                "gflops": 90.0, **more}

    cpu = row("ours", 12.5, device="cpu", device_name="AMD EPYC", torch_version="2.14.1")
    (app_env["weights"] / "bench.json").write_text(json.dumps([cpu]))
    res = results_tab.build_results()
    assert "| cut |" in res.markdown and "12.500" in res.markdown  # the method table's speed: the CPU file
    assert "**AMD EPYC" in res.markdown and "NVIDIA" not in res.markdown
    (app_env["weights"] / "bench_gpu.json").write_text(json.dumps([
        row("ours", 0.05, device_name="NVIDIA H200", torch_version="2.11.0+cu130", date="2026-12-05"),
        row("reference", 0.25)]))
    res = results_tab.build_results()
    speed = res.markdown[res.markdown.index("### Speed"):]
    assert speed.index("**AMD EPYC") < speed.index("**NVIDIA H200 · torch 2.11.0+cu130 · 2026-12-05**")
    assert "0.20× time, 1.00× mem" in speed and "12.500" in res.markdown[:res.markdown.index("### Speed")]
    (app_env["weights"] / "bench.json").unlink()
    for model in app_env["weights"].iterdir():  # no model scored, no CPU file: the GPU table alone
        if model.is_dir():
            (model / "metrics.json").unlink(missing_ok=True)
    res = results_tab.build_results()
    assert not res.empty and "NVIDIA H200" in res.markdown
    # Why there is no method table, then the speed table alone.
    assert res.markdown.startswith("### Methods\n\nNo model in") and "evaluate --model" in res.markdown
    assert res.markdown.index("### Methods") < res.markdown.index("### Speed")
    (app_env["weights"] / "bench.json").write_text(json.dumps([cpu]))  # still none scored: no method table
    res = results_tab.build_results()
    assert "### Speed" in res.markdown and "accuracy ↑" not in res.markdown and not res.plots
    assert res.markdown.count("12.500") == 1 and "**AMD EPYC" in res.markdown
    (app_env["weights"] / "bench.json").write_text(json.dumps([{"preset": "cut", "sec_per_iter": 0.5}]))
    res = results_tab.build_results()  # a hand-written list has no speed table: the method table shows it
    assert "| cut |" in res.markdown and "0.500" in res.markdown


# --- the Blocks ---------------------------------------------------------------------------------


def test_build_demo_wires_the_tabs(app_env, cut_model):
    from demo import build_demo

    demo = build_demo()
    fns = list(demo.fns.values()) if isinstance(demo.fns, dict) else list(demo.fns)
    train = [f for f in fns if getattr(f, "concurrency_id", None) == "sincut-train"]
    assert len(train) == 1 and train[0].concurrency_limit == 1
    translate = [f for f in fns if getattr(f, "concurrency_id", None) == "translate"]
    assert translate and translate[0].concurrency_limit == translate_tab.CONCURRENCY
    config = demo.get_config_file()
    labels = {c.get("props", {}).get("label") for c in config["components"]}
    assert {"Model", "Photo", "Artwork", "Model (with PatchNCE heads)"} <= labels


def test_handlers_run_torch_work_on_a_thread_that_ends_with_it(app_env, cut_model, two_images, monkeypatch):
    """Torch work left an OpenMP pool on Gradio's long-lived worker threads: a SinCUT run in the app
    after a translation trained at 0.743 s an iteration instead of 0.601 (scripts/bench_app_sincut.py)."""
    from types import SimpleNamespace

    from demo import build_demo

    ran_on: dict[str, list[threading.Thread]] = {}

    def recorded(module, name):
        fn = getattr(module, name)

        def wrapper(*args, **kwargs):
            ran_on.setdefault(name, []).append(threading.current_thread())
            return fn(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    recorded(translate_tab, "translate_image")
    recorded(correspondence_tab, "embeddings")
    recorded(correspondence_tab, "correspondence_maps")
    recorded(sincut_tab, "yardsticks")
    demo = build_demo()
    image = two_images[0]
    *_, result = _fn(demo, "do_translate").fn(str(cut_model), image, _Request(), progress=lambda *a, **k: None)
    assert "translated in one pass" in result[3]
    view, state, *_ = next(_fn(demo, "do_analyse").fn(str(cut_model), image))
    next(_fn(demo, "do_click").fn(state, SimpleNamespace(index=(5, 5))))
    ups = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "tiny", 4, 2, None))
    assert ups[-1].done and ups[-1].model_dir.is_dir()
    assert set(ran_on) == {"translate_image", "embeddings", "correspondence_maps", "yardsticks"}
    threads = [t for ts in ran_on.values() for t in ts]
    assert all(t is not threading.current_thread() and not t.is_alive() for t in threads), ran_on


def test_on_own_thread_hands_back_the_result_the_error_and_the_context():
    import contextvars

    from demo.torch_thread import on_own_thread

    var = contextvars.ContextVar("var", default="unset")
    var.set("the handler's")  # Gradio's request and progress state live in context variables

    def work(x, *, y):
        if x < 0:
            raise UserError("negative")
        return x + y, var.get(), threading.current_thread()

    total, seen, thread = on_own_thread(work, 1, y=2)
    assert (total, seen) == (3, "the handler's") and thread is not threading.current_thread()
    with pytest.raises(UserError, match="negative"):
        on_own_thread(work, -1, y=0)


def test_app_module_builds_the_demo(app_env, cut_model, monkeypatch):
    import importlib
    import sys

    sys.modules.pop("app", None)
    app = importlib.import_module("app")
    assert isinstance(app.demo, gr.Blocks)
    tabs = [b.label for b in app.demo.blocks.values() if isinstance(b, gr.Tab)]
    assert tabs == ["Translate", "SinCUT live", "Correspondence", "Results"]  # the first opens on translation


# --- issue 16: models made after start-up, abandoned work, the first screen ----------------------


def _dropdowns(demo) -> dict:
    return {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.elem_id}


def _fn(demo, name: str):
    fns = demo.fns.values() if isinstance(demo.fns, dict) else demo.fns
    (fn,) = [f for f in fns if f.name == name]
    return fn


def test_model_lists_accept_models_made_after_start_up(app_env):
    """Issue 16.2: lists built empty took no model trained later ("… is not in the list of choices: []")."""
    from gradio_client.utils import json_schema_to_python_type

    from demo import build_demo

    demo = build_demo()  # no model at all
    lists = _dropdowns(demo)
    model_lists = [lists[i] for i in ("translate-model", "corr-model", "sincut-live-model")]
    live = make_model(app_env["live"] / "sincut-photo2art-later", "cut")  # trained after start-up
    for dd in model_lists:
        assert json_schema_to_python_type(dd.api_info()) == "str"  # documented as a string, not Literal[]
        assert dd.preprocess(str(live)) == str(live)
        assert dd.preprocess(None) is None
    assert "Literal[]" not in json.dumps(demo.get_api_info())
    assert models.require(str(live)).source == "live"
    res = translate_tab.translate_upload(str(live), str(_png(app_env["weights"].parent / "x.png", (40, 30))))
    assert res.output.size == (40, 30)
    for bad in ("/etc", str(app_env["weights"]), "nonsense"):  # any other value: one readable line
        with pytest.raises(UserError, match="There is no model") as e:
            translate_tab.translate_upload(bad, str(_png(app_env["weights"].parent / "y.png")))
        assert "\n" not in str(e.value)


def test_translate_stops_within_a_tile_when_asked_and_writes_nothing(app_env, cut_model, tmp_path, monkeypatch):
    """Issue 16.3: a cancel (or a client gone) stops the tiling at the next tile; no PNG is written."""
    import tempfile

    out_root = tmp_path / "tmp"
    out_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(out_root))  # where output_dir() writes results
    monkeypatch.setenv("CUTCORE_DEMO_TILE", "32")
    big = str(_png(tmp_path / "big.png", (200, 150)))
    seen = []
    with pytest.raises(translate_tab.Cancelled) as c:
        translate_tab.translate_upload(str(cut_model), big, lambda d, t: seen.append((d, t)),
                                       lambda: "cancelled" if len(seen) >= 3 else None)
    assert c.value.reason == "cancelled" and c.value.done == 3 and c.value.total > 20 and len(seen) == 3
    # One pass, and the client goes away during it: nothing is saved either.
    small = str(_png(tmp_path / "small.png", (30, 20)))
    with pytest.raises(translate_tab.Cancelled):
        translate_tab.translate_upload(str(cut_model), small, lambda d, t: seen.append((d, t)),
                                       lambda: "client gone" if seen[-1] == (1, 1) else None)
    assert not list(out_root.rglob("*.png"))
    assert translate_tab.translate_upload(str(cut_model), small).png_path.is_file()  # and it still works
    from demo.errors import event_alive

    assert event_alive()  # outside a Gradio event nothing is cancelled


def test_cancel_stops_only_the_sessions_own_running_translation(app_env, cut_model, tmp_path, monkeypatch):
    monkeypatch.setenv("CUTCORE_DEMO_TILE", "32")
    big = str(_png(tmp_path / "big.png", (200, 150)))
    job, other = translate_tab.start_job("me"), translate_tab.start_job("someone else")
    first_tile, go_on, outcome = threading.Event(), threading.Event(), []

    def progress(done, total):
        job.done, job.total = done, total
        first_tile.set()
        go_on.wait(30)

    def work():
        try:
            translate_tab.translate_upload(str(cut_model), big, progress,
                                           lambda: "cancelled" if job.cancel.is_set() else None)
        except translate_tab.Cancelled as e:
            outcome.append(e)

    t = threading.Thread(target=work)
    t.start()
    try:
        assert first_tile.wait(30)
        assert "Nothing of yours" in translate_tab.request_cancel("a third user")
        assert "cancelled after 1 of" in translate_tab.request_cancel("me")
        assert job.cancel.is_set() and not other.cancel.is_set()
    finally:
        go_on.set()
        t.join(30)
        translate_tab.end_job(job)
        translate_tab.end_job(other)
    assert outcome and outcome[0].done == 1


def test_a_large_translation_leaves_room_for_small_ones(app_env, cut_model, tmp_path, monkeypatch):
    """Issue 16.3: one large (tiled) translation at a time, one more waiting, others refused; small ones
    never wait for the large-image lane."""
    monkeypatch.setenv("CUTCORE_DEMO_TILE", "32")
    big, small = str(_png(tmp_path / "big.png", (200, 150))), str(_png(tmp_path / "small.png", (30, 20)))
    in_tile, release, results = threading.Event(), threading.Event(), {}

    def hold(done, total):
        in_tile.set()
        release.wait(30)

    def first():
        results["first"] = translate_tab.translate_upload(str(cut_model), big, hold)

    waiting, stop = threading.Event(), threading.Event()

    def second():
        try:
            translate_tab.translate_upload(str(cut_model), big, None, lambda: "cancelled" if stop.is_set() else None,
                                           waiting.set)
        except translate_tab.Cancelled as e:
            results["second"] = e

    t1, t2 = threading.Thread(target=first), threading.Thread(target=second)
    t1.start()
    try:
        assert in_tile.wait(30)  # the first large one is mid-way
        assert "one pass" in translate_tab.translate_upload(str(cut_model), small).info  # a small one: at once
        t2.start()
        assert waiting.wait(30)  # the second large one waits for the lane...
        with pytest.raises(UserError, match="Two large images"):  # ...and a third is told to come back later
            translate_tab.translate_upload(str(cut_model), big)
        stop.set()  # the waiting one can be cancelled while it waits
        t2.join(30)
        assert results["second"].done == 0
    finally:
        stop.set()
        release.set()
        t1.join(30)
        if t2.is_alive():
            t2.join(30)
    assert results["first"].output.size == (200, 150) and "32px tiles" in results["first"].info


def test_first_screen_offers_the_sincut_tab_and_steps_aside_once_models_exist(app_env):
    """Issue 16.4: "Models available: none" said nothing about making one here; the box never closed."""
    from demo import AppContext, header_markdown

    reg = models.scan()
    assert "SinCUT live" in header_markdown(reg) and "few minutes" in header_markdown(reg)
    assert "SinCUT live" in reg.status_markdown() and "few minutes" in reg.status_markdown()
    header, box, status = AppContext().overview_updates(reg)
    assert box["open"] is True and box["visible"] is True
    make_model(app_env["live"] / "sincut-photo2art-1", "cut")
    reg = models.scan()
    header, box, status = AppContext().overview_updates(reg)
    assert "1 live" in header and "Make one" not in header
    assert box["open"] is False and "Make one here" not in status
    # The page's load event and a finished SinCUT run both update the header and the box.
    from demo import build_demo

    demo = build_demo()
    ids = {b.elem_id: b._id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    for name in ("refresh_all", "run", "delete_fn"):
        outputs = {o._id for o in _fn(demo, name).outputs}
        assert {ids["header"], ids["models-box"], ids["models-status"]} <= outputs, name


def test_upload_label_follows_the_chosen_model(app_env):
    sat = make_model(app_env["weights"] / "sat2map-cut", "cut")
    doc = json.loads((sat / "config.json").read_text())
    doc["data"]["root"] = "../shared/data/sat2map"
    (sat / "config.json").write_text(json.dumps(doc))
    photo = make_model(app_env["live"] / "sincut-photo2art-20260101-000000", "cut")
    art = make_model(app_env["live"] / "sincut-art2photo-20260101-000000", "cut")
    plain = make_model(app_env["weights"] / "cut-tiny", "cut")

    def label(folder):
        return translate_tab.model_changed(str(folder))[1]["label"]

    assert label(sat).startswith("Satellite image to translate")
    assert label(photo).startswith("Photo to translate") and label(art).startswith("Artwork to translate")
    assert label(plain).startswith("Input image (") and label(None).startswith("Input image (")
    doc["data"]["direction"] = "BtoA"
    (sat / "config.json").write_text(json.dumps(doc))
    assert label(sat).startswith("Map to translate")
    doc["domains"] = {"input": "aerial photo", "output": "map"}  # a recorded domain comes before any name
    (sat / "config.json").write_text(json.dumps(doc))
    assert label(sat).startswith("Aerial photo to translate")


class _Request:
    session_hash = "label-test"


def test_an_upload_read_after_translate_was_pressed_leaves_the_translating_line(app_env, cut_model, two_images):
    """A large upload is still being read when an eager user presses Translate: its "press Translate" must not
    land on the info line while the translation runs (it did, with tiles counting up beside it)."""
    from types import SimpleNamespace

    from demo import build_demo

    uploaded = _fn(build_demo(), "uploaded")
    assert "press **Translate**" in uploaded.fn(two_images[0], _Request())[3]
    job = translate_tab.start_job(_Request.session_hash)
    try:
        shown = uploaded.fn(two_images[0], _Request())
        assert shown[3] == gr.update() and shown[0]["visible"]  # the picture still shows; the line is left alone
        assert "press **Translate**" in uploaded.fn(two_images[0], SimpleNamespace(session_hash="another"))[3]
    finally:
        translate_tab.end_job(job)


def test_sincut_start_error_replaces_the_starting_status(app_env, two_images, tmp_path):
    """Issue 16.4: an unreadable photo left "Starting…" beside the error."""
    from demo import build_demo

    demo = build_demo()
    status = next(b for b in demo.blocks.values() if getattr(b, "elem_id", "") == "sincut-status")
    assert _fn(demo, "pending_fn").fn(_Request()) == "Starting…"
    bad = tmp_path / "photo.txt"
    bad.write_text("not an image")
    gen = _fn(demo, "run").fn(str(bad), two_images[1], sincut_tab.PHOTO_TO_ART, "sincut-cpu", 10, 5, _Request())
    first = next(gen)
    assert "⚠️" in first[status] and "photo.txt" in first[status] and "Starting" not in first[status]
    with pytest.raises(gr.Error, match="photo.txt"):
        next(gen)
    assert not sincut_tab._train_lock.locked()


def test_sincut_runs_stopped_too_early_are_not_exported(app_env, two_images):
    """Issue 16.4: a model stopped after one iteration was exported and listed everywhere."""
    ups = []
    gen = sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 1000, 2, "early",
                                   factory=lambda *a, **k: FakeTrainer(*a, **k, step_seconds=0.005))
    for up in gen:
        ups.append(up)
        if up.preview is not None and not up.done:
            sincut_tab.request_stop("early")
    final = ups[-1]
    assert final.done and final.iteration < sincut_tab.min_export_iters() and final.model_dir is None
    assert f"kept from iteration {sincut_tab.min_export_iters()}" in final.status
    assert models.scan().entries == []
    # A run that reaches its (small) budget is kept: the user asked for that many iterations.
    ups = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 6, 2, None,
                                        factory=FakeTrainer))
    assert ups[-1].model_dir is not None and models.scan().get(str(ups[-1].model_dir)) is not None


def test_delete_live_models_only(app_env, cut_model):
    live = make_model(app_env["live"] / "sincut-photo2art-x", "cut")
    models.load(str(live))  # cached
    official = make_model(app_env["official"] / "h2z", "cut", source="official (test)")
    for other in (cut_model, official):
        with pytest.raises(UserError, match="only live models can be deleted"):
            models.delete_live(str(other))
        assert other.is_dir()
    with pytest.raises(UserError, match="no model"):
        models.delete_live(str(app_env["live"]))  # the live folder itself is no model
    assert models.delete_live(str(live)).name == "sincut-photo2art-x"
    assert not live.exists() and not any(str(live) == k for k, _ in models._cache)
    assert models.scan().get(str(live)) is None
    with pytest.raises(UserError, match="no model"):
        models.delete_live(str(live))


def test_sincut_trains_where_the_app_runs_and_says_what_to_expect(monkeypatch):
    import torch

    from cutcore.sincut import default_sincut_preset
    from demo import models, sincut_tab

    monkeypatch.setenv("CUTCORE_DEVICE", "cpu")
    assert models.device().type == "cpu"
    monkeypatch.delenv("CUTCORE_DEVICE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert models.device().type == "cuda"  # a Space with a GPU trains and translates there by default
    assert default_sincut_preset(torch.device("cuda")) == "sincut-gpu"  # the preset a newcomer gets there
    assert default_sincut_preset(torch.device("cpu")) == "sincut-cpu"
    assert {v for _, v in sincut_tab.preset_choices()} >= {"sincut-cpu", "sincut-gpu", "sincut"}
    assert "**GPU**" in sincut_tab.expectations(True) and "**CPU**" in sincut_tab.expectations(False)
    assert "5 minutes" in sincut_tab.expectations(False)


# --- review 2: the paper preset on a CPU, progress between previews, texts that say what is true ----------


def test_sincut_paper_preset_is_refused_on_a_cpu_and_runs_on_cuda(app_env, two_images, monkeypatch):
    """It started on a CPU server and showed "iteration 0/100000" for minutes (days of training)."""
    import torch

    monkeypatch.setenv("CUTCORE_DEVICE", "cpu")
    FakeTrainer.instances.clear()
    with pytest.raises(UserError, match="Paper preset is for a GPU.*days.*Choose CPU-quick, or run the app on a GPU"):
        list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut", 50, 25, None,
                                      factory=FakeTrainer))
    assert not FakeTrainer.instances and not sincut_tab._train_lock.locked()
    sincut_tab.refuse_on_cpu("sincut-cpu", torch.device("cpu"))  # the CPU preset is what it is for
    monkeypatch.setattr(models, "device", lambda: torch.device("cuda"))
    final = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut", 4, 2, None,
                                          factory=FakeTrainer))[-1]
    assert final.done and "finished at iteration **4/4**" in final.status


def test_sincut_status_moves_between_previews(app_env, two_images):
    """Previews every 30 iterations: the iteration, speed and ETA still show from the first iterations."""
    ups = list(sincut_tab.train_updates(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 60, 30, None,
                                        factory=lambda *a, **k: FakeTrainer(*a, **k, step_seconds=0.1)))
    first_preview = next(i for i, u in enumerate(ups) if u.preview is not None)
    early = [u for u in ups[:first_preview] if 0 < u.iteration < 30]
    assert early, [u.status for u in ups]
    assert all(re.fullmatch(r"Iteration \*\*\d+/60\*\* · \d+\.\d\d it/s · ETA \d+ s", u.status) for u in early)
    assert [u.iteration for u in early] == sorted({u.iteration for u in early})  # each count once, in order
    assert ups[-1].done and ups[-1].iteration == 60


def test_sincut_number_inputs_leave_validation_to_the_app(app_env, two_images, monkeypatch):
    """A budget of 1 got Gradio's "Value 1 is less than minimum value 2" (and a traceback), not make_config's
    message; after a 2-iteration run the loss plot had one point (no line); the live list showed a path."""
    from demo import build_demo

    monkeypatch.setattr(sincut_tab, "TRAINER_FACTORY", FakeTrainer)
    demo = build_demo()
    blocks = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    budget, every = blocks["sincut-iterations"], blocks["sincut-every"]
    assert budget.preprocess(1) == 1 and budget.preprocess(10**9) == 10**9  # Gradio lets them through...
    assert every.preprocess(0) == 0 and every.preprocess(1000) == 1000
    assert np.isnan(budget.preprocess(float("nan")))
    assert "2 to 200000" in budget.info
    for bad in (0, None, float("nan"), float("inf")):
        with pytest.raises(UserError, match="The preview interval must be 1 or more iterations"):
            sincut_tab.preview_interval(bad)
    assert sincut_tab.preview_interval(1000) == 1000  # no cap (a long GPU run may preview rarely)
    gen = _fn(demo, "run").fn(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 1, 25, _Request())
    assert "⚠️ The iteration budget must be between 2 and" in next(gen)[blocks["sincut-status"]]  # ...to the app
    with pytest.raises(gr.Error, match="between 2 and"):
        next(gen)
    outs = list(_fn(demo, "run").fn(*two_images, sincut_tab.PHOTO_TO_ART, "sincut-cpu", 2, 25, _Request()))
    plot = blocks["sincut-plot"]
    plotted = [out[plot] for out in outs if plot in out]  # sent when its rows change only
    assert set(plotted[-1]["iteration"]) == {1, 2} and plot.x_axis_format == "d"
    live = outs[-1][blocks["sincut-live-model"]]
    (folder,) = [p for p in app_env["live"].iterdir() if p.is_dir()]
    assert live["value"] == str(folder)
    assert (models.scan().get(str(folder)).label, str(folder)) in live["choices"]  # its name, not the path


def _sincut_folder(folder: Path, scores: str) -> Path:
    """A model folder as the SinCUT tab writes it: kind "sincut" in config.json, its card with the yardsticks."""
    card = sincut_tab.model_card(folder.name, sincut_tab.make_config("sincut-cpu", 30), "photo.png", "art.png",
                                 sincut_tab.PHOTO_TO_ART, 30, 30, scores)
    make_model(folder, "cut", card=card)
    doc = json.loads((folder / "config.json").read_text())
    doc["model"]["kind"] = "sincut"
    (folder / "config.json").write_text(json.dumps(doc))
    return folder


def test_model_card_says_how_to_score_a_model_without_metrics(app_env, two_images, tmp_path):
    """The hint `python -m cutcore evaluate --out` did not run; a SinCUT model was sent to satellite maps."""
    import shlex

    from helpers import domain_a_image, domain_b_image

    from cutcore.cli import main

    plain = make_model(app_env["weights"] / "cut tiny", "cut")  # a space: the command quotes the folder
    text = models.scan().get(str(plain)).describe()
    command = re.search(r"`(python -m cutcore evaluate [^`]+)`", text).group(1)
    assert command == f"python -m cutcore evaluate --model '{plain}' --data DATA --out '{plain}'"
    data = tmp_path / "paired"
    for half, make in (("testA", domain_a_image), ("testB", domain_b_image)):
        (data / half).mkdir(parents=True)
        make(0, (40, 40)).save(data / half / "p0.png")
    assert main([str(data) if arg == "DATA" else arg for arg in shlex.split(command)[3:]]) == 0  # it runs
    assert models.scan().get(str(plain)).metrics  # and the card shows its metrics from then on

    photo, art = (Image.open(p).convert("RGB") for p in two_images)
    scored = _sincut_folder(app_env["live"] / "sincut-photo2art-1", sincut_tab.yardsticks(photo, art, photo))
    unscored = _sincut_folder(app_env["live"] / "sincut-photo2art-2", "")
    text = models.scan().get(str(scored)).describe()
    assert "Style yardsticks: colour **1.00**" in text and "evaluate" not in text
    text = models.scan().get(str(unscored)).describe()
    assert "sincut-photo2art-2" in text and "evaluate" not in text and "metrics" not in text


def test_translate_info_says_what_is_true(app_env, cut_model, tmp_path, monkeypatch):
    """"the scale the model was trained at" (it is the scale it translates at), "in 0.0 s", and "press
    Translate" while a tiled translation ran."""
    from types import SimpleNamespace

    from demo import build_demo

    doc = json.loads((cut_model / "config.json").read_text())
    doc["inference"] = {"scale": 0.25}
    (cut_model / "config.json").write_text(json.dumps(doc))
    monkeypatch.setattr(translate_tab, "time", SimpleNamespace(perf_counter=lambda: 0.0))
    info = translate_tab.translate_upload(str(cut_model), str(_png(tmp_path / "in.png", (96, 64)))).info
    assert "in one pass at ×0.25 (the scale this model translates at) in under 0.1 s" in info, info
    assert "trained" not in info
    monkeypatch.setenv("CUTCORE_DEMO_TILE", "16")
    big = str(_png(tmp_path / "big.png", (200, 150)))
    demo = build_demo()
    gen = _fn(demo, "do_translate").fn(str(cut_model), big, _Request(), progress=lambda *a, **k: None)
    assert next(gen)[3] == "Translating **big.png**…"
    assert "tiles" in list(gen)[-1][3]
    gen = _fn(demo, "do_translate").fn(None, big, _Request(), progress=lambda *a, **k: None)
    assert next(gen)[3] == "Translating **big.png**…"
    assert next(gen)[3].startswith("⚠️ No model selected")  # not "translating" beside the error
    with pytest.raises(gr.Error, match="No model selected"):
        next(gen)


def test_results_empty_state_names_the_folders_in_use(app_env, monkeypatch):
    make_model(app_env["weights"] / "cut", "cut")
    text = results_tab.build_results().markdown
    weights = app_env["weights"]
    assert f"--model {weights}/MODEL --data DATA --out {weights}/MODEL" in text
    assert f"no benchmark file `{weights}/bench.json`" in text and f"`{weights}/bench_gpu.json`" in text
    assert "weights/cut" not in text.replace(str(weights), "")
    monkeypatch.setenv("CUTCORE_BENCH", str(app_env["official"] / "bench.json"))
    assert f"`{app_env['official']}/bench.json`" in results_tab.build_results().markdown


def test_correspondence_errors_stay_on_its_lines_and_uploads_are_checked_on_arrival(app_env, cut_model, tmp_path):
    """An error said only "Error" on every output once its toast was gone, and a bad file said nothing on arrival."""
    from types import SimpleNamespace

    from demo import build_demo

    demo = build_demo()
    image = str(_png(tmp_path / "x.png"))
    gen = _fn(demo, "do_analyse").fn(None, image)
    view, st, info, gallery, details = next(gen)
    assert view == st == gallery == details == gr.update() and info.startswith("⚠️ Choose a model")
    with pytest.raises(gr.Error, match="Choose a model"):  # an API client still gets an error
        next(gen)
    gen = _fn(demo, "do_click").fn(None, SimpleNamespace(index=(1, 1)))
    assert next(gen)[2] == "⚠️ Press “Translate” first, then click on the translation."
    with pytest.raises(gr.Error):
        next(gen)
    check_upload = _fn(demo, "check_upload").fn
    assert check_upload(image).startswith("**x.png**: ") and "press **Translate**" in check_upload(image)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert check_upload(str(text)).startswith("⚠️ ") and "notes.png" in check_upload(str(text))
    assert check_upload(None) == ""


def test_correspondence_without_models_points_to_the_sincut_tab(app_env, tmp_path):
    image = str(_png(tmp_path / "x.png"))
    with pytest.raises(UserError, match="SinCUT live tab"):
        correspondence_tab.analyse(None, image)
    make_model(app_env["weights"] / "cyc", "cyclegan")  # a model, but none with heads
    with pytest.raises(UserError, match="SinCUT live tab"):
        correspondence_tab.analyse(None, image)
    make_model(app_env["weights"] / "cut", "cut")
    with pytest.raises(UserError, match="Choose a model with PatchNCE heads first"):
        correspondence_tab.analyse(None, image)


def test_the_default_examples_say_they_are_satellite_tiles(monkeypatch, tmp_path):
    """A photo → art model is offered beside them: the gallery must not look like inputs for every model."""
    monkeypatch.delenv("CUTCORE_EXAMPLES", raising=False)
    assert "Satellite tiles" in translate_tab.examples_label()
    monkeypatch.setenv("CUTCORE_EXAMPLES", str(tmp_path))
    assert translate_tab.examples_label() == "Examples (click one to use it)"


# --- settings: a bad CUTCORE_* value stops the start with one line --------------------------------------------


def test_a_bad_setting_stops_the_start_naming_the_variable(app_env, monkeypatch):
    """CUTCORE_DEMO_TILE=big failed every translation with "invalid literal for int()", and CUTCORE_DEVICE=cuda on a
    machine without CUDA failed every request with advice about a --device flag the app does not have."""
    import torch

    from demo import build_demo
    from demo.settings import SettingError

    monkeypatch.setenv("CUTCORE_DEMO_TILE", "")  # empty: the default
    assert translate_tab.tile_size() == translate_tab.DEFAULT_TILE
    for value, tiny in (("0", False), ("", False), ("off", False), ("YES", True), ("1", True), (" On ", True)):
        monkeypatch.setenv("CUTCORE_DEMO_TINY_SINCUT", value)
        assert ("tiny" in dict(sincut_tab.preset_choices()).values()) is tiny
    for name, value, message in [
        ("CUTCORE_DEMO_TILE", "big", "CUTCORE_DEMO_TILE='big' is not a whole number (default: 512)"),
        ("CUTCORE_DEMO_TILE", "8", "CUTCORE_DEMO_TILE=8 is too small: at least 16 (default: 512)"),
        ("CUTCORE_DEMO_MAX_ITERS", "1", "CUTCORE_DEMO_MAX_ITERS=1 is too small: at least 2 (default: 200000)"),
        ("CUTCORE_DEMO_MIN_SIDE", "0", "CUTCORE_DEMO_MIN_SIDE=0 is too small"),
        ("CUTCORE_DEVICE", "gpu",
         "CUTCORE_DEVICE='gpu': unknown device 'gpu'; set it to auto, cpu or cuda[:N], or unset it"),
        ("CUTCORE_DEMO_TINY_SINCUT", "Maybe",
         "CUTCORE_DEMO_TINY_SINCUT='Maybe' is neither on (1, true, yes, on) nor off"),
    ]:
        with monkeypatch.context() as m:
            m.setenv(name, value)
            with pytest.raises(SettingError) as e:
                build_demo()
            assert str(e.value).startswith(message), str(e.value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("CUTCORE_DEVICE", "cuda")
    with pytest.raises(SettingError, match=r"^CUTCORE_DEVICE='cuda': CUDA is not available \(.*\); set it to auto"):
        build_demo()
    monkeypatch.setenv("CUTCORE_DEMO_MAX_ITERS", "500")  # read where it is used: the app's limit follows it
    monkeypatch.setenv("CUTCORE_DEVICE", "cpu")
    with pytest.raises(UserError, match="between 2 and 500"):
        sincut_tab.make_config("sincut-cpu", 501)


def test_app_py_with_a_bad_setting_exits_with_one_line(app_env, tmp_path):
    import subprocess
    import sys

    from helpers import REPO_ROOT, subprocess_env

    done = subprocess.run([sys.executable, str(REPO_ROOT / "app.py")], cwd=tmp_path, capture_output=True, text=True,
                          env=subprocess_env(CUTCORE_DEMO_CORR_SIDE="wide"), timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == ("cutcore demo: CUTCORE_DEMO_CORR_SIDE='wide' is not a whole number "
                                                    "(default: 256)")


def test_with_no_map_model_the_translate_tab_fetches_the_official_one(app_env, monkeypatch):
    """A newcomer with no model of ours can try satellite → map at once: one button downloads the CycleGAN
    authors' sat2map model into the official folder, and it becomes the Translate tab's choice. Offline the
    button is not offered (asked through the API, it says why in one line); with a model of ours the offer is
    gone."""
    import shutil

    import cutcore.official
    from demo import build_demo

    calls = []

    def fake_download(name, out_dir, *, progress=None, **kwargs):  # what download_official leaves behind
        calls.append(name)
        progress(10 * 2**20, 45 * 2**20)
        return make_model(Path(out_dir), "cyclegan", source="official: junyanz/pytorch-CycleGAN-and-pix2pix")

    def blocks_of(demo):
        return {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}

    # Offline (as this fixture is): no button; the API's call refuses at once, in one line, leaving nothing behind.
    demo = build_demo()
    assert not blocks_of(demo)["translate-get-official"].visible and not models.offer_official_sat2map(models.scan())
    fetch = _fn(demo, "fetch_official")
    out = fetch.fn(*[None] * len(fetch.inputs))
    info = blocks_of(demo)["translate-info"]
    assert out[info].startswith("⚠️ The official model could not be downloaded: downloads are disabled")
    assert "\n" not in out[info] and not any(app_env["official"].iterdir())
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("CUTCORE_OFFLINE")
    demo = build_demo()
    blocks = blocks_of(demo)
    button, model_dd, info = blocks["translate-get-official"], blocks["translate-model"], blocks["translate-info"]
    assert button.visible and models.offer_official_sat2map(models.scan())
    fetch = _fn(demo, "fetch_official")
    lists = [None] * len(fetch.inputs)
    monkeypatch.setattr(cutcore.official, "download_official", fake_download)
    out = fetch.fn(*lists)
    folder = app_env["official"] / "sat2map_cyclegan"
    assert calls == ["sat2map_cyclegan"] and out[model_dd]["value"] == str(folder)
    assert out[button]["visible"] is False and "Google Maps" in out[info]
    assert str(folder) in [k for _, k in out[model_dd]["choices"]]
    assert not models.offer_official_sat2map(models.scan())
    fetch.fn(*lists)  # asked again (another page): already here, not downloaded twice
    assert calls == ["sat2map_cyclegan"]
    # A model of ours: no offer, whether or not the official one is here.
    make_model(app_env["weights"] / "cut-tiny", "cut")
    shutil.rmtree(folder)
    assert not models.offer_official_sat2map(models.scan())
