"""Run a handler's torch work on a thread that ends with it.

On a CPU every thread that runs a parallel torch operator gets an OpenMP thread pool of its own,
kept until that thread ends. Gradio runs handlers on long-lived worker threads, so a translation
left a second pool beside the SinCUT training thread's; with more OpenMP threads than cores libgomp
stops spinning between operators, and a SinCUT run in the app after a translation took 0.743 s an
iteration instead of 0.601 (after a Correspondence analysis 0.735; `scripts/bench_app_sincut.py`).
A thread of its own per call, gone when the call returns, takes the pool with it (0.587 and 0.581).
"""
from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_own_thread(fn: Callable[..., T], /, *args, **kwargs) -> T:
    """fn(*args, **kwargs) on a new thread, waited for: its result, or its exception raised here.

    The thread runs in a copy of the caller's context, so Gradio's progress reporting and request
    state (context variables) work there as in the handler."""
    context = contextvars.copy_context()
    outcome: list = []

    def target() -> None:
        try:
            outcome.append((True, context.run(fn, *args, **kwargs)))
        except BaseException as e:  # noqa: BLE001 - handed to the caller, which decides
            outcome.append((False, e))

    thread = threading.Thread(target=target, name=f"torch:{getattr(fn, '__name__', 'work')}", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome.pop()
    if ok:
        return value
    try:
        raise value
    finally:
        del value  # the traceback's frames (and the images they hold) go with the exception, not with this frame
