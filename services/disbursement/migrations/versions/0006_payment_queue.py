"""Disbursement: the payments a worker must act on (pending: due at `next_attempt_at`; sending: since
`updated_at`) are listed in `payment_queue`, kept by triggers on `payment`, instead of in two indexes over
`payment.status` (`ix_payment_due`, `ix_payment_status`), which are dropped. With no index naming `status`,
`updated_at` or `next_attempt_at`, a payment's status moves (claimed, answered, settled) are HOT updates: no
entry in its five remaining indexes, where each move wrote six. `payment` leaves half of each page free so that
a batch's updates, all rows of a page in one transaction, find room on the page (ADR 0044).

The triggers are per statement, over the statement's new rows (a transition table): one INSERT ... ON CONFLICT
and one DELETE per payment statement, whatever its batch size. A payment is in the queue exactly while its
status is pending or sending.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_FOLLOW = """
CREATE FUNCTION payment_queue_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM payment_queue AS q USING new_payments AS n
         WHERE q.payment_id = n.id AND n.status NOT IN ('pending', 'sending');
    END IF;
    INSERT INTO payment_queue (payment_id, status, at)
    SELECT n.id, n.status, CASE WHEN n.status = 'pending' THEN n.next_attempt_at ELSE n.updated_at END
      FROM new_payments AS n WHERE n.status IN ('pending', 'sending')
    ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status, at = excluded.at
     WHERE (payment_queue.status, payment_queue.at) IS DISTINCT FROM (excluded.status, excluded.at);
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "payment_queue",
        sa.Column("payment_id", sa.Uuid, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_payment_queue", "payment_queue", ["status", "at"])
    op.execute(_FOLLOW)
    for event in ("INSERT", "UPDATE"):
        op.execute(f"CREATE TRIGGER payment_queue_{event.lower()} AFTER {event} ON payment "
                   "REFERENCING NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION payment_queue_follow()")
    op.execute("INSERT INTO payment_queue (payment_id, status, at) SELECT id, status, CASE WHEN status = 'pending' "
               "THEN next_attempt_at ELSE updated_at END FROM payment WHERE status IN ('pending', 'sending')")
    op.drop_index("ix_payment_due", "payment")
    op.drop_index("ix_payment_status", "payment")
    op.execute("ALTER TABLE payment SET (fillfactor = 50)")


def downgrade() -> None:
    op.execute("ALTER TABLE payment RESET (fillfactor)")
    op.create_index("ix_payment_status", "payment", ["status", "updated_at"])
    op.create_index("ix_payment_due", "payment", ["next_attempt_at"], postgresql_where=sa.text("status = 'pending'"))
    for event in ("insert", "update"):
        op.execute(f"DROP TRIGGER payment_queue_{event} ON payment")
    op.execute("DROP FUNCTION payment_queue_follow()")
    op.drop_table("payment_queue")
