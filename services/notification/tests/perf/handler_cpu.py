"""Client CPU of notification's consumer handler per event, on bench-like batches (a settlement's four events:
screening decision, calculation, approval, transfer; persons with a phone and an account), against a database
of its own. Run from a checkout's root so that its code is measured:

    source deploy/local/env.sh && .venv/bin/python services/notification/tests/perf/handler_cpu.py <db name> [rounds]
"""

import asyncio
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from notification.bootstrap import MIGRATIONS, events_handler
from notification.config import NotificationSettings
from notification.dependencies import NotificationDeps, Wording
from notification.service_layer.unit_of_work import NotificationUnitOfWork
from opentelemetry import trace

from shared.contracts import events as ev
from shared.contracts.envelope import Envelope
from shared.messaging.consumer import Event
from shared.service import Runtime
from shared.testing import migrated_database
from shared.unit_of_work import unit_of_work

SETTLEMENTS = 120  # a batch: 480 events


def event(data: ev.EventData, ref: str, at: datetime) -> Event:
    envelope = Envelope.wrap(data, person_ref=ref, producer="perf").model_copy(update={"occurred_at": at})
    return Event("topic", envelope, data, cast(Any, None), trace.INVALID_SPAN)


def settlement(ref: str, t0: datetime) -> list[Event]:
    sid, calc, case, amount, zero = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), Decimal("1234.56"), Decimal("0.00")
    received = ev.SettlementReceived(
        settlement_id=sid, hospital_id="H001", hospital_settlement_id=f"N-{sid.hex[:8]}", hospital_level=2,
        visit_type="inpatient", admission_date=date(2026, 2, 20), discharge_date=date(2026, 3, 2),
        total_amount=Decimal("9000.00"), policy_scope_amount=Decimal("8000.00"),
        basic_insurance_paid=Decimal("5000.00"), critical_illness_paid=Decimal("1000.00"))
    figures = ev.AssistanceFigures(
        policy_scope_amount=Decimal("8000.00"), basic_insurance_paid=Decimal("5000.00"),
        critical_illness_paid=Decimal("1000.00"), base=Decimal("2000.00"), deductible=zero,
        deductible_used_before=zero, deductible_left=zero, deductible_applied=zero, ratio=Decimal("0.8"),
        amount_before_caps=amount, per_settlement_cap=None, amount_after_settlement_cap=amount,
        cap=Decimal("40000.00"), committed_before=zero, cap_left=Decimal("40000.00"), assistance=amount)
    area = {"district_code": "310110", "subdistrict_code": "310110001"}
    return [event(d, ref, t0 + timedelta(milliseconds=i)) for i, d in enumerate([
        ev.EligibilityDecided(settlement=received, eligible=True, reason="eligible", category="subsistence", **area),
        ev.AssistanceCalculated(calculation_id=calc, settlement_id=sid, hospital_id="H001", category="subsistence",
                                visit_type="inpatient", hospital_level=2, discharge_date=date(2026, 3, 2),
                                year=2026, policy_id="p", policy_version=1, figures=figures, **area),
        ev.CaseDecided(case_id=case, calculation_id=calc, settlement_id=sid, decision="approved", amount=amount,
                       decided_at=datetime.now(UTC), **area),
        ev.TransferSettled(payment_id=uuid.uuid4(), case_id=case, calculation_id=calc, settlement_id=sid,
                           status="settled", amount=amount, account_version=1)])]


async def main(name: str, rounds: int) -> None:
    settings = NotificationSettings(database_name=name, sms_quiet_hours="off")
    deps = NotificationDeps.build(settings, Wording.from_settings(settings))
    nothing: Any = None
    handler = events_handler(Runtime(nothing, nothing, nothing, nothing, nothing, deps))
    refs = [uuid.uuid4().hex * 2 for _ in range(2000)]
    async with migrated_database(settings, MIGRATIONS) as db:
        registry = [event(ev.ContactUpdated(contact_version=1, phone_ciphertext=f"c1:{r[:20]}",
                                            phone_masked="138****5678", sms_opt_out=False), r, datetime.now(UTC))
                    for r in refs]
        registry += [event(ev.PayeeAccountUpdated(account_version=1, payee_ciphertext="p1:x",
                                                  account_masked="6222****4321"), r, datetime.now(UTC)) for r in refs]
        async with unit_of_work(db, NotificationUnitOfWork) as uow:
            await handler(uow, registry)
        results = []
        for round_ in range(rounds + 1):
            batches = []
            for b in range(8):
                t0 = datetime.now(UTC)
                events = [e for i in range(SETTLEMENTS)
                          for e in settlement(refs[(b * SETTLEMENTS + i) % len(refs)], t0)]
                batches.append(sorted(events, key=lambda e: str(e.envelope.event_id)))  # topics interleaved
            start = time.process_time()
            for events in batches:
                async with unit_of_work(db, NotificationUnitOfWork) as uow:
                    await handler(uow, events)
            used = time.process_time() - start
            if round_:  # the first round warms up (statement caches, plans)
                results.append(1e6 * used / sum(len(b) for b in batches))
        print(f"{name}: client CPU per event, rounds of 8 x {4 * SETTLEMENTS}: "
              + " ".join(f"{r:.1f}" for r in results) + f" us (best {min(results):.1f})")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5))
