"""Builds a service process: FastAPI app, database, producer, outbox relay, consumer runners, health, metrics."""

import asyncio
import contextlib
import gc
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import HistogramMetricFamily

from shared.contracts.openapi import document_problems
from shared.db import Database, ensure_database
from shared.http_server import run_http
from shared.messaging.consumer import ConsumerRunner, Handler
from shared.messaging.kafka import KafkaProducer
from shared.messaging.outbox import OutboxRelay
from shared.migrations import upgrade_to_head
from shared.ops import kafka_overview
from shared.problems import ProblemError, install_problem_handlers
from shared.request_guard import RequestGuard
from shared.retry import until_up
from shared.security.staff_auth import Principal, Role, TokenVerifier, bearer_token, require
from shared.settings import ServiceSettings
from shared.telemetry import SampledQueriesInstrumentor, setup_telemetry
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


D = TypeVar("D")


@dataclass
class Runtime(Generic[D]):
    """What a running service holds: handlers and routes reach the infrastructure through it, and the service's
    own typed dependencies (ciphers, partner gateways, its settings) through `deps`."""

    settings: ServiceSettings
    db: Database
    producer: KafkaProducer
    relay: OutboxRelay
    verifier: TokenVerifier
    deps: D


@dataclass(frozen=True)
class ConsumerSpec:
    group_id: str
    topics: Sequence[str]
    handler: Callable[[Runtime[Any]], Handler[Any]]
    unit_of_work: UnitOfWorkFactory[Any] = UnitOfWork
    """Makes the unit of work each batch is applied in (a service's subclass adds its repositories)."""


Background = Callable[[Runtime[Any], asyncio.Event], Coroutine[Any, Any, None]]


@dataclass
class ServiceSpec:
    """Everything a service declares; `build_app` wires it the same way for every service."""

    settings: ServiceSettings
    title: str
    routers: Sequence[APIRouter] = ()
    consumers: Sequence[ConsumerSpec] = ()
    background: Sequence[Background] = ()
    dependencies: Callable[[], Awaitable[Any]] | None = None
    """Builds the service's typed dependencies (`Runtime.deps`) at start-up."""
    on_start: Callable[[Runtime[Any]], Awaitable[None]] | None = None
    """Start-up work that needs the running infrastructure (seeding), after the dependencies are built and
    before the consumers start."""
    on_stop: Callable[[Runtime[Any]], Awaitable[None]] | None = None
    """Closes what the dependencies opened (partner clients)."""
    media_types: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Request media types a path accepts besides application/json (shared.request_guard)."""
    signed_prefixes: tuple[str, ...] = ()
    """Paths whose handlers check a signature over the raw body before reading it (shared.request_guard)."""


def build_app(spec: ServiceSpec) -> FastAPI:
    """The service's FastAPI app; its lifespan starts and stops every moving part in order."""
    settings = spec.settings
    setup_telemetry(settings.service_name, settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings)
        producer = KafkaProducer(settings)
        await _start_producer(producer)
        relay = OutboxRelay(db, producer, settings)
        deps = await spec.dependencies() if spec.dependencies else None
        runtime: Runtime[Any] = Runtime(settings=settings, db=db, producer=producer, relay=relay,
                                        verifier=token_verifier(settings), deps=deps)
        app.state.runtime = runtime
        if spec.on_start:
            await spec.on_start(runtime)
        stopping = asyncio.Event()
        runners = [
            ConsumerRunner(settings=settings, db=db, producer=producer, group_id=c.group_id, topics=c.topics,
                           handler=c.handler(runtime), unit_of_work=c.unit_of_work)
            for c in spec.consumers
        ]
        app.state.runners = runners
        app.state.consumer_specs = spec.consumers
        tasks = [asyncio.create_task(relay.run(), name="outbox-relay")]
        tasks += [asyncio.create_task(r.run(), name=f"consumer-{c.group_id}")
                  for r, c in zip(runners, spec.consumers, strict=True)]
        tasks += [asyncio.create_task(b(runtime, stopping), name=getattr(b, "__name__", "bg")) for b in spec.background]
        for task in tasks:
            task.add_done_callback(_crash_loudly)
        log.info("%s started", settings.service_name)
        try:
            yield
        finally:
            stopping.set()
            for r in runners:
                r.stop()
            relay.stop()
            await asyncio.wait(tasks, timeout=15)
            for task in tasks:
                task.cancel()
            if spec.on_stop:
                await spec.on_stop(runtime)
            await producer.stop()
            await db.dispose()
            # A pass that stopped the process for 50 ms or more is a warning: it is that long on every hop it met.
            log.log(logging.WARNING if collector_pauses.longest_ms() >= 50 else logging.INFO,
                    "%s stopped; collector pauses: %s", settings.service_name, collector_pauses.summary())

    app = FastAPI(title=spec.title, lifespan=lifespan, version="1.0.0")
    install_problem_handlers(app)
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes, media_types=spec.media_types,
                       signed_prefixes=spec.signed_prefixes)
    app.include_router(_ops_router())
    for router in spec.routers:
        app.include_router(router)
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    generate_openapi = app.openapi

    def openapi_with_problems() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(generate_openapi())
        return app.openapi_schema

    app.openapi = openapi_with_problems  # type: ignore[method-assign]
    return app


async def _start_producer(producer: KafkaProducer) -> None:
    await until_up(producer.start, "producer start", retry_on=KafkaError, attempts=60)


def _crash_loudly(task: "asyncio.Task[Any]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s died", task.get_name(), exc_info=task.exception())


def token_verifier(settings: ServiceSettings) -> TokenVerifier:
    """JWKS in production (JWT_JWKS_URL), the shared secret in development."""
    if settings.jwt_jwks_url:
        return TokenVerifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwt_jwks_url)
    return TokenVerifier(issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                         secret=settings.jwt_secret.get_secret_value())


