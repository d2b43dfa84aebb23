"""positions.pending_bracket: "no bracket pending" is SQL NULL, never JSON null

Entries without take-profit or stop-loss stored JSON ``null`` (the JSON type's default for
None), which ``pending_bracket IS NOT NULL`` matches, so the monitor's "positions waiting
for a bracket" query matched every position ever opened and its cycle grew with history
(16-25 s at 5,770 positions). The model now stores SQL NULL (``JSON(none_as_null=True)``);
this makes the rows already written agree. Downgrading leaves them NULL: both mean "none".

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # json (not jsonb) has no equality operator: compare its text.
        op.execute(
            "UPDATE positions SET pending_bracket = NULL WHERE pending_bracket::text = 'null'"
        )
    else:
        op.execute(
            "UPDATE positions SET pending_bracket = NULL WHERE json_type(pending_bracket) = 'null'"
        )


def downgrade() -> None:
    pass
