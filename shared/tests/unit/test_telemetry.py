"""Which spans are sampled and which leave the process: parentless database statements are dropped, new traces
follow the ratio, the rest their parent, and unsampled entry spans are exported only when they failed or ran slow."""

import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.instrumentation._semconv import _StabilityMode
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.telemetry import (
    EntrySpans,
    KeepErrorsAndSlow,
    NoParentlessQueries,
    RecordUnsampledEntries,
    SampledQueriesInstrumentor,
    UnsampledEntry,
    context_from,
    parse_traceparent,
    query_span_recorded,
    set_attributes_if_kept,
    trace_headers,
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
    provider, exported, keep = production_provider(ratio, slow_ms, max_per_s)
    return provider.get_tracer("test"), exported, keep


def production_provider(ratio: float, slow_ms: float = 1000, max_per_s: float = 1000) -> tuple[
        TracerProvider, InMemorySpanExporter, KeepErrorsAndSlow]:
    exported = InMemorySpanExporter()
    keep = KeepErrorsAndSlow([SimpleSpanProcessor(exported)], slow_ms=slow_ms, max_per_s=max_per_s)
    provider = TracerProvider(sampler=NoParentlessQueries(RecordUnsampledEntries(
        ParentBased(TraceIdRatioBased(ratio)))))
    provider.add_span_processor(keep)
    return provider, exported, keep


def production_entries(ratio: float, max_per_s: float = 1000) -> tuple[EntrySpans, InMemorySpanExporter,
                                                                        KeepErrorsAndSlow]:
    provider, exported, keep = production_provider(ratio, max_per_s=max_per_s)
    spans = EntrySpans()
    spans.use(provider, keep)
    return spans, exported, keep


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


# Entry spans at the price of their sampling decision (shared.telemetry.EntrySpans): a sampled one is an SDK span,
# an unsampled one is kept in plain fields and becomes a span only when it ends in error or slow.
PARENT = f"00-{'ab' * 16}-{'cd' * 8}"


@pytest.mark.parametrize(("ratio", "flags", "error", "duration_ms", "exported"), [
    (0.0, "01", False, 1, True),        # a sampled settlement: exported whatever the ratio
    (1.0, "00", False, 1, False),       # unsampled, quick and fine: nothing leaves the process
    (1.0, "00", True, 1, True),         # unsampled, ended in error (a dead letter): kept
    (1.0, "00", False, 1500, True),     # unsampled, a slow batch: kept
    (1.0, "00", False, 999, False),     # just under the threshold: not kept
])
def test_consumer_entry_spans_follow_their_parent_and_unsampled_ones_are_kept_only_when_failed_or_slow(
        ratio: float, flags: str, error: bool, duration_ms: int, exported: bool) -> None:
    spans, out, _ = production_entries(ratio)
    start = time.time_ns()
    parent = parse_traceparent(f"{PARENT}-{flags}")
    span = spans.start("case.decided process", parent, kind=trace.SpanKind.CONSUMER, start_time=start,
                       attributes={"messaging.kafka.offset": 7})
    assert isinstance(span, UnsampledEntry) is (flags == "00"), "only unsampled spans skip the SDK"
    assert span.get_span_context().trace_id == int("ab" * 16, 16), "one trace across services"
    assert (traceparent_of(span) or "")[-2:] == flags, "the parent's decision travels on"
    span.set_attribute("case.id", "c-1")  # set by a handler after the span started
    if error:
        span.record_exception(RuntimeError("bank unavailable"))
        span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
    span.end(start + duration_ms * 1_000_000)
    finished = out.get_finished_spans()
    assert len(finished) == int(exported)
    if exported:
        [kept] = finished
        assert kept.context is not None and kept.context.trace_flags.sampled
        assert (kept.context.trace_id, kept.context.span_id) == (span.get_span_context().trace_id,
                                                                 span.get_span_context().span_id)
        assert kept.parent is not None and kept.parent.span_id == int("cd" * 8, 16)
        assert (kept.name, kept.kind) == ("case.decided process", trace.SpanKind.CONSUMER)
        assert (kept.start_time, kept.end_time) == (start, start + duration_ms * 1_000_000)
        assert dict(kept.attributes or {}) == {"messaging.kafka.offset": 7, "case.id": "c-1"}
        assert kept.status.status_code is (StatusCode.ERROR if error else StatusCode.UNSET)
        assert [e.name for e in kept.events] == (["exception"] if error else [])
        if error:
            assert kept.status.description == "dead-lettered"
            assert (kept.events[0].attributes or {})["exception.message"] == "bank unavailable"


@pytest.mark.parametrize(("flags", "error", "duration_ms", "described"), [
    ("01", False, 1, True),       # sampled: described at once
    ("00", False, 1, False),      # unsampled, quick and fine: never described
    ("00", True, 1, True),        # unsampled, kept for its error: described when it is kept
    ("00", False, 1500, True),    # unsampled, kept because slow
])
def test_attributes_worth_their_cost_only_on_a_kept_span_are_made_only_for_one(
        flags: str, error: bool, duration_ms: int, described: bool) -> None:
    spans, out, _ = production_entries(1.0)
    start, asked = time.time_ns(), []

    def describe(event_id: int) -> dict[str, str]:
        asked.append(event_id)
        return {"event.id": f"e-{event_id}"}

    span = spans.start("case.decided process", parse_traceparent(f"{PARENT}-{flags}"), start_time=start,
                       attributes={"messaging.kafka.offset": 7})
    set_attributes_if_kept(span, describe, 42)
    assert asked == ([42] if flags == "01" else []), "a sampled span is described at once, an unsampled one not yet"
    if error:
        span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
    span.end(start + duration_ms * 1_000_000)
    assert asked == ([42] if described else [])
    finished = out.get_finished_spans()
    assert [dict(s.attributes or {}) for s in finished] == (
        [{"messaging.kafka.offset": 7, "event.id": "e-42"}] if described else [])


@pytest.mark.parametrize(("ratio", "sampled"), [(1.0, True), (0.0, False)])
def test_new_traces_follow_the_ratio_on_the_trace_id_they_get(ratio: float, sampled: bool) -> None:
    spans, out, _ = production_entries(ratio)
    request = trace.SpanContext(int("12" * 16, 16), int("34" * 8, 16), False, trace.TraceFlags(1))
    span = spans.start("settlement accepted", links=[trace.Link(request)], attributes={"settlement.id": "s-1"})
    context = span.get_span_context()
    assert context.is_valid and context.trace_id != request.trace_id, "a new trace, linked to the request"
    assert context.trace_flags.sampled is sampled
    span.end()
    finished = out.get_finished_spans()
    assert len(finished) == int(sampled), "an unsampled new trace that did nothing wrong leaves nothing"
    if sampled:
        [root] = finished
        assert root.parent is None and root.context is not None
        assert (root.context.trace_id, root.context.span_id) == (context.trace_id, context.span_id)
        assert [link.context.span_id for link in root.links] == [request.span_id]
        assert dict(root.attributes or {}) == {"settlement.id": "s-1"}


def test_spans_under_an_unsampled_entry_span_are_not_recorded() -> None:
    spans, out, _ = production_entries(1.0)
    entry = spans.start("settlement.received process", parse_traceparent(f"{PARENT}-00"))
    child = production(1.0)[0].start_span("INSERT", context=trace.set_span_in_context(entry),
                                          attributes={"db.system": "postgresql"})
    assert not child.is_recording()


def test_kept_unsampled_entry_spans_are_capped_per_second() -> None:
    spans, out, keep = production_entries(1.0, max_per_s=3)
    for _ in range(10):
        span = spans.start("settlement.received process", parse_traceparent(f"{PARENT}-00"))
        span.set_status(Status(StatusCode.ERROR, "undecodable"))
        span.end()
    assert len(out.get_finished_spans()) == keep.kept
    assert 3 <= keep.kept <= 4 and keep.kept + keep.dropped == 10


@pytest.mark.parametrize(("traceparent", "tracestate", "parsed"), [
    (f"{PARENT}-01", None, (int("ab" * 16, 16), int("cd" * 8, 16), 1, "")),
    (f"{PARENT}-00", "vendor=x,other=y", (int("ab" * 16, 16), int("cd" * 8, 16), 0, "vendor=x,other=y")),
    (f" \t{PARENT}-01 ", None, (int("ab" * 16, 16), int("cd" * 8, 16), 1, "")),   # surrounding blanks allowed
    (f"01{PARENT[2:]}-01-future", None, (int("ab" * 16, 16), int("cd" * 8, 16), 1, "")),  # a later version's extra
    (f"{PARENT}-01", "x" * 513, (int("ab" * 16, 16), int("cd" * 8, 16), 1, "")),   # an over-long tracestate: dropped
    (f"{PARENT}-01-extra", None, None),                          # version 00 has exactly four fields
    (f"ff{PARENT[2:]}-01", None, None),                          # version ff is invalid
    (f"00-{'0' * 32}-{'cd' * 8}-01", None, None),                # all-zero trace id
    (f"00-{'ab' * 16}-{'0' * 16}-01", None, None),               # all-zero span id
    (f"00-{'AB' * 16}-{'cd' * 8}-01", None, None),               # upper case is not W3C
    (f"00-{'ab' * 15}-{'cd' * 8}-01", None, None),               # short trace id
    ("garbage", None, None),
    ("", None, None),
    (None, None, None),
])
def test_traceparent_headers_are_read_as_w3c_trace_context_and_invalid_ones_ignored(
        traceparent: str | None, tracestate: str | None, parsed: tuple[int, int, int, str] | None) -> None:
    context = parse_traceparent(traceparent, tracestate)
    if parsed is None:
        assert context is None
        return
    assert context is not None and context.is_remote
    assert (context.trace_id, context.span_id, int(context.trace_flags), context.trace_state.to_header()) == parsed
    # the propagator the SDK ships reads the same
    standard = trace.get_current_span(TraceContextTextMapPropagator().extract(
        {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})})).get_span_context()
    assert (standard.trace_id, standard.span_id, standard.trace_flags) == parsed[:3]


