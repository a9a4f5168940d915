"""End to end in a real headless browser: `python app.py` on 127.0.0.1 driven by Playwright
with Debian's Chromium (`apt-get install -y chromium`). Skipped when either is missing.

Screenshots go to screenshots/ (git-ignored) for a person to look at.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from app_fixtures import (
    REPO_ROOT,
    bad_files,
    make_model,
    satellite_like,
    start_app,
    stop_app,
)
from PIL import Image

CHROMIUM = os.environ.get("CUTCORE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
SHOTS = REPO_ROOT / "screenshots"
TIMEOUT_MS = 90_000  # generous: CI machines are shared and slow

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
# Assertions wait as long as actions do (Playwright's expect() defaults to 5 s, which a loaded 2-core machine
# overran once: an upload's status line arrived after it).
sync_api.expect.set_options(timeout=TIMEOUT_MS)
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium, or set CUTCORE_CHROMIUM)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    make_model(root / "weights" / "cut-tiny", "cut",
               metrics={"accuracy": 0.42, "rmse": 20.5, "swd": 12.0, "fid": 80.25})
    make_model(root / "weights" / "cyclegan-tiny", "cyclegan", seed=1)
    (root / "official").mkdir()
    (root / "examples").mkdir()
    for i in range(3):
        satellite_like((128, 128), 10 + i).save(root / "examples" / f"example{i}.png")
    satellite_like((150, 100), 1).save(root / "aerial.png")
    satellite_like((96, 72), 2).save(root / "photo.png")
    satellite_like((80, 80), 3).rotate(90).save(root / "art.png")
    big_image(root / "huge.png", 3000)
    return {"root": root, "bad": bad_files(root / "bad")}


def big_image(path: Path, side: int) -> Path:
    """A side×side PNG that is cheap to make (a small picture repeated): thousands of 64 px tiles."""
    tile = np.asarray(satellite_like((100, 100), 7))
    reps = -(-side // 100)
    Image.fromarray(np.tile(tile, (reps, reps, 1))[:side, :side]).save(path, compress_level=1)
    return path


@pytest.fixture(scope="module")
def server(data):
    root = data["root"]
    env = {"CUTCORE_WEIGHTS": str(root / "weights"), "CUTCORE_MODELS": str(root / "official"),
           "CUTCORE_LIVE_DIR": str(root / "live"), "CUTCORE_EXAMPLES": str(root / "examples"),
           "CUTCORE_DEMO_TINY_SINCUT": "1", "CUTCORE_DEMO_TILE": "64", "GRADIO_TEMP_DIR": str(root / "gradio"),
           "CUTCORE_DEMO_MIN_EXPORT_ITERS": "2", "TMPDIR": str(root / "tmp")}
    (root / "tmp").mkdir(exist_ok=True)
    SHOTS.mkdir(exist_ok=True)
    log_path = SHOTS / "app.log"  # kept for a person to read after a failure
    proc, url = start_app(env, log_path)
    yield url
    stop_app(proc)
    log = log_path.read_text()
    assert "Traceback" not in log, log[-4000:]  # bad inputs are handled, never crash a handler


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_context(browser):
    """A browser context that can reach the app on loopback and nothing else."""
    context = browser.new_context(viewport={"width": 1360, "height": 1000})

    def guard(route):
        host = urlparse(route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1"):
            route.continue_()
        else:
            route.abort()

    context.route(re.compile(r"^https?://"), guard)
    return context


@pytest.fixture
def page(browser, server):
    context = new_context(browser)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(server)
    pg.wait_for_selector("#translate-run")
    yield pg
    context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def upload(page, elem_id: str, path: Path) -> None:
    """Upload into a gr.File, clearing a previous file first (its input only exists while empty)."""
    inp = page.locator(f"#{elem_id} input[type=file]")
    clear = page.locator(f"#{elem_id} button[aria-label='Clear']")
    # A fresh page may not have drawn the component yet: wait until one of the two is there.
    inp.or_(clear).first.wait_for(state="attached")
    if not inp.count():
        clear.click()
        inp.wait_for(state="attached")
    inp.set_input_files(str(path))


def test_translate_tiled_image_and_download(page, data):
    expect = sync_api.expect
    expect(page.locator("#translate-model-card")).to_contain_text("42.0%")
    upload(page, "translate-upload", data["root"] / "aerial.png")
    expect(page.locator("#translate-info")).to_contain_text("150×100")
    expect(page.locator("#translate-preview img")).to_be_visible()
    page.click("#translate-run")
    expect(page.locator("#translate-info")).to_contain_text("64px tiles", timeout=TIMEOUT_MS)
    expect(page.locator("#translate-slider img")).to_have_count(2)
    link = page.locator("#translate-download a").first
    expect(link).to_be_visible()
    assert "aerial_cut-tiny" in page.locator("#translate-download").inner_text()
    with page.expect_download() as dl:
        link.click()
    saved = Path(dl.value.path())
    from PIL import Image

    assert Image.open(saved).size == (150, 100)
    shot(page, "01_translate")
    # The example gallery fills the upload.
    page.locator("#translate-examples .thumbnail-item").first.click()
    expect(page.locator("#translate-info")).to_contain_text("example0.png")


def test_bad_file_shows_a_message_and_the_app_keeps_serving(page, data):
    expect = sync_api.expect
    upload(page, "translate-upload", data["bad"]["text"])
    expect(page.locator("#translate-info")).to_contain_text("not an image this app can read")
    expect(page.get_by_text("“notes.txt” is not an image").first).to_be_visible()
    page.click("#translate-run")  # translating it anyway: an error toast, not a stack trace
    toast = page.locator(".toast-body").filter(has_text="notes.txt")
    expect(toast.first).to_be_visible()
    assert "Traceback" not in page.content()
    upload(page, "translate-upload", data["bad"]["gigapixel"])
    expect(page.locator("#translate-info")).to_contain_text("1200 megapixels")
    shot(page, "02_bad_file")
    upload(page, "translate-upload", data["root"] / "aerial.png")  # still serving
    expect(page.locator("#translate-info")).to_contain_text("150×100")


WATCH_PREVIEWS = """() => {
    window.__previews = new Set();
    const record = () => document.querySelectorAll('#sincut-preview img')
        .forEach(i => i.src && window.__previews.add(i.src));
    new MutationObserver(record).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                          attributeFilter: ['src']});
}"""


def test_sincut_live_previews_queue_and_model_lists(page, browser, server, data):
    expect = sync_api.expect
    page.get_by_role("tab", name="SinCUT live").click()
    upload(page, "sincut-photo", data["root"] / "photo.png")
    upload(page, "sincut-art", data["root"] / "art.png")
    expect(page.locator("#sincut-photo-view img")).to_be_visible()
    page.locator("#sincut-preset input").click()
    page.get_by_role("option", name=re.compile("Tiny")).click()
    iterations = page.locator("#sincut-iterations input")
    expect(iterations).to_have_value("12")
    iterations.fill("100000")  # far more than the test waits for: it ends with Stop
    every = page.locator("#sincut-every input[type=number]")
    every.fill("2")
    every.press("Enter")
    page.evaluate(WATCH_PREVIEWS)  # every preview the page ever shows, however fast they come
    page.click("#sincut-start")

    # A second user meanwhile is queued (one training per process), and sees the position.
    other = new_context(browser).new_page()
    other.goto(server)
    other.get_by_role("tab", name="SinCUT live").click()
    upload(other, "sincut-photo", data["root"] / "photo.png")
    upload(other, "sincut-art", data["root"] / "art.png")
    expect(other.locator("#sincut-photo-view img")).to_be_visible()
    other.click("#sincut-start")
    queued, speed_shown, n_previews = False, False, 0
    deadline = time.time() + 120
    while time.time() < deadline and not (queued and speed_shown and n_previews >= 2):
        time.sleep(0.3)
        if not queued and re.search(r"queue:?\s*\d+\s*/\s*\d+", other.locator("body").inner_text(), re.IGNORECASE):
            queued = True
            shot(other, "03b_sincut_queued")
            other.click("#sincut-stop")  # withdraw the queued request
        status = page.locator("#sincut-status").inner_text()
        speed_shown = speed_shown or ("it/s" in status and "ETA" in status)
        n_previews = page.evaluate("() => window.__previews.size")
    context = (page.locator("#sincut-status").inner_text(), page.locator(".toast-body").all_inner_texts(),
               other.locator("#sincut-status").inner_text(), (SHOTS / "app.log").read_text()[-3000:])
    assert n_previews >= 2, (f"only {n_previews} distinct previews", context)
    assert speed_shown, context
    assert queued, ("the second user never saw a queue position", context)
    shot(page, "03a_sincut_running")
    page.click("#sincut-stop")
    stop_clicked = time.time()
    expect(page.locator("#sincut-status")).to_contain_text("stopped at iteration", timeout=TIMEOUT_MS)
    assert time.time() - stop_clicked < 30, "Stop did not end the training promptly"
    expect(page.locator("#sincut-download a").first).to_be_visible()
    expect(page.locator("#sincut-plot")).to_contain_text("G_GAN")  # the legend: lines were drawn
    shot(page, "03_sincut")
    # The withdrawn request ends at once when its turn comes ("stopped" at once if its turn had just come
    # when Stop was pressed).
    expect(other.locator("#sincut-status")).to_contain_text(re.compile("Cancelled|stopped at iteration"),
                                                            timeout=TIMEOUT_MS)
    other.context.close()
    # The trained model is chosen in the other tabs (they had another model selected) and offered there.
    page.get_by_role("tab", name="Translate").click()
    expect(page.locator("#translate-model input")).to_have_value(re.compile("sincut-photo2art"))
    page.locator("#translate-model input").click()
    expect(page.get_by_role("option", name=re.compile("sincut-photo2art"))).to_be_visible()
    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Correspondence").click()
    expect(page.locator("#corr-model input")).to_have_value(re.compile("sincut-photo2art"))


def test_correspondence_click_gives_heatmaps(page, data):
    expect = sync_api.expect
    page.get_by_role("tab", name="Correspondence").click()
    upload(page, "corr-upload", data["root"] / "aerial.png")
    page.click("#corr-run")
    img = page.locator("#corr-output img")
    expect(img).to_be_visible()
    expect(img).to_have_js_property("complete", True)
    # Click at 30% / 60% of the picture itself (it is letterboxed inside the element).
    g = img.evaluate("""i => { const b = i.getBoundingClientRect();
        const r = Math.min(b.width / i.naturalWidth, b.height / i.naturalHeight, 1);
        return {x: b.left + (b.width - i.naturalWidth * r) / 2, y: b.top + (b.height - i.naturalHeight * r) / 2,
                w: i.naturalWidth * r, h: i.naturalHeight * r}; }""")
    page.mouse.click(g["x"] + g["w"] * 0.3, g["y"] + g["h"] * 0.6)
    expect(page.locator("#corr-details")).to_contain_text("Query at", timeout=TIMEOUT_MS)
    expect(page.locator("#corr-maps img")).to_have_count(4)  # one per PatchNCE layer of the tiny model (0, 4, 8, 12)
    shot(page, "04_correspondence")
    text = page.locator("#corr-details").inner_text()
    x, y = map(int, re.search(r"Query at \((\d+), (\d+)\)", text).groups())
    assert abs(x - 45) <= 2 and abs(y - 60) <= 2, (x, y)  # 30% / 60% of the 150x100 image


def test_results_tab(page):
    expect = sync_api.expect
    page.get_by_role("tab", name="Results").click()
    expect(page.locator("#results-table")).to_contain_text("42.0%")
    shot(page, "05_results")



def test_translate_pressed_while_a_large_upload_is_read(page, data):
    """The upload's "press Translate" line must not replace "Translating…" while the tiles count up."""
    expect = sync_api.expect
    upload(page, "translate-upload", data["root"] / "huge.png")
    page.click("#translate-run")  # at once: the upload's own handler may still be reading the 3000² file
    # Once a tile is done (the upload's handler has long answered), while the others are still to come.
    done = re.compile(r"\b[1-9][\d.]*k?/[\d.]+k? tiles")  # Gradio's counter, e.g. "74/4.0k tiles"
    expect(page.locator("#translate-preview")).to_contain_text(done, timeout=TIMEOUT_MS)
    # On a busy machine the upload's handler can still be reading the file here: its status overlay shows on this
    # line until it answers, and with the bug its answer would then replace the line.
    expect(page.locator("#translate-info")).to_have_text("Translating huge.png…", timeout=TIMEOUT_MS)
    page.click("#translate-cancel")
    expect(page.locator("#translate-info")).to_contain_text("cancelled")


