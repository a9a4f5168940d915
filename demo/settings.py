"""The app's numeric, on/off and device settings from the environment (the list is in demo/__init__.py), and where
it writes a request's files.

Each is read where it is used, so a test or an operator can change it without a restart; `build_demo`
reads them all once when the app is built, so a bad value stops the server with one line naming the
variable instead of failing every request that reads it.
"""
from __future__ import annotations

import os
import re
import tempfile
import uuid
from pathlib import Path

from cutcore.official_urls import ON_WORDS

OFF_WORDS = ("0", "false", "no", "off")  # or unset or empty


class SettingError(ValueError):
    """An environment setting the app cannot use; the message names the variable and its value."""


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """$name as a whole number ≥ `minimum`; `default` when it is unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a whole number (default: {default})") from None
    if value < minimum:
        raise SettingError(f"{name}={value} is too small: at least {minimum} (default: {default})")
    return value


def env_flag(name: str) -> bool:
    """$name as on (ON_WORDS) or off (OFF_WORDS, or unset or empty), in any case."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in ON_WORDS:
        return True
    if value in ("", *OFF_WORDS):
        return False
    raise SettingError(f"{name}={raw!r} is neither on ({', '.join(ON_WORDS)}) nor off ({', '.join(OFF_WORDS)}, "
                       "or unset)")


def output_dir() -> Path:
    """A new folder for one request's files (a translation, a model's zip) under the temporary folder."""
    root = Path(tempfile.gettempdir()) / "cutcore-demo" / uuid.uuid4().hex[:12]
    root.mkdir(parents=True, exist_ok=True)
    return root


def device():
    """$CUTCORE_DEVICE ("auto" when unset: the GPU when CUDA is present, else the CPU) as a torch device."""
    from cutcore.hardware import DeviceError, resolve_device

    name = os.environ.get("CUTCORE_DEVICE", "").strip() or "auto"
    try:
        return resolve_device(name)
    except DeviceError as e:  # its advice names the CLI's --device flag; here the setting is the variable
        reason = re.split(r"[;:] use ", str(e))[0]
        raise SettingError(f"CUTCORE_DEVICE={name!r}: {reason}; set it to auto, cpu or cuda[:N], or unset it") from None
