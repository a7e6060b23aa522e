"""The gRPC edge on ECS Fargate (arm64) behind a Network Load Balancer that passes TLS through,
so the tasks terminate mTLS themselves; autoscaling, Cloud Map discovery, and an OpenTelemetry
collector sidecar that scrapes the edge's Prometheus port into Amazon Managed Prometheus and
CloudWatch."""

import json
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_aps as aps
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from cdk import constants as c
from cdk.capabilities.cache import Cache
from cdk.capabilities.database import Database
from cdk.capabilities.identity import Identity
from cdk.capabilities.network import Network
from cdk.capabilities.saga_function import database_environment
from cdk.capabilities.workflow import Workflow
from cdk.nag import acknowledge, acknowledge_task
from order_saga.manifest import Setting

TLS_DIR = "/run/tls"
EDGE_UID = 10001  # the unprivileged user of grpc_edge/Dockerfile
# Writes the PEMs ECS injected from Secrets Manager into the task's private volume, readable by
# the edge's user only: the edge reads TLS_*_FILE paths, and a secret never lands in the image.
WRITE_TLS_FILES = (
    "import os\n"
    "files = {'TLS_CERT_PEM': 'server.crt', 'TLS_KEY_PEM': 'server.key',\n"
    "         'TLS_CLIENT_CA_PEM': 'client-ca.crt'}\n"
    "for var, name in files.items():\n"
    f"    path = os.path.join('{TLS_DIR}', name)\n"
    "    with open(path, 'w') as f:\n"
    "        f.write(os.environ[var])\n"
    f"    os.chown(path, {EDGE_UID}, {EDGE_UID})\n"
    "    os.chmod(path, 0o400)\n"
)
# The current release of the AWS Distro for OpenTelemetry collector (docs/decisions.md).
OTEL_COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0"


def collector_config(remote_write_url: str, region: str, emf_log_group: str) -> str:
    """Scrape the edge every 15 s; remote-write to AMP, and the error counts to CloudWatch (EMF).

    JSON, which the collector reads as the YAML subset it is.
    """
    config = {
        "receivers": {
            "prometheus": {
                "config": {
                    "scrape_configs": [
                        {
                            "job_name": "grpc-edge",
                            "scrape_interval": "15s",
                            "static_configs": [{"targets": [f"127.0.0.1:{c.METRICS_PORT}"]}],
                        }
                    ]
                }
            }
        },
        "extensions": {"sigv4auth": {"region": region, "service": "aps"}},
        "exporters": {
            "prometheusremotewrite": {"endpoint": remote_write_url, "auth": {"authenticator": "sigv4auth"}},
            "awsemf": {
                "namespace": c.EDGE_METRICS_NAMESPACE,
                "log_group_name": emf_log_group,
                "dimension_rollup_option": "NoDimensionRollup",
                "metric_declarations": [
                    {"dimensions": [["grpc_code"]], "metric_name_selectors": [c.EDGE_HANDLED_METRIC]}
                ],
            },
        },
        "service": {
            "extensions": ["sigv4auth"],
            "pipelines": {
                "metrics": {"receivers": ["prometheus"], "exporters": ["prometheusremotewrite", "awsemf"]}
            },
        },
    }
    return json.dumps(config)


def edge_image(scope: Construct) -> ecr_assets.DockerImageAsset:
    """The edge's image (arm64), built at deploy time; it carries the operator tools too."""
    return ecr_assets.DockerImageAsset(
        scope,
        "Image",
        directory=str(c.REPO_ROOT),
        file=c.EDGE_DOCKERFILE,
        exclude=c.EDGE_CONTEXT_EXCLUDES,
        platform=ecr_assets.Platform.LINUX_ARM64,
    )


@dataclass(frozen=True)
class EdgeDependencies:
    network: Network
    database: Database
    cache: Cache
    identity: Identity
    order_saga: Workflow  # started through its alias
    order_cancellation: Workflow
    compensation_dlq: sqs.IQueue  # its depth is one of the saga metrics the edge exports


