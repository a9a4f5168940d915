"""Precision auto-detection: native bf16 from CPU flags and CUDA capability (monkeypatched hardware)."""
from __future__ import annotations

import pytest
import torch

from cutcore import hardware
from cutcore.hardware import DeviceError, bf16_support, cpu_flags, resolve_device, resolve_precision

# Trimmed /proc/cpuinfo of three machines: AVX2-only EPYC (Zen 2/3), Zen 4 with AVX512-BF16,
# Sapphire Rapids with AMX, and a Graviton3 (aarch64 lists "Features", not "flags").
AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi2
processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c avx2 fma bmi2
"""
ZEN4 = "processor\t: 0\nflags\t\t: avx2 avx512f avx512bw avx512_vnni avx512_bf16 avx512vl\n"
SAPPHIRE = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_fp16 amx_bf16 amx_tile amx_int8\n"
GRAVITON3 = ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics sve bf16 i8mm\n"
             "CPU implementer\t: 0x41\n")
# Only avx512f (Skylake-X): AVX512 alone is not bf16.
SKYLAKE = "processor\t: 0\nflags\t\t: avx2 avx512f avx512bw avx512vl avx512_vnni\n"


def test_cpu_flags_parses_x86_and_arm():
    assert {"avx2", "fma"} <= cpu_flags(AVX2_ONLY)
    assert "avx512_bf16" in cpu_flags(ZEN4)
    assert "bf16" in cpu_flags(GRAVITON3)
    assert cpu_flags("processor: 0\n") is None


@pytest.mark.parametrize("text,native", [(AVX2_ONLY, False), (SKYLAKE, False), (ZEN4, True), (SAPPHIRE, True),
                                         (GRAVITON3, True)])
def test_native_bf16_cpu_from_flags(text, native):
    assert bf16_support("cpu", cpuinfo=text)[0] is native
    assert bf16_support(torch.device("cpu"), cpuinfo=text)[0] is native


def test_reads_proc_cpuinfo(tmp_path, monkeypatch):
    fake = tmp_path / "cpuinfo"
    fake.write_text(ZEN4)
    monkeypatch.setattr(hardware, "_CPUINFO", fake)
    assert bf16_support("cpu")[0]
    fake.write_text(AVX2_ONLY)
    assert not bf16_support("cpu")[0]
    assert resolve_precision("auto", "cpu") == ("fp32", "fp32 (auto): this CPU has no avx512_bf16/amx_bf16 "
                                                        "(bf16 would be emulated, slowly)")


def test_no_cpuinfo_falls_back_to_torch_capability(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "_CPUINFO", tmp_path / "missing")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    native, why = hardware.bf16_support("cpu")
    assert not native and "unknown" in why and "AVX512" in why
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AMX_BF16")
    assert bf16_support("cpu")[0]


def test_resolve_precision_cpu():
    assert resolve_precision("auto", "cpu", cpuinfo=ZEN4) == ("bf16", "bf16 (auto): this CPU has avx512_bf16")
    assert resolve_precision("auto", "cpu", cpuinfo=SAPPHIRE)[0] == "bf16"
    assert resolve_precision("auto", "cpu", cpuinfo=AVX2_ONLY)[0] == "fp32"
    # Explicit choices are honoured; an emulated bf16 carries a warning, a native one does not.
    assert resolve_precision("fp32", "cpu", cpuinfo=ZEN4) == ("fp32", "fp32 (as configured)")
    prec, why = resolve_precision("bf16", "cpu", cpuinfo=AVX2_ONLY)
    assert prec == "bf16" and "warning" in why and "slower" in why
    assert resolve_precision("bf16", "cpu", cpuinfo=ZEN4) == ("bf16", "bf16 (as configured)")
    for _, why in (resolve_precision(r, "cpu", cpuinfo=t) for r in ("auto", "bf16") for t in (ZEN4, AVX2_ONLY)):
        assert "\n" not in why


def test_resolve_precision_rejects_unknown():
    with pytest.raises(ValueError, match="auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")


def _fake_cuda(monkeypatch, name: str, capability: tuple[int, int], bf16: bool, available: bool = True):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16 or including_emulation)
    monkeypatch.setattr(torch.version, "hip", None)


def test_cuda_ampere_and_later_are_native(monkeypatch):
    _fake_cuda(monkeypatch, "NVIDIA H200", (9, 0), bf16=True)
    assert bf16_support("cuda")[0] and bf16_support("cuda:0")[0]
    assert resolve_precision("auto", "cuda") == ("bf16", "bf16 (auto): NVIDIA H200 (sm_90) has native bf16")


def test_cuda_pre_ampere_is_not_native_even_if_emulation_is_supported(monkeypatch):
    # A T4 (sm_75): torch.cuda.is_bf16_supported() says True by default (emulation; the fake does too) -> still fp32.
    _fake_cuda(monkeypatch, "Tesla T4", (7, 5), bf16=False)
    assert not bf16_support("cuda")[0]
    prec, why = resolve_precision("auto", "cuda")
    assert prec == "fp32" and "Tesla T4 (sm_75)" in why and "8.0" in why


def test_cuda_capability_gate_holds_when_torch_claims_support(monkeypatch):
    _fake_cuda(monkeypatch, "odd", (7, 0), bf16=True)
    assert not bf16_support("cuda")[0]


def test_cuda_absent(monkeypatch):
    _fake_cuda(monkeypatch, "none", (0, 0), bf16=False, available=False)
    assert resolve_precision("auto", "cuda") == ("fp32", "fp32 (auto): CUDA is not available")


def test_other_devices_are_not_native():
    assert not bf16_support("meta")[0]
    assert resolve_precision("auto", "meta")[0] == "fp32"


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device() == torch.device("cuda") and resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="CUDA is not available"):  # not a traceback at the first tensor
        resolve_device("cuda:1")
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # explicit names pass through
    with pytest.raises(DeviceError, match="cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_device_names_for_logs_and_model_cards(tmp_path, monkeypatch):
    assert hardware.cpu_name(AVX2_ONLY) == "AMD EPYC 7B12"
    assert hardware.cpu_name(ZEN4)  # no model name line: what Python knows, never empty
    fake = tmp_path / "cpuinfo"
    fake.write_text(AVX2_ONLY)
    monkeypatch.setattr(hardware, "_CPUINFO", fake)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert hardware.device_name("cpu") == "AMD EPYC 7B12 (2 threads)"
    _fake_cuda(monkeypatch, "NVIDIA H100 80GB HBM3", (9, 0), bf16=True)
    assert hardware.device_name("cuda") == hardware.device_name(torch.device("cuda", 0)) == "NVIDIA H100 80GB HBM3"
