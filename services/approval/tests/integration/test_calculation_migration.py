"""Migration 0004 stores the calculation of cases opened before AssistanceCalculated v2 in version 2's shape."""

import asyncio
import uuid

import asyncpg
import orjson
import pytest
from approval.bootstrap import MIGRATIONS
from approval.config import ApprovalSettings

from shared.db import ensure_database
from shared.migrations import upgrade_to_head

pytestmark = pytest.mark.integration
V1 = {"calculation_id": str(uuid.uuid4()), "settlement_id": str(uuid.uuid4()), "hospital_id": "H001",
      "category": "subsistence", "district_code": "310110", "subdistrict_code": "310110001", "visit_type": "inpatient",
      "hospital_level": 2, "discharge_date": "2026-03-01", "year": 2026, "policy_id": "yangpu-310110",
      "policy_version": 1, "policy_scope_amount": "8000.00", "basic_insurance_paid": "5000.00",
      "critical_illness_paid": "1000.00", "base": "2000.00", "deductible_applied": "0.00", "ratio": "0.80",
      "amount_before_caps": "1600.00", "assistance": "1600.00", "breakdown": {
          "year": "2026", "category": "subsistence", "policy_id": "yangpu-310110", "policy_version": "1",
          "base": "2000.00", "deductible": "0.00", "deductible_used_before": "0.00", "ded_left": "0.00",
          "ded_applied": "0.00", "ratio": "0.80", "amount_before_caps": "1600.00", "per_settlement_cap": "",
          "amount_after_settlement_cap": "1600.00", "cap": "60000.00", "committed_before": "0.00",
          "cap_left": "60000.00", "assistance": "1600.00"}}


async def test_a_case_opened_from_version_1_reads_its_figures_under_one_name_each() -> None:
    settings = ApprovalSettings(database_name="test_approval_migration")
    await ensure_database(settings, recreate=True)
    await asyncio.to_thread(upgrade_to_head, settings, MIGRATIONS, "0003")
    case_id = uuid.uuid4()
    conn = await asyncpg.connect(settings.owner_database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "INSERT INTO \"case\" (id, calculation_id, settlement_id, person_ref, hospital_id, district_code, "
            "subdistrict_code, category, discharge_date, amount, state, calculation) VALUES ($1, $2, $3, $4, 'H001', "
            "'310110', '310110001', 'subsistence', '2026-03-01', 1600, 'approved', $5::jsonb)",
            case_id, uuid.UUID(V1["calculation_id"]), uuid.UUID(V1["settlement_id"]), "ab" * 32,
            orjson.dumps(V1).decode())
        await asyncio.to_thread(upgrade_to_head, settings, MIGRATIONS)
        stored = orjson.loads(await conn.fetchval("SELECT calculation::text FROM \"case\" WHERE id = $1", case_id))
    finally:
        await conn.close()
    assert "breakdown" not in stored and (stored["year"], stored["policy_version"]) == (2026, 1)
    assert stored["figures"] == {
        "policy_scope_amount": "8000.00", "basic_insurance_paid": "5000.00", "critical_illness_paid": "1000.00",
        "base": "2000.00", "deductible": "0.00", "deductible_used_before": "0.00", "deductible_left": "0.00",
        "deductible_applied": "0.00", "ratio": "0.80", "amount_before_caps": "1600.00", "per_settlement_cap": None,
        "amount_after_settlement_cap": "1600.00", "cap": "60000.00", "committed_before": "0.00",
        "cap_left": "60000.00", "assistance": "1600.00"}
