"""The HTTP API over :class:`~graphkit.serve.service.Service` (FastAPI; OpenAPI at /docs).

Routes are thin: validate (Pydantic), call the service, shape the answer. Cross-cutting rules
live in one place each: the bearer token is one check (:func:`bearer_ok`) on every route but
``/healthz``; the body limit is one ASGI middleware (413 before anything is parsed); every
error, expected or not, leaves as ``{"error": ..., "fields": [...]}`` with no stack trace and no
path of this machine.

The decision and event routes are the hot paths (the issue's target: p99 <= 20 ms at 1,000
decisions/s with 5,000 events/s alongside, on two cores), and the framework's per-request
machinery (its middleware stack, dependency solving, request objects, response-model validation
and serialisation) cost more CPU than the work itself. So :class:`ServeApp` answers ``POST
/v1/decisions/drawdown`` and ``POST /v1/events`` as plain ASGI handlers (:class:`FastRoutes`)
before any of it, with the same token check, body and batch limits, metrics and error shapes:
a decision is validated by pydantic-core straight from the bytes; an event batch is parsed by
pydantic-core's JSON parser and checked for its shape only (the engine validates each event's
values and answers per event), and the answer is built in the documented shape and serialised
once. The FastAPI routes declare both paths for OpenAPI and answer the same way through the
same functions (:func:`answer_decision`, :func:`answer_events`) when the app is called without
the fast path (the bench's framework baseline).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import ValidationError
from pydantic_core import from_json, to_json
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import graphkit
from graphkit.live import EventRejected
from graphkit.serve import models
from graphkit.serve.service import Busy, EventsRefused, NotReady, ReloadFailed, Service

logger = logging.getLogger("graphkit.serve")

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
LOOP_LAG_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
LOOP_LAG_TICK = 0.01  # seconds between two loop-lag samples


class Metrics:
    """Prometheus metrics of one app (its own registry, so apps in one process do not clash)."""

    def __init__(self, service: Service) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter(
            "graphkit_decisions", "Drawdown decisions answered", ["decision"], registry=r
        )
        self.decision_seconds = Histogram(
            "graphkit_decision_seconds",
            "Decision handling time",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter("graphkit_events", "Events by outcome", ["status"], registry=r)
        self.events_seconds = Histogram(
            "graphkit_events_request_seconds",
            "POST /v1/events handling time (log fsync included)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "graphkit_event_loop_lag_seconds",
            "How late the event loop ran a 10 ms timer: time in which no request was answered",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.refused = Counter(
            "graphkit_requests_refused", "Requests refused", ["reason"], registry=r
        )
        Gauge("graphkit_ready", "1 once the log is replayed", registry=r).set_function(
            lambda: float(service.ready)
        )
        Gauge("graphkit_event_log_writable", "0 while events are refused", registry=r).set_function(
            lambda: float(service.log_error is None)
        )
        Gauge(
            "graphkit_events_applied", "Events applied to the live state", registry=r
        ).set_function(lambda: float(service.state.events_applied if service.state else 0))
        Gauge("graphkit_log_records", "Records in the event log", registry=r).set_function(
            lambda: float(service.log.last_seq)
        )
        Gauge(
            "graphkit_checkpoint_fork_seconds",
            "How long the last checkpoint's fork stopped the loop (0 before the first)",
            registry=r,
        ).set_function(lambda: service.last_fork_seconds)


def bearer_ok(authorization: str, token: str | None) -> bool:
    """True when no token is configured or ``authorization`` is ``Bearer <token>`` (compared in
    constant time)."""
    if not token:
        return True
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def validation_fields(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as ``[{"field": "a.b", "message": ...}]`` (no ``body.`` prefix)."""
    fields = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path"):
            loc = loc[1:]
        fields.append({"field": ".".join(loc) or None, "message": error.get("msg", "")})
    return fields


def _invalid_message(fields: list[dict[str, Any]]) -> str:
    return "invalid request: " + ", ".join(f["field"] or "body" for f in fields)


Answer = tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]


