"""Training: gradients reach every network, PatchNCE semantics, learning, checkpoints, exact resume, LR."""
from __future__ import annotations

import contextlib
import copy
import json
import math
import pickle
import re
import shutil
import signal
import struct
import types
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from helpers import ComputedDtypes, make_unpaired, tiny_run_config

from cutcore.checkpoint import load_tensors, read_json
from cutcore.config import RunConfig, from_dict, preset
from cutcore.data import UnpairedDataset
from cutcore.losses import gan_loss
from cutcore.model_folder import load_model
from cutcore.models import CUTModel, CycleGANModel, build_model
from cutcore.train import Trainer, checkpoint_dirs, lr_factor, read_run_config, resume, train

pytestmark = pytest.mark.usefixtures("one_thread")

CKPT_FILES = {"model.safetensors", "training.safetensors", "config.json", "state.json"}


def _model(preset_name: str, seed: int = 0, precision: str = "fp32", **model_overrides):
    cfg = tiny_run_config(preset_name, Path("unused"))
    for k, v in model_overrides.items():
        setattr(cfg.model, k, v)
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    model.configure_training(cfg.train.lr, cfg.train.beta1, cfg.train.beta2, precision)
    return model


def _step(model, real_a, real_b, seed=0) -> dict[str, float]:
    return {k: float(v) for k, v in model.train_step(real_a, real_b, torch.Generator().manual_seed(seed)).items()}


