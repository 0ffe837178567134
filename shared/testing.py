"""Helpers for integration tests: isolated topics and a fresh database per test run, on the real stack."""

import asyncio
import fcntl
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import event

from shared.contracts.envelope import Envelope
from shared.contracts.events import EventData
from shared.db import Database, ensure_database
from shared.messaging.kafka import KafkaProducer, ensure_topics
from shared.migrations import upgrade_to_head
from shared.security.staff_auth import mint_dev_token
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parent.parent


def production_secrets(settings_class: type[ServiceSettings]) -> dict[str, Any]:
    """Fresh values for every secret and key `settings_class` refuses to keep at its development default outside
    development (shared.settings), in the form each takes: for tests of production settings."""
    import base64
    import secrets

    values: dict[str, Any] = {}
    for name, info in settings_class.model_fields.items():
        if name in settings_class.development_secrets:
            values[name] = {"H001": [secrets.token_hex(16)]}  # the one non-secret-typed kind: hospital secrets
        elif isinstance(info.default, SecretStr):
            default = info.default.get_secret_value()
            key_id = default.partition("=")[0] if name.endswith("_keys") else None
            values[name] = (f"{key_id}={base64.b64encode(secrets.token_bytes(32)).decode()}" if key_id
                            else secrets.token_urlsafe(32))
    return values


def unique_prefix(label: str) -> str:
    """A topic prefix no other run uses, so tests never see each other's messages."""
    return f"{label}-{uuid.uuid4().hex[:8]}."


_stack_sessions: list[int] = []  # the open lock file, held until the process ends


