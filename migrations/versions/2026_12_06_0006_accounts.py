"""account on signals, positions and orders: one signal can drive several named accounts

Existing rows belong to the account ``default`` (the single-key settings). A signal sent to
several accounts is a parent row with one child row per account (``parent_id``); each child
is executed on its own, exactly once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _account() -> sa.Column[str]:
    return sa.Column("account", sa.String(length=24), nullable=False, server_default="default")


def upgrade() -> None:
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.add_column(_account())
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_signals_parent_id", ["parent_id"])
        batch_op.create_foreign_key(
            "fk_signals_parent_id_signals", "signals", ["parent_id"], ["id"]
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(_account())
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.add_column(_account())
        batch_op.drop_index("ix_positions_key")
        batch_op.create_index(
            "ix_positions_key", ["account", "strategy", "market", "symbol", "status"]
        )


def downgrade() -> None:
    with op.batch_alter_table("positions", schema=None) as batch_op:
        batch_op.drop_index("ix_positions_key")
        batch_op.create_index("ix_positions_key", ["strategy", "market", "symbol", "status"])
        batch_op.drop_column("account")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("account")
    with op.batch_alter_table("signals", schema=None) as batch_op:
        batch_op.drop_constraint("fk_signals_parent_id_signals", type_="foreignkey")
        batch_op.drop_index("ix_signals_parent_id")
        batch_op.drop_column("parent_id")
        batch_op.drop_column("account")
