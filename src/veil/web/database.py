"""Database engines, sessions and migrations for Veil's services (SQLite by default,
PostgreSQL when configured)."""

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

_MIGRATION_LOCK = 0x7665696C  # "veil": the PostgreSQL advisory lock replicas take to migrate


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and "uri" not in parsed.query:
            _create_private_file(Path(parsed.database))
        # A connection for each of the request threads (anyio's 40), kept: one opened
        # and closed per request costs a connect and the PRAGMAs each time.
        sizes = {} if parsed.database in (None, "", ":memory:") else _SQLITE_POOL
        engine = create_engine(
            url, connect_args={"timeout": _BUSY_SECONDS, "isolation_level": None}, **sizes
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        _Writer().listen(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # (str() would mask a password)
    # A server that accepts connections and never answers must not hang a request
    # (libpq's option; the URL's own connect_timeout wins).
    libpq = parsed.drivername in ("postgresql+psycopg", "postgresql+psycopg2")
    timeout = {"connect_timeout": 10} if libpq and "connect_timeout" not in parsed.query else {}
    return create_engine(
        parsed, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=timeout
    )


def _create_private_file(path: Path) -> None:
    """Create an empty SQLite database file readable by this user only (0600), unless it
    exists. SQLite would create it 0644 (less the umask), and it creates the ``-wal``
    and ``-shm`` files with the database file's own mode, so they are private too. The
    key service's database holds escrows and sealed secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


_BUSY_SECONDS = 30
_SQLITE_POOL = {"pool_size": 40, "max_overflow": 8}


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={_BUSY_SECONDS * 1000}")
    cursor.close()


class _Writer:
    """One SQLite transaction at a time in this process, queued on a lock.

    Each transaction takes SQLite's write lock at BEGIN (``BEGIN IMMEDIATE``), so that
    concurrent requests queue instead of failing with "database is locked" when a read
    transaction later wants to write. Left to SQLite, the queue is its busy handler,
    which sleeps 1, 2, 5, ... up to 100 ms between tries: under load, requests slept
    far longer than the transactions they waited for took. Threads of this process
    wait on this lock instead, and each is woken the moment the one before commits;
    SQLite's busy timeout still orders this process against other processes.

    The lock is taken before BEGIN and released once the transaction has ended: the
    ``commit`` and ``rollback`` events fire before SQLAlchemy ends it, so they end it
    themselves (the driver's own call then finds no transaction and does nothing), and
    a connection returned to the pool, or dropped, without either releases it too."""

    _HOLDS = "veil_sqlite_writer"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def listen(self, engine: Engine) -> None:
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "rollback", self._rollback)
        for name in ("checkin", "invalidate", "close"):
            event.listen(engine.pool, name, self._returned)

    def _begin(self, connection: Connection) -> None:
        if not self._lock.acquire(timeout=_BUSY_SECONDS):
            raise OperationalError("BEGIN IMMEDIATE", None, Exception("database is locked"))
        info = connection.connection.info
        info[self._HOLDS] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self._release(info)
            raise

    def _commit(self, connection: Connection) -> None:
        if connection.invalidated:  # released when it was invalidated
            return
        raw = connection.connection.dbapi_connection
        try:
            raw.commit()  # type: ignore[union-attr]
        except sqlite3.Error as error:
            # A COMMIT can fail (a deferred constraint, a full disk, SQLITE_BUSY) and
            # leave the transaction open, holding SQLite's write lock: end it before the
            # next writer of this process gets the lock. SQLAlchemy does not wrap what
            # this hook raises: give callers its named errors, as for any other
            # statement (IntegrityError is a 409 ``conflict``).
            with suppress(sqlite3.Error):
                raw.rollback()  # type: ignore[union-attr]
            raise DBAPIError.instance("COMMIT", None, error, sqlite3.Error) from error
        finally:
            self._release(connection.connection.info)

    def _rollback(self, connection: Connection) -> None:
        if connection.invalidated:
            return
        try:
            connection.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        finally:
            self._release(connection.connection.info)

    def _returned(self, _dbapi_connection: Any, record: Any, *_: Any) -> None:
        self._release(record.info)

    def _release(self, info: dict[Any, Any]) -> None:
        if info.pop(self._HOLDS, False):
            self._lock.release()


def migrate(engine: Engine, migrations: Path, version_table: str) -> None:
    """Bring one service's schema to its newest revision (Alembic), safely from several
    replicas. Each service keeps its own version table, so services can share a database."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["version_table"] = version_table
    with engine.connect() as connection:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            connection.commit()
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()
        finally:
            if postgres:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                connection.commit()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed if the block returns, rolled back if it raises."""
    with factory() as session, session.begin():
        yield session
