"""A wall-clock limit for a training run (`train --time-budget`)."""
from __future__ import annotations

import time
from collections.abc import Callable


class TimeBudget:
    """A wall-clock limit for a run: measures the step rate after a warm-up, then says how many
    steps fit, keeping a reserve for the final checkpoint and export."""

    WARMUP_STEPS, MEASURE_STEPS = 3, 20

    def __init__(self, seconds: float, sync: Callable[[], None] | None = None):
        """`sync` waits for the device (CUDA queues steps ahead of the host): called at the two
        moments the rate is measured between, so it is the device's rate."""
        if seconds <= 0:
            raise ValueError(f"time budget must be positive, got {seconds} s")
        self.seconds, self.start, self.sync = seconds, time.perf_counter(), sync
        self.reserve = min(60.0, max(2.0, 0.03 * seconds))
        self.steps_seen, self.mark = 0, None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def exhausted(self) -> bool:
        return self.elapsed() >= self.seconds - self.reserve

    def steps_that_fit(self, step: int) -> int | None:
        """Called after every step; once the rate is measured, the total number of steps that fit."""
        self.steps_seen += 1
        if self.steps_seen == self.WARMUP_STEPS:  # first steps pay for allocation and autotuning
            self._wait()
            self.mark = (time.perf_counter(), step)
            return None
        if self.mark is None:
            return None
        now = time.perf_counter()
        measured = step - self.mark[1]
        if measured < self.MEASURE_STEPS and now - self.mark[0] < 0.05 * self.seconds:
            return None
        self._wait()
        now = time.perf_counter()
        per_step = (now - self.mark[0]) / measured
        self.mark = None
        return step + int(max(0.0, self.seconds - self.reserve - self.elapsed()) / per_step)

    def _wait(self) -> None:
        if self.sync is not None:
            self.sync()
