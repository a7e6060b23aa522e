"""The deployment's paths, ports and per-environment sizes. Names come from the deployment
manifest (`order_saga.manifest`), which the local stack and the operator tools read too."""

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Aws, Duration, Fn, RemovalPolicy
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_logs as logs

from order_saga import manifest

PROJECT = manifest.PROJECT
REPO_ROOT = Path(__file__).resolve().parent.parent

# Code and definitions the deployment packages (all relative to the repository root).
COMMON_LAYER_DIR = REPO_ROOT / "layers" / "common"
DEPS_LAYER_DIR = REPO_ROOT / "build" / "layers" / "deps"
EDGE_DOCKERFILE = "grpc_edge/Dockerfile"  # relative to the build context, the repository root
MIGRATION_HANDLER_DIR = REPO_ROOT / "cdk" / "runtime" / "migrate_schema"
# Nothing of these belongs in the edge image's build context.
EDGE_CONTEXT_EXCLUDES = [
    ".venv",
    ".devstack",
    "cdk.out",
    "build",
    "node_modules",
    ".git",
    "tests",
    "**/__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "*.egg-info",
]

# The state machines' ASL files, by name.
STATE_MACHINES = {machine.name: machine.path for machine in manifest.STATE_MACHINES}

# Ports.
MYSQL_PORT = 3306  # RDS Proxy's listener (fixed by the engine)
DB_INSTANCE_PORT = 3406  # the instance itself, reached only by the proxy: not the well-known port
REDIS_PORT = 6380  # ElastiCache, not the well-known port
GRPC_PORT = 50051
METRICS_PORT = 9464
NLB_TLS_PORT = 443

DATABASE_NAME = "orders"
DATABASE_USER = "orders_admin"  # the master user: runs the migrations, nothing else
DATABASE_APP_USER = "orders_app"  # the functions' and the edge's login (DML only)
MYSQL_MAJOR_VERSION = "8.4"
METRICS_NAMESPACE = "OrderSaga"
EDGE_METRICS_NAMESPACE = "OrderSaga/Edge"
# The edge's Prometheus counter (grpc_edge/interceptors.py), labelled grpc_service/grpc_method/grpc_code.
EDGE_HANDLED_METRIC = "grpc_server_handled_total"
EDGE_LATENCY_METRIC = "grpc_server_handling_seconds"
# Codes that mean the server failed (not the client): they page someone.
EDGE_ERROR_CODES = ("INTERNAL", "UNKNOWN", "UNAVAILABLE", "DEADLINE_EXCEEDED")

# Cognito: the resource server and its scopes (the edge checks them with the resource server's prefix).
RESOURCE_SERVER_ID = manifest.RESOURCE_SERVER
SCOPE_READ = manifest.SCOPE_READ
SCOPE_WRITE = manifest.SCOPE_WRITE
SCOPE_ACT_AS = manifest.SCOPE_ACT_AS

LAMBDA_PYTHON = "python3.12"

# SendNotification's concurrent pollers (2 is the least SQS allows): each sends its batch's
# e-mails one after the other, about 10 a second, so the sends stay near 20 a second, within an
# SES production account's sending rate once raised (docs/deploy.md).
NOTIFICATION_SENDERS = 2


