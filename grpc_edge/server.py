"""The edge server: a factory tests bind to port 0, and the process entry point (`python -m grpc_edge`)."""

import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from types import FrameType

import boto3
import grpc
import redis
from botocore.config import Config
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from order_saga.cache import create_redis
from order_saga.db import Database
from order_saga.errors import ConfigurationError
from order_saga.observability import logger
from order_saga.order_service import OrderService
from order_saga.watchdog import create_watchdog

from .auth import TokenVerifier
from .generated.orders.v1 import orders_pb2, orders_pb2_grpc
from .interceptors import (
    SERVICE,
    AccessLogStage,
    AuthStage,
    ErrorMappingStage,
    MetricsStage,
    RateLimitStage,
    StageChain,
)
from .reconciler import Reconciler
from .saga_metrics import RepairCounter, SagaCollector
from .servicer import OrderServicer
from .settings import EdgeSettings

MAX_MESSAGE_BYTES = 1024 * 1024  # a 100-line order is a few kilobytes
# Below the AWS NLB's fixed 350 s TCP idle timeout: a ping every 60 s keeps a quiet WatchOrder
# stream's flow open, and a connection ends after 300 s (streams get 60 s more to finish), so
# clients reconnect and spread over the tasks autoscaling adds.
CONNECTION_OPTIONS = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_connection_age_ms", 300_000),
    ("grpc.max_connection_age_grace_ms", 60_000),
)


# StartExecution: botocore's standard retry mode backs off (exponential, with jitter) on
# ThrottlingException and on transient errors; after the last attempt the order stays PENDING and
# the reconciler starts it. The timeouts keep a CreateOrder from hanging on an unreachable endpoint.
STEP_FUNCTIONS_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=2, read_timeout=5
)


def build_order_service(settings: EdgeSettings, cache: "redis.Redis") -> OrderService:
    return OrderService(
        lambda: Database(settings),
        cache,
        boto3.client("stepfunctions", config=STEP_FUNCTIONS_CONFIG),
        saga_arn=settings.order_saga_state_machine_arn,
        cancellation_arn=settings.order_cancellation_state_machine_arn,
        catalog_ttl_seconds=settings.catalog_ttl_seconds,
    )


def build_verifier(settings: EdgeSettings) -> TokenVerifier:
    if not settings.jwt_issuer or not settings.jwt_jwks_url:
        raise ConfigurationError("set JWT_ISSUER and JWT_JWKS_URL: the edge verifies every token")
    return TokenVerifier(
        issuer=settings.jwt_issuer,
        jwks_url=settings.jwt_jwks_url,
        cache_size=settings.token_cache_size,
        refetch_seconds=settings.jwt_jwks_refetch_seconds,
        key_lifetime_seconds=settings.jwt_jwks_cache_seconds,
    )


def server_credentials(settings: EdgeSettings) -> grpc.ServerCredentials | None:
    """TLS when a certificate is configured; mTLS (a client certificate required) with a client CA."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    client_ca = settings.tls_client_ca_file.read_bytes() if settings.tls_client_ca_file else None
    return grpc.ssl_server_credentials(
        [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def create_server(
    settings: EdgeSettings,
    *,
    orders: OrderService,
    cache: "redis.Redis",
    verifier: TokenVerifier,
    registry: CollectorRegistry,
    health_servicer: health.HealthServicer | None = None,
    address: str | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[grpc.Server, int]:
    """A server with OrderService, health and reflection, not started yet; `address` defaults to
    GRPC_HOST:GRPC_PORT (tests pass port 0 and get the bound port back); `clock` (seconds since
    the epoch) places each request in its rate-limit window."""
    chain = StageChain(
        [
            MetricsStage(registry),
            AccessLogStage(),
            ErrorMappingStage(),
            AuthStage(verifier),
            RateLimitStage(
                cache, settings.rate_limit_per_minute, settings.rate_limit_per_client_per_minute, clock
            ),
        ]
    )
    server = grpc_server(settings, interceptors=[chain])
    servicer = OrderServicer(
        orders,
        max_watches=max(1, settings.grpc_max_workers // 2),
        max_watches_per_user=settings.watch_max_per_user,
        watch_max_seconds=settings.watch_max_seconds,
        watch_reread_seconds=settings.watch_reread_seconds,
    )
    orders_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server)
    health_servicer = health_servicer or health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (
            orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    return server, bind(server, settings, address)


def grpc_server(settings: EdgeSettings, *, interceptors: list[grpc.ServerInterceptor]) -> grpc.Server:
    """The bare grpcio server of the edge: its thread pool and its options (benchmarks/create_order.py
    builds its baseline on the same)."""
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_max_workers, thread_name_prefix="rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
            *CONNECTION_OPTIONS,
        ],
    )


def bind(server: grpc.Server, settings: EdgeSettings, address: str | None = None) -> int:
    """Listen on `address` (default GRPC_HOST:GRPC_PORT), over TLS when configured; the bound port."""
    address = address or f"{settings.grpc_host}:{settings.grpc_port}"
    credentials = server_credentials(settings)
    return server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)


def serve(settings: EdgeSettings | None = None) -> None:
    """Run the edge until SIGTERM or SIGINT, then drain: health says NOT_SERVING at once (load
    balancers stop sending), in-flight RPCs get SHUTDOWN_GRACE_SECONDS to finish."""
    settings = settings or EdgeSettings()
    settings.require_state_machines()
    cache = create_redis(settings)
    orders = build_order_service(settings, cache)
    registry = CollectorRegistry()
    health_servicer = health.HealthServicer()
    server, port = create_server(
        settings,
        orders=orders,
        cache=cache,
        verifier=build_verifier(settings),
        registry=registry,
        health_servicer=health_servicer,
    )
    if settings.metrics_port:
        sqs = boto3.client("sqs") if settings.compensation_dlq_url else None
        registry.register(SagaCollector(Database(settings), sqs, settings.compensation_dlq_url))
        start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    reconciler = Reconciler(
        orders,
        create_watchdog(settings, Database(settings), cache) if settings.watchdog_grace_seconds > 0 else None,
        interval_seconds=settings.reconcile_interval_seconds,
        grace_seconds=settings.reconcile_grace_seconds,
        watchdog_grace_seconds=settings.watchdog_grace_seconds,
        repairs=RepairCounter(registry),
    )
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server.start()
    reconciler.start()
    logger.info(
        "edge serving",
        extra={
            "port": port,
            "tls": settings.tls_cert_file is not None,
            "metrics_port": settings.metrics_port,
        },
    )
    stopping.wait()
    health_servicer.enter_graceful_shutdown()
    reconciler.stop()
    server.stop(settings.shutdown_grace_seconds).wait()
    logger.info("edge stopped")