_bearer = HTTPBearer(auto_error=False, description="A staff JWT (see `python -m shared.security.devtoken`).")


def staff(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the verified staff member, who must hold one of `roles` (401 / 403 problems otherwise)."""

    async def dependency(request: Request,
                         credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        token = bearer_token(f"Bearer {credentials.credentials}" if credentials else None)
        verifier: TokenVerifier = request.app.state.runtime.verifier
        return require(verifier.verify(token), roles)

    return dependency


def _ops_router() -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz(request: Request) -> dict[str, Any]:
        """Readiness: the database answers and every consumer has joined its group."""
        runtime: Runtime[Any] = request.app.state.runtime
        try:
            await runtime.db.ping()
        except Exception as exc:
            raise ProblemError(503, "database_unavailable", "the database does not answer") from exc
        if not all(r.ready.is_set() for r in request.app.state.runners):
            raise ProblemError(503, "broker_unavailable", "consumers have not joined their groups yet")
        return {"status": "ready"}

    @router.get("/ops/kafka")
    async def kafka(request: Request, _: Principal = Depends(staff(Role.ops))) -> dict[str, Any]:
        """This service's consumer lag per topic and the dead letters of the topics it consumes (ops)."""
        runtime: Runtime[Any] = request.app.state.runtime
        groups = {c.group_id: list(c.topics) for c in request.app.state.consumer_specs}
        return await kafka_overview(runtime.settings, groups)

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def prepare_database(settings: ServiceSettings, migrations_dir: Path) -> None:
    """Create the database if missing and migrate it to head (synchronous, before serving)."""
    asyncio.run(ensure_database(settings))
    upgrade_to_head(settings, migrations_dir)


GC_THRESHOLDS = (50_000, 20, 20)
"""The collector's generation thresholds once start-up is frozen (Python's are 700, 10, 10). A batch keeps its
decoded events, their payloads and its rows alive until it commits, so with 700 the youngest generation is walked
every 700 allocations while hundreds of objects survive each pass, and they are walked again in the older
generations. Decoding 500 envelopes (kept alive as a batch keeps them): 12.3 -> 9.8 us a message at the best of
eight runs, 19.0 -> 11.2 at the median; with the collector off, 9.5. Cyclic garbage waits a little longer."""


class CollectorPauses:
    """How long the garbage collector's passes stopped the process, per generation, as a Prometheus histogram
    (`medassist_gc_pause_seconds`) and a summary logged at shutdown.

    The callback (gc.callbacks, run around every pass) only adds to lists of ints: it can run at any allocation,
    also inside a metric's lock, so it takes none; the histogram is read from those lists when scraped."""

    BOUNDS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)

    def __init__(self) -> None:
        self._started = 0
        self._counts = [[0] * (len(self.BOUNDS_MS) + 1) for _ in range(3)]  # per generation, per bucket
        self._sum_ns = [0, 0, 0]
        self._max_ns = [0, 0, 0]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
            return
        took = time.perf_counter_ns() - self._started
        generation = info["generation"]
        self._sum_ns[generation] += took
        if took > self._max_ns[generation]:
            self._max_ns[generation] = took
        counts, ms, bucket = self._counts[generation], took / 1e6, 0
        for bound in self.BOUNDS_MS:
            if ms <= bound:
                break
            bucket += 1
        counts[bucket] += 1

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily("medassist_gc_pause_seconds",
                                       "Garbage collector passes by generation and how long each stopped the process",
                                       labels=["generation"])
        for generation in range(3):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.BOUNDS_MS, None), self._counts[generation], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound is None else str(bound / 1000), cumulative))
            family.add_metric([str(generation)], buckets, self._sum_ns[generation] / 1e9)
        yield family

    def longest_ms(self) -> float:
        return max(self._max_ns) / 1e6

    def summary(self) -> str:
        """One line: passes, total and longest pause of each generation, and the passes over 10 ms."""
        over = self.BOUNDS_MS.index(10) + 1
        return "; ".join(
            f"gen{g} {sum(self._counts[g])} passes, {self._sum_ns[g] / 1e6:.0f} ms, "
            f"max {self._max_ns[g] / 1e6:.1f} ms, {sum(self._counts[g][over:])} over 10 ms" for g in range(3))


collector_pauses = CollectorPauses()


def serve(app_factory: Callable[[], FastAPI], settings: ServiceSettings, migrations_dir: Path) -> None:
    """Entry point of `python -m <service> [migrate|serve]`.

    No argument: migrate, then serve HTTP with the consumers in the same process (the local stack).
    `migrate`: migrate and exit (Kubernetes' migration Job, the only holder of the owner's password);
    `serve`: serve without migrating (Kubernetes' Deployment, which runs as the runtime role only).
    """
    command = sys.argv[1] if len(sys.argv) > 1 else "all"
    if command not in ("all", "migrate", "serve"):
        raise SystemExit(f"usage: python -m {settings.service_name} [migrate|serve]")
    if command in ("all", "migrate"):
        prepare_database(settings, migrations_dir)
    if command == "migrate":
        return
    # Statements get spans only inside sampled traces (ADR 0045); the instrumentor's __init__ is unannotated.
    SampledQueriesInstrumentor().instrument()  # type: ignore[no-untyped-call]
    app = app_factory()
    # What is loaded by now (modules, models, schemas) lives as long as the process: frozen, the collector's
    # full passes no longer walk it. A 5,000-person registry import spent a third of eligibility's CPU in them.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    if collector_pauses not in gc.callbacks:
        gc.callbacks.append(collector_pauses)
        REGISTRY.register(collector_pauses)
    run_http(app, host=settings.http_host, port=settings.http_port, timeout_graceful_shutdown=20)
