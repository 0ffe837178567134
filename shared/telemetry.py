"""OpenTelemetry and structured logging, set up once per process."""

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

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
        slow = span.end_time is not None and span.start_time is not None and (
            span.end_time - span.start_time >= self._slow_ns)
        if not (slow or span.status.status_code is StatusCode.ERROR):
            return
        if not self._take_token():
            self.dropped += 1
            return
        self.kept += 1
        kept = _as_sampled(span, context)
        for exporter in self._exporters:
            exporter.on_end(kept)

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
    if exporters:
        provider.add_span_processor(KeepErrorsAndSlow(
            exporters, slow_ms=float(os.environ.get("TRACES_KEEP_SLOW_MS", "1000")),
            max_per_s=float(os.environ.get("TRACES_KEEP_MAX_PER_S", "50"))))
    trace.set_tracer_provider(provider)
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


def context_from(traceparent: str | None) -> Context:
    """The trace context a stored traceparent continues (an empty context when there is none)."""
    return propagate.extract({"traceparent": traceparent} if traceparent else {})
