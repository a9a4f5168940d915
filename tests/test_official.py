"""Official checkpoints: key mapping, layout inference, refusals, conversion, download without network.

The "official" files are written here the way the official repos write them
(`torch.save(net.state_dict(), path)`), from tiny generators whose keys are spelled out below as
the reference's `nn.Sequential` indices, so no reference code is needed.
"""
from __future__ import annotations

import io
import json
import tarfile
import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from cutcore import cli, official_urls
from cutcore.model_folder import load_model
from cutcore.nets import PatchProjector, ResnetGenerator, ResnetGeneratorConfig
from cutcore.official import (
    OfficialCheckpointError,
    convert_official,
    download_official,
    load_official_generator,
    load_official_heads,
    official_models_dir,
)
from cutcore.official_files import read_state_dict
from cutcore.official_urls import DownloadError, lookup

NGF, BLOCKS = 4, 2
CUT = ResnetGeneratorConfig(ngf=NGF, n_blocks=BLOCKS)
CYCLEGAN = ResnetGeneratorConfig(ngf=NGF, n_blocks=BLOCKS, antialias_down=False, antialias_up=False)
LAYERS = [0, 4, 8, 12, 13]  # CUT's 0,4,8,12,16 cut down to 2 residual blocks


def _conv(i: int) -> list[str]:
    return [f"model.{i}.weight", f"model.{i}.bias"]


def _blocks(first: int, conv2: int) -> list[str]:
    return [f"model.{b}.conv_block.{c}.{p}" for b in range(first, first + BLOCKS) for c in (1, conv2)
            for p in ("weight", "bias")]


# The reference's layouts with 2 blocks: pad,conv,norm,relu | per down: conv,norm,relu(,blur) | blocks |
# per up: (blur,conv | convT),norm,relu | pad,conv,tanh. `filt` buffers are the blur kernels.
OFFICIAL_KEYS = {
    "cut": {*_conv(1), *_conv(4), "model.7.filt", *_conv(8), "model.11.filt", *_blocks(12, 5),
            "model.14.filt", *_conv(15), "model.18.filt", *_conv(19), *_conv(23)},
    "cyclegan_dropout": {*_conv(1), *_conv(4), *_conv(7), *_blocks(10, 6), *_conv(12), *_conv(15), *_conv(19)},
}


def _generator(cfg: ResnetGeneratorConfig, seed: int = 0) -> ResnetGenerator:
    torch.manual_seed(seed)
    g = ResnetGenerator(cfg)
    with torch.no_grad():  # non-zero biases, so a bias mapped to the wrong layer would show
        for p in g.parameters():
            p.normal_(0, 0.2)
    return g.eval()


def _save(state: dict, path: Path, **kw) -> Path:
    torch.save(state, path, **kw)
    return path


def _x(h: int = 20, w: int = 28) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1


# --- generators ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout, cfg", [
    ("cut", CUT),
    ("cyclegan_dropout", ResnetGeneratorConfig(ngf=NGF, n_blocks=BLOCKS, antialias_down=False, antialias_up=False,
                                               dropout=True)),
])
def test_official_key_layout_maps_one_to_one(layout, cfg, tmp_path):
    g = _generator(cfg)
    assert set(g.state_dict()) == OFFICIAL_KEYS[layout]
    loaded, inferred = load_official_generator(_save(g.state_dict(), tmp_path / "latest_net_G.pth"))
    assert inferred == cfg and not loaded.training
    for k, v in g.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


@pytest.mark.parametrize("cfg, prefix, legacy", [
    (CUT, "", False),
    (CYCLEGAN, "", False),
    (ResnetGeneratorConfig(ngf=NGF, n_blocks=BLOCKS, dropout=True), "", False),
    (ResnetGeneratorConfig(ngf=6, n_blocks=3, antialias_up=False), "", False),  # mixed: blur down, transposed up
    (ResnetGeneratorConfig(ngf=NGF, n_blocks=0), "", False),
    (CUT, "module.", False),  # saved from nn.DataParallel
    (CYCLEGAN, "", True),  # pre-1.6 file format, as in the CycleGAN zoo
], ids=["cut", "cyclegan", "dropout", "mixed-6ngf-3blocks", "no-blocks", "data-parallel", "legacy-format"])
def test_infers_the_variant_and_reproduces_outputs(cfg, prefix, legacy, tmp_path):
    g = _generator(cfg)
    state = {prefix + k: v for k, v in g.state_dict().items()}
    loaded, inferred = load_official_generator(
        _save(state, tmp_path / "g.pth", _use_new_zipfile_serialization=not legacy)
    )
    assert inferred == cfg
    with torch.no_grad():
        assert torch.equal(loaded(_x()), g(_x()))


