"""Multi-process training: `torchrun --nproc_per_node 2 -m cutcore train` on CPU (gloo).

Claims checked: the run completes and rank 0 alone writes one checkpoint and one log; the ranks see
different data whose union is the single-process stream; and, since gradients are averaged and every
layer (instance norm included) is per-sample, 2 processes x batch 1 give the same weights as
1 process x batch 2, up to float summation order.

The runs train in float64 (default dtype and data; CUTCORE_TEST_FLOAT64). In float32 the two runs'
gradients differ in the last bits (batch 1 vs 2 kernels, all-reduce order; which kernels depends on the
CPU: AVX2 vs AVX512), and Adam divides each gradient element by its own running magnitude, so an element
whose gradient nearly cancels turns that noise into a visible step: 1.2e-6 (0.16% of the tensor's
largest update) on one element of F.mlp_2.2.weight on an AVX512 CPU. In float64 the same amplification
leaves ~1e-12 of the update, so the comparison can be tight on any machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_unpaired, subprocess_env, tiny_run_config

from cutcore.checkpoint import load_tensors, read_json
from cutcore.config import RunConfig
from cutcore.models.cut import CUTModel
from cutcore.train import checkpoint_dirs, read_run_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 4

# Imported by every Python process started with this folder on PYTHONPATH; in torchrun's workers
# (RANK set) it records a digest of each step's batch, per rank.
SITECUSTOMIZE = '''
import os
if os.environ.get("CUTCORE_TEST_FLOAT64") and "RANK" in os.environ:
    import torch
    from cutcore import data as _data

    torch.set_default_dtype(torch.float64)
    _to_tensor = _data.to_tensor
    _data.to_tensor = lambda img: _to_tensor(img).double()
if os.environ.get("CUTCORE_TEST_RECORD") and "RANK" in os.environ:
    import hashlib, json
    from cutcore.models import cut as _cut

    _orig = _cut.CUTModel.train_step

    def _recording_train_step(self, real_a, real_b, *args, **kwargs):
        digest = lambda t: [hashlib.sha256(x.float().contiguous().numpy().tobytes()).hexdigest() for x in t]
        path = os.path.join(os.environ["CUTCORE_TEST_RECORD"], "rank%s.jsonl" % os.environ["RANK"])
        with open(path, "a") as f:
            f.write(json.dumps({"a": digest(real_a), "b": digest(real_b)}) + "\\n")
        return _orig(self, real_a, real_b, *args, **kwargs)

    _cut.CUTModel.train_step = _recording_train_step
'''


def _digests(t: torch.Tensor) -> list[str]:
    return [hashlib.sha256(x.float().contiguous().numpy().tobytes()).hexdigest() for x in t]


@pytest.fixture
def float64_training(monkeypatch):
    """What CUTCORE_TEST_FLOAT64 does in the torchrun workers, in this process: float64 weights and data."""
    from cutcore import data

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    to_tensor = data.to_tensor
    monkeypatch.setattr(data, "to_tensor", lambda img: to_tensor(img).double())
    yield
    torch.set_default_dtype(before)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    work = tmp_path_factory.mktemp("ddp")
    data = make_unpaired(work / "data", n_a=4, n_b=3)
    hook = work / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    record = work / "record"
    record.mkdir()
    env = subprocess_env(CUTCORE_TEST_RECORD=str(record), CUTCORE_TEST_FLOAT64="1")
    env["PYTHONPATH"] = os.pathsep.join([str(hook), env["PYTHONPATH"]])
    # `torchrun` is `python -m torch.distributed.run`; the module form needs no console script on PATH.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cutcore",
           "train", "--preset", "cut", "--data", str(data), "--out", str(work / "ddp"), "--max-steps", str(STEPS),
           "--load-size", "40", "--crop-size", "32", "--ngf", "4", "--ndf", "4", "--n-blocks", "2",
           "--num-patches", "32", "--num-workers", "0", "--batch-size", "1", "--log-every", "1"]
    r = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=420)
    return work, r, record


def test_ddp_run_completes_with_one_checkpoint(ddp_run):
    work, r, _ = ddp_run
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr[-4000:]}"
    ckpts = checkpoint_dirs(work / "ddp")
    assert [c.name for c in ckpts] == [f"step_{STEPS:08d}"]
    assert not [p for p in (work / "ddp" / "checkpoints").iterdir() if p.name.startswith(".")]
    # Both ranks print the checkpoint; only rank 0 wrote it, and the log, once per step.
    assert r.stdout.count(f"checkpoint: {ckpts[0]}") == 2
    log = [json.loads(line) for line in (work / "ddp" / "log.jsonl").read_text().splitlines()]
    assert [rec["step"] for rec in log] == list(range(1, STEPS + 1))
    assert [rec["epoch"] for rec in log] == pytest.approx([s / 2 for s in range(1, STEPS + 1)])  # 4 images / 2 per step


def _recorded(record: Path, rank: int) -> list[dict]:
    return [json.loads(line) for line in (record / f"rank{rank}.jsonl").read_text().splitlines()]


def test_ranks_see_different_data_and_together_the_single_process_stream(ddp_run, tmp_path, monkeypatch):
    work, r, record = ddp_run
    assert r.returncode == 0, r.stderr[-4000:]
    r0, r1 = _recorded(record, 0), _recorded(record, 1)
    assert len(r0) == len(r1) == STEPS
    for s0, s1 in zip(r0, r1, strict=True):
        assert s0["a"] != s1["a"] or s0["b"] != s1["b"]
    # The same run in one process with batch 2 sees, per step, rank 0's then rank 1's items.
    cfg = _single_process_config(work)
    seen = []
    orig = CUTModel.train_step

    def recording(self, real_a, real_b, *args, **kwargs):
        seen.append({"a": _digests(real_a), "b": _digests(real_b)})
        return orig(self, real_a, real_b, *args, **kwargs)

    monkeypatch.setattr(CUTModel, "train_step", recording)
    train(cfg, tmp_path / "single")
    assert seen == [{"a": s0["a"] + s1["a"], "b": s0["b"] + s1["b"]} for s0, s1 in zip(r0, r1, strict=True)]


def _single_process_config(work: Path) -> RunConfig:
    cfg = read_run_config(checkpoint_dirs(work / "ddp")[-1] / "config.json")
    assert cfg.train.batch_size == 1
    cfg.train.batch_size = 2
    return cfg


def _norm_cancelled_biases(model: torch.nn.Module, prefix: str) -> set[str]:
    """Biases of convs directly followed by an (affine-free) InstanceNorm2d: the norm subtracts them again."""
    keys = set()
    for seq_name, seq in model.named_modules():
        if isinstance(seq, torch.nn.Sequential):
            children = list(seq.named_children())
            for (name, m), (_, nxt) in zip(children, children[1:], strict=False):
                if isinstance(m, torch.nn.Conv2d) and m.bias is not None and isinstance(nxt, torch.nn.InstanceNorm2d):
                    keys.add(f"{prefix}.{seq_name}.{name}.bias".replace("..", "."))
    return keys


def test_two_processes_batch1_equal_one_process_batch2(ddp_run, tmp_path, float64_training):
    """Finding: equal for every weight that matters. Biases feeding an instance norm have an exactly-zero
    true gradient; Adam normalises the float noise there into steps of up to lr, so those (functionally
    inert) biases differ by up to 2 * steps * lr between the two runs -- and the networks' outputs do not.

    Every other weight agrees to a millionth of what training can move it (Adam: about lr per step), in
    float64 (see the module docstring); a rank training on its own gradient, or on other data, differs by
    a good fraction of it."""
    from cutcore.model_folder import load_model
    from cutcore.models import build_model

    work, r, _ = ddp_run
    assert r.returncode == 0, r.stderr[-4000:]
    ddp_ckpt = checkpoint_dirs(work / "ddp")[-1]
    cfg = _single_process_config(work)
    single_ckpt = train(cfg, tmp_path / "single")
    model = build_model(cfg.model)
    inert = _norm_cancelled_biases(model.G, "G") | _norm_cancelled_biases(model.D, "D")
    assert "G.model.1.bias" in inert and "D.model.3.bias" in inert and "G.model.23.bias" not in inert
    reach = STEPS * cfg.train.lr  # how far training moves a weight, to within a small factor
    checked = 0
    for name in ("model.safetensors", "training.safetensors"):
        a, b = load_tensors(ddp_ckpt / name), load_tensors(single_ckpt / name)
        assert set(a) == set(b)
        for k in a:
            if k.startswith("opt_"):
                if k.endswith(".step"):
                    assert torch.equal(a[k], b[k]), k
                continue
            assert a[k].dtype == b[k].dtype == torch.float64, k
            if k in inert:
                # In float32 each run moves them by up to ~lr per step, in unrelated directions (Adam normalising
                # float noise); in float64 Adam's eps swamps that noise and they barely move (~1e-6 reach).
                assert (a[k] - b[k]).abs().max() <= 2 * reach * 1.1, k
            else:
                torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6 * reach, msg=lambda m, k=k: f"{k}: {m}")
                checked += 1
    assert checked > 20
    # Functionally the same networks.
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        g_ddp, g_one = load_model(ddp_ckpt, "cpu").generator, load_model(single_ckpt, "cpu").generator
        torch.testing.assert_close(g_ddp(x), g_one(x), rtol=1e-4, atol=1e-5)
        d_ddp, d_one = build_model(cfg.model).D, build_model(cfg.model).D
        for d, ckpt in ((d_ddp, ddp_ckpt), (d_one, single_ckpt)):
            tensors = load_tensors(ckpt / "training.safetensors")
            d.load_state_dict({k[2:]: v for k, v in tensors.items() if k.startswith("D.")})
        torch.testing.assert_close(d_ddp(x), d_one(x), rtol=1e-4, atol=1e-5)
    assert read_json(ddp_ckpt / "state.json")["step"] == read_json(single_ckpt / "state.json")["step"] == STEPS


@pytest.fixture
def world_of_two(monkeypatch, tmp_path):
    """torchrun's environment for rank 0 of 2, with an init that starts a real one-process gloo group (a
    two-process one would wait for its second rank): what `Dist` starts and ends is a real process group."""
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    init, started = dist.init_process_group, []

    def init_one_process_group(backend):
        started.append(backend)
        init(backend, init_method=f"file://{tmp_path / f'rendezvous{len(started)}'}", rank=0, world_size=1)

    monkeypatch.setattr(dist, "init_process_group", init_one_process_group)
    yield dist, started
    if dist.is_initialized():
        dist.destroy_process_group()


def test_a_run_ends_the_process_group_it_started(world_of_two, tmp_path):
    """Left to the interpreter's exit, a gloo group's threads can abort a rank after a finished run."""
    dist, started = world_of_two
    cfg = tiny_run_config("cut", make_unpaired(tmp_path / "data", n_a=2, n_b=2), max_steps=1)
    train(cfg, tmp_path / "run")
    assert started == ["gloo"] and not dist.is_initialized()


def test_a_process_group_started_by_the_caller_is_left_open(world_of_two):
    from cutcore.distributed import Dist

    dist, started = world_of_two
    dist.init_process_group("gloo")  # the caller's own
    d = Dist(torch.device("cpu"))
    d.close()
    assert started == ["gloo"] and dist.is_initialized()


def test_a_time_budget_under_torchrun_is_refused_before_a_process_group_starts(world_of_two, tmp_path):
    dist, started = world_of_two
    cfg = tiny_run_config("cut", make_unpaired(tmp_path / "data", n_a=2, n_b=2), max_steps=1)
    cfg.runtime.time_budget = "10m"
    with pytest.raises(ValueError, match=r"^runtime.time_budget \(--time-budget\) runs in one process"):
        train(cfg, tmp_path / "run")
    assert started == [] and not dist.is_initialized()
