"""The conference service's state: database, board store, device directory, fan-out."""

from pathlib import Path

import httpx

from veil.conference.board import BoardStore
from veil.conference.directory import DeviceDirectory
from veil.conference.fanout import Fanout, create_fanout
from veil.conference.hub import Hub
from veil.conference.metrics import ConferenceMetrics
from veil.conference.settings import ConferenceSettings
from veil.conference.watch import DeviceWatch
from veil.web.database import create_db_engine, migrate, session_factory
from veil.web.tokens import JwtVerifier

MIGRATIONS = Path(__file__).parent / "migrations"


class ConferenceService:
    def __init__(self, settings: ConferenceSettings, fanout: Fanout | None = None) -> None:
        self.settings = settings
        self.engine = create_db_engine(settings.database_url)
        migrate(self.engine, MIGRATIONS, version_table="conference_alembic_version")
        self.sessions = session_factory(self.engine)
        self.board = BoardStore(self.engine, self.sessions)
        self.jwt = JwtVerifier(settings)
        self.http = httpx.AsyncClient(base_url=settings.keyserver_url, timeout=10)
        self.directory = DeviceDirectory(self.http, ttl=settings.device_cache_seconds)
        self.watch = DeviceWatch(self.directory, settings.device_recheck_seconds)
        self.hub = Hub(fanout or create_fanout(settings.fanout_url))
        self.metrics = ConferenceMetrics()

    def now(self) -> int:
        return int(self.settings.clock())

    async def close(self) -> None:
        await self.watch.close()
        await self.http.aclose()
        await self.hub.fanout.close()
        self.engine.dispose()