def _batch(n=1, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1, torch.rand(n, 3, size, size, generator=g) * 2 - 1


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _assert_trained(name, module, before):
    for k, p in module.named_parameters():
        assert p.grad is not None, f"{name}.{k} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}.{k}"
        if p.dim() > 1:  # weights; biases in front of instance norm have (numerically) zero gradient
            assert p.grad.abs().sum() > 0, f"{name}.{k} has an all-zero gradient"
            assert not torch.equal(p.detach(), before[k]), f"{name}.{k} did not change"


# --- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset_name", ["cut", "fastcut", "cut-focal", "put"])
def test_cut_step_updates_g_f_and_d(preset_name):
    model = _model(preset_name)
    assert isinstance(model, CUTModel)
    before = {n: _snapshot(m) for n, m in (("G", model.G), ("F", model.F), ("D", model.D))}
    real_a, real_b = _batch(2)
    logs = _step(model, real_a, real_b, seed=0)
    expected_keys = {"D", "G_GAN", "NCE", "G"} | ({"NCE_Y"} if model.cfg.nce_idt else set())
    assert set(logs) == expected_keys
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    for name, module in (("G", model.G), ("F", model.F), ("D", model.D)):
        _assert_trained(name, module, before[name])


def test_cut_without_nce_leaves_heads_alone():
    model = _model("cut", lambda_nce=0.0)
    before = _snapshot(model.F)
    logs = _step(model, *_batch(1), seed=0)
    assert "NCE" not in logs
    assert all(p.grad is None for p in model.F.parameters())
    assert all(torch.equal(p, before[k]) for k, p in model.F.named_parameters())


@pytest.mark.parametrize("preset_name", ["cut", "fastcut"])
def test_l1_identity_term_is_lambda_times_mean_abs_error_of_g_on_b(preset_name):
    model = _model(preset_name, lambda_l1_idt=3.0, flip_equivariance=False)  # G sees B as given
    real_a, real_b = _batch(2)
    with torch.no_grad():  # G in train mode, as in the step: same instance-norm statistics
        expected = 3.0 * (model.G(torch.cat([real_a, real_b]))[2:] - real_b).abs().mean().item()
    logs = _step(model, real_a, real_b, seed=0)
    assert logs["idt"] == pytest.approx(expected, rel=1e-5)
    assert ("NCE_Y" in logs) == (preset_name == "cut")  # FastCUT: G sees B for the L1 term only
    assert logs["G"] == pytest.approx(logs["G_GAN"] + logs["idt"] + (
        0.5 * (logs["NCE"] + logs["NCE_Y"]) if preset_name == "cut" else logs["NCE"]), rel=1e-5)


def test_l1_identity_under_a_flip_compares_the_flipped_image_with_its_translation():
    model = _model("fastcut", lambda_l1_idt=2.0)  # flip equivariance on
    seed = next(s for s in range(100) if torch.rand((), generator=torch.Generator().manual_seed(s)) < 0.5)
    real_a, _ = _batch(1)
    real_b = torch.cat([torch.full((1, 3, 24, 12), -0.9), torch.full((1, 3, 24, 12), 0.9)], dim=3)  # a flip shows
    with torch.no_grad():
        out = model.G(torch.cat([real_a, real_b]).flip(3))
        flipped = 2.0 * (out[1:] - real_b.flip(3)).abs().mean().item()
        unflipped = 2.0 * (out[1:] - real_b).abs().mean().item()
    logs = _step(model, real_a, real_b, seed=seed)
    assert logs["idt"] == pytest.approx(flipped, rel=1e-5) and abs(flipped - unflipped) > 1e-3


def test_cyclegan_step_updates_all_four_networks():
    model = _model("cyclegan")
    assert isinstance(model, CycleGANModel)
    nets = {"G_A": model.G_A, "G_B": model.G_B, "D_A": model.D_A, "D_B": model.D_B}
    before = {n: _snapshot(m) for n, m in nets.items()}
    logs = _step(model, *_batch(2), seed=0)
    assert set(logs) == {"G", "G_GAN", "cycle", "idt", "D"}
    for name, module in nets.items():
        _assert_trained(name, module, before[name])
    assert len(model.pools["A"].images) == len(model.pools["B"].images) == 2


@pytest.mark.parametrize("preset_name", ["cut", "cyclegan"])
def test_bf16_step_runs_and_keeps_fp32_weights(preset_name):
    model = _model(preset_name, precision="bf16")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with ComputedDtypes(model) as computed:
        logs = _step(model, *_batch(1))
    assert torch.bfloat16 in computed  # the step ran under bf16 autocast
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


# --- PatchNCE semantics (as the reference: keys from the input, queries from the output) -------------


def _reference_nce(model: CUTModel, src: torch.Tensor, fake: torch.Tensor, flipped: bool, rng: torch.Generator):
    c = model.cfg
    from cutcore.losses import patch_nce_loss

    feat_q = model.G.encode(fake, c.nce_layers)
    if flipped:
        feat_q = [f.flip(3) for f in feat_q]
    feat_k = model.G.encode(src, c.nce_layers)
    keys, ids = model.F(feat_k, c.num_patches, generator=rng)
    queries, _ = model.F(feat_q, c.num_patches, ids)
    total = sum(patch_nce_loss(q, k, src.shape[0], c.nce).mean() * c.lambda_nce
                for q, k in zip(queries, keys, strict=True))
    return total / len(c.nce_layers)


def _seed_with_flip(want: bool) -> int:
    return next(s for s in range(100)
                if (torch.rand((), generator=torch.Generator().manual_seed(s)).item() < 0.5) == want)


@pytest.mark.parametrize("preset_name,want_flip", [("cut", False), ("fastcut", False), ("fastcut", True)])
def test_nce_matches_reference_formulation(preset_name, want_flip):
    model = _model(preset_name)
    real_a, real_b = _batch(2, seed=3)
    ref_model = copy.deepcopy(model)  # the D step comes first and does not change G or F
    seed = _seed_with_flip(want_flip)
    logs = _step(model, real_a, real_b, seed=seed)
    rng = torch.Generator().manual_seed(seed)
    flipped = model.cfg.flip_equivariance and torch.rand((), generator=rng).item() < 0.5
    assert flipped == want_flip
    with torch.no_grad():
        src = real_a.flip(3) if flipped else real_a
        fake_b = ref_model.G(src)
        nce = _reference_nce(ref_model, real_a, fake_b, flipped, rng)
        assert logs["NCE"] == pytest.approx(nce.item(), rel=1e-4)
        if model.cfg.nce_idt:
            idt_b = ref_model.G(real_b.flip(3) if flipped else real_b)
            nce_y = _reference_nce(ref_model, real_b, idt_b, flipped, rng)
            assert logs["NCE_Y"] == pytest.approx(nce_y.item(), rel=1e-4)
        else:
            assert "NCE_Y" not in logs
        # D (before its step) saw G's fake as fake and the real B image as real ...
        mode = model.cfg.gan_mode
        d_loss = 0.5 * (gan_loss(ref_model.D(fake_b), False, mode) + gan_loss(ref_model.D(real_b), True, mode))
        assert logs["D"] == pytest.approx(d_loss.item(), rel=1e-4)
        # ... and G was then scored by the updated D.
        g_gan = gan_loss(model.D(fake_b), True, mode, for_discriminator=False) * model.cfg.lambda_gan
        assert logs["G_GAN"] == pytest.approx(g_gan.item(), rel=1e-4)


def test_cyclegan_losses_match_definitions():
    model = _model("cyclegan")
    ref = copy.deepcopy(model)
    real_a, real_b = _batch(2, seed=4)
    logs = _step(model, real_a, real_b, seed=0)
    c, mode = model.cfg, model.cfg.gan_mode
    l1 = torch.nn.functional.l1_loss
    with torch.no_grad():
        fake_b, fake_a = ref.G_A(real_a), ref.G_B(real_b)  # G_A: A -> B, G_B: B -> A
        cycle = c.lambda_cycle * (l1(ref.G_B(fake_b), real_a) + l1(ref.G_A(fake_a), real_b))
        idt = c.lambda_cycle * c.lambda_identity * (l1(ref.G_A(real_b), real_b) + l1(ref.G_B(real_a), real_a))
        # D_A judges domain B, D_B judges domain A (the reference's naming); G is updated first.
        g_gan = gan_loss(ref.D_A(fake_b), True, mode, False) + gan_loss(ref.D_B(fake_a), True, mode, False)
        d = 0.5 * (gan_loss(ref.D_A(fake_b), False, mode) + gan_loss(ref.D_A(real_b), True, mode)) + \
            0.5 * (gan_loss(ref.D_B(fake_a), False, mode) + gan_loss(ref.D_B(real_a), True, mode))
    assert logs["cycle"] == pytest.approx(cycle.item(), rel=1e-4)
    assert logs["idt"] == pytest.approx(idt.item(), rel=1e-4)
    assert logs["G_GAN"] == pytest.approx(g_gan.item(), rel=1e-4)
    assert logs["G"] == pytest.approx((g_gan + cycle + idt).item(), rel=1e-4)
    assert logs["D"] == pytest.approx(d.item(), rel=1e-4)  # the pool (size 50) still returns the new fakes


# --- a tiny run learns ------------------------------------------------------------------------------


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_patchnce_falls_in_a_tiny_run(session_unpaired, tmp_path):
    patches = 32
    cfg = tiny_run_config("cut", session_unpaired, ngf=8, n_blocks=2, load=40, crop=32, max_steps=40,
                          num_patches=patches, head_dim=32)
    cfg.model.lambda_gan = 0.1
    cfg.train.lr = 2e-3
    ckpt = train(cfg, tmp_path / "run")
    nce = [r["NCE"] for r in _log(tmp_path / "run")]
    assert len(nce) == 40
    first, last = sum(nce[:5]) / 5, sum(nce[-5:]) / 5
    # Falls clearly, and below chance: log(P) is the loss of a query that cannot tell its positive.
    assert last < first - 0.5, (first, last, nce)
    assert last < math.log(patches) - 0.3, (last, nce)
    assert ckpt == checkpoint_dirs(tmp_path / "run")[-1]
    assert (tmp_path / "run" / "samples" / "step_00000040.png").is_file()


# --- checkpoints ----------------------------------------------------------------------------------


def _fit(cfg, out) -> tuple[Trainer, Path]:
    trainer = Trainer(cfg, out)
    return trainer, trainer.fit()


def test_checkpoint_round_trip(session_unpaired, tmp_path):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=2)
    trainer, ckpt = _fit(cfg, tmp_path / "run")
    assert {p.name for p in ckpt.iterdir()} == CKPT_FILES
    loaded = load_model(ckpt, "cpu")
    x = torch.rand(1, 3, 28, 20) * 2 - 1
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded.generator(x), trainer.model.G(x))
    for (k1, v1), (k2, v2) in zip(loaded.heads.state_dict().items(), trainer.model.F.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(v1, v2)
    assert loaded.nce_layers == cfg.model.nce_layers
    # The run folder resolves to its newest checkpoint.
    assert load_model(tmp_path / "run", "cpu").path == ckpt
    # The saved config is the run's config, and how new inputs meet the model: 48 px images trained on
    # 32² crops at load 40 (the whole image up to jitter) are translated at 32, so 48 px inputs at 2/3.
    assert read_run_config(ckpt / "config.json") == cfg
    assert read_json(ckpt / "config.json")["inference"] == {"scale": pytest.approx(32 / 48), "size": 32}
    assert loaded.input_scale == pytest.approx(32 / 48)


def test_cyclegan_checkpoint_has_both_generators(session_unpaired, tmp_path):
    cfg = tiny_run_config("cyclegan", session_unpaired, max_steps=1)
    trainer, ckpt = _fit(cfg, tmp_path / "run")
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.equal(load_model(ckpt, "cpu", "AtoB").generator(x), trainer.model.G_A(x))
        assert torch.equal(load_model(ckpt, "cpu", "BtoA").generator(x), trainer.model.G_B(x))
    assert load_model(ckpt, "cpu").heads is None


def _all_tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    return {**load_tensors(ckpt / "model.safetensors"), **load_tensors(ckpt / "training.safetensors")}


# channels_last "on" is the layout CUDA trains in ("auto"): the optimizer's moments must come back in it.
@pytest.mark.parametrize("preset_name,total,channels_last", [
    ("cut", 4, "off"), ("fastcut", 4, "off"), ("cyclegan", 6, "off"), ("cut", 4, "on"), ("cyclegan", 6, "on")])
def test_resume_is_bit_identical(session_unpaired, tmp_path, preset_name, total, channels_last):
    def cfg(max_steps):
        c = tiny_run_config(preset_name, session_unpaired, max_steps=max_steps)
        c.model.pool_size = 2  # CycleGAN: the pool fills and starts swapping before the resume point
        c.runtime.channels_last = channels_last
        return c

    straight = train(cfg(total), tmp_path / "straight")
    half = train(cfg(total // 2), tmp_path / "split")
    assert half.name == f"step_{total // 2:08d}"
    resumed = resume(tmp_path / "split", {"runtime.max_steps": total})
    assert resumed.name == straight.name == f"step_{total:08d}"
    a, b = _all_tensors(straight), _all_tensors(resumed)
    assert set(a) == set(b)
    if preset_name == "cyclegan":
        assert {"pool.A", "pool.B"} <= set(a) and a["pool.A"].shape[0] == 2
    mismatched = [k for k in a if not torch.equal(a[k], b[k])]
    assert not mismatched, mismatched
    assert read_json(straight / "state.json") == read_json(resumed / "state.json")
    # The resumed log continues where the first part stopped, with identical losses.
    log_a, log_b = _log(tmp_path / "straight"), _log(tmp_path / "split")
    assert [r["step"] for r in log_b] == list(range(1, total + 1))
    drop = ("sec_per_iter",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in log_a] == \
           [{k: v for k, v in r.items() if k not in drop} for r in log_b]


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        resume(tmp_path / "empty")


def test_a_run_configured_from_python_takes_a_path_and_a_number_of_seconds(session_unpaired, tmp_path):
    """A Path as data root failed when config.json was written (after all the setup); a budget of 600 failed in
    the duration parser."""
    cfg = tiny_run_config("cut", session_unpaired, max_steps=2)
    cfg.data.root, cfg.runtime.time_budget = Path(cfg.data.root), 600
    assert train(cfg, tmp_path / "run").name == "step_00000002"
    saved = read_json(tmp_path / "run" / "config.json")
    assert (saved["data"]["root"], saved["runtime"]["time_budget"]) == (str(cfg.data.root), 600)


def test_training_leaves_the_callers_config_and_random_state_as_given(session_unpaired, tmp_path):
    """train() resolves "auto" precision for the run it saves, not in the config the caller holds; it seeds the
    networks' initialisation without reseeding torch's global generator."""
    cfg = tiny_run_config("cut", session_unpaired, max_steps=1)
    cfg.train.precision = "auto"
    before, state = asdict(cfg), torch.get_rng_state()
    train(cfg, tmp_path / "run")
    assert asdict(cfg) == before and torch.equal(torch.get_rng_state(), state)
    assert read_json(tmp_path / "run" / "config.json")["train"]["precision"] in ("fp32", "bf16")


def test_resume_extends_the_schedule_but_refuses_to_change_the_model(session_unpaired, tmp_path):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=2)  # 4 steps per epoch
    cfg.train.epochs, cfg.train.epochs_decay = 1, 1
    train(cfg, tmp_path / "run")
    with pytest.raises(ValueError, match="model.generator.ngf is 4 in the checkpoint and cannot change"):
        resume(tmp_path / "run", {"model.generator.ngf": 8})
    names = [f"{i}.png" for i in range(138)]  # an --exclude file: its start, length and difference, not 138 names
    with pytest.raises(ValueError, match=re.escape("is [] in the checkpoint and cannot change mid-run (asked for "
                                                   "['0.png', '1.png', '2.png', … (138 items)], 138 more (e.g. "
                                                   "'0.png'))")):
        resume(tmp_path / "run", {"data.exclude": names})
    assert resume(tmp_path / "run").name == "step_00000002"  # the saved step limit holds
    # Still in epoch 0, where 1+1 and 2+1 epochs agree: the run grows from 8 to 12 steps.
    end = resume(tmp_path / "run", {"runtime.max_steps": None, "train.epochs": 2, "runtime.num_workers": 0})
    assert end.name == "step_00000012"
    assert read_json(end / "config.json")["runtime"]["num_workers"] == 0
    assert [r["lr"] for r in _log(tmp_path / "run")][-4:] == pytest.approx([cfg.train.lr / 2] * 4)
    with pytest.raises(ValueError, match="would change the learning rate of epoch 1"):
        resume(tmp_path / "run", {"train.epochs": 1, "train.epochs_decay": 2})


def test_resume_may_shorten_the_schedule_not_yet_trained(session_unpaired, tmp_path):
    """What sat2map_gpu.sh's phase 2 relies on: a 1000+1000 calibration run cut to the epochs that fit."""
    cfg = tiny_run_config("cut", session_unpaired, max_steps=2)  # 4 steps per epoch
    cfg.train.epochs, cfg.train.epochs_decay = 1000, 1000
    train(cfg, tmp_path / "run")
    end = resume(tmp_path / "run", {"runtime.max_steps": 12, "train.epochs": 1, "train.epochs_decay": 1})
    assert end.name == "step_00000008"  # 2 epochs of 4 steps (the step limit only bounds a failure)
    assert [r["lr"] for r in _log(tmp_path / "run")][-4:] == pytest.approx([cfg.train.lr / 2] * 4)


def test_resume_stops_at_an_epoch_boundary_can_extend_and_refuses_other_data(session_unpaired, tmp_path):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=4)  # 4 steps per epoch: exactly epoch 0
    cfg.train.epochs, cfg.train.epochs_decay = 1, 1
    train(cfg, tmp_path / "run")
    # Epoch 1 was never trained, so turning it from decay into constant LR changes nothing done.
    assert resume(tmp_path / "run", {"runtime.max_steps": 5, "train.epochs": 2}).name \
        == "step_00000005"
    with pytest.raises(ValueError, match="steps per epoch"):  # one image fewer: the schedule would shift
        resume(tmp_path / "run", {"data.root": str(_fewer_images(session_unpaired, tmp_path))})


def _fewer_images(root: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "fewer"
    shutil.copytree(root, copy)
    for d in ("trainA", "trainB"):
        files = sorted((copy / d).iterdir())
        files[-1].unlink()
    return copy


def test_a_new_run_refuses_a_folder_that_holds_one(session_unpaired, tmp_path):
    """Without --resume, a second run in the same folder would overwrite and prune the first's checkpoints."""
    first = train(tiny_run_config("fastcut", session_unpaired, max_steps=2), tmp_path / "run")
    before = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_run_config("cyclegan", session_unpaired, max_steps=3), tmp_path / "run")
    assert checkpoint_dirs(tmp_path / "run") == [first]
    assert {p.name: p.stat().st_mtime_ns for p in first.iterdir()} == before
    assert read_json(tmp_path / "run" / "config.json")["preset"] == "fastcut"


def test_ctrl_c_stops_after_the_step_with_a_checkpoint_and_resumes_exactly(session_unpaired, tmp_path, monkeypatch,
                                                                            sigint_handler):
    sigint_handler(signal.default_int_handler)  # as in a terminal, also where pytest runs in the background
    straight = train(tiny_run_config("cut", session_unpaired, max_steps=5), tmp_path / "straight")
    steps = []
    original = CUTModel.train_step

    def step_then_ctrl_c(self, *args):
        steps.append(1)
        if len(steps) == 3:
            signal.raise_signal(signal.SIGINT)  # as a terminal delivers it, between two bytecodes of this step
        return original(self, *args)

    monkeypatch.setattr(CUTModel, "train_step", step_then_ctrl_c)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):  # still an interruption, once the checkpoint is saved
        train(tiny_run_config("cut", session_unpaired, max_steps=5), tmp_path / "split")
    assert checkpoint_dirs(tmp_path / "split")[-1].name == "step_00000003" and len(steps) == 3
    assert signal.getsignal(signal.SIGINT) is handler  # Ctrl-C means "interrupt" again afterwards
    monkeypatch.setattr(CUTModel, "train_step", original)
    resumed = resume(tmp_path / "split")
    a, b = _all_tensors(straight), _all_tensors(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_unreadable_training_image_leaves_a_checkpoint_of_the_last_step(tmp_path, monkeypatch):
    """Images are decoded when drawn: one that fails hours into a run must not cost the steps since the
    last checkpoint. The error still ends the run, and the log has exactly the steps taken."""
    data = make_unpaired(tmp_path / "data")
    cfg = tiny_run_config("cut", data, max_steps=6)
    cfg.runtime.save_every = 4
    original, drawn = UnpairedDataset.__getitem__, []

    def failing_from_the_fourth(self, i):
        drawn.append(i)
        if len(drawn) > 3:
            raise ValueError(f"{data}/trainA/x.png: not a readable image")
        return original(self, i)

    monkeypatch.setattr(UnpairedDataset, "__getitem__", failing_from_the_fourth)
    with pytest.raises(ValueError, match="not a readable image"):
        train(cfg, tmp_path / "run")
    assert [c.name for c in checkpoint_dirs(tmp_path / "run")] == ["step_00000003"]
    assert [r["step"] for r in _log(tmp_path / "run")] == [1, 2, 3]


def _failing_evaluator(*_):
    """A periodic evaluation that fails (as one whose plot needs a missing matplotlib would)."""
    def evaluate(g, step, epoch):
        raise RuntimeError("matplotlib is missing")
    return evaluate


def test_an_error_after_a_step_leaves_a_checkpoint_of_that_step(tmp_path):
    """An evaluation (or a plot, or a samples grid) that fails after a whole step must not cost the steps since
    the last checkpoint either; the error still ends the run."""
    data = make_unpaired(tmp_path / "data")
    cfg = tiny_run_config("cut", data, max_steps=6)
    cfg.runtime.save_every, cfg.runtime.eval_every = 4, 3

    with pytest.raises(RuntimeError, match="matplotlib is missing"):
        train(cfg, tmp_path / "run", make_evaluator=_failing_evaluator)
    assert [c.name for c in checkpoint_dirs(tmp_path / "run")] == ["step_00000003"]
    resume(tmp_path / "run", {"runtime.eval_every": 0})  # without the evaluation: continues from step 3
    assert [r["step"] for r in _log(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]


def test_an_error_inside_an_update_saves_nothing_and_a_failing_save_hides_no_error(tmp_path, monkeypatch, capsys):
    """Weights half-stepped by an update that failed must not become a checkpoint; and when the checkpoint after an
    error cannot be written either, the first error is still the one raised."""
    data = make_unpaired(tmp_path / "data")
    cfg = tiny_run_config("cut", data, max_steps=6)
    cfg.runtime.save_every = 2
    original, steps = CUTModel.train_step, []

    def failing_fourth(self, *args):
        steps.append(1)
        if len(steps) == 4:
            raise RuntimeError("CUDA error: an illegal memory access")
        return original(self, *args)

    monkeypatch.setattr(CUTModel, "train_step", failing_fourth)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        train(cfg, tmp_path / "run")
    assert [c.name for c in checkpoint_dirs(tmp_path / "run")] == ["step_00000002"]
    monkeypatch.setattr(CUTModel, "train_step", original)
    monkeypatch.setattr(Trainer, "save", lambda self: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    cfg.runtime.eval_every = 1

    with pytest.raises(RuntimeError, match="matplotlib is missing"):
        train(cfg, tmp_path / "run2", make_evaluator=_failing_evaluator)
    assert "could not save a checkpoint of step 1 either ([Errno 28] No space left on device)" in (
        capsys.readouterr().err)


def test_a_resume_from_an_older_checkpoint_logs_each_step_once(session_unpaired, tmp_path):
    """A run that went on past its newest checkpoint (killed, or stopped by an error) redoes those steps."""
    cfg = tiny_run_config("cut", session_unpaired, max_steps=5)
    cfg.runtime.save_every = 2
    train(cfg, tmp_path / "run")
    shutil.rmtree(checkpoint_dirs(tmp_path / "run")[-1])  # as if killed after step 5, before its save,
    with open(tmp_path / "run" / "log.jsonl", "a") as f:  # and in the middle of writing a log line
        f.write('{"step": null}\n{"step": 6, "lo')
    assert checkpoint_dirs(tmp_path / "run")[-1].name == "step_00000004"
    resume(tmp_path / "run")
    assert [r["step"] for r in _log(tmp_path / "run")] == [1, 2, 3, 4, 5]


def test_checkpoints_atomic_and_pruned(session_unpaired, tmp_path):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=4)
    cfg.runtime.save_every, cfg.runtime.keep_checkpoints = 1, 2
    _fit(cfg, tmp_path / "run")
    root = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step_00000003", "step_00000004"]  # no .tmp leftovers
    for d in root.iterdir():
        assert {p.name for p in d.iterdir()} == CKPT_FILES
    assert not list((tmp_path / "run").rglob("*.tmp"))


def test_failed_save_leaves_previous_checkpoints_intact(session_unpaired, tmp_path, monkeypatch):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=1)
    trainer, good = _fit(cfg, tmp_path / "run")
    import cutcore.train as train_mod

    real_save = train_mod.save_tensors

    def flaky(path, tensors, metadata=None):
        if Path(path).name == "training.safetensors":
            raise OSError("disk full")
        return real_save(path, tensors, metadata)

    monkeypatch.setattr(train_mod, "save_tensors", flaky)
    trainer.step = 2
    with pytest.raises(OSError, match="disk full"):
        trainer.save()
    assert checkpoint_dirs(tmp_path / "run") == [good]
    assert not (tmp_path / "run" / "checkpoints" / "step_00000002").exists()
    assert load_model(tmp_path / "run", "cpu").path == good


def test_failed_save_leaves_no_tmp_folder(session_unpaired, tmp_path, monkeypatch):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=1)
    trainer, _ = _fit(cfg, tmp_path / "run")
    import cutcore.train as train_mod

    def failing(path, tensors, metadata=None):
        raise OSError("disk full")

    monkeypatch.setattr(train_mod, "save_tensors", failing)
    trainer.step = 2
    with pytest.raises(OSError):
        trainer.save()
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_00000001"]


