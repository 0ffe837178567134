"""Which spans are sampled and which leave the process: parentless database statements are dropped, new traces
follow the ratio, the rest their parent, and unsampled entry spans are exported only when they failed or ran slow."""

import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode

from shared.telemetry import (
    KeepErrorsAndSlow,
    NoParentlessQueries,
    RecordUnsampledEntries,
    context_from,
    traceparent_of,
)


def test_parentless_queries_are_dropped_and_queries_inside_a_trace_are_kept() -> None:
    tracer = TracerProvider(sampler=NoParentlessQueries(ParentBased(ALWAYS_ON))).get_tracer("test")
    query = {"db.system": "postgresql"}
    assert not tracer.start_span("SELECT", attributes=query).is_recording()
    assert not tracer.start_span("SELECT", attributes={"db.system.name": "postgresql"}).is_recording()
    assert tracer.start_span("settlement accepted").is_recording()
    with tracer.start_as_current_span("settlement.received process") as parent:
        child = tracer.start_span("INSERT", attributes=query)
        assert child.is_recording()
        assert child.get_span_context().trace_id == parent.get_span_context().trace_id
    assert trace.get_current_span() is trace.INVALID_SPAN


# The production sampler (ADR 0029): a trace-id ratio for new traces, the parent's decision for the rest, the
# entry spans it leaves out recorded (not exported) so that errors and slow ones can still be kept.
def production(ratio: float, slow_ms: float = 1000, max_per_s: float = 1000) -> tuple[Any, InMemorySpanExporter,
                                                                                       KeepErrorsAndSlow]:
    exported = InMemorySpanExporter()
    keep = KeepErrorsAndSlow([SimpleSpanProcessor(exported)], slow_ms=slow_ms, max_per_s=max_per_s)
    provider = TracerProvider(sampler=NoParentlessQueries(RecordUnsampledEntries(
        ParentBased(TraceIdRatioBased(ratio)))))
    provider.add_span_processor(keep)
    return provider.get_tracer("test"), exported, keep


def remote(sampled: bool) -> Context:
    flags = "01" if sampled else "00"
    return context_from(f"00-{'ab' * 16}-{'cd' * 8}-{flags}")


@pytest.mark.parametrize(("ratio", "parent", "recording", "sampled"), [
    (1.0, None, True, True),            # a new trace, always sampled
    (0.0, None, True, False),           # a new trace left out: recorded for the error/slow rule
    (0.0, "sampled", True, True),       # a sampled settlement stays sampled in every service, whatever the ratio
    (1.0, "unsampled", True, False),    # an unsampled one stays unsampled, whatever the ratio
])
def test_entry_spans_follow_the_ratio_or_their_parent_and_are_always_recorded(
        ratio: float, parent: str | None, recording: bool, sampled: bool) -> None:
    tracer, _, _ = production(ratio)
    context = remote(parent == "sampled") if parent else None
    span = tracer.start_span("settlement.received process", context=context)
    assert span.is_recording() is recording
    assert span.get_span_context().trace_flags.sampled is sampled
    assert int((traceparent_of(span) or "-0")[-2:], 16) & 1 == int(sampled), "the sampled flag travels on"
    if parent:
        assert span.get_span_context().trace_id == int("ab" * 16, 16), "one trace across services"


@pytest.mark.parametrize(("ratio", "child_recorded"), [(1.0, True), (0.0, False)])
def test_spans_under_an_unsampled_entry_are_not_recorded_and_parentless_queries_never(
        ratio: float, child_recorded: bool) -> None:
    tracer, _, _ = production(ratio)
    assert not tracer.start_span("SELECT", attributes={"db.system": "postgresql"}).is_recording()
    with tracer.start_as_current_span("POST /v1/settlements"):
        assert tracer.start_span("INSERT", attributes={"db.system": "postgresql"}).is_recording() is child_recorded
        assert tracer.start_span("http send").is_recording() is child_recorded


@pytest.mark.parametrize(("ratio", "error", "duration_ms", "exported"), [
    (1.0, False, 1, True),       # sampled: always exported
    (0.0, False, 1, False),      # unsampled, quick and fine: nothing leaves the process
    (0.0, True, 1, True),        # unsampled, ended in error: kept
    (0.0, False, 1500, True),    # unsampled, slower than the threshold: kept
    (0.0, False, 999, False),    # just under it: not kept
])
def test_unsampled_entry_spans_are_exported_only_when_they_failed_or_ran_slow(
        ratio: float, error: bool, duration_ms: int, exported: bool) -> None:
    tracer, out, _ = production(ratio)
    start = time.time_ns()
    span = tracer.start_span("case.decided process", context=remote(sampled=ratio == 1.0), start_time=start)
    if error:
        span.set_status(Status(StatusCode.ERROR, "bank unavailable"))
    span.end(end_time=start + duration_ms * 1_000_000)
    spans = out.get_finished_spans()
    assert len(spans) == int(exported)
    if exported:
        [kept] = spans
        assert kept.context is not None and kept.context.trace_flags.sampled
        assert (kept.context.trace_id, kept.context.span_id) == (span.get_span_context().trace_id,
                                                                 span.get_span_context().span_id)
        assert kept.status.status_code is (StatusCode.ERROR if error else StatusCode.UNSET)


def test_kept_unsampled_spans_are_capped_per_second() -> None:
    tracer, out, keep = production(0.0, max_per_s=3)
    for _ in range(10):
        span = tracer.start_span("settlement.received process")
        span.set_status(Status(StatusCode.ERROR, "undecodable"))
        span.end()
    assert len(out.get_finished_spans()) == keep.kept
    assert 3 <= keep.kept <= 4 and keep.kept + keep.dropped == 10  # the bucket refills while the loop runs
