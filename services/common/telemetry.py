"""OpenTelemetry tracing. Spans wrap the CNI ADD/DEL path and the agent's apply loop.

Exported as JSON lines to a file when MULTINET_TRACE_FILE is set (or `setup(path)` is called); otherwise spans
are created but dropped, which costs a few microseconds each."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

TRACE_FILE_ENV = "MULTINET_TRACE_FILE"
_configured = False


class JsonLinesExporter(SpanExporter):
    """Appends one JSON object per finished span to a file (readable without a collector)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [
            json.dumps(
                {
                    "name": s.name,
                    "trace_id": f"{s.context.trace_id:032x}" if s.context else "",
                    "span_id": f"{s.context.span_id:016x}" if s.context else "",
                    "parent_id": f"{s.parent.span_id:016x}" if s.parent else "",
                    "start_ns": s.start_time,
                    "end_ns": s.end_time,
                    "duration_ms": round(((s.end_time or 0) - (s.start_time or 0)) / 1e6, 3),
                    "status": s.status.status_code.name,
                    "attributes": dict(s.attributes or {}),
                },
                default=str,
            )
            for s in spans
        ]
        with self._lock, self._path.open("a") as out:
            out.write("".join(line + "\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def setup(service: str, path: str | None = None) -> None:
    """Install the tracer provider once per process."""
    global _configured
    if _configured:
        return
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    target = path or os.environ.get(TRACE_FILE_ENV)
    if target:
        provider.add_span_processor(BatchSpanProcessor(JsonLinesExporter(Path(target))))
    trace.set_tracer_provider(provider)
    _configured = True


def shutdown() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
