"""Median timing helpers."""

import statistics
import time
from collections.abc import Callable, Mapping


def samples_ms(operation: Callable[[], object], *, runs: int) -> list[float]:
    """Wall time of each of ``runs`` calls, in milliseconds."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        operation()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def median_us_interleaved(
    operations: Mapping[str, Callable[[], object]], *, batches: int, size: int
) -> dict[str, float]:
    """For each operation, the median over ``batches`` of the mean time of ``size``
    back-to-back calls, in µs.

    Batches of many calls suit operations of a few microseconds, where one timer read
    per call would be a visible part of the measurement. The operations take turns
    batch by batch, so a machine whose speed drifts during the run (as a shared
    two-core one does) slows them alike and leaves their ratio alone. Their order
    alternates too.
    """
    samples: dict[str, list[float]] = {name: [] for name in operations}
    for operation in operations.values():  # warm-up
        for _ in range(size):
            operation()
    turns = list(operations.items())
    for batch in range(batches):
        for name, operation in turns if batch % 2 else reversed(turns):
            start = time.perf_counter_ns()
            for _ in range(size):
                operation()
            samples[name].append((time.perf_counter_ns() - start) / size)
    return {name: statistics.median(values) / 1e3 for name, values in samples.items()}
