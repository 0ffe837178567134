"""Notification's repositories: recipients (contacts and masked accounts), the resident view, the messages.

Bulk SQL only: per consumer batch one upsert per kind of fact and one insert of messages; per sender pass one
claim and one update of the outcomes.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from notification.adapters.tables import (
    ACCOUNTS,
    MESSAGES,
    RECIPIENTS,
    VIEW,
)
from notification.domain.messages import REPORTABLE, Claimed, DeliveryReport, NewMessage, Outcome
from notification.domain.moments import Place
from shared.contracts.events import ContactUpdated
from shared.db import as_arrays, insert_arrays, signal_after_commit, update_arrays

MESSAGES_DUE = "messages.due"
"""Raised by a commit that made messages `pending` (written or released): wakes the sender."""
FINAL_REVIEW = ("approved", "rejected", "cancelled")


@dataclass
class ViewFacts:
    """One batch's facts for the resident view, one row per settlement and kind (each kind writes its columns)."""

    decided: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    calculated: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    reviewed: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    paid: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    reversed: dict[UUID, dict[str, Any]] = field(default_factory=dict)


class RecipientRow(NamedTuple):
    """What a batch's messages need of a person's recipient row (plain columns: an ORM entity per person was
    ~3 % of the service's CPU in the bench's pipeline)."""

    person_ref: str
    contact_version: int
    phone_ciphertext: str | None
    sms_opt_out: bool
    account_masked: str | None


_RECIPIENTS = text("SELECT person_ref, contact_version, phone_ciphertext, sms_opt_out, account_masked FROM recipient "
                   "WHERE person_ref = ANY(CAST(:refs AS varchar[]))")
_ACCOUNTS = text("SELECT a.person_ref, a.account_version, a.account_masked FROM payee_account a "
                 "JOIN unnest(CAST(:refs AS varchar[]), CAST(:versions AS int[])) AS k(person_ref, account_version) "
                 "ON a.person_ref = k.person_ref AND a.account_version = k.account_version")
# One statement per kind whatever the batch (an executemany ran once per row on the server: a registry chunk is
# hundreds of persons).
_CONTACT = ("contact_version", "phone_ciphertext", "phone_masked", "sms_opt_out", "updated_at")
_UPSERT_CONTACTS = insert_arrays(
    RECIPIENTS, ("person_ref", *_CONTACT),
    f"ON CONFLICT (person_ref) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in _CONTACT)} "
    "WHERE recipient.contact_version < EXCLUDED.contact_version")
_ADD_ACCOUNT_VERSIONS = insert_arrays(ACCOUNTS, ("person_ref", "account_version", "account_masked"),
                                      "ON CONFLICT (person_ref, account_version) DO NOTHING")
_UPSERT_LATEST_ACCOUNTS = insert_arrays(
    RECIPIENTS, ("person_ref", "contact_version", "account_masked", "updated_at"),
    "ON CONFLICT (person_ref) DO UPDATE SET account_masked = EXCLUDED.account_masked")


class RecipientRepository:
    """Whom messages go to: the latest contact per person, and every masked account version."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def store(self, contacts: dict[str, ContactUpdated], versions: dict[tuple[str, int], str],
                    accounts: dict[str, str], now: datetime) -> None:
        """Upsert each person's contact (an older version arriving late never overwrites a newer one), every
        masked account version, and each person's latest masked account (`accounts`): one statement each."""
        if contacts:
            await self.session.execute(_UPSERT_CONTACTS, {
                "person_ref": list(contacts), "contact_version": [c.contact_version for c in contacts.values()],
                "phone_ciphertext": [c.phone_ciphertext for c in contacts.values()],
                "phone_masked": [c.phone_masked for c in contacts.values()],
                "sms_opt_out": [c.sms_opt_out for c in contacts.values()], "updated_at": [now] * len(contacts)})
        if versions:
            await self.session.execute(_ADD_ACCOUNT_VERSIONS, {
                "person_ref": [ref for ref, _ in versions], "account_version": [v for _, v in versions],
                "account_masked": list(versions.values())})
        if accounts:
            await self.session.execute(_UPSERT_LATEST_ACCOUNTS, {
                "person_ref": list(accounts), "contact_version": [0] * len(accounts),
                "account_masked": list(accounts.values()), "updated_at": [now] * len(accounts)})

    async def get_many(self, refs: Iterable[str]) -> dict[str, RecipientRow]:
        rows = await self.session.execute(_RECIPIENTS, {"refs": list(refs)})
        return {r[0]: RecipientRow._make(r) for r in rows.all()}

    async def accounts(self, versions: set[tuple[str, int]]) -> dict[tuple[str, int], str]:
        """The masked account of each (person, account version) known here (one statement built once; an ORM
        select with a composite IN was built per call)."""
        if not versions:
            return {}
        rows = await self.session.execute(_ACCOUNTS, {"refs": [r for r, _ in versions],
                                                      "versions": [v for _, v in versions]})
        return {(ref, version): masked for ref, version, masked in rows.all()}