def test_fp16_weights_and_legacy_instance_norm_stats(tmp_path):
    g = _generator(CYCLEGAN)
    state = {f"module.{k}": v.half() for k, v in g.state_dict().items()}  # as torch.save'd from a DataParallel
    # PyTorch < 0.4 saved running stats for InstanceNorm (model.2 is the first norm): dropped like the official loader.
    state |= {"module.model.2.running_mean": torch.zeros(NGF), "module.model.2.running_var": torch.ones(NGF)}
    loaded, inferred = load_official_generator(_save(state, tmp_path / "g.pth"), kind="cyclegan")
    assert inferred == CYCLEGAN
    assert all(v.dtype == torch.float32 for v in loaded.state_dict().values())
    with torch.no_grad():
        assert (loaded(_x()) - g(_x())).abs().max() < 2e-2  # fp16 weights


def test_official_shapes(tmp_path):
    state = read_state_dict(_save(_generator(CYCLEGAN).state_dict(), tmp_path / "g.pth"))
    assert state["model.12.weight"].shape == (4 * NGF, 2 * NGF, 3, 3)  # ConvTranspose2d: (in, out, k, k)
    assert state["model.1.weight"].shape == (NGF, 3, 7, 7) and state["model.19.weight"].shape == (3, NGF, 7, 7)


def test_kind_must_match_the_official_layout(tmp_path):
    path = _save(_generator(CYCLEGAN).state_dict(), tmp_path / "g.pth")
    with pytest.raises(OfficialCheckpointError, match="not the official cut layout"):
        load_official_generator(path, kind="cut")


@pytest.mark.parametrize("make, message", [
    (lambda: _generator(CUT), "pickled Python object .*ResnetGenerator"),
    (lambda: {"model.1.weight": torch.zeros(1), "cfg": CUT}, "pickled Python object .*ResnetGeneratorConfig"),
    (lambda: {"epoch": 3, "state_dict": _generator(CUT).state_dict()}, "not a plain state dict.*epoch"),
    (lambda: [torch.zeros(1)], "expected a state dict"),
], ids=["whole-module", "object-inside", "nested", "list"])
def test_refuses_files_that_are_not_plain_state_dicts(make, message, tmp_path):
    path = _save(make(), tmp_path / "suspicious.pth")
    with pytest.raises(OfficialCheckpointError, match=f"suspicious.pth: .*{message}"):
        load_official_generator(path)


