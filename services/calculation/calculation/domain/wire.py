"""AssistanceCalculated and its figures in their JSON form, written from the fields without pydantic's serializer.

What `model_dump(mode="json")` writes, the same keys in the same order and the same values: UUIDs and Money as
`str()` (Money's own serializer), dates in ISO form, enums as their values. An AssistanceCalculated carries 19
amounts, and each calculation wrote them twice (the event's payload, the figures column of its row): made once
here, 6-7 us a calculation less. `tests/unit/test_wire.py` holds each to the model's dump, key order included.
"""

from decimal import Decimal
from typing import Any

from shared.contracts import events as ev

_FIGURES = tuple(ev.AssistanceFigures.model_fields)


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def figures_json(figures: ev.AssistanceFigures) -> dict[str, Any]:
    """`figures.model_dump(mode="json")`: every figure is Money or Ratio (written as `str()`) or None."""
    values = figures.__dict__
    return {name: _money(values[name]) for name in _FIGURES}


def calculated_json(e: ev.AssistanceCalculated, figures: dict[str, Any] | None = None) -> dict[str, Any]:
    """`e.model_dump(mode="json")`; `figures` is `figures_json(e.figures)` when the caller has it already."""
    return {
        "calculation_id": str(e.calculation_id), "settlement_id": str(e.settlement_id),
        "hospital_id": e.hospital_id, "category": e.category.value, "district_code": e.district_code,
        "subdistrict_code": e.subdistrict_code, "visit_type": e.visit_type.value,
        "hospital_level": e.hospital_level, "hospital_settlement_id": e.hospital_settlement_id,
        "admission_date": None if e.admission_date is None else e.admission_date.isoformat(),
        "discharge_date": e.discharge_date.isoformat(), "year": e.year, "policy_id": e.policy_id,
        "policy_version": e.policy_version, "total_amount": _money(e.total_amount),
        "figures": figures_json(e.figures) if figures is None else figures,
    }
