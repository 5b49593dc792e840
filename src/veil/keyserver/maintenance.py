"""Operator tasks that work on the database directly (``veil audit verify``)."""

from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session

from veil.keyserver.audit import ChainReport, verify_chain
from veil.web.database import create_db_engine


class AuditUnreadable(Exception):
    """The audit log could not be read at all (no such database, no audit table, no
    connection): not the same as a broken chain, which ``verify_audit`` reports."""


def verify_audit(database_url: str) -> ChainReport:
    """Check the whole audit chain of the key service database at ``database_url``."""
    try:
        url = make_url(database_url)
    except Exception:
        raise AuditUnreadable("not a database URL: sqlite:///PATH or postgresql://...") from None
    shown = url.difference_update_query(["password"]).render_as_string(hide_password=True)
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
        return create_db_engine(url.render_as_string(hide_password=False))
    if backend != "sqlite":
        raise AuditUnreadable("not a database URL: sqlite:///PATH or postgresql://...")
    name = url.database or ""
    path = name.removeprefix("file:") if url.query.get("uri") == "true" else name
    if not path or path == ":memory:" or not Path(path).is_file():
        # Connecting would create an empty database and report on it.
        raise AuditUnreadable(f"no SQLite database at {path or '(memory)'}")
    # Read-only and without the service's BEGIN IMMEDIATE: a check must not queue
    # behind (or hold up) a live key service's writes.
    return create_engine(f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true")
