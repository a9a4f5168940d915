"""Benchmark plumbing: timing with synchronisation, row assembly, GEMM ceilings, the CUDA guard, the model APIs.

Speeds themselves are not asserted (they belong to the benchmark's output, not to tests).
"""
from __future__ import annotations

import json
import re
import types

import pytest
import torch

from cutcore import bench
from cutcore.results import speed_table_markdown

pytestmark = pytest.mark.usefixtures("one_thread")


class FakeClock:
    """perf_counter stand-in: time moves only when the timed function advances it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timed_median_sync_and_peak_reset_order():
    clock, events = FakeClock(), []
    durations = iter([9.0, 9.0, 4.0, 1.0, 3.0, 2.0, 5.0])  # warm-up x2, then 5 timed calls

    def fn():
        events.append("call")
        clock.now += next(durations)

    sec, gflop = bench._timed(fn, iters=5, device=torch.device("cuda"), warmup=2, clock=clock,
                              sync=lambda d: events.append("sync"), count_flops=lambda f: 12.5,
                              before_timing=lambda: events.append("reset"))
    assert sec == 3.0  # median of 4, 1, 3, 2, 5: the warm-up calls are not timed
    assert gflop == 12.5
    # Warm-up, sync, the peak reset, then every timed call between two syncs.
    assert events[:4] == ["call", "call", "sync", "reset"]
    assert events[4:] == ["sync", "call", "sync"] * 5


def test_timed_counts_flops_of_a_real_call():
    a = torch.randn(16, 32)
    b = torch.randn(32, 8)
    _, gflop = bench._timed(lambda: a @ b, iters=1, device=torch.device("cpu"))
    assert gflop == pytest.approx(2 * 16 * 32 * 8 / 1e9)


def test_assemble_row_keeps_the_contract_and_adds_throughput():
    spec = {"device": "cuda", "precision": "bf16", "iters": 6, "channels_last": False, "impl": "ours",
            "kind": "train", "preset": "cut", "size": 512, "batch_size": 8, "reference": "/ref"}
    row = bench.assemble_row(spec, sec=0.5, gflop=400.0, peak_mib=2048.0, info={"device_name": "NVIDIA H200"})
    contract = {"device", "precision", "iters", "channels_last", "impl", "kind", "preset", "size", "sec_per_iter",
                "peak_mem_mib", "gflop_per_iter", "gflops"}
    assert contract <= set(row) and "reference" not in row
    assert row["gflops"] == 800.0 and row["images_per_s"] == 16.0 and row["batch_size"] == 8
    assert row["device_name"] == "NVIDIA H200"
    # Batch defaults to 1; an uncountable step has no FLOP/s.
    row = bench.assemble_row({**spec, "batch_size": None}, sec=2.0, gflop=None, peak_mib=1.0)
    assert row["batch_size"] == 1 and row["images_per_s"] == 0.5 and row["gflops"] is None


def test_add_peaks_sets_each_row_against_its_own_precision():
    rows = [{"precision": "fp32", "gflops": 50.0}, {"precision": "bf16", "gflops": 300.0},
            {"precision": "bf16", "gflops": None}]
    bench.add_peaks(rows, {"fp32": 100.0, "bf16": 600.0})
    assert [r["gemm_peak_gflops"] for r in rows] == [100.0] * 3
    assert [r["gemm_peak_gflops_bf16"] for r in rows] == [600.0] * 3
    assert [r["peak_fraction"] for r in rows] == [0.5, 0.5, None]
    rows = [{"precision": "fp32", "gflops": 50.0}]
    bench.add_peaks(rows, {"fp32": 100.0})
    assert "gemm_peak_gflops_bf16" not in rows[0] and rows[0]["peak_fraction"] == 0.5


def test_markdown_rows_ratios_and_footer():
    base = {"device": "cuda", "precision": "bf16", "kind": "train", "preset": "cut", "size": 256, "batch_size": 8,
            "peak_fraction": 0.25}
    rows = [
        {**base, "impl": "ours", "sec_per_iter": 0.1, "images_per_s": 80.0, "peak_mem_mib": 1024.0, "gflops": 250.0,
         "device_name": "NVIDIA H200", "torch_version": "2.11.0", "channels_last": True},
        {**base, "impl": "reference", "precision": "fp32", "sec_per_iter": 0.2, "images_per_s": 40.0,
         "peak_mem_mib": 2048.0, "gflops": 125.0, "peak_fraction": None},
        {**base, "impl": "ours", "preset": "sincut", "error": "Traceback\nRuntimeError: boom"},
    ]
    md = speed_table_markdown(rows, 60000.0, 900000.0, gemm_n=8192)
    ours = md.splitlines()[2]
    assert "| bf16 NHWC |" in ours and "| fp32 |" in md.splitlines()[3]  # each row's layout
    assert "| 8 |" in ours and "80.00" in ours and "250 (25% of bf16 GEMM)" in ours and "0.50× time, 0.50× mem" in ours
    assert "failed: RuntimeError: boom" in md
    assert "fp32 GEMM ceiling of this device: 60000 GFLOP/s (8192² matmul)." in md
    assert "bf16 GEMM ceiling of this device: 900000 GFLOP/s" in md
    assert "Device: NVIDIA H200; torch 2.11.0." in md


def test_gemm_peak_is_one_products_flops_over_the_median_time(monkeypatch):
    durations = iter([0.5, 4.0, 1.0] * 2)  # seconds of the three timed products, per precision
    now = [0.0]

    def clock() -> float:  # called before and after each product: the second call adds its duration
        clock.calls += 1
        if clock.calls % 2 == 0:
            now[0] += next(durations)
        return now[0]

    clock.calls = 0
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=clock))  # not the process's clock
    for dtype in ("fp32", "bf16"):
        assert bench.gemm_peak_gflops("cpu", n=32, repeats=3, dtype=dtype) == pytest.approx(2 * 32**3 / 1.0 / 1e9)


def test_gpu_ids_for_the_reference():
    assert bench._gpu_ids("cpu") == "-1"
    assert bench._gpu_ids("cuda") == "0"
    assert bench._gpu_ids("cuda:1") == "1"


def test_cuda_without_cuda_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--device", "cuda", "--preset", "cut", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("error: --device cuda: CUDA is not available") and "\n" not in err
    assert bench.main(["--device", "nonsense"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--preset", "foo"], "--preset foo: unknown preset; choose from cut, "),
    (["--preset", "cut,Cut"], "--preset Cut: unknown preset"),
    (["--size", "0"], "--size 0: must be at least 24 and a multiple of 4"),
    (["--size", "256,30"], "--size 30: must be at least 24 and a multiple of 4"),
    (["--size", "abc"], "--size abc: expected whole numbers separated by commas"),
    (["--infer-sizes", "256,4"], "--infer-sizes 4: must be at least 5"),
    (["--iters", "0"], "--iters 0: must be at least 1"),
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--tiled", "-5"], "--tiled -5: must be at least 1"),
])
def test_bad_arguments_are_one_line_before_anything_is_measured(monkeypatch, capsys, args, message):
    def measured(*a, **k):
        raise AssertionError("measured before the arguments were checked")

    monkeypatch.setattr(bench, "measure", measured)
    monkeypatch.setattr(bench, "gemm_peak_gflops", measured)
    assert bench.main([*args, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1


def test_out_folder_with_a_table_is_refused_before_anything_is_measured(monkeypatch, capsys, tmp_path):
    (tmp_path / "bench.json").write_text("[]")
    test_bad_arguments_are_one_line_before_anything_is_measured(
        monkeypatch, capsys, ["--out", str(tmp_path)], f"--out {tmp_path}: it already holds a bench.json")
    assert (tmp_path / "bench.json").read_text() == "[]"


def test_device_auto_resolves_before_the_rows(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(bench, "measure", lambda spec: seen.append(spec) or bench.assemble_row(spec, 1.0, None, 1.0))
    monkeypatch.setattr(bench, "gemm_peak_gflops", lambda device, dtype="fp32": seen.append(device) or 1.0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--device", "auto", "--preset", "cut", "--json"]) == 0
    assert seen[0]["device"] == "cpu" and seen[1] == "cpu"
    capsys.readouterr()


def test_train_step_configures_the_model_and_seeds_each_step():
    calls = []

    class Model:
        def configure_training(self, lr, b1, b2, precision):
            calls.append({"configured": (lr, b1, b2, precision)})

        def train_step(self, a, b, rng):
            calls.append({"rng": rng, "autocast": torch.is_autocast_enabled("cpu")})
            return {}

    step = bench._train_step(Model(), types.SimpleNamespace(lr=1e-3, beta1=0.5, beta2=0.999), "a", "b", "bf16")
    step()
    step()
    assert calls[0] == {"configured": (1e-3, 0.5, 0.999, "bf16")}
    rngs = [c["rng"] for c in calls[1:]]
    assert all(isinstance(r, torch.Generator) for r in rngs) and rngs[0].initial_seed() != rngs[1].initial_seed()
    # The model applies its own precision (SinCUT too): a bench row times the step that training runs, not one
    # wrapped in a second autocast that would also cover backward() and the optimiser.
    assert not calls[1]["autocast"]


def test_worker_rows_in_process():
    """Real (tiny) rows through the worker: the current model API, row keys, no CUDA keys on CPU."""
    common = {"device": "cpu", "precision": "fp32", "iters": 1, "channels_last": False, "impl": "ours"}
    row = bench._worker({**common, "kind": "inference", "preset": "generator", "size": 32, "batch_size": 2})
    assert row["batch_size"] == 2 and row["sec_per_iter"] > 0
    assert row["images_per_s"] == pytest.approx(2 / row["sec_per_iter"])
    assert row["peak_mem_kind"] == "max_rss" and row["torch_version"] == torch.__version__ and row["device_name"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["date"])  # a speed table says when it was measured
    assert row["gflop_per_iter"] > 0 and "peak_reserved_mib" not in row
    row = bench._worker({**common, "kind": "train", "preset": "fastcut", "size": 32})
    assert row["batch_size"] == 1 and row["gflop_per_iter"] > 0
    row = bench._worker({**common, "kind": "train", "preset": "sincut-cpu", "size": 256})
    assert row["size"] == 32 and row["batch_size"] == 8  # the preset's own crops and batch


def test_main_inference_only_json(capsys, monkeypatch):
    # --preset "" gives no training rows: one fresh-process inference row, JSON on stdout only.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert bench.main(["--preset", "", "--infer-sizes", "32", "--iters", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["kind"] == "inference" and rows[0]["size"] == 32
    assert rows[0]["gemm_peak_gflops"] > 0 and "gemm_peak_gflops_bf16" not in rows[0]


def test_precision_auto_is_resolved_and_recorded(monkeypatch, capsys):
    monkeypatch.setattr(bench, "measure", lambda spec: bench.assemble_row(spec, 1.0, 1.0, 1.0))
    monkeypatch.setattr(bench, "gemm_peak_gflops", lambda device, dtype="fp32": {"fp32": 10.0, "bf16": 40.0}[dtype])
    import cutcore.hardware as hw

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(hw, "bf16_support", lambda device, cpuinfo=None, n=native: (n, "test"))
        assert bench.main(["--preset", "cut", "--precision", "auto", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows[0]["precision"] == expected and rows[0]["precision_reason"].startswith(expected)
        assert rows[0]["peak_fraction"] == pytest.approx(1.0 / (40.0 if expected == "bf16" else 10.0))


def test_default_rows_per_device(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(bench, "measure", lambda spec: seen.append(spec) or bench.assemble_row(spec, 1.0, None, 1.0))
    monkeypatch.setattr(bench, "gemm_peak_gflops", lambda device, dtype="fp32": 1.0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench.main(["--device", "cuda", "--size", "256,512", "--json"]) == 0
    train = [(s["preset"], s["size"]) for s in seen if s["kind"] == "train"]
    assert train == [("cut", 256), ("fastcut", 256), ("cyclegan", 256), ("sincut", 256),
                     ("cut", 512), ("fastcut", 512), ("cyclegan", 512)]  # SinCUT has its own crop size: once
    assert [s["size"] for s in seen if s["kind"] == "inference"] == [256, 512, 1024]
    seen.clear()
    assert bench.main(["--json"]) == 0  # CPU defaults unchanged
    assert [s["preset"] for s in seen if s["kind"] == "train"] == bench.TRAIN_PRESETS
    assert [s["size"] for s in seen if s["kind"] == "inference"] == [256, 512]
    seen.clear()
    assert bench.main(["--preset", "cut", "--infer-sizes", "256", "--channels-last", "--json"]) == 0
    assert [(s["kind"], s["channels_last"]) for s in seen] == [("train", True), ("inference", False)]  # as they run
    capsys.readouterr()


def test_reference_rows_follow_the_device(monkeypatch, capsys, tmp_path):
    import cutcore.hardware as hw

    seen = []
    monkeypatch.setattr(hw, "bf16_support", lambda device, cpuinfo=None: (True, "test"))
    monkeypatch.setattr(bench, "measure", lambda spec: seen.append(spec) or bench.assemble_row(spec, 1.0, None, 1.0))
    monkeypatch.setattr(bench, "gemm_peak_gflops", lambda device, dtype="fp32": 1.0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench.main(["--device", "cuda", "--preset", "cut", "--infer-sizes", "512", "--tiled", "4096",
                       "--batch-size", "8", "--precision", "bf16", "--reference", str(tmp_path), "--json"]) == 0
    refs = [s for s in seen if s["impl"] == "reference"]
    assert [(s["kind"], s["device"], s["precision"], s["batch_size"]) for s in refs] == [
        ("train", "cuda", "fp32", 8), ("inference", "cuda", "fp32", 8)]  # no tiled row for the reference
    capsys.readouterr()


_FAKE_REFERENCE_MODELS = """
calls = []


