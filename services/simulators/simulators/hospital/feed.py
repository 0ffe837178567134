"""Realistic settlements for the demo, tests and benchmark: amounts, visit mixes, reversals, duplicates, bad records."""

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stdnum.cn import ric

CENT = Decimal("0.01")


def national_id(rng: random.Random, region: str = "310110") -> str:
    """A valid (checksummed) resident ID for a made-up person born 1940-2005."""
    born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 65 * 365))
    body = f"{region}{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return body + ric.calc_check_digit(body + "0")


NAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华"


def person_name(rng: random.Random) -> str:
    return rng.choice(NAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _draw(rng: random.Random, low: float, high: float) -> Decimal:
    """A uniform draw as a Decimal (through its shortest decimal text, so the same draw gives the same figure)."""
    return Decimal(str(rng.uniform(low, high)))


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Patient:
    national_id: str
    name: str


def settlement(rng: random.Random, patient: Patient, sid: str, year: int = 2026,
               discharge: date | None = None) -> dict[str, Any]:
    """One settlement as a hospital would push it. Amounts follow the usual shape of each visit type."""
    visit = rng.choices(["inpatient", "outpatient_chronic", "outpatient"], weights=[4, 3, 3])[0]
    low, high = {"inpatient": (3000, 60000), "outpatient_chronic": (200, 3000), "outpatient": (50, 800)}[visit]
    total = _money(_draw(rng, low, high))
    scope = _money(total * _draw(rng, 0.75, 0.98))
    basic = _money(scope * _draw(rng, 0.45, 0.75))
    critical = _money((scope - basic) * _draw(rng, 0, 0.4)) if visit == "inpatient" else Decimal("0")
    if discharge is None:
        discharge = date(year, 1, 1) + timedelta(days=rng.randrange(0, 300))
    stay = rng.randrange(2, 20) if visit == "inpatient" else 0
    return {
        "hospital_settlement_id": sid,
        "hospital_level": rng.choice((1, 2, 3)),
        "visit_type": visit,
        "admission_date": (discharge - timedelta(days=stay)).isoformat(),
        "discharge_date": discharge.isoformat(),
        "patient": {"national_id": patient.national_id, "name": patient.name},
        "total_amount": f"{total:.2f}",
        "policy_scope_amount": f"{scope:.2f}",
        "basic_insurance_paid": f"{basic:.2f}",
        "critical_illness_paid": f"{critical:.2f}",
    }


def bad_records(rng: random.Random, patient: Patient) -> list[tuple[str, dict[str, Any]]]:
    """What a buggy or hostile hospital sends, each with what is wrong with it."""
    good = settlement(rng, patient, "BAD-0")
    return [
        ("national ID checksum", {**good, "hospital_settlement_id": "BAD-1",
                                  "patient": {**good["patient"], "national_id": good["patient"]["national_id"][:-1] + (
                                      "0" if good["patient"]["national_id"][-1] != "0" else "1")}}),
        ("negative amount", {**good, "hospital_settlement_id": "BAD-2", "total_amount": "-5.00"}),
        ("insurance paid above total", {**good, "hospital_settlement_id": "BAD-3",
                                        "basic_insurance_paid": "9999999.00"}),
        ("discharge before admission", {**good, "hospital_settlement_id": "BAD-4", "admission_date": "2026-06-10",
                                        "discharge_date": "2026-06-01"}),
        ("amount as a float", {**good, "hospital_settlement_id": "BAD-5", "total_amount": 1234.5}),
        ("unknown field", {**good, "hospital_settlement_id": "BAD-6", "diagnosis": "J18.9"}),
    ]