def test_trace_headers_continue_the_span_they_name() -> None:
    state = trace.TraceState([("vendor", "x")])
    span = trace.NonRecordingSpan(trace.SpanContext(5, 6, False, trace.TraceFlags(1), state))
    headers = trace_headers(span)
    assert headers == {"traceparent": f"00-{5:032x}-{6:016x}-01", "tracestate": "vendor=x"}
    assert parse_traceparent(headers["traceparent"], headers["tracestate"]) == trace.SpanContext(
        5, 6, True, trace.TraceFlags(1), state)
    assert trace_headers(None) == {} and trace_headers(trace.INVALID_SPAN) == {}
    assert context_from(headers["traceparent"]) is not None


def test_an_unsampled_entry_span_keeps_the_sdk_status_rules() -> None:
    spans, out, _ = production_entries(1.0)
    span = spans.start("sms send", parse_traceparent(f"{PARENT}-00"))
    span.set_status(Status(StatusCode.OK))
    span.set_status(Status(StatusCode.ERROR, "too late"))  # OK is final, as on an SDK span
    span.end()
    assert out.get_finished_spans() == ()
    with pytest.raises(RuntimeError), trace.use_span(spans.start("sms send", parse_traceparent(f"{PARENT}-00")),
                                                     end_on_exit=True):
        raise RuntimeError("partner down")  # an exception through use_span: recorded, status ERROR, kept
    [kept] = out.get_finished_spans()
    assert kept.status.status_code is StatusCode.ERROR and [e.name for e in kept.events] == ["exception"]


