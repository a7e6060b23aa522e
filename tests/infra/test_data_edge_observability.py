"""Encryption everywhere it applies, environments by context, the edge and the alarms."""

import json
from typing import Any

from cdk import constants as c
from cdk.capabilities.edge import collector_config
from tests.support.synth import Synthesized, dump, refs

EDGE_SETTINGS = {
    "ORDER_SAGA_STATE_MACHINE_ARN",
    "ORDER_CANCELLATION_STATE_MACHINE_ARN",
    "JWT_ISSUER",
    "JWT_JWKS_URL",
    "GRPC_PORT",
    "METRICS_PORT",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "TLS_CLIENT_CA_FILE",
    "RATE_LIMIT_PER_MINUTE",
    "RATE_LIMIT_PER_CLIENT_PER_MINUTE",
    "MYSQL_HOST",
    "MYSQL_SECRET_ARN",
    "MYSQL_TLS",
    "REDIS_URL",
    "REDIS_AUTH_SECRET_ARN",
}


def only(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources.values()))


def test_database_is_encrypted_behind_a_tls_proxy_with_rotated_credentials(synthesized: Synthesized) -> None:
    db = only(synthesized.resources("Data", "AWS::RDS::DBInstance"))
    assert db["Properties"]["StorageEncrypted"] is True
    assert db["Properties"]["EngineVersion"] == c.MYSQL_MAJOR_VERSION
    assert only(synthesized.resources("Data", "AWS::RDS::DBProxy"))["Properties"]["RequireTLS"] is True
    params = only(synthesized.resources("Data", "AWS::RDS::DBParameterGroup"))["Properties"]["Parameters"]
    assert params["require_secure_transport"] == "ON"
    assert synthesized.resources("Data", "AWS::SecretsManager::RotationSchedule")


def test_redis_uses_tls_auth_and_encryption_at_rest(synthesized: Synthesized) -> None:
    redis = only(synthesized.resources("Data", "AWS::ElastiCache::ReplicationGroup"))["Properties"]
    assert redis["TransitEncryptionEnabled"] is True
    assert redis["AtRestEncryptionEnabled"] is True
    assert "resolve:secretsmanager" in dump(redis["AuthToken"])  # a reference, never the token


def test_queues_topics_and_buckets_are_encrypted_and_refuse_plain_http(synthesized: Synthesized) -> None:
    for queue in synthesized.resources("Saga", "AWS::SQS::Queue").values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    policies = dump(synthesized.resources("Saga", "AWS::SQS::QueuePolicy"))
    assert '"aws:SecureTransport": "false"' in policies
    topic = only(synthesized.resources("Observability", "AWS::SNS::Topic"))
    assert refs(topic["Properties"]["KmsMasterKeyId"]) <= set(
        synthesized.resources("Observability", "AWS::KMS::Key")
    )


def test_environment_context_selects_availability_and_removal(synthesized: Synthesized) -> None:
    prod = synthesized.env == "prod"
    db_id, db = next(iter(synthesized.resources("Data", "AWS::RDS::DBInstance").items()))
    assert db["Properties"]["MultiAZ"] is prod
    assert db["Properties"]["DeletionProtection"] is prod
    assert db["DeletionPolicy"] == ("Snapshot" if prod else "Delete"), db_id
    redis = only(synthesized.resources("Data", "AWS::ElastiCache::ReplicationGroup"))
    assert redis["Properties"]["NumCacheClusters"] == (2 if prod else 1)
    assert redis["Properties"]["MultiAZEnabled"] is prod
    assert redis["DeletionPolicy"] == ("Snapshot" if prod else "Delete")
    assert only(synthesized.resources("Edge", "AWS::ECS::Service"))["Properties"]["DesiredCount"] == (
        2 if prod else 1
    )


def test_aws_apis_are_reached_through_vpc_endpoints(synthesized: Synthesized) -> None:
    services = dump(
        [
            e["Properties"]["ServiceName"]
            for e in synthesized.resources("Network", "AWS::EC2::VPCEndpoint").values()
        ]
    )
    for service in (
        "states",
        "secretsmanager",
        "xray",
        "logs",
        "ecr.api",
        "ecr.dkr",
        "s3",
        "aps-workspaces",
    ):
        assert f".{service}" in services, service
    # Nothing in the VPC calls SQS or CloudWatch metrics: no endpoint is paid for them
    assert ".sqs" not in services
    assert ".monitoring" not in services


