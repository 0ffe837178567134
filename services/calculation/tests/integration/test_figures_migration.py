"""Migration 0002 turns calculations written before AssistanceCalculated v2 into the figures' one-name shape."""

import asyncio
import uuid

import asyncpg
import orjson
import pytest
from calculation.bootstrap import MIGRATIONS
from calculation.config import CalculationSettings

from shared.db import ensure_database
from shared.migrations import upgrade_to_head

pytestmark = pytest.mark.integration
SETTLEMENT = {"settlement_id": str(uuid.uuid4()), "hospital_id": "H001", "hospital_settlement_id": "M-1",
              "hospital_level": 2, "visit_type": "inpatient", "admission_date": "2026-02-25",
              "discharge_date": "2026-03-01", "total_amount": "5100.00", "policy_scope_amount": "5000.00",
              "basic_insurance_paid": "1500.00", "critical_illness_paid": "333.33"}
BREAKDOWN_V1 = {"year": "2026", "category": "low_income", "policy_id": "p", "policy_version": "1", "base": "3166.67",
                "deductible": "1000.00", "deductible_used_before": "800.00", "ded_left": "200.00",
                "ded_applied": "200.00", "ratio": "0.65", "amount_before_caps": "1928.34", "per_settlement_cap": "",
                "amount_after_settlement_cap": "1928.34", "cap": "40000.00", "committed_before": "0.00",
                "cap_left": "40000.00", "assistance": "1928.34"}


async def test_version_1_breakdowns_become_figures_and_waiting_settlements_keep_their_settlement() -> None:
    settings = CalculationSettings(database_name="test_calculation_migration")
    await ensure_database(settings, recreate=True)
    await asyncio.to_thread(upgrade_to_head, settings, MIGRATIONS, "0001")
    calculated, waiting = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(settings.owner_database_url.replace("+asyncpg", ""))
    try:
        insert = ("INSERT INTO calculation (id, settlement_id, person_ref, year, category, district_code, "
                  "subdistrict_code, policy_id, policy_version, deductible_applied, assistance, breakdown, status) "
                  "VALUES ($1, $2, $3, 2026, 'low_income', '310110', '310110001', $4, $5, $6, $7, $8::jsonb, $9)")
        await conn.execute(insert, calculated, uuid.UUID(SETTLEMENT["settlement_id"]), "ab" * 32, "p", 1, 200, 1928.34,
                           orjson.dumps({**BREAKDOWN_V1, "settlement": SETTLEMENT}).decode(), "calculated")
        await conn.execute(insert, waiting, uuid.uuid4(), "cd" * 32, None, None, 0, 0,
                           orjson.dumps({"settlement": SETTLEMENT}).decode(), "no_policy")
        await asyncio.to_thread(upgrade_to_head, settings, MIGRATIONS)
        rows = {r["id"]: r for r in await conn.fetch("SELECT id, settlement::text, figures::text FROM calculation")}
        columns = {r["column_name"] for r in await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'calculation'")}
    finally:
        await conn.close()
    assert "breakdown" not in columns and {"settlement", "figures"} <= columns
    assert orjson.loads(rows[calculated]["figures"]) == {
        "policy_scope_amount": "5000.00", "basic_insurance_paid": "1500.00", "critical_illness_paid": "333.33",
        "base": "3166.67", "deductible": "1000.00", "deductible_used_before": "800.00", "deductible_left": "200.00",
        "deductible_applied": "200.00", "ratio": "0.65", "amount_before_caps": "1928.34", "per_settlement_cap": None,
        "amount_after_settlement_cap": "1928.34", "cap": "40000.00", "committed_before": "0.00",
        "cap_left": "40000.00", "assistance": "1928.34"}
    assert rows[waiting]["figures"] is None
    assert orjson.loads(rows[waiting]["settlement"]) == orjson.loads(rows[calculated]["settlement"]) == SETTLEMENT
