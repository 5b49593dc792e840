"""Median timing helpers."""

import statistics
import time
from collections.abc import Callable


def median_ms(operation: Callable[[], object], *, runs: int, warmup: int = 5) -> float:
    """Median wall time of one call, in milliseconds."""
    for _ in range(warmup):
        operation()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        operation()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


def median_us_batched(operation: Callable[[], object], *, batches: int, size: int) -> float:
    """Median over ``batches`` of the mean time of ``size`` back-to-back calls, in µs.

    For operations of a few microseconds, where one timer read per call would be a
    visible part of the measurement.
    """
    for _ in range(size):
        operation()
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(size):
            operation()
        samples.append((time.perf_counter_ns() - start) / size)
    return statistics.median(samples) / 1e3
