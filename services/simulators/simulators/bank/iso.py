"""pain.001 in, pain.002 out, as the simulated bank reads and writes them."""

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

from simulators.bank.ledger import Entry, Transfer

PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
CODES = {"account_closed": "AC04", "name_mismatch": "BE01", "idempotency_key_reused": "AM05"}


def read_pain001(xml: bytes) -> tuple[str, list[dict[str, str]]]:
    """(MsgId, transactions) of a credit-transfer initiation; ValueError when it is not one."""
    ns = {"p": PAIN001}
    root = ET.fromstring(xml)
    msg_id = root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=ns)
    if not msg_id:
        raise ValueError("not a pain.001.001.09 document")
    transactions = []
    for tx in root.iterfind(".//p:CdtTrfTxInf", ns):
        amount = tx.find("p:Amt/p:InstdAmt", ns)
        if amount is None or amount.get("Ccy") != "CNY":
            raise ValueError("only CNY amounts are accepted")
        transactions.append({
            "key": tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns) or "",
            "amount": amount.text or "",
            "name": tx.findtext("p:Cdtr/p:Nm", namespaces=ns) or "",
            "account": tx.findtext("p:CdtrAcct/p:Id/p:Othr/p:Id", namespaces=ns) or "",
            "remittance": tx.findtext("p:RmtInf/p:Ustrd", namespaces=ns) or "",
        })
    declared = root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=ns)
    if declared is not None and Decimal(declared) != sum(Decimal(t["amount"]) for t in transactions):
        raise ValueError("CtrlSum does not match the transactions")
    return msg_id, transactions


def write_pain002(original_msg_id: str, transfers: Iterable[Transfer], rejected: dict[str, str] | None = None
                  ) -> bytes:
    """A status report per transaction: each transfer's status, and RJCT for each EndToEndId in `rejected`
    (with its reason) that the bank refused without booking."""
    ET.register_namespace("", PAIN002)
    doc = ET.Element(f"{{{PAIN002}}}Document")
    report = ET.SubElement(doc, "CstmrPmtStsRpt")
    header = ET.SubElement(report, "GrpHdr")
    ET.SubElement(header, "MsgId").text = f"RPT{uuid.uuid4().hex[:20]}"
    ET.SubElement(header, "CreDtTm").text = datetime.now(UTC).isoformat(timespec="seconds")
    group = ET.SubElement(report, "OrgnlGrpInfAndSts")
    ET.SubElement(group, "OrgnlMsgId").text = original_msg_id
    ET.SubElement(group, "OrgnlMsgNmId").text = "pain.001.001.09"
    info = ET.SubElement(report, "OrgnlPmtInfAndSts")
    ET.SubElement(info, "OrgnlPmtInfId").text = original_msg_id
    rows: list[tuple[str, str, str | None, str | None]] = [(t.key, t.status, t.reason, t.reference)
                                                           for t in transfers]
    rows += [(key, "failed", reason, None) for key, reason in (rejected or {}).items()]
    for key, status, reason, reference in rows:
        tx = ET.SubElement(info, "TxInfAndSts")
        ET.SubElement(tx, "OrgnlEndToEndId").text = key
        ET.SubElement(tx, "TxSts").text = {"accepted": "ACCP", "settled": "ACSC", "failed": "RJCT"}[status]
        if reason:
            ET.SubElement(ET.SubElement(ET.SubElement(tx, "StsRsnInf"), "Rsn"), "Cd").text = CODES.get(reason, "NARR")
        if reference:
            ET.SubElement(tx, "AcctSvcrRef").text = reference
    document: bytes = ET.tostring(doc, encoding="utf-8", xml_declaration=True)  # typeshed: Any for an encoding
    return document


CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def write_camt053(account: str, day: date, entries: Sequence[Entry]) -> bytes:
    """A BankToCustomerStatement for one day: one booked debit entry (Ntry) per money-out line, the payer's
    EndToEndId (our idempotency key) and the creditor's account in its transaction details."""
    ET.register_namespace("", CAMT053)
    doc = ET.Element(f"{{{CAMT053}}}Document")
    root = ET.SubElement(doc, "BkToCstmrStmt")
    header = ET.SubElement(root, "GrpHdr")
    ET.SubElement(header, "MsgId").text = f"STMT{day:%Y%m%d}{uuid.uuid4().hex[:12]}"
    ET.SubElement(header, "CreDtTm").text = datetime.now(UTC).isoformat(timespec="seconds")
    stmt = ET.SubElement(root, "Stmt")
    ET.SubElement(stmt, "Id").text = f"{account}-{day:%Y%m%d}"
    ET.SubElement(ET.SubElement(ET.SubElement(ET.SubElement(stmt, "Acct"), "Id"), "Othr"), "Id").text = account
    summary = ET.SubElement(ET.SubElement(stmt, "TxsSummry"), "TtlDbtNtries")
    ET.SubElement(summary, "NbOfNtries").text = str(len(entries))
    ET.SubElement(summary, "Sum").text = f"{sum((e.amount for e in entries), Decimal(0)):.2f}"
    for e in entries:
        entry = ET.SubElement(stmt, "Ntry")
        ET.SubElement(entry, "NtryRef").text = e.reference
        amount = ET.SubElement(entry, "Amt", {"Ccy": "CNY"})
        amount.text = f"{e.amount:.2f}"
        ET.SubElement(entry, "CdtDbtInd").text = "DBIT"
        ET.SubElement(ET.SubElement(entry, "Sts"), "Cd").text = "BOOK"
        ET.SubElement(ET.SubElement(entry, "BookgDt"), "Dt").text = e.booked_on.isoformat()
        ET.SubElement(entry, "AcctSvcrRef").text = e.reference
        ET.SubElement(ET.SubElement(ET.SubElement(entry, "BkTxCd"), "Prtry"), "Cd").text = "TRF"
        tx = ET.SubElement(ET.SubElement(entry, "NtryDtls"), "TxDtls")
        ET.SubElement(ET.SubElement(tx, "Refs"), "EndToEndId").text = e.key
        ET.SubElement(tx, "Amt", {"Ccy": "CNY"}).text = f"{e.amount:.2f}"
        ET.SubElement(ET.SubElement(ET.SubElement(ET.SubElement(ET.SubElement(
            tx, "RltdPties"), "CdtrAcct"), "Id"), "Othr"), "Id").text = e.account
    document: bytes = ET.tostring(doc, encoding="utf-8", xml_declaration=True)  # typeshed: Any for an encoding
    return document

