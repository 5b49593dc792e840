"""``create_app(settings)``: the conference service as an ASGI app."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, WebSocket
from sqlalchemy.exc import IntegrityError

from veil.conference.board_channel import serve_board
from veil.conference.fanout import Fanout
from veil.conference.media_channel import serve_media
from veil.conference.models import PlatformShare
from veil.conference.service import ConferenceService
from veil.conference.settings import ConferenceSettings
from veil.conference.webapp import add_web_app
from veil.crypto import escrow
from veil.protocol import CONFERENCE_AUDIENCE
from veil.web.database import transaction
from veil.web.errors import ERROR_RESPONSES, conflict, install_handlers
from veil.web.health import PROBE_SECONDS, NotReady, add_health_route, add_readiness_route
from veil.web.limits import BodyLimit
from veil.web.logs import REQUEST_ID
from veil.web.metrics import HttpMetrics, add_metrics_route
from veil.web.observe import HEADER as REQUEST_ID_HEADER
from veil.web.observe import Observe
from veil.web.openapi import NO_CDN_DOCS, bearer_jwt, document_security, note_no_docs
from veil.web.origins import allow_browsers
from veil.web.schemas import PathId, Share
from veil.web.tokens import Identity, bearer_token

BEARER = bearer_jwt(
    service="conference service", audience=CONFERENCE_AUDIENCE, setting="VEIL_CONFERENCE_AUDIENCE"
)
"""How a caller authenticates over HTTP (the board and the relay authenticate in their
WebSocket handshake: ``veil.conference.handshake``)."""


def create_app(settings: ConferenceSettings, *, fanout: Fanout | None = None) -> FastAPI:
    service = ConferenceService(settings, fanout)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await service.close()

    app = FastAPI(
        title="Veil conference service",
        version="1",
        description="Meeting rooms: an ordered board of signed posts and a media relay "
        "for SFrame frames. It routes what clients send and can read none of it.",
        lifespan=lifespan,
        **NO_CDN_DOCS,
    )
    app.state.service = service
    install_handlers(app)
    app.add_middleware(BodyLimit, limit=16 * 1024)
    _observe(app, service)

    async def caller(authorization: Annotated[str | None, Depends(BEARER)]) -> Identity:
        # On the event loop: fetching the IdP's keys must not hold a worker thread.
        return await service.jwt.verify(bearer_token(authorization), fresh=False)

    document_security(app, [BEARER])
    note_no_docs(app)
    if settings.web_dir is not None:
        add_web_app(
            app, settings.web_dir, keyserver_url=settings.keyserver_url, idp_url=settings.issuer_url
        )

    @app.post("/v1/users/me/share", tags=["users"], responses=ERROR_RESPONSES)
    def platform_share(identity: Annotated[Identity, Depends(caller)]) -> Share:
        """The platform's 128-bit share of the caller's escrow password (made on first call)."""
        made = PlatformShare(
            user_id=identity.user_id, share=escrow.new_share(), created_at=service.now()
        )
        try:
            with transaction(service.sessions) as session:
                if session.get(PlatformShare, identity.user_id) is None:
                    session.add(made)
                    return Share(share=made.share)
        except IntegrityError:
            pass  # a concurrent first call stored its share first: that one is the share
        with transaction(service.sessions) as session:
            row = session.get(PlatformShare, identity.user_id)
            if row is None:
                raise conflict("conflict", "the share could not be stored; retry")
            return Share(share=row.share)

    @app.websocket("/v1/rooms/{room_id}/board")
    async def board(websocket: WebSocket, room_id: PathId) -> None:
        await serve_board(websocket, service, room_id)

    @app.websocket("/v1/rooms/{room_id}/media")
    async def media(websocket: WebSocket, room_id: PathId) -> None:
        await serve_media(websocket, service, room_id)

    return app


def _observe(app: FastAPI, service: ConferenceService) -> None:
    """Health and readiness, metrics, request ids (sent on to the key service too)."""
    database = add_health_route(app, service.engine)

    async def fanout() -> str:
        try:
            return await service.hub.fanout.ping()
        except Exception as error:
            raise NotReady(
                f"the fan-out backend does not answer ({type(error).__name__})"
            ) from None

    async def keyserver() -> str:
        try:
            response = await service.http.get("/healthz", timeout=PROBE_SECONDS)
        except httpx.HTTPError as error:
            raise NotReady(f"the key service does not answer ({type(error).__name__})") from None
        if response.status_code != 200:
            raise NotReady(f"the key service answers {response.status_code}")
        return "ok"

    add_readiness_route(app, {"database": database.check, "fanout": fanout, "keyserver": keyserver})
    add_metrics_route(app, service.metrics.registry)

    async def forward_request_id(request: httpx.Request) -> None:
        request_id = REQUEST_ID.get()
        if request_id is not None and REQUEST_ID_HEADER.decode() not in request.headers:
            request.headers[REQUEST_ID_HEADER.decode()] = request_id

    hooks = service.http.event_hooks
    hooks["request"] = [*hooks.get("request", []), forward_request_id]
    service.http.event_hooks = hooks
    allow_browsers(app, service.settings.cors_origins)
    # Added last, so outermost: it sees every answer, a 413 from BodyLimit too.
    app.add_middleware(
        Observe,
        service="conference",
        metrics=HttpMetrics(service.metrics.registry),
    )


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory veil.conference.app:create_app_from_env``."""
    return create_app(ConferenceSettings.from_env())
