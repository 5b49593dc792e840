"""Operator tasks that work on the database directly (``veil audit verify``)."""

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
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
    except ArgumentError:
        raise AuditUnreadable("not a database URL: sqlite:///PATH or postgresql://...") from None
    backend = url.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise AuditUnreadable("not a database URL: sqlite:///PATH or postgresql://...")
    if backend == "sqlite" and not (url.database and Path(url.database).is_file()):
        # Connecting would create an empty database and report on it.
        raise AuditUnreadable(f"no SQLite database at {url.database or '(memory)'}")
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            return verify_chain(session)
    except SQLAlchemyError as error:
        cause = str(getattr(error, "orig", None) or type(error).__name__).splitlines()[0]
        where = url.render_as_string(hide_password=True)
        raise AuditUnreadable(f"cannot read the audit log at {where}: {cause}") from None
    finally:
        engine.dispose()