def _is_safetensors(path: Path) -> bool:
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    return all("dtype" in v and "data_offsets" in v for k, v in header.items() if k != "__metadata__")


def test_loading_never_unpickles(session_unpaired, tmp_path, monkeypatch):
    cfg = tiny_run_config("cyclegan", session_unpaired, max_steps=1)
    _, ckpt = _fit(cfg, tmp_path / "run")
    assert _is_safetensors(ckpt / "model.safetensors") and _is_safetensors(ckpt / "training.safetensors")
    assert not (ckpt / "model.safetensors").read_bytes().startswith(b"PK")  # not a torch.save zip

    def forbidden(*a, **k):
        raise AssertionError("unpickling during checkpoint load")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    load_model(ckpt, "cpu")
    load_model(ckpt, "cpu", "BtoA")
    resume(tmp_path / "run")


# --- learning-rate schedule ------------------------------------------------------------------------


def test_lr_factor_matches_reference_linear_policy(reference_networks):
    for n_epochs, n_decay in ((3, 4), (1, 1), (5, 0), (200, 200)):
        opt = types.SimpleNamespace(lr_policy="linear", epoch_count=1, n_epochs=n_epochs, n_epochs_decay=n_decay)
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        scheduler = reference_networks.get_scheduler(optimizer, opt)
        for epoch in range(n_epochs + n_decay):  # the reference steps the scheduler after each epoch
            assert lr_factor(epoch, n_epochs, n_decay) == pytest.approx(optimizer.param_groups[0]["lr"], abs=1e-12)
            optimizer.step()
            scheduler.step()


