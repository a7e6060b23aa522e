"""The edge's settings: the shared ones (MYSQL_*, REDIS_*) plus its own, read from the environment."""

from pathlib import Path

from pydantic import Field, model_validator

from order_saga.errors import ConfigurationError
from order_saga.settings import Settings


class EdgeSettings(Settings):
    jwt_issuer: str | None = Field(
        None, description="Expected `iss` of access tokens: the Cognito user pool (the local issuer locally)"
    )
    jwt_jwks_url: str | None = Field(
        None, description="JWKS URL of the token issuer, whose keys verify access tokens"
    )
    jwt_jwks_cache_seconds: float = Field(
        300.0,
        gt=0,
        description="Seconds the issuer's keys (and tokens verified with them) stay cached: a key"
        " withdrawn from the JWKS stops verifying within this time",
    )
    jwt_jwks_refetch_seconds: float = Field(
        30.0,
        ge=0,
        description="Least seconds between JWKS refetches that a token with an unknown `kid` triggers",
    )
    grpc_host: str = Field(
        "127.0.0.1", description="Address the gRPC server binds (0.0.0.0 in the container)"
    )
    grpc_port: int = Field(50051, description="gRPC port")
    grpc_max_workers: int = Field(
        32, description="Threads serving RPCs; open WatchOrder streams may hold at most half of them"
    )
    metrics_host: str = Field("127.0.0.1", description="Address the Prometheus metrics endpoint binds")
    metrics_port: int = Field(9464, description="Prometheus metrics port (0 = off)")
    tls_cert_file: Path | None = Field(None, description="PEM server certificate chain; TLS when set")
    tls_key_file: Path | None = Field(None, description="PEM private key of TLS_CERT_FILE")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM CA bundle of client certificates; when set, clients must present one (mTLS)"
    )
    watch_max_per_user: int = Field(
        4, ge=1, description="Open WatchOrder streams one customer may hold on a server"
    )
    watch_max_seconds: float = Field(
        900.0, gt=0, description="A WatchOrder stream ends (OK) after this long; the client opens a new one"
    )
    watch_reread_seconds: float = Field(
        5.0,
        gt=0,
        description="Seconds between WatchOrder's re-reads of the order (they cover a lost publish)",
    )
    rate_limit_per_minute: int = Field(600, description="RPCs per customer per minute (0 = no limit)")
    rate_limit_per_client_per_minute: int = Field(
        60_000,
        description="RPCs per app client per minute, all its customers together (0 = no limit)",
    )
    catalog_ttl_seconds: float = Field(
        5.0, ge=0, description="Seconds the edge reuses a product's price before reading it again"
    )
    token_cache_size: int = Field(
        10_000, ge=0, description="Verified access tokens kept until they expire (0 = verify every call)"
    )
    reconcile_interval_seconds: float = Field(
        30.0, description="Seconds between reconciler passes over orphaned PENDING orders (0 = off)"
    )
    reconcile_grace_seconds: float = Field(
        60.0, description="Age after which a PENDING order whose saga shows no step counts as orphaned"
    )
    watchdog_grace_seconds: float = Field(
        0.0,
        description="Seconds an order must stay untouched before the reconciler's pass hands it to the"
        " saga watchdog (PENDING or CANCELLING with a closed execution, PENDING with a saga that never"
        " started, or still holding money or stock);"
        " 0 = no watchdog in the edge (AWS, where EventBridge invokes the SagaWatchdog function)",
    )
    shutdown_grace_seconds: float = Field(
        10.0, description="Seconds in-flight RPCs get to finish after SIGTERM"
    )

    @model_validator(mode="after")
    def _tls_files_come_in_pairs(self) -> "EdgeSettings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("TLS_CLIENT_CA_FILE (mTLS) needs TLS_CERT_FILE and TLS_KEY_FILE")
        return self

    def require_state_machines(self) -> None:
        """The edge cannot start sagas without them; say which setting is missing."""
        for name in ("order_saga_state_machine_arn", "order_cancellation_state_machine_arn"):
            if not getattr(self, name):
                raise ConfigurationError(f"{name.upper()} is not set")
