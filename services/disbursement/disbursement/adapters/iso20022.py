"""ISO 20022 bank adapter: pain.001.001.09 credit transfers out, pain.002.001.10 status reports in.

Written on the standard library's ElementTree: the PyPI libraries for pain.001 target SEPA (EUR, IBAN),
not CNY transfers to domestic account numbers (docs/decisions/0004-iso20022-without-a-library.md).
"""

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import aiohttp

from disbursement.adapters.bank import (
    BankResult,
    BankStatus,
    BatchAnswer,
    HttpBank,
    PaymentInstruction,
    StatementLine,
    classify,
)

PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
PAIN002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
# ISO external status reason codes the bank uses, in our words.
REASONS = {"AC04": "account_closed", "AC01": "account_invalid", "BE01": "name_mismatch", "AM04": "insufficient_funds",
           "AM05": "idempotency_key_reused"}
STATUSES = {"ACCP": BankStatus.ACCEPTED, "ACSP": BankStatus.ACCEPTED, "ACTC": BankStatus.ACCEPTED,
            "PDNG": BankStatus.ACCEPTED, "ACSC": BankStatus.SETTLED, "RJCT": BankStatus.FAILED}


INQUIRY_MAX = 100
"""EndToEndIds per status inquiry: they travel in the query string, kept well inside a request line's limit."""
_COMPACT = re.compile(r"^([0-9a-f]{32})-([0-9]{1,2})$")


def end_to_end_id(idempotency_key: str) -> str:
    """The key as an EndToEndId (Max35Text): "<payment uuid>-<attempt>" (38+ characters) loses the uuid's dashes."""
    payment, _, attempt = idempotency_key.rpartition("-")
    compact = f"{payment.replace('-', '')}-{attempt}"
    return compact if _COMPACT.match(compact) else idempotency_key


def idempotency_key_of(end_to_end: str) -> str:
    """The idempotency key an EndToEndId written by end_to_end_id stands for."""
    if match := _COMPACT.match(end_to_end):
        return f"{uuid.UUID(match[1])}-{match[2]}"
    return end_to_end


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def build_pain001(instructions: Sequence[PaymentInstruction], *, debtor_name: str, debtor_account: str,
                  message_id: str | None = None, execution_date: date | None = None) -> tuple[str, bytes]:
    """A pain.001 document for a batch; returns (MsgId, XML bytes); EndToEndId is the key (end_to_end_id)."""
    if not instructions:
        raise ValueError("a batch holds at least one instruction")
    msg_id = message_id or f"MA{uuid.uuid4().hex[:30]}"
    total = sum((i.amount for i in instructions), Decimal("0"))
    ET.register_namespace("", PAIN001)
    doc = ET.Element(f"{{{PAIN001}}}Document")
    root = _sub(doc, "CstmrCdtTrfInitn")
    header = _sub(root, "GrpHdr")
    _sub(header, "MsgId", msg_id)
    _sub(header, "CreDtTm", datetime.now(UTC).isoformat(timespec="seconds"))
    _sub(header, "NbOfTxs", str(len(instructions)))
    _sub(header, "CtrlSum", f"{total:.2f}")
    _sub(_sub(header, "InitgPty"), "Nm", debtor_name)
    info = _sub(root, "PmtInf")
    _sub(info, "PmtInfId", msg_id)
    _sub(info, "PmtMtd", "TRF")
    _sub(info, "NbOfTxs", str(len(instructions)))
    _sub(info, "CtrlSum", f"{total:.2f}")
    _sub(_sub(info, "ReqdExctnDt"), "Dt", (execution_date or date.today()).isoformat())
    _sub(_sub(info, "Dbtr"), "Nm", debtor_name)
    _sub(_sub(_sub(_sub(info, "DbtrAcct"), "Id"), "Othr"), "Id", debtor_account)
    # The schema requires the debtor's bank; the centre's bank is implied by its account, as ISO allows.
    _sub(_sub(_sub(_sub(info, "DbtrAgt"), "FinInstnId"), "Othr"), "Id", "NOTPROVIDED")
    for instruction in instructions:
        tx = _sub(info, "CdtTrfTxInf")
        _sub(_sub(tx, "PmtId"), "EndToEndId", end_to_end_id(instruction.idempotency_key))
        _sub(_sub(tx, "Amt"), "InstdAmt", f"{instruction.amount:.2f}", Ccy="CNY")
        _sub(_sub(tx, "Cdtr"), "Nm", instruction.creditor_name)
        _sub(_sub(_sub(_sub(tx, "CdtrAcct"), "Id"), "Othr"), "Id", instruction.creditor_account)
        _sub(_sub(tx, "RmtInf"), "Ustrd", instruction.remittance_info[:140])
    return msg_id, ET.tostring(doc, encoding="utf-8", xml_declaration=True)


