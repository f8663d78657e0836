"""resumable uploads

Revision ID: 0004_resumable_uploads
Revises: 0003_revoked_sessions
Create Date: 2026-12-06 01:50:00
"""

import sqlalchemy as sa
from alembic import op

import chitram_core.db.tables

revision = "0004_resumable_uploads"
down_revision = "0003_revoked_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resumable_uploads",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=36), nullable=True),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=1024), nullable=True),
        sa.Column("image_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", chitram_core.db.tables.UTCDateTime(), nullable=False),
        sa.Column("expires_at", chitram_core.db.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_resumable_uploads_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resumable_uploads")),
    )
    with op.batch_alter_table("resumable_uploads", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_resumable_uploads_expires_at"), ["expires_at"], unique=False
        )
    op.create_table(
        "resumable_parts",
        sa.Column("upload_id", sa.String(length=32), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["resumable_uploads.id"],
            name=op.f("fk_resumable_parts_upload_id_resumable_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "start", name=op.f("pk_resumable_parts")),
    )


def downgrade() -> None:
    op.drop_table("resumable_parts")
    with op.batch_alter_table("resumable_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resumable_uploads_expires_at"))
    op.drop_table("resumable_uploads")