def test_cancel_stops_a_long_translation(page, data):
    """Issue 16.3: a Cancel button; the work stops (server log) and nothing is written."""
    expect = sync_api.expect
    upload(page, "translate-upload", data["root"] / "huge.png")
    expect(page.locator("#translate-info")).to_contain_text("3000×3000")
    page.click("#translate-run")
    expect(page.get_by_text(re.compile(r"Translating tiles")).first).to_be_visible()
    expect(page.locator("#translate-info")).to_have_text("Translating huge.png…")  # not "press Translate"
    shot(page, "06a_translate_running")
    page.click("#translate-cancel")
    expect(page.locator("#translate-info")).to_contain_text("cancelled")
    log_path = SHOTS / "app.log"
    deadline = time.time() + 60
    while time.time() < deadline and not re.search(r"translation (cancelled|client gone) after \d+ of \d+ tiles",
                                                     log_path.read_text()):
        time.sleep(0.3)
    line = re.search(r"translation (?:cancelled|client gone) after (\d+) of (\d+) tiles", log_path.read_text())
    assert line and int(line.group(1)) < int(line.group(2)), log_path.read_text()[-2000:]
    expect(page.locator("#translate-download")).to_be_hidden()
    assert not list((data["root"] / "tmp").rglob("huge_*.png"))
    shot(page, "06_translate_cancelled")
    upload(page, "translate-upload", data["root"] / "aerial.png")  # and the app goes on serving
    expect(page.locator("#translate-info")).to_contain_text("150×100")
    page.click("#translate-run")
    expect(page.locator("#translate-info")).to_contain_text("64px tiles")


