"""pain.001 in, pain.002 out, as the simulated bank reads and writes them."""

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from simulators.bank.ledger import Transfer

PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
CODES = {"account_closed": "AC04", "name_mismatch": "BE01"}


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


def write_pain002(original_msg_id: str, transfers: Iterable[Transfer]) -> bytes:
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
    for t in transfers:
        tx = ET.SubElement(info, "TxInfAndSts")
        ET.SubElement(tx, "OrgnlEndToEndId").text = t.key
        ET.SubElement(tx, "TxSts").text = {"accepted": "ACCP", "settled": "ACSC", "failed": "RJCT"}[t.status]
        if t.reason:
            ET.SubElement(ET.SubElement(ET.SubElement(tx, "StsRsnInf"), "Rsn"), "Cd").text = CODES.get(t.reason, "NARR")
        ET.SubElement(tx, "AcctSvcrRef").text = t.reference
    return ET.tostring(doc, encoding="utf-8", xml_declaration=True)
