"""``GET /healthz``: whether this replica can serve, for load balancers and probes."""

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Engine, text
from starlette.concurrency import run_in_threadpool

from veil.web.errors import ApiError


class Health(BaseModel):
    status: str


def add_health_route(app: FastAPI, engine: Engine) -> None:
    """200 while the database answers a query, else 503 (the replica's one dependency
    that requests cannot do without)."""

    def database_answers() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    @app.get(
        "/healthz",
        tags=["health"],
        responses={503: {"description": "the database does not answer"}},
    )
    async def health() -> Health:
        try:
            await run_in_threadpool(database_answers)
        except Exception:  # any failure means: do not send requests here
            raise ApiError(503, "unavailable", "the database does not answer") from None
        return Health(status="ok")
