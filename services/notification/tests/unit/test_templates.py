"""Every moment's text from the shipped template document: amounts as 1,234.56 元, accounts masked."""

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from notification.bootstrap import TEMPLATES
from notification.domain.templates import Facts, Moment, TemplateError, TemplateSet, load_templates, yuan

WORDS = load_templates(TEMPLATES)[1]
DOC = json.loads((TEMPLATES / "sms-zh-CN.v1.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("amount", "text"), [
    (Decimal("0.5"), "0.50 元"),
    (Decimal("12"), "12.00 元"),
    (Decimal("1234.56"), "1,234.56 元"),
    (Decimal("1234.565"), "1,234.57 元"),  # half-up
    (Decimal("20000.00"), "20,000.00 元"),
    (Decimal("1234567.8"), "1,234,567.80 元"),
])
def test_amounts_read_with_thousands_and_two_places(amount: Decimal, text: str) -> None:
    assert yuan(amount) == text


FULL = Facts(amount=Decimal("1234.56"), hospital="杨浦区中心医院", discharge_date=date(2026, 3, 2),
             paid_on=date(2026, 3, 9), account="****1234")
CASES = [
    (Moment.CALCULATED, FULL,
     "【医疗救助】您2026年3月2日在杨浦区中心医院的医疗费用，经核算可获医疗救助1,234.56 元，"
     "正在审核，无需申请、无需跑腿。"),
    (Moment.APPROVED, FULL, "【医疗救助】您的医疗救助1,234.56 元已审核通过，将直接转入您的银行账户。"),
    (Moment.REJECTED, Facts(amount=Decimal("800"), reason="duplicate_claim"),
     "【医疗救助】您的医疗救助800.00 元未获通过：这笔费用已经救助过，不能重复救助。"
     "如有疑问，请到所在街道（乡镇）社区事务受理服务中心咨询。"),
    (Moment.REJECTED, Facts(amount=Decimal("800"), reason="something_new"),
     "【医疗救助】您的医疗救助800.00 元未获通过：经审核不符合救助规定。"
     "如有疑问，请到所在街道（乡镇）社区事务受理服务中心咨询。"),
    (Moment.PAID, FULL, "【医疗救助】医疗救助1,234.56 元已于2026年3月9日转入您尾号****1234的银行账户，请查收。"),
    (Moment.PAYMENT_FAILED, Facts(amount=Decimal("1234.56"), account="****0000", reason="account_closed"),
     "【医疗救助】医疗救助1,234.56 元转入您尾号****0000的银行账户未成功：该账户已销户。"
     "请带上新的银行卡或存折到所在街道（乡镇）社区事务受理服务中心登记，登记后将重新发放。"),
    (Moment.PAYMENT_FAILED, Facts(amount=Decimal("10"), account="****9999", reason="name_mismatch"),
     "【医疗救助】医疗救助10.00 元转入您尾号****9999的银行账户未成功：户名与登记信息不一致。"
     "请带上身份证和银行卡到所在街道（乡镇）社区事务受理服务中心核对，核对后将重新发放。"),
    (Moment.RECOVERY, FULL,
     "【医疗救助】医院已撤销您2026年3月2日的医疗费用结算，已发放的医疗救助1,234.56 元需要退回。"
     "区医疗救助中心会联系您商定退回方式，您无需先做任何事。"),
]


@pytest.mark.parametrize(("moment", "facts", "text"), CASES,
                         ids=[f"{m.value}-{i}" for i, (m, _, _) in enumerate(CASES)])
def test_every_moment_reads_as_written(moment: Moment, facts: Facts, text: str) -> None:
    assert WORDS.render(moment, facts) == text


def test_every_moment_has_a_text_and_a_case_here() -> None:
    assert {m for m, _, _ in CASES} == set(Moment)


def test_a_text_never_shows_more_of_an_account_than_the_last_four_digits() -> None:
    for moment in (Moment.PAID, Moment.PAYMENT_FAILED):
        text = WORDS.render(moment, Facts(amount=Decimal("1"), account="****5678", reason="account_closed"))
        assert "****5678" in text and not any(c.isdigit() for c in text.split("****5678")[0][-3:])


def test_plain_words_for_every_reason_code_the_system_emits() -> None:
    for code in ("not_medically_necessary", "duplicate_claim", "data_error", "not_eligible", "other"):
        assert code in WORDS.reject_reasons
    for code in ("eligible", "not_registered", "category_not_valid_on_date", "no_consent", "consent_revoked"):
        assert code in WORDS.eligibility_reasons


@pytest.mark.parametrize(("change", "error"), [
    (lambda d: d["texts"].pop("case_approved"), "no text for"),
    (lambda d: d["texts"].update(case_approved="{amount} 给 {national_id}"), "unknown placeholders"),
    (lambda d: d["reject_reasons"].pop("default"), "default"),
    (lambda d: d["payment_failures"].update(account_closed="{account}"), "only use"),
    (lambda d: d.pop("version"), "not a template document"),
])
def test_a_document_that_asks_for_more_than_a_moment_knows_is_refused(change, error: str) -> None:
    doc = json.loads(json.dumps(DOC))
    change(doc)
    with pytest.raises(TemplateError, match=error):
        TemplateSet.from_document(doc)


def test_versions_are_data_files_and_two_files_cannot_claim_one_version(tmp_path: Path) -> None:
    (tmp_path / "sms-zh-CN.v1.json").write_text(json.dumps(DOC), encoding="utf-8")
    (tmp_path / "sms-zh-CN.v2.json").write_text(json.dumps({**DOC, "version": 2}), encoding="utf-8")
    assert sorted(load_templates(tmp_path)) == [1, 2]
    (tmp_path / "sms-zh-CN.v3.json").write_text(json.dumps({**DOC, "version": 2}), encoding="utf-8")
    with pytest.raises(TemplateError, match="two documents"):
        load_templates(tmp_path)