def pain002_items(xml: bytes) -> list[tuple[str, str, str | None, str | None]]:
    """Per transaction of a pain.002 report: (idempotency key, status, bank reference, reason); a status code
    this adapter cannot read is passed on as it stands (`classify` leaves that key to retry)."""
    ns = {"p": PAIN002}
    items = []
    for tx in ET.fromstring(xml).iterfind(".//p:TxInfAndSts", ns):
        key = tx.findtext("p:OrgnlEndToEndId", namespaces=ns) or ""
        code = tx.findtext("p:TxSts", namespaces=ns) or ""
        reason_code = tx.findtext("p:StsRsnInf/p:Rsn/p:Cd", namespaces=ns)
        status = STATUSES[code].value if code in STATUSES else f"unreadable:{code}"
        items.append((idempotency_key_of(key), status, tx.findtext("p:AcctSvcrRef", namespaces=ns),
                      REASONS.get(reason_code, reason_code) if reason_code else None))
    return items


def parse_pain002(xml: bytes) -> dict[str, BankResult]:
    """Per EndToEndId, the status a pain.002 report gives (ValueError when one cannot be read)."""
    results: dict[str, BankResult] = {}
    for key, status, reference, reason in pain002_items(xml):
        if not key or status not in BankStatus.__members__.values():
            raise ValueError(f"unreadable pain.002 transaction status {status!r}")
        results[key] = BankResult(key, reference, BankStatus(status), reason)
    return results


CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def parse_camt053(xml: bytes) -> list[StatementLine]:
    """The booked debit entries of a BankToCustomerStatement (camt.053.001.08), by their EndToEndId."""
    ns = {"c": CAMT053}
    lines = []
    for entry in ET.fromstring(xml).iterfind(".//c:Stmt/c:Ntry", ns):
        if entry.findtext("c:CdtDbtInd", namespaces=ns) != "DBIT" or entry.findtext(
                "c:Sts/c:Cd", namespaces=ns) != "BOOK":
            continue  # money in, or not booked yet
        reference = entry.findtext("c:AcctSvcrRef", namespaces=ns) or entry.findtext("c:NtryRef", namespaces=ns)
        key = entry.findtext("c:NtryDtls/c:TxDtls/c:Refs/c:EndToEndId", namespaces=ns)
        amount = entry.find("c:Amt", ns)
        account = entry.findtext("c:NtryDtls/c:TxDtls/c:RltdPties/c:CdtrAcct/c:Id/c:Othr/c:Id", namespaces=ns)
        if not reference or not key or amount is None or amount.get("Ccy") != "CNY" or not amount.text:
            raise ValueError("unreadable camt.053 entry")
        lines.append(StatementLine(reference, idempotency_key_of(key), Decimal(amount.text), account or ""))
    return lines


class Iso20022BankGateway(HttpBank):
    """Sends pain.001 documents to the bank's ISO 20022 endpoint and reads its pain.002 reports."""

    inquiry_max = INQUIRY_MAX

    def __init__(self, base_url: str, debtor_account: str, debtor_name: str, timeout_s: float = 5.0,
                 max_attempts: int = 4, backoff_initial_s: float = 0.2, backoff_max_s: float = 5.0) -> None:
        super().__init__(base_url, timeout_s, max_attempts, backoff_initial_s, backoff_max_s)
        self._debtor_account, self._debtor_name = debtor_account, debtor_name

    async def send(self, batch: Sequence[PaymentInstruction]) -> BatchAnswer:
        """One pain.001 for many attempts, one pain.002 back with a status per transaction; the bank
        deduplicates by EndToEndId, so a re-sent batch books nothing twice."""
        _, document = build_pain001(batch, debtor_name=self._debtor_name, debtor_account=self._debtor_account)

        async def read(response: aiohttp.ClientResponse) -> BatchAnswer:
            return classify([i.idempotency_key for i in batch], pain002_items(await response.read()))

        return await self.call("POST", "/iso20022/pain.001", read, refused=_http_status, data=document,
                               headers={"Content-Type": "application/xml"})

    async def inquire(self, keys: Sequence[str]) -> dict[str, BankResult]:
        """One pain.002 status report on many EndToEndIds."""
        asked = [("end_to_end_id", end_to_end_id(k)) for k in keys]
        return await self.ask_once("/iso20022/pain.002", _read_pain002, params=asked) or {}

    async def statement(self, day: date) -> list[StatementLine]:
        async def read(response: aiohttp.ClientResponse) -> list[StatementLine]:
            return parse_camt053(await response.read())

        return await self.retrying(lambda: self.call("GET", "/iso20022/camt.053", read,
                                                     params={"date": day.isoformat()}))

    async def recall(self, idempotency_key: str) -> BankResult | None:
        """This ISO 20022 subset has no cancellation request (camt.056): the attempt is watched to its final
        status instead, and money paid for a cancelled case is recovered."""
        return await self.status(idempotency_key)


async def _http_status(response: aiohttp.ClientResponse) -> str:
    return f"http_{response.status}"


async def _read_pain002(response: aiohttp.ClientResponse) -> dict[str, BankResult]:
    return parse_pain002(await response.read())
