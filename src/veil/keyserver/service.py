"""The key service's state: settings, database, verifiers, its own secrets."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from veil.crypto.keys import AugmentationSecret
from veil.crypto.sealing import Sealer, derive_service_key
from veil.crypto.signing import SigningKey
from veil.keyserver.auth import CallingDevice, SignedCall, authenticate, spend_refused
from veil.keyserver.chains import RecentChains
from veil.keyserver.precompute import PreparedPool
from veil.keyserver.settings import KeyServerSettings
from veil.keyserver.transformer import Transformer
from veil.web.database import create_db_engine, migrate, session_factory
from veil.web.errors import ApiError
from veil.web.tokens import JwtVerifier

MIGRATIONS = Path(__file__).parent / "migrations"


class KeyService:
    def __init__(self, settings: KeyServerSettings) -> None:
        self.settings = settings
        self.engine = create_db_engine(settings.database_url)
        migrate(self.engine, MIGRATIONS, version_table="keyserver_alembic_version")
        self.sessions = session_factory(self.engine)
        self.jwt = JwtVerifier(settings)
        signer_seed = derive_service_key(settings.service_secret, b"transform signer")
        self.signer = SigningKey.from_secret_bytes(signer_seed)
        self._sealer = Sealer(derive_service_key(settings.service_secret, b"augmentation seal"))
        self.transformer = Transformer(signer_seed, settings.transform_workers)
        self.recent_chains = RecentChains()
        self.prepared = PreparedPool(
            self.transformer, settings.prepared_transforms, tickets=self.recent_chains.ticket
        )

    def now(self) -> int:
        return int(self.settings.clock())

    @contextmanager
    def transaction(self, *, on_conflict: ApiError | None = None) -> Iterator[Session]:
        """One request's writes: all committed before the response, or none.

        ``on_conflict`` is raised instead when a concurrent request created the same
        row first (the database's unique constraints decide, on every replica)."""
        try:
            with self.sessions() as session, session.begin():
                yield session
        except IntegrityError:
            if on_conflict is None:
                raise
            raise on_conflict from None

    @contextmanager
    def signed(
        self, call: SignedCall, *, on_conflict: ApiError | None = None
    ) -> Iterator[tuple[Session, CallingDevice]]:
        """A signed request's transaction: authenticate the device and spend the nonce,
        then the request's own work, committed together.

        A request refused after it authenticated (not a member, a conflict, any error)
        rolls back, nonce included; the nonce is then spent in a transaction of its own,
        or the request could be replayed, and succeed, once the reason for the refusal
        had gone away. Spending it up front instead would cost every request a second
        commit. What remains: a replay that arrives between the rollback and that
        second commit, of a request whose refusal stopped holding in that instant."""
        authenticated = False
        try:
            with self.transaction(on_conflict=on_conflict) as session:
                caller = authenticate(session, self.settings, call)
                authenticated = True
                yield session, caller
        except BaseException:
            if authenticated:
                with self.transaction() as session:
                    spend_refused(session, self.settings, call)
            raise

    def seal_augmentation(self, user_id: str, secret: AugmentationSecret) -> bytes:
        return self._sealer.seal(secret.to_secret_bytes(), context=user_id.encode())

    def open_augmentation(self, user_id: str, sealed: bytes) -> AugmentationSecret:
        raw = self._sealer.open(sealed, context=user_id.encode())
        return AugmentationSecret.from_secret_bytes(raw)

    def close(self) -> None:
        self.transformer.close()
        self.engine.dispose()
