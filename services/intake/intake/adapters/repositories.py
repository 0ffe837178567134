"""Intake's repositories: settlements (with their journey steps) and the signatures already used.

Bulk SQL only, never a round trip per row: accepting a request is one statement per table, a consumer batch
one UPDATE (that decides in the row which status stands) and one INSERT of steps. Each statement is one
execution whatever the number of rows (arrays, `unnest`), not an executemany the server runs row by row, and
its text does not depend on the number of rows, so it is prepared once per connection.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import TextClause
from sqlmodel import col

from intake.adapters.tables import JOURNEY_TABLE, NONCE_TABLE, SETTLEMENT_TABLE, RequestNonce, SettlementRow
from intake.domain.journey import STAGE, Journey
from intake.domain.settlement import Known, News, Settlement
from shared.db import LOCK_SETTLEMENT_ID, as_arrays, in_array, insert_arrays, lock_keys, update_arrays

# What the aggregate is loaded from: its state, not the personal data or the amounts.
_STATE = [SETTLEMENT_TABLE.c[name] for name in ("id", "hospital_id", "hospital_settlement_id", "person_ref", "status",
                                                "status_reason", "eligibility_reason", "assistance")]
_NEW = ("id", "hospital_id", "hospital_settlement_id", "fingerprint", "person_ref", "national_id_enc", "name_enc",
        "hospital_level", "visit_type", "admission_date", "discharge_date", "total_amount", "policy_scope_amount",
        "basic_insurance_paid", "critical_illness_paid", "status")
_STEP = ("settlement_id", "status", "reason")
_INSERT_SETTLEMENTS = insert_arrays(SETTLEMENT_TABLE, _NEW)
_INSERT_STEPS = insert_arrays(JOURNEY_TABLE, _STEP)
_SAVED = ("id", "status", "status_reason", "eligibility_reason", "assistance")
_SAVE = update_arrays(SETTLEMENT_TABLE, "id", _SAVED[1:], updated_at="now()")


def _stage(status: str) -> str:
    """The stage of `status` (an SQL expression), as `journey.STAGE` has it."""
    whens = " ".join(f"WHEN '{journey.value}' THEN {stage}" for journey, stage in STAGE.items())
    return f"CASE {status} {whens} END"


# A batch's news (`News`), applied where the row is: `journey.wins` in SQL, on the row's latest version (the
# UPDATE locks it; a reversal committed meanwhile is what it compares with), so nothing is read first.
_WINS = f"s.status <> '{Journey.REVERSED.value}' AND v.stage >= {_stage('s.status')}"
_LEARN = text(
    f"UPDATE settlement AS s SET status = CASE WHEN {_WINS} THEN v.status ELSE s.status END, "
    f"status_reason = CASE WHEN {_WINS} THEN v.status_reason ELSE s.status_reason END, "
    "eligibility_reason = CASE WHEN v.screened THEN v.eligibility_reason ELSE s.eligibility_reason END, "
    "assistance = COALESCE(v.assistance, s.assistance), updated_at = now() "
    "FROM unnest(CAST(:id AS UUID[]), CAST(:status AS TEXT[]), CAST(:status_reason AS TEXT[]), "
    "CAST(:screened AS BOOLEAN[]), CAST(:eligibility_reason AS TEXT[]), CAST(:assistance AS NUMERIC(14, 2)[]), "
    "CAST(:stage AS SMALLINT[])) AS v(id, status, status_reason, screened, eligibility_reason, assistance, stage) "
    "WHERE s.id = v.id RETURNING s.id")


# The news and their steps in one statement: the steps of the settlements the UPDATE found (ours), in the batch's
# order (the serial id follows `n`); which were ours comes back from the steps (every fact is a step). The steps'
# arrays are bound under their own names (`step_*`): `status` is the news' too.
def _learn_with_steps() -> TextClause:
    steps = _INSERT_STEPS.text.replace(" ORDER BY n", " WHERE v.settlement_id IN (SELECT id FROM learnt) ORDER BY n")
    for column in _STEP:
        steps = steps.replace(f"CAST(:{column} AS", f"CAST(:step_{column} AS")
    return text(f"WITH learnt AS ({_LEARN.text}) {steps} RETURNING settlement_id")


_LEARN_WITH_STEPS = _learn_with_steps()


def _settlement(row: Any) -> Settlement:
    return Settlement(row.id, row.hospital_id, row.hospital_settlement_id, row.person_ref, Journey(row.status),
                      row.status_reason, row.eligibility_reason, row.assistance)


class SettlementRepository:
    """Settlements by hospital and id; `add` and `save` write what the aggregates changed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_known(self, hospital_id: str, hospital_settlement_ids: Iterable[str]) -> dict[str, Known]:
        """The settlements already stored under these ids, locked until the commit.

        Pushes of the same new ids at once wait for each other here (an advisory lock per id), then find the
        first one's rows: a duplicate or a conflict, never a unique violation."""
        ids = list(dict.fromkeys(hospital_settlement_ids))
        await lock_keys(self.session, LOCK_SETTLEMENT_ID, (f"{hospital_id}/{sid}" for sid in ids))
        rows = (await self.session.execute(
            select(col(SettlementRow.id), col(SettlementRow.hospital_settlement_id), col(SettlementRow.fingerprint),
                   col(SettlementRow.status))
            .where(col(SettlementRow.hospital_id) == hospital_id,
                   in_array(SETTLEMENT_TABLE.c.hospital_settlement_id, ids))
            .with_for_update())).all()
        return {row.hospital_settlement_id: Known(row.id, row.fingerprint, row.status) for row in rows}

    async def add(self, settlements: Sequence[Settlement]) -> None:
        """Store new settlements and their first step: one INSERT per table (the hot path of intake)."""
        if not settlements:
            return
        await self.session.execute(_INSERT_SETTLEMENTS, as_arrays([_new_row(s) for s in settlements], _NEW))
        await self._add_steps(settlements)

    async def get(self, hospital_id: str, hospital_settlement_id: str) -> Settlement | None:
        """One of a hospital's settlements, locked until the commit."""
        row = (await self.session.execute(select(*_STATE).where(
            col(SettlementRow.hospital_id) == hospital_id,
            col(SettlementRow.hospital_settlement_id) == hospital_settlement_id).with_for_update())).one_or_none()
        return _settlement(row) if row is not None else None

    async def learn(self, news: Sequence[News]) -> list[News]:
        """Apply a batch's news to the settlements it is about (`Settlement.learn_news`'s rule, in the UPDATE)
        and record their steps: one UPDATE and one INSERT. Returns the news of the settlements that exist; the
        rest (not ours) is dropped."""
        if not news:
            return []
        learnt = {
            "id": [n.settlement_id for n in news], "status": [n.status.value for n in news],
            "status_reason": [n.reason for n in news], "screened": [n.screened for n in news],
            "eligibility_reason": [n.eligibility_reason for n in news],
            "assistance": [n.assistance for n in news], "stage": [STAGE[n.status] for n in news]}
        if all(n.steps for n in news):  # as `News.fold` makes them: the UPDATE and the steps in one statement
            steps = [(n.settlement_id, step.status.value, step.reason) for n in news for step in n.steps]
            found = set((await self.session.execute(_LEARN_WITH_STEPS, {
                **learnt, "step_settlement_id": [s[0] for s in steps], "step_status": [s[1] for s in steps],
                "step_reason": [s[2] for s in steps]})).scalars())
            return [n for n in news if n.settlement_id in found]
        found = set((await self.session.execute(_LEARN, learnt)).scalars())
        ours = [n for n in news if n.settlement_id in found]
        rows = [{"settlement_id": n.settlement_id, "status": step.status.value, "reason": step.reason}
                for n in ours for step in n.steps]
        if rows:
            await self.session.execute(_INSERT_STEPS, as_arrays(rows, _STEP))
        return ours

    async def save(self, settlements: Sequence[Settlement]) -> None:
        """Write the settlements' state and their new steps: one UPDATE and one INSERT for all of them."""
        changed = [s for s in settlements if s.steps]
        if not changed:
            return
        await self.session.execute(_SAVE, as_arrays([
            {"id": s.id, "status": s.status.value, "status_reason": s.status_reason, "assistance": s.assistance,
             "eligibility_reason": s.eligibility_reason} for s in changed], _SAVED))
        await self._add_steps(changed)

    async def _add_steps(self, settlements: Sequence[Settlement]) -> None:
        steps = [{"settlement_id": s.id, "status": step.status.value, "reason": step.reason}
                 for s in settlements for step in s.steps]
        if steps:
            await self.session.execute(_INSERT_STEPS, as_arrays(steps, _STEP))
        for s in settlements:
            s.steps = []


