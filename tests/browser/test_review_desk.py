"""The review desk in a real browser: a clerk, a district reviewer, a clerk of another sub-district and an
operations officer work the console against every service running as its own process."""

import os
import random
import re
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from playwright.async_api import Page, expect
from simulators.hospital.feed import settlement
from simulators.scenario import Endpoints, Staff, import_registry, residents, sign_consents

from shared.settings import ServiceSettings
from shared.testing import ServiceProcess, free_port, stack_available, start_services, unique_prefix
from tests.browser.conftest import OffMachineRequests, screenshot
from tests.e2e.helpers import push_all, wait_statuses

DISTRICT, SUB, OTHER_SUB = "310110", "310110001", "310110002"  # yangpu: subsistence inpatient level 2 at 80%


@pytest.fixture(scope="module")
async def desk() -> AsyncIterator[tuple[Endpoints, str]]:
    if not await stack_available(ServiceSettings()):
        pytest.fail("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    prefix = unique_prefix("desk")
    urls, processes = await start_services(
        prefix, f"{os.environ.get('MEDASSIST_E2E_DB_PREFIX', 'e2e')}_desk",
        per_service={"bank": {"BANK_SIM_SETTLE_DELAY_MS": "30"},
                     "disbursement": {"POLL_AFTER_S": "1", "RESEND_BACKOFF_S": "0.5"}})
    console = ServiceProcess("console", {f"{name.upper()}_URL": url for name, url in urls.items()}, free_port())
    processes.append(console.start())
    try:
        await console.wait_ready(120)
        yield Endpoints(**urls, topic_prefix=prefix, logs=[p.log_path for p in processes]), console.url
    finally:
        for process in processes:
            process.stop()


async def seed(stack: Endpoints) -> dict[str, Any]:
    """Five residents of one sub-district with a calculated case each (one large), one of the other sub-district."""
    staff = Staff(stack)
    rng = random.Random(2026)
    people = residents(rng, 6)
    for person in people:
        person.district, person.subdistrict, person.category = DISTRICT, SUB, "subsistence"
    people[-1].subdistrict = OTHER_SUB
    officer = staff.client(stack.eligibility, "registry_officer")
    await import_registry(officer, people)
    await sign_consents(officer, people)
    bodies = []
    for i, person in enumerate(people):
        body = settlement(rng, person.patient, f"BD-{i}", discharge=date(2026, 4, 1 + i))
        scope = "12000.00" if i == 0 else f"{1000 + 100 * i}.00"  # the first: (12000 - 4000) x 80% = 6,400.00
        body.update(visit_type="inpatient", hospital_level=2, total_amount=scope, policy_scope_amount=scope,
                    basic_insurance_paid="4000.00" if i == 0 else "500.00", critical_illness_paid="0.00")
        bodies.append(body)
    hospital = staff.hospital("H001")
    ids = await push_all(hospital, bodies)
    await wait_statuses(hospital, list(ids), {"calculated"})
    await staff.aclose()
    return {"people": people, "ids": ids}


async def sign_in(page: Page, console: str, role: str, subject: str, district: str = DISTRICT,
                  subdistrict: str = SUB) -> None:
    """The development sign-in, by keyboard: fields filled, Enter submits."""
    await page.goto(f"{console}/#/sign-in")
    form = page.locator("form[data-dev]")
    await form.locator("select[name=role]").select_option(role)
    await form.locator("input[name=district_code]").fill(district)
    await form.locator("input[name=subdistrict_code]").fill(subdistrict)
    await form.locator("input[name=subject]").fill(subject)
    await form.locator("input[name=subject]").press("Enter")
    await expect(page.locator("#nav")).to_be_visible()
    await expect(page.locator("#who")).to_contain_text(subject)


async def sign_out(page: Page) -> None:
    await page.locator("#sign-out").click()
    await expect(page.locator("form[data-dev]")).to_be_visible()


async def flow_total(page: Page, column: int) -> int:
    """A total of the ops page's flow table (columns: hour, accepted, screened, calculated, approved, paid, failed)."""
    cell = page.locator("[data-flow-total] td").nth(column)
    return int(await cell.text_content() or "0")


async def test_the_review_desk_from_sign_in_to_payment(desk: tuple[Endpoints, str], page: Page,
                                                       off_machine: OffMachineRequests) -> None:
    stack, console = desk
    world = await seed(stack)
    large = world["people"][0].patient

    # The operations page before anyone decides: six accepted, nothing approved or paid yet.
    await sign_in(page, console, "ops", "ops-chen")
    await expect(page.locator("[data-flow-total]")).to_be_visible()
    assert (await flow_total(page, 1), await flow_total(page, 4), await flow_total(page, 5)) == (6, 0, 0)
    await sign_out(page)

    # A clerk filters the queue down to the large case and opens it.
    await sign_in(page, console, "clerk", "clerk-zhang")
    rows = page.locator("[data-case-row]")
    await expect(rows).to_have_count(5)
    await expect(page.locator("[data-summary]")).to_contain_text("共 5 件")
    await page.locator("input[name=amount_min]").fill("5000")
    await page.locator("input[name=amount_min]").press("Enter")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator("[data-flag=large_amount]")).to_be_visible()
    await screenshot(page, "desk-1-queue-filtered")
    await rows.first.locator("a").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("[data-name]")).to_have_text(large.name)
    await expect(page.locator("[data-words-zh]")).to_have_text(
        "范围内费用 12,000.00 − 基本医保 4,000.00 − 大病保险 0.00 = 8,000.00；起付线余额 0.00；"
        "(8,000.00 − 0.00) × 80% = 6,400.00；年度限额余 60,000.00；救助 6,400.00")
    await expect(page.locator("[data-figure=assistance] td.num")).to_have_text("6,400.00")
    await expect(page.locator("[data-figure=ratio] td.num")).to_have_text("80%")
    await expect(page.locator("[data-flags] [data-flag=large_amount]")).to_be_visible()
    await screenshot(page, "desk-2-case-detail")
    await page.locator("form[data-approve] button").click()
    await expect(page.locator("#alert")).to_have_text("已通过。Approved.")
    await expect(page.locator("[data-state]")).to_contain_text("待区复核")

    # Back in the queue: batch-approve three, each with its own result.
    await page.locator("a[href='#/queue']").first.click()
    # the queue comes back with the clerk's filter, and the large case has left the clerk's queue
    await expect(page.locator("input[name=amount_min]")).to_have_value("5000")
    await expect(page.locator("[data-summary]")).to_contain_text("共 0 件")
    await page.locator("input[name=amount_min]").fill("")
    await page.locator("input[name=amount_min]").press("Enter")
    await expect(rows).to_have_count(4)
    for i in range(3):
        await rows.nth(i).locator("[data-case]").focus()
        await page.keyboard.press("Space")
    await page.locator("[data-batch]").click()
    await expect(page.locator("[data-batch-result] li.ok")).to_have_count(3)
    await expect(rows).to_have_count(1)
    await screenshot(page, "desk-3-batch-approved")

    # Reject the last one: without a comment the reason "other" is refused, with the problem's own message.
    await rows.first.locator("a").click()
    reject = page.locator("form[data-reject]")
    await reject.locator("select[name=reason]").select_option("other")
    await reject.locator("button").click()
    await expect(page.locator("#alert")).to_have_text(
        "a rejection needs a reason code, and a comment when the reason is 'other'")
    await reject.locator("select[name=reason]").select_option("duplicate_claim")
    await reject.locator("input[name=comment]").fill("与上月结算重复")
    await reject.locator("button").click()
    await expect(page.locator("[data-state]")).to_contain_text("已驳回")
    await expect(page.locator("[data-actions]")).to_be_hidden()
    await sign_out(page)

    # The district reviewer sees the four the clerk passed on, and approves the large one.
    await sign_in(page, console, "district_reviewer", "reviewer-li")
    await expect(rows).to_have_count(4)
    large_case = await rows.filter(has_text="6,400.00").locator("a").get_attribute("href")
    await rows.filter(has_text="6,400.00").locator("a").click()
    await expect(page.locator("[data-name]")).to_have_text(large.name)
    await page.locator("form[data-approve] button").click()
    await expect(page.locator("[data-state]")).to_contain_text("已通过")
    await sign_out(page)

    # A clerk of the other sub-district sees only their own resident's case, and none of these.
    await sign_in(page, console, "clerk", "clerk-wu", subdistrict=OTHER_SUB)
    await expect(rows).to_have_count(1)
    await page.locator("select[name=state]").select_option("awaiting_district")
    await page.locator("form[data-filters] button[type=submit]").click()
    await expect(page.locator("[data-rows]")).to_contain_text("没有符合条件的案件")
    await page.goto(f"{console}/{large_case}")  # even by its address, the case does not exist for them
    await expect(page.locator("#alert")).to_have_text("no such case in your area")
    await expect(page.locator("[data-name]")).to_have_count(0)
    await sign_out(page)

    # The ops page shows the counts moving: one approved, then paid; and the settlement's journey by id.
    await sign_in(page, console, "ops", "ops-chen")
    for _ in range(120):
        await page.locator("[data-refresh]").click()
        await expect(page.locator("[data-flow-total]")).to_be_visible()
        if await flow_total(page, 5) >= 1:
            break
        await page.wait_for_timeout(500)
    assert (await flow_total(page, 4), await flow_total(page, 5)) == (1, 1)
    await page.locator("input[name=settlement_id]").fill(world["ids"]["BD-0"])
    await page.locator("input[name=settlement_id]").press("Enter")
    steps = page.locator("[data-journey-steps] li")
    await expect(steps).to_have_count(5)
    journey = " ".join(await steps.all_inner_texts())
    expected = ["受理", "符合条件", "已核算", "已通过", "已支付"]
    assert re.findall("|".join(expected), journey) == expected
    trace = await page.locator("[data-trace-link]").get_attribute("href")  # the settlement's trace in Zipkin
    assert trace and trace.endswith(f"annotationQuery=settlement.id%3D{world['ids']['BD-0']}"), trace
    await screenshot(page, "desk-4-ops")
    assert off_machine == []
