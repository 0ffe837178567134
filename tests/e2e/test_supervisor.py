"""The local process supervisor (deploy/local/services.sh, supervisord): a service killed with SIGKILL is
started again, `services.sh status` counts the restart, and settlements in flight still reach the bank."""

import asyncio
import os
import random
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from simulators.hospital.feed import settlement
from simulators.scenario import Endpoints, Staff, residents, wait_for

from shared.settings import ServiceSettings
from shared.testing import SERVICES, free_port, prepare, unique_prefix
from tests.e2e.helpers import approve, cases_for, enrol, push_all, wait_statuses

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PORT_VARIABLES = {"bank": "BANK_PORT", "sms": "SMS_PORT", "console": "CONSOLE_PORT",
                  **{name: f"{name.upper()}_PORT" for name in SERVICES}}


def services_sh(env: dict[str, str], command: str, timeout: float = 240) -> str:
    done = subprocess.run(["bash", str(ROOT / "deploy/local/services.sh"), command], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture
async def supervised(tmp_path: Path) -> AsyncIterator[tuple[Endpoints, dict[str, str]]]:
    prefix = unique_prefix("sup")
    db_prefix = f"{os.environ.get('MEDASSIST_E2E_DB_PREFIX', 'e2e')}_sup_"
    ports = {name: free_port() for name in PORT_VARIABLES}

    for name in SERVICES:
        await prepare(ServiceSettings(service_name=name, topic_prefix=prefix, database_name=f"{db_prefix}{name}"))
    env = {**os.environ, "MEDASSIST_RUN_DIR": str(tmp_path), "TOPIC_PREFIX": prefix, "MEDASSIST_DB_PREFIX": db_prefix,
           "BANK_SIM_SETTLE_DELAY_MS": "30", "POLL_AFTER_S": "1", "RESEND_BACKOFF_S": "0.5",
           **{PORT_VARIABLES[name]: str(port) for name, port in ports.items()}}
    await asyncio.to_thread(services_sh, env, "up")
    try:
        yield Endpoints(**{name: f"http://127.0.0.1:{port}" for name, port in ports.items() if name != "console"},
                        topic_prefix=prefix), env
    finally:
        await asyncio.to_thread(services_sh, env, "stop", 120)


def supervised_pid(env: dict[str, str], name: str) -> int:
    done = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(ROOT / "deploy/local/supervisord.conf"),
                           "pid", name], env=env, capture_output=True, text=True, timeout=30)
    return int(done.stdout.strip())


def restarts(status: str, name: str) -> int:
    [line] = [line for line in status.splitlines() if line.split()[0] == name]
    return int(line.rsplit("restarts:", 1)[1])


async def test_a_killed_service_is_restarted_and_the_flow_goes_on(
        supervised: tuple[Endpoints, dict[str, str]]) -> None:
    endpoints, env = supervised
    staff = Staff(endpoints)
    try:
        rng = random.Random(7)
        people = residents(rng, 6)
        await enrol(staff, people, "subsistence")
        hospital = staff.hospital("H001")
        bodies = [settlement(rng, p.patient, f"S-{i:03d}") for i, p in enumerate(people)]
        before = {name: supervised_pid(env, name) for name in ("eligibility", "disbursement")}
        ids = await push_all(hospital, bodies)
        os.kill(before["eligibility"], signal.SIGKILL)  # in the middle of the flow

        async def restarted() -> bool:
            status = await asyncio.to_thread(services_sh, env, "status")
            return restarts(status, "eligibility") == 1 and "eligibility  up" in status
        await wait_for(restarted, 90, "eligibility to be started again")
        assert supervised_pid(env, "eligibility") != before["eligibility"]
        screened = await wait_statuses(hospital, list(ids), {"calculated", "nothing_to_pay"}, timeout=180)
        to_pay = [ids[h] for h, s in screened.items() if s["status"] == "calculated"]
        assert to_pay, screened
        cases = await cases_for(staff, set(to_pay))
        os.kill(before["disbursement"], signal.SIGKILL)
        await approve(staff, cases)
        paid = await wait_statuses(hospital, [h for h in ids if ids[h] in to_pay], {"paid"}, timeout=180)
        bank = staff.client(endpoints.bank, "ops")
        for case in cases:
            booked = (await bank.get("/admin/transfers", params={
                "remittance_info": f"medical assistance case {case['case_id']}"})).json()
            assert [t["status"] for t in booked] == ["settled"], "paid once, after the restart"
        status = await asyncio.to_thread(services_sh, env, "status")
        assert (restarts(status, "eligibility"), restarts(status, "disbursement"), restarts(status, "intake")) == (
            1, 1, 0), status
        assert all(line.split()[1] == "up" for line in status.splitlines()), status
        assert len(paid) == len(to_pay)
    finally:
        await staff.aclose()
