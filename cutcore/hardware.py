"""How a run uses its device: which one, which precision (does it do bf16 natively? issue 12), which memory layout
and backend tuning, and the device's name for logs and model cards.

bf16 autocast pays off only where the hardware multiplies bf16 natively: NVIDIA GPUs from
Ampere (compute capability 8.0) on, and x86 CPUs with AVX512-BF16 or AMX-BF16 (oneDNN uses
them for matmuls and convolutions). Elsewhere PyTorch emulates bf16 — on an AVX2-only CPU a
bf16 2048² GEMM ran at 0.2 GFLOP/s against 153 fp32 — so "auto" picks fp32 there.

    resolve_precision("auto", "cpu")  # -> ("bf16", "bf16 (auto): this CPU has avx512_bf16") here
"""
from __future__ import annotations

import contextlib
import platform
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16")
# /proc/cpuinfo flags that mean native bf16 matmuls: x86 AVX512-BF16 and AMX-BF16 (Sapphire
# Rapids and later), and on aarch64 the "bf16" feature (BFMMLA/BFDOT, e.g. Graviton3, Neoverse V1).
_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_ARM_BF16_FLAGS = ("bf16",)
_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_fields(cpuinfo: str | None) -> list[tuple[str, str]]:
    """(key in lower case, value) of each `key : value` line of /proc/cpuinfo (`cpuinfo` overrides its
    text); none where it cannot be read."""
    if cpuinfo is None:
        try:
            cpuinfo = _CPUINFO.read_text(errors="replace")
        except OSError:
            return []
    fields = (line.partition(":") for line in cpuinfo.splitlines())
    return [(key.strip().lower(), value.strip()) for key, sep, value in fields if sep]


def cpu_flags(cpuinfo: str | None = None) -> set[str] | None:
    """The CPU feature flags from /proc/cpuinfo text (x86 'flags', aarch64 'Features'); None if unknown."""
    flags = {flag for key, value in _cpuinfo_fields(cpuinfo) if key in ("flags", "features") for flag in value.split()}
    return flags or None


def _cpu_bf16(cpuinfo: str | None = None) -> tuple[bool, str]:
    flags = cpu_flags(cpuinfo)
    if flags is not None:
        found = [f for f in _X86_BF16_FLAGS + _ARM_BF16_FLAGS if f in flags]
        if found:
            return True, f"this CPU has {'/'.join(found)}"
        return False, "this CPU has no avx512_bf16/amx_bf16 (bf16 would be emulated, slowly)"
    # No cpuinfo (macOS, Windows, a sandbox): ask PyTorch's dispatcher, which names the vector
    # ISA it picked; only a name that mentions bf16 or AMX counts (today's 'AVX512' does not).
    try:
        capability = str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001  (older torch: no such function)
        capability = ""
    if any(tag in capability.upper() for tag in ("BF16", "AMX")):
        return True, f"PyTorch reports CPU capability {capability}"
    return False, f"CPU bf16 support unknown (no /proc/cpuinfo; PyTorch capability {capability or 'n/a'})"


def _cuda_bf16(device: torch.device) -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, "CUDA is not available"
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = torch.cuda.get_device_name(index)
    major, minor = torch.cuda.get_device_capability(index)
    try:  # torch >= 2.3: without emulation, pre-Ampere GPUs answer False
        supported = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        supported = torch.cuda.is_bf16_supported()
    if getattr(torch.version, "hip", None):  # ROCm: capability numbers are not NVIDIA's
        return bool(supported), f"{name} ({'native' if supported else 'no'} bf16 per ROCm)"
    if supported and major >= 8:
        return True, f"{name} (sm_{major}{minor}) has native bf16"
    return False, f"{name} (sm_{major}{minor}) has no native bf16 (needs compute capability >= 8.0)"


def bf16_support(device: str | torch.device, cpuinfo: str | None = None) -> tuple[bool, str]:
    """(native bf16?, why) for `device`; `cpuinfo` overrides /proc/cpuinfo's text (tests)."""
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_bf16(device)
    if device.type == "cpu":
        return _cpu_bf16(cpuinfo)
    return False, f"native bf16 on {device.type} is not detected by cutcore"


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """What computing in `precision` ("fp32" or "bf16", as resolved) means on `device`: bf16 autocast, or nothing."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def resolve_precision(requested: str, device: str | torch.device, cpuinfo: str | None = None) -> tuple[str, str]:
    """("bf16" | "fp32", one line for the log) for a requested precision of "auto", "fp32" or "bf16".

    "auto" picks bf16 exactly where it is native. An explicit choice (given, a command's default, or a resumed run's
    resolved one) is always honoured; an explicit bf16 on a device that would emulate it says so in the reason.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "fp32":
        return "fp32", "fp32 (as configured)"
    native, why = bf16_support(device, cpuinfo)
    if requested == "bf16":
        warning = "" if native else f"; warning: {why}, so bf16 may be much slower than fp32"
        return "bf16", "bf16 (as configured)" + warning
    if native:
        return "bf16", f"bf16 (auto): {why}"
    return "fp32", f"fp32 (auto): {why}"


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo (`cpuinfo` overrides its text), else what Python knows."""
    names = [value for key, value in _cpuinfo_fields(cpuinfo) if key == "model name" and value]
    return names[0] if names else platform.processor() or platform.machine() or "CPU"


def device_name(device: str | torch.device) -> str:
    """What a run computes on, for logs and model cards: the GPU's name, or the CPU's with its threads."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device.index if device.index is not None else torch.cuda.current_device())
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"{cpu_name()} ({threads} thread{'s' if threads != 1 else ''})"
    return device.type


class DeviceError(ValueError):
    """A device `name` that cannot be used here."""

    def __init__(self, name: str, reason: str):
        super().__init__(reason)
        self.name = name


def no_cuda_reason() -> str:
    """Why CUDA is unavailable: no GPU, or a torch built without CUDA."""
    build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}, no GPU visible"
    return f"CUDA is not available (torch {torch.__version__}, {build})"


def resolve_device(name: str = "auto") -> torch.device:
    """"auto": the GPU when CUDA is present, else the CPU; any other name as torch spells it.

    A name torch does not know, or CUDA where there is none, is a DeviceError here, not a torch
    RuntimeError (with a traceback) at the first tensor moved there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(name, f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(name, f"{no_cuda_reason()}; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= (count := torch.cuda.device_count()):
        raise DeviceError(name, f"this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}")
    return device


def resolve_channels_last(setting: str | bool, device: str | torch.device) -> bool:
    """`runtime.channels_last`: "auto" is on for CUDA (cuDNN's tensor cores work in NHWC) and off
    elsewhere (the CPU keeps the layout it was measured with); True/"on" and False/"off" as said."""
    if setting in (True, "on"):
        return True
    if setting in (False, "off"):
        return False
    if setting == "auto":
        return torch.device(device).type == "cuda"
    raise ValueError(f"channels_last must be auto, on or off, not {setting!r}")


def tune_backends(device: str | torch.device) -> dict[str, object]:
    """Process-wide settings for training on `device`; what it set. On CUDA, cuDNN autotuning: the
    shapes of a run are fixed, so the first steps try its algorithms and the rest use the fastest
    (the choice may differ between processes: on CUDA a resume is close, not bit-identical).
    Nothing on other devices."""
    if torch.device(device).type != "cuda":
        return {}
    torch.backends.cudnn.benchmark = True
    return {"cudnn.benchmark": True}
