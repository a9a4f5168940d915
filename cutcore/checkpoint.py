"""Checkpoints: safetensors for tensors, JSON for configs and state, both written atomically.

Nothing here unpickles: weights are safetensors, optimiser state is flattened into safetensors
plus a JSON skeleton, so a downloaded checkpoint cannot execute code.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .files import atomic_write


def write_json(path: str | os.PathLike, obj: Any) -> None:
    if is_dataclass(obj):
        obj = asdict(obj)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, default=_path_text)

    atomic_write(Path(path), write)


def _path_text(value: Any) -> str:
    """Paths (a config's data root given as a Path) are saved as their text."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(data))


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(Path(path), lambda tmp: save_file(flat, tmp, metadata=metadata))


def load_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return load_file(str(path), device=str(device))


def module_state(modules: dict[str, torch.nn.Module], dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """One flat dict `<module>.<param>`; floating tensors cast to `dtype` when given (fp16 export)."""
    out = {}
    for name, m in modules.items():
        for k, v in m.state_dict().items():
            out[f"{name}.{k}"] = v.to(dtype) if dtype is not None and v.is_floating_point() else v
    return out


def split_state(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def optimizer_state(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state_dict into tensors (for safetensors) and a JSON-able skeleton."""
    sd = opt.state_dict()
    tensors, state = {}, {}
    for pid, st in sd["state"].items():
        entry = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                key = f"{prefix}.{pid}.{k}"
                tensors[key] = v
                entry[k] = {"tensor": key}
            else:
                entry[k] = v
        state[str(pid)] = entry
    return tensors, {"state": state, "param_groups": sd["param_groups"]}


def load_optimizer_state(opt: torch.optim.Optimizer, skeleton: dict, tensors: dict[str, torch.Tensor]) -> None:
    state = {}
    for pid, entry in skeleton["state"].items():
        state[int(pid)] = {k: tensors[v["tensor"]] if isinstance(v, dict) and "tensor" in v else v
                           for k, v in entry.items()}
    opt.load_state_dict({"state": state, "param_groups": skeleton["param_groups"]})
    # Saved tensors come back contiguous; moments of a channels_last parameter must share its strides
    # (CUDA's fused Adam refuses mixed layouts, the CPU one silently pairs the wrong elements).
    for param, entry in opt.state.items():
        for k, v in entry.items():
            if torch.is_tensor(v) and v.shape == param.shape and v.stride() != param.stride():
                entry[k] = torch.empty_like(param, dtype=v.dtype).copy_(v)


def checkpoint_dirs(run: Path) -> list[Path]:
    """A training run's checkpoints/step_N folders, oldest first."""
    root = Path(run) / "checkpoints"
    return sorted(root.glob("step_*"), key=lambda p: int(p.name.split("_")[1])) if root.is_dir() else []


MODEL_FILES = ("previews", "losses.jsonl", "model.safetensors")  # what a SinCUT run or an export writes


def existing_run(folder: Path) -> tuple[str, str] | None:
    """What a new run in `folder` would overwrite (`train` and `sincut` refuse it, each in its own words):
    ("training run", "checkpoints up to step_N"), ("model", the model or SinCUT files there), or None."""
    if ckpts := checkpoint_dirs(folder):
        return "training run", f"checkpoints up to {ckpts[-1].name}"
    if held := [name for name in MODEL_FILES if (Path(folder) / name).exists()]:
        return "model", ", ".join(held)
    return None
