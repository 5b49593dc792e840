"""device signing keys: every certified signing key a device has had

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00

Clients check a stored ciphertext (a document grant, an admin's group key) against
the certificate of the device key that signed it, which may have rotated since. The
keys devices hold now, with their certificates, are copied in; keys rotated away
before this revision are gone, so ciphertexts they signed can no longer be vouched
for (their readers refuse them until their owner grants them again).
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_signing_keys",
        sa.Column("signing_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("signing_key"),
    )
    with op.batch_alter_table("device_signing_keys") as batch:
        batch.create_index(batch.f("ix_device_signing_keys_device_id"), ["device_id"], unique=False)
    # A signing key held by two devices (nothing stopped a rotation to another's public
    # key before) names no single author: neither is copied.
    op.execute(
        """
        INSERT INTO device_signing_keys (signing_key, device_id, public_key, certificate,
                                         created_at)
        SELECT signing_key, id, public_key, certificate, created_at FROM devices
        WHERE certificate IS NOT NULL AND signing_key IN (
            SELECT signing_key FROM devices GROUP BY signing_key HAVING COUNT(*) = 1
        )
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("device_signing_keys") as batch:
        batch.drop_index(batch.f("ix_device_signing_keys_device_id"))
    op.drop_table("device_signing_keys")
