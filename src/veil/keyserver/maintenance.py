"""Operator tasks that work on the database directly (``veil audit verify``)."""

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from veil.keyserver.audit import ChainReport, verify_chain
from veil.web.database import create_db_engine

_NOT_A_URL = "not a database URL: sqlite:///PATH or postgresql://..."


class AuditUnreadable(Exception):
    """The audit log could not be read at all (no such database, no audit table, no
    connection): not the same as a broken chain, which ``verify_audit`` reports."""


def verify_audit(database_url: str) -> ChainReport:
    """Check the whole audit chain of the key service database at ``database_url``, in
    one snapshot (a live service may be appending meanwhile)."""
    try:
        url = make_url(database_url)
    except Exception:
        raise AuditUnreadable(_NOT_A_URL) from None
    hidden = [name for name in url.query if "password" in name.lower()]
    shown = url.difference_update_query(hidden).render_as_string(hide_password=True)
    try:
        engine = _reader(url)
        try:
            with Session(engine) as session, session.begin():
                return verify_chain(session)
        finally:
            engine.dispose()
    except AuditUnreadable:
        raise
    except Exception as error:  # a driver, a connection, a missing table: not a verdict
        cause = str(getattr(error, "orig", None) or error).strip().splitlines()
        reason = cause[0] if cause else type(error).__name__
        raise AuditUnreadable(f"cannot read the audit log at {shown}: {reason}") from None


def _reader(url: URL) -> Engine:
    backend = url.get_backend_name()
    if backend == "postgresql":
        engine = create_db_engine(url.render_as_string(hide_password=False))
        return engine.execution_options(isolation_level="REPEATABLE READ").engine
    if backend != "sqlite":
        raise AuditUnreadable(_NOT_A_URL)
    name = url.database or ""
    path = name.removeprefix("file:") if url.query.get("uri") == "true" else name
    if not path or path == ":memory:" or not Path(path).is_file():
        # Connecting would create an empty database and report on it.
        raise AuditUnreadable(f"no SQLite database at {path or '(memory)'}")
    # Read-only, and a plain deferred BEGIN (not the service's BEGIN IMMEDIATE): one
    # snapshot, without queueing behind (or holding up) a live key service's writes.
    uri = Path(path).resolve().as_uri() + "?mode=ro"

    def connect() -> sqlite3.Connection:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None)
        # A tampered value that is not UTF-8 must fail its hash, not the read.
        connection.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
        return connection

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "begin", _begin_deferred)
    return engine


def _begin_deferred(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