def test_lr_factor_hand_values():
    assert [lr_factor(e, 2, 3) for e in range(5)] == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25])


def test_lr_follows_the_schedule_per_epoch(session_unpaired, tmp_path):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=None)
    cfg.train.epochs, cfg.train.epochs_decay, cfg.train.batch_size = 1, 2, 1
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.steps_per_epoch == 4  # 4 A images, 3 B images: an epoch is max(|A|, |B|)
    assert trainer.total_steps == 12
    for step in range(12):
        assert trainer.lr_at(step) == pytest.approx(cfg.train.lr * lr_factor(step // 4, 1, 2))
    assert [trainer.lr_at(step) for step in (0, 4, 8)] == pytest.approx([cfg.train.lr, cfg.train.lr * 2 / 3,
                                                                          cfg.train.lr / 3])


def test_the_optimisers_step_at_the_logged_lr(session_unpaired, tmp_path, monkeypatch):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=None)
    cfg.train.epochs, cfg.train.epochs_decay, cfg.train.batch_size = 1, 1, 2
    stepped_at = []  # every optimiser group's LR when each step runs
    train_step = CUTModel.train_step

    def recording(self, *args, **kwargs):
        stepped_at.append({g["lr"] for o in self.optimizers.values() for g in o.param_groups})
        return train_step(self, *args, **kwargs)

    monkeypatch.setattr(CUTModel, "train_step", recording)
    _fit(cfg, tmp_path / "run")
    log = _log(tmp_path / "run")
    assert [r["step"] for r in log] == [1, 2, 3, 4]  # 2 steps per epoch x (1 + 1) epochs
    assert [r["lr"] for r in log] == pytest.approx([2e-4, 2e-4, 1e-4, 1e-4])
    assert [r["epoch"] for r in log] == pytest.approx([0.5, 1.0, 1.5, 2.0])
    assert stepped_at == [{r["lr"]} for r in log]


def test_config_round_trip_and_unknown_keys():
    for name in ("cut", "fastcut", "cut-focal", "fastcut-focal", "put", "cyclegan"):
        cfg = preset(name)
        assert from_dict(RunConfig, json.loads(json.dumps(asdict(cfg)))) == cfg
    bad = asdict(preset("cut"))
    bad["model"]["nce"]["tempreature"] = 0.1
    with pytest.raises(ValueError, match="tempreature"):
        from_dict(RunConfig, bad)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("cut++")
    with pytest.raises(ValueError, match=r"unknown preset 'sincut-cpu'; choose from cut, .* \(SinCUT presets come "
                                         r"from cutcore.sincut.sincut_preset\)$"):
        preset("sincut-cpu")


# --- time budget ---------------------------------------------------------------------------------


@pytest.fixture
def fake_clock(monkeypatch):
    """perf_counter that advances one second per training step and not otherwise."""
    import cutcore.train as train_module

    clock = [0.0]
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: clock[0])
    orig = CUTModel.train_step

    def step(self, *args, **kwargs):
        clock[0] += 1.0
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(CUTModel, "train_step", step)
    return clock


