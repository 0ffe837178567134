"""shared.telemetry.SampledQueriesInstrumentor on a real asyncpg connection: the statements of a sampled trace
are spans of it (BEGIN and COMMIT included), and statements outside any sampled trace start no span at all."""

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from sqlalchemy import text

from shared.db import Database
from shared.telemetry import KeepErrorsAndSlow, NoParentlessQueries, RecordUnsampledEntries, SampledQueriesInstrumentor

pytestmark = pytest.mark.integration


class _Counting(TracerProvider):
    """The production sampler at ratio 0 (only a sampled parent samples), counting the spans asked for."""

    def __init__(self) -> None:
        super().__init__(sampler=NoParentlessQueries(RecordUnsampledEntries(ParentBased(TraceIdRatioBased(0.0)))))
        self.exported = InMemorySpanExporter()
        self.add_span_processor(KeepErrorsAndSlow([SimpleSpanProcessor(self.exported)], slow_ms=60_000,
                                                  max_per_s=1000))
        self.started = 0

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = super().get_tracer(*args, **kwargs)
        provider = self
        start = tracer.start_as_current_span

        def counted(*a: Any, **k: Any) -> Any:
            provider.started += 1
            return start(*a, **k)

        tracer.start_as_current_span = counted  # type: ignore[method-assign]
        return tracer


@pytest.fixture
def provider() -> Iterator[_Counting]:
    provider = _Counting()
    instrumentor = SampledQueriesInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider
    finally:
        instrumentor.uninstrument()


async def _statements(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("SELECT 1"))
        await session.execute(text("SELECT CAST(:a AS int[])"), {"a": [1, 2]})


async def test_statements_outside_a_sampled_trace_start_no_span(provider: _Counting, db: Database) -> None:
    await _statements(db)  # parentless, as in a consumer batch or the outbox relay
    unsampled = provider.get_tracer("test").start_span("unsampled request")
    with trace.use_span(unsampled, end_on_exit=True):
        assert not unsampled.get_span_context().trace_flags.sampled
        await _statements(db)
    assert provider.started == 0
    assert [s for s in provider.exported.get_finished_spans() if (s.attributes or {}).get("db.system")] == []


async def test_the_statements_of_a_sampled_trace_are_its_spans(provider: _Counting, db: Database) -> None:
    await _statements(db)  # the pool's connection is made outside the trace
    tracer = provider.get_tracer("test")
    parent = tracer.start_span("sampled request", context=trace.set_span_in_context(trace.NonRecordingSpan(
        trace.SpanContext(0xAB, 0xCD, is_remote=True, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)))))
    with trace.use_span(parent, end_on_exit=True):
        await _statements(db)
    queries = [s for s in provider.exported.get_finished_spans() if (s.attributes or {}).get("db.system")]
    assert [s.name for s in queries] == ["BEGIN;", "SELECT", "SELECT", "COMMIT;"]
    assert {s.context.trace_id for s in queries} == {0xAB}
    assert provider.started == len(queries)
