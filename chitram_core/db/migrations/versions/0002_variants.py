"""variants and placeholders

Revision ID: 0002_variants
Revises: 0001
Create Date: 2026-11-28 04:10:00
"""

import sqlalchemy as sa
from alembic import op

import chitram_core.db.tables

revision = "0002_variants"
down_revision = "0002_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blurhash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("dominant_color", sa.String(length=7), nullable=True))
    op.create_table(
        "variants",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("spec", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_at", chitram_core.db.tables.UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("content_type", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("created_at", chitram_core.db.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"], ["blobs.sha256"], name=op.f("fk_variants_sha256_blobs")
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_variants")),
    )
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_variants_sha256"), ["sha256"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("variants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_variants_sha256"))
    op.drop_table("variants")
    with op.batch_alter_table("blobs", schema=None) as batch_op:
        batch_op.drop_column("dominant_color")
        batch_op.drop_column("blurhash")
