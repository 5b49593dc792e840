"""``GET /healthz`` (liveness) and ``GET /readyz`` (readiness), for load balancers and
probes.

``/healthz`` answers 200 while the replica's database answers, else 503: the one
dependency no request can do without. ``/readyz`` also checks what the service needs to
serve new work (each service passes its checks: fan-out and the key service for the
conference service, the transform workers for the key service) and answers 200 with
each check's state, or 503 naming the checks that failed. Load, such as requests
waiting for a transform worker, is not unreadiness: it is in ``/metrics``.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from veil.web.errors import ApiError, ErrorBody

PROBE_SECONDS = 3.0
"""A dependency slower than this to answer counts as down."""


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    """``ready``."""
    checks: dict[str, str]
    """Each check's state: ``ok``, or what was found (``redis``, ``2 of 2 workers``...)."""


class NotReady(Exception):
    """A readiness check failed; the message says why, in words safe to show anyone
    (no URL, no credential)."""


Check = Callable[[], Awaitable[str]]
"""A readiness check: returns its state, or raises ``NotReady``."""


class DatabaseProbe:
    """``SELECT 1`` on a raw connection. Probes share one query in flight, so a stuck
    database holds one thread, not one per probe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._in_flight: asyncio.Future[None] | None = None

    def _query(self) -> None:
        # A raw DBAPI connection: no SQLAlchemy transaction, so SQLite's BEGIN IMMEDIATE
        # (which queues behind writers) is not taken.
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            connection.close()

    async def check(self) -> str:
        in_flight = self._in_flight
        if (
            in_flight is None
            or in_flight.done()
            or in_flight.get_loop() is not asyncio.get_running_loop()  # (a test's new loop)
        ):
            in_flight = self._in_flight = asyncio.ensure_future(run_in_threadpool(self._query))
        try:
            await asyncio.wait_for(asyncio.shield(in_flight), PROBE_SECONDS)
        except Exception:  # any failure, or no answer in time
            raise NotReady("the database does not answer") from None
        return "ok"


def add_health_route(app: FastAPI, database: Engine | DatabaseProbe) -> DatabaseProbe:
    """``GET /healthz``: 200 while the database answers a query, else 503."""
    probe = database if isinstance(database, DatabaseProbe) else DatabaseProbe(database)

    @app.get(
        "/healthz",
        tags=["health"],
        responses={503: {"model": ErrorBody, "description": "the database does not answer"}},
    )
    async def health() -> Health:
        """Liveness: whether this replica can serve at all (its database answers)."""
        try:
            await probe.check()
        except NotReady as error:  # send requests elsewhere
            raise ApiError(503, "unavailable", str(error)) from None
        return Health(status="ok")

    return probe


def add_readiness_route(app: FastAPI, checks: Mapping[str, Check]) -> None:
    """``GET /readyz``: 200 when every check passes, else 503 ``not_ready`` naming each
    check that failed and why. The checks run concurrently, each for at most
    ``PROBE_SECONDS``."""

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"model": ErrorBody, "description": "a dependency is not ready"}},
    )
    async def ready() -> Readiness:
        """Readiness: whether this replica can take new work (its database, and the
        service's other dependencies)."""
        names = list(checks)
        outcomes = await asyncio.gather(*(_run(checks[name]) for name in names))
        states = dict(zip(names, outcomes, strict=True))
        failed = [f"{name}: {state}" for name, (ok, state) in states.items() if not ok]
        if failed:
            raise ApiError(503, "not_ready", "; ".join(failed))
        return Readiness(
            status="ready", checks={name: state for name, (_, state) in states.items()}
        )


async def _run(check: Check) -> tuple[bool, str]:
    try:
        return True, await asyncio.wait_for(check(), PROBE_SECONDS)
    except NotReady as error:
        return False, str(error)
    except TimeoutError:
        return False, f"no answer within {PROBE_SECONDS:g} s"
    except Exception as error:  # a message could name a host or worse: say only its kind
        return False, f"failed ({type(error).__name__})"
