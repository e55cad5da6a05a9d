"""events: backfills, amendments and deprecation; per-organisation grace period

Events gain `deprecated_by` (NULL for events that count), `backfill_id` and `amendment` (the version
number of an idempotency key, part of its unique index so an amendment keeps the event's id). The two
usage indexes become partial on `deprecated_by IS NULL`: hidden events never slow the normal reads.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import persistence.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_COUNTED = "deprecated_by IS NULL"


def _where(condition: str) -> dict[str, object]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.create_table('event_backfills',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('org_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('timeframe_start', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('timeframe_end', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('customer_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('replace_existing_events', sa.Boolean(), nullable=False),
    sa.Column('deprecation_filter', sa.Text(), nullable=True),
    sa.Column('close_time', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('events_ingested', sa.Integer(), nullable=False),
    sa.Column('created_at', persistence.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reverted_at', persistence.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.org_id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('event_backfills', schema=None) as batch_op:
        batch_op.create_index('ix_event_backfills_org_id', ['org_id', 'id'], unique=False)

    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_grace_period_seconds', sa.Integer(), server_default='43200',
                                      nullable=False))

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amendment', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('backfill_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('deprecated_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.drop_index('ix_events_org_idempotency')
        batch_op.drop_index('ix_events_org_customer_name_time')
        batch_op.drop_index('ix_events_org_time')
        batch_op.create_index('ix_events_org_idempotency', ['org_id', 'idempotency_key', 'amendment'], unique=True)
        batch_op.create_index('ix_events_org_customer_name_time', ['org_id', 'customer_id', 'event_name', 'timestamp'],
                              unique=False, **_where(_COUNTED))
        batch_op.create_index('ix_events_org_time', ['org_id', 'timestamp'], unique=False, **_where(_COUNTED))
        batch_op.create_index('ix_events_org_backfill', ['org_id', 'backfill_id'], unique=False,
                              **_where("backfill_id IS NOT NULL"))
        batch_op.create_index('ix_events_org_deprecated_by', ['org_id', 'deprecated_by'], unique=False,
                              **_where("deprecated_by IS NOT NULL"))


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_org_deprecated_by')
        batch_op.drop_index('ix_events_org_backfill')
        batch_op.drop_index('ix_events_org_time')
        batch_op.drop_index('ix_events_org_customer_name_time')
        batch_op.drop_index('ix_events_org_idempotency')
        batch_op.create_index('ix_events_org_time', ['org_id', 'timestamp'], unique=False)
        batch_op.create_index('ix_events_org_customer_name_time', ['org_id', 'customer_id', 'event_name', 'timestamp'],
                              unique=False)
        batch_op.create_index('ix_events_org_idempotency', ['org_id', 'idempotency_key'], unique=True)
        batch_op.drop_column('deprecated_by')
        batch_op.drop_column('backfill_id')
        batch_op.drop_column('amendment')

    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_column('event_grace_period_seconds')

    with op.batch_alter_table('event_backfills', schema=None) as batch_op:
        batch_op.drop_index('ix_event_backfills_org_id')

    op.drop_table('event_backfills')
