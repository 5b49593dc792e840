"""Alembic environment: runs on the connection ``veil.web.database.migrate`` passes in."""

from alembic import context

from veil.conference.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    version_table=context.config.attributes["version_table"],
)
with context.begin_transaction():
    context.run_migrations()