class _Model:
    def __init__(self, opt):
        self.opt = opt

    def setup(self, opt):
        calls.append("setup")

    def parallelize(self):
        pass

    def set_input(self, data):
        calls.append(("input", tuple(data["A"].shape)))

    def optimize_parameters(self):
        calls.append("step")


class CUTModel(_Model):
    def data_dependent_initialize(self, data):
        calls.append(("init", tuple(data["A"].shape)))


class CycleGANModel(_Model):  # as the reference's: no data argument, an option its parser lacks
    def data_dependent_initialize(self):
        calls.append(("init",))

    def optimize_parameters(self):
        calls.append(("step", self.opt.amp, self.opt.no_antialias, self.opt.no_antialias_up))


def create_model(opt):
    return {"cut": CUTModel, "cycle_gan": CycleGANModel}[opt.model](opt)
"""

_FAKE_REFERENCE_OPTIONS = """
import sys
from types import SimpleNamespace


class TrainOptions:
    def parse(self):
        args = sys.argv[1:]
        value = lambda flag: args[args.index(flag) + 1]
        return SimpleNamespace(model=value("--model"), crop_size=int(value("--crop_size")),
                               batch_size=int(value("--batch_size")), no_antialias="--no_antialias" in args,
                               no_antialias_up="--no_antialias_up" in args)
