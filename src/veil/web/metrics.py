"""Prometheus metrics (``prometheus_client``): each app has its own registry, served at
``GET /metrics`` in the Prometheus text format (OpenMetrics when the scraper asks).

Every service exports the HTTP metrics below and the process's (CPU, memory, open
files); the key service adds its transforms (``veil.keyserver.metrics``), the
conference service its board and relay (``veil.conference.metrics``). Labels take
bounded values only: the route template (``/v1/groups/{group_id}``), never the path.

Metrics are this process's: under ``uvicorn --workers N`` each worker counts its own,
and a scrape reaches whichever worker takes the connection. Run one worker per replica
and scrape each replica.
"""

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.asgi import make_asgi_app
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Seconds. A transform takes a few milliseconds; a probe or a lookup less than one."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def new_registry() -> CollectorRegistry:
    """A registry with the process's metrics (``process_*``, ``python_*``)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class HttpMetrics:
    """Requests by method, route template and status; their latency; those in flight."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "veil_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "veil_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = 0
        """Requests being served (a plain count on the event loop, read when scraped)."""
        Gauge(
            "veil_http_requests_in_flight", "HTTP requests being served", registry=registry
        ).set_function(lambda: self.in_flight)
        # prometheus_client's labels() takes a lock and builds a key on every call: keep
        # each label set's children (bounded: methods x routes x statuses).
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "OTHER"
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class _Exposition:
    """``GET /metrics`` (a class, so that Starlette routes to it as an ASGI app)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._app = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def add_metrics_route(app: FastAPI, registry: CollectorRegistry) -> None:
    """``GET /metrics``, left out of the OpenAPI document (it is not the API)."""
    app.router.routes.append(
        Route("/metrics", _Exposition(registry), methods=["GET"], include_in_schema=False)
    )
