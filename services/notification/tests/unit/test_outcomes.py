"""What a gateway's answer makes of a claimed message, table-driven."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from notification.domain.messages import Claimed, Outcome

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MESSAGE = Claimed(uuid.uuid4(), "a" * 64, "case_approved", "text", None, "cipher")


@pytest.mark.parametrize(("outcome", "status", "not_before", "sent_at", "reason"), [
    (Outcome.accepted(MESSAGE, "gw-1", "accepted", NOW), "sent", NOW, NOW, None),
    (Outcome.accepted(MESSAGE, "gw-1", "delivered", NOW), "delivered", NOW, NOW, None),
    (Outcome.rejected(MESSAGE, "not_mobile", NOW), "failed", NOW, None, "not_mobile"),
    (Outcome.unreachable(MESSAGE, NOW, 30.0), "pending", NOW + timedelta(seconds=30), None, None),
])
def test_the_gateways_answer_decides_the_next_state(outcome: Outcome, status: str, not_before: datetime,
                                                    sent_at: datetime | None, reason: str | None) -> None:
    assert (outcome.status, outcome.not_before, outcome.sent_at, outcome.reason) == (
        status, not_before, sent_at, reason)
