"""Where the official pretrained models live, and fetching them without ever hanging.

CUT/FastCUT: one tar for all six models (README of taesungp/contrastive-unpaired-translation),
holding `checkpoints/<run>_pretrained/latest_net_{G,F,D}.pth`. CycleGAN: one generator `.pth`
per direction (`scripts/download_cyclegan_model.sh` of junyanz/pytorch-CycleGAN-and-pix2pix).
No checksums are published for either, so a download is checked by its Content-Length and, after
it, by loading it as a plain state dict with the expected layout; its sha256 is recorded so a
user can pin it (`--sha256`) from then on.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .files import atomic_write

CUT_REPO = "taesungp/contrastive-unpaired-translation"
CYCLEGAN_REPO = "junyanz/pytorch-CycleGAN-and-pix2pix"
CUT_ARCHIVE_URL = "http://efrosgans.eecs.berkeley.edu/CUT/pretrained_models.tar"
CYCLEGAN_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{name}.pth"
DEFAULT_TIMEOUT = 15.0  # seconds per connect/read, not for the whole transfer
_OFFLINE_ENVS = ("CUTCORE_OFFLINE", "HF_HUB_OFFLINE")
ON_WORDS = ("1", "true", "yes", "on")  # what an on/off environment variable says for on, in any case
_CHUNK = 1 << 20

Method = Literal["cut", "fastcut", "cyclegan"]
Progress = Callable[[int, int | None], None]  # (bytes done, total or None)


class DownloadError(RuntimeError):
    """A download was not possible (offline, unreachable, truncated, checksum mismatch)."""


@dataclass(frozen=True)
class OfficialModel:
    name: str  # ours: <task>_<method>
    method: Method
    official_name: str  # the run name of the official repo (its checkpoints/ folder or zoo file)
    description: str

    @property
    def url(self) -> str:
        return CUT_ARCHIVE_URL if self.method != "cyclegan" else CYCLEGAN_URL.format(name=self.official_name)

    @property
    def repo(self) -> str:
        return CYCLEGAN_REPO if self.method == "cyclegan" else CUT_REPO

    @property
    def source(self) -> str:
        return f"official: {self.repo} {self.official_name}"


def _cut(task: str, description: str) -> list[OfficialModel]:
    return [OfficialModel(f"{task}_{m}", m, f"{task}_{m}_pretrained", description) for m in ("cut", "fastcut")]


def _cyclegan(zoo_name: str, description: str) -> OfficialModel:
    return OfficialModel(f"{zoo_name}_cyclegan", "cyclegan", zoo_name, description)


_MODELS = [
    *_cut("horse2zebra", "horse photos -> zebras"),
    *_cut("cat2dog", "cat faces -> dog faces (AFHQ)"),
    # The official runs used --direction BtoA on a dataset whose A is photos, B label maps.
    *_cut("cityscapes", "Cityscapes colour label maps -> street photos"),
    _cyclegan("apple2orange", "apples -> oranges"),
    _cyclegan("orange2apple", "oranges -> apples"),
    _cyclegan("summer2winter_yosemite", "Yosemite in summer -> in winter"),
    _cyclegan("winter2summer_yosemite", "Yosemite in winter -> in summer"),
    _cyclegan("horse2zebra", "horses -> zebras"),
    _cyclegan("zebra2horse", "zebras -> horses"),
    _cyclegan("monet2photo", "Monet paintings -> photos"),
    _cyclegan("style_monet", "photos -> paintings in Monet's style"),
    _cyclegan("style_cezanne", "photos -> paintings in Cezanne's style"),
    _cyclegan("style_ukiyoe", "photos -> Ukiyo-e prints"),
    _cyclegan("style_vangogh", "photos -> paintings in Van Gogh's style"),
    _cyclegan("sat2map", "aerial photos -> map renderings"),
    _cyclegan("map2sat", "map renderings -> aerial photos"),
    _cyclegan("cityscapes_photo2label", "street photos -> Cityscapes colour label maps"),
    _cyclegan("cityscapes_label2photo", "Cityscapes colour label maps -> street photos"),
    _cyclegan("facades_photo2label", "facade photos -> CMP facade label maps"),
    _cyclegan("facades_label2photo", "CMP facade label maps -> facade photos"),
    _cyclegan("iphone2dslr_flower", "iPhone flower photos -> DSLR-like shallow depth of field"),
]
OFFICIAL_MODELS: dict[str, OfficialModel] = {m.name: m for m in _MODELS}


def lookup(name: str) -> OfficialModel:
    """An official model by our name; the official run names (`..._pretrained`) are accepted too."""
    key = name.removesuffix("_pretrained")
    zoo = {m.official_name: m for m in _MODELS if m.method == "cyclegan"}
    found = OFFICIAL_MODELS.get(key) or zoo.get(key)
    if found is not None:
        return found
    raise ValueError(f"unknown official model {name!r}; `python -m cutcore official list` shows the known names")


def offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in ON_WORDS for k in _OFFLINE_ENVS)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _manual_hint(model: OfficialModel) -> str:
    return (f"Download {model.url} where you have network access, then run\n"
            f"  python -m cutcore official download {model.name} --file <the downloaded file>")


def download(url: str, dest: Path, timeout: float = DEFAULT_TIMEOUT, progress: Progress | None = None) -> str:
    """Stream `url` into `dest` (atomically); returns its sha256. Raises DownloadError, never hangs."""
    if offline():
        raise DownloadError(f"downloads are disabled ({' or '.join(f'{k}=1' for k in _OFFLINE_ENVS)} is set)")
    h = hashlib.sha256()

    def write(tmp: str) -> None:
        done = 0
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise DownloadError(f"{url}: truncated download ({done} of {total} bytes)")

    try:
        atomic_write(dest, write)
    except (urllib.error.URLError, OSError) as e:  # no network, DNS, refused, timeout, HTTP errors; a full disk
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"could not download {url}: {reason}") from e
    return h.hexdigest()


def fetch(
    model: OfficialModel, workdir: Path, file: Path | None = None, sha256: str | None = None,
    timeout: float = DEFAULT_TIMEOUT, progress: Progress | None = None,
) -> tuple[dict[str, Path], str]:
    """The official checkpoint files of `model` ({"G": path, "F": path?}) and the downloaded file's sha256.

    `file`: a copy of the download (the tar, or the zoo .pth) used instead of the network; when it
    does not exist yet it is downloaded there and kept (the CUT tar holds all six CUT models).
    """
    target = file if file is not None else workdir / Path(model.url).name
    try:
        if target.is_file():
            digest = sha256_file(target)
        else:
            digest = download(model.url, target, timeout, progress)
    except DownloadError as e:
        raise DownloadError(f"{e}\n{_manual_hint(model)}") from e
    if sha256 and digest != sha256.lower():
        raise DownloadError(f"{target}: sha256 {digest} does not match the expected {sha256}")
    if model.method == "cyclegan":
        return {"G": target}, digest
    return _extract_cut(target, model, workdir), digest


def _extract_cut(archive: Path, model: OfficialModel, workdir: Path) -> dict[str, Path]:
    """Copy `<run>/latest_net_{G,F}.pth` out of the CUT tar (members are read, never extracted by path)."""
    wanted = {"G": f"{model.official_name}/latest_net_G.pth", "F": f"{model.official_name}/latest_net_F.pth"}
    found: dict[str, Path] = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                role = next((r for r, suffix in wanted.items() if member.name.endswith(suffix)), None)
                if role is None or not member.isfile():
                    continue
                dest = workdir / model.official_name / Path(member.name).name  # the official file name, for the card
                dest.parent.mkdir(exist_ok=True)
                with tar.extractfile(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                found[role] = dest
    except (tarfile.TarError, OSError) as e:
        why = str(e).splitlines()[0].rstrip(":")  # tarfile lists every compression it tried, a line each
        raise ValueError(f"{archive}: not a readable tar archive ({why}); expected {CUT_ARCHIVE_URL} "
                         "(loose latest_net_G.pth files go to `official convert`)") from e
    if "G" not in found:
        raise ValueError(f"{archive}: no {wanted['G']} inside; expected the archive {CUT_ARCHIVE_URL}")
    return found


def official_models_dir(name: str | None = None) -> Path:
    """Where converted official models go: $CUTCORE_MODELS, else ~/.cache/cutcore/models (`name` below it)."""
    env = os.environ.get("CUTCORE_MODELS")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "cutcore" / "models"
    return root / name if name else root
