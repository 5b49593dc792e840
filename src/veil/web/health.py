"""``GET /healthz``: whether this replica can serve, for load balancers and probes."""

import asyncio

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from veil.web.errors import ApiError, ErrorBody

PROBE_SECONDS = 3.0
"""A database slower than this to answer ``SELECT 1`` counts as down."""


class Health(BaseModel):
    status: str


def add_health_route(app: FastAPI, engine: Engine) -> None:
    """200 while the database answers a query, else 503 (the replica's one dependency
    that requests cannot do without). Probes share one query in flight, so a stuck
    database holds one thread, not one per probe."""
    in_flight: asyncio.Future[None] | None = None

    def database_answers() -> None:
        # A raw DBAPI connection: no SQLAlchemy transaction, so SQLite's BEGIN IMMEDIATE
        # (which queues behind writers) is not taken.
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            connection.close()

    @app.get(
        "/healthz",
        tags=["health"],
        responses={503: {"model": ErrorBody, "description": "the database does not answer"}},
    )
    async def health() -> Health:
        nonlocal in_flight
        if (
            in_flight is None
            or in_flight.done()
            or in_flight.get_loop() is not asyncio.get_running_loop()  # (a test's new loop)
        ):
            in_flight = asyncio.ensure_future(run_in_threadpool(database_answers))
        try:
            await asyncio.wait_for(asyncio.shield(in_flight), PROBE_SECONDS)
        except Exception:  # any failure, or no answer in time: send requests elsewhere
            raise ApiError(503, "unavailable", "the database does not answer") from None
        return Health(status="ok")