def test_time_budget_lays_the_schedule_over_the_steps_that_fit(session_unpaired, tmp_path, fake_clock):
    cfg = tiny_run_config("cut", session_unpaired, max_steps=None)
    cfg.runtime.time_budget = "1m"  # 60 s at 1 s/step, 2 s kept for the final checkpoint
    trainer, ckpt = _fit(cfg, tmp_path / "run")
    # Rate measured over steps 4-6 (5% of the budget), then the steps that fit: 6 + (60 - 2 - 6).
    assert trainer.schedule_steps == trainer.total_steps == 58 and ckpt.name == "step_00000058"
    lrs = [r["lr"] for r in _log(tmp_path / "run")]
    assert len(lrs) == 58
    # cut's 200 + 200 epochs become two halves of the budget: constant LR, then linear decay to ~0.
    assert lrs[:28] == pytest.approx([cfg.train.lr] * 28)
    assert all(a >= b for a, b in zip(lrs[28:], lrs[29:], strict=False)) and lrs[-1] < 0.05 * cfg.train.lr
    assert read_json(ckpt / "state.json")["schedule_steps"] == 58
    # A resume keeps the planned schedule (the budget bounds only the new invocation).
    cfg.runtime.max_steps = 60
    resumed = Trainer(cfg, tmp_path / "run")
    resumed.load(ckpt)
    assert resumed.schedule_steps == 58 and resumed.lr_at(57) == pytest.approx(lrs[-1])


