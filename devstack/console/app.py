"""The console's web application (Starlette and Jinja2): pages that read, never write.

Routes:
- `/orders`: every user's orders, newest first, with a status filter, a search and pages;
- `/orders/{order_id}`: the order and everything its saga touched, each execution drawn as the
  state machine's graph with the states it visited, and its event history;
- `/orders/{order_id}/live`: server-sent events, one per status change of the order, fed by the
  Redis status channel the saga's steps publish to (the page re-reads itself on each);
- `/attention`: NEEDS_ATTENTION orders and compensation DLQ messages, with the command for each.
Bad input (a malformed id, an unknown filter, a page out of range) is a 400 page, an unknown
order or page a 404 page; nothing the client sends reaches SQL other than as a parameter. A
request whose Host is not a loopback name is refused (400).
"""

import json
import os
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio
from botocore.exceptions import BotoCoreError, ClientError
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from devstack.asl import load
from order_ops import dlq, executions
from order_saga.db import Database
from order_saga.errors import OrderNotFound, OrderSagaError
from order_saga.feeds import status_channel
from order_saga.manifest import STATE_MACHINES
from order_saga.models import ORDER_ID_PATTERN, OrderStatus
from order_saga.settings import Settings

from . import graph, queries

HERE = Path(__file__).parent
ORDER_ID = re.compile(ORDER_ID_PATTERN)
KEEPALIVE_SECONDS = 15.0
EXAMPLE_ORDER_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
LOOPBACK_NAMES = ["127.0.0.1", "localhost"]
SPECS = {spec.name: spec for spec in STATE_MACHINES}


class Sources:
    """Where the console reads from: MySQL (one connection per server thread) and AWS clients."""

    def __init__(self, settings: Settings, aws_client: Callable[[str], Any]) -> None:
        self.settings = settings
        self.aws_client = aws_client  # boto3.client-like: service name -> client
        self._local = threading.local()

    def database(self) -> Database:
        if not hasattr(self._local, "database"):
            self._local.database = Database(self.settings)
        database: Database = self._local.database
        return database


@dataclass(frozen=True)
class DrawnExecution:
    path: executions.ExecutionPath
    svg: str
    events: list[executions.HistoryRow]


def _templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(), auto_reload=False
    )
    environment.filters["seconds"] = lambda value: "" if value is None else f"{value:.2f} s"
    environment.filters["when"] = lambda value: "" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"
    environment.globals["node_id"] = graph.node_id
    return environment


TEMPLATES = _templates()


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status_code)


def valid_order_id(order_id: str) -> str:
    if not ORDER_ID.match(order_id):
        raise HTTPException(
            400, "An order id is a lower-case UUID, like 0f8fad5b-d9cb-469f-a165-70867728950e."
        )
    return order_id


def order_filter(request: Request) -> queries.OrderFilter:
    params = request.query_params
    status_text = params.get("status", "")
    if status_text and status_text not in OrderStatus.__members__:
        raise HTTPException(
            400, f"Unknown status {status_text[:40]!r}; choose one of {', '.join(OrderStatus)}."
        )
    search = params.get("q", "").strip()
    if len(search) > queries.MAX_SEARCH:
        raise HTTPException(400, f"A search is at most {queries.MAX_SEARCH} characters.")
    page_text = params.get("page", "1")
    if not page_text.isdigit() or not 1 <= int(page_text) <= queries.MAX_PAGE:
        raise HTTPException(400, f"A page is a number from 1 to {queries.MAX_PAGE}.")
    return queries.OrderFilter(OrderStatus(status_text) if status_text else None, search, int(page_text))


def drawn_executions(sources: Sources, order_id: str) -> tuple[list[DrawnExecution], str]:
    """Every execution about the order with its graph; or a note saying why there are none."""
    sfn = sources.aws_client("stepfunctions")
    try:
        arns = executions.executions_of_order(sfn, order_id)
        paths = [executions.path_of(sfn, arn) for arn in arns]
    except (BotoCoreError, ClientError) as exc:
        return [], f"Step Functions did not answer ({exc}); is the local stack up? order-saga up"
    drawn = []
    for path in paths:
        spec = SPECS.get(path.machine)
        try:
            svg = graph.execution_svg(load(spec), path) if spec else ""
        except graph.GraphError as exc:
            svg = f"<p class='note'>{exc}</p>"  # our own message, no user input in it
        drawn.append(DrawnExecution(path, svg, executions.history_rows(path)))
    return drawn, "" if drawn else "No execution has started for this order yet."


