"""Operator tasks that work on the database directly (``veil audit verify``)."""

from sqlalchemy.orm import Session

from veil.keyserver.audit import ChainReport, verify_chain
from veil.web.database import create_db_engine


def verify_audit(database_url: str) -> ChainReport:
    """Check the whole audit chain of the key service database at ``database_url``."""
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            return verify_chain(session)
    finally:
        engine.dispose()