def test_nlb_passes_tls_through_to_the_edge(synthesized: Synthesized) -> None:
    listener = only(synthesized.resources("Edge", "AWS::ElasticLoadBalancingV2::Listener"))["Properties"]
    # TCP, not TLS: the load balancer never terminates the client's TLS (mTLS ends in the task)
    assert listener["Protocol"] == "TCP"
    assert listener["Port"] == c.NLB_TLS_PORT
    assert "Certificates" not in listener
    group = only(synthesized.resources("Edge", "AWS::ElasticLoadBalancingV2::TargetGroup"))["Properties"]
    assert (group["Protocol"], group["Port"], group["TargetType"]) == ("TCP", c.GRPC_PORT, "ip")


def test_edge_runs_on_arm64_fargate_with_its_settings_and_tls_from_secrets(synthesized: Synthesized) -> None:
    task = only(synthesized.resources("Edge", "AWS::ECS::TaskDefinition"))["Properties"]
    assert task["RuntimePlatform"]["CpuArchitecture"] == "ARM64"
    containers = {d["Name"]: d for d in task["ContainerDefinitions"]}
    edge = containers["Edge"]
    assert {e["Name"] for e in edge["Environment"]} >= EDGE_SETTINGS
    tls = {s["Name"] for s in containers["TlsFiles"]["Secrets"]}
    assert tls == {"TLS_CERT_PEM", "TLS_KEY_PEM", "TLS_CLIENT_CA_PEM"}
    assert edge["DependsOn"] == [{"ContainerName": "TlsFiles", "Condition": "SUCCESS"}]
    assert edge["HealthCheck"]["Command"] == ["CMD", "python", "-m", "grpc_edge.healthcheck"]
    assert "Collector" in containers
    assert synthesized.resources("Edge", "AWS::ApplicationAutoScaling::ScalableTarget")
    assert synthesized.resources("Edge", "AWS::ServiceDiscovery::Service")
    assert synthesized.resources("Edge", "AWS::APS::Workspace")


def test_edge_image_is_an_arm64_asset_without_local_state(synthesized: Synthesized) -> None:
    manifest = json.loads(
        (synthesized.directory / f"{c.PROJECT}-{synthesized.env}-Edge.assets.json").read_text()
    )
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == c.EDGE_DOCKERFILE
    assert image["source"]["platform"] == "linux/arm64"
    context = synthesized.directory / image["source"]["directory"]
    assert (context / c.EDGE_DOCKERFILE).is_file()
    for excluded in (".venv", ".devstack", "cdk.out", "build", "node_modules", ".git", "tests"):
        assert not (context / excluded).exists(), excluded


def test_edge_task_role_starts_executions_and_reads_only_its_secrets(synthesized: Synthesized) -> None:
    policies = synthesized.resources("Edge", "AWS::IAM::Policy")
    (task_policy,) = [p for k, p in policies.items() if k.startswith("EdgeTaskTaskRole")]
    statements = task_policy["Properties"]["PolicyDocument"]["Statement"]
    actions = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "states:StartExecution",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "aps:RemoteWrite",
        "sqs:GetQueueAttributes",  # the compensation DLQ's depth, a saga metric
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    # The secrets are Redis's AUTH token and the application user's, never the master user's
    secrets = dump([s["Resource"] for s in statements if "secretsmanager:GetSecretValue" in s["Action"]])
    assert "CacheAuthToken" in secrets
    assert "DatabaseAppUserSecret" in secrets
    assert "DatabaseMasterSecret" not in secrets
    assert all(s["Resource"] != "*" for s in statements)
    metrics_logs = [
        k for k in synthesized.resources("Edge", "AWS::Logs::LogGroup") if k.startswith("EdgeMetricsLogs")
    ]
    assert refs(statements) >= set(metrics_logs)


def test_collector_scrapes_the_edge_and_exports_to_amp_and_cloudwatch() -> None:
    # When the collector's configuration is rendered
    config = json.loads(collector_config("https://aps.example/api/v1/remote_write", "eu-west-1", "/g"))
    # Then it scrapes the edge's metrics port and writes to both places
    (job,) = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{c.METRICS_PORT}"]
    pipeline = config["service"]["pipelines"]["metrics"]
    assert pipeline == {"receivers": ["prometheus"], "exporters": ["prometheusremotewrite", "awsemf"]}
    emf = config["exporters"]["awsemf"]
    assert emf["namespace"] == c.EDGE_METRICS_NAMESPACE
    assert emf["metric_declarations"][0]["metric_name_selectors"] == [c.EDGE_HANDLED_METRIC]
