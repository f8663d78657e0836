"""tags, image tags and the durable job table

Revision ID: 0002_tags
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa

import chitram_core.db.tables


revision = "0002_tags"
down_revision = "0001"
branch_labels = None
depends_on = None

_SQLITE_TRIGGERS = (
    """CREATE TRIGGER image_tags_count_insert AFTER INSERT ON image_tags
    BEGIN UPDATE tags SET image_count = image_count + 1 WHERE id = NEW.tag_id; END""",
    """CREATE TRIGGER image_tags_count_delete AFTER DELETE ON image_tags
    BEGIN UPDATE tags SET image_count = image_count - 1 WHERE id = OLD.tag_id; END""",
)

_PG_TRIGGERS = (
    """CREATE FUNCTION chitram_image_tags_count() RETURNS trigger AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE tags SET image_count = image_count + 1 WHERE id = NEW.tag_id;
            RETURN NEW;
        END IF;
        UPDATE tags SET image_count = image_count - 1 WHERE id = OLD.tag_id;
        RETURN OLD;
    END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER image_tags_count AFTER INSERT OR DELETE ON image_tags
    FOR EACH ROW EXECUTE FUNCTION chitram_image_tags_count()""",
)


def upgrade() -> None:
    utc = chitram_core.db.tables.UTCDateTime
    op.create_table(
        "tags",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("category", sa.String(length=20), nullable=True),
        sa.Column("image_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tags")),
        sa.UniqueConstraint("name", name=op.f("uq_tags_name")),
    )
    op.create_index("ix_tags_popular", "tags", [sa.text("image_count DESC"), "name"])
    if op.get_bind().dialect.name == "postgresql":
        # LIKE 'prefix%' can use a btree only with the pattern operator class (any collation).
        op.create_index(
            "ix_tags_name_pattern",
            "tags",
            ["name"],
            postgresql_ops={"name": "varchar_pattern_ops"},
        )
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.String(length=36), nullable=False),
        sa.Column("tag_id", sa.String(length=36), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("confidence", sa.Integer(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"], ["images.id"], name=op.f("fk_image_tags_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["tags.id"], name=op.f("fk_image_tags_tag_id_tags"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("image_id", "tag_id", name=op.f("pk_image_tags")),
    )
    op.create_index("ix_image_tags_tag", "image_tags", ["tag_id", "image_id"])
    op.create_table(
        "jobs",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", utc(), nullable=False),
        sa.Column("lease_until", utc(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_jobs")),
    )
    op.create_index("ix_jobs_due", "jobs", ["state", "next_attempt_at"])
    triggers = _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS image_tags_count ON image_tags")
        op.execute("DROP FUNCTION IF EXISTS chitram_image_tags_count()")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_image_tags_tag", table_name="image_tags")
    op.drop_table("image_tags")  # SQLite drops its triggers with the table
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tags_name_pattern", table_name="tags")
    op.drop_index("ix_tags_popular", table_name="tags")
    op.drop_table("tags")
