"""Disbursement: payments per status kept as running counts, `payment_count (status, n)`, by the statement
triggers that keep `payment_queue` (0006): each payment statement adds one row per status it changed the count
of (+ for the new rows, - for the old ones), and the status gauge folds the rows into one per status before it
sums them. With no index naming `status` (ADR 0044), counting the payments themselves read the whole table
every 15 s (ADR 0054).

`ix_attempt_reissued (payment_id) WHERE attempt > 1` lists the re-issued attempts, the only ones whose payment
can have been paid twice (the gauge's other read of a whole table). Neither its key nor its predicate names a
column an update changes, and a first attempt has no entry in it.

The table has no index and no key: the triggers only append to it (no lock shared by two payment writers, no
deadlock), the gauge's fold deletes what it read and appends the sums in one statement.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_QUEUE = """
    INSERT INTO payment_queue (payment_id, status, at)
    SELECT n.id, n.status, CASE WHEN n.status = 'pending' THEN n.next_attempt_at ELSE n.updated_at END
      FROM new_payments AS n WHERE n.status IN ('pending', 'sending')
    ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status, at = excluded.at
     WHERE (payment_queue.status, payment_queue.at) IS DISTINCT FROM (excluded.status, excluded.at);
"""

_FOLLOW = f"""
CREATE OR REPLACE FUNCTION payment_queue_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO payment_count (status, n) SELECT n.status, count(*) FROM new_payments AS n GROUP BY n.status;
        {_QUEUE}
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO payment_count (status, n)
        SELECT c.status, sum(c.n) FROM (SELECT status, 1 AS n FROM new_payments
                                        UNION ALL SELECT status, -1 FROM old_payments) AS c
         GROUP BY c.status HAVING sum(c.n) <> 0;
        DELETE FROM payment_queue AS q USING new_payments AS n
         WHERE q.payment_id = n.id AND n.status NOT IN ('pending', 'sending');
        {_QUEUE}
    ELSE
        INSERT INTO payment_count (status, n) SELECT o.status, -count(*) FROM old_payments AS o GROUP BY o.status;
        DELETE FROM payment_queue AS q USING old_payments AS o WHERE q.payment_id = o.id;
    END IF;
    RETURN NULL;
END
$$
"""

_FOLLOW_0006 = """
CREATE OR REPLACE FUNCTION payment_queue_follow() RETURNS trigger LANGUAGE plpgsql AS $$
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
    op.create_table("payment_count", sa.Column("status", sa.String(32), nullable=False),
                    sa.Column("n", sa.BigInteger, nullable=False))
    op.execute("LOCK TABLE payment IN SHARE ROW EXCLUSIVE MODE")  # no payment moves between the count and the trigger
    op.execute(_FOLLOW)
    op.execute("DROP TRIGGER payment_queue_update ON payment")
    op.execute("CREATE TRIGGER payment_queue_update AFTER UPDATE ON payment REFERENCING OLD TABLE AS old_payments "
               "NEW TABLE AS new_payments FOR EACH STATEMENT EXECUTE FUNCTION payment_queue_follow()")
    op.execute("CREATE TRIGGER payment_queue_delete AFTER DELETE ON payment REFERENCING OLD TABLE AS old_payments "
               "FOR EACH STATEMENT EXECUTE FUNCTION payment_queue_follow()")
    op.execute("INSERT INTO payment_count (status, n) SELECT status, count(*) FROM payment GROUP BY status")
    op.create_index("ix_attempt_reissued", "payment_attempt", ["payment_id"], postgresql_where=sa.text("attempt > 1"))


def downgrade() -> None:
    op.drop_index("ix_attempt_reissued", "payment_attempt")
    op.execute("DROP TRIGGER payment_queue_delete ON payment")
    op.execute("DROP TRIGGER payment_queue_update ON payment")
    op.execute(_FOLLOW_0006)
    op.execute("CREATE TRIGGER payment_queue_update AFTER UPDATE ON payment REFERENCING NEW TABLE AS new_payments "
               "FOR EACH STATEMENT EXECUTE FUNCTION payment_queue_follow()")
    op.drop_table("payment_count")