def test_time_budget_on_resume_never_changes_the_lr_of_trained_steps(session_unpaired, tmp_path, fake_clock,
                                                                      capsys):
    """A run trained by epochs, resumed with a budget: the budget's schedule is laid only where the steps in the
    checkpoint keep their LR; otherwise the epochs' schedule goes on and the budget just stops the run on time."""
    cfg = tiny_run_config("cut", session_unpaired, max_steps=10)
    cfg.train.epochs = cfg.train.epochs_decay = 1000  # constant LR far beyond these steps
    train(cfg, tmp_path / "run")
    # 10 s at 1 s/step: rate measured at step 14, 18 steps fit (2 s reserve); the budget's schedule would decay
    # from step 9, before the 10 steps already trained.
    resume(tmp_path / "run", {"runtime.max_steps": None, "runtime.time_budget": "10s"})
    log = _log(tmp_path / "run")
    assert [r["step"] for r in log] == list(range(1, 19))  # stopped on time, not at the epochs' end
    assert [r["lr"] for r in log] == pytest.approx([cfg.train.lr] * 18)  # no jump down mid-run
    assert checkpoint_dirs(tmp_path / "run")[-1].name == "step_00000018"
    assert ("--time-budget: 18 steps fit, so the LR would decay from step 9, before the 10 steps the checkpoint had "
            "trained; the run keeps its epochs' schedule and stops on time") in capsys.readouterr().err
    # Resumed early enough, the budget lays its schedule as in a new run.
    cfg.runtime.max_steps = 3
    train(cfg, tmp_path / "early")
    resume(tmp_path / "early", {"runtime.max_steps": None, "runtime.time_budget": "30s"})
    lrs = [r["lr"] for r in _log(tmp_path / "early")]
    assert lrs[-1] < 0.1 * cfg.train.lr and "--time-budget:" not in capsys.readouterr().err
    # A checkpoint already decaying on its epochs' schedule keeps it, whatever fits.
    cfg.train.epochs, cfg.runtime.max_steps = 0, 3
    train(cfg, tmp_path / "decaying")
    resume(tmp_path / "decaying", {"runtime.max_steps": None, "runtime.time_budget": "1m"})
    assert "the checkpoint (step 3) is past the decay start of its epochs' schedule (step 0)" in (
        capsys.readouterr().err)


