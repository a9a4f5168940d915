"""The app's web API, as `gradio_client` and a raw HTTP client see it, on a real `python app.py`.

- Every endpoint that takes a model accepts the models that exist *now* (one trained in the SinCUT
  tab after start-up included), documents a string (not `Literal[]`), and answers an unknown model
  with one readable line (no traceback in the server log).
- A long (tiled) translation stops within a tile when its client goes away or cancels, writes
  nothing, and does not hold up another user's small translation.

No timing asserts: waits are deadlines for something to happen, and orderings are checked by what
the server has said so far.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
httpx = pytest.importorskip("httpx")

from app_fixtures import make_model, satellite_like, start_app, stop_app  # noqa: E402

DEADLINE = 120.0  # seconds to wait for something that should happen in a few (a shared, slow CI machine)


def _big_image(path: Path, side: int) -> Path:
    """A side×side RGB PNG that is cheap to make: a small picture repeated."""
    tile = np.asarray(satellite_like((100, 100), 7))
    reps = -(-side // 100)
    Image.fromarray(np.tile(tile, (reps, reps, 1))[:side, :side]).save(path, compress_level=1)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    for name in ("weights", "official", "live", "tmp"):
        (root / name).mkdir()
    satellite_like((96, 72), 2).save(root / "photo.png")
    satellite_like((80, 80), 3).rotate(90).save(root / "art.png")
    satellite_like((44, 32), 4).save(root / "small.png")
    _big_image(root / "big.png", 2400)
    (root / "notes.txt").write_text("not an image")
    env = {"CUTCORE_WEIGHTS": str(root / "weights"), "CUTCORE_MODELS": str(root / "official"),
           "CUTCORE_LIVE_DIR": str(root / "live"), "CUTCORE_EXAMPLES": "", "CUTCORE_DEMO_TINY_SINCUT": "1",
           "CUTCORE_DEMO_TILE": "48", "TMPDIR": str(root / "tmp"), "GRADIO_TEMP_DIR": str(root / "gradio")}
    log_path = root / "app.log"
    proc, url = start_app(env, log_path)  # starts with no model at all
    yield {"url": url, "root": root, "log": log_path}
    stop_app(proc)


def _client(url: str):
    return gradio_client.Client(url, verbose=False, download_files=False)


def _wait_for(predicate, what: str, deadline: float = DEADLINE):
    end = time.time() + deadline
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _value(result):
    """An output's value (the client hands over gr.update dicts as they are)."""
    return result.get("value") if isinstance(result, dict) and result.get("__type__") == "update" else result


def _log(app) -> str:
    return app["log"].read_text()


def test_models_made_after_start_up_are_accepted_by_every_endpoint(app):
    root = app["root"]
    client = _client(app["url"])
    handle = gradio_client.handle_file
    # The schema documents a model as a string: never an enum of the (empty) start-up list.
    api = client.view_api(print_info=False, return_format="dict")
    assert "Literal[]" not in json.dumps(api)
    params = {name: ep["parameters"] for name, ep in api["named_endpoints"].items()}
    for name in ("/do_translate", "/refresh", "/do_analyse", "/model_changed", "/delete_live_model"):
        assert params[name][0]["python_type"]["type"] == "str", (name, params[name][0])
    # /refresh with nothing selected and no models: no error, no model.
    assert _value(client.predict("", api_name="/refresh")) is None

    # A model trained in the SinCUT tab, through the API (the tiny preset finishes in seconds).
    result = client.predict(handle(str(root / "photo.png")), handle(str(root / "art.png")), "photo → art style",
                            "tiny", 6, 2, api_name="/run")
    assert "finished at iteration" in str(result[0]), result[0]
    (live,) = [p for p in (root / "live").iterdir() if p.is_dir()]
    key = str(live)

    # Every endpoint that takes a model takes it.
    assert _value(client.predict("", api_name="/refresh")) == key
    assert _value(client.predict("", api_name="/refresh_1")) == key  # the Correspondence tab's list (heads only)
    card, label = client.predict(key, api_name="/model_changed")
    assert live.name in card
    preview, slider, download, info = client.predict(key, handle(str(root / "small.png")), api_name="/do_translate")
    assert "translated in one pass" in info and live.name in info
    analysed = client.predict(key, handle(str(root / "small.png")), api_name="/do_analyse")
    assert "**small.png**: 44×32 px" in analysed  # (translation, info, gallery, details): State is not sent

    # An unknown model: one readable line, no traceback on the server.
    for bad in ("/etc", str(root / "weights"), "no-such-model"):
        with pytest.raises(Exception) as e:
            client.predict(bad, handle(str(root / "small.png")), api_name="/do_translate")
        message = str(e.value)
        assert "There is no model" in message and "\n" not in message.strip(), message
    log = _log(app)
    assert "Traceback" not in log and "is not in the list of choices" not in log, log[-3000:]


# Emptied, or below or above the range the label gives: the app's own message, not Gradio's.
@pytest.mark.parametrize(("budget", "every", "message"), [
    (None, 2, "The iteration budget must be between 2 and"), (1, 2, "The iteration budget must be between 2 and"),
    (10**9, 2, "The iteration budget must be between 2 and"), (6, 0, "The preview interval must be 1 or more"),
    (6, None, "The preview interval must be 1 or more")])
