"""OpenTelemetry across HTTP and NATS: one trace from the gateway's request through the service,
the appended event (``traceparent`` header) and every consumer that handles it.

Exporters by settings: ``CAIRN_TRACE_EXPORTER=none`` (default), ``console`` or ``otlp``
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``CAIRN_OTLP_ENDPOINT``). Log records carry ``trace_id``.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON, Sampler, SamplingResult
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from fastapi import FastAPI

PROPAGATOR = TraceContextTextMapPropagator()
_configured = False


class _RecordWhenExported(Sampler):
    """OpenTelemetry's default sampling (parent-based, always on) once something receives spans;
    until then no span objects are made: with no exporter every span would be built and dropped
    (a few hundred microseconds per request and applied event). Trace ids still propagate, so
    events carry a ``traceparent`` and log lines a ``trace_id`` either way."""

    def __init__(self) -> None:
        self.recording = False

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return (DEFAULT_ON if self.recording else ALWAYS_OFF).should_sample(*args, **kwargs)

    def get_description(self) -> str:
        return f"RecordWhenExported{{{'on' if self.recording else 'off'}}}"


_SAMPLER = _RecordWhenExported()


def setup_tracing(service: str, exporter: str | None = None, *, processor: SpanProcessor | None = None) -> None:
    """Install a tracer provider for this process (once). ``processor`` is for tests."""
    global _configured
    if _configured and processor is None:
        return
    exporter = (exporter or os.environ.get("CAIRN_TRACE_EXPORTER", "none")).lower()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": f"cairn-{service}"}),
                                  sampler=_SAMPLER)
        trace.set_tracer_provider(provider)
    if processor is None and exporter == "console":
        processor = BatchSpanProcessor(ConsoleSpanExporter())
    elif processor is None and exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = os.environ.get("CAIRN_OTLP_ENDPOINT")
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter())
    if processor is not None:
        provider.add_span_processor(processor)
        _SAMPLER.recording = True  # something receives spans now: make them
    _configured = True


@lru_cache(maxsize=1)
def tracer() -> trace.Tracer:
    """Cairn's tracer, made once: ``get_tracer`` builds a new one per call, and every request and
    applied event asks (a tracer made before ``setup_tracing`` follows the provider set later)."""
    return trace.get_tracer("cairn")


def inject(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """The current trace context as headers (``traceparent``)."""
    carrier = carrier if carrier is not None else {}
    PROPAGATOR.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    return inject().get("traceparent")


@contextmanager
def span_from(headers: Mapping[str, str] | None, name: str, *, kind: SpanKind = SpanKind.INTERNAL,
              attributes: dict[str, Any] | None = None) -> Iterator[Span]:
    """A span whose parent is the ``traceparent`` in ``headers`` (a new trace when absent)."""
    parent = PROPAGATOR.extract({k.lower(): v for k, v in (headers or {}).items()})
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(name, kind=kind, attributes=attributes or {}) as span:
            yield span
    finally:
        otel_context.detach(token)


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` to every log record (empty outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = trace.get_current_span().get_span_context()
        record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else "-"
        return True


def traced_app(service: str, **kwargs: Any) -> FastAPI:
    """A FastAPI app whose requests ``TracingMiddleware`` traces, one server span each.

    FastAPI's own OpenTelemetry layer (in versions that have one) is turned off: it would make a
    second span per request and look up providers on every call.
    """
    from fastapi import FastAPI

    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        kwargs["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(**kwargs)
    setup_tracing(service)
    app.add_middleware(TracingMiddleware, service=service)
    return app


class TracingMiddleware:
    """Pure ASGI middleware: one server span per request, parented by an incoming traceparent."""

    def __init__(self, app: Any, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in ("/healthz",):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        name = f"{self.service} {scope['method']} {scope['path']}"
        with span_from(headers, name, kind=SpanKind.SERVER,
                       attributes={"http.method": scope["method"], "http.target": scope["path"],
                                   "cairn.service": self.service}) as span:
            async def send_with_status(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.status_code", message["status"])
                await send(message)

            await self.app(scope, receive, send_with_status)


def traced(handler: Any, service: str) -> Any:
    """Wrap a projection handler so each event it applies gets a span in the event's trace."""

    class Traced:
        def __call__(self, conn: Any, event: Any) -> None:
            if event.traceparent is None:
                handler(conn, event)
                return
            with span_from({"traceparent": event.traceparent}, f"{service} projection {event.type}",
                           kind=SpanKind.CONSUMER, attributes={"cairn.sequence": event.sequence}):
                handler(conn, event)

        def __getattr__(self, name: str) -> Any:  # begin_batch / end_batch pass through
            return getattr(handler, name)

    return Traced()