def test_refuses_garbage_and_missing_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"<html>not found</html>")
    with pytest.raises(OfficialCheckpointError, match="junk.pth: not a PyTorch state-dict file"):
        read_state_dict(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        read_state_dict(tmp_path / "nothing.pth")
    (tmp_path / "notes.txt").write_text("hello")  # torch.load raises a bare KeyError on it
    with pytest.raises(OfficialCheckpointError, match=r"notes.txt: not a PyTorch state-dict file \(KeyError: "):
        read_state_dict(tmp_path / "notes.txt")


def _unet_state() -> dict[str, torch.Tensor]:
    return {"model.model.0.weight": torch.zeros(4, 3, 4, 4), "model.model.1.model.1.weight": torch.zeros(8, 4, 4, 4)}


def _batchnorm_state() -> dict[str, torch.Tensor]:
    state = dict(_generator(CYCLEGAN).state_dict())
    state |= {"model.2.weight": torch.ones(NGF), "model.2.bias": torch.zeros(NGF),
              "model.2.running_mean": torch.zeros(NGF), "model.2.running_var": torch.ones(NGF)}
    return state


def _truncated_state() -> dict[str, torch.Tensor]:
    state = dict(_generator(CUT).state_dict())
    del state["model.8.bias"]
    return state


@pytest.mark.parametrize("make, message", [
    (_unet_state, "U-Net generator"),
    (_batchnorm_state, "unexpected .*model.2.*batch norm"),
    (_truncated_state, r"missing \['model.8.bias'\]"),
    (lambda: {"conv.weight": torch.zeros(1)}, "not an official ResNet generator"),
], ids=["unet", "batchnorm", "truncated", "other"])
def test_refuses_unknown_layouts(make, message, tmp_path):
    with pytest.raises(OfficialCheckpointError, match=message):
        load_official_generator(_save(make(), tmp_path / "g.pth"))


# --- heads --------------------------------------------------------------------------------------


def _heads(g: ResnetGenerator, layers: list[int] = LAYERS, dim: int = 8) -> PatchProjector:
    torch.manual_seed(2)
    heads = PatchProjector.for_features(g.encode(_x(), layers), dim)
    with torch.no_grad():
        for p in heads.parameters():
            p.normal_(0, 0.2)
    return heads.eval()


def test_heads_load_and_embed_identically(tmp_path):
    g = _generator(CUT)
    heads = _heads(g)
    assert {k.split(".")[0] for k in heads.state_dict()} == {f"mlp_{i}" for i in range(len(LAYERS))}
    loaded = load_official_heads(_save(heads.state_dict(), tmp_path / "latest_net_F.pth"))
    assert loaded.channels == [3, 2 * NGF, 4 * NGF, 4 * NGF, 4 * NGF] and loaded.dim == 8
    feats = g.encode(_x(), LAYERS)
    ids = [torch.randperm(f.shape[2] * f.shape[3])[:16] for f in feats]
    with torch.no_grad():
        for a, b in zip(heads(feats, 16, ids)[0], loaded(feats, 16, ids)[0], strict=True):
            assert torch.equal(a, b)


def test_heads_refusals(tmp_path):
    with pytest.raises(OfficialCheckpointError, match="empty state dict"):
        load_official_heads(_save({}, tmp_path / "empty.pth"))
    with pytest.raises(OfficialCheckpointError, match="g_as_f.pth: not PatchNCE heads .*PatchSampleF's heads"):
        load_official_heads(_save(_generator(CUT).state_dict(), tmp_path / "g_as_f.pth"))


# --- conversion ---------------------------------------------------------------------------------


def test_convert_cut_folder_loads_in_translate(tmp_path):
    g = _generator(CUT)
    g_path = _save(g.state_dict(), tmp_path / "latest_net_G.pth")
    f_path = _save(_heads(g).state_dict(), tmp_path / "latest_net_F.pth")
    out = convert_official(g_path, tmp_path / "model", heads_path=f_path, name="tiny_cut",
                           source="official: test", nce_layers=LAYERS)
    model = load_model(out, "cpu")
    with torch.no_grad():
        assert torch.equal(model.generator(_x()), g(_x()))
    assert model.heads is not None and model.nce_layers == LAYERS
    config = json.loads((out / "config.json").read_text())
    assert config["name"] == "tiny_cut" and config["source"] == "official: test" and config["preset"] == "cut"
    assert config["model"]["generator"] == {**CUT.__dict__} and config["model"]["head_dim"] == 8
    card = (out / "README.md").read_text()
    assert "official: test" in card and "Converted" in card and "Licence" in card and "sha256" in card


def test_convert_cyclegan_pair_fp16(tmp_path):
    g_a, g_b = _generator(CYCLEGAN, 0), _generator(CYCLEGAN, 1)
    out = convert_official(_save(g_a.state_dict(), tmp_path / "latest_net_G_A.pth"), tmp_path / "cg",
                           generator_ba_path=_save(g_b.state_dict(), tmp_path / "latest_net_G_B.pth"), precision="fp16")
    tensors = load_file(str(out / "model.safetensors"))
    assert {k.split(".")[0] for k in tensors} == {"G", "G_BA"}
    assert all(v.dtype == torch.float16 for v in tensors.values())
    for direction, g in (("AtoB", g_a), ("BtoA", g_b)):
        with torch.no_grad():
            assert (load_model(out, "cpu", direction).generator(_x()) - g(_x())).abs().max() < 2e-2
    assert json.loads((out / "config.json").read_text())["model"]["kind"] == "cyclegan"


def test_convert_refuses_mismatched_parts(tmp_path):
    g = _generator(CUT)
    g_path = _save(g.state_dict(), tmp_path / "g.pth")
    with pytest.raises(OfficialCheckpointError, match="both generators of a model must match"):
        b_path = _save(_generator(CYCLEGAN).state_dict(), tmp_path / "b.pth")
        convert_official(g_path, tmp_path / "x", generator_ba_path=b_path)
    f_path = _save(_heads(g).state_dict(), tmp_path / "f.pth")
    with pytest.raises(OfficialCheckpointError, match="nce_layers"):
        convert_official(g_path, tmp_path / "x", heads_path=f_path, nce_layers=[0, 4, 8, 12, 20])
    with pytest.raises(OfficialCheckpointError, match="nce_layers"):
        convert_official(g_path, tmp_path / "x", heads_path=f_path, nce_layers=[0, 1, 8, 12, 13])
    assert not (tmp_path / "x").exists()


# --- download and CLI ---------------------------------------------------------------------------


def test_models_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("CUTCORE_MODELS", raising=False)
    assert official_models_dir("a") == Path.home() / ".cache" / "cutcore" / "models" / "a"
    monkeypatch.setenv("CUTCORE_MODELS", str(tmp_path))
    assert official_models_dir() == tmp_path and official_models_dir("b") == tmp_path / "b"


def test_registry_names_and_urls():
    assert lookup("horse2zebra_cut_pretrained") is lookup("horse2zebra_cut")
    assert lookup("sat2map").url == "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/sat2map.pth"
    assert lookup("map2sat_cyclegan").method == "cyclegan"
    assert lookup("cityscapes_fastcut").url == "http://efrosgans.eecs.berkeley.edu/CUT/pretrained_models.tar"
    with pytest.raises(ValueError, match="official list"):
        lookup("nope")


def _official(argv: list[str], monkeypatch) -> int:
    """`python -m cutcore official ...` in-process."""
    return cli.main(["official", *argv])


@pytest.mark.parametrize("env", ["CUTCORE_OFFLINE", "HF_HUB_OFFLINE"])
def test_download_offline_is_a_clear_exit_2(env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(env, "1")
    monkeypatch.setattr(official_urls.urllib.request, "urlopen", lambda *a, **k: pytest.fail("network used"))
    assert _official(["download", "horse2zebra_cut", "--out", str(tmp_path / "m")], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "downloads are disabled" in err and env in err and "--file" in err
    assert not (tmp_path / "m").exists()


def test_download_unreachable_is_a_clear_exit_2(monkeypatch, tmp_path, capsys):
    for env in ("CUTCORE_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(env, raising=False)
    seen = {}

    def no_network(url, timeout):
        seen["timeout"] = timeout
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(official_urls.urllib.request, "urlopen", no_network)
    assert _official(["download", "sat2map", "--out", str(tmp_path / "m"), "--timeout", "3"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "could not download http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/sat2map.pth" in err
    assert "Name or service not known" in err and seen["timeout"] == 3


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, length: int):
        super().__init__(data)
        self.headers = {"Content-Length": str(length)}


def test_download_checks_length_and_sha256(monkeypatch, tmp_path):
    monkeypatch.delenv("CUTCORE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(official_urls.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(b"abc", 10))
    with pytest.raises(DownloadError, match="truncated"):
        official_urls.download("http://x/y.pth", tmp_path / "y.pth")
    assert list(tmp_path.iterdir()) == []  # no partial file left
    from cutcore.files import UMASK

    monkeypatch.setattr(official_urls.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(b"abc", 3))
    official_urls.download("http://x/y.pth", tmp_path / "y.pth")  # kept (--file): readable as open() makes files
    assert (tmp_path / "y.pth").read_bytes() == b"abc" and (tmp_path / "y.pth").stat().st_mode & 0o777 == 0o666 & ~UMASK
    (tmp_path / "y.pth").unlink()
    path = _save(_generator(CYCLEGAN).state_dict(), tmp_path / "sat2map.pth")
    with pytest.raises(DownloadError, match="does not match"):
        download_official("sat2map", tmp_path / "m", file=path, sha256="0" * 64)


def test_download_from_local_files_converts(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CUTCORE_OFFLINE", "1")  # --file needs no network
    monkeypatch.setenv("CUTCORE_MODELS", str(tmp_path / "models"))
    g = _generator(CUT)
    members = {"checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth": g.state_dict(),
               "checkpoints/horse2zebra_cut_pretrained/latest_net_F.pth": _heads(g, [0, 4, 8, 12, 13]).state_dict(),
               "checkpoints/cat2dog_cut_pretrained/latest_net_G.pth": _generator(CUT, 5).state_dict()}
    archive = tmp_path / "pretrained_models.tar"
    with tarfile.open(archive, "w") as tar:
        for name, state in members.items():
            buf = io.BytesIO()
            torch.save(state, buf)
            info = tarfile.TarInfo(name)
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
    with pytest.raises(OfficialCheckpointError, match="nce_layers"):  # 2 blocks: default layer 16 does not exist
        download_official("horse2zebra_cut", file=archive)
    out = download_official("cat2dog_cut", file=archive)
    assert out == tmp_path / "models" / "cat2dog_cut"
    config = json.loads((out / "config.json").read_text())
    assert config["source"] == "official: taesungp/contrastive-unpaired-translation cat2dog_cut_pretrained"
    assert load_model(out, "cpu").heads is None
    card = (out / "README.md").read_text()
    assert "`latest_net_G.pth`" in card and "cat faces -> dog faces" in card
    (tmp_path / "junk.tar").write_text("junk")  # one line saying so (tarfile's own message lists four methods)
    assert _official(["download", "cat2dog_cut", "--file", str(tmp_path / "junk.tar"), "--out", str(tmp_path / "j")],
                     monkeypatch) == 2
    err = capsys.readouterr().err
    assert "junk.tar: not a readable tar archive (file could not be opened successfully); expected" in err
    assert len(err.strip().splitlines()) == 1
    assert "Downloaded from http://efrosgans.eecs.berkeley.edu/CUT/pretrained_models.tar" in card
    zoo = _save(_generator(CYCLEGAN).state_dict(), tmp_path / "map2sat.pth")
    assert _official(["download", "map2sat", "--file", str(zoo), "--fp16"], monkeypatch) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "models" / "map2sat_cyclegan")
    with pytest.raises(OfficialCheckpointError, match="not the official cyclegan layout"):
        download_official("sat2map", file=_save(g.state_dict(), tmp_path / "sat2map.pth"))


def test_cli_convert_and_list(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CUTCORE_MODELS", str(tmp_path / "models"))
    assert _official(["list"], monkeypatch) == 0
    listed = capsys.readouterr().out.splitlines()[1:]  # nothing converted yet: no legend for a mark not shown
    assert "already converted" not in "".join(listed)
    assert len({line.index(" cyclegan ") for line in listed if " cyclegan " in line}) == 1  # one column
    g_path = _save(_generator(CYCLEGAN).state_dict(), tmp_path / "latest_net_G.pth")
    assert _official(["convert", "--generator", str(g_path), "--name", "sat2map_cyclegan"], monkeypatch) == 0
    assert (tmp_path / "models" / "sat2map_cyclegan" / "model.safetensors").is_file()
    assert _official(["list"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "* sat2map_cyclegan" in out and "horse2zebra_fastcut" in out and str(tmp_path / "models") in out
    bad = _save(nn.Linear(2, 2), tmp_path / "module.pth")
    assert _official(["convert", "--generator", str(bad), "--out", str(tmp_path / "x")], monkeypatch) == 2
    assert "module.pth: refused" in capsys.readouterr().err


# --- a generator file used directly ---------------------------------------------------------------

CUT_9 = ResnetGeneratorConfig(ngf=NGF, n_blocks=9)  # CUT's default layers 0,4,8,12,16 exist in it


def _official_cut_files(folder: Path, prefix: str = "latest") -> tuple[ResnetGenerator, PatchProjector, Path]:
    """`<prefix>_net_G.pth` and `<prefix>_net_F.pth` as the official CUT repo writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    g = _generator(CUT_9)
    heads = _heads(g, [0, 4, 8, 12, 16])
    _save(heads.state_dict(), folder / f"{prefix}_net_F.pth")
    return g, heads, _save(g.state_dict(), folder / f"{prefix}_net_G.pth")


def test_translate_takes_an_official_generator_file(tmp_path, capsys):
    """Issue 16.7: `translate --model latest_net_G.pth` failed with "no model.safetensors here"."""
    from PIL import Image

    from cutcore.imageio import to_pil

    g, heads, g_path = _official_cut_files(tmp_path / "ckpt")
    to_pil(_x(24, 32)[0]).save(tmp_path / "tile.png")
    assert cli.main(["translate", "--model", str(g_path), "--input", str(tmp_path / "tile.png"),
                     "--output", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "out" / "tile.png")
    # The same pixels as the converted folder gives.
    folder = convert_official(g_path, tmp_path / "converted", heads_path=tmp_path / "ckpt" / "latest_net_F.pth")
    assert cli.main(["translate", "--model", str(folder), "--input", str(tmp_path / "tile.png"),
                     "--output", str(tmp_path / "out_converted"), "--device", "cpu"]) == 0
    direct, converted = Image.open(tmp_path / "out" / "tile.png"), Image.open(tmp_path / "out_converted" / "tile.png")
    assert direct.size == (32, 24) and direct.tobytes() == converted.tobytes()
    # Loaded as convert would: the generator's function, the heads beside it, the method's config.
    model = load_model(g_path, "cpu")
    with torch.no_grad():
        assert torch.equal(model.generator(_x()), g(_x()))
        feats = g.encode(_x(), [0, 4, 8, 12, 16])
        for a, b in zip(model.heads(feats, 0)[0], heads(feats, 0)[0], strict=True):
            assert torch.equal(a, b)
    assert model.nce_layers == [0, 4, 8, 12, 16] and model.path == g_path
    assert model.config.preset == "cut" and model.config.run.model.generator == CUT_9
    assert model.config.to_json() == {**json.loads((folder / "config.json").read_text()),
                                      "name": "latest_net_G", "source": "official: latest_net_G.pth"}


def test_official_file_without_fitting_heads_and_cyclegan_directions(tmp_path):
    g = _generator(CUT)  # 2 blocks: heads for CUT's layers 0,4,8,12,16 cannot fit
    g_path = _save(g.state_dict(), tmp_path / "5_net_G.pth")
    _save(_heads(g).state_dict(), tmp_path / "5_net_F.pth")
    model = load_model(g_path, "cpu")
    assert model.heads is None and model.config.preset == "cut"
    with pytest.raises(ValueError, match="one way only"):
        load_model(g_path, "cpu", "BtoA")
    g_a, g_b = _generator(CYCLEGAN, 0), _generator(CYCLEGAN, 1)
    a_path = _save(g_a.state_dict(), tmp_path / "latest_net_G_A.pth")
    with pytest.raises(FileNotFoundError, match="latest_net_G_B.pth"):
        load_model(a_path, "cpu", "BtoA")
    b_path = _save(g_b.state_dict(), tmp_path / "latest_net_G_B.pth")
    for path, direction, want in ((a_path, "AtoB", g_a), (a_path, "BtoA", g_b), (b_path, "AtoB", g_b),
                                  (b_path, "BtoA", g_a)):
        model = load_model(path, "cpu", direction)
        assert model.config.preset == "cyclegan" and model.heads is None
        with torch.no_grad():
            assert torch.equal(model.generator(_x()), want(_x())), (path.name, direction)


class _Payload:
    def __reduce__(self):  # would run on unpickling
        import os

        return os.mkdir, ("PWNED",)


def test_translate_refuses_a_pickled_object_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = _save({"model.1.weight": torch.zeros(1), "x": _Payload()}, tmp_path / "latest_net_G.pth")
    (tmp_path / "junk.pth").write_bytes(b"<html>not found</html>")
    for path, message in ((bad, "refused: it contains a pickled Python object (posix.mkdir)"),
                          (tmp_path / "junk.pth", "not a PyTorch")):
        assert cli.main(["translate", "--model", str(path), "--input", str(tmp_path), "--output",
                         str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "PWNED").exists()
    # A folder's own files stand for the folder.
    folder = convert_official(_save(_generator(CUT).state_dict(), tmp_path / "g.pth"), tmp_path / "m")
    by_file = [load_model(folder / name, "cpu").path for name in ("model.safetensors", "config.json")]
    assert by_file == [folder, folder]
