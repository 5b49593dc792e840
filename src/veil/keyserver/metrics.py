"""The key service's own metrics: transforms, the transform workers and the prepared
transforms, read from the ``Transformer`` and the ``PreparedPool`` when scraped
(nothing is added to a transform's path but one count)."""

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from veil.keyserver.grouped import GroupedCommits
from veil.keyserver.precompute import PoolStats, PreparedPool
from veil.keyserver.transformer import Transformer, TransformerStats

OUTCOMES = ("ok", "failed", "unavailable", "cancelled")


class TransformerCollector:
    """``veil_transforms_total{outcome}``: transform chains run, by outcome (``failed``:
    the input did not decode or verify; ``unavailable``: the worker died; ``cancelled``:
    the request went away, or a transform started early on a guessed chain was not
    needed). ``veil_transform_workers`` (the pool's size; 0 when transforms run in a
    thread), ``veil_transform_workers_alive``, ``veil_transform_workers_busy`` and
    ``veil_transform_queue_depth`` (requests waiting for a worker);
    ``veil_prepared_transforms`` (held for the next rekey),
    ``veil_prepared_transforms_wanted`` (chains waiting for one) and
    ``veil_prepared_transform_lookups_total{result}`` (``hit``: a transform used one;
    ``miss``: it found none); ``veil_transform_authorizations_total`` and
    ``veil_transform_authorization_groups_total`` (requests decided, and the groups
    they were decided in: ``veil.keyserver.grouped``)."""

    def __init__(
        self,
        transformer: Transformer,
        pool: PreparedPool,
        authorizations: GroupedCommits[Any] | None = None,
    ) -> None:
        self.transformer, self.pool, self.authorizations = transformer, pool, authorizations

    def describe(self) -> Iterator[Metric]:
        return self._metrics(None, None, None)

    def collect(self) -> Iterator[Metric]:
        grouped = None
        if self.authorizations is not None:
            grouped = (self.authorizations.requests, self.authorizations.groups)
        return self._metrics(self.transformer.stats(), self.pool.stats(), grouped)

    @staticmethod
    def _metrics(
        stats: TransformerStats | None, pool: PoolStats | None, grouped: tuple[int, int] | None
    ) -> Iterator[Metric]:
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
        held = GaugeMetricFamily(
            "veil_prepared_transforms", "Transforms prepared for the next rekey, held"
        )
        wanted = GaugeMetricFamily(
            "veil_prepared_transforms_wanted", "Transform chains waiting for a prepared transform"
        )
        lookups = CounterMetricFamily(
            "veil_prepared_transform_lookups",
            "Transforms that looked for a prepared transform, by result",
            labels=["result"],
        )
        if pool is not None:
            held.add_metric([], pool.held)
            wanted.add_metric([], pool.wanted)
            lookups.add_metric(["hit"], pool.taken)
            lookups.add_metric(["miss"], pool.missed)
        yield from (held, wanted, lookups)
        requests = CounterMetricFamily(
            "veil_transform_authorizations", "Transform requests decided against the database"
        )
        groups = CounterMetricFamily(
            "veil_transform_authorization_groups",
            "Groups the transform requests were decided in, one transaction each",
        )
        if grouped is not None:
            requests.add_metric([], grouped[0])
            groups.add_metric([], grouped[1])
        yield from (requests, groups)
