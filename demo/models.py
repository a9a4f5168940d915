"""The model registry: which translation models the app can offer, and where they come from.

Search order (all folders holding `model.safetensors` + `config.json`, at most two levels deep):

1. `weights/` of the repo (env `CUTCORE_WEIGHTS` to point elsewhere): our models ("ours").
2. The official-model folder (`cutcore.official.official_models_dir()`: env `CUTCORE_MODELS`,
   default ~/.cache/cutcore/models): converted official checkpoints ("official").
3. Models trained live in the SinCUT tab (env `CUTCORE_LIVE_DIR`, default a temp folder): "live".
4. Only when 1 holds no model: a snapshot of the Hub model repo `CUTCORE_HUB_REPO`
   (default "cutcore/sat2map"), downloaded once and cached by huggingface_hub. Offline
   (`cutcore.official_urls.offline()`: HF_HUB_OFFLINE=1 or CUTCORE_OFFLINE=1) only an already
   cached snapshot is used.

A model's source label comes from its config.json: a top-level "source" starting with
"official" is "official", whatever folder it is in. What a model translates (its input domain, for
the upload box's label) is config.json's `domains.input` where the writer recorded it (the SinCUT
tab does); else it is read from an `X2Y` name: of its training data folder (config.json's
`data.root`: `sat2map`), else of the model (`horse2zebra_cut`), the other way round for
`data.direction: "BtoA"`; unknown otherwise.

Only registered models are loaded or deleted (`require`, `load`, `delete_live`): a model key coming
from the web API is checked against the current registry, so no other folder of the server is touched.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from cutcore.checkpoint import checkpoint_dirs
from cutcore.model_folder import CONFIG, WEIGHTS, load_model
from cutcore.official_urls import official_models_dir, offline
from cutcore.report import METHODS
from cutcore.results import LABELS, format_metric, metric_values

from .settings import device  # where the app translates and trains ($CUTCORE_DEVICE)

log = logging.getLogger("cutcore.demo")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HUB_REPO = "cutcore/sat2map"
STYLE_YARDSTICKS = "Style yardsticks:"  # how the SinCUT tab's model cards start their yardsticks line


def weights_dir() -> Path:
    return Path(os.environ.get("CUTCORE_WEIGHTS") or REPO_ROOT / "weights").expanduser()


def official_dir() -> Path:
    return official_models_dir()


def live_dir() -> Path:
    return Path(os.environ.get("CUTCORE_LIVE_DIR") or Path(tempfile.gettempdir()) / "cutcore-live").expanduser()


def hub_repo() -> str:
    return os.environ.get("CUTCORE_HUB_REPO", DEFAULT_HUB_REPO)


@dataclass
class ModelEntry:
    name: str
    path: Path
    source: str  # "ours" | "official" | "live" | "hub"
    preset: str
    metrics: dict[str, float] = field(default_factory=dict)
    has_heads: bool = False  # PatchNCE heads saved (needed by the Correspondence tab)
    card: str = ""  # README.md without front matter
    domain: str | None = None  # what it translates, e.g. "satellite image" (None: not recorded)
    kind: str = ""  # config.json's model.kind: "cut", "cyclegan", "sincut"...

    @property
    def key(self) -> str:
        return str(self.path)

    @property
    def label(self) -> str:
        metrics = " · ".join(f"{m} {format_metric(m, v)}" for m, v in self.metrics.items())
        return f"{self.name} [{self.source}, {self.preset}]" + (f" — {metrics}" if metrics else "")

    def describe(self) -> str:
        """Markdown: the key metrics and the model card."""
        lines = [f"**{self.name}** · source: *{self.source}* · method: `{self.preset}`"
                 + (" · PatchNCE heads ✓" if self.has_heads else "")]
        if self.metrics:
            lines += ["", "| " + " | ".join(LABELS[m] for m in self.metrics) + " |",
                      "|" + "---:|" * len(self.metrics),
                      "| " + " | ".join(format_metric(m, v) for m, v in self.metrics.items()) + " |"]
        else:
            lines += self.unscored_note()
        return "\n".join(lines)

    def unscored_note(self) -> list[str]:
        """Markdown lines for a model without metrics.json: a SinCUT model's style yardsticks from its card
        (the map metrics need a paired test set it has none of), else the command that evaluates it."""
        if self.kind == "sincut":
            found = re.search(f"^{re.escape(STYLE_YARDSTICKS)}.*$", self.card, re.MULTILINE)
            return ["", found.group(0)] if found else []
        folder = shlex.quote(str(self.path))
        return ["", f"_No metrics.json for this model. On a paired test set (DATA: `testA/` + `testB/` with "
                    f"matching names, as sat2map): `python -m cutcore evaluate --model {folder} --data DATA "
                    f"--out {folder}`._"]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def read_metrics(folder: Path) -> dict[str, float]:
    """Key metrics from metrics.json: `{"metrics": {...}}` (evaluate --out) or a flat dict."""
    return metric_values(_read_json(folder / "metrics.json"))


def read_card(folder: Path) -> str:
    try:
        text = (folder / "README.md").read_text()
    except (OSError, UnicodeDecodeError):
        return ""
    if text.startswith("---"):  # Hub model-card front matter
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4:]
    return text.strip()


def has_heads(weights: Path) -> bool:
    """Whether a safetensors file has PatchNCE head tensors ("F.*"), read from its header only."""
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as f:
            return any(k.startswith("F.") for k in f.keys())  # noqa: SIM118 - safe_open is no dict
    except Exception:  # noqa: BLE001 - a broken file simply has no usable heads
        return False


def model_dirs(root: Path, depth: int = 2) -> list[Path]:
    """Model folders under `root` (root included): folders with model.safetensors and config.json,
    and for a training run folder (checkpoints/step_*/) its newest checkpoint."""
    if not root.is_dir():
        return []
    if (root / WEIGHTS).is_file() and (root / CONFIG).is_file():
        return [root]
    if ckpts := [p for p in checkpoint_dirs(root) if (p / WEIGHTS).is_file()]:
        return [ckpts[-1]]
    found: list[Path] = []
    if depth > 0:
        for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found += model_dirs(child, depth - 1)
    return found


# Words of `X2Y` dataset names, as the upload box should say them; other words become "<word> image".
_DOMAIN_WORDS = {"sat": "satellite image", "satellite": "satellite image", "aerial": "aerial photo", "map": "map",
                 "photo": "photo", "art": "artwork", "painting": "painting", "monet": "Monet painting",
                 "label": "label map", "labels": "label map"}
_X2Y = re.compile(r"(?<![a-z])([a-z]+)2([a-z]+)(?![a-z])")


def _domain_word(word: str) -> str:
    return _DOMAIN_WORDS.get(word, f"{word} image")


def input_domain(config: dict, name: str = "") -> str | None:
    """What a model with this config.json translates ("satellite image", "photo", "horse image"), or None."""
    domains = config.get("domains")
    if isinstance(domains, dict) and isinstance(domains.get("input"), str) and domains["input"].strip():
        return domains["input"].strip()
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    backwards = data.get("direction") == "BtoA"
    for text in (Path(str(data.get("root") or "")).name, name):
        text = text.lower()
        if text == "maps":  # pix2pix's maps: A is the aerial photo, B the map
            return "map" if backwards else "satellite image"
        found = _X2Y.search(text)
        if found:
            return _domain_word(found.group(2) if backwards else found.group(1))
    return None


def read_entry(folder: Path, default_source: str) -> ModelEntry:
    config = _read_json(folder / CONFIG)
    source = default_source
    if str(config.get("source") or "").lower().startswith("official"):
        source = "official"
    model = config.get("model") if isinstance(config.get("model"), dict) else {}
    preset = str(config.get("preset") or model.get("kind") or "?")
    name = str(config.get("name") or folder.name)
    if name.startswith("step_"):  # a run's checkpoint folder: name it after the run
        name = f"{folder.parent.parent.name}/{folder.name}"  # run/step_N
    return ModelEntry(name, folder, source, preset, read_metrics(folder), has_heads(folder / WEIGHTS),
                      read_card(folder), input_domain(config, str(config.get("name") or folder.name)),
                      str(model.get("kind") or ""))


@dataclass
class Registry:
    entries: list[ModelEntry]
    notes: list[str]  # what is missing and how to get it (markdown lines)

    def get(self, key: str | None) -> ModelEntry | None:
        return next((e for e in self.entries if e.key == key), None)

    def choices(self, heads_only: bool = False, source: str | None = None) -> list[tuple[str, str]]:
        """(label, key) of the models to offer: all, those with PatchNCE heads, or those of one source."""
        return [(e.label, e.key) for e in self.entries
                if (e.has_heads or not heads_only) and (source is None or e.source == source)]

    def status_markdown(self) -> str:
        if not self.notes:
            return ""
        return "\n".join(f"- {n}" for n in self.notes)


_hub_lock = threading.Lock()
_hub_result: dict[str, tuple[Path | None, str, float]] = {}
HUB_RETRY_SECONDS = 300.0  # a failed look-up is retried (on a refresh) after this long


def hub_snapshot() -> tuple[Path | None, str]:
    """(local snapshot folder or None, note). Cached per process (failures for a few minutes); never raises."""
    repo = hub_repo()
    with _hub_lock:
        if repo in _hub_result:
            path, note, when = _hub_result[repo]
            if path is not None or time.monotonic() - when < HUB_RETRY_SECONDS:
                return path, note
        try:
            from huggingface_hub import snapshot_download

            patterns = ["*.safetensors", "*.json", "*.md", "**/*.safetensors", "**/*.json", "**/*.md"]
            path = Path(snapshot_download(repo, repo_type="model", allow_patterns=patterns,
                                          local_files_only=offline()))
            result = (path, f"models from the Hub repo `{repo}` (cached at `{path}`)")
        except Exception as e:  # noqa: BLE001 - offline, no such repo, no network: all the same to the UI
            why = "offline mode (HF_HUB_OFFLINE/CUTCORE_OFFLINE), nothing cached" if offline() else type(e).__name__
            result = (None, f"Hub repo `{repo}` not available ({why})")
        _hub_result[repo] = (*result, time.monotonic())
        return result


def held_out_rank(entry: ModelEntry) -> tuple:
    """Sort key: models with a held-out accuracy by it (higher first), then RMSE (lower first); the rest
    after them in their order (a stable sort)."""
    acc, rmse = entry.metrics.get("accuracy"), entry.metrics.get("rmse")
    if acc is None or not math.isfinite(acc):
        return (1, 0.0, 0.0)
    return (0, -acc, rmse if rmse is not None and math.isfinite(rmse) else math.inf)


def _trained_at(folder: Path) -> float:
    try:
        return (folder / WEIGHTS).stat().st_mtime
    except OSError:  # deleted meanwhile (another user's Delete): last
        return 0.0


def scan(use_hub: bool = True) -> Registry:
    """All models the app can offer now, with notes on what is missing."""
    entries: list[ModelEntry] = []
    seen: set[Path] = set()
    notes: list[str] = []

    def add(root: Path, source: str, newest_first: bool = False) -> int:
        n = 0
        folders = model_dirs(root)
        if newest_first:  # models trained here: the one just made comes first (their names do not sort by age)
            folders.sort(key=_trained_at, reverse=True)
        for folder in folders:
            real = folder.resolve()
            if real not in seen:
                seen.add(real)
                entries.append(read_entry(folder, source))
                n += 1
        return n

    wdir = weights_dir()
    n_ours = add(wdir, "ours")
    if n_ours == 0 and use_hub:
        snap, note = hub_snapshot()
        if snap is not None:
            n_ours = add(snap, "hub")
        if n_ours == 0:
            notes.append(  # README: no sat2map model ships yet; `export` is how a run becomes a model folder
                f"No models in `{wdir}`, and no pretrained sat2map model is published yet. {note}: the app "
                f"looks there when this folder is empty. For a run of your own: `python -m cutcore export RUN "
                f"{wdir}/NAME`; for a model now: the **SinCUT live** tab or `python -m cutcore official download ...`."
            )
    entries.sort(key=held_out_rank)  # our best model first: every list opens on it (stable otherwise)
    add(official_dir(), "official")
    add(live_dir(), "live", newest_first=True)
    have = {e.preset for e in entries if e.source in ("ours", "hub")}
    missing = [p for p in METHODS if p not in have]  # the satellite → map methods the project trains
    if entries and missing and n_ours:
        notes.append("Not available yet: " + ", ".join(f"`{p}`" for p in missing)
                     + f" (no model folder with that preset in `{wdir}`).")
    if not any(e.source == "official" for e in entries):
        notes.append(f"No converted official models in `{official_dir()}` "
                     "(`python -m cutcore official download ...`, or set `CUTCORE_MODELS`).")
    if not entries:
        notes.insert(0, "**Make one here in a few minutes:** the **SinCUT live** tab trains a model from one photo "
                        "and one artwork (CPU-quick preset: about 5 minutes on two CPU cores); it then appears in "
                        "every model list.")
    return Registry(entries, notes)


# --- the official satellite → map model, on request --------------------------------------------

OFFICIAL_SAT2MAP = "sat2map_cyclegan"  # the CycleGAN authors' aerial photo → Google Maps model (~45 MB)
_official_lock = threading.Lock()


def official_sat2map_dir() -> Path:
    return official_dir() / OFFICIAL_SAT2MAP


def offer_official_sat2map(reg: Registry) -> bool:
    """Whether the Translate tab offers to download the official satellite → map model: while no model of
    ours is here (a newcomer has no map model to try), it is not downloaded yet and the server may download."""
    from cutcore.official_urls import offline

    if offline():  # a first-screen button that could only fail
        return False
    mine = any(e.source in ("ours", "hub") for e in reg.entries)
    return not mine and official_sat2map_dir().resolve() not in {e.path.resolve() for e in reg.entries}


def install_official_sat2map(progress=None) -> ModelEntry:
    """Download and convert the official CycleGAN sat2map model into the official-model folder (once, whoever
    asks); its registry entry. `progress(done_bytes, total_bytes or None)`. UserError when it cannot be had."""
    from cutcore.official import download_official
    from cutcore.official_urls import DownloadError

    from .errors import UserError

    folder = official_sat2map_dir()
    with _official_lock:  # two users clicking at once download it once
        if not (folder / CONFIG).is_file():
            try:
                download_official(OFFICIAL_SAT2MAP, folder, progress=progress)
            except DownloadError as e:
                raise UserError(f"The official model could not be downloaded: {str(e).splitlines()[0]}") from e
    return read_entry(folder, "official")


# --- loaded models (a small LRU: loading is cheap, but not per click) ---------------------------

_cache: OrderedDict[tuple[str, float], object] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 3


def require(key: str | None) -> ModelEntry:
    """The registry entry for `key`, or UserError (one line) when no model of this server has that key.

    Keys arrive from the browser and from the web API: only what the model lists offer now is accepted."""
    from .errors import UserError

    if not key:
        raise UserError("Please choose a model first.")
    entry = scan().get(str(key))
    if entry is None:
        raise UserError(f"There is no model `{Path(str(key)).name}` on this server (any more); "
                        "press ↻ to refresh the model list.")
    return entry


def delete_live(key: str | None) -> ModelEntry:
    """Remove a model trained in the SinCUT tab (its folder, and from the load cache); UserError for any other."""
    from .errors import UserError

    if not key:
        raise UserError("Choose a live model to delete first.")
    entry = require(key)
    root = live_dir().resolve()
    folder = entry.path.resolve()
    if entry.source != "live" or root not in folder.parents:
        raise UserError(f"`{entry.name}` is not a model trained in this app ({entry.source}); only live models "
                        "can be deleted here.")
    shutil.rmtree(folder)
    with _cache_lock:
        for stamp in [s for s in _cache if Path(s[0]).resolve() == folder]:
            del _cache[stamp]
    log.info("deleted live model %s", folder)
    return entry


def load(key: str | ModelEntry):
    """The LoadedModel for a registry key (a folder) or an entry `require` gave, cached; UserError if it is
    unknown or cannot be loaded."""
    from .errors import UserError

    folder = (key if isinstance(key, ModelEntry) else require(key)).path
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise UserError(f"The model folder `{folder.name}` is gone; press ↻ to refresh the model list.")
    stamp = (str(folder), weights.stat().st_mtime)
    with _cache_lock:
        if stamp in _cache:
            _cache.move_to_end(stamp)
            return _cache[stamp]
        try:
            model = load_model(folder, device())
        except Exception as e:
            log.exception("cannot load model %s", folder)
            raise UserError(f"The model `{folder.name}` could not be loaded ({type(e).__name__}: {e}).") from None
        _cache[stamp] = model
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return model
