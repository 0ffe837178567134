"""Migration 0002 gives settlements screened before it their eligibility reason back, from their journey."""

import asyncio
import uuid

import asyncpg
import pytest
from intake.bootstrap import MIGRATIONS
from intake.config import IntakeSettings

from shared.db import ensure_database
from shared.migrations import upgrade_to_head

pytestmark = pytest.mark.integration


async def test_the_latest_screening_step_of_each_settlement_becomes_its_eligibility_reason() -> None:
    settings = IntakeSettings(database_name="test_intake_reason_migration")
    await ensure_database(settings, recreate=True)
    await asyncio.to_thread(upgrade_to_head, settings, MIGRATIONS, "0001")
    paid, parked, fresh = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(settings.owner_database_url.replace("+asyncpg", ""))
    try:
        for sid, status in ((paid, "paid"), (parked, "parked"), (fresh, "received")):
            await conn.execute(
                "INSERT INTO settlement (id, hospital_id, hospital_settlement_id, fingerprint, person_ref, "
                "national_id_enc, name_enc, hospital_level, visit_type, admission_date, discharge_date, total_amount, "
                "policy_scope_amount, basic_insurance_paid, critical_illness_paid, status) VALUES ($1, 'H001', $2, "
                "'f', 'ab', 'x', 'y', 2, 'inpatient', '2026-03-01', '2026-03-02', 10, 10, 0, 0, $3)",
                sid, str(sid), status)
        steps = [(paid, "received", None), (paid, "parked", "no_consent"), (paid, "eligible", "eligible"),
                 (paid, "calculated", None), (paid, "paid", None), (parked, "received", None),
                 (parked, "parked", "not_registered"), (parked, "parked", "no_consent"), (fresh, "received", None)]
        await conn.executemany("INSERT INTO journey_step (settlement_id, status, reason) VALUES ($1, $2, $3)", steps)
        await asyncio.to_thread(upgrade_to_head, settings, MIGRATIONS)
        reasons = dict(await conn.fetch("SELECT id, eligibility_reason FROM settlement"))  # type: ignore[arg-type]
    finally:
        await conn.close()
    assert reasons == {paid: "eligible", parked: "no_consent", fresh: None}