def test_time_budget_stops_on_time_with_a_checkpoint(session_unpaired, tmp_path, fake_clock, monkeypatch):
    from cutcore.budget import TimeBudget

    monkeypatch.setattr(TimeBudget, "steps_that_fit", lambda self, step: None)  # never measured: the guard alone
    cfg = tiny_run_config("cut", session_unpaired, max_steps=None)
    cfg.runtime.time_budget = "20s"
    _, ckpt = _fit(cfg, tmp_path / "run")
    assert ckpt.name == "step_00000018"  # 20 s less the 2 s reserve


def test_time_budget_refuses_nonsense(session_unpaired, tmp_path):
    cfg = tiny_run_config("cut", session_unpaired)
    cfg.runtime.time_budget = "soon"
    with pytest.raises(ValueError, match=r"^runtime.time_budget \(--time-budget\): not a duration: \'soon\'"):
        Trainer(cfg, tmp_path / "run")
    cfg.runtime.time_budget = "0s"
    with pytest.raises(ValueError, match=r"^runtime.time_budget \(--time-budget\) must be longer than 0 s, got \'0s\'"):
        Trainer(cfg, tmp_path / "run")
    cfg.runtime.time_budget = None
    cfg.data.load_size, cfg.data.crop_size = 32, 40
    with pytest.raises(ValueError,
                       match=r"^data.crop_size \(--crop-size\) 40 is larger than data.load_size \(--load-size\) 32"):
        Trainer(cfg, tmp_path / "run")


@pytest.mark.parametrize("native,expected", [(False, "fp32"), (True, "bf16")])
def test_auto_precision_resolves_per_device_and_is_saved(session_unpaired, tmp_path, monkeypatch, native, expected):
    import cutcore.hardware as hardware

    monkeypatch.setattr(hardware, "bf16_support", lambda device, cpuinfo=None: (native, "test"))
    cfg = tiny_run_config("cut", session_unpaired, max_steps=1)
    cfg.train.precision = "auto"
    trainer, ckpt = _fit(cfg, tmp_path / "run")
    assert trainer.model.precision == expected
    with ComputedDtypes(trainer.model.G) as computed:  # what a further step computes in
        _step(trainer.model, *_batch(1))
    assert (torch.bfloat16 in computed) == (expected == "bf16")
    assert read_json(ckpt / "config.json")["train"]["precision"] == expected  # a resume keeps what it learnt with
    assert _log(tmp_path / "run")[0]["precision"] == f"{expected} (auto): test"  # and the log says why


# --- the GPU path, decided and exercised on the CPU (issue 12) --------------------------------------


def _without(log: list[dict], *keys: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in keys} for r in log]


@contextlib.contextmanager
def _no_dataloader():
    """Within it, building a DataLoader fails: a run that passes fed every batch from the device path."""
    def refuse(*args, **kwargs):
        raise AssertionError("a DataLoader was built on the device-data path")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("cutcore.train.DataLoader", refuse)
        yield


@pytest.mark.parametrize("preset_name", ["cut", "cyclegan"])
def test_device_data_trains_exactly_as_the_dataloader(session_unpaired, tmp_path, preset_name):
    """The device path, forced on the CPU, feeds the same batches: same losses, same weights."""
    runs = {}
    for path in ("off", "on"):
        cfg = tiny_run_config(preset_name, session_unpaired, max_steps=3)
        cfg.train.batch_size = 2  # the third step straddles the epoch boundary (4 items per epoch)
        cfg.runtime.data_on_device = path
        with _no_dataloader() if path == "on" else contextlib.nullcontext():
            trainer, ckpt = _fit(cfg, tmp_path / path)
        assert (trainer.device_images is not None) == (path == "on")
        runs[path] = (ckpt, _log(tmp_path / path))
    assert [r["data"] for r in runs["on"][1]] == ["device"] * 3 and runs["off"][1][0]["data"] == "loader"
    assert _without(runs["on"][1], "sec_per_iter", "data") == _without(runs["off"][1], "sec_per_iter", "data")
    a, b = _all_tensors(runs["on"][0]), _all_tensors(runs["off"][0])
    assert set(a) == set(b) and not [k for k in a if not torch.equal(a[k], b[k])]
    # The run saves what was asked, so a resume on a GPU decides again.
    assert read_json(runs["on"][0] / "config.json")["runtime"]["data_on_device"] == "on"


def test_resume_with_device_data_is_bit_identical_and_may_switch_data_paths(session_unpaired, tmp_path):
    def cfg(max_steps, path):
        c = tiny_run_config("cut", session_unpaired, max_steps=max_steps)
        c.runtime.data_on_device = path
        return c

    with _no_dataloader():
        straight = train(cfg(4, "on"), tmp_path / "straight")
        train(cfg(2, "on"), tmp_path / "split")
        resumed = resume(tmp_path / "split", {"runtime.max_steps": 4})
    # Started with the DataLoader, continued on the device (the data path is run-time, as on a new machine).
    train(cfg(2, "off"), tmp_path / "switch")
    with _no_dataloader():
        switched = resume(tmp_path / "switch", {"runtime.max_steps": 4, "runtime.data_on_device": "on"})
    want = _all_tensors(straight)
    for ckpt in (resumed, switched):
        got = _all_tensors(ckpt)
        assert ckpt.name == "step_00000004" and not [k for k in want if not torch.equal(want[k], got[k])]
    assert [r["data"] for r in _log(tmp_path / "switch")] == ["loader"] * 2 + ["device"] * 2


