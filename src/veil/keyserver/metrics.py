"""The key service's own metrics: transforms and the transform workers, read from the
``Transformer`` when scraped (nothing is added to a transform's path but one count)."""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from veil.keyserver.transformer import Transformer, TransformerStats

OUTCOMES = ("ok", "failed", "unavailable", "cancelled")


class TransformerCollector:
    """``veil_transforms_total{outcome}``: transform chains run, by outcome (``failed``:
    the input did not decode or verify; ``unavailable``: the worker died; ``cancelled``:
    the request went away, or a transform started early on a guessed chain was not
    needed). ``veil_transform_workers`` (the pool's size; 0 when transforms run in a
    thread), ``veil_transform_workers_alive``, ``veil_transform_workers_busy`` and
    ``veil_transform_queue_depth`` (requests waiting for a worker)."""

    def __init__(self, transformer: Transformer) -> None:
        self.transformer = transformer

    def describe(self) -> Iterator[Metric]:
        return self._metrics(None)

    def collect(self) -> Iterator[Metric]:
        return self._metrics(self.transformer.stats())

    @staticmethod
    def _metrics(stats: TransformerStats | None) -> Iterator[Metric]:
        transforms = CounterMetricFamily(
            "veil_transforms", "Transform chains run, by outcome", labels=["outcome"]
        )
        workers = GaugeMetricFamily(
            "veil_transform_workers",
            "Transform worker processes in the pool (0: transforms run in a thread)",
        )
        alive = GaugeMetricFamily(
            "veil_transform_workers_alive", "Transform worker processes running"
        )
        busy = GaugeMetricFamily("veil_transform_workers_busy", "Transform workers on a job")
        queue = GaugeMetricFamily(
            "veil_transform_queue_depth", "Transform requests waiting for a free worker"
        )
        if stats is not None:
            for outcome in OUTCOMES:
                transforms.add_metric([outcome], stats.outcomes.get(outcome, 0))
            workers.add_metric([], stats.workers)
            alive.add_metric([], stats.alive)
            busy.add_metric([], stats.busy)
            queue.add_metric([], stats.waiting)
        yield from (transforms, workers, alive, busy, queue)