def _new_row(s: Settlement) -> dict[str, object]:
    item, sealed = s.content, s.sealed
    assert item is not None and sealed is not None, "only a received settlement is added"
    return {
        "id": s.id, "hospital_id": s.hospital_id, "hospital_settlement_id": s.hospital_settlement_id,
        "fingerprint": s.fingerprint, "person_ref": s.person_ref, "national_id_enc": sealed.national_id,
        "name_enc": sealed.name, "hospital_level": item.hospital_level, "visit_type": item.visit_type.value,
        "admission_date": item.admission_date, "discharge_date": item.discharge_date,
        "total_amount": Decimal(item.total_amount), "policy_scope_amount": Decimal(item.policy_scope_amount),
        "basic_insurance_paid": Decimal(item.basic_insurance_paid),
        "critical_illness_paid": Decimal(item.critical_illness_paid), "status": s.status.value,
    }


class NonceRepository:
    """Signatures already used, each until its own timestamp has left the signing window."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def remember(self, hospital_id: str, signature: str, expires_at: datetime) -> bool:
        """Record a signature; False when it was already recorded (a replay)."""
        stored = await self.session.execute(
            upsert(NONCE_TABLE).values(hospital_id=hospital_id, signature=signature, expires_at=expires_at)
            .on_conflict_do_nothing().returning(NONCE_TABLE.c.signature))
        return stored.scalar_one_or_none() is not None

    async def forget_expired(self, now: datetime, window_s: int) -> None:
        """Drop signatures that can no longer be replayed (rows from before `expires_at` existed: by age)."""
        await self.session.execute(delete(NONCE_TABLE).where(NONCE_TABLE.c.expires_at < now))
        await self.session.execute(delete(NONCE_TABLE).where(
            col(RequestNonce.expires_at).is_(None),
            col(RequestNonce.seen_at) < text(f"now() - interval '{2 * int(window_s)} seconds'")))