@pytest.mark.parametrize("flags", ["01", "00"])
def test_entry_spans_carry_the_tracers_own_scope_so_every_exporter_accepts_them(flags: str) -> None:
    # Zipkin refuses a whole batch when a tag is null: a scope without a version made every batch holding an
    # entry span (and the other spans in it) vanish from the trace viewer.
    spans, out, keep = production_entries(1.0)
    span = spans.start("case.decided process", parse_traceparent(f"{PARENT}-{flags}"), kind=trace.SpanKind.CONSUMER)
    span.set_status(Status(StatusCode.ERROR, "dead-lettered"))  # so the unsampled one is kept too
    span.end()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(plain := InMemorySpanExporter()))
    provider.get_tracer("medassist").start_span("ordinary").end()
    [kept], [ordinary] = out.get_finished_spans(), plain.get_finished_spans()
    assert kept.instrumentation_scope == ordinary.instrumentation_scope
    assert kept.instrumentation_scope is not None and kept.instrumentation_scope.version == ""


def _contexts(tracer: Any) -> dict[str, Context]:
    """The contexts a statement can run in: nothing current, the two remote parents, and a local entry span of
    each kind (sampled SDK span, record-only SDK span, `UnsampledEntry`)."""
    entries, _, _ = production_entries(0.0)
    sampled = tracer.start_span("sampled entry", context=remote(True))
    record_only = tracer.start_span("unsampled entry", context=remote(False))
    unsampled_entry = entries.start("consumed", parse_traceparent(f"00-{'ab' * 16}-{'cd' * 8}-00"))
    return {"none": Context(), "remote sampled": remote(True), "remote unsampled": remote(False),
            "local sampled": trace.set_span_in_context(sampled),
            "local record-only": trace.set_span_in_context(record_only),
            "local UnsampledEntry": trace.set_span_in_context(unsampled_entry)}


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_a_query_span_is_skipped_exactly_where_the_sampler_would_not_record_it(ratio: float) -> None:
    tracer, _, _ = production(ratio)
    decided = {}
    for name, context in _contexts(tracer).items():
        recorded = tracer.start_span("SELECT", context=context, attributes={"db.system": "postgresql"}).is_recording()
        assert query_span_recorded(trace.get_current_span(context).get_span_context()) is recorded, name
        decided[name] = recorded
    assert decided == {"none": False, "remote sampled": True, "remote unsampled": True, "local sampled": True,
                       "local record-only": False, "local UnsampledEntry": False}


