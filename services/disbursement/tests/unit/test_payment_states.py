"""The payment state machine and ISO 20022 documents, without a bank."""

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest
from disbursement.adapters.bank import BankStatus, PaymentInstruction
from disbursement.adapters.iso20022 import PAIN001, build_pain001, parse_pain002
from disbursement.domain.payment import IllegalPaymentTransition, PaymentStatus, business_day, idempotency_key, move

P = PaymentStatus
ALLOWED = {
    (P.AWAITING_ACCOUNT, P.PENDING), (P.AWAITING_ACCOUNT, P.CANCELLED), (P.AWAITING_ACCOUNT, P.SETTLED),
    (P.PENDING, P.SENDING), (P.PENDING, P.CANCELLED), (P.PENDING, P.CANCELLING), (P.PENDING, P.AWAITING_ACCOUNT),
    (P.PENDING, P.ACCEPTED), (P.PENDING, P.SETTLED), (P.PENDING, P.FAILED),
    (P.SENDING, P.ACCEPTED), (P.SENDING, P.SETTLED), (P.SENDING, P.FAILED), (P.SENDING, P.PENDING),
    (P.SENDING, P.CANCELLING), (P.SENDING, P.AWAITING_ACCOUNT),
    (P.ACCEPTED, P.SETTLED), (P.ACCEPTED, P.FAILED), (P.ACCEPTED, P.CANCELLING),
    (P.FAILED, P.PENDING), (P.FAILED, P.CANCELLED), (P.FAILED, P.SETTLED),  # a failed payment is not deaf
    (P.CANCELLING, P.CANCELLED), (P.CANCELLING, P.SETTLED),
    (P.CANCELLED, P.SETTLED),  # the bank paid a cancelled case anyway: recorded as paid, and recovered
}


@pytest.mark.parametrize(("current", "new"), list(itertools.product(PaymentStatus, PaymentStatus)),
                         ids=lambda s: s.value)
def test_every_payment_transition(current: PaymentStatus, new: PaymentStatus) -> None:
    if current == new or (current, new) in ALLOWED:
        assert move(current, new) is new
    else:
        with pytest.raises(IllegalPaymentTransition):
            move(current, new)


def test_settled_is_final() -> None:
    assert not any((P.SETTLED, other) in ALLOWED for other in PaymentStatus)


def test_each_attempt_has_its_own_stable_key() -> None:
    pid = UUID("12345678-1234-5678-1234-567812345678")
    assert idempotency_key(pid, 1) == idempotency_key(pid, 1) != idempotency_key(pid, 2)


def instruction(key: str, amount: str, account: str = "6222020200112233") -> PaymentInstruction:
    return PaymentInstruction(key, Decimal(amount), account, "王芳", f"case {key}")


def test_pain001_carries_keys_amounts_and_control_sum() -> None:
    msg_id, xml = build_pain001([instruction("k-1", "10.10"), instruction("k-2", "0.05")],
                                debtor_name="Centre", debtor_account="31011000001", message_id="M1")
    ns = {"p": PAIN001}
    root = ET.fromstring(xml)
    assert msg_id == "M1"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns) == "10.15"
    assert root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns) == "2"
    keys = [e.text for e in root.iterfind(".//p:EndToEndId", ns)]
    amounts = [(e.text, e.get("Ccy")) for e in root.iterfind(".//p:InstdAmt", ns)]
    assert keys == ["k-1", "k-2"] and amounts == [("10.10", "CNY"), ("0.05", "CNY")]


def test_pain002_statuses_and_reasons() -> None:
    ns = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
    xml = f"""<Document xmlns="{ns}"><CstmrPmtStsRpt><OrgnlPmtInfAndSts>
      <TxInfAndSts><OrgnlEndToEndId>a</OrgnlEndToEndId><TxSts>ACSC</TxSts><AcctSvcrRef>R1</AcctSvcrRef></TxInfAndSts>
      <TxInfAndSts><OrgnlEndToEndId>b</OrgnlEndToEndId><TxSts>RJCT</TxSts>
        <StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf></TxInfAndSts>
      <TxInfAndSts><OrgnlEndToEndId>c</OrgnlEndToEndId><TxSts>ACCP</TxSts></TxInfAndSts>
    </OrgnlPmtInfAndSts></CstmrPmtStsRpt></Document>""".encode()
    results = parse_pain002(xml)
    assert [(k, r.status, r.reason) for k, r in results.items()] == [
        ("a", BankStatus.SETTLED, None), ("b", BankStatus.FAILED, "account_closed"), ("c", BankStatus.ACCEPTED, None)]


def test_an_instruction_never_prints_its_account_or_name() -> None:
    text = repr(instruction("k", "1.00", "6222020200112233"))
    assert "6222020200112233" not in text and "王芳" not in text


@pytest.mark.parametrize(("at", "day"), [
    (datetime(2026, 3, 1, 15, 59, 59, tzinfo=UTC), date(2026, 3, 1)),
    (datetime(2026, 3, 1, 16, 0, 0, tzinfo=UTC), date(2026, 3, 2)),  # 00:00 in Beijing
    (datetime(2026, 12, 31, 16, 30, tzinfo=UTC), date(2027, 1, 1)),
])
def test_reconciliation_counts_by_the_districts_calendar_day(at: datetime, day: date) -> None:
    assert business_day(at) == day
