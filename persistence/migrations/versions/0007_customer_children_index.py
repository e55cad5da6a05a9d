"""customers: children index ordered by id

Without `id` in it, SQLite answered `WHERE org_id = ? AND parent_id = ? ORDER BY id` by walking every
customer of the organisation in id order (the index that avoids the sort) instead of this one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_org_parent')
        batch_op.create_index('ix_customers_org_parent', ['org_id', 'parent_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_org_parent')
        batch_op.create_index('ix_customers_org_parent', ['org_id', 'parent_id'], unique=False)
