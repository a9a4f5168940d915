"""Ctrl-C as a request to stop: the first asks long work to stop after its current step (so what it
learnt can still be saved), a second one interrupts at once, as Ctrl-C normally does."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def first_ctrl_c_calls(request_stop: Callable[[], None]) -> Iterator[None]:
    """While inside, the first SIGINT calls `request_stop` and puts the previous handler back. Nothing
    changes off the main thread (Python cannot handle signals there) or where Ctrl-C is ignored
    (a process started with `&` from a script)."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = (signal.getsignal(signal.SIGINT) or signal.SIG_DFL) if in_main else None  # None: not set from Python
    active = in_main and previous is not signal.SIG_IGN

    def on_interrupt(*_) -> None:
        signal.signal(signal.SIGINT, previous)
        request_stop()

    if active:
        signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield
    finally:
        if active:
            signal.signal(signal.SIGINT, previous)
