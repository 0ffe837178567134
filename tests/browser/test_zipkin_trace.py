"""One paid settlement's trace opens in the Zipkin UI with spans from all five services on its path.

Zipkin runs from the same script as `make traces` (on a free port, its own run folder); the services export
to it with the OpenTelemetry Zipkin exporter, as `make run` starts them.
"""

import os
import random
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest
from playwright.async_api import Page
from simulators.hospital.feed import settlement
from simulators.scenario import Endpoints, Staff, import_registry, residents, sign_consents, wait_for

from deploy.local.traces import JOURNEY, settlement_search_page, settlement_trace, trace_page, trace_spans
from shared.settings import ServiceSettings
from shared.testing import ROOT, free_port, stack_available, start_services, unique_prefix
from tests.browser.conftest import screenshot
from tests.e2e.helpers import approve, cases_for, push_all, wait_statuses

SPANS = [("intake", "settlement accepted"), ("eligibility", "settlement.received process"),
         ("calculation", "eligibility.decided process"), ("approval", "case approve"),
         ("disbursement", "bank transfer")]


@pytest.fixture(scope="module")
def zipkin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {**os.environ, "ZIPKIN_PORT": str(free_port()),
           "MEDASSIST_RUN_DIR": str(tmp_path_factory.mktemp("zipkin-run"))}
    script = str(ROOT / "deploy/local/zipkin.sh")
    subprocess.run(["bash", script, "up"], env=env, check=True, timeout=600)
    try:
        yield f"http://127.0.0.1:{env['ZIPKIN_PORT']}"
    finally:
        subprocess.run(["bash", script, "stop"], env=env, check=False, timeout=60)


@pytest.fixture(scope="module")
async def stack(zipkin: str) -> AsyncIterator[Endpoints]:
    if not await stack_available(ServiceSettings()):
        pytest.fail("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    prefix = unique_prefix("zipkin")
    urls, processes = await start_services(
        prefix, "zipkin",
        env={"OTEL_EXPORTER_ZIPKIN_ENDPOINT": f"{zipkin}/api/v2/spans", "OTEL_BSP_SCHEDULE_DELAY": "200"},
        per_service={"bank": {"BANK_SIM_SETTLE_DELAY_MS": "30"},
                     "disbursement": {"POLL_AFTER_S": "1", "RESEND_BACKOFF_S": "0.5"}})
    try:
        yield Endpoints(**urls, topic_prefix=prefix, logs=[p.log_path for p in processes])
    finally:
        for process in processes:
            process.stop()


async def test_a_paid_settlement_trace_in_the_zipkin_ui(stack: Endpoints, zipkin: str, page: Page) -> None:
    staff = Staff(stack)
    rng = random.Random(15)
    [person] = residents(rng, 1)
    person.category = "extreme_poverty"
    officer = staff.client(stack.eligibility, "registry_officer")
    await import_registry(officer, [person])
    await sign_consents(officer, [person])
    hospital = staff.hospital("H001")
    ids = await push_all(hospital, [settlement(rng, person.patient, "ZK-1", discharge=date(2026, 9, 1))])
    await wait_statuses(hospital, ["ZK-1"], {"calculated"})
    await approve(staff, await cases_for(staff, {ids["ZK-1"]}))
    await wait_statuses(hospital, ["ZK-1"], {"paid"})
    await staff.aclose()

    found: tuple[str, set[str]] | None = None

    expected = {f"{service}: {span}" for service, span in SPANS}

    async def whole_trace() -> bool:  # every service exports in its own batches: wait for the spans the UI shows
        nonlocal found
        found = await settlement_trace(ids["ZK-1"], zipkin)
        return (found is not None and set(JOURNEY) <= found[1]
                and expected <= await trace_spans(found[0], zipkin))

    await wait_for(whole_trace, 60, "the settlement's spans from every service in Zipkin", every=0.5)
    assert found is not None
    trace_id = found[0]

    # The search the console links to finds the trace by settlement id; its row opens the trace page.
    await page.goto(settlement_search_page(ids["ZK-1"], zipkin))
    await page.get_by_role("button", name="Run query").click()
    await page.get_by_text("1 Result", exact=True).wait_for()
    await page.get_by_text("intake: settlement accepted").first.wait_for()
    await screenshot(page, "zipkin-search")
    await page.get_by_text("Show", exact=True).first.click()
    await page.wait_for_url(f"**/traces/{trace_id}")

    await page.get_by_text(f"Trace ID{trace_id}", exact=False).or_(page.get_by_text(trace_id)).first.wait_for()
    # The span table draws only the rows in view: a tall window shows the whole trace; each row is waited for.
    await page.set_viewport_size({"width": 1600, "height": 6000})
    for service, span in SPANS:
        await page.get_by_text(f"{service}: {span}").first.wait_for()
    body = await page.locator("body").inner_text()
    shown = re.search(r"Services\s+(\d+)", body)
    # The five on the settlement's path, and notification, which follows the same events.
    assert shown is not None and int(shown.group(1)) >= len(JOURNEY), body[:500]
    for service, span in SPANS:
        assert f"{service}: {span}" in body, f"the trace page shows no {service!r} span {span!r}"
    path: Path = await screenshot(page, "zipkin-trace")
    print(f"\nZipkin trace page: {trace_page(trace_id, zipkin)} (screenshot {path})")
