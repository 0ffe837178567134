"""Every pain.001 the ISO 20022 adapter writes is valid against the official pain.001.001.09 schema.

The schema files come from the sepaxml wheel (PyPI), which ships ISO's XSDs; xmlschema validates.
"""

from decimal import Decimal
from functools import cache
from pathlib import Path
from uuid import UUID

import pytest
import sepaxml
import xmlschema
from disbursement.adapters.bank import PaymentInstruction
from disbursement.adapters.iso20022 import PAIN001, build_pain001, end_to_end_id, idempotency_key_of
from disbursement.domain.payment import idempotency_key

PAYMENT = UUID("0f8fad5b-d9cb-469f-a165-70867728950e")


@cache
def pain001_schema() -> xmlschema.XMLSchema:
    schema = xmlschema.XMLSchema(Path(sepaxml.__file__).parent / "schemas" / "pain.001.001.09.xsd")
    assert schema.target_namespace == PAIN001
    return schema


def instruction(attempt: int = 1, amount: str = "10.10", name: str = "王芳", remittance: str = "case 1",
                account: str = "6222020200112233", payment: UUID = PAYMENT) -> PaymentInstruction:
    return PaymentInstruction(idempotency_key(payment, attempt), Decimal(amount), account, name, remittance)


@pytest.mark.parametrize("batch", [
    pytest.param([instruction()], id="one transfer with a real key"),
    pytest.param([instruction(attempt=99)], id="the 99th attempt"),
    pytest.param([instruction(payment=UUID(int=n), amount=f"{n}.{n % 100:02d}") for n in range(1, 51)],
                 id="a batch of 50"),
    pytest.param([instruction(amount="0.01"), instruction(attempt=2, amount="99999999.99")],
                 id="smallest and largest amounts"),
    pytest.param([instruction(name="阿" * 140, remittance="医疗救助 " * 40)], id="longest name, long remittance"),
    pytest.param([instruction(name="O'Brien & Søn <test>", remittance='"quoted" & <tagged>')],
                 id="characters XML escapes"),
])
def test_pain001_is_valid_against_the_iso_schema(batch: list[PaymentInstruction]) -> None:
    _, document = build_pain001(batch, debtor_name="Yangpu district civil-affairs centre",
                                debtor_account="31011000001")
    errors = [f"{e.path}: {e.reason}" for e in pain001_schema().iter_errors(document.decode())]
    assert not errors, errors


@pytest.mark.parametrize("key", [idempotency_key(PAYMENT, 1), idempotency_key(PAYMENT, 42), "iso-1", "k-2"])
def test_end_to_end_id_fits_max35text_and_gives_the_key_back(key: str) -> None:
    assert len(end_to_end_id(key)) <= 35
    assert idempotency_key_of(end_to_end_id(key)) == key
