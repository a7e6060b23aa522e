"""The interceptor of the OrderService RPCs: a chain of stages, outermost first: metrics, access
log, error mapping, authentication, rate limiting. Health and reflection pass through untouched.

Each stage is a context manager around one RPC, and all stages share one `RpcCall`; for a server
stream the stages stay open until the last message is sent, so latency and status cover it all.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import redis
from google.protobuf.message import DecodeError
from prometheus_client import CollectorRegistry, Counter, Histogram

from order_saga.errors import FieldViolation, InvalidRequest, RateLimited
from order_saga.models import Actor
from order_saga.observability import logger

from . import auth
from .errors import rich_status
from .generated.orders.v1 import orders_pb2 as pb

SERVICE = "orders.v1.OrderService"
PREFIX = f"/{SERVICE}/"
RATE_LIMIT_KEY = "order-saga:ratelimit:{kind}:{name}:{window}"
RATE_WINDOW_SECONDS = 60


@dataclass
class RpcCall:
    """One RPC as the interceptors see it."""

    method: str  # the short name, e.g. CreateOrder
    request: Any
    context: grpc.ServicerContext
    response: Any = None
    actor: Actor | None = None  # whom it acts for, once authenticated
    started: float = field(default_factory=time.perf_counter)

    @property
    def code(self) -> grpc.StatusCode:
        code = self.context.code()  # type: ignore[attr-defined]
        return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK

    @property
    def order_id(self) -> str:
        """The correlation id of the access log: the order the RPC is about, when there is one."""
        for message in (self.request, self.response):
            subject = message.order if isinstance(message, pb.CreateOrderResponse) else message
            order_id = getattr(subject, "order_id", "")
            if order_id:
                return str(order_id)
        return ""


@dataclass(frozen=True)
class UnreadableRequest:
    """A request the protobuf runtime refused (e.g. a string field that is not UTF-8)."""

    problem: str
    order_id: str = ""  # the access log reads it like a request's


def tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """grpcio answers INTERNAL, before any interceptor runs, when a request does not parse; this
    one hands the stages an UnreadableRequest instead, which `readable` turns into INVALID_ARGUMENT
    after authentication, like any other bad input."""
    if deserializer is None:
        return None
    parse: Callable[[bytes], Any] = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError as exc:
            return UnreadableRequest(str(exc))

    return deserialize


def readable(request: Any) -> Any:
    if isinstance(request, UnreadableRequest):
        raise InvalidRequest(
            [FieldViolation("request", "is not a valid message (every string must be UTF-8)")]
        )
    return request


class RpcStage(ABC):
    @abstractmethod
    def around(self, call: RpcCall) -> AbstractContextManager[None]:
        """Entered before the RPC runs, left when it is over (an exception passes through)."""


class StageChain(grpc.ServerInterceptor):
    """Runs every OrderService RPC inside the stages, the first one outermost."""

    def __init__(self, stages: list[RpcStage]) -> None:
        self.stages = stages

    @contextmanager
    def around(self, call: RpcCall) -> Iterator[None]:
        with ExitStack() as stack:
            for stage in self.stages:
                stack.enter_context(stage.around(call))
            yield

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None or not details.method.startswith(PREFIX):
            return handler
        method = details.method.removeprefix(PREFIX)
        deserializer = tolerant(handler.request_deserializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(
        self, method: str, behaviour: Callable[[Any, grpc.ServicerContext], Any]
    ) -> Callable[..., Any]:
        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            call = RpcCall(method, request, context)
            with self.around(call):
                call.response = behaviour(readable(request), context)
            return call.response

        return unary

    def _stream(
        self, method: str, behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]]
    ) -> Callable[..., Iterator[Any]]:
        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = RpcCall(method, request, context)
            with self.around(call):
                for response in behaviour(readable(request), context):
                    call.response = response
                    yield response

        return stream


class MetricsStage(RpcStage):
    """Prometheus: RPCs handled and their latency, per method and status code."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("grpc_service", "grpc_method", "grpc_code")
        self.handled = Counter(
            "grpc_server_handled", "RPCs completed on the server", labels, registry=registry
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Time from the request to the last response",
            labels,
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    @contextmanager
    def around(self, call: RpcCall) -> Iterator[None]:
        try:
            yield
        finally:
            labels = (SERVICE, call.method, call.code.name)
            self.handled.labels(*labels).inc()
            self.latency.labels(*labels).observe(time.perf_counter() - call.started)


class AccessLogStage(RpcStage):
    """One JSON line per RPC, correlated by the order id."""

    @contextmanager
    def around(self, call: RpcCall) -> Iterator[None]:
        try:
            yield
        finally:
            logger.info(
                "rpc",
                extra={
                    "rpc": call.method,
                    "code": call.code.name,
                    "duration_ms": round((time.perf_counter() - call.started) * 1000, 2),
                    "correlation_id": call.order_id or None,
                    "customer": call.actor.customer_id if call.actor else None,
                    "client": call.actor.client_id if call.actor else None,
                    "peer": call.context.peer(),
                },
            )


class ErrorMappingStage(RpcStage):
    """Turns any exception below it into a rich status (grpc_edge.errors): the one mapping."""

    @contextmanager
    def around(self, call: RpcCall) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # every error leaves as a status, never a trace
            call.context.abort_with_status(rich_status(exc))


class AuthStage(RpcStage):
    """Verifies the access token and the scope of the RPC; whom it acts for is bound for the RPC."""

    def __init__(self, verifier: auth.TokenVerifier) -> None:
        self.verifier = verifier

    @contextmanager
    def around(self, call: RpcCall) -> Iterator[None]:
        metadata = tuple(call.context.invocation_metadata())
        call.actor = auth.authenticate(self.verifier, metadata, call.method)
        token = auth.bind_actor(call.actor)
        try:
            yield
        finally:
            auth.unbind_actor(token)


class RateLimitStage(RpcStage):
    """Fixed one-minute windows in Redis, shared by every edge task: one per customer, and one
    per app client (a storefront serves many customers; its own limit is set to its size). When
    Redis cannot answer, requests pass (a warning is logged): the limit protects, it must not take
    the API down. `clock` (seconds since the epoch) places each request in its window."""

    def __init__(
        self,
        cache: redis.Redis,
        per_minute: int,
        per_client_per_minute: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cache = cache
        self.limits = {"customer": per_minute, "client": per_client_per_minute}
        self._clock = clock

    @contextmanager
    def around(self, call: RpcCall) -> Iterator[None]:
        if call.actor is not None:
            self._count({"customer": call.actor.customer_id, "client": call.actor.client_id})
        yield

    def _count(self, names: dict[str, str]) -> None:
        counted = [kind for kind, limit in self.limits.items() if limit > 0]
        if not counted:
            return
        now = self._clock()
        window = int(now // RATE_WINDOW_SECONDS)
        try:
            with self.cache.pipeline(transaction=False) as pipe:
                for kind in counted:
                    key = RATE_LIMIT_KEY.format(kind=kind, name=names[kind], window=window)
                    pipe.incr(key)
                    pipe.expire(key, RATE_WINDOW_SECONDS * 2)
                counts = pipe.execute()[::2]
        except redis.RedisError as exc:
            logger.warning("rate limit not checked: Redis unreachable", extra={"error": str(exc)})
            return
        for kind, count in zip(counted, counts, strict=True):
            if int(count) > self.limits[kind]:
                retry_after = int((window + 1) * RATE_WINDOW_SECONDS - now) + 1
                raise RateLimited(
                    f"more than {self.limits[kind]} requests per minute for this {kind}",
                    retry_after=retry_after,
                )
