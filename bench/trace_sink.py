"""`python -m bench.trace_sink`: where the benchmark's services export their spans (OTLP/HTTP, protobuf).

A collector stands in for production's: it answers every export, counts spans and traces, and keeps nothing
else, so the services pay the whole cost of exporting (encoding, the HTTP request) and the benchmark can say
how many spans a settlement made. It runs as its own process, so its CPU is reported apart from the services'.
GET /counts answers {"requests", "spans", "traces"}; GET /readyz answers 200. Port: HTTP_PORT.
"""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

REPLY = ExportTraceServiceResponse().SerializeToString()


class Counts:
    def __init__(self) -> None:
        self.requests = 0
        self.spans = 0
        self.trace_ids: set[bytes] = set()
        self.lock = threading.Lock()


def serve(port: int) -> None:
    counts = Counts()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the exporters' connection pools reuse their connections

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            request = ExportTraceServiceRequest()
            request.ParseFromString(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            ids = [span.trace_id for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]
            with counts.lock:
                counts.requests += 1
                counts.spans += len(ids)
                counts.trace_ids.update(ids)
            self._answer(REPLY, "application/x-protobuf")

        def do_GET(self) -> None:  # noqa: N802
            with counts.lock:
                body = {"requests": counts.requests, "spans": counts.spans, "traces": len(counts.trace_ids)}
            self._answer(json.dumps(body).encode(), "application/json")

        def _answer(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    serve(int(os.environ["HTTP_PORT"]))