class FastRoutes:
    """``POST /v1/decisions/drawdown`` and ``POST /v1/events`` without the framework's
    per-request machinery (see the module docstring)."""

    DECISIONS = "/v1/decisions/drawdown"
    EVENTS = "/v1/events"
    _JSON = ((b"content-type", b"application/json"),)

    def __init__(self, service: Service, metrics: Metrics, token: str | None) -> None:
        self.service, self.metrics, self.token = service, metrics, token
        self.limit = service.serve.max_body_bytes

    def handles(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in (self.DECISIONS, self.EVENTS)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        if not bearer_ok(headers.get(b"authorization", b"").decode("latin-1"), self.token):
            self.metrics.refused.labels("unauthorized").inc()
            answer: Answer = (401, _problem_body("missing or wrong bearer token"), [_CHALLENGE])
        elif scope["path"] == self.DECISIONS:
            answer = await self._decision(receive, headers, started)
        else:
            answer = await self._events(receive, headers, started)
        status, payload, extra = answer
        body = to_json(payload)
        out = [*self._JSON, (b"content-length", b"%d" % len(body)), *extra]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    async def _body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes | None:
        raw = await _read_body(receive, headers.get(b"content-length"), self.limit)
        if raw is None:
            self.metrics.refused.labels("body_too_large").inc()
        return raw

    def _too_large(self) -> Answer:
        return 413, _problem_body(f"request body larger than the limit of {self.limit} bytes"), []

    async def _decision(
        self, receive: Receive, headers: dict[bytes, bytes], started: float
    ) -> Answer:
        raw = await self._body(receive, headers)
        if raw is None:
            return self._too_large()
        try:
            request = models.DrawdownRequest.model_validate_json(raw)
        except ValidationError as exc:
            fields = validation_fields(exc.errors(include_url=False, include_context=False))
            return 422, _problem_body(_invalid_message(fields), fields), []
        try:
            return 200, answer_decision(self.service, self.metrics, request, started), []
        except NotReady as exc:
            return 503, _problem_body(str(exc)), []
        except EventRejected as exc:
            fields = [{"field": i.column, "message": i.message} for i in exc.issues]
            return 422, _problem_body(_invalid_message(fields), fields), []
        except Exception as exc:
            logger.error("internal error: %s", type(exc).__name__, exc_info=exc)
            return 500, _problem_body("internal error (logged on the server)"), []

    async def _events(
        self, receive: Receive, headers: dict[bytes, bytes], started: float
    ) -> Answer:
        if self.service.busy:  # before the body is read or parsed: an event flood costs little
            self.metrics.refused.labels("busy").inc()
            return 503, _problem_body(_BUSY), [_RETRY]
        raw = await self._body(receive, headers)
        if raw is None:
            return self._too_large()
        try:
            body = from_json(raw)
        except ValueError as exc:  # not JSON (pydantic-core's error is a ValueError)
            fields = [{"field": None, "message": f"not valid JSON: {exc}"}]
            return 422, _problem_body(_invalid_message(fields), fields), []
        try:
            events = event_list(body)
        except ShapeError as exc:
            return 422, _problem_body(_invalid_message(exc.fields), exc.fields), []
        try:
            return 200, await answer_events(self.service, self.metrics, events, started), []
        except BatchTooLarge as exc:
            return 413, _problem_body(str(exc)), []
        except (NotReady, EventsRefused) as exc:
            if isinstance(exc, EventsRefused):
                self.metrics.refused.labels("log_unwritable").inc()
            return 503, _problem_body(str(exc)), []
        except Busy as exc:
            self.metrics.refused.labels("busy").inc()
            return 503, _problem_body(str(exc)), [_RETRY]
        except Exception as exc:
            logger.error("internal error: %s", type(exc).__name__, exc_info=exc)
            return 500, _problem_body("internal error (logged on the server)"), []


class ServeApp(FastAPI):
    """The FastAPI app with :class:`FastRoutes` in front of its whole middleware stack."""

    fast: FastRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast is not None and self.fast.handles(scope):
            await self.fast(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


class ShapeError(Exception):
    """A ``POST /v1/events`` body that is neither an event nor a batch of events."""

    def __init__(self, fields: list[dict[str, Any]]) -> None:
        super().__init__(fields)
        self.fields = fields


class BatchTooLarge(ValueError):
    """More events in one request than ``[serve] max_batch_events``."""


def event_list(body: Any) -> list[dict[str, Any]]:
    """The events of a ``POST /v1/events`` body: one event ``{"type": ..., ...}`` or
    ``{"events": [...]}``. Only the shape is checked here (objects with a non-empty string
    ``type``, as :class:`~graphkit.serve.models.Event` says); each event's values are the
    engine's to check, per event. Raises :class:`ShapeError` naming the field at fault."""
    if not isinstance(body, dict):
        raise ShapeError([{"field": None, "message": 'expected an event or {"events": [...]}'}])
    if "events" in body and "type" not in body:
        events, prefix = body["events"], "events."
        if len(body) > 1:
            extra = next(k for k in body if k != "events")
            raise ShapeError([{"field": extra, "message": "Extra inputs are not permitted"}])
        if not isinstance(events, list) or not events:
            message = "a non-empty list of events is required"
            raise ShapeError([{"field": "events", "message": message}])
    else:
        events, prefix = [body], ""
    for index, event in enumerate(events):
        where = f"{prefix}{index}." if prefix else ""
        if not isinstance(event, dict):
            raise ShapeError([{"field": where.rstrip(".") or None, "message": "not an object"}])
        kind = event.get("type")
        if not isinstance(kind, str) or not kind:
            message = "a non-empty string is required"
            raise ShapeError([{"field": f"{where}type", "message": message}])
    return events


# The documented fields of an event's answer (models.EventResult), in order.
_RESULT_FIELDS = ("status", "key", "issues", "alerts", "decision")
_BUSY = "too many events are waiting to be applied; retry shortly"
_RETRY = (b"retry-after", b"1")


async def answer_events(
    service: Service, metrics: Metrics, events: list[dict[str, Any]], started: float
) -> dict[str, Any]:
    """Submit ``events`` (durably) and shape the answer as
    :class:`~graphkit.serve.models.EventsResponse`; counted in the metrics."""
    limit = service.serve.max_batch_events
    if len(events) > limit:
        metrics.refused.labels("batch_too_large").inc()
        raise BatchTooLarge(
            f"a batch of {len(events)} events exceeds the limit of {limit} "
            "([serve] max_batch_events)"
        )
    answers = await service.submit(events)
    counts = {"applied": 0, "duplicate": 0, "rejected": 0, "error": 0}
    alerts: list[dict[str, Any]] = []
    results = []
    for index, answer in enumerate(answers):
        counts[answer["status"]] += 1
        if answer["alerts"]:
            alerts += answer["alerts"]
        result = {"index": index}
        for name in _RESULT_FIELDS:
            result[name] = answer[name]
        results.append(result)
    for status, count in counts.items():
        if count:
            metrics.events.labels(status).inc(count)
    metrics.events_seconds.observe(time.perf_counter() - started)
    return {
        "applied": counts["applied"],
        "duplicate": counts["duplicate"],
        "rejected": counts["rejected"] + counts["error"],
        "results": results,
        "alerts": alerts,
    }


_CHALLENGE = (b"www-authenticate", b"Bearer")


def answer_decision(
    service: Service, metrics: Metrics, request: models.DrawdownRequest, started: float
) -> dict[str, Any]:
    """The engine's decision for ``request`` with its ids, counted in the metrics."""
    state = service.current()
    decision = state.decide(request.model_dump(exclude_none=True)).to_dict()
    metrics.decisions.labels(decision["decision"]).inc()
    decision["decision_id"] = os.urandom(16).hex()
    decision["drawdown_id"] = request.drawdown_id
    decision["run_id"] = state.run_id
    metrics.decision_seconds.observe(time.perf_counter() - started)
    return decision


async def _read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes | None:
    """The whole request body, or None once it is (declared or streamed) over ``limit``."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(parts)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413, declared or streamed (the routes
    behind the framework; :class:`FastRoutes` applies the same limit itself)."""

    def __init__(self, app: ASGIApp, limit: int, on_refuse: Any) -> None:
        self.app, self.limit, self.on_refuse = app, limit, on_refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        chunks: list[Message] = []
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.on_refuse("body_too_large")
        body = {"error": f"request body larger than the limit of {self.limit} bytes"}
        await JSONResponse(body, status_code=413)(scope, receive, send)


def create_app(service: Service, token: str | None = None) -> FastAPI:
    """The FastAPI app serving ``service``; ``token`` (if any) guards all but /healthz."""
    limits = service.serve
    metrics = Metrics(service)

    async def require_token(request: Request) -> None:
        if not bearer_ok(request.headers.get("authorization", ""), token):
            metrics.refused.labels("unauthorized").inc()
            raise HTTPException(401, "missing or wrong bearer token")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        starting = asyncio.create_task(_start(app, service))
        watching = asyncio.create_task(_watch_loop(metrics))
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, lambda: service._spawn(_reload_on_signal()))
        yield
        for task in (starting, watching):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if service.ready and service.log_error is None:
            with contextlib.suppress(Exception):
                await service.checkpoint(background=False)  # nothing left to answer
        await service.stop()

    async def _reload_on_signal() -> None:
        try:
            await service.reload()
        except (ReloadFailed, NotReady) as exc:
            logger.error("SIGHUP reload refused: %s", exc)

    app = ServeApp(
        title="graphkit live risk service",
        version=graphkit.__version__,
        summary="Drawdown decisions, live events and the alert feed over the risk network.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # Documented once for every route: all errors have the Problem shape.
    problems: dict[int | str, dict[str, Any]] = {
        code: {"model": models.Problem} for code in (401, 404, 409, 413, 422, 500, 503)
    }
    guarded = APIRouter(dependencies=[Depends(require_token)])
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], responses=problems)

    @v1.post("/decisions/drawdown", response_model=models.DecisionResponse)
    async def decide(request: models.DrawdownRequest) -> JSONResponse:
        """May this customer draw now? ACCEPT | REVIEW | BLOCK, the tier, reasons with evidence
        and the recommended limit. Asking changes nothing."""
        # FastRoutes answers these requests in front of the framework; this route declares the
        # API and answers the same way when the app is called without it (the bench's
        # baseline). The engine's answer already has the documented shape: not re-validated.
        return JSONResponse(answer_decision(service, metrics, request, time.perf_counter()))

    @v1.post("/events", response_model=models.EventsResponse)
    async def post_events(
        body: Annotated[models.EventBatch | models.Event, Body()],
    ) -> JSONResponse:
        """One event or ``{"events": [...]}`` (at most ``[serve] max_batch_events``), applied in
        order. Acknowledged only once written to the fsynced event log; a repeated event (same
        key, same values) is a no-op. Each event is applied, a duplicate, or rejected with its
        issues; the alerts raised come back with their feed positions."""
        # FastRoutes answers these in front of the framework (the same answer_events).
        events = body.events if isinstance(body, models.EventBatch) else [body]
        answer = await answer_events(
            service, metrics, [e.model_dump() for e in events], time.perf_counter()
        )
        return JSONResponse(answer)

    @v1.get("/customers/{customer_id}")
    async def customer(customer_id: str) -> dict[str, Any]:
        """Live tier, scores, reasons, circle, ring, cluster, velocity, lines and the open fund
        traces with their evidence paths."""
        view = service.current().customer(customer_id)
        if view is None:
            raise HTTPException(404, f"no customer {customer_id!r}")
        return view

    @v1.get("/alerts", response_model=models.AlertsResponse)
    async def alerts(
        after: Annotated[int, Query(ge=0, description="Last seq seen (0: from the start).")] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> dict[str, Any]:
        """The alert feed in order; the cursor is durable across restarts and reloads."""
        page = service.alerts_after(after, limit)
        return {"alerts": page, "next_cursor": page[-1]["seq"] if page else after}

    @v1.post("/admin/reload", response_model=models.ReloadResponse)
    async def reload() -> dict[str, Any]:
        """Swap in the run now at the service's run path (e.g. a repointed ``latest`` link);
        logged events after its cut are applied on top. Requests keep being answered."""
        return await service.reload()

    @app.get("/healthz", response_model=models.Health)
    async def healthz() -> dict[str, Any]:
        """Liveness (no token needed): status, run, events applied, latest event time."""
        state = service.state
        status = "starting" if state is None else "degraded" if service.log_error else "ok"
        return {
            "status": status,
            "run_id": state.run_id if state else None,
            "events_applied": state.events_applied if state else 0,
            "last_event_ts": state.last_event_ts if state else None,
            "events_accepted": state is not None and service.log_error is None,
            "message": service.log_error or app.state.failure,
        }

    @guarded.get("/readyz", response_model=models.Ready)
    async def readyz() -> JSONResponse:
        """200 once the state is loaded and the event log replayed, else 503."""
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @guarded.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @guarded.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @guarded.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

    app.include_router(v1)
    app.include_router(guarded)
    _error_handlers(app)
    app.add_middleware(
        BodyLimit,
        limit=limits.max_body_bytes,
        on_refuse=lambda reason: metrics.refused.labels(reason).inc(),
    )
    # In front of the whole middleware stack: decisions and event batches skip all of it.
    app.fast = FastRoutes(service, metrics, token)
    app.state.metrics = metrics
    app.state.failure = None
    return app


async def _watch_loop(metrics: Metrics) -> None:
    """Sample the event loop's lag: how late a timer of ``LOOP_LAG_TICK`` fires is how long
    the loop was busy (or the process not scheduled) and no request could be answered."""
    clock = time.perf_counter
    while True:
        due = clock() + LOOP_LAG_TICK
        await asyncio.sleep(LOOP_LAG_TICK)
        metrics.loop_lag.observe(max(0.0, clock() - due))


async def _start(app: FastAPI, service: Service) -> None:
    try:
        await service.start()
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        # The server cannot serve this state: say why in the log and stop the process.
        logger.error("start-up failed: %s", exc)
        app.state.failure = "start-up failed (see the server log)"
        signal.raise_signal(signal.SIGTERM)


def _problem_body(error: str, fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": error, "fields": fields or []}


def _problem(status: int, error: str, fields: list[dict[str, Any]] | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(_problem_body(error, fields), status, headers=headers)


def _error_handlers(app: FastAPI) -> None:
    """Every error leaves as a :class:`~graphkit.serve.models.Problem`; nothing internal."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = validation_fields(list(exc.errors()))
        return _problem(422, _invalid_message(fields), fields)

    @app.exception_handler(EventRejected)
    async def rejected(_: Request, exc: EventRejected) -> JSONResponse:
        fields = [{"field": i.column, "message": i.message} for i in exc.issues]
        return _problem(422, _invalid_message(fields), fields)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail))

    @app.exception_handler(NotReady)
    async def not_ready(_: Request, exc: NotReady) -> JSONResponse:
        return _problem(503, str(exc))

    @app.exception_handler(EventsRefused)
    async def refused(_: Request, exc: EventsRefused) -> JSONResponse:
        app.state.metrics.refused.labels("log_unwritable").inc()
        return _problem(503, str(exc))

    @app.exception_handler(Busy)
    async def busy(_: Request, exc: Busy) -> JSONResponse:
        app.state.metrics.refused.labels("busy").inc()
        response = _problem(503, str(exc))
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(BatchTooLarge)
    async def batch_too_large(_: Request, exc: BatchTooLarge) -> JSONResponse:
        return _problem(413, str(exc))

    @app.exception_handler(ReloadFailed)
    async def reload_failed(_: Request, exc: ReloadFailed) -> JSONResponse:
        return _problem(409, str(exc))

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error: %s", type(exc).__name__, exc_info=exc)
        return _problem(500, "internal error (logged on the server)")
