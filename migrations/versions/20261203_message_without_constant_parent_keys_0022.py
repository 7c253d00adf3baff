"""message: no foreign keys to the workspace and the template version; a trigger deletes a
workspace's messages with it

Every message of a fan-out chunk has the same workspace and template version, so their two
foreign keys locked the same two parent rows (``FOR KEY SHARE``) once per message row. With two
fan-out lanes writing at once, each lock on those rows became a multixact of both transactions:
PostgreSQL's CPU per recipient went from 21 to 29 µs, and two lanes were barely faster than one
(1.12× at 100,000 recipients on a quiet machine; 1.54× without these two keys). Every writer of
``message`` copies both ids from rows that have foreign keys of their own (the API key's
workspace, the campaign and its pinned variant); template versions are immutable and deleted only
with their workspace. What the workspace's ``ON DELETE CASCADE`` did, a ``BEFORE DELETE`` trigger
on ``workspace`` still does. The profile's key stays: its ``ON DELETE SET NULL`` is erasure, and
its rows differ per message.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_POSTGRESQL = (
    """
    CREATE FUNCTION ccm_delete_workspace_messages() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM message WHERE workspace_id = OLD.id;
        RETURN OLD;
    END
    $$
    """,
    """
    CREATE TRIGGER trg_workspace_delete_messages BEFORE DELETE ON workspace
    FOR EACH ROW EXECUTE FUNCTION ccm_delete_workspace_messages()
    """,
)
_SQLITE = """
    CREATE TRIGGER trg_workspace_delete_messages BEFORE DELETE ON workspace FOR EACH ROW
    BEGIN
        DELETE FROM message WHERE workspace_id = OLD.id;
    END
"""


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_constraint("fk_message_workspace_id_workspace", type_="foreignkey")
        batch.drop_constraint("fk_message_template_version_id_template_version", type_="foreignkey")
    if _is_postgresql():
        for statement in _POSTGRESQL:
            op.execute(statement)
    else:
        op.execute(_SQLITE)


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_workspace_delete_messages" + (" ON workspace" if _is_postgresql() else ""))
    if _is_postgresql():
        op.execute("DROP FUNCTION ccm_delete_workspace_messages()")
    with op.batch_alter_table("message") as batch:
        batch.create_foreign_key(
            "fk_message_workspace_id_workspace", "workspace", ["workspace_id"], ["id"], ondelete="CASCADE"
        )
        batch.create_foreign_key(
            "fk_message_template_version_id_template_version", "template_version", ["template_version_id"], ["id"]
        )


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"
