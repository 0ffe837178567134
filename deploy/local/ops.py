"""`make ops`: the operations view of the running stack in one screen.

Consumer lag per topic and group, dead letters, the oldest unapproved case per sub-district, payments in
flight and failed, reconciliation differences, and the payment alarms found against the bank's own books (today's
statement is reconciled on the spot); each service reports its own part over its API.
"""

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
from simulators.scenario import Endpoints

from shared.security.staff_auth import mint_dev_token
from shared.settings import ServiceSettings


async def main() -> None:
    settings, endpoints = ServiceSettings(), Endpoints()
    token = mint_dev_token(settings.jwt_secret.get_secret_value(), "ops-console", "ops")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        async def get(service: str, path: str) -> Any:
            response = await http.get(f"{getattr(endpoints, service)}{path}")
            response.raise_for_status()
            return response.json()

        print("== Consumer lag (messages behind) ==")
        dead: Counter[str] = Counter()
        for service in ("intake", "eligibility", "calculation", "approval", "disbursement"):
            overview = await get(service, "/ops/kafka")
            for row in overview["lag"]:
                print(f"  {row['group']:<18} {row['topic']:<24} {row['lag']:>8}")
            dead.update(overview["dead_letters"])
        print("== Dead letters per topic ==")
        for topic, count in sorted(dead.items()):
            print(f"  {topic + '.dlq':<34} {count:>8}")
        print("== Approval queues (oldest first) ==")
        queues = sorted(await get("approval", "/v1/queues"), key=lambda q: q["oldest_created_at"])
        for q in queues or [{"subdistrict_code": "-", "state": "empty", "count": 0, "oldest_age_s": 0}]:
            print(f"  {q['subdistrict_code']:<12} {q['state']:<22} {q['count']:>6} cases, oldest {q['oldest_age_s']}s")
        print("== Payments and reconciliation ==")
        rows = await get("disbursement", "/v1/reconciliation")
        for key in ("approved", "settled", "in_flight", "failed", "cancelled"):
            print(f"  {key:<10} {sum(r[key]['count'] for r in rows):>8}")
        alarms = [r for r in rows if r["alarm"]]
        print(f"  reconciliation alarms: {len(alarms)}")
        for r in alarms:
            print(f"    {r['district_code']} {r['day']}: difference {r['difference']}")
        print("== Against the bank's own books (statement reconciliation, runbook: Payment alarms) ==")
        statement = (await http.post(f"{endpoints.disbursement}/v1/reconciliation/statement")).json()
        print(f"  today's statement: {statement.get('entries', '?')} bookings, {statement.get('amount', '?')} yuan")
        bank_alarms = await get("disbursement", "/v1/reconciliation/alarms?limit=1000")
        by_kind = Counter(a["kind"] for a in bank_alarms)
        to_recover = sum(Decimal(a["recovery_amount"]) for a in bank_alarms if a["recovery_amount"])
        print(f"  payment alarms: {len(bank_alarms)}, money to recover {to_recover:.2f}")
        for kind, count in sorted(by_kind.items()):
            print(f"    {kind:<20} {count:>6}")
        for a in bank_alarms[:10]:
            print(f"    {a['raised_at'][:19]} {a['kind']:<18} case {a['case_id'] or '-'} {a['amount'] or ''}")


if __name__ == "__main__":
    asyncio.run(main())