class _Statement:
    """What the instrumentor reads of an asyncpg prepared statement (no connection: the span has no address)."""

    _query = "SELECT 1"
    _connection = None


class _Counting:
    """A tracer that counts the spans the instrumentor asks it for."""

    def __init__(self, tracer: Any) -> None:
        self.tracer, self.started = tracer, 0

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        self.started += 1
        return self.tracer.start_as_current_span(*args, **kwargs)


# (where the statement runs, spans the instrumentor starts, spans exported); a remote unsampled parent's query is
# recorded (an entry span, kept if it fails or is slow), so it takes the instrumentor's own path.
@pytest.mark.parametrize(("where", "started", "spans"), [
    ("none", 0, 0), ("local UnsampledEntry", 0, 0), ("local record-only", 0, 0), ("local sampled", 1, 1),
    ("remote sampled", 1, 1), ("remote unsampled", 1, 0)])
async def test_statements_get_a_span_only_inside_a_sampled_trace(where: str, started: int, spans: int) -> None:
    tracer, exported, _ = production(0.0)
    counting = _Counting(tracer)
    instrumentor = object.__new__(SampledQueriesInstrumentor)  # not the process-wide one, and nothing wrapped
    instrumentor.capture_parameters = False
    instrumentor._tracer = counting  # type: ignore[assignment]  # counts what it passes on
    instrumentor._semconv_opt_in_mode = _StabilityMode.DEFAULT
    calls = []

    async def execute(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "rows"

    token = attach(_contexts(tracer)[where])
    try:
        for run in (instrumentor._do_prepared_execute, instrumentor._do_execute):
            assert await run(execute, _Statement(), ("SELECT 1",), {"timeout": 1}) == "rows"
    finally:
        detach(token)
    assert calls == [(("SELECT 1",), {"timeout": 1})] * 2, "the statement runs, with its arguments, either way"
    assert counting.started == 2 * started
    assert [s.name for s in exported.get_finished_spans() if (s.attributes or {}).get("db.system")] == \
        ["SELECT"] * 2 * spans