_PAID = ("payment_status", "payment_reason", "payment_attempt", "paid_amount", "paid_on")


def _view_upsert(columns: Sequence[str], **sets: str) -> tuple[TextClause, tuple[str, ...]]:
    """One upsert of a kind of fact for every settlement of a batch (`shared.db.insert_arrays`): the row's key
    and time and the kind's own `columns`, built at import (built per call, its column collections were ~9 % of
    the service's CPU). An existing row takes each column as `sets` says, by default the new value."""
    names = ("settlement_id", "person_ref", "updated_at", *columns)
    updates = ", ".join(f"{c} = {sets.get(c, f'EXCLUDED.{c}')}" for c in names[2:])
    return insert_arrays(VIEW, names, f"ON CONFLICT (settlement_id) DO UPDATE SET {updates}"), names


_UPSERT_DECIDED = _view_upsert(("hospital_id", "visit_type", "discharge_date", "district_code", "subdistrict_code",
                                "eligible", "eligibility_reason"))
# A final decision is never taken back by a calculation that arrives after it (another topic).
_UPSERT_CALCULATED = _view_upsert(
    ("assistance", "district_code", "subdistrict_code", "review_state"),
    review_state=f"CASE WHEN resident_settlement.review_state IN ({', '.join(repr(s) for s in FINAL_REVIEW)}) "
                 "THEN resident_settlement.review_state ELSE EXCLUDED.review_state END")
_UPSERT_REVIEWED = _view_upsert(("review_state", "review_reason"))
# The latest attempt's word wins: a re-issued payment's success after a failure, not the other way round.
_UPSERT_PAID = _view_upsert(_PAID, **{c: f"CASE WHEN resident_settlement.payment_attempt > EXCLUDED.payment_attempt "
                                         f"THEN resident_settlement.{c} ELSE EXCLUDED.{c} END" for c in _PAID})
_UPSERT_REVERSED = _view_upsert(("reversed", "recovery"), recovery="resident_settlement.recovery OR EXCLUDED.recovery")
_PLACES = text("SELECT settlement_id, hospital_id, discharge_date FROM resident_settlement "
               "WHERE settlement_id = ANY(CAST(:ids AS uuid[]))")


