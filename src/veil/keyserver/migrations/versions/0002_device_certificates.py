"""device certificates: the user's signature over each device's keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:15:00

Devices registered before this revision have no certificate; clients do not trust
their keys until they are rotated, certified (the SDK does it when it next loads such a
device).
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("certificate", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("certificate")