class EdgeService(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, deps: EdgeDependencies, config: c.EnvironmentConfig
    ) -> None:
        super().__init__(scope, construct_id)
        vpc = deps.network.vpc
        self.prometheus = aps.CfnWorkspace(self, "Prometheus", alias=f"order-saga-{config.name}")
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.namespace = servicediscovery.PrivateDnsNamespace(
            self, "Namespace", name=f"{config.name}.order-saga.internal", vpc=vpc
        )
        self.image = edge_image(self)
        self.task = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=config.edge_cpu,
            memory_limit_mib=config.edge_memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task.add_volume(name="tls")
        self.log_group = logs.LogGroup(
            self, "Logs", retention=config.log_retention, removal_policy=config.kept_removal
        )
        self.tls_secret = secretsmanager.Secret.from_secret_name_v2(
            self, "TlsSecret", c.edge_tls_secret_name(config.name)
        )
        # The collector writes the edge's error counts here as EMF; created here, with a retention.
        self.metrics_log_group = logs.LogGroup(
            self, "MetricsLogs", retention=config.log_retention, removal_policy=config.kept_removal
        )
        self._containers(deps)
        self._permissions(deps)
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task,
            desired_count=config.edge_min_tasks,
            min_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            security_groups=[deps.network.edge_sg],
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            cloud_map_options=ecs.CloudMapOptions(name="edge", cloud_map_namespace=self.namespace),
        )
        scaling = self.service.auto_scale_task_count(
            min_capacity=config.edge_min_tasks, max_capacity=config.edge_max_tasks
        )
        scaling.scale_on_cpu_utilization("Cpu", target_utilization_percent=60)
        self._load_balancer(deps.network)

    def _containers(self, deps: EdgeDependencies) -> None:
        tls_volume = ecs.MountPoint(container_path=TLS_DIR, source_volume="tls", read_only=False)
        logging = ecs.LogDrivers.aws_logs(stream_prefix="edge", log_group=self.log_group)
        image = ecs.ContainerImage.from_docker_image_asset(self.image)
        tls_files = self.task.add_container(
            "TlsFiles",
            image=image,
            essential=False,
            user="0",  # writes the files, then hands them to the edge's user
            entry_point=["python", "-c"],
            command=[WRITE_TLS_FILES],
            secrets={
                "TLS_CERT_PEM": ecs.Secret.from_secrets_manager(self.tls_secret, "cert"),
                "TLS_KEY_PEM": ecs.Secret.from_secrets_manager(self.tls_secret, "key"),
                "TLS_CLIENT_CA_PEM": ecs.Secret.from_secrets_manager(self.tls_secret, "client_ca"),
            },
            logging=logging,
        )
        tls_files.add_mount_points(tls_volume)
        identity = deps.identity
        edge = self.task.add_container(
            "Edge",
            image=image,
            essential=True,
            logging=logging,
            # The image's own check (grpc.health.v1 over the configured transport); ECS ignores a
            # Dockerfile HEALTHCHECK, so it is declared here too.
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-m", "grpc_edge.healthcheck"],
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                start_period=Duration.seconds(20),
                retries=3,
            ),
            port_mappings=[
                ecs.PortMapping(container_port=c.GRPC_PORT, name="grpc"),
                ecs.PortMapping(container_port=c.METRICS_PORT, name="metrics"),
            ],
            environment={
                **database_environment(deps.database),
                Setting.REDIS_URL: deps.cache.url,
                Setting.REDIS_AUTH_SECRET_ARN: deps.cache.auth_secret.secret_arn,
                Setting.ORDER_SAGA_STATE_MACHINE_ARN: deps.order_saga.alias_arn,
                Setting.ORDER_CANCELLATION_STATE_MACHINE_ARN: deps.order_cancellation.alias_arn,
                Setting.JWT_ISSUER: identity.issuer,
                Setting.JWT_JWKS_URL: identity.jwks_url,
                Setting.GRPC_PORT: str(c.GRPC_PORT),
                Setting.METRICS_PORT: str(c.METRICS_PORT),
                Setting.COMPENSATION_DLQ_URL: deps.compensation_dlq.queue_url,
                Setting.TLS_CERT_FILE: f"{TLS_DIR}/server.crt",
                Setting.TLS_KEY_FILE: f"{TLS_DIR}/server.key",
                Setting.TLS_CLIENT_CA_FILE: f"{TLS_DIR}/client-ca.crt",
                Setting.RATE_LIMIT_PER_MINUTE: "600",
                Setting.RATE_LIMIT_PER_CLIENT_PER_MINUTE: "60000",
                "POWERTOOLS_SERVICE_NAME": "grpc-edge",
            },
        )
        edge.add_mount_points(ecs.MountPoint(container_path=TLS_DIR, source_volume="tls", read_only=True))
        edge.add_container_dependencies(
            ecs.ContainerDependency(container=tls_files, condition=ecs.ContainerDependencyCondition.SUCCESS)
        )
        self.task.add_container(
            "Collector",
            image=ecs.ContainerImage.from_registry(OTEL_COLLECTOR_IMAGE),
            essential=False,
            logging=logging,
            environment={
                "AOT_CONFIG_CONTENT": collector_config(
                    f"{self.prometheus.attr_prometheus_endpoint}api/v1/remote_write",
                    self.prometheus.stack.region,
                    self.metrics_log_group.log_group_name,
                )
            },
        )

    def _permissions(self, deps: EdgeDependencies) -> None:
        role = self.task.task_role
        # StartExecution only: the execution name (order_id) makes a repeated start fail safely,
        # so neither CreateOrder nor the reconciler needs to read executions.
        for machine in (deps.order_saga, deps.order_cancellation):
            machine.grant_start_execution(role)
        deps.database.app_secret.grant_read(role)
        deps.cache.auth_secret.grant_read(role)
        deps.compensation_dlq.grant(role, "sqs:GetQueueAttributes")  # the DLQ depth metric only
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["aps:RemoteWrite"], resources=[self.prometheus.attr_arn])
        )
        self.metrics_log_group.grant_write(role)
        acknowledge_task(self.task, "endpoints, ARNs, ports; the TLS keys come from Secrets Manager too")

    def _load_balancer(self, network: Network) -> None:
        nlb_sg = ec2.SecurityGroup(
            self,
            "NlbSg",
            vpc=network.vpc,
            description="gRPC clients (mTLS) from the internet",
            allow_all_outbound=False,
        )
        nlb_sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(c.NLB_TLS_PORT), "gRPC over TLS")
        nlb_sg.add_egress_rule(network.edge_sg, ec2.Port.tcp(c.GRPC_PORT), "To the edge tasks")
        acknowledge(nlb_sg, "AwsSolutions-EC23", "The public gRPC entry point; mTLS and JWTs guard it.")
        # Declared here, not on the group: the network stack must not depend on this one.
        ec2.CfnSecurityGroupIngress(
            self,
            "EdgeFromNlb",
            group_id=network.edge_sg.security_group_id,
            source_security_group_id=nlb_sg.security_group_id,
            ip_protocol="tcp",
            from_port=c.GRPC_PORT,
            to_port=c.GRPC_PORT,
            description="gRPC from the load balancer",
        )
        self.nlb = elbv2.NetworkLoadBalancer(
            self,
            "Nlb",
            vpc=network.vpc,
            internet_facing=True,
            security_groups=[nlb_sg],
            cross_zone_enabled=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        )
        acknowledge(
            self.nlb,
            "AwsSolutions-ELB2",
            "An NLB writes access logs only for TLS listeners; this one has a TCP listener (TLS passes "
            "through to the tasks), so a log bucket would stay empty. VPC flow logs record the flows.",
        )
        # TCP, not TLS: the load balancer passes the TLS stream through so the edge sees the
        # client certificate (mTLS) and the private key never leaves the task.
        self.listener = self.nlb.add_listener("Grpc", port=c.NLB_TLS_PORT, protocol=elbv2.Protocol.TCP)
        self.target_group = self.listener.add_targets(
            "Edge",
            port=c.GRPC_PORT,
            protocol=elbv2.Protocol.TCP,
            targets=[self.service.load_balancer_target(container_name="Edge", container_port=c.GRPC_PORT)],
            health_check=elbv2.HealthCheck(protocol=elbv2.Protocol.TCP, interval=Duration.seconds(10)),
            deregistration_delay=Duration.seconds(30),
        )