def create_app(sources: Sources) -> Starlette:
    def orders(request: Request) -> Response:
        selection = order_filter(request)
        found = queries.list_orders(sources.database(), selection)
        if selection.page > found.pages:
            raise HTTPException(404, f"There is no page {selection.page}: the last one is {found.pages}.")
        return page("orders.html", orders=found, selection=selection, statuses=list(OrderStatus))

    def order(request: Request) -> Response:
        order_id = valid_order_id(request.path_params["order_id"])
        detail = queries.order_detail(sources.database(), order_id)
        drawn, note = drawn_executions(sources, order_id)
        return page(
            "order.html", detail=detail, executions=drawn, note=note, live=not detail.order.status.is_terminal
        )

    async def live(request: Request) -> Response:
        order_id = valid_order_id(request.path_params["order_id"])
        since = request.query_params.get("since", "")
        await run_in_threadpool(queries.order_status, sources.database(), order_id)  # 404 before streaming
        return StreamingResponse(
            status_events(sources, order_id, since, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    def attention(_request: Request) -> Response:
        flagged = queries.needing_attention(sources.database())
        messages, note = dlq_messages(sources)
        on_dlq = {message.order_id for message in messages}
        return page("attention.html", flagged=flagged, messages=messages, on_dlq=on_dlq, note=note)

    async def health(_request: Request) -> Response:
        return PlainTextResponse("ok")

    async def home(_request: Request) -> Response:
        return RedirectResponse("/orders", status_code=303)

    return Starlette(
        routes=[
            Route("/", home),
            Route("/healthz", health),
            Route("/orders", orders),
            Route("/orders/{order_id}", order),
            Route("/orders/{order_id}/live", live),
            Route("/attention", attention),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={HTTPException: http_error, OrderNotFound: not_found, OrderSagaError: unavailable},
        # Only the loopback names it serves: a page on another site whose name is made to resolve
        # to 127.0.0.1 (DNS rebinding) sends its own name, and would otherwise read every order.
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)],
    )


def dlq_messages(sources: Sources) -> tuple[list[dlq.DlqMessage], str]:
    queue_url = os.environ.get("COMPENSATION_DLQ_URL")
    if not queue_url:
        return [], "COMPENSATION_DLQ_URL is not set: the local AWS stack is not up (order-saga up)."
    try:
        return dlq.peek(sources.aws_client("sqs"), queue_url), ""
    except (BotoCoreError, ClientError) as exc:
        return [], f"The compensation DLQ could not be read: {exc}"


async def status_events(
    sources: Sources, order_id: str, since: str, disconnected: Callable[[], Any]
) -> AsyncIterator[str]:
    """`status` events until the order reaches a status no saga moves on from.

    The subscription starts before the current status is read, so a change between the page's
    rendering and this stream is sent at once rather than missed.
    """
    client = redis.asyncio.Redis.from_url(sources.settings.redis_url)
    feed = client.pubsub()
    try:
        await feed.subscribe(status_channel(order_id))
        status = await run_in_threadpool(queries.order_status, sources.database(), order_id)
        if status.value != since:
            yield _event(status)
            if status.is_terminal:
                return
        while not await disconnected():
            message = await feed.get_message(ignore_subscribe_messages=True, timeout=KEEPALIVE_SECONDS)
            if message is None:
                yield ": keep-alive\n\n"
                continue
            status = OrderStatus(message["data"].decode())
            yield _event(status)
            if status.is_terminal:
                return
    finally:
        await feed.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


def _event(status: OrderStatus) -> str:
    return f"event: status\ndata: {json.dumps({'status': status.value, 'terminal': status.is_terminal})}\n\n"


async def http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    titles = {400: "Bad request", 404: "Not found"}
    return page("error.html", exc.status_code, title=titles.get(exc.status_code, "Error"), message=exc.detail)


async def not_found(_request: Request, exc: Exception) -> Response:
    return page("error.html", 404, title="Not found", message=str(exc))


async def unavailable(_request: Request, exc: Exception) -> Response:
    return page("error.html", 503, title="A part of the local stack did not answer", message=str(exc))