def test_device_data_refused_when_it_does_not_fit(session_unpaired, tmp_path, monkeypatch):
    import cutcore.data as data

    decoded = 7 * 3 * (40 * 40 + 32 * 32)  # 7 images at 40², and at the crop size 32² for whole-image training
    monkeypatch.setattr(data, "device_memory", lambda device: 4 * decoded - 1)  # just over 25%
    cfg = tiny_run_config("cut", session_unpaired, max_steps=1)
    cfg.runtime.data_on_device = "on"
    with pytest.raises(ValueError, match="more than 25% of cpu's"):
        Trainer(cfg, tmp_path / "run")
    monkeypatch.setattr(data, "device_memory", lambda device: 4 * decoded)
    assert Trainer(cfg, tmp_path / "run").device_images is not None


def test_channels_last_and_cudnn_autotuning_are_for_cuda_only(session_unpaired, tmp_path):
    from cutcore.hardware import resolve_channels_last, tune_backends

    settings = ("auto", "on", "off", True, False)
    assert [resolve_channels_last(s, "cpu") for s in settings] == [False, True, False, True, False]
    assert [resolve_channels_last(s, "cuda:1") for s in settings] == [True, True, False, True, False]
    with pytest.raises(ValueError, match="auto, on or off"):
        resolve_channels_last("yes", "cpu")
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        assert tune_backends("cpu") == {} and torch.backends.cudnn.benchmark is False
        # A default run on the CPU: NCHW, no autotuning, the DataLoader, "auto" kept in the saved config.
        cfg = tiny_run_config("cut", session_unpaired, max_steps=1)
        assert cfg.runtime.channels_last == cfg.runtime.data_on_device == "auto"
        trainer, ckpt = _fit(cfg, tmp_path / "run")
        assert not trainer.channels_last and trainer.backends == {} and torch.backends.cudnn.benchmark is False
        assert trainer.device_images is None and trainer.data_note.startswith("DataLoader")
        conv = next(m for m in trainer.model.G.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous() and not conv.weight.is_contiguous(memory_format=torch.channels_last)
        assert read_json(ckpt / "config.json")["runtime"]["channels_last"] == "auto"
        # --channels-last (True) still turns it on for a CPU run: the networks are laid out NHWC.
        cfg.runtime.channels_last = True
        nhwc = Trainer(cfg, tmp_path / "nhwc")
        assert nhwc.channels_last
        for net in (nhwc.model.G, nhwc.model.D):
            conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
            assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
        # On CUDA the flag is set (it is only a flag: settable without a GPU).
        assert tune_backends(torch.device("cuda", 0)) == {"cudnn.benchmark": True} and torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark = before


def test_time_budget_waits_for_the_device_where_it_measures(monkeypatch):
    import cutcore.train as train_module
    from cutcore.budget import TimeBudget

    clock, waits = [0.0], []
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: clock[0])
    budget = TimeBudget(100.0, sync=lambda: waits.append(clock[0]))
    fits = []
    for step in range(1, 40):
        clock[0] += 1.0
        fits.append(budget.steps_that_fit(step))
    # Waits at the end of warm-up (step 3) and where the rate is taken (5% of 100 s: step 8), nowhere else.
    assert waits == [3.0, 8.0]
    assert fits[7] == 8 + int(100 - 3 - 8) and all(f is None for i, f in enumerate(fits) if i != 7)


@pytest.mark.parametrize("preset_name,whole", [("cut", True), ("fastcut", True), ("cyclegan", False)])
def test_whole_images_from_where_the_learning_rate_decays(session_unpaired, tmp_path, preset_name, whole):
    """CUT's reference switches to load_size = crop_size once the LR decays; CycleGAN's does not."""
    cfg = tiny_run_config(preset_name, session_unpaired, max_steps=None)
    cfg.train.epochs, cfg.train.epochs_decay, cfg.train.batch_size = 2, 1, 2
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.decay_start() == 4 and trainer.lr_at(3) == cfg.train.lr > trainer.lr_at(4)  # 2 steps/epoch
    assert trainer.dataset.whole_images_from == (8 if whole else None)  # step 4 x batch 2
    trainer.plan_schedule(30)  # a time budget's schedule: 20 steps at full LR, then 10 decaying
    assert trainer.decay_start() == 20 and trainer.lr_at(19) == cfg.train.lr > trainer.lr_at(20)
    assert trainer.dataset.whole_images_from == (40 if whole else None)


def test_time_budget_hands_the_loader_workers_the_new_whole_image_step(session_unpaired, tmp_path, fake_clock,
                                                                         monkeypatch):
    """Loader workers hold a copy of the dataset: once the budget lays the schedule (and so the step
    where whole images start), the batches come from a new loader that knows it."""
    cfg = tiny_run_config("cut", session_unpaired, max_steps=None)
    cfg.runtime.time_budget, cfg.runtime.num_workers = "1m", 1
    starts = []
    orig = Trainer.batches

    def batches(self, start_step):
        starts.append((start_step, self.dataset.whole_images_from))
        return orig(self, start_step)

    monkeypatch.setattr(Trainer, "batches", batches)
    trainer, _ = _fit(cfg, tmp_path / "run")
    assert trainer.decay_start() == 29  # 58 steps laid: 29 at full LR
    assert starts == [(0, 200 * 4), (6, 29)]  # decay after 200 epochs of 4 steps at first; re-made at step 6
