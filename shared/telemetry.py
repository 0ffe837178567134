"""OpenTelemetry and structured logging, set up once per process."""

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import AnyValue, Attributes

_configured = False
# The environment names setup_telemetry reads (besides the exporters' own OTEL_EXPORTER_* and OTEL_BSP_*).
TRACING_SETTINGS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_ZIPKIN_ENDPOINT", "OTEL_TRACES_SAMPLER",
                    "OTEL_TRACES_SAMPLER_ARG", "TRACES_KEEP_SLOW_MS", "TRACES_KEEP_MAX_PER_S")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class NoParentlessQueries(Sampler):
    """Drops database spans that belong to no trace; everything else goes to the configured sampler.

    Background loops (outbox relay, payment workers, queue gauges) query the database many times a second.
    Without this each statement would be a trace of its own: about 1,000 one-span traces a second on an idle
    stack, which floods the trace store and costs CPU. Statements made while handling a request or an event
    have a parent and stay in their settlement's trace.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and attributes and (attributes.get("db.system") or attributes.get("db.system.name")):
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoParentlessQueries{{{self._delegate.get_description()}}}"


def query_span_recorded(parent: SpanContext) -> bool:
    """Whether the services' sampler can record a query's span started under `parent` (the current span's
    context): inside a sampled trace, or under a remote parent left out (an entry span, `RecordUnsampledEntries`).
    Never parentless (`NoParentlessQueries`) nor inside an unsampled trace of this process, which is where a
    consumer batch's and the outbox relay's statements run."""
    return parent.is_valid and (parent.trace_flags.sampled or parent.is_remote)


class SampledQueriesInstrumentor(AsyncPGInstrumentor):
    """asyncpg's instrumentation, which skips a statement whose span the sampler would drop.

    The instrumentor builds a statement's name and attributes (it parses the SQL and reads the connection's
    address) and starts a span, which the sampler then drops when the statement belongs to no sampled trace:
    about 40 us of client CPU a statement on the loaded 2-core machine (132 us for a one-row SELECT through
    SQLAlchemy uninstrumented, 175 instrumented, 129 with this), a third of the statement's client CPU. Where
    `query_span_recorded` says no span can be recorded, the statement runs without any of that; elsewhere the
    instrumentor's own path runs unchanged (ADR 0045)."""

    _instance = None  # its own singleton (the base class keeps one per class that sets it, else inherits it)

    async def _do_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not query_span_recorded(trace.get_current_span().get_span_context()):
            return await func(*args, **kwargs)
        return await super()._do_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

    async def _do_cursor_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not query_span_recorded(trace.get_current_span().get_span_context()):
            return await func(*args, **kwargs)
        return await super()._do_cursor_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]

    async def _do_prepared_execute(self, func: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not query_span_recorded(trace.get_current_span().get_span_context()):
            return await func(*args, **kwargs)
        return await super()._do_prepared_execute(func, instance, args, kwargs)  # type: ignore[no-untyped-call]


class RecordUnsampledEntries(Sampler):
    """Keeps a local record of the entry spans of traces the head sampler left out, for `KeepErrorsAndSlow`.

    An entry span is where a trace enters this process: a new root, or a span continuing a remote parent (a
    Kafka message's traceparent, a stored one, an HTTP header). When the delegate drops such a span it is made
    RECORD_ONLY instead: it records its status and duration but stays unsampled, so its traceparent tells the
    next service "not sampled" and no export processor sends it unless `KeepErrorsAndSlow` does. The spans
    under an unsampled entry (its queries, its HTTP client calls) stay dropped: that is where the saving is.
    ADR 0029 says what this keeps and what it costs.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Attributes = None,
                      links: Sequence[Link] | None = None, trace_state: TraceState | None = None) -> SamplingResult:
        result = self._delegate.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is not Decision.DROP:
            return result
        parent = trace.get_current_span(parent_context).get_span_context()
        if parent.is_valid and not parent.is_remote:
            return result  # inside an unsampled entry span of this process: not recorded at all
        return SamplingResult(Decision.RECORD_ONLY, attributes, result.trace_state)

    def get_description(self) -> str:
        return f"RecordUnsampledEntries{{{self._delegate.get_description()}}}"


class KeepErrorsAndSlow(SpanProcessor):
    """Exports every sampled span, and the unsampled (record-only) spans that ended in error or ran slow.

    Head sampling decides when a trace starts, before anyone knows whether it will fail or be slow. The
    record-only entry spans of `RecordUnsampledEntries` are judged here when they end: status ERROR, or a
    duration of at least `slow_ms`, and the span goes to the export processors as if sampled (same trace and
    span ids, so Zipkin shows it under its settlement's trace id). At most `max_per_s` such spans a second
    leave a process, so an incident that fails everything does not multiply tracing's cost when the machine
    can least afford it; the rest are counted in `dropped`.
    """

    def __init__(self, exporters: Sequence[SpanProcessor], slow_ms: float, max_per_s: float) -> None:
        self._exporters = list(exporters)
        self._slow_ns = int(slow_ms * 1_000_000)
        self._max_per_s = max_per_s
        self._tokens = max_per_s
        self._refilled = time.monotonic()
        self._lock = threading.Lock()
        self.kept = 0
        self.dropped = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for exporter in self._exporters:
            exporter.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None:
            return
        if context.trace_flags.sampled:
            for exporter in self._exporters:
                exporter.on_end(span)
            return
        duration = span.end_time - span.start_time if span.end_time is not None and span.start_time is not None else 0
        if not self.admits(span.status.status_code is StatusCode.ERROR, duration):
            return
        kept = _as_sampled(span, context)
        for exporter in self._exporters:
            exporter.on_end(kept)

    def admits(self, error: bool, duration_ns: int) -> bool:
        """Whether an unsampled entry span that ended so is kept: it failed or ran slow, and the cap allows it."""
        if not (error or duration_ns >= self._slow_ns):
            return False
        if not self._take_token():
            self.dropped += 1
            return False
        self.kept += 1
        return True

    def _take_token(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._max_per_s, self._tokens + (now - self._refilled) * self._max_per_s)
            self._refilled = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def shutdown(self) -> None:
        for exporter in self._exporters:
            exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(exporter.force_flush(timeout_millis) for exporter in self._exporters)


def _as_sampled(span: ReadableSpan, context: SpanContext) -> ReadableSpan:
    """The same span with the sampled flag set, which export processors require."""
    sampled = SpanContext(context.trace_id, context.span_id, context.is_remote,
                          TraceFlags(context.trace_flags | TraceFlags.SAMPLED), context.trace_state)
    return ReadableSpan(name=span.name, context=sampled, parent=span.parent, resource=span.resource,
                        attributes=span.attributes, events=span.events, links=span.links, kind=span.kind,
                        status=span.status, start_time=span.start_time, end_time=span.end_time,
                        instrumentation_scope=span.instrumentation_scope)


def production_sampler() -> Sampler:
    """The services' sampler: the one OTEL_TRACES_SAMPLER names (default: parent-based, always on; production:
    parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG, e.g. 0.1), recording the entry spans it leaves out
    for the error/slow rule, minus parentless queries."""
    return NoParentlessQueries(RecordUnsampledEntries(_get_from_env_or_default()))


def setup_telemetry(service_name: str, log_level: str = "INFO") -> None:
    """Tracer provider and JSON logs on stderr.

    Spans go to OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set (a collector) and to Zipkin when
    OTEL_EXPORTER_ZIPKIN_ENDPOINT is set (the local trace viewer); to both when both are. Which spans: the
    sampled ones (`production_sampler`), and unsampled entry spans that ended in error or lasted at least
    TRACES_KEEP_SLOW_MS (default 1000), at most TRACES_KEEP_MAX_PER_S (default 50) a second (ADR 0029).
    """
    global _configured
    if _configured:
        return
    _configured = True
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=production_sampler())
    exporters: list[SpanProcessor] = []
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(BatchSpanProcessor(OTLPSpanExporter()))
    if os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT"):  # the local trace viewer (docs/decisions/0014)
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        exporters.append(BatchSpanProcessor(ZipkinExporter()))
    keep = None
    if exporters:
        keep = KeepErrorsAndSlow(exporters, slow_ms=float(os.environ.get("TRACES_KEEP_SLOW_MS", "1000")),
                                 max_per_s=float(os.environ.get("TRACES_KEEP_MAX_PER_S", "50")))
        provider.add_span_processor(keep)
    trace.set_tracer_provider(provider)
    entry_spans.use(provider, keep)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service_name))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level)
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


tracer = trace.get_tracer("medassist")


def traceparent_of(span: trace.Span) -> str | None:
    """The W3C traceparent of a span, to store with a row whose later work continues the same trace."""
    ctx = span.get_span_context()  # the sampled flag goes along: an unsampled settlement stays unsampled
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}" if ctx.is_valid else None


def trace_headers(span: trace.Span | None) -> dict[str, str]:
    """The W3C headers (traceparent, and tracestate when there is one) that continue `span`'s trace in the next
    service: what the TraceContext propagator writes, without building a Context for it."""
    if span is None:
        return {}
    traceparent = traceparent_of(span)
    if traceparent is None:
        return {}
    state = span.get_span_context().trace_state
    return {"traceparent": traceparent, "tracestate": state.to_header()} if state else {"traceparent": traceparent}


# W3C Trace Context, as OpenTelemetry's TraceContext propagator reads it.
_TRACEPARENT = re.compile(r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?[ \t]*")
_NO_TRACE_ID, _NO_SPAN_ID = "0" * 32, "0" * 16
_TRACESTATE_MAX_LENGTH = 512


def parse_traceparent(traceparent: str | None, tracestate: str | None = None) -> SpanContext | None:
    """The remote parent a traceparent (and tracestate) header names, or None when it is missing or invalid.

    The TraceContext propagator's rules (version ff and a version 00 with extra fields refused, all-zero ids
    refused, an over-long tracestate ignored), without the Context, the composite propagator and the baggage
    it would also look for: a Kafka message or a stored row carries only these two."""
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _NO_TRACE_ID or span_id == _NO_SPAN_ID:
        return None
    state = TraceState.from_header([tracestate]) if tracestate and len(tracestate) <= _TRACESTATE_MAX_LENGTH else None
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16)),
                       trace_state=state)


def context_from(traceparent: str | None) -> Context:
    """The trace context a stored traceparent continues (an empty context when there is none)."""
    return _context_of(parse_traceparent(traceparent))


class EntrySpans:
    """Starts entry spans (where a trace enters this process: a new settlement, a consumed message) at the price
    of their sampling decision (ADR 0029).

    A sampled entry span is an ordinary SDK span. An unsampled one is an `UnsampledEntry`: ids, attributes and
    status in plain fields, which becomes a real span only if it ends in error or slow and `KeepErrorsAndSlow`
    admits it. The spans the `RecordUnsampledEntries` sampler makes record-only cost 9 µs each through the
    SDK; most unsampled messages fail at nothing and are never slow, so they need not pay for it.
    A remote parent's decision is followed (the services' samplers are parent-based); a new trace asks the
    provider's sampler, with the trace id it will have.
    """

    def __init__(self) -> None:
        self._sdk: SdkTracer | None = None
        self._keep: KeepErrorsAndSlow | None = None
        self._random_ids = True

    def use(self, provider: TracerProvider, keep: KeepErrorsAndSlow | None) -> None:
        """Start spans with `provider` (its sampler, ids and processors); unsampled ones are judged by `keep`
        (None: no exporter, nothing unsampled is ever kept)."""
        sdk = provider.get_tracer("medassist")
        assert isinstance(sdk, SdkTracer)
        self._sdk, self._keep = sdk, keep
        self._random_ids = sdk.id_generator.is_trace_id_random()

    def start(self, name: str, parent: SpanContext | None = None, *, kind: SpanKind = SpanKind.INTERNAL,
              attributes: Mapping[str, AnyValue] | None = None, links: Sequence[Link] = (),
              start_time: int | None = None) -> trace.Span:
        """An entry span continuing the remote `parent`, or the root of a new trace when `parent` is None."""
        sdk = self._sdk
        if sdk is None:  # telemetry not set up: the API's tracer (no-op unless a provider was set otherwise)
            return tracer.start_span(name, context=_context_of(parent), kind=kind, attributes=attributes,
                                     links=links, start_time=start_time)
        if parent is not None and parent.trace_flags.sampled:
            return sdk.start_span(name, context=_context_of(parent), kind=kind, attributes=attributes, links=links,
                                  start_time=start_time)
        if parent is None:
            trace_id = sdk.id_generator.generate_trace_id()
            decided = sdk.sampler.should_sample(None, trace_id, name, kind, attributes, links)
            flags = TraceFlags.RANDOM_TRACE_ID if self._random_ids else TraceFlags.DEFAULT
            if decided.decision is Decision.RECORD_AND_SAMPLE:
                context = SpanContext(trace_id, sdk.id_generator.generate_span_id(), False,
                                      TraceFlags(flags | TraceFlags.SAMPLED), decided.trace_state)
                return _recorded(sdk, name, context, None, kind, decided.attributes, links, start_time)
            context = SpanContext(trace_id, sdk.id_generator.generate_span_id(), False, TraceFlags(flags),
                                  decided.trace_state)
        else:
            context = SpanContext(parent.trace_id, sdk.id_generator.generate_span_id(), False,
                                  TraceFlags(parent.trace_flags & TraceFlags.RANDOM_TRACE_ID), parent.trace_state)
        return UnsampledEntry(sdk, self._keep, name, context, parent, kind, attributes, links,
                              start_time or time.time_ns())


class UnsampledEntry(trace.Span):
    """The entry span of an unsampled trace, until it ends: what a record-only span would record, in plain fields.

    Its ids travel on like any span's (traceparent with the unsampled flag, so downstream stays unsampled). When
    it ends with status ERROR or after at least the keep threshold, and `KeepErrorsAndSlow` admits it (the
    per-second cap), it is made into an SDK span with the same ids, times, attributes, events and status, flagged
    sampled, and goes through the provider's processors to the exporters. Otherwise it is forgotten.
    """

    __slots__ = ("_sdk", "_keep", "_name", "_context", "_parent", "_kind", "_attributes", "_links", "_start",
                 "_status", "_events", "_ended", "_if_kept")

    def __init__(self, sdk: SdkTracer, keep: KeepErrorsAndSlow | None, name: str, context: SpanContext,
                 parent: SpanContext | None, kind: SpanKind, attributes: Mapping[str, AnyValue] | None,
                 links: Sequence[Link], start_time: int) -> None:
        self._sdk, self._keep, self._name, self._context, self._parent = sdk, keep, name, context, parent
        self._kind, self._links, self._start = kind, links, start_time
        self._attributes: dict[str, AnyValue] = dict(attributes) if attributes else {}
        self._status = _UNSET
        self._events: list[tuple[str, BaseException | None, Attributes, int]] = []
        self._ended = False
        self._if_kept: tuple[Callable[[Any], Mapping[str, AnyValue]], Any] | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._ended

    def set_attribute(self, key: str, value: AnyValue) -> None:
        self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, AnyValue]) -> None:
        self._attributes.update(attributes)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        self._events.append((name, None, attributes, timestamp or time.time_ns()))

    def record_exception(self, exception: BaseException, attributes: Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        self._events.append(("exception", exception, attributes, timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._status.status_code is not StatusCode.OK:  # as in the SDK, OK is final
            self._status = status if isinstance(status, Status) else Status(status, description)

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        end = end_time or time.time_ns()
        if self._keep is None or not self._keep.admits(self._status.status_code is StatusCode.ERROR, end - self._start):
            return
        ctx = self._context
        kept = SpanContext(ctx.trace_id, ctx.span_id, False, TraceFlags(ctx.trace_flags | TraceFlags.SAMPLED),
                           ctx.trace_state)
        if self._if_kept is not None:
            describe, subject = self._if_kept
            self._attributes.update(describe(subject))
        span = _recorded(self._sdk, self._name, kept, self._parent, self._kind, self._attributes, self._links,
                         self._start)
        for name, exception, attributes, timestamp in self._events:
            if exception is None:
                span.add_event(name, attributes, timestamp)
            else:
                span.record_exception(exception, attributes, timestamp)
        span.set_status(self._status)
        span.end(end)


T = TypeVar("T")


def end_spans_of_a_failed_call(spans: Sequence[trace.Span], exc: BaseException, description: str) -> None:
    """End the spans of one batched partner call that raised: each an error span with the exception, except on a
    cancellation (a stop), where the call did not fail and the spans just end."""
    for span in spans:
        if isinstance(exc, Exception):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, description))
        span.end()


def set_attributes_if_kept(span: trace.Span, describe: Callable[[T], Mapping[str, AnyValue]], subject: T) -> None:
    """Set `describe(subject)` as attributes of `span`: now on a recording span; on an `UnsampledEntry`, only
    if it is kept (ended in error or slow), so the unsampled messages that are not pay nothing for them."""
    if isinstance(span, UnsampledEntry):
        span._if_kept = (describe, subject)
    else:
        span.set_attributes(describe(subject))


_UNSET = Status(StatusCode.UNSET)
# What the SDK's get_tracer("medassist") gives its spans: a version of "" when none is named, never None. The
# Zipkin exporter writes the scope's version as a tag, and Zipkin refuses a whole batch with a null tag value (every
# span of the batch is lost, not only this one).
_SCOPE = InstrumentationScope("medassist", "")
_LIMITS = SpanLimits()


class _ChosenIds(Span):
    """An SDK span whose ids were chosen before it was made (a tracer draws its own)."""


def _recorded(sdk: SdkTracer, name: str, context: SpanContext, parent: SpanContext | None, kind: SpanKind,
              attributes: Attributes, links: Sequence[Link], start_time: int | None) -> Span:
    span = _ChosenIds(name, context, parent, sampler=sdk.sampler, resource=sdk.resource, attributes=attributes,
                      span_processor=sdk.span_processor, kind=kind, links=links, limits=_LIMITS,
                      instrumentation_scope=_SCOPE)
    span.start(start_time)
    return span


def _context_of(parent: SpanContext | None) -> Context:
    return trace.set_span_in_context(trace.NonRecordingSpan(parent)) if parent else Context()


entry_spans = EntrySpans()