def join_stack_sessions() -> bool:
    """Hold the run folder's session lock (shared) for the rest of this process's life: a test session or a benchmark
    on this stack. True when nothing else held it, so the run topics left on the broker belong to nobody alive."""
    run_dir = Path(os.environ.get("MEDASSIST_RUN_DIR", Path(__file__).resolve().parent.parent / ".run"))
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / "test-sessions.lock", os.O_RDWR | os.O_CREAT, 0o644)
    _stack_sessions.append(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        alone = True
    except BlockingIOError:
        alone = False
    fcntl.flock(fd, fcntl.LOCK_SH)
    return alone


_RUN_TOPIC = re.compile(r"^[a-z0-9]+-[0-9a-f]{8}\.")  # a topic under a unique_prefix


async def delete_run_topics(settings: ServiceSettings, chunk: int = 500) -> int:
    """Delete the topics earlier test and benchmark runs left under their unique prefixes.

    Each run adds 12 topics of 6 partitions; thousands of partitions make a broker restart load for minutes.
    The stack's own (unprefixed) topics stay. Returns how many were deleted.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=60000)
    await admin.start()
    try:
        stale = [t for t in await admin.list_topics() if _RUN_TOPIC.match(t)]
        for start in range(0, len(stale), chunk):
            await admin.delete_topics(stale[start:start + chunk], timeout_ms=60000)
        return len(stale)
    finally:
        await admin.close()


async def stack_available(settings: ServiceSettings) -> bool:
    """True when the local PostgreSQL answers (the integration tests need `make up`)."""
    try:
        conn = await asyncpg.connect(host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
                                     password=settings.pg_password.get_secret_value(), database="postgres",
                                     timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


async def prepare(settings: ServiceSettings, migrations_dir: Path | None = None) -> None:
    """Recreate the settings' database (migrated to head when a migrations folder is given) and its topics."""
    await ensure_database(settings, recreate=True)
    if migrations_dir is not None:
        await asyncio.to_thread(upgrade_to_head, settings, migrations_dir)
    await ensure_topics(settings, partitions=int(os.environ.get("KAFKA_PARTITIONS", "6")))


@asynccontextmanager
async def migrated_database(settings: ServiceSettings, migrations_dir: Path) -> AsyncIterator[Database]:
    """A fresh database of the settings' name, migrated to head, as the service's runtime role uses it (for a
    repository's contract test against the real PostgreSQL)."""
    await ensure_database(settings, recreate=True)
    await asyncio.to_thread(upgrade_to_head, settings, migrations_dir)
    db = Database(settings)
    try:
        yield db
    finally:
        await db.dispose()


@contextmanager
def statements_sent(db: Database) -> Iterator[list[str]]:
    """The SQL statements `db` sends inside the block, as the code sent them (a bulk path's statement guard)."""
    sent: list[str] = []

    def record(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


@dataclass
class ServiceUnderTest:
    """A service running as a process in an integration test: staff clients for its API, events onto its topics."""

    settings: ServiceSettings
    url: str
    producer: KafkaProducer

    def client(self, role: str, district: str | None = None, subdistrict: str | None = None,
               subject: str | None = None) -> httpx.AsyncClient:
        """An HTTP client carrying a development staff token for `role` in the given area."""
        token = mint_dev_token(self.settings.jwt_secret.get_secret_value(),
                               subject or f"{role}-{subdistrict or district or 'test'}", role, district, subdistrict)
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    async def get_until(self, path: str, until: Callable[[Any], bool], timeout: float = 60,
                        role: str = "ops") -> Any:
        """GET `path` as `role` until it answers 200 with a body for which `until` holds; that body."""
        deadline = asyncio.get_running_loop().time() + timeout
        async with self.client(role) as http:
            while True:
                response = await http.get(path)
                if response.status_code == 200 and until(response.json()):
                    return response.json()
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"GET {path}: {response.status_code} {response.text}")
                await asyncio.sleep(0.2)

    async def send(self, topic: str, data: EventData, ref: str) -> Envelope:
        """Publish `data` in a new envelope keyed by `ref` on a logical topic; returns the envelope."""
        envelope = Envelope.wrap(data, person_ref=ref, producer="test")
        await self.resend(topic, envelope)
        return envelope

    async def resend(self, topic: str, envelope: Envelope) -> None:
        """Publish an envelope (again): a redelivery, as Kafka does after a crash."""
        await self.producer.send_and_wait(self.settings.topic(topic), envelope.to_bytes(), key=envelope.person_ref)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """A test's own aiohttp app (a partner's stand-in, a callback receiver) on a free loopback port: its base URL,
    the server cleaned up on the way out."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # started: it has its socket
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVICE_PATHS = [str(ROOT / "services" / s) for s in ("intake", "eligibility", "calculation", "approval",
                                                      "disbursement", "notification", "simulators", "console")]


class ServiceProcess:
    """A service started as its own process (`python -m <module>`), as in production, for tests."""

    def __init__(self, module: str, env: dict[str, str], port: int, log_dir: Path | None = None) -> None:
        self.module, self.port = module, port
        self.url = f"http://127.0.0.1:{port}"
        self._env = {**os.environ, **env, "HTTP_PORT": str(port),
                     "PYTHONPATH": os.pathsep.join([str(ROOT), *SERVICE_PATHS])}
        log_dir = log_dir or ROOT / ".run" / "logs" / "tests"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{module.replace('.', '-')}-{port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "ServiceProcess":
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen([sys.executable, "-m", self.module], env=self._env, cwd=ROOT,
                                      stdout=self._log, stderr=self._log)
        return self

    async def wait_ready(self, timeout: float = 90) -> None:
        import httpx

        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                if self._proc is not None and self._proc.poll() is not None:
                    raise RuntimeError(f"{self.module} exited with {self._proc.returncode}; see {self.log_path}")
                try:
                    if (await client.get(f"{self.url}/readyz", timeout=2)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.module} not ready; see {self.log_path}")
                await asyncio.sleep(0.3)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)

    def restart(self, env: dict[str, str]) -> "ServiceProcess":
        """Stop the process and start it again, on the same port, with `env` added to its settings (its databases
        and topics stay as they are); the caller waits for it to be ready."""
        self.stop()
        self._env.update(env)
        return self.start()

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except Exception:
                self._proc.kill()
        if getattr(self, "_log", None):
            self._log.close()


async def start_service(module: str, settings: ServiceSettings, migrations_dir: Path,
                        env: dict[str, str] | None = None, port: int | None = None) -> ServiceProcess:
    """A fresh database and topics for `settings`, then the service as its own process, ready to serve.

    The caller stops it. `env` adds settings for the process; `port` when the caller needs it in advance.
    """
    if not await stack_available(settings):
        raise RuntimeError("PostgreSQL is not reachable: run `make up` (make test does it for you)")
    await prepare(settings, migrations_dir)
    process = ServiceProcess(module, {"TOPIC_PREFIX": settings.topic_prefix, "DATABASE_NAME": settings.database,
                                      **(env or {})}, port or free_port()).start()
    try:
        await process.wait_ready()
    except BaseException:
        process.stop()
        raise
    return process


async def read_topic(settings: ServiceSettings, topic: str, expect: int, timeout: float = 30) -> list:  # type: ignore[type-arg]
    """Every record of a (logical) topic until `expect` arrived or the time is up: tests read what was sent."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list = []  # type: ignore[type-arg]
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expect and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records


class OtlpReceiver:
    """A real OTLP/HTTP trace receiver on loopback: services export to it, tests read what they exported."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[dict] = []  # type: ignore[type-arg]
        self.raw: list[bytes] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with lock:
                    receiver.raw.append(body)
                    for resource_spans in request.resource_spans:
                        service = next((a.value.string_value for a in resource_spans.resource.attributes
                                        if a.key == "service.name"), "?")
                        for scope in resource_spans.scope_spans:
                            for span in scope.spans:
                                receiver.spans.append({
                                    "service": service, "name": span.name, "trace_id": span.trace_id.hex(),
                                    "span_id": span.span_id.hex(), "parent_span_id": span.parent_span_id.hex(),
                                    "kind": span.kind, "status": span.status.code,  # 2: ERROR
                                    "duration_ms": (span.end_time_unix_nano
                                                                       - span.start_time_unix_nano) / 1e6,
                                    "attributes": {a.key: _otlp_value(a.value) for a in span.attributes},
                                })
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


def _otlp_value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else str(value)


SERVICES = ("intake", "eligibility", "calculation", "approval", "disbursement", "notification")
SIMULATORS = {"bank": ("simulators.bank", "BANK_SIM_PORT"), "sms": ("simulators.sms", "SMS_SIM_PORT")}


async def start_services(prefix: str, db_prefix: str, env: dict[str, str] | None = None,
                         per_service: dict[str, dict[str, str]] | None = None, instances: int = 1,
                         ) -> tuple[dict[str, str], list[ServiceProcess]]:
    """The simulators (bank, SMS gateway) and every service as processes on free ports, with fresh databases
    and topics.

    `instances` of each service share its database and consumer group, as replicas in a cluster do; the
    urls name the first instance of each. Returns ({name: url}, processes); the caller stops the processes.
    """
    ports = {name: free_port() for name in (*SERVICES, *SIMULATORS)}
    for name in SERVICES:
        await prepare(ServiceSettings(service_name=name, topic_prefix=prefix, database_name=f"{db_prefix}_{name}"))
    common = {"TOPIC_PREFIX": prefix, **(env or {})}
    processes = [ServiceProcess(module, {port_env: str(ports[name]), **(per_service or {}).get(name, {})},
                                ports[name]) for name, (module, port_env) in SIMULATORS.items()]
    for name in SERVICES:
        for port in [ports[name], *(free_port() for _ in range(instances - 1))]:
            service_env = {**common, "DATABASE_NAME": f"{db_prefix}_{name}", **(per_service or {}).get(name, {})}
            if name == "disbursement":
                service_env = {"BANK_BASE_URL": f"http://127.0.0.1:{ports['bank']}",
                               "CALLBACK_BASE_URL": f"http://127.0.0.1:{port}", **service_env}
            if name == "notification":
                service_env = {"SMS_BASE_URL": f"http://127.0.0.1:{ports['sms']}", "SMS_QUIET_HOURS": "off",
                               "SMS_CALLBACK_BASE_URL": f"http://127.0.0.1:{port}", **service_env}
            processes.append(ServiceProcess(name, service_env, port))
    try:
        for process in processes:
            process.start()
        for process in processes:
            await process.wait_ready(120)
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}, processes


async def group_assignments(bootstrap: str, group: str) -> tuple[str, dict[str, set[tuple[str, int]]]]:
    """A consumer group's state and, per member id, the partitions it owns, as the group coordinator says."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    [described] = response.to_object()["groups"]
    members: dict[str, set[tuple[str, int]]] = {}
    for m in described["members"]:
        owned: set[tuple[str, int]] = set()
        if m["member_assignment"]:
            assignment = ConsumerProtocolMemberAssignment.decode(m["member_assignment"])
            owned = {(topic, p) for topic, partitions in assignment.assignment for p in partitions}
        members[m["member_id"]] = owned
    return described["state"], members
