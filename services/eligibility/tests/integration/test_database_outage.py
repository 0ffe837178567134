"""A database outage is a 503 with Retry-After, never a 500: eligibility as a process, its PostgreSQL behind a
TCP relay the test cuts (connections reset, new ones refused) and restores. The shared PostgreSQL itself is
never touched."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from eligibility.bootstrap import MIGRATIONS
from eligibility.config import EligibilitySettings
from simulators.hospital.feed import national_id

from shared.security.staff_auth import mint_dev_token
from shared.testing import free_port, start_service, unique_prefix

pytestmark = pytest.mark.integration


class Relay:
    """127.0.0.1:<port> -> the real PostgreSQL, byte for byte, until cut."""

    def __init__(self, target_port: int) -> None:
        self.port, self.target_port = free_port(), target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture(scope="module")
async def behind_relay() -> AsyncIterator[tuple[Relay, str]]:
    relay = Relay(EligibilitySettings().pg_port)
    await relay.start()
    settings = EligibilitySettings(topic_prefix=unique_prefix("outage"), database_name="test_eligibility_outage",
                                   pg_port=relay.port)
    process = await start_service("eligibility", settings, MIGRATIONS, {"PG_PORT": str(relay.port)})
    try:
        yield relay, process.url
    finally:
        process.stop()
        with contextlib.suppress(Exception):
            await relay.cut()


async def test_while_the_database_is_down_every_api_answers_503_with_retry_after(behind_relay) -> None:  # type: ignore[no-untyped-def]
    relay, url = behind_relay
    token = mint_dev_token(EligibilitySettings().jwt_secret.get_secret_value(), "officer-outage", "registry_officer")
    lookup = {"national_id": national_id(__import__("random").Random(3))}
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        assert (await http.post("/v1/persons:lookup", json=lookup)).status_code == 404
        await relay.cut()
        calls = [("POST", "/v1/persons:lookup", lookup),
                 ("POST", "/v1/consents", {**lookup, "signed_on": "2026-01-05"}),
                 ("GET", "/v1/screenings/summary", None)]
        for _ in range(2):  # the pool's stale connections first, then refused new ones
            for method, path, body in calls:
                response = await http.request(method, path, json=body)
                assert response.status_code == 503, (path, response.text)
                assert response.headers["content-type"] == "application/problem+json"
                assert response.json()["code"] == "database_unavailable"
                assert int(response.headers["retry-after"]) > 0
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"]
        await relay.start()
        deadline = asyncio.get_running_loop().time() + 60
        while (response := await http.post("/v1/persons:lookup", json=lookup)).status_code != 404:
            assert response.status_code == 503, response.text
            assert asyncio.get_running_loop().time() < deadline, "never recovered"
            await asyncio.sleep(0.5)
