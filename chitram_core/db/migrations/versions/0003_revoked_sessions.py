"""revoked Supabase sessions; emails re-keyed NFKC + lower-case (no longer case-folded)

Revision ID: 0003_revoked_sessions
Revises: 0002_variants
Create Date: 2026-12-06 02:10:00
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

import chitram_core.db.tables

revision = "0003_revoked_sessions"
down_revision = "0002_variants"
branch_labels = None
depends_on = None

_users = sa.table(
    "users",
    sa.column("id", sa.String),
    sa.column("email", sa.String),
    sa.column("email_normalized", sa.String),
)


def _key(email: str, fold: bool) -> str:
    # The unique key as chitram_core.auth.rules made it before (fold) and makes it now. Written
    # out here so that this migration means the same whatever the rules become later.
    nfkc = unicodedata.normalize("NFKC", email)
    return unicodedata.normalize("NFKC", nfkc.casefold() if fold else nfkc.lower())


def _rekey(fold: bool) -> None:
    """Only addresses with non-ASCII letters change (for ASCII, lower-case is case folding); no
    two rows can collide, since equal lower-cased keys were equal case-folded ones."""
    bind = op.get_bind()
    rows = bind.execute(sa.select(_users.c.id, _users.c.email, _users.c.email_normalized))
    for user_id, email, stored in rows.fetchall():
        key = _key(email, fold)
        if key != stored:
            bind.execute(
                sa.update(_users).where(_users.c.id == user_id).values(email_normalized=key)
            )


def upgrade() -> None:
    op.create_table(
        "revoked_sessions",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", chitram_core.db.tables.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_revoked_sessions")),
    )
    with op.batch_alter_table("revoked_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_revoked_sessions_expires_at"), ["expires_at"], unique=False
        )
    _rekey(fold=False)


def downgrade() -> None:
    # Back to case-folded keys. Two accounts that only case folding tells apart (straße@ and
    # strasse@) would collide: the downgrade then fails on the unique key, and nothing changes.
    _rekey(fold=True)
    with op.batch_alter_table("revoked_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revoked_sessions_expires_at"))
    op.drop_table("revoked_sessions")
