"""Database engines, sessions and migrations for Veil's services (SQLite by default,
PostgreSQL when configured)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

_MIGRATION_LOCK = 0x7665696C  # "veil": the PostgreSQL advisory lock replicas take to migrate


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and "uri" not in parsed.query:
            _create_private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 30, "isolation_level": None})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_begin)
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


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # Take the write lock at BEGIN, so concurrent requests queue instead of failing
    # with "database is locked" when a read transaction later wants to write.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


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