def test_closing_the_tab_stops_a_long_translation(browser, server, data):
    """Issue 16.3: the translation of a tab that is closed stops (it went on for minutes, for nobody)."""
    expect = sync_api.expect
    log_path = SHOTS / "app.log"

    def gone() -> int:
        return len(re.findall(r"translation client gone after", log_path.read_text()))

    before = gone()
    context = new_context(browser)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(server)
    pg.wait_for_selector("#translate-run")
    upload(pg, "translate-upload", data["root"] / "huge.png")
    expect(pg.locator("#translate-info")).to_contain_text("3000×3000")
    pg.click("#translate-run")
    expect(pg.get_by_text(re.compile(r"Translating tiles")).first).to_be_visible()
    context.close()  # the user goes away
    deadline = time.time() + 60
    while time.time() < deadline and gone() <= before:
        time.sleep(0.3)
    assert gone() > before, log_path.read_text()[-2000:]
    assert not list((data["root"] / "tmp").rglob("huge_*.png"))


# --- a server that starts with no model at all (issue 16.4: the first screen) ---------------------


@pytest.fixture(scope="module")
def empty_server(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("empty")
    env = {"CUTCORE_WEIGHTS": str(root / "weights"), "CUTCORE_MODELS": str(root / "official"),
           "CUTCORE_LIVE_DIR": str(root / "live"), "CUTCORE_EXAMPLES": "", "CUTCORE_DEMO_TINY_SINCUT": "1",
           "GRADIO_TEMP_DIR": str(root / "gradio")}
    log_path = SHOTS / "app_empty.log"
    proc, url = start_app(env, log_path)
    yield url
    stop_app(proc)
    log = log_path.read_text()
    assert "Traceback" not in log, log[-4000:]


def test_first_screen_without_models_then_a_live_model_made_and_deleted(browser, empty_server, data):
    expect = sync_api.expect
    context = new_context(browser)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(empty_server)
    page.wait_for_selector("#translate-run")
    # No model: the header and the open box say the SinCUT tab makes one in minutes.
    expect(page.locator("#header")).to_contain_text("none")
    expect(page.locator("#header")).to_contain_text("SinCUT live")
    expect(page.locator("#models-status")).to_be_visible()
    expect(page.locator("#models-status")).to_contain_text("few minutes")
    expect(page.locator("#translate-upload")).to_contain_text("Input image")
    shot(page, "07a_empty_first_screen")

    # SinCUT with an unreadable photo: the status line says what is wrong, not "Starting…".
    page.get_by_role("tab", name="SinCUT live").click()
    upload(page, "sincut-photo", data["bad"]["text"])
    upload(page, "sincut-art", data["root"] / "art.png")
    page.locator("#sincut-preset input").click()
    page.get_by_role("option", name=re.compile("Tiny")).click()
    expect(page.locator("#sincut-iterations input")).to_have_value("12")
    page.click("#sincut-start")
    expect(page.locator("#sincut-status")).to_contain_text("notes.txt")
    expect(page.locator("#sincut-status")).not_to_contain_text("Starting")
    shot(page, "07b_sincut_bad_photo")

    # A real (tiny) run to its budget: the model is kept and offered in the lists.
    upload(page, "sincut-photo", data["root"] / "photo.png")
    expect(page.locator("#sincut-photo-view img")).to_be_visible()
    page.click("#sincut-start")
    expect(page.locator("#sincut-status")).to_contain_text("finished at iteration", timeout=TIMEOUT_MS)
    # The new model's name, as the other lists show it (not its folder's path).
    expect(page.locator("#sincut-live-model input")).to_have_value(re.compile(r"^sincut-photo2art-\S+ \[live, "))
    expect(page.locator("#header")).to_contain_text("1 live")
    expect(page.locator("#models-status")).to_be_hidden()  # the missing-models box stepped aside
    page.get_by_role("tab", name="Translate").click()
    page.locator("#translate-model input").click()
    page.get_by_role("option", name=re.compile("sincut-photo2art")).click()
    expect(page.locator("#translate-upload")).to_contain_text("Photo to translate")  # the model's domain
    shot(page, "07c_live_model_listed")

    # A fresh page: still listed, the box closed.
    page.reload()
    page.wait_for_selector("#translate-run")
    expect(page.locator("#header")).to_contain_text("1 live")
    expect(page.locator("#models-status")).to_be_hidden()
    expect(page.locator("#translate-upload")).to_contain_text("Photo to translate")

    # Delete it from the SinCUT tab: gone from every list.
    page.get_by_role("tab", name="SinCUT live").click()
    expect(page.locator("#sincut-live-model input")).to_have_value(re.compile("sincut-photo2art"))
    page.click("#sincut-delete")
    expect(page.locator("#sincut-delete-status")).to_contain_text("Deleted")
    expect(page.locator("#header")).to_contain_text("none")
    page.get_by_role("tab", name="Translate").click()
    page.locator("#translate-model input").click()
    expect(page.get_by_role("option", name=re.compile("sincut-photo2art"))).to_have_count(0)
    shot(page, "07d_live_model_deleted")
    context.close()


def test_a_page_opened_during_a_run_lists_its_model_when_it_ends(browser, empty_server, data):
    """A page drawn while a training holds the slot (someone else's, or this user's own kept after a reload, saved in
    the background) lists the model once the run ends, without the user pressing ↻."""
    expect = sync_api.expect
    pages = []
    for _ in range(2):
        context = new_context(browser)
        pg = context.new_page()
        pg.set_default_timeout(TIMEOUT_MS)
        pages.append((context, pg))
    (ctx_b, trainer), (ctx_a, watcher) = pages
    trainer.goto(empty_server)
    trainer.wait_for_selector("#translate-run")
    trainer.get_by_role("tab", name="SinCUT live").click()
    upload(trainer, "sincut-photo", data["root"] / "photo.png")
    upload(trainer, "sincut-art", data["root"] / "art.png")
    trainer.locator("#sincut-preset input").click()
    trainer.get_by_role("option", name=re.compile("Tiny")).click()
    expect(trainer.locator("#sincut-iterations input")).to_have_value("12")  # the preset's default, then ours
    trainer.fill("#sincut-iterations input", "100000")
    trainer.fill("#sincut-every input", "5")
    trainer.click("#sincut-start")
    # Past the 25 iterations from which a stopped run is kept.
    expect(trainer.locator("#sincut-status")).to_contain_text(re.compile(r"Iteration \*?\*?([3-9]\d|\d{3,})/"))
    watcher.goto(empty_server)
    watcher.wait_for_selector("#translate-run")
    expect(watcher.locator("#header")).to_contain_text("none")  # drawn while the run holds the slot
    trainer.click("#sincut-stop")
    expect(trainer.locator("#sincut-status")).to_contain_text("stopped")
    expect(watcher.locator("#header")).to_contain_text("1 live", timeout=15_000)  # no ↻ pressed
    watcher.get_by_role("tab", name="SinCUT live").click()
    watcher.locator("#sincut-live-model input").click()
    watcher.get_by_role("option", name=re.compile("sincut-photo2art")).click()
    watcher.click("#sincut-delete")
    expect(watcher.locator("#header")).to_contain_text("none")
    ctx_a.close()
    ctx_b.close()
