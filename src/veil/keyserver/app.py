"""``create_app(settings)``: the key service as an ASGI app."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from veil.keyserver.deps import BEARER, SIGNATURE
from veil.keyserver.grouped import GroupedCommits
from veil.keyserver.metrics import TransformerCollector
from veil.keyserver.routes import devices, documents, groups, transforms, users
from veil.keyserver.service import KeyService
from veil.keyserver.settings import KeyServerSettings
from veil.keyserver.transformer import TransformerUnavailable
from veil.web.errors import ERROR_RESPONSES, error_body, install_handlers
from veil.web.health import NotReady, add_health_route, add_readiness_route
from veil.web.limits import BodyLimit
from veil.web.metrics import HttpMetrics, add_metrics_route, new_registry
from veil.web.observe import Observe
from veil.web.openapi import NO_CDN_DOCS, document_security, note_no_docs
from veil.web.origins import allow_browsers


def create_app(settings: KeyServerSettings) -> FastAPI:
    service = KeyService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        preparing = None
        if service.prepared.enabled:
            preparing = asyncio.create_task(service.prepared.run())
        yield
        if preparing is not None:
            preparing.cancel()
            with suppress(asyncio.CancelledError):
                await preparing
        service.close()

    app = FastAPI(
        title="Veil key service",
        version="1",
        description="Stores public keys, escrowed keys, transform keys, groups and an audit "
        "log; transforms encrypted keys for the device that asks. It cannot decrypt anything.",
        lifespan=lifespan,
        **NO_CDN_DOCS,
    )
    app.state.service = service
    authorizations = GroupedCommits[object](service, transforms.authorize_group)
    app.state.transform_authorizations = authorizations
    install_handlers(app)

    @app.exception_handler(TransformerUnavailable)
    async def transformer_unavailable(_: Request, __: TransformerUnavailable) -> JSONResponse:
        body = error_body("transformer_unavailable", "the transform worker failed; retry")
        return JSONResponse(body, status_code=503)

    # Transforms first: routes are matched in order, and theirs is the hot path.
    for module in (transforms, users, devices, groups, documents):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    document_security(app, [BEARER, *SIGNATURE])
    note_no_docs(app)
    database = add_health_route(app, service.engine)

    async def transform_workers() -> str:
        stats = service.transformer.stats()
        if stats.closed or (stats.pooled and stats.workers == 0):
            raise NotReady("the transform worker pool is closed")
        if not stats.pooled:
            return "in a thread"
        # A dead worker is replaced when a job finds it: the pool still serves.
        return f"{stats.alive} of {stats.workers} worker processes running"

    add_readiness_route(app, {"database": database.check, "transform_workers": transform_workers})
    registry = new_registry()
    registry.register(TransformerCollector(service.transformer, service.prepared, authorizations))
    add_metrics_route(app, registry)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    allow_browsers(app, settings.cors_origins)
    # Outermost: it sees every answer, a 413 from BodyLimit too.
    app.add_middleware(Observe, service="keyserver", metrics=HttpMetrics(registry))
    return app


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory veil.keyserver.app:create_app_from_env`` (settings from VEIL_*)."""
    return create_app(KeyServerSettings.from_env())