def test_an_emptied_or_out_of_range_number_gets_the_apps_message(app, budget, every, message):
    root = app["root"]
    handle = gradio_client.handle_file
    with pytest.raises(Exception) as e:
        _client(app["url"]).predict(handle(str(root / "photo.png")), handle(str(root / "art.png")),
                                    "photo → art style", "tiny", budget, every, api_name="/run")
    assert message in str(e.value), e.value
    assert "Something went wrong" not in str(e.value) and "value" not in str(e.value)
    assert "TypeError" not in _log(app) and "Traceback" not in _log(app)


def test_delete_live_model_through_the_api_refuses_other_models(app):
    root = app["root"]
    client = _client(app["url"])
    ours = make_model(root / "weights" / "cut-tiny", "cut")
    live = make_model(root / "live" / "sincut-to-delete", "cut", seed=4)
    lists = ["", "", ""]  # the model lists' current values (translate, live, correspondence)
    status = client.predict(str(ours), *lists, api_name="/delete_live_model")[0]
    assert "only live models can be deleted" in status and ours.is_dir()
    status = client.predict(str(live), *lists, api_name="/delete_live_model")[0]
    assert "Deleted `sincut-to-delete`" in status and not live.exists()
    assert str(live) not in json.dumps(client.predict(*lists, api_name="/refresh_all"))
    status = client.predict(str(live), *lists, api_name="/delete_live_model")[0]
    assert "There is no model" in status


# --- long translations: cancel, disconnect, and room for small ones -----------------------------


class RawJob:
    """A /do_translate call over the queue's own HTTP protocol, so the test can simply hang up."""

    def __init__(self, url: str, model_key: str, image: Path):
        self.url, self.session = url, uuid.uuid4().hex[:11]
        config = httpx.get(url + "config", timeout=30).json()
        fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "do_translate")
        with open(image, "rb") as f:
            (server_path,) = httpx.post(url + "gradio_api/upload", files={"files": (image.name, f)}, timeout=60).json()
        file = {"path": server_path, "orig_name": image.name, "meta": {"_type": "gradio.FileData"}}
        body = {"data": [model_key, file],
                "fn_index": fn_index, "session_hash": self.session, "event_data": None, "trigger_id": None}
        httpx.post(url + "gradio_api/queue/join", json=body, timeout=30).raise_for_status()
        self._stream = httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": self.session},
                                    timeout=DEADLINE)
        self._lines = self._stream.__enter__().iter_lines()

    def next_progress(self) -> tuple[int, int]:
        """(tiles done, total) of the next progress message; fails if the job ends first."""
        for line in self._lines:
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "progress" and msg.get("progress_data"):
                unit = msg["progress_data"][0]
                if unit.get("index") is not None and unit.get("length"):
                    return unit["index"], unit["length"]
            if msg.get("msg") == "process_completed":
                raise AssertionError(f"the translation ended before the test hung up: {msg}")
        raise AssertionError("the progress stream ended")

    def hang_up(self) -> None:
        self._stream.__exit__(None, None, None)


def _cancel_lines(app) -> list[str]:
    return re.findall(r"translation (?:cancelled|client gone) after \d+ of \d+ tiles; nothing saved", _log(app))


def test_a_client_that_goes_away_stops_its_translation_and_small_ones_still_run(app):
    root = app["root"]
    key = str(make_model(root / "weights" / "cut-api", "cut", seed=5))
    before = len(_cancel_lines(app))
    job = RawJob(app["url"], key, root / "big.png")
    done, total = job.next_progress()
    assert total > 1000  # thousands of 48 px tiles: minutes of work if nobody stopped it
    # Meanwhile another user's small image is answered...
    info = _client(app["url"]).predict(key, gradio_client.handle_file(str(root / "small.png")),
                                       api_name="/do_translate")[3]
    assert "one pass" in info
    # ...while the big one is still going (it reports more tiles after the small answer came back).
    later, _ = job.next_progress()
    assert done <= later < total
    job.hang_up()
    line = _wait_for(lambda: _cancel_lines(app)[before:], "the server to stop the abandoned translation")[0]
    assert "client gone" in line, line
    stopped_at = int(re.search(r"after (\d+) of", line).group(1))
    assert stopped_at < total
    assert not list((root / "tmp").rglob("big_*.png"))  # nothing written for nobody


def test_cancel_through_the_api_stops_the_work(app):
    root = app["root"]
    key = str(make_model(root / "weights" / "cut-api2", "cut", seed=6))
    client = _client(app["url"])
    before = len(_cancel_lines(app))
    job = client.submit(key, gradio_client.handle_file(str(root / "big.png")), api_name="/do_translate")
    _wait_for(lambda: (job.status().progress_data or [None])[0] is not None, "tile progress")
    job.cancel()
    _wait_for(lambda: _cancel_lines(app)[before:], "the server to stop the cancelled translation")
    assert not list((root / "tmp").rglob("big_*.png"))
    # The server still serves.
    assert "one pass" in client.predict(key, gradio_client.handle_file(str(root / "small.png")),
                                        api_name="/do_translate")[3]