"""


@pytest.fixture
def fake_reference(tmp_path, monkeypatch):
    """A checkout with the reference's model/option API (models.create_model, TrainOptions), imported
    by `_reference_train` as the real one is; its modules are dropped again afterwards."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text(_FAKE_REFERENCE_MODELS)
    (tmp_path / "options").mkdir()
    (tmp_path / "options" / "__init__.py").write_text("")
    (tmp_path / "options" / "train_options.py").write_text(_FAKE_REFERENCE_OPTIONS)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    monkeypatch.setattr("sys.argv", ["pytest"])
    monkeypatch.chdir(tmp_path)
    modules = __import__("sys").modules
    before = set(modules)
    yield tmp_path
    for name in set(modules) - before:
        if name == "models" or name.startswith("options"):
            del modules[name]


@pytest.mark.parametrize("preset", ["cut", "cyclegan"])
def test_reference_train_step_for_either_initialiser(fake_reference, preset):
    """The reference's CycleGAN takes no data in data_dependent_initialize (CUT does) and reads `opt.amp`, which
    its parser lacks: both steps run, CycleGAN's with its paper's networks (no antialiased resampling)."""
    run, device = bench._reference_train({"reference": str(fake_reference), "preset": preset, "device": "cpu",
                                          "size": 16, "batch_size": 2})
    run()
    import models  # the fake checkout's, put on sys.path by _reference_train

    init, step = (("init", (2, 3, 16, 16)), "step") if preset == "cut" else (("init",), ("step", False, True, True))
    assert models.calls == [init, "setup", ("input", (2, 3, 16, 16)), step]
    assert device == torch.device("cpu")


def test_partial_file_holds_the_rows_so_far(monkeypatch, capsys, tmp_path):
    partial = tmp_path / "rows.json"
    snapshots = []

    def fake_measure(spec):
        snapshots.append(json.loads(partial.read_text()) if partial.exists() else [])
        return bench.assemble_row(spec, 1.0, None, 1.0)

    monkeypatch.setattr(bench, "measure", fake_measure)
    monkeypatch.setattr(bench, "gemm_peak_gflops", lambda device, dtype="fp32": 2.0)
    assert bench.main(["--preset", "cut,fastcut", "--json", "--partial", str(partial)]) == 0
    assert [len(s) for s in snapshots] == [0, 1]  # written after each row, before the next
    final = json.loads(partial.read_text())
    assert final == json.loads(capsys.readouterr().out) and final[0]["gemm_peak_gflops"] == 2.0