class ViewRepository:
    """The resident's view of each settlement, fed by the events in whatever order the topics deliver them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def places(self, settlement_ids: set[UUID]) -> dict[UUID, Place]:
        """Where and when the care of each of these settlements was, as the view knows it (plain columns)."""
        if not settlement_ids:
            return {}
        rows = await self.session.execute(_PLACES, {"ids": list(settlement_ids)})
        return {sid: Place(hospital_id, discharged) for sid, hospital_id, discharged in rows.all()}

    async def apply(self, facts: ViewFacts) -> None:
        """One upsert per kind of fact."""
        for rows, (statement, names) in ((facts.decided, _UPSERT_DECIDED), (facts.calculated, _UPSERT_CALCULATED),
                                         (facts.reviewed, _UPSERT_REVIEWED), (facts.paid, _UPSERT_PAID),
                                         (facts.reversed, _UPSERT_REVERSED)):
            if rows:
                await self.session.execute(statement, as_arrays(list(rows.values()), names))


# A message not yet handed over follows its person's contact: `suppressed` after an opt-out, `held` while no
# phone is known, `pending` (due) once one is. Run for the persons whose contact a batch brought, and now and
# then for every unsent message (`settle_all`): a message written while another instance stored its person's
# contact (neither transaction saw the other) is set right there. The status test is an OR so that each arm
# matches its partial index (an IN matches neither: the sweep read the whole table).
_FOLLOW = """
    UPDATE message m SET status = c.status, updated_at = now()
    FROM (SELECT person_ref, CASE WHEN sms_opt_out THEN 'suppressed' WHEN phone_ciphertext IS NULL THEN 'held'
                                  ELSE 'pending' END AS status FROM recipient {where}) c
    WHERE m.person_ref = c.person_ref AND (m.status = 'pending' OR m.status = 'held') AND m.status <> c.status
    RETURNING m.status"""
_FOLLOW_CONTACTS = text(_FOLLOW.format(where="WHERE person_ref = ANY(CAST(:refs AS varchar[]))"))
_FOLLOW_ALL = text(_FOLLOW.format(where=""))
# Put back what a crash left `sending`. Then claim the due messages (a person's message is `pending` only with a
# phone and no opt-out; the join holds that once more), each the person's earliest unsent one (so a person's
# messages arrive in the order things happened; a message waits `sms_hold_s` after it is written, for an
# earlier event still on another topic).
_UNSTICK = text("""
    UPDATE message SET status = 'pending', updated_at = now()
    WHERE status = 'sending' AND updated_at < now() - make_interval(secs => :stale)""")
_CLAIM = text("""
    UPDATE message SET status = 'sending', attempts = attempts + 1, updated_at = now()
    WHERE id IN (
        SELECT m.id FROM message m JOIN recipient c ON c.person_ref = m.person_ref
        WHERE m.status = 'pending' AND m.not_before <= now()
          AND c.phone_ciphertext IS NOT NULL AND NOT c.sms_opt_out
          AND NOT EXISTS (SELECT 1 FROM message e WHERE e.person_ref = m.person_ref
                          AND (e.occurred_at, e.seq) < (m.occurred_at, m.seq)
                          AND e.status IN ('pending', 'sending', 'held'))
        ORDER BY m.occurred_at, m.seq LIMIT :limit FOR UPDATE OF m SKIP LOCKED)
    RETURNING id, person_ref, moment, body, traceparent,
        (SELECT phone_ciphertext FROM recipient c WHERE c.person_ref = message.person_ref) AS phone_ciphertext""")
_OUTCOME = ("status", "gateway_id", "failure_reason", "not_before", "sent_at")
# One statement for a pass's outcomes, not one per row.
_RECORD = update_arrays(MESSAGES, "id", _OUTCOME, where=" AND t.status = 'sending'", updated_at=":now")
# The gateway's word on a batch of messages, in one statement; only rows it can still move (REPORTABLE).
_REPORT = update_arrays(
    MESSAGES, "id", ("status", "failure_reason"),
    where=f" AND t.status IN ({', '.join(repr(s) for s in REPORTABLE)}) RETURNING t.status",
    updated_at=":now", delivered_at="CASE WHEN v.status = 'delivered' THEN CAST(:now AS timestamptz) END")
# OR, not IN: each arm matches a partial index (IN matches neither, and the count read the whole table).
_WAITING = text("SELECT count(*) FROM message WHERE status = 'pending' OR status = 'sending'")


_MESSAGE_COLUMNS = ("id", "event_id", "person_ref", "settlement_id", "moment", "template_version", "body", "status",
                    "occurred_at", "not_before", "traceparent", "attempts", "created_at", "updated_at")
# One statement text for every batch (a RETURNING executemany went as a multi-row VALUES, new per batch size), in
# the batch's order: `seq` follows it.
_ADD_MESSAGES = insert_arrays(MESSAGES, _MESSAGE_COLUMNS, "ON CONFLICT (id) DO NOTHING RETURNING moment, status")


class MessageRepository:
    """The messages: written once per (event, person), claimed by the sender, moved by the gateway's word."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, messages: Sequence[NewMessage], now: datetime) -> list[str]:
        """Insert messages, skipping ids already written (a redelivered event); the moments of those written."""
        if not messages:
            return []
        rows = [{**vars(m), "moment": m.moment.value, "attempts": 0, "created_at": now, "updated_at": now}
                for m in messages]
        written = (await self.session.execute(_ADD_MESSAGES, as_arrays(rows, _MESSAGE_COLUMNS))).all()
        self._released(status for _, status in written)  # a held or suppressed message gives the sender nothing
        return [moment for moment, _ in written]

    async def follow_contacts(self, refs: Sequence[str]) -> None:
        """Bring these persons' unsent messages in line with their contact as stored now."""
        self._released((await self.session.execute(_FOLLOW_CONTACTS, {"refs": list(refs)})).scalars())

    async def settle_all(self) -> None:
        """Every unsent message in line with its person's contact (the sender's occasional sweep)."""
        self._released((await self.session.execute(_FOLLOW_ALL)).scalars())

    def _released(self, statuses: Iterable[str]) -> None:
        if "pending" in statuses:
            signal_after_commit(self.session, MESSAGES_DUE)

    async def claim_due(self, limit: int, stale_s: float, *, unstick: bool = True) -> list[Claimed]:
        """Mark up to `limit` due messages `sending` and return them (in id order: locks taken alike); with
        `unstick`, first put back what has been `sending` longer than `stale_s` (left by a crash)."""
        if unstick:
            await self.session.execute(_UNSTICK, {"stale": stale_s})
        rows = (await self.session.execute(_CLAIM, {"limit": limit})).mappings().all()
        return sorted((Claimed(**row) for row in rows), key=lambda c: str(c.id))

    async def waiting(self) -> int:
        """Messages written and not yet handed to the gateway."""
        return int((await self.session.execute(_WAITING)).scalar_one())

    async def record(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """What the gateway said, in one statement; only rows still `sending` (a delivery report may have come
        back before the gateway's answer did)."""
        if outcomes:
            await self.session.execute(_RECORD, {
                "id": [o.message.id for o in outcomes], "status": [o.status for o in outcomes],
                "gateway_id": [o.gateway_id for o in outcomes], "failure_reason": [o.reason for o in outcomes],
                "not_before": [o.not_before for o in outcomes], "sent_at": [o.sent_at for o in outcomes],
                "now": now})

    async def report(self, reports: Sequence[DeliveryReport], now: datetime) -> list[str]:
        """Delivery reports (one per message), in one statement; the statuses of the messages they moved (a
        message not one its report can still move is left as it is)."""
        if not reports:
            return []
        result = await self.session.execute(_REPORT, {
            "id": [r.message_id for r in reports], "status": [r.status for r in reports],
            "failure_reason": [r.reason for r in reports], "now": now})
        return list(result.scalars())