@dataclass(frozen=True)
class EnvironmentConfig:
    """What differs between dev and prod; chosen with `-c env=dev|prod`."""

    name: str
    max_azs: int
    nat_gateways: int
    db_instance_type: str
    db_multi_az: bool
    db_allocated_storage_gb: int
    db_max_allocated_storage_gb: int  # storage autoscaling's ceiling
    db_performance_insights: bool  # not offered on the micro classes (docs/decisions.md)
    db_backup_days: int
    # MySQL's default max_connections on RDS: DBInstanceClassMemory / 12582880 (1 GiB: 85, 8 GiB: 683)
    db_max_connections: int
    cache_node_type: str
    cache_nodes: int  # >1 makes a replication group with automatic failover across AZs
    edge_cpu: int
    edge_memory_mib: int
    edge_min_tasks: int
    edge_max_tasks: int
    # Per step the state machines invoke (none for the notifier, the watchdog or the migration,
    # which gain nothing from a reservation); None reserves nothing.
    step_reserved_concurrency: int | None
    log_retention: logs.RetentionDays
    trace_sampling_rate: float  # the X-Ray sampling rule's fixed rate for the state machines
    removal_policy: RemovalPolicy  # for data: DESTROY in dev, SNAPSHOT/RETAIN in prod
    deletion_protection: bool
    # The shoppers' user pool: PLUS adds threat protection (billed per monthly active user).
    user_pool_plan: cognito.FeaturePlan

    @property
    def reserved_concurrency_total(self) -> int:
        """What the environment takes from the account's Lambda concurrency."""
        return (self.step_reserved_concurrency or 0) * len(manifest.STATE_MACHINE_STEPS)

    @property
    def kept_removal(self) -> RemovalPolicy:
        """For what outlives a prod stack (logs, secrets, the compensation DLQ, backups)."""
        return RemovalPolicy.DESTROY if self.name == "dev" else RemovalPolicy.RETAIN


ENVIRONMENTS: dict[str, EnvironmentConfig] = {
    "dev": EnvironmentConfig(
        name="dev",
        max_azs=2,
        nat_gateways=1,
        db_instance_type="t4g.micro",
        db_multi_az=False,
        db_allocated_storage_gb=20,
        db_max_allocated_storage_gb=40,
        db_performance_insights=False,
        db_backup_days=1,
        db_max_connections=85,
        cache_node_type="cache.t4g.micro",
        cache_nodes=1,
        edge_cpu=256,
        edge_memory_mib=512,
        edge_min_tasks=1,
        edge_max_tasks=2,
        step_reserved_concurrency=None,
        log_retention=logs.RetentionDays.ONE_WEEK,
        trace_sampling_rate=1.0,
        removal_policy=RemovalPolicy.DESTROY,
        deletion_protection=False,
        user_pool_plan=cognito.FeaturePlan.ESSENTIALS,
    ),
    "prod": EnvironmentConfig(
        name="prod",
        max_azs=2,
        nat_gateways=2,
        db_instance_type="m7g.large",
        db_multi_az=True,
        db_allocated_storage_gb=100,
        db_max_allocated_storage_gb=500,
        db_performance_insights=True,
        db_backup_days=14,
        db_max_connections=683,
        cache_node_type="cache.m7g.large",
        cache_nodes=2,
        edge_cpu=1024,
        edge_memory_mib=2048,
        edge_min_tasks=2,
        edge_max_tasks=10,
        step_reserved_concurrency=50,
        log_retention=logs.RetentionDays.THREE_MONTHS,
        trace_sampling_rate=0.05,
        removal_policy=RemovalPolicy.SNAPSHOT,
        deletion_protection=True,
        user_pool_plan=cognito.FeaturePlan.PLUS,
    ),
}

ALARM_EVALUATION = Duration.minutes(5)
DB_MONITORING_INTERVAL = Duration.seconds(60)  # Enhanced Monitoring (OS metrics), every environment


def edge_tls_secret_name(env: str) -> str:
    """The secret with the edge's PEMs: a prerequisite, created by the operator (docs/deploy.md)."""
    return f"order-saga/{env}/edge-tls"


def sender_domain(sender: str) -> str:
    """The domain of an e-mail address: prod's SES identity, verified beforehand."""
    return sender.rsplit("@", 1)[-1]


def stack_instance_id() -> str:
    """The UUID of the stack's id: the same across updates, new after a destroy and a redeploy.

    Part of the name of whatever a prod stack RETAINs, so a redeploy never meets the old one.
    """
    return Fn.select(2, Fn.split("/", Aws.STACK_ID))


def environment_config(name: str) -> EnvironmentConfig:
    """The configuration of `name`; a clear error for an unknown one."""
    try:
        return ENVIRONMENTS[name]
    except KeyError:
        known = ", ".join(sorted(ENVIRONMENTS))
        raise ValueError(f"unknown environment {name!r} (context `env`): choose one of {known}") from None
